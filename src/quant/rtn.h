// Round-to-nearest quantization of whole matrices, with an optional per-group clip search that
// minimizes the group's own weight MSE (no calibration data needed).
#ifndef IT_QUANT_RTN_H
#define IT_QUANT_RTN_H

#include <math.h>
#include <stdint.h>

#include "core/error.h"
#include "core/pool.h"
#include "formats/qformat.h"

// The producer side of the integer formats of formats/qformat.h (which only describes storage).
// Quantization parameters follow the GPTQ/AWQ reference quantizer (per group, optional clip c ≤ 1):
//   asymmetric: lo = min(c*min(w), 0), hi = max(c*max(w), 0) (the range holds 0, as in GPTQ's
//               quantizer); d = (hi - lo) / (2^b - 1); z = clamp(round(-lo / d), 0, 2^b-1)
//   symmetric:  a = c*max|w|;  d = 2a / (2^b - 1); z = 2^(b-1)
//   (d == 0, i.e. a constant-zero group, uses d = 1 so every q is z.) d is rounded to fp16 FIRST and
//   the rounded value is used to compute q = clamp(round(w / d) + z, 0, 2^b - 1), so a packed weight
//   and its fake-quantized float twin are bit-identical.

// Group parameters for n = s->group weights with clip ratio c in (0, 1].
void rtn_group_params(const qf_spec *s, const float *w, float clip, float *d, int *z);
// q for one weight given the (fp16-rounded) parameters.
// Rounds half to even, as torch.round in the GPTQ/AWQ references. NaN maps to z (0 after dequant).
static inline int rtn_quantize_value(float w, float d, int z, int bits) {
    float r = nearbyintf(w / d) + (float)z;
    if (r != r) return z;
    float maxq = (float)((1 << bits) - 1);
    return r < 0 ? 0 : r > maxq ? (int)maxq : (int)r;
}
// Quantizes one group with its own min/max params (RTN) at clip c; writes one block.
void rtn_quantize_group(const qf_spec *s, const float *w, float clip, void *block);
// Quantizes a row of n weights (n multiple of G), RTN at clip c.
void rtn_quantize_row(const qf_spec *s, const float *w, int64_t n, float clip, void *blocks);

#define RTN_CLIP_GRID 11   // clips 1, 0.95, ..., 0.5

// Fake-quantizes one group (s->group weights) with clip c into out; returns Σ (w - Q_c(w))².
// out is bit-identical to what the packed block of rtn_quantize_group(s, w, c, ...) decodes to.
double rtn_fake_quant_group(const qf_spec *s, const float *w, float clip, float *out);

// The clip c ∈ {1, 0.95, ..., 1 - 0.05·(n_grid-1)} minimizing Σ (w - Q_c(w))² (ties keep the larger
// clip, so 1 wins unless something is strictly better). n_grid is clamped to [1, 20].
float rtn_search_clip_group(const qf_spec *s, const float *w, int n_grid);

// Quantizes W (n_out × n_in, n_in a multiple of G) into n_out rows of n_in/G blocks. clip_search 0:
// plain min/max RTN; clip_search 1: per-group clip from rtn_search_clip_group(RTN_CLIP_GRID).
// W_dequant_out (may be NULL, may equal W) receives the decoded weights. pool may be NULL.
int rtn_quantize_matrix(const qf_spec *s, const float *W, int64_t n_out, int64_t n_in, int clip_search,
                        void *packed, float *W_dequant_out, it_pool *pool, intact_error *err);
// The same on any writable grid (quant/qgrid.h: ours or ggml's); n_in a multiple of g->block. With
// clip_search, each group's clip is searched given its block's super parameters (taken at clip 1).
struct qgrid;
int rtn_quantize_matrix_grid(const struct qgrid *g, const float *W, int64_t n_out, int64_t n_in, int clip_search,
                             void *packed, float *W_dequant_out, it_pool *pool, intact_error *err);

#endif
