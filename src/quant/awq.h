// AWQ (Lin et al., reference mit-han-lab/llm-awq) search steps on plain arrays: the per-input-channel
// scale search (auto_scale.py) and the per-group clip search (auto_clip.py). Applying the result is
// the caller's job: with the chosen s, store Q(W·diag(s)) and fold 1/s into whatever produces the
// input (the RMSNorm weight for q/k/v and gate/up, the up rows for down), and run the clip search on
// the scaled weights W·diag(s) with the scaled inputs X·diag(1/s), as the reference does.
//
// Simplifications versus the reference, all deliberate:
// * The scale search loss is measured on the outputs of the linear layers themselves,
//   Σ_k ‖X·W'_kᵀ − X·W_kᵀ‖² / numel over the matrices sharing X, instead of on the output of the
//   enclosing block (the whole attention or MLP), which would need the model's forward pass here.
// * Clip candidates use qformat's clip semantics (lo = c·min, hi = c·max of the group; symmetric
//   a = c·max|w|) rather than the reference's symmetric clamp to ±c·max|w| followed by min/max.
// * At most AWQ_MAX_TOKENS rows of X are used by both searches, picked evenly (row ⌊k·nt/ns⌋), so
//   the cost is bounded and deterministic; the reference also subsamples 512 tokens for clipping.
#ifndef IT_QUANT_AWQ_H
#define IT_QUANT_AWQ_H

#include <stdint.h>

#include "core/error.h"
#include "core/pool.h"
#include "formats/qformat.h"

#define AWQ_N_GRID 20       // α = i/20, i = 0..19 (reference n_grid)
#define AWQ_CLIP_GRID 10    // clip = 1 - i/20, i = 0..9 (reference n_grid 20, max_shrink 0.5)
#define AWQ_MAX_TOKENS 512

// ---------------------------------------------------------------- scale search
typedef struct awq_scale_result {
    int best;                   // index into the grid; alpha = best / AWQ_N_GRID
    float alpha;
    double loss[AWQ_N_GRID];    // loss at every α (loss[0] is plain RTN of W)
} awq_scale_result;

// n_mats matrices W[k] (n_out[k] × n_in, n_in a multiple of G) share the input X (nt × n_in).
// For each α: s = max(mean_abs^α, 1e-4), s /= sqrt(max(s)·min(s)), W'_k = Q(W_k·diag(s))·diag(1/s),
// loss = Σ_k ‖X(W'_k − W_k)ᵀ‖² / (ns·Σ n_out[k]). The α with the smallest loss wins (ties: smaller
// α). Writes its s to scales (n_in floats). pool may be NULL. Returns 0 or -1.
int awq_search_scale(const qf_spec *s, const float *const *W, const int64_t *n_out, int n_mats, int64_t n_in,
                     const float *X, int64_t nt, const float *mean_abs, float *scales, awq_scale_result *res,
                     it_pool *pool, intact_error *err);

// ---------------------------------------------------------------- clip search
// For every (row, group) of W (n_out × n_in), the clip c ∈ {1, 0.95, ..., 0.55} minimizing
// Σ_t (X_g[t]·(Q_c(W_g) − W_g))² over the (subsampled) rows of X (ties: larger clip). Writes
// clips[n_out · n_in/G]. pool may be NULL. Returns 0 or -1.
int awq_search_clip(const qf_spec *s, const float *W, int64_t n_out, int64_t n_in, const float *X, int64_t nt,
                    float *clips, it_pool *pool, intact_error *err);

// Quantizes W with per-(row, group) clips (NULL: all 1) into n_out rows of n_in/G blocks;
// W_dequant_out (may be NULL or W) receives the decoded weights.
int awq_quantize_matrix(const qf_spec *s, const float *W, int64_t n_out, int64_t n_in, const float *clips,
                        void *packed, float *W_dequant_out, it_pool *pool, intact_error *err);

// The three on any writable grid (quant/qgrid.h): shapes in whole blocks, clips per group (g->group
// weights; each group's clip is searched against its block's super parameters taken at clip 1).
struct qgrid;
int awq_search_scale_grid(const struct qgrid *g, const float *const *W, const int64_t *n_out, int n_mats,
                          int64_t n_in, const float *X, int64_t nt, const float *mean_abs, float *scales,
                          awq_scale_result *res, it_pool *pool, intact_error *err);
int awq_search_clip_grid(const struct qgrid *g, const float *W, int64_t n_out, int64_t n_in, const float *X,
                         int64_t nt, float *clips, it_pool *pool, intact_error *err);
int awq_quantize_matrix_grid(const struct qgrid *g, const float *W, int64_t n_out, int64_t n_in, const float *clips,
                             void *packed, float *W_dequant_out, it_pool *pool, intact_error *err);

#endif
