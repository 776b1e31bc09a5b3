// The x86 SIMD matmul kernels, one per weight type and ISA. They all follow the it_matmul_fn
// contract of core/types.h; they must only be called when the CPU (and OS) supports the ISA,
// which kern_simd_matmul()/kern_matmul_kernel() in matmul_simd.c check.
#ifndef IT_KERNELS_MATMUL_SIMD_IMPL_H
#define IT_KERNELS_MATMUL_SIMD_IMPL_H

#include <stddef.h>
#include <stdint.h>

#define KERN_DECLARE_MATMUL(NAME)                                                                \
    void NAME(const void *w, size_t row_bytes, int64_t n_in, const float *x, int64_t ldx,      \
              int64_t nt, float *y, int64_t ldy, int64_t r0, int64_t r1)

// AVX2 + FMA + F16C (matmul_avx2.c).
KERN_DECLARE_MATMUL(kern_matmul_f32_avx2);
KERN_DECLARE_MATMUL(kern_matmul_f16_avx2);
KERN_DECLARE_MATMUL(kern_matmul_bf16_avx2);
KERN_DECLARE_MATMUL(kern_matmul_q8_0_avx2);

// AVX-512 F/BW/VL/DQ (matmul_avx512.c).
KERN_DECLARE_MATMUL(kern_matmul_f32_avx512);
KERN_DECLARE_MATMUL(kern_matmul_f16_avx512);
KERN_DECLARE_MATMUL(kern_matmul_bf16_avx512);
KERN_DECLARE_MATMUL(kern_matmul_q8_0_avx512);

// The kernel for a weight type and ISA ("ref", "avx2", "avx512"), or NULL when the type is unknown
// or the CPU/OS lacks the ISA. For tests and benchmarks that compare every variant; the engine
// uses the traits table (kern_simd_matmul) instead. Defined in matmul_simd.c.
#include "core/types.h"
it_matmul_fn kern_matmul_kernel(int type, const char *isa);

#endif
