// Tiled ("flash") attention over fp32 or fp16 K/V rows for a block of queries: the attention of the
// fp32 cache (kv_full.c) and of kv_quant's F16 cache (kv_quant_attn.c: fp16 rows behind fp32 sinks
// and a shared prefix). One call handles one kv head, the `rep` GQA query heads that share it and up to
// KVF_QT consecutive tokens; keys go in blocks of KVF_KB (aligned to absolute positions) with an
// online softmax (running max m, running sum l, output rescaled by exp(m_old - m_new)), so each key
// and value row is read once per query block instead of once per query, and no (n_keys) score row
// is ever materialized.
//
// A query's result depends only on its own q and its keys (block boundaries are absolute positions,
// masked keys contribute exact zeros), so batched and token-by-token evaluation agree bit for bit.
// It differs from the per-query softmax (kv_full's untiled path, kv_quant's F32 rows) by float
// rounding only: exp is rescaled blockwise, sums are in float.
//
// Two implementations with the same contract: `_ref` (scalar, expf) and AVX-512 (kv_flash_avx512.c:
// keys transposed per block, 4 query rows x 64 keys register tiles, polynomial exp within ~2 ulp).
#ifndef IT_KV_KV_FLASH_H
#define IT_KV_KV_FLASH_H

#include <stddef.h>
#include <stdint.h>

#include "core/fp16.h"

enum { KVF_QT = 16, KVF_KB = 64 };

typedef struct kvf_args {
    const float *k, *v;   // this kv head's row of position p >= n0 at k + p·ld (v likewise)
    size_t ld;            // head_dim where a head's rows are contiguous (kv_full), else the row stride
    int hd, rep;          // head_dim; query heads per kv head
    const float *q;       // token t, head g at q + t·ldq + g·hd
    size_t ldq;
    float *o;             // written like q (ldo)
    size_t ldo;
    int nt;               // 1..KVF_QT tokens
    int pos0;             // token t is at position pos0 + t and sees keys 0 .. pos0 + t
    float scale;          // applied to q·k
    float *scratch;       // kvf_scratch_floats(hd, rep) floats
    const float *k0, *v0; // row of position p < n0 at k0 + p·ld0 instead: a shared prefix (kv.h)
    int n0;               // 0: no prefix
    size_t ld0;           // the stride of the prefix and sink rows (n_kv_heads·head_dim there)
    const float *k1, *v1; // row of n0 <= p < n1 at k1 + p·ld0: kv_quant's own fp32 sinks
    int n1;               // <= n0: none
    const uint16_t *k16, *v16; // non-NULL: rows p >= max(n0, n1) are IEEE halves at k16 + p·ld
} kvf_args;

// Where both kernels read key (which 0) or value (1) row p, whichever block holds it (so a shared
// prefix changes no result); *half = 1 when it is an fp16 row. Both kernels resolve a row once and
// then read all of its channels.
static inline const void *kvf_row(const kvf_args *a, int which, int p, int *half) {
    *half = 0;
    if (p < a->n0) return (which ? a->v0 : a->k0) + (size_t)p * a->ld0;
    if (p < a->n1) return (which ? a->v1 : a->k1) + (size_t)p * a->ld0;
    if (a->k16) return *half = 1, (which ? a->v16 : a->k16) + (size_t)p * a->ld;
    return (which ? a->v : a->k) + (size_t)p * a->ld;
}
// Row p as floats: in place, or an fp16 row converted into buf (head_dim floats).
static inline const float *kvf_row_f(const kvf_args *a, int which, int p, float *buf) {
    int half;
    const void *r = kvf_row(a, which, p, &half);
    if (!half) return (const float *)r;
    for (int d = 0; d < a->hd; d++) buf[d] = it_fp16_to_f32(((const uint16_t *)r)[d]);
    return buf;
}

size_t kvf_scratch_floats(int hd, int rep);
void kvf_attend_ref(const kvf_args *a);
// Only where it_cpu_has_avx512() and hd % 16 == 0.
void kvf_attend_avx512(const kvf_args *a);

#endif
