// Attention steps every cache shares, whatever its storage.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "kv/kv.h"
#include "kv/kv_kern.h"

// The kv_kern softmax of the active ISA (kv_kern.h): every cache calls this very function, so fp32
// rows held by different caches still give bit-identical results.
void kv_softmax_group(const it_kv *kv, float *scores, int rep, int n_keys, int kvh, int t, int pos, int n) {
    const kvk_ops *kern = kvk_active();
    for (int g = 0; g < rep; g++) {
        float *sg = scores + (size_t)g * n_keys;
        kern->softmax(sg, n_keys);   // a -inf score (an evicted token) becomes exactly 0
        if (kv->probs) {
            int w = pos + n;
            float *dst = kv->probs + ((size_t)(kvh * rep + g) * n + t) * w;
            memcpy(dst, sg, (size_t)n_keys * sizeof *dst);
            memset(dst + n_keys, 0, (size_t)(w - n_keys) * sizeof *dst);
        }
    }
}

static int fail_allocs;

void kv_test_fail_allocs(int n) { fail_allocs = n > 0 ? n : 0; }

void *kv_realloc(void *p, size_t bytes) {
    if (fail_allocs > 0) {
        fail_allocs--;
        return NULL;
    }
    return realloc(p, bytes);
}

int kv_scratch_reserve(float **scratch, size_t *per_out, int *threads, size_t per, int nth) {
    if (*threads >= nth) return 0;
    size_t bytes;
    if (it_mul_size((size_t)nth, per, &bytes) || it_mul_size(bytes, sizeof(float), &bytes))
        return *threads > 0 ? 0 : -1;
    float *s = kv_realloc(*scratch, bytes);
    if (s) {
        *scratch = s;
        *per_out = per;
        *threads = nth;
    }
    return *threads > 0 ? 0 : -1;
}

int kv_attend_threads(it_pool *pool, const it_kv *kv, int pos, int n) {
    // q·k and p·v for every query head over its keys (about pos + n for each query of the block).
    double macs = 2.0 * kv->n_heads * kv->head_dim * (double)n * ((double)pos + n);
    return it_pool_chunks(pool, macs, KV_MIN_CHUNK_MACS, 1);
}

int kv_share(it_kv *kv, int n, const float *k, const float *v) {
    if (!kv || !kv->ops->share || n < 0 || n >= kv->n_ctx || (n > 0 && (!k || !v))) return KV_E_ARG;
    const float *ok = kv->shared_k, *ov = kv->shared_v;
    int on = kv->n_shared;
    kv->shared_k = n ? k : NULL;
    kv->shared_v = n ? v : NULL;
    kv->n_shared = n;
    int rc = kv->ops->share(kv, n);
    if (rc != KV_OK) {   // refused: the cache is as it was
        kv->shared_k = ok;
        kv->shared_v = ov;
        kv->n_shared = on;
    }
    return rc;
}
