// Portable scalar kernels: the reference every SIMD kernel is tested against.
#ifndef IT_KERNELS_MATMUL_REF_H
#define IT_KERNELS_MATMUL_REF_H

#include <stdint.h>
#include <stddef.h>

void kern_to_float_f32(const void *src, float *dst, int64_t n);
void kern_to_float_f16(const void *src, float *dst, int64_t n);
void kern_to_float_bf16(const void *src, float *dst, int64_t n);
void kern_to_float_q8_0(const void *src, float *dst, int64_t n);

void kern_matmul_f32_ref(const void *w, size_t row_bytes, int64_t n_in, const float *x, int64_t ldx,
                         int64_t nt, float *y, int64_t ldy, int64_t r0, int64_t r1);
void kern_matmul_f16_ref(const void *w, size_t row_bytes, int64_t n_in, const float *x, int64_t ldx,
                         int64_t nt, float *y, int64_t ldy, int64_t r0, int64_t r1);
void kern_matmul_bf16_ref(const void *w, size_t row_bytes, int64_t n_in, const float *x, int64_t ldx,
                          int64_t nt, float *y, int64_t ldy, int64_t r0, int64_t r1);
void kern_matmul_q8_0_ref(const void *w, size_t row_bytes, int64_t n_in, const float *x, int64_t ldx,
                          int64_t nt, float *y, int64_t ldy, int64_t r0, int64_t r1);

#endif
