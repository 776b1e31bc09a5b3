// fp32 KV cache and its attention kernel. Keys and values of a layer are stored position-major,
// (n_ctx, n_kv_heads*head_dim), so appending a block of tokens is one memcpy.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv.h"

typedef struct {
    it_kv base;
    float *k, *v;      // (n_layers, n_ctx, kv_dim)
    float *scratch;    // per thread: (n_ctx) scores
    int n_threads_max;
} kv_full;

static int full_store(it_kv *kv, int layer, int pos, int n, const float *k, const float *v) {
    kv_full *c = (kv_full *)kv;
    size_t kv_dim = (size_t)kv->n_kv_heads * kv->head_dim;
    size_t off = ((size_t)layer * kv->n_ctx + (size_t)pos) * kv_dim;
    memcpy(c->k + off, k, (size_t)n * kv_dim * sizeof(float));
    memcpy(c->v + off, v, (size_t)n * kv_dim * sizeof(float));
    return 0;
}

typedef struct {
    kv_full *c;
    int layer, pos, n;
    const float *q;
    float *out;
} attend_job;

static float dot(const float *a, const float *b, int n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

// One (query token, head) pair per work item; items are dealt round-robin to threads.
static void attend_worker(void *arg, int ith, int nth) {
    const attend_job *j = arg;
    const it_kv *kv = &j->c->base;
    int hd = kv->head_dim, n_heads = kv->n_heads, group = kv->n_heads / kv->n_kv_heads;
    size_t kv_dim = (size_t)kv->n_kv_heads * hd;
    const float *K = j->c->k + (size_t)j->layer * kv->n_ctx * kv_dim;
    const float *V = j->c->v + (size_t)j->layer * kv->n_ctx * kv_dim;
    float *scores = j->c->scratch + (size_t)ith * kv->n_ctx;
    float scale = 1.0f / sqrtf((float)hd);
    for (int item = ith; item < j->n * n_heads; item += nth) {
        int t = item / n_heads, h = item % n_heads, kvh = h / group;
        int n_keys = j->pos + t + 1;
        const float *q = j->q + (size_t)t * n_heads * hd + (size_t)h * hd;
        float mx = -INFINITY;
        for (int p = 0; p < n_keys; p++) {
            scores[p] = dot(q, K + (size_t)p * kv_dim + (size_t)kvh * hd, hd) * scale;
            if (scores[p] > mx) mx = scores[p];
        }
        double sum = 0;
        for (int p = 0; p < n_keys; p++) {
            scores[p] = expf(scores[p] - mx);
            sum += scores[p];
        }
        float inv = (float)(1.0 / sum);
        float *o = j->out + (size_t)t * n_heads * hd + (size_t)h * hd;
        memset(o, 0, (size_t)hd * sizeof(float));
        for (int p = 0; p < n_keys; p++) {
            const float *vp = V + (size_t)p * kv_dim + (size_t)kvh * hd;
            float w = scores[p] * inv;
            for (int d = 0; d < hd; d++) o[d] += w * vp[d];
        }
    }
}

static void full_attend(it_kv *kv, it_pool *pool, int layer, int pos, int n, const float *q, float *out) {
    kv_full *c = (kv_full *)kv;
    attend_job j = {c, layer, pos, n, q, out};
    it_pool_run(pool, attend_worker, &j);
}

static size_t full_bytes(const it_kv *kv, int n_tokens) {
    return (size_t)2 * kv->n_layers * (size_t)n_tokens * kv->n_kv_heads * kv->head_dim * sizeof(float);
}

static void full_free(it_kv *kv) {
    kv_full *c = (kv_full *)kv;
    free(c->k);
    free(c->v);
    free(c->scratch);
    free(c);
}

static const it_kv_ops full_ops = {full_store, full_attend, full_bytes, full_free};

enum { KV_MAX_THREADS = 256 };

it_kv *kv_full_new(int n_layers, int n_ctx, int n_heads, int n_kv_heads, int head_dim) {
    kv_full *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    it_kv b = {&full_ops, n_layers, n_ctx, n_heads, n_kv_heads, head_dim};
    c->base = b;
    size_t per = (size_t)n_layers * n_ctx * n_kv_heads * head_dim;
    c->k = malloc(per * sizeof(float));
    c->v = malloc(per * sizeof(float));
    c->scratch = malloc((size_t)KV_MAX_THREADS * n_ctx * sizeof(float));
    if (!c->k || !c->v || !c->scratch) {
        full_free(&c->base);
        return NULL;
    }
    return &c->base;
}
