// fp32 KV cache and its attention kernels. Keys and values of a layer are stored head-major,
// (n_kv_heads, n_ctx, head_dim): a kv head's rows are contiguous, the one stream decode attention
// reads per (token, kv head). Why: position-major rows put a head's rows n_kv_heads·head_dim floats
// apart, a walk the hardware prefetchers follow poorly; at a 4K context (TinyLlama shapes, 2
// threads) the tiled kernel took 1.40-1.46x as long per layer that way (docs/speed.md).
//
// Two attention paths. Tiled (kv_flash.h): blocks of KVF_QT queries x KVF_KB keys with an online
// softmax, each K/V row read once per query block; the default where the AVX-512 kernel runs
// (it_cpu_isa() AVX-512, head_dim a multiple of 16). Untiled (per query: all scores,
// kv_softmax_group, weighted sum — the order kv_quant's and MiKV's F32 rows reproduce bit for bit):
// everywhere else (AVX2 / INTACT_ISA=ref / head_dim 8), while attention probabilities are recorded
// (kv->probs), and when kv_full_set_tiled(kv, 0) asks for it (tests).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "kv/kv.h"
#include "kv/kv_flash.h"

typedef struct {
    it_kv base;
    float *k, *v;      // (n_layers, n_kv_heads, n_ctx, head_dim)
    float *scratch;    // per thread: (n_ctx) scores
    int n_threads_max;
    int untiled;       // kv_full_set_tiled(kv, 0)
    float *fscratch;   // tiled path, per thread kvf_scratch_floats()
    size_t fscratch_per;
    int fscratch_threads;
} kv_full;

// Row 0 of kv head h in `layer` of the cache's K or V storage.
static float *full_head(const kv_full *c, float *base, int layer, int h) {
    const it_kv *kv = &c->base;
    return base + ((size_t)layer * kv->n_kv_heads + (size_t)h) * kv->n_ctx * kv->head_dim;
}

static int full_store(it_kv *kv, int layer, int pos, int n, const float *k, const float *v) {
    kv_full *c = (kv_full *)kv;
    if (pos < kv->n_shared) return KV_E_ARG;   // read-only: the prefix's owner holds those rows
    int hd = kv->head_dim;
    size_t kv_dim = (size_t)kv->n_kv_heads * hd, row = (size_t)hd * sizeof(float);
    for (int h = 0; h < kv->n_kv_heads; h++) {
        float *kh = full_head(c, c->k, layer, h) + (size_t)pos * hd, *vh = full_head(c, c->v, layer, h) + (size_t)pos * hd;
        for (int t = 0; t < n; t++) {
            memcpy(kh + (size_t)t * hd, k + t * kv_dim + (size_t)h * hd, row);
            memcpy(vh + (size_t)t * hd, v + t * kv_dim + (size_t)h * hd, row);
        }
    }
    return 0;
}

typedef struct {
    kv_full *c;
    int layer, pos, n;
    const float *q;
    float *out;
} attend_job;

// One (query token, kv head) pair per work item, dealt round-robin to threads. The query heads
// that share a kv head (GQA) are processed together so each cached K and V row is read once.
static void attend_worker(void *arg, int ith, int nth) {
    const attend_job *j = arg;
    const it_kv *kv = &j->c->base;
    int hd = kv->head_dim, n_heads = kv->n_heads, n_kv = kv->n_kv_heads, group = n_heads / n_kv;
    size_t kv_dim = (size_t)n_kv * hd;
    // Rows below ns come from the shared prefix, position-major (kv_dim apart).
    int ns = kv->n_shared;
    const float *K0 = ns ? kv_shared_row(kv, j->layer, 0, 0) : NULL, *V0 = ns ? kv_shared_row(kv, j->layer, 0, 1) : NULL;
    float *scores = j->c->scratch + (size_t)ith * group * kv->n_ctx; // (group, n_keys)
    float scale = 1.0f / sqrtf((float)hd);
    for (int item = ith; item < j->n * n_kv; item += nth) {
        int t = item / n_kv, kvh = item % n_kv;
        int n_keys = j->pos + t + 1;
        const float *q = j->q + (size_t)t * n_heads * hd + (size_t)kvh * group * hd;
        float *o = j->out + (size_t)t * n_heads * hd + (size_t)kvh * group * hd;
        const float *K = full_head(j->c, j->c->k, j->layer, kvh), *V = full_head(j->c, j->c->v, j->layer, kvh);
        for (int p = 0; p < n_keys; p++) {
            const float *kp = p < ns ? K0 + (size_t)p * kv_dim + (size_t)kvh * hd : K + (size_t)p * hd;
            for (int g = 0; g < group; g++) scores[(size_t)g * n_keys + p] = kv_dot(q + g * hd, kp, hd) * scale;
        }
        kv_softmax_group(kv, scores, group, n_keys, kvh, t, j->pos, j->n);
        memset(o, 0, (size_t)group * hd * sizeof(float));
        for (int p = 0; p < n_keys; p++) {
            const float *vp = p < ns ? V0 + (size_t)p * kv_dim + (size_t)kvh * hd : V + (size_t)p * hd;
            for (int g = 0; g < group; g++) {
                float w = scores[(size_t)g * n_keys + p], *og = o + g * hd;
                for (int d = 0; d < hd; d++) og[d] += w * vp[d];
            }
        }
    }
}

typedef struct {
    kv_full *c;
    int layer, pos, n;
    const float *q;
    float *out;
    void (*kern)(const kvf_args *);
} flash_job;

// Work items: (query block, kv head), latest query blocks (the most keys) first so that the
// round-robin deal ends with the cheap ones and the threads finish together.
static void flash_worker(void *arg, int ith, int nth) {
    const flash_job *j = arg;
    const it_kv *kv = &j->c->base;
    int hd = kv->head_dim, n_heads = kv->n_heads, n_kv = kv->n_kv_heads, rep = n_heads / n_kv;
    size_t kv_dim = (size_t)n_kv * hd, qd = (size_t)n_heads * hd;
    int n_qb = (j->n + KVF_QT - 1) / KVF_QT;
    for (int item = ith; item < n_qb * n_kv; item += nth) {
        int qb = n_qb - 1 - item / n_kv, kvh = item % n_kv, t0 = qb * KVF_QT;
        int nt = j->n - t0 < KVF_QT ? j->n - t0 : KVF_QT;
        kvf_args a = {full_head(j->c, j->c->k, j->layer, kvh), full_head(j->c, j->c->v, j->layer, kvh), (size_t)hd, hd, rep,
                      j->q + (size_t)t0 * qd + (size_t)kvh * rep * hd, qd,
                      j->out + (size_t)t0 * qd + (size_t)kvh * rep * hd, qd, nt, j->pos + t0,
                      1.0f / sqrtf((float)hd), j->c->fscratch + (size_t)ith * j->c->fscratch_per,
                      NULL, NULL, kv->n_shared, kv_dim, NULL, NULL, 0, NULL, NULL};
        if (a.n0) {
            a.k0 = kv_shared_row(kv, j->layer, 0, 0) + (size_t)kvh * hd;
            a.v0 = kv_shared_row(kv, j->layer, 0, 1) + (size_t)kvh * hd;
        }
        j->kern(&a);
    }
}

static int full_attend(it_kv *kv, it_pool *pool, int layer, int pos, int n, const float *q, float *out) {
    kv_full *c = (kv_full *)kv;
    // Tiled only with the AVX-512 kernel: the scalar twin (kv_flash_ref.c, the tests' oracle) sums
    // q·k serially and would be slower than the untiled path, whose kv_dot the compiler vectorizes.
    if (!kv->probs && !c->untiled && it_cpu_isa() >= IT_ISA_AVX512 && kv->head_dim % 16 == 0) {
        int nth = it_pool_size(pool);
        if (nth < 1) nth = 1;
        if (kv_scratch_reserve(&c->fscratch, &c->fscratch_per, &c->fscratch_threads,
                               kvf_scratch_floats(kv->head_dim, kv->n_heads / kv->n_kv_heads), nth) != 0)
            return KV_E_NOMEM;
        flash_job j = {c, layer, pos, n, q, out, kvf_attend_avx512};
        int use = kv_attend_threads(pool, kv, pos, n);
        if (use > 1 && c->fscratch_threads >= nth) it_pool_run_n(pool, flash_worker, &j, use);
        else flash_worker(&j, 0, 1);
        return KV_OK;
    }
    attend_job j = {c, layer, pos, n, q, out};
    it_pool_run_n(pool, attend_worker, &j, kv_attend_threads(pool, kv, pos, n));
    return KV_OK;
}

void kv_full_set_tiled(it_kv *kv, int on) { ((kv_full *)kv)->untiled = !on; }

static size_t full_bytes(const it_kv *kv, int n_tokens) {
    size_t own = n_tokens > kv->n_shared ? (size_t)(n_tokens - kv->n_shared) : 0;
    return (size_t)2 * kv->n_layers * own * kv->n_kv_heads * kv->head_dim * sizeof(float);
}

// Nothing to mark: kv_full keeps no token counters. Its rows below n_shared are simply never
// written, so their pages are never touched (malloc'd, not calloc'd) and cost no resident memory.
static int full_share(it_kv *kv, int n) {
    (void)kv;
    (void)n;
    return KV_OK;
}

static void full_free(it_kv *kv) {
    kv_full *c = (kv_full *)kv;
    free(c->k);
    free(c->v);
    free(c->scratch);
    free(c->fscratch);
    free(c);
}

static const it_kv_ops full_ops = {full_store, full_attend, full_bytes, full_free, full_share};

enum { KV_MAX_THREADS = 256 };

it_kv *kv_full_new(int n_layers, int n_ctx, int n_heads, int n_kv_heads, int head_dim) {
    kv_full *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    it_kv b = {&full_ops, n_layers, n_ctx, n_heads, n_kv_heads, head_dim, NULL, NULL, NULL, 0};
    c->base = b;
    size_t per = (size_t)n_layers * n_ctx * n_kv_heads * head_dim;
    c->k = malloc(per * sizeof(float));
    c->v = malloc(per * sizeof(float));
    c->scratch = malloc((size_t)KV_MAX_THREADS * (n_heads / n_kv_heads) * n_ctx * sizeof(float));
    if (!c->k || !c->v || !c->scratch) {
        full_free(&c->base);
        return NULL;
    }
    return &c->base;
}
