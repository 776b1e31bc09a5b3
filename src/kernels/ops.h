// Small elementwise and normalization ops of the forward pass. They are O(n*dim) next to the
// O(n*dim^2) matmuls, so they are plain C that the compiler vectorizes, except RMSNorm and SwiGLU,
// which have AVX2 twins (ops_avx2.c): in decode they run on one thread while the others wait, and
// SwiGLU's libm expf per element alone was 2% of a step. GCC 12 at -O2 vectorizes neither a double
// reduction (no reassociation) nor a loop of unknown trip count.
//
// Argument order, as in every kern_ function: a separate output comes last (kern_matmul's y,
// kern_actq_fake's out); an array updated in place comes first.
#ifndef IT_KERNELS_OPS_H
#define IT_KERNELS_OPS_H

#include <stddef.h>

// out (n, dim) = x / sqrt(mean(x^2) + eps) * w, row by row; the sum of squares in double. The AVX2
// kernel sums in another order (16 partial sums), so the two agree to rounding, not bit for bit.
void kern_rmsnorm(const float *x, const float *w, int n, int dim, float eps, float *out);
void kern_rmsnorm_ref(const float *x, const float *w, int n, int dim, float eps, float *out);
void kern_rmsnorm_avx2(const float *x, const float *w, int n, int dim, float eps, float *out);   // AVX2 CPUs only
// cs (n, half, 2): cos/sin of (pos0 + t) * scale * theta[i] for t < n, i < half.
void kern_rope_table(int pos0, int n, const double *theta, int half, float scale, float *cs);
// Rotates x (n, n_heads*head_dim) in place: style 0 pairs (2i, 2i+1), style 1 pairs (i, i+half).
void kern_rope(float *x, int n, int n_heads, int head_dim, const float *cs, int style);
void kern_add(float *restrict x, const float *restrict y, size_t n);   // x and y must not overlap
// g = silu(g) * u = g / (1 + exp(-g)) * u. kern_swiglu takes the AVX2 kernel where the CPU (and
// INTACT_ISA) allow, else the reference. They differ only in exp: libm's expf in the reference,
// core/simd.h's polynomial (<= 2 ulp) in AVX2, so results agree to a few ulp, not bit for bit; the
// AVX2 kernel is lane-wise (each element's result is the same wherever it sits in g).
void kern_swiglu(float *g, const float *u, size_t n);
void kern_swiglu_ref(float *g, const float *u, size_t n);
void kern_swiglu_avx2(float *g, const float *u, size_t n);   // AVX2 + FMA CPUs only

#endif
