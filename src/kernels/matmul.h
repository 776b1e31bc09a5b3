// Threaded matrix multiply over any weight type of the formats table (kernel per fmt_matmul): Y (nt, n_out) = X (nt, n_in) * W^T,
// W stored as n_out rows of n_in weights. Decode is nt = 1 (matrix-vector), prefill nt > 1.
#ifndef IT_KERNELS_MATMUL_H
#define IT_KERNELS_MATMUL_H

#include <stdint.h>
#include "core/pool.h"
#include "formats/formats.h"

// x: (nt, n_in) with row stride n_in; y: (nt, n_out) with row stride n_out.
void kern_matmul(it_pool *pool, const it_tensor *w, const float *x, int64_t nt, float *y);
// n matrices with the same input x and n_in (q/k/v; gate/up) in one dispatch: y[i] = x * w[i]^T.
void kern_matmul_group(it_pool *pool, int n, const it_tensor *const *w, const float *x, int64_t nt,
                       float *const *y);

#endif
