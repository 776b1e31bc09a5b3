// MiKV cache internals shared by kv_mikv.c (policy, attention) and kv_mikv_pool.c (row storage).
//
// Row storage is laid out for the decode attend, which streams one kv head's rows at a time:
//   hi rows — a dense slot pool per (layer, kv head): slots 0 .. n_hi-1 hold the non-sink hi tokens,
//             in no particular order (slot_pos / pos_slot map them), so the hi share of the cache is
//             one contiguous run of n_hi rows, not 20 % of the rows of a full-context array;
//   lo rows — per (layer, kv head) a position-indexed array (lo tokens are the ~80 % majority, so
//             reading them by position is nearly a stream), listed in the ascending lo_list.
// Both are head-major, so a kv head's rows are adjacent and never share a cache line with another
// head's. Sinks stay fp32 in their own arrays. The lists are updated where tokens change state
// (store, demotion), never rebuilt per attend.
#ifndef IT_KV_KV_MIKV_IMPL_H
#define IT_KV_KV_MIKV_IMPL_H

#include "kv/kv_mikv.h"

typedef struct {
    it_kv base;
    kv_mikv_config cfg;   // defaults applied
    int hi_bits, lo_bits;
    size_t hi_row, lo_row;          // bytes per (token, kv head) row
    float *sink_k, *sink_v;         // (n_layers, sink, kv_dim) fp32
    uint8_t *hi_k, *hi_v;           // (n_layers, n_kv_heads, n_ctx slots) rows of hi_row bytes
    uint8_t *lo_k, *lo_v;           // (n_layers, n_kv_heads, n_ctx positions) rows of lo_row bytes
    int *slot_pos;                  // (n_layers, n_ctx): position held by slot s < n_hi[layer]
    int *pos_slot;                  // (n_layers, n_ctx): slot of a pooled hi position, else -1
    int *n_hi;                      // per layer: slots in use
    int *lo_list;                   // (n_layers, n_ctx): the layer's lo positions, ascending
    int *n_lo;                      // per layer
    uint8_t *state;                 // (n_layers, n_ctx) enum kv_mikv_state
    float *imp;                     // (n_layers, n_ctx) accumulated attention
    int *n_tok;                     // per layer
    int *order;                     // (2·n_ctx) demotion scratch: indices, merge buffer
    uint8_t *rowtmp;                // 2·hi_row bytes: a slot swap's buffer
    float *rowbuf;                  // (head_dim) demotion decode
    float *scratch;                 // attend: per thread scratch_per floats
    size_t scratch_per;
    int scratch_threads;
} kv_mikv;

// K (which 0) or V (which 1) row of hi slot s / lo position p of (layer, kv head h).
static inline uint8_t *mikv_hi_row(const kv_mikv *c, int which, int layer, int h, int s) {
    size_t i = ((size_t)layer * c->base.n_kv_heads + (size_t)h) * c->base.n_ctx + (size_t)s;
    return (which ? c->hi_v : c->hi_k) + i * c->hi_row;
}
static inline uint8_t *mikv_lo_row(const kv_mikv *c, int which, int layer, int h, int p) {
    size_t i = ((size_t)layer * c->base.n_kv_heads + (size_t)h) * c->base.n_ctx + (size_t)p;
    return (which ? c->lo_v : c->lo_k) + i * c->lo_row;
}

// Slot pool (kv_mikv_pool.c). add: a new last slot for position p (rows not written); drop: frees
// p's slot, moving the last slot's rows into it (one row copy per head and K/V).
int mikv_pool_add(kv_mikv *c, int layer, int p);
void mikv_pool_drop(kv_mikv *c, int layer, int p);
// Makes the pooled positions >= pos the last slots, ascending (true after stores in position order,
// which append; repaired by row swaps otherwise). Returns the number of slots holding positions < pos.
int mikv_pool_tail(kv_mikv *c, int layer, int pos);
// lo_list: merges the ascending positions add[0..n) in / removes p.
void mikv_lo_merge(kv_mikv *c, int layer, const int *add, int n);
void mikv_lo_remove(kv_mikv *c, int layer, int p);
// Entries of the ascending list a[0..n) below lim.
int mikv_count_below(const int *a, int n, int lim);

#endif
