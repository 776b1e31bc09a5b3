// The KV cache interface. The forward pass only appends K/V for new positions and asks the cache
// to attend a block of queries over everything it holds; how K/V are stored (kv_full.c: fp32;
// kv_quant.c: low-bit groups; kv_mikv.c: mixed-precision MiKV and H2O eviction) is the
// implementation's business, and so is the attention kernel, because scores over quantized keys
// must be computed from the stored form.
#ifndef IT_KV_KV_H
#define IT_KV_KV_H

#include <stddef.h>
#include <stdint.h>
#include "core/pool.h"

typedef struct it_kv it_kv;

// Errors of store / attend: the forward pass turns them into INTACT_E_ARG / INTACT_E_NOMEM, so a
// failed step is reported to intact_ctx_eval's caller instead of leaving out unwritten.
enum { KV_OK = 0, KV_E_ARG = -1, KV_E_NOMEM = -2 };

typedef struct it_kv_ops {
    // k, v: (n, n_kv_heads*head_dim) rows for positions pos .. pos+n-1 (k already rotated).
    // KV_OK, KV_E_ARG (positions out of range / a gap) or KV_E_NOMEM.
    int (*store)(it_kv *kv, int layer, int pos, int n, const float *k, const float *v);
    // q: (n, n_heads*head_dim) for positions pos .. pos+n-1; each query attends causally to cached
    // positions 0 .. its own. out: (n, n_heads*head_dim). KV_OK, or KV_E_NOMEM with out unwritten.
    int (*attend)(it_kv *kv, it_pool *pool, int layer, int pos, int n, const float *q, float *out);
    // Storage of the cache's OWN rows for n_tokens cached tokens, all layers: positions below
    // n_shared (a shared prefix, read from its owner) are not counted.
    size_t (*bytes)(const it_kv *kv, int n_tokens);
    void (*free)(it_kv *kv);
    // Called by kv_share after the shared fields are set (n > 0) or cleared (n == 0): the cache
    // marks positions 0..n-1 as cached (its token counters) without writing any row. NULL: the cache
    // cannot share (kv_share refuses).
    int (*share)(it_kv *kv, int n);
} it_kv_ops;

struct it_kv {
    const it_kv_ops *ops;
    int n_layers, n_ctx, n_heads, n_kv_heads, head_dim;
    // When non-NULL, attend also writes its softmax probabilities here as (n_heads, n, pos + n)
    // row-major — row h*n + t holds query t's weights over keys 0..pos+n-1 (0 past its own position).
    float *probs;
    // Shared read-only prefix (kv_share; n_shared 0: none). Positions 0..n_shared-1 of layer l are
    // NOT in the cache's own storage: their K/V rows are read from shared_k/shared_v +
    // (l·n_shared + p)·kv_dim (the IntactKV prefix object's layout, fp32, K after RoPE), which the
    // caller owns and keeps alive and unchanged while shared. store refuses those positions.
    const float *shared_k, *shared_v;
    int n_shared;
};

// Makes positions 0..n-1 of every layer read from k/v ((n_layers, n, kv_dim) fp32 each) instead
// of the cache's own rows, and marks them cached; n == 0 (k, v NULL) detaches. Nothing is copied.
// KV_E_ARG when n is out of [0, n_ctx) or the cache cannot share (a quantizing cache must keep at
// least n sinks exact: the rows are fp32 and read as sinks are).
int kv_share(it_kv *kv, int n, const float *k, const float *v);

// K (which 0) or V (which 1) row of shared position pos < kv->n_shared of `layer`, kv_dim floats.
static inline const float *kv_shared_row(const it_kv *kv, int layer, int pos, int which) {
    size_t kv_dim = (size_t)kv->n_kv_heads * kv->head_dim;
    return (which ? kv->shared_v : kv->shared_k) + ((size_t)layer * kv->n_shared + (size_t)pos) * kv_dim;
}

// q·k for attention scores, shared by every cache so that fp32 storage gives bit-identical scores
// whichever cache holds it. Eight independent partial sums: the compiler turns this into one
// vector FMA chain per 8 lanes without needing -ffast-math to reassociate a scalar reduction.
static inline float kv_dot(const float *a, const float *b, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

// Softmax of the scores of the rep query heads that share kv head kvh, for query t of a block of n
// at positions pos.., over n_keys keys (rows of n_keys in `scores`, normalized in place); writes
// them to kv->probs when recording.
void kv_softmax_group(const it_kv *kv, float *scores, int rep, int n_keys, int kvh, int t, int pos, int n);

// Per-thread attention scratch of per floats, grown on demand to nth threads. 0 when *threads >= nth
// afterwards; if growing fails with one thread's worth already there, the caller must run single-
// threaded (*threads < nth, returns 0); -1 when there is no scratch at all.
int kv_scratch_reserve(float **scratch, size_t *per_out, int *threads, size_t per, int nth);

// How many of the pool's threads an attend call of n queries at positions pos.. should use: 1 (run
// inline, no dispatch) below KV_MIN_CHUNK_MACS multiply-adds per thread, as the matmuls size theirs.
// Why: every layer dispatched its attention to all threads however small; with one core loaded by
// another process, english-1m decoded at 0.61x with -t 2 against -t 1 (bench/threads.sh), the
// caller waiting at each layer for a worker the scheduler had set aside. The work items are dealt
// round-robin and each is computed whole by one thread, so the result does not depend on the count.
enum { KV_MIN_CHUNK_MACS = 65536 };
int kv_attend_threads(it_pool *pool, const it_kv *kv, int pos, int n);

// realloc for the caches' working memory (attention scratch, rewind buffers), with a failure
// injection hook for tests: kv_test_fail_allocs(n) makes the next n calls fail (0 disarms). The
// hook is process-wide and not synchronized: tests set it between calls, never during one.
void *kv_realloc(void *p, size_t bytes);
void kv_test_fail_allocs(int n);

// Full-precision (fp32) cache.
it_kv *kv_full_new(int n_layers, int n_ctx, int n_heads, int n_kv_heads, int head_dim);
// Tiled attention (1, the default; taken only where the AVX-512 kernel runs) or the per-query
// untiled order that kv_quant's and MiKV's F32 rows reproduce bit for bit (0). See kv_full.c.
void kv_full_set_tiled(it_kv *kv, int on);

#endif
