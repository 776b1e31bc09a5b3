// Attention over the quantized KV cache, computed from the stored form. The structure mirrors
// kv_full.c's kernel (one (query token, kv head) pair per work item, the GQA query heads of a kv head
// together so each cached row is read once; same softmax and probs recording), and with F32 keys and
// values it performs the very same float operations in the same order, so it matches kv_full bit for
// bit. Quantized rows are decoded one group at a time into a few floats on the stack/scratch:
//   per-token keys:   q·k = Σ_groups d·Σ_i q_i c_i + m·Σ_i q_i      (Σ q per group computed once)
//   per-channel keys: q·k_p = Σ_c (q_c d_c)·c_{c,p} + Σ_c q_c m_c   (per block of G tokens)
//   values:           o += (w·d)·c + w·m per group
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv_quant_impl.h"

typedef struct {
    kvq_cache *c;
    int layer, pos, n;
    const float *q;
    float *out;
} kvq_job;

// Scratch layout per thread, in floats: scores (rep, n_ctx) | row (hd) | codes (G) |
// qsum (rep, ng) | qd (rep, hd) | qm (rep) | kb (G, hd).
static size_t scratch_floats(const kvq_cache *c) {
    const it_kv *kv = &c->base;
    size_t rep = (size_t)(kv->n_heads / kv->n_kv_heads), hd = (size_t)kv->head_dim;
    size_t g = (size_t)c->cfg.group, ng = (hd + g - 1) / g;
    return rep * (size_t)kv->n_ctx + hd + g + rep * ng + rep * hd + rep + g * hd;
}

// Raw (unscaled except F32) scores of the rep query heads at q against keys 0..n_keys-1.
static void key_scores(const kvq_cache *c, int layer, int kvh, int n_keys, const float *q, float *scores,
                       float *sc, float scale) {
    const it_kv *kv = &c->base;
    int hd = kv->head_dim, rep = kv->n_heads / kv->n_kv_heads, g = c->cfg.group, ng = hd / g;
    float *row = sc, *cf = row + hd, *qsum = cf + g, *qd = qsum + (size_t)rep * ((hd + g - 1) / g);
    float *qm = qd + (size_t)rep * hd, *kb = qm + rep;
    if (c->kbits == 32 || c->kbits == 16) {
        for (int p = 0; p < n_keys; p++) {
            const uint8_t *r = kvq_k_row(c, layer, p, kvh);
            const float *kp = (const float *)(const void *)r;
            if (c->kbits == 16) {
                for (int i = 0; i < hd; i++) row[i] = kvq_rd16(r + 2 * i);
                kp = row;
            }
            for (int gq = 0; gq < rep; gq++) scores[(size_t)gq * n_keys + p] = kv_dot(q + gq * hd, kp, hd) * scale;
        }
        return;
    }
    size_t gb = (size_t)g * c->kbits / 8;
    if (!c->k_chan) {
        for (int gq = 0; gq < rep; gq++)
            for (int gi = 0; gi < ng; gi++) {
                float s = 0;
                for (int i = 0; i < g; i++) s += q[gq * hd + gi * g + i];
                qsum[gq * ng + gi] = s;
            }
        for (int p = 0; p < n_keys; p++) {
            const uint8_t *r = kvq_k_row(c, layer, p, kvh);
            float *acc = qm;   // qm is free in the per-token path
            for (int gq = 0; gq < rep; gq++) acc[gq] = 0;
            for (int gi = 0; gi < ng; gi++) {
                float d = kvq_rd16(r + 4 * gi), m = kvq_rd16(r + 4 * gi + 2);
                kvq_unpack(r + 4 * (size_t)ng + gi * gb, g, c->kbits, cf);
                for (int gq = 0; gq < rep; gq++)
                    acc[gq] += d * kv_dot(q + gq * hd + gi * g, cf, g) + m * qsum[gq * ng + gi];
            }
            for (int gq = 0; gq < rep; gq++) scores[(size_t)gq * n_keys + p] = acc[gq] * scale;
        }
        return;
    }
    // Per-channel keys: quantized blocks, then the fp32 residual window.
    int nq = c->n_quant[layer] < n_keys ? c->n_quant[layer] : n_keys;
    for (int b = 0; b * g < nq; b++) {
        const uint8_t *blk = kvq_k_blk(c, layer, b, kvh);
        int nt = nq - b * g < g ? nq - b * g : g;
        for (int gq = 0; gq < rep; gq++) qm[gq] = 0;
        for (int ch = 0; ch < hd; ch++) {
            float d = kvq_rd16(blk + 4 * ch), m = kvq_rd16(blk + 4 * ch + 2);
            kvq_unpack(blk + 4 * (size_t)hd + ch * gb, g, c->kbits, cf);
            for (int j = 0; j < nt; j++) kb[(size_t)j * hd + ch] = cf[j];   // token-major for the dot
            for (int gq = 0; gq < rep; gq++) {
                qd[(size_t)gq * hd + ch] = q[gq * hd + ch] * d;
                qm[gq] += q[gq * hd + ch] * m;
            }
        }
        for (int j = 0; j < nt; j++)
            for (int gq = 0; gq < rep; gq++)
                scores[(size_t)gq * n_keys + b * g + j] =
                    (kv_dot(qd + (size_t)gq * hd, kb + (size_t)j * hd, hd) + qm[gq]) * scale;
    }
    for (int p = nq; p < n_keys; p++) {
        const float *kp = kvq_res_row(c, layer, p) + (size_t)kvh * hd;
        for (int gq = 0; gq < rep; gq++) scores[(size_t)gq * n_keys + p] = kv_dot(q + gq * hd, kp, hd) * scale;
    }
}

static void value_sums(const kvq_cache *c, int layer, int kvh, int n_keys, const float *scores, float *o,
                       float *sc) {
    const it_kv *kv = &c->base;
    int hd = kv->head_dim, rep = kv->n_heads / kv->n_kv_heads, g = c->cfg.group;
    float *row = sc, *cf = row + hd;
    memset(o, 0, (size_t)rep * hd * sizeof(float));
    if (c->vbits == 32 || c->vbits == 16) {
        for (int p = 0; p < n_keys; p++) {
            const uint8_t *r = kvq_v_row(c, layer, p, kvh);
            const float *vp = (const float *)(const void *)r;
            if (c->vbits == 16) {
                for (int i = 0; i < hd; i++) row[i] = kvq_rd16(r + 2 * i);
                vp = row;
            }
            for (int gq = 0; gq < rep; gq++) {
                float w = scores[(size_t)gq * n_keys + p], *og = o + gq * hd;
                for (int d = 0; d < hd; d++) og[d] += w * vp[d];
            }
        }
        return;
    }
    int ng = hd / g;
    size_t gb = (size_t)g * c->vbits / 8;
    for (int p = 0; p < n_keys; p++) {
        const uint8_t *r = kvq_v_row(c, layer, p, kvh);
        for (int gi = 0; gi < ng; gi++) {
            float d = kvq_rd16(r + 4 * gi), m = kvq_rd16(r + 4 * gi + 2);
            kvq_unpack(r + 4 * (size_t)ng + gi * gb, g, c->vbits, cf);
            for (int gq = 0; gq < rep; gq++) {
                float w = scores[(size_t)gq * n_keys + p], wd = w * d, wm = w * m;
                float *og = o + gq * hd + gi * g;
                for (int i = 0; i < g; i++) og[i] += wd * cf[i] + wm;
            }
        }
    }
}

static void kvq_worker(void *arg, int ith, int nth) {
    const kvq_job *j = arg;
    const kvq_cache *c = j->c;
    const it_kv *kv = &c->base;
    int hd = kv->head_dim, n_heads = kv->n_heads, n_kv = kv->n_kv_heads, rep = n_heads / n_kv;
    float *scores = c->scratch + (size_t)ith * c->scratch_per;   // (rep, n_keys)
    float *sc = scores + (size_t)rep * kv->n_ctx;
    float scale = 1.0f / sqrtf((float)hd);
    for (int item = ith; item < j->n * n_kv; item += nth) {
        int t = item / n_kv, kvh = item % n_kv;
        int n_keys = j->pos + t + 1;
        const float *q = j->q + (size_t)t * n_heads * hd + (size_t)kvh * rep * hd;
        float *o = j->out + (size_t)t * n_heads * hd + (size_t)kvh * rep * hd;
        key_scores(c, j->layer, kvh, n_keys, q, scores, sc, scale);
        kv_softmax_group(kv, scores, rep, n_keys, kvh, t, j->pos, j->n);
        value_sums(c, j->layer, kvh, n_keys, scores, o, sc);
    }
}

void kvq_attend(it_kv *kv, it_pool *pool, int layer, int pos, int n, const float *q, float *out) {
    kvq_cache *c = (kvq_cache *)kv;
    int nth = it_pool_size(pool);
    if (nth < 1) nth = 1;
    if (c->scratch_threads < nth) {
        // Grown on demand to the pool's size; if that fails, fall back to one thread's scratch.
        size_t per = scratch_floats(c);
        float *s = realloc(c->scratch, (size_t)nth * per * sizeof(float));
        if (s) {
            c->scratch = s;
            c->scratch_per = per;
            c->scratch_threads = nth;
        } else if (!c->scratch_threads) {
            return;   // not even one thread's scratch: nothing sensible to compute
        }
    }
    kvq_job j = {c, layer, pos, n, q, out};
    if (c->scratch_threads >= nth) it_pool_run(pool, kvq_worker, &j);
    else kvq_worker(&j, 0, 1);
}
