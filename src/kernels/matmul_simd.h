// SIMD kernel selection. Returns the fastest matmul kernel this CPU supports for a weight type,
// or NULL to keep the scalar reference. Honors kern_force_ref().
#ifndef IT_KERNELS_MATMUL_SIMD_H
#define IT_KERNELS_MATMUL_SIMD_H

#include "core/types.h"

it_matmul_fn kern_simd_matmul(int type);

#endif
