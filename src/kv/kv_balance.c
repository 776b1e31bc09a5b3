// Key balancing: channel factors and the in-place scalings (see kv_balance.h).
#include "kv/kv_balance.h"

#include <math.h>
#include <stddef.h>

int kv_balance_channels(const float *q, int nq, const float *k, int nk, const float *k2, int nk2,
                        int n_heads, int n_kv_heads, int head_dim, float *b) {
    if (!q || !k || !b || nq <= 0 || nk <= 0 || nk2 < 0 || (nk2 > 0 && !k2) || n_heads <= 0 || n_kv_heads <= 0 || head_dim <= 0 ||
        n_heads % n_kv_heads)
        return -1;
    int rep = n_heads / n_kv_heads;
    size_t kv_dim = (size_t)n_kv_heads * head_dim, q_dim = (size_t)n_heads * head_dim;
    for (int h = 0; h < n_kv_heads; h++)
        for (int d = 0; d < head_dim; d++) {
            float mq = 0, mk = 0;
            for (int t = 0; t < nk; t++) {
                float a = fabsf(k[(size_t)t * kv_dim + (size_t)h * head_dim + d]);
                mk = a > mk ? a : mk;
            }
            for (int t = 0; t < nk2; t++) {
                float a = fabsf(k2[(size_t)t * kv_dim + (size_t)h * head_dim + d]);
                mk = a > mk ? a : mk;
            }
            for (int t = 0; t < nq; t++)
                for (int g = 0; g < rep; g++) {
                    float a = fabsf(q[(size_t)t * q_dim + ((size_t)h * rep + g) * head_dim + d]);
                    mq = a > mq ? a : mq;
                }
            float r = mk > 0 ? mq / mk : 0;
            b[(size_t)h * head_dim + d] = mq > 0 && mk > 0 && isfinite(r) && r > 0 ? sqrtf(r) : 1.0f;
        }
    return 0;
}

void kv_balance_scale_keys(float *k, int n, int kv_dim, const float *b) {
    for (int t = 0; t < n; t++)
        for (int i = 0; i < kv_dim; i++) k[(size_t)t * kv_dim + i] *= b[i];
}

void kv_balance_scale_queries(float *q, int n, int n_heads, int n_kv_heads, int head_dim, const float *b) {
    int rep = n_heads / n_kv_heads;
    size_t q_dim = (size_t)n_heads * head_dim;
    for (int t = 0; t < n; t++)
        for (int h = 0; h < n_heads; h++) {
            const float *bh = b + (size_t)(h / rep) * head_dim;
            float *qh = q + (size_t)t * q_dim + (size_t)h * head_dim;
            for (int d = 0; d < head_dim; d++) qh[d] /= bh[d];
        }
}
