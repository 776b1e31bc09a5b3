// Small elementwise and normalization ops of the forward pass. They are O(n*dim) next to the
// O(n*dim^2) matmuls, so they are plain C that the compiler vectorizes.
//
// Argument order, as in every kern_ function: a separate output comes last (kern_matmul's y,
// kern_actq_fake's out); an array updated in place comes first.
#ifndef IT_KERNELS_OPS_H
#define IT_KERNELS_OPS_H

#include <stddef.h>

// out (n, dim) = x / sqrt(mean(x^2) + eps) * w, row by row.
void kern_rmsnorm(const float *x, const float *w, int n, int dim, float eps, float *out);
// cs (n, half, 2): cos/sin of (pos0 + t) * scale * theta[i] for t < n, i < half.
void kern_rope_table(int pos0, int n, const double *theta, int half, float scale, float *cs);
// Rotates x (n, n_heads*head_dim) in place: style 0 pairs (2i, 2i+1), style 1 pairs (i, i+half).
void kern_rope(float *x, int n, int n_heads, int head_dim, const float *cs, int style);
void kern_add(float *restrict x, const float *restrict y, size_t n);   // x and y must not overlap
// g = silu(g) * u
void kern_swiglu(float *g, const float *u, size_t n);

#endif
