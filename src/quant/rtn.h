// Round-to-nearest quantization of whole matrices, with an optional per-group clip search that
// minimizes the group's own weight MSE (no calibration data needed).
#ifndef IT_QUANT_RTN_H
#define IT_QUANT_RTN_H

#include <stdint.h>

#include "core/error.h"
#include "core/pool.h"
#include "quant/qformat.h"

#define RTN_CLIP_GRID 11   // clips 1, 0.95, ..., 0.5

// Fake-quantizes one group (s->group weights) with clip c into out; returns Σ (w - Q_c(w))².
// out is bit-identical to what the packed block of qf_quantize_group(s, w, c, ...) decodes to.
double rtn_fake_quant_group(const qf_spec *s, const float *w, float clip, float *out);

// The clip c ∈ {1, 0.95, ..., 1 - 0.05·(n_grid-1)} minimizing Σ (w - Q_c(w))² (ties keep the larger
// clip, so 1 wins unless something is strictly better). n_grid is clamped to [1, 20].
float rtn_search_clip_group(const qf_spec *s, const float *w, int n_grid);

// Quantizes W (n_out × n_in, n_in a multiple of G) into n_out rows of n_in/G blocks. clip_search 0:
// plain min/max RTN; clip_search 1: per-group clip from rtn_search_clip_group(RTN_CLIP_GRID).
// W_dequant_out (may be NULL, may equal W) receives the decoded weights. pool may be NULL.
int rtn_quantize_matrix(const qf_spec *s, const float *W, int64_t n_out, int64_t n_in, int clip_search,
                        void *packed, float *W_dequant_out, it_pool *pool, intact_error *err);

#endif
