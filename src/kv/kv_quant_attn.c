// Attention over the quantized KV cache, computed from the stored form. The structure mirrors
// kv_full.c's kernel (one (query token, kv head) pair per work item, the GQA query heads of a kv head
// together so each cached row is read once; same softmax and probs recording), and with F32 keys and
// values it performs the very same float operations in the same order, so it matches kv_full bit for
// bit. Sinks (fp32) take that exact path too, before the rest.
//
// F16 keys and values per token take kv_full's tiled kernel over the halves where it runs
// (kvq_flash_worker below); otherwise fp16 and INTn rows go through the kv_kern kernels (AVX2 or scalar, kv_kern.h), which decode each
// row (per-token) or block (per-channel keys) into registers / a small stack buffer and use it for
// all rep query heads at once:
//   per-token rows:   scores = q·(d·c + m), values o += w·(d·c + m), 8 channels at a time
//   per-channel keys: q·k_p = Σ_c (q_c d_c)·c_{c,p} + Σ_c q_c m_c   (per block of G tokens)
//
// Threading: work items (query token, kv head) dealt round-robin. A decode step (n = 1) has n_kv_heads
// items — TinyLlama's 4 kv heads keep 2 threads busy with 2 items each.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "kv/kv_flash.h"
#include "kv/kv_kern.h"
#include "kv/kv_quant_impl.h"

typedef struct {
    kvq_cache *c;
    const kvk_ops *kern;
    int layer, pos, n;
    const float *q;
    float *out;
} kvq_job;

// Scratch per thread, in floats: scores (rep, n_ctx), or the tiled kernel's buffers. The kernels
// keep their decode buffers on the stack.
static size_t scratch_floats(const kvq_cache *c) {
    const it_kv *kv = &c->base;
    size_t rep = (size_t)(kv->n_heads / kv->n_kv_heads), s = rep * (size_t)kv->n_ctx;
    size_t f = kvf_scratch_floats(kv->head_dim, (int)rep);
    return s > f ? s : f;
}

static void key_scores(const kvq_cache *c, const kvk_ops *kern, int layer, int kvh, int n_keys, const float *q,
                       float *scores, float scale) {
    const it_kv *kv = &c->base;
    int hd = kv->head_dim, rep = kv->n_heads / kv->n_kv_heads, g = c->cfg.group;
    int sink = c->cfg.sink < n_keys ? c->cfg.sink : n_keys;
    for (int p = 0; p < sink; p++) {
        const float *kp = kvq_sink_row(c, layer, p, 0) + (size_t)kvh * hd;
        for (int gq = 0; gq < rep; gq++) scores[(size_t)gq * n_keys + p] = kv_dot(q + gq * hd, kp, hd) * scale;
    }
    if (c->kbits == 32) {
        for (int p = sink; p < n_keys; p++) {
            const float *kp = (const float *)(const void *)kvq_k_row(c, layer, p, kvh);
            for (int gq = 0; gq < rep; gq++) scores[(size_t)gq * n_keys + p] = kv_dot(q + gq * hd, kp, hd) * scale;
        }
        return;
    }
    if (!c->k_chan) {
        kvk_rows r = {kvq_k_row(c, layer, 0, kvh), c->k_row, NULL, sink, n_keys - sink,
                      c->kbits, hd, g, NULL};
        kern->scores(&r, q, rep, scale, scores, (size_t)n_keys);
        return;
    }
    // Per-channel keys: quantized blocks from `sink` on, then the fp32 residual window.
    int nq = c->n_quant[layer] < n_keys ? c->n_quant[layer] : n_keys;
    for (int b = 0; sink + b * g < nq; b++) {
        int p0 = sink + b * g, nt = nq - p0 < g ? nq - p0 : g;
        kern->chan_scores(kvq_k_blk(c, layer, b, kvh), c->kbits, hd, g, nt, q, rep, scale, scores + p0,
                          (size_t)n_keys);
    }
    for (int p = nq > sink ? nq : sink; p < n_keys; p++) {
        const float *kp = kvq_res_row(c, layer, p) + (size_t)kvh * hd;
        for (int gq = 0; gq < rep; gq++) scores[(size_t)gq * n_keys + p] = kv_dot(q + gq * hd, kp, hd) * scale;
    }
}

// o += Σ_p w_p · v_p over fp32 rows, in kv_full's order (p, then head, then channel).
static void f32_sums(const float *const *rows, int n_rows, int p0, int rep, int hd, const float *w, int n_keys,
                     float *o) {
    for (int i = 0; i < n_rows; i++) {
        const float *vp = rows[i];
        for (int gq = 0; gq < rep; gq++) {
            float wv = w[(size_t)gq * n_keys + p0 + i], *og = o + gq * hd;
            for (int d = 0; d < hd; d++) og[d] += wv * vp[d];
        }
    }
}

static void value_sums(const kvq_cache *c, const kvk_ops *kern, int layer, int kvh, int n_keys,
                       const float *scores, float *o) {
    const it_kv *kv = &c->base;
    int hd = kv->head_dim, rep = kv->n_heads / kv->n_kv_heads;
    int sink = c->cfg.sink < n_keys ? c->cfg.sink : n_keys;
    memset(o, 0, (size_t)rep * hd * sizeof(float));
    for (int p = 0; p < sink; p++) {
        const float *vp = kvq_sink_row(c, layer, p, 1) + (size_t)kvh * hd;
        f32_sums(&vp, 1, p, rep, hd, scores, n_keys, o);
    }
    if (c->vbits == 32) {
        for (int p = sink; p < n_keys; p++) {
            const float *vp = (const float *)(const void *)kvq_v_row(c, layer, p, kvh);
            f32_sums(&vp, 1, p, rep, hd, scores, n_keys, o);
        }
        return;
    }
    kvk_rows r = {kvq_v_row(c, layer, 0, kvh), c->v_row, NULL, sink, n_keys - sink,
                  c->vbits, hd, c->cfg.group, NULL};
    kern->accum(&r, scores, (size_t)n_keys, rep, o);
}

static void kvq_worker(void *arg, int ith, int nth) {
    const kvq_job *j = arg;
    const kvq_cache *c = j->c;
    const it_kv *kv = &c->base;
    int hd = kv->head_dim, n_heads = kv->n_heads, n_kv = kv->n_kv_heads, rep = n_heads / n_kv;
    float *scores = c->scratch + (size_t)ith * c->scratch_per;   // (rep, n_keys)
    float scale = 1.0f / sqrtf((float)hd);
    for (int item = ith; item < j->n * n_kv; item += nth) {
        int t = item / n_kv, kvh = item % n_kv;
        int n_keys = j->pos + t + 1;
        const float *q = j->q + (size_t)t * n_heads * hd + (size_t)kvh * rep * hd;
        float *o = j->out + (size_t)t * n_heads * hd + (size_t)kvh * rep * hd;
        key_scores(c, j->kern, j->layer, kvh, n_keys, q, scores, scale);
        kv_softmax_group(kv, scores, rep, n_keys, kvh, t, j->pos, j->n);
        value_sums(c, j->kern, j->layer, kvh, n_keys, scores, o);
    }
}

// F16 keys and values per token: kv_full's tiled kernel reading the halves (kv_flash.h), work items
// (query block, kv head), latest blocks first. The fp32 sinks are its prefix rows: a shared prefix
// (positions < n_shared) first, then the cache's own sinks up to `sink`. Why: the per-query path
// reads every key row once per query token; at a 4K prompt this cache prefilled at ~0.8 of the
// fp32 cache's speed (docs/speed.md).
static void kvq_flash_worker(void *arg, int ith, int nth) {
    const kvq_job *j = arg;
    const kvq_cache *c = j->c;
    const it_kv *kv = &c->base;
    int hd = kv->head_dim, n_heads = kv->n_heads, n_kv = kv->n_kv_heads, rep = n_heads / n_kv;
    size_t kv_dim = (size_t)n_kv * hd, qd = (size_t)n_heads * hd;
    size_t L = (size_t)j->layer * c->cfg.sink * kv_dim;   // this layer's own sinks in sink_k / sink_v
    int n_qb = (j->n + KVF_QT - 1) / KVF_QT;
    for (int item = ith; item < n_qb * n_kv; item += nth) {
        int qb = n_qb - 1 - item / n_kv, kvh = item % n_kv, t0 = qb * KVF_QT;
        int nt = j->n - t0 < KVF_QT ? j->n - t0 : KVF_QT;
        kvf_args a = {NULL, NULL, (size_t)hd, hd, rep, j->q + (size_t)t0 * qd + (size_t)kvh * rep * hd, qd,
                      j->out + (size_t)t0 * qd + (size_t)kvh * rep * hd, qd, nt, j->pos + t0,
                      1.0f / sqrtf((float)hd), c->scratch + (size_t)ith * c->scratch_per,
                      NULL, NULL, kv->n_shared, kv_dim,
                      c->sink_k + L + (size_t)kvh * hd, c->sink_v + L + (size_t)kvh * hd, c->cfg.sink,
                      (const uint16_t *)(const void *)kvq_k_row(c, j->layer, 0, kvh),
                      (const uint16_t *)(const void *)kvq_v_row(c, j->layer, 0, kvh)};
        if (a.n0) {
            a.k0 = kv_shared_row(kv, j->layer, 0, 0) + (size_t)kvh * hd;
            a.v0 = kv_shared_row(kv, j->layer, 0, 1) + (size_t)kvh * hd;
        }
        kvf_attend_avx512(&a);
    }
}

// INT keys or values per token at prefill (n >= KVQ_DEQ_MIN query tokens): a set of kv heads' rows
// [r0, n_keys) is dequantized once into fp32 (c->deq, per head K then V, n_keys rows of head_dim),
// then kv_full's tiled kernel attends over them, the fp32 sinks and a shared prefix in front as for
// the F16 cache. Why: the per-query path decodes every row again for each query token, and at a
// 4K prompt the INT4 cache prefilled at ~0.85 of the F16 cache's speed (docs/speed.md). Decode
// (n = 1) keeps the per-query kernels, which read the packed rows once.
enum { KVQ_DEQ_MIN = 16, KVQ_DEQ_ROWS = 64 };
#define KVQ_DEQ_MAX_FLOATS ((size_t)4 << 20)   // 16 MB of fp32 rows at most: heads are taken in sets

typedef struct {
    kvq_job *j;
    int h0, nh, n_keys, r0;   // kv heads h0 .. h0+nh-1; rows r0 .. n_keys-1 are the dequantized ones
} kvq_deq_job;

static float *deq_rows(const kvq_cache *c, int hh, int which, int n_keys) {
    return c->deq + ((size_t)2 * hh + (size_t)which) * (size_t)n_keys * c->base.head_dim;
}

static void kvq_deq_worker(void *arg, int ith, int nth) {
    const kvq_deq_job *d = arg;
    const kvq_cache *c = d->j->c;
    int hd = c->base.head_dim, g = c->cfg.group, nblk = (d->n_keys - d->r0 + KVQ_DEQ_ROWS - 1) / KVQ_DEQ_ROWS;
    for (int item = ith; item < d->nh * nblk; item += nth) {
        int hh = item / nblk, p0 = d->r0 + (item % nblk) * KVQ_DEQ_ROWS;
        int p1 = p0 + KVQ_DEQ_ROWS < d->n_keys ? p0 + KVQ_DEQ_ROWS : d->n_keys;
        float *dk = deq_rows(c, hh, 0, d->n_keys), *dv = deq_rows(c, hh, 1, d->n_keys);
        for (int p = p0; p < p1; p++) {
            kvq_load_row(kvq_k_row(c, d->j->layer, p, d->h0 + hh), hd, g, c->kbits, dk + (size_t)p * hd);
            kvq_load_row(kvq_v_row(c, d->j->layer, p, d->h0 + hh), hd, g, c->vbits, dv + (size_t)p * hd);
        }
    }
}

static void kvq_deq_flash_worker(void *arg, int ith, int nth) {
    const kvq_deq_job *d = arg;
    const kvq_job *j = d->j;
    const kvq_cache *c = j->c;
    const it_kv *kv = &c->base;
    int hd = kv->head_dim, n_heads = kv->n_heads, n_kv = kv->n_kv_heads, rep = n_heads / n_kv;
    size_t kv_dim = (size_t)n_kv * hd, qd = (size_t)n_heads * hd;
    size_t L = (size_t)j->layer * c->cfg.sink * kv_dim;
    int n_qb = (j->n + KVF_QT - 1) / KVF_QT;
    for (int item = ith; item < n_qb * d->nh; item += nth) {
        int qb = n_qb - 1 - item / d->nh, hh = item % d->nh, kvh = d->h0 + hh, t0 = qb * KVF_QT;
        int nt = j->n - t0 < KVF_QT ? j->n - t0 : KVF_QT;
        kvf_args a = {deq_rows(c, hh, 0, d->n_keys), deq_rows(c, hh, 1, d->n_keys), (size_t)hd, hd, rep,
                      j->q + (size_t)t0 * qd + (size_t)kvh * rep * hd, qd,
                      j->out + (size_t)t0 * qd + (size_t)kvh * rep * hd, qd, nt, j->pos + t0,
                      1.0f / sqrtf((float)hd), c->scratch + (size_t)ith * c->scratch_per,
                      NULL, NULL, kv->n_shared, kv_dim,
                      c->sink_k + L + (size_t)kvh * hd, c->sink_v + L + (size_t)kvh * hd, c->cfg.sink,
                      NULL, NULL};
        if (a.n0) {
            a.k0 = kv_shared_row(kv, j->layer, 0, 0) + (size_t)kvh * hd;
            a.v0 = kv_shared_row(kv, j->layer, 0, 1) + (size_t)kvh * hd;
        }
        kvf_attend_avx512(&a);
    }
}

// 0 if done, -1 if the fp32 rows found no memory (the caller then takes the per-query path).
static int kvq_deq_attend(kvq_job *j, it_pool *pool) {
    kvq_cache *c = j->c;
    const it_kv *kv = &c->base;
    int n_keys = j->pos + j->n, r0 = kv->n_shared > c->cfg.sink ? kv->n_shared : c->cfg.sink;
    if (r0 > n_keys) r0 = n_keys;
    size_t per_head = (size_t)2 * n_keys * kv->head_dim;
    int set = (int)((c->deq_max ? c->deq_max : KVQ_DEQ_MAX_FLOATS) / per_head);
    set = set < 1 ? 1 : set > kv->n_kv_heads ? kv->n_kv_heads : set;
    size_t need = (size_t)set * per_head;
    if (need > c->deq_cap) {
        float *nd = realloc(c->deq, need * sizeof(float));
        if (!nd) return -1;
        c->deq = nd, c->deq_cap = need;
    }
    for (int h0 = 0; h0 < kv->n_kv_heads; h0 += set) {
        kvq_deq_job d = {j, h0, kv->n_kv_heads - h0 < set ? kv->n_kv_heads - h0 : set, n_keys, r0};
        it_pool_run(pool, kvq_deq_worker, &d);
        it_pool_run(pool, kvq_deq_flash_worker, &d);
    }
    return 0;
}

int kvq_attend(it_kv *kv, it_pool *pool, int layer, int pos, int n, const float *q, float *out) {
    kvq_cache *c = (kvq_cache *)kv;
    int nth = it_pool_size(pool);
    if (nth < 1) nth = 1;
    if (kv_scratch_reserve(&c->scratch, &c->scratch_per, &c->scratch_threads, scratch_floats(c), nth) != 0)
        return KV_E_NOMEM;   // not even one thread's scratch: out is not written, the caller must know
    kvq_job j = {c, kvk_active(), layer, pos, n, q, out};
    // Tiled where kv_full is (AVX-512, head_dim % 16 == 0, no probabilities recorded), for F16 rows.
    int tiled = c->kbits == 16 && c->vbits == 16 && !c->k_chan && !kv->probs && !c->untiled &&
                it_cpu_isa() >= IT_ISA_AVX512 && kv->head_dim % 16 == 0;
    void (*work)(void *, int, int) = tiled ? kvq_flash_worker : kvq_worker;
    // INT rows (with INT or fp16 partners) at prefill: dequantized, then tiled (kvq_deq_attend).
    int ib = c->kbits <= 8 || c->vbits <= 8, fb = c->kbits <= 16 && c->vbits <= 16;
    if (!tiled && ib && fb && n >= KVQ_DEQ_MIN && !c->k_chan && !kv->probs && !c->untiled &&
        it_cpu_isa() >= IT_ISA_AVX512 && kv->head_dim % 16 == 0 && c->scratch_threads >= nth &&
        kvq_deq_attend(&j, pool) == 0)
        return KV_OK;
    int use = kv_attend_threads(pool, kv, pos, n);
    if (use > 1 && c->scratch_threads >= nth) it_pool_run_n(pool, work, &j, use);
    else work(&j, 0, 1);
    return KV_OK;
}

void kv_quant_set_tiled(it_kv *kv, int on) { ((kvq_cache *)kv)->untiled = !on; }

void kv_quant_set_deq_max(it_kv *kv, size_t floats) { ((kvq_cache *)kv)->deq_max = floats; }
