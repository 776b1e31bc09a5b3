// MiKV mixed-precision KV cache (Yang et al. 2024, "No Token Left Behind") and its H2O baseline.
//
// Every cached token of a layer is in one of three states:
//   hi      — K and V stored in hi_type (F16 or INT8; F32 is accepted for tests);
//   lo      — K and V stored in lo_type (INT4/3/2), group-wise along head_dim (kv_quant.h formats);
//   evicted — nothing stored; attention skips it (H2O baseline only, cfg.evict = 1).
// The first `sink` positions (the IntactKV prefix / attention sinks) are always hi and are stored
// exactly as fp32, whatever hi_type is.
//
// Importance (H2O heavy-hitter score): per layer and token, the sum of the softmax probabilities it
// received over all query heads and all queries of every attend call so far. No decay: old tokens
// have been attended by more queries, exactly as in H2O's accumulated score.
//
// When demotion happens: at the end of every attend(layer, pos, n) — after the importance of that
// call has been added — layer `layer` is brought back to its budget for n_tok = pos + n tokens:
//   protected = positions < sink, and the `recent` newest positions  (always hi)
//   heavy     = H = ceil(hi_ratio · n_tok) further tokens, the hi ones with the largest importance
//               (ties go to the more recent token)
//   budget    = min(n_tok, |protected| + H)
// Every other hi token is demoted to lo (MiKV: quantized in place from its hi form, so an INT8/F16
// hi token is re-quantized from its stored values) or evicted (H2O). Demotion is final: a lo or
// evicted token never comes back. Newly stored tokens start hi, so a prefill block attends over
// its own tokens in high precision and is compressed afterwards. Between store and attend the layer
// may briefly hold more than the budget; after every attend hi == budget (see kv_mikv_budget).
// Storing at pos < n_tok rewinds: those positions are rewritten hi with zero importance.
//
// Memory (kv_mikv_impl.h): per (layer, kv head), hi rows in a dense slot pool and lo rows in a
// position-indexed array, both allocated for the whole context (untouched pages of the pool are
// never committed: it fills from slot 0). bytes(kv, n) reports what the n
// tokens need in their current states: per layer and position, K+V of fp32 rows for sinks, hi rows
// for hi tokens, lo rows (codes + fp16 scale/offset per group) for lo tokens, 0 for evicted ones;
// positions not yet stored count as hi. Bookkeeping (state byte, importance float) is not counted.
#ifndef IT_KV_KV_MIKV_H
#define IT_KV_KV_MIKV_H

#include "kv/kv.h"
#include "kv/kv_quant.h"

enum kv_mikv_state { KV_MIKV_HI, KV_MIKV_LO, KV_MIKV_EVICTED };

typedef struct kv_mikv_config {
    float hi_ratio;   // (0, 1]: heavy-hitter share of the cached tokens kept hi
    int hi_type;      // KVQ_F16 or KVQ_INT8 (KVQ_F32: exact, for tests)
    int lo_type;      // KVQ_INT4, KVQ_INT3 or KVQ_INT2
    int recent;       // R newest tokens always hi (taken literally; 0 allowed)
    int sink;         // first tokens always hi and fp32 (taken literally; 0 allowed)
    int group;        // channels per quantization group; 0 -> kvq_default_group(head_dim)
    int evict;        // 0: MiKV (demote to lo), 1: H2O (evict)
} kv_mikv_config;

// hi_ratio 0.2, F16 hi, INT4 lo, recent 32, sink 1, group 0 (the default for head_dim), MiKV.
kv_mikv_config kv_mikv_default_config(void);

// 0 if cfg is usable for head_dim, else -1 and a one-line reason in why (so that a NULL from
// kv_mikv_new after a passing check means out of memory).
int kv_mikv_config_check(const kv_mikv_config *cfg, int head_dim, char *why, size_t cap);

// NULL on bad config (kv_mikv_config_check says why) / OOM. n_heads must be a multiple of
// n_kv_heads; group must divide head_dim and be a multiple of 8 (≤ KVQ_MAX_GROUP).
it_kv *kv_mikv_new(int n_layers, int n_ctx, int n_heads, int n_kv_heads, int head_dim,
                   const kv_mikv_config *cfg);

// Key balancing (--kv-balance) is not the cache's business: the forward pass stores k·b and attends
// with q/b (kv/kv_balance.h), whatever the cache.

// ---- Introspection (tests, statistics). -1 / error when kv is not a MiKV cache or args are bad. ----

int kv_mikv_n_tokens(const it_kv *kv, int layer);                 // cached tokens of the layer
int kv_mikv_count(const it_kv *kv, int layer, int state);         // tokens in that state
int kv_mikv_state(const it_kv *kv, int layer, int pos);           // enum kv_mikv_state
int kv_mikv_budget(const it_kv *kv, int n_tokens);                // hi tokens kept for n_tokens
float kv_mikv_importance(const it_kv *kv, int layer, int pos);    // NAN on bad args
// Reads back K (which 0) or V (which 1) of a cached, non-evicted position as stored (dequantized)
// into out (n_kv_heads·head_dim floats).
int kv_mikv_read_row(const it_kv *kv, int layer, int pos, int which, float *out);

#endif
