// Private to kv_quant.c / kv_quant_attn.c: the cache struct and the row addressing both need.
#ifndef IT_KV_KV_QUANT_IMPL_H
#define IT_KV_KV_QUANT_IMPL_H

#include <string.h>
#include "core/fp16.h"
#include "kv/kv_quant.h"

typedef struct kvq_cache {
    it_kv base;
    kvq_config cfg;        // defaults applied
    int kbits, vbits;      // 32, 16, 8, 4, 3, 2
    int k_chan;            // keys quantized per channel (INT key type and KVQ_PER_CHANNEL)
    int n_blk;             // per-channel: quantized blocks per (layer, kv head) = (n_ctx - sink) / group
    size_t k_row, v_row;   // bytes per (position, kv head) row, per-token storage
    size_t k_blk;          // per-channel: bytes per (block, kv head)
    uint8_t *k, *v;
    float *res;            // per-channel: (n_layers, residual, kv_dim) fp32, token p at row (p - sink) % residual
    float *sink_k, *sink_v; // (n_layers, sink, kv_dim) fp32: positions < sink (their rows in k/v unused)
    int *n_tok, *n_quant;  // per layer: cached tokens; [0, n_quant) are settled (sinks, then quantized)
    float *scratch;        // attend: per thread scratch_per floats, grown to the pool's size
    size_t scratch_per;
    int scratch_threads;
    int untiled;           // kv_quant_set_tiled(kv, 0)
    float *deq;            // attend, INT rows at prefill: kv heads' rows dequantized to fp32
    size_t deq_cap;        // its floats
    size_t deq_max;        // floats of dequantized rows per set of kv heads (kv_quant_set_deq_max)
} kvq_cache;

static inline float kvq_rd16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return it_fp16_to_f32(h);
}

// Per-token rows are head-major, (n_layers, n_kv_heads, n_ctx) rows: one kv head's rows are
// contiguous, the stream attention reads (as kv_full's; docs/speed.md).
static inline const uint8_t *kvq_k_row(const kvq_cache *c, int layer, int pos, int h) {
    const it_kv *kv = &c->base;
    return c->k + (((size_t)layer * kv->n_kv_heads + (size_t)h) * kv->n_ctx + (size_t)pos) * c->k_row;
}

static inline const uint8_t *kvq_v_row(const kvq_cache *c, int layer, int pos, int h) {
    const it_kv *kv = &c->base;
    return c->v + (((size_t)layer * kv->n_kv_heads + (size_t)h) * kv->n_ctx + (size_t)pos) * c->v_row;
}

static inline const uint8_t *kvq_k_blk(const kvq_cache *c, int layer, int blk, int h) {
    return c->k + (((size_t)layer * c->n_blk + (size_t)blk) * c->base.n_kv_heads + h) * c->k_blk;
}

static inline const float *kvq_res_row(const kvq_cache *c, int layer, int pos) {
    const it_kv *kv = &c->base;
    size_t kv_dim = (size_t)kv->n_kv_heads * kv->head_dim;
    return c->res + ((size_t)layer * c->cfg.residual + (size_t)((pos - c->cfg.sink) % c->cfg.residual)) * kv_dim;
}

// Sink position pos < sink of `layer`: n_kv_heads·head_dim floats (K: which 0, V: which 1). The
// first n_shared sinks are the shared prefix's rows (kv_share requires sink >= n_shared).
static inline const float *kvq_sink_row(const kvq_cache *c, int layer, int pos, int which) {
    const it_kv *kv = &c->base;
    if (pos < kv->n_shared) return kv_shared_row(kv, layer, pos, which);
    size_t kv_dim = (size_t)kv->n_kv_heads * kv->head_dim;
    return (which ? c->sink_v : c->sink_k) + ((size_t)layer * c->cfg.sink + (size_t)pos) * kv_dim;
}

int kvq_attend(it_kv *kv, it_pool *pool, int layer, int pos, int n, const float *q, float *out);

#endif
