// GPTQ (Frantar et al., reference IST-DASLab/gptq) for intact's group-wise integer formats.
//
// Per linear layer: accumulate H = 2/N·Σ x xᵀ over the calibration inputs x of the layer
// (gptq_hessian_*), then gptq_quantize() rounds W column by column, feeding each column's rounding
// error back into the not-yet-quantized columns through the upper Cholesky factor of H⁻¹, so the
// layer output X·Wᵀ (not W itself) stays close to the original.
//
// Choices that differ from, or pin down, the reference:
// * Group parameters (act_order = 0) come from the *fully error-updated* weights of the group when
//   the loop reaches the group's first column. The reference reads them from its lazily-updated
//   copy, which misses the updates of earlier columns of the same block when the group size is below
//   the block size; ours makes the result independent of the block size (the lazy batching is only
//   an optimization). The block size is rounded up to a multiple of the group size so a group never
//   straddles two blocks.
// * act_order = 1: the reference permutes columns and lets groups follow the permuted order, which
//   our format (groups of G consecutive natural columns sharing one d, z) cannot store. We use the
//   reference's static_groups = True variant instead: d, z of every natural group are computed up
//   front from the original W (after zeroing dead columns), then columns are processed in descending
//   diag(H) order (ties by index), each quantized with its natural group's d, z.
// * The upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU) is computed as the inverse of the "reversed"
//   Cholesky factor of H (H = V·Vᵀ, V upper, from a Cholesky of H with rows and columns reversed):
//   the same matrix as cholesky(cholesky_inverse(cholesky(H)), upper) by uniqueness, with half the
//   work. All factorizations run in double precision; the column loop runs in float as the reference.
// * Sample counting is per input row (token), whereas the reference counts batch entries; the
//   result is unaffected (GPTQ is invariant to the scale of H, damping is relative).
#ifndef IT_QUANT_GPTQ_H
#define IT_QUANT_GPTQ_H

#include <stdint.h>

#include "core/error.h"
#include "core/pool.h"
#include "formats/qformat.h"

// ---------------------------------------------------------------- Hessian accumulator
typedef struct gptq_hessian {
    int64_t n_in;
    int64_t n_samples;   // rows fed so far
    double *H;           // n_in × n_in, row-major, symmetric; always 2/n_samples · Σ x xᵀ
} gptq_hessian;

int gptq_hessian_init(gptq_hessian *h, int64_t n_in, intact_error *err);
void gptq_hessian_free(gptq_hessian *h);
// Adds nt input rows X (nt × n_in, row-major). O(nt·n_in²), threaded over rows of H; pool may be NULL.
void gptq_hessian_add(gptq_hessian *h, const float *X, int64_t nt, it_pool *pool);

// ---------------------------------------------------------------- quantization
typedef struct gptq_opts {
    double damp;      // fraction of mean(diag H) added to the diagonal (reference percdamp); 0.01
    int block;        // lazy-update block size in columns (rounded up to a multiple of G); 128
    int act_order;    // 0/1: process columns in descending diag(H) with static groups (see above)
} gptq_opts;

gptq_opts gptq_default_opts(void);

// Quantizes W (n_out × n_in, row-major; n_in a multiple of s->group) with the Hessian H (n_in × n_in,
// not modified). Writes n_out rows of n_in/G blocks to `packed` (row r at r·(n_in/G)·block_bytes) and
// overwrites W with the dequantized blocks (bit-identical to qf_dequantize_row of `packed`).
// If H + damping is not positive definite, retries with 10×, 100×, 1000× the damping, then fails.
// opts may be NULL (defaults); pool may be NULL (serial). Returns 0 or -1 with err filled.
int gptq_quantize(const qf_spec *s, float *W, int64_t n_out, int64_t n_in, const double *H,
                  const gptq_opts *o, void *packed, it_pool *pool, intact_error *err);

// The same on any writable grid (quant/qgrid.h): n_in a multiple of g->block; the lazy-update
// block is rounded up to a multiple of g->block. A block's super parameters (k-quants: fp16 d, dmin)
// are chosen from the error-updated weights when the loop reaches the block's first column, each
// group's (sub-scale, min) likewise at its first column, against those super parameters.
struct qgrid;
int gptq_quantize_grid(const struct qgrid *g, float *W, int64_t n_out, int64_t n_in, const double *H,
                       const gptq_opts *o, void *packed, it_pool *pool, intact_error *err);

// ---------------------------------------------------------------- linear algebra (exposed for tests)
// In-place Cholesky A = L·Lᵀ of the n × n row-major SPD matrix A: the lower triangle becomes L, the
// strict upper triangle is zeroed. Returns 0, or -1 if A is not (numerically) positive definite.
int gptq_cholesky(double *A, int64_t n, it_pool *pool);
// U (upper, row-major n × n, strict lower triangle zero) with H⁻¹ = Uᵀ·U, from the SPD matrix H
// (damping already applied; H is overwritten with scratch). Returns 0, or -1 if not positive definite.
int gptq_hinv_upper(double *H, int64_t n, double *U, it_pool *pool);

#endif
