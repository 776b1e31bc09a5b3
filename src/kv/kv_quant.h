// Uniform low-bit KV cache: the foundation of MiKV (mixed-precision KV). Keys and values are stored
// as fp32, fp16 or group-wise asymmetric INTn (n = 8, 4, 3, 2), and attention is computed from the
// stored form (scores and weighted sums read packed codes group by group; nothing dequantizes the
// whole cache into a float copy).
//
// Quantization (asymmetric, one fp16 scale d and one fp16 offset m per group of G values):
//     w ≈ d·q + m,  q in [0, 2^n - 1]
// m is the group minimum rounded DOWN to fp16 and d = (max - m) / (2^n - 1) rounded UP to fp16, so
// the rounded range [m, m + d·(2^n-1)] still covers the group and |w - (d·q + m)| ≤ d/2 for every w
// (up to float rounding). q = clamp(round((w - m) / d)). Values must lie in fp16 range.
//
// Axes:
//   values, and keys with KVQ_PER_TOKEN: each (token, kv head) row of head_dim values is cut into
//     head_dim/G groups of G consecutive channels (G must divide head_dim).
//   keys with KVQ_PER_CHANNEL (KIVI): each channel of a kv head is quantized over blocks of G
//     consecutive tokens (block b = tokens bG .. bG+G-1). The newest tokens stay fp32 in a residual
//     window until `residual` tokens (a multiple of G) have gathered, then they are quantized
//     together; so at any time tokens [0, n_quant) are quantized, n_quant = floor(n/residual)·residual,
//     and [n_quant, n) are fp32. (A batched prefill therefore quantizes blocks holding a query's
//     "future" tokens too; outputs differ slightly from token-by-token decoding, by design.)
//   The axis applies to INT key types only; F32/F16 keys are stored per token as is.
//
// Storage layout (bytes, no padding; fp16 fields read with memcpy since rows are not 2-aligned):
//   per-token INT row for (layer, pos, kv head), ng = head_dim/G groups, gb = G·n/8 bytes per group:
//     [ng × {uint16 d, uint16 m}] [ng × gb packed codes]             -> ng·(4 + gb) bytes
//   per-channel INT key block for (layer, block, kv head):
//     [head_dim × {uint16 d, uint16 m}] [head_dim × gb packed codes] -> head_dim·(4 + gb) bytes
//     (channel c's codes at offset 4·head_dim + c·gb, element j = token sink + bG + j)
//   F16 row: head_dim uint16; F32 row: head_dim float.
//   Packed codes of one group form a little-endian bit stream: element i occupies stream bits
//   [i·n, i·n + n), stream bit s being bit s%8 of byte s/8 (n = 4: element 2k is the low nibble of
//   byte k; n = 3 crosses byte boundaries). G must be a multiple of 8 so every group is whole bytes.
//
// Sinks: the first `sink` positions (the IntactKV prefix or [BOS], which draw attention from every
// later token) are stored exactly as fp32 K and V rows whatever the types, as MiKV's sinks are. With
// per-channel keys the blocks and the residual window start after them: block b = tokens
// sink + bG .. sink + bG + G - 1, and n_quant counts from sink.
//
// Config defaults: group 0 -> kvq_default_group(head_dim) (the largest multiple of 8 that divides
// head_dim and is at most 32: 8 -> 8, 40 -> 8, 48 -> 24, 64 -> 32, 128 -> 32), residual 0 -> group,
// sink 0. Limits: 8 ≤ group ≤ 256, group % 8 == 0, group divides head_dim when any rows are grouped
// along it, 0 ≤ sink ≤ n_ctx.
#ifndef IT_KV_KV_QUANT_H
#define IT_KV_KV_QUANT_H

#include <stddef.h>
#include <stdint.h>
#include "kv/kv.h"

enum kvq_type { KVQ_F32, KVQ_F16, KVQ_INT8, KVQ_INT4, KVQ_INT3, KVQ_INT2 };
enum kvq_axis { KVQ_PER_TOKEN, KVQ_PER_CHANNEL };

enum { KVQ_MAX_GROUP = 256 };

typedef struct kvq_config {
    int k_type, v_type;  // enum kvq_type
    int group;           // G: channels per group (per token) or tokens per block (per channel)
    int key_axis;        // enum kvq_axis
    int residual;        // per-channel keys: fp32 window, a multiple of group (default = group)
    int sink;            // first positions kept exact in fp32, never quantized (IntactKV prefix / [BOS])
} kvq_config;

// The default group for head_dim (see above); 0 when head_dim is not a multiple of 8.
int kvq_default_group(int head_dim);
// 0 if group (given: the caller chose it; else it is the default) fits head_dim; else -1 and a
// one-line reason in why naming the group and the head dimension. Shared with the MiKV cache.
int kvq_group_error(int group, int given, int head_dim, char *why, size_t cap);
// 0 if cfg is usable for head_dim, else -1 and a one-line reason in why (so that a NULL from
// kv_quant_new after a passing check means out of memory).
int kvq_config_check(const kvq_config *cfg, int head_dim, char *why, size_t cap);

// NULL on bad config (kvq_config_check says why) / OOM. n_heads must be a multiple of n_kv_heads (GQA).
it_kv *kv_quant_new(int n_layers, int n_ctx, int n_heads, int n_kv_heads, int head_dim,
                    const kvq_config *cfg);
// F16 keys and values per token attend tiled (kv_full's kernel, kv_flash.h) where kv_full does, and
// INT rows do at prefill (>= 16 query tokens) after dequantizing them to fp32 once per call;
// kv_quant_set_tiled(kv, 0) keeps the per-query path, whose order MiKV's F16 rows reproduce bit for
// bit (tests).
void kv_quant_set_tiled(it_kv *kv, int on);
// Tests: at most `floats` dequantized floats per set of kv heads (0: 16 MB), so one head per set
// can be forced.
void kv_quant_set_deq_max(it_kv *kv, size_t floats);

// K+V bytes per token for one layer, scales and zero points included (per-channel keys: amortized
// over a full block, rounded up; the fp32 residual window and sinks are not counted). 0 on bad config.
// One (token, kv head) row of head_dim values in the per-token format of `bits` (32 fp32, 16 fp16,
// else groups of g: fp16 scale + min each, then the codes) — shared with the MiKV cache.
size_t kvq_row_bytes(int bits, int hd, int g);
void kvq_store_row(const float *x, int hd, int g, int bits, uint8_t *dst);
void kvq_load_row(const uint8_t *src, int hd, int g, int bits, float *out);

size_t kvq_bytes_per_token(const kvq_config *cfg, int n_kv_heads, int head_dim);

// The cache's bytes(kv, n) counts, per layer: min(n, sink) tokens of fp32 K and V, then the other
// n' = n - min(n, sink) tokens: values and per-token keys at their row size; for per-channel keys,
// floor(n'/residual)·residual tokens as quantized blocks plus the n' mod residual newest tokens as
// fp32 — the storage those n tokens actually occupy.

// ---- Internals exposed for tests and for the MiKV work that builds on them. ----

int kvq_bits(int type);   // 32, 16, 8, 4, 3, 2; 0 for an unknown type

// Quantizes x[0..n) (n ≤ KVQ_MAX_GROUP, n % 8 == 0) to bits ∈ {2,3,4,8}: packed codes (n·bits/8
// bytes) and fp16 d, m as documented above.
void kvq_quant_group(const float *x, int n, int bits, uint8_t *packed, uint16_t *d, uint16_t *m);
void kvq_dequant_group(const uint8_t *packed, int n, int bits, uint16_t d, uint16_t m, float *out);
void kvq_unpack(const uint8_t *packed, int n, int bits, float *codes);   // codes as floats

// Reads back cached row `pos` of `layer` as stored (which: 0 = K, 1 = V) into out (n_kv_heads ·
// head_dim floats). -1 if kv is not a kv_quant cache's or pos is not cached (per-channel keys) /
// out of range.
int kvq_dequant_row(const it_kv *kv, int layer, int pos, int which, float *out);

// Tokens of `layer` held quantized / in the fp32 residual window (per-token keys: all cached
// tokens count as quantized, residual 0). Sinks count in neither: quantized + residual + sinks
// cached = tokens cached.
int kvq_n_quantized(const it_kv *kv, int layer);
int kvq_n_residual(const it_kv *kv, int layer);

#endif
