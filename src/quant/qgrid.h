// The quantization grid of a storage format: how RTN, GPTQ and AWQ turn floats into the codes and
// scales one format stores. One interface for intact's intN_gG formats and ggml's Q4_0, Q4_1, Q5_0,
// Q8_0, Q4_K and Q6_K, so every method quantizes onto exactly the values the file will hold.
//
// A stored block (g->block weights: G for the 32-block types and ours, 256 for the k-quants) has
// optional super-block parameters (qg_super: the k-quants' fp16 d and dmin), and is split into
// groups of g->group weights that share one (a, z, b): a weight with code q decodes to
//     a·(q − z) − b,  q in [qmin, qmax],
// computed in float exactly as the format's decoder computes it (a = d·sc for the k-quants, so the
// 6-bit / int8 sub-scale rounding and the fp16 rounding are inside a and b). GPTQ's error feedback
// uses qgrid_value, hence the exact stored value.
//
// The parameter rules (clip c in (0, 1] shrinks the group's range; c = 1 is plain min/max):
//   intN    rtn_group_params (quant/rtn.h).
//   q4_0    v = the group's weight of largest |w| (signed), d = fp16(c·v / −8), x = d·(q − 8), q 0..15
//           (ggml's choice: the extreme weight lands exactly on code 0).
//   q5_0    the same with d = fp16(c·v / −16), q 0..31.
//   q8_0    d = fp16(c·max|w| / 127), x = d·(q − 128), q 1..255 (stored as int8 q − 128).
//   q4_1    m = fp16(c·min), d = fp16((c·max − m) / 15), x = d·q + m. The range need not contain 0.
//   q4_K    super (256, at c = 1): per sub-block of 32, lo = min(0, min w), sc_s = (max − lo)/15,
//           mn_s = −lo; d = fp16(max sc_s / 63), dmin = fp16(max mn_s / 63). Group: lo, hi at clip c;
//           mn = clamp(round(−lo / dmin), 0, 63), b = dmin·mn; sc = clamp(round((hi + b)/15 / d), 1, 63)
//           (the scale covers the range left after the min's 6-bit rounding), a = d·sc, z = 0.
//   q6_K    super: per sub-block of 16, s_s = v_s / −32 (v_s signed extreme); d = fp16(max|s_s| / 127).
//           Group: sc = clamp(round(c·v / −32 / d), −128, 127), a = d·sc, z = 32, q 0..63.
// A group with a = 0 (all zero, or a scale below half a step of d) takes code z everywhere.
#ifndef IT_QUANT_QGRID_H
#define IT_QUANT_QGRID_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/qformat.h"

typedef struct qgrid {
    int type;             // storage type id (enum it_type or IT_QTYPE)
    qf_spec spec;         // intact's formats only
    int group;            // weights sharing (a, z, b)
    int block;            // weights per stored block (group, or 256 for the k-quants)
    int qmin, qmax;       // code range
    size_t block_bytes;
    const char *name;     // "q4_0", "int4_g128", ...
} qgrid;

typedef struct qg_super {
    float d, dmin;        // fp16-exact
} qg_super;

typedef struct qg_group {
    float a, b;           // x = a·(q − z) − b
    int z;
    int sc, mn;           // k-quants: stored sub-block scale (and min)
    uint16_t dh, mh;      // 32-block types: the stored fp16 d (and Q4_1's m)
} qg_group;

// From a type id: 0, or -1 when the type is not one the quantizers can write.
int qgrid_init(qgrid *g, int type);
// ggml's name ("q4_0", "q4_k" or "q4_K", case-insensitive) to a type id; -1 if not writable.
int qgrid_ggml_type(const char *name);
// A type the output head or the embedding can be stored as: "f32"/"f16"/"bf16", a writable ggml type
// (q8_0, q6_k, ...) or one of our integer formats by its `info` name (int8_g32, int4_g128_sym, ...).
// -1 for anything else.
int qgrid_head_type(const char *name);
int qgrid_from_spec(qgrid *g, const qf_spec *s);

// Super-block parameters from the g->block weights w (a no-op for types without them).
void qgrid_super(const qgrid *g, const float *w, qg_super *s);
// Parameters of one group (g->group weights w) at clip c, given its block's super parameters.
void qgrid_group(const qgrid *g, const qg_super *s, const float *w, float clip, qg_group *p);

// The code of w (round half to even, clamped; NaN maps to z).
static inline int qgrid_code(const qgrid *g, const qg_group *p, float w) {
    if (p->a == 0) return p->z;
    float r = nearbyintf((w + p->b) / p->a) + (float)p->z;
    if (r != r) return p->z;
    return r < (float)g->qmin ? g->qmin : r > (float)g->qmax ? g->qmax : (int)r;
}
// What code q decodes to: bit-identical to the format's decoder.
static inline float qgrid_value(const qg_group *p, int q) { return p->a * (float)(q - p->z) - p->b; }

// Writes one block from its parameters (p: block/group entries) and codes q (g->block of them).
void qgrid_pack(const qgrid *g, const qg_super *s, const qg_group *p, const uint8_t *q, void *blk);

// One block with per-group clips (NULL: all 1): super parameters at clip 1, then each group.
// Writes the block (blk may be NULL) and/or the decoded weights (out may be NULL); returns Σ (w − x)².
double qgrid_quantize_block(const qgrid *g, const float *w, const float *clips, void *blk, float *out);
// The clip in {1, 0.95, ..., 1 − 0.05·(n_grid − 1)} minimizing one group's Σ (w − x)² given its
// block's super parameters (ties keep the larger clip).
float qgrid_search_clip(const qgrid *g, const qg_super *s, const float *w, int n_grid);
// n weights (a multiple of g->block) decoded by the format's own decoder (fmt_get(type)->to_float).
void qgrid_dequantize_row(const qgrid *g, const void *blocks, float *w, int64_t n);
static inline size_t qgrid_row_bytes(const qgrid *g, int64_t n) { return (size_t)(n / g->block) * g->block_bytes; }

#endif
