// The kernels behind the formats table (formats.c): dequantizers and matmul kernels, one per
// format and ISA, all following the it_matmul_fn contract of formats.h. The SIMD ones must only be
// called when the CPU (and OS) supports their ISA; fmt_matmul()/fmt_kernel() check that.
//
// Files: matmul_ref.c (scalar f32/f16/bf16/q8_0), ggml_ref.c (scalar q4_0 ... q8_K), ggml_avx2.c (q4_0, q4_K), matmul_avx2.c, matmul_avx512.c (their SIMD
// twins), qmatmul_ref.c (scalar, our integer formats), qmatmul_avx2.c, qmatmul_avx512.c.
#ifndef IT_FORMATS_FMT_KERNELS_H
#define IT_FORMATS_FMT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "formats/formats.h"
#include "formats/qformat.h"

#define FMT_DECLARE_MATMUL(NAME)                                                                 \
    void NAME(const void *w, size_t row_bytes, int64_t n_in, const float *x, int64_t ldx,      \
              int64_t nt, float *y, int64_t ldy, int64_t r0, int64_t r1)

// ---- ggml's float and Q8_0 formats ----
void fmt_to_float_f32(const void *src, float *dst, int64_t n);
void fmt_to_float_f16(const void *src, float *dst, int64_t n);
void fmt_to_float_bf16(const void *src, float *dst, int64_t n);
void fmt_to_float_q8_0(const void *src, float *dst, int64_t n);

// Scalar references, accumulating in double (matmul_ref.c).
FMT_DECLARE_MATMUL(fmt_matmul_f32_ref);
FMT_DECLARE_MATMUL(fmt_matmul_f16_ref);
FMT_DECLARE_MATMUL(fmt_matmul_bf16_ref);
FMT_DECLARE_MATMUL(fmt_matmul_q8_0_ref);

// AVX2 + FMA + F16C (matmul_avx2.c).
FMT_DECLARE_MATMUL(fmt_matmul_f32_avx2);
FMT_DECLARE_MATMUL(fmt_matmul_f16_avx2);
FMT_DECLARE_MATMUL(fmt_matmul_bf16_avx2);
FMT_DECLARE_MATMUL(fmt_matmul_q8_0_avx2);

// AVX-512 F/BW/VL/DQ/BF16 (matmul_avx512.c).
FMT_DECLARE_MATMUL(fmt_matmul_f32_avx512);
FMT_DECLARE_MATMUL(fmt_matmul_f16_avx512);
FMT_DECLARE_MATMUL(fmt_matmul_bf16_avx512);
FMT_DECLARE_MATMUL(fmt_matmul_q8_0_avx512);

// ---- ggml's other block formats (ggml_ref.c): scalar, dequantize a block and dot in double ----
#define FMT_DECLARE_GGML(T)                                                                      \
    void fmt_to_float_##T(const void *src, float *dst, int64_t n);                              \
    FMT_DECLARE_MATMUL(fmt_matmul_##T##_ref);
FMT_DECLARE_GGML(q4_0)
FMT_DECLARE_GGML(q4_1)
FMT_DECLARE_GGML(q5_0)
FMT_DECLARE_GGML(q5_1)
FMT_DECLARE_GGML(q2_K)
FMT_DECLARE_GGML(q3_K)
FMT_DECLARE_GGML(q4_K)
FMT_DECLARE_GGML(q5_K)
FMT_DECLARE_GGML(q6_K)
FMT_DECLARE_GGML(q8_K)
#undef FMT_DECLARE_GGML
// AVX2 + FMA twins (ggml_avx2.c); the other types use the reference on every ISA for now.
FMT_DECLARE_MATMUL(fmt_matmul_q4_0_avx2);
FMT_DECLARE_MATMUL(fmt_matmul_q4_K_avx2);

// ---- our group-wise integer formats (qformat.h) ----
// The double-accumulating scalar kernel for any spec: y = sum over groups of d * sum (q_i - z) x_i.
void fmt_qmatmul_ref(const qf_spec *s, const void *w, size_t row_bytes, int64_t n_in,
                     const float *x, int64_t ldx, int64_t nt, float *y, int64_t ldy, int64_t r0,
                     int64_t r1);

// One dequantizer and one kernel per format and ISA: fmt_to_float_i4_g128_s0,
// fmt_qmatmul_i4_g128_s0_ref, fmt_qmatmul_i4_g128_s0_avx2, fmt_qmatmul_i4_g128_s0_avx512, ...
#define FMT_DECLARE_QF(B, G, S)                                                                  \
    void fmt_to_float_i##B##_g##G##_s##S(const void *src, float *dst, int64_t n);               \
    FMT_DECLARE_MATMUL(fmt_qmatmul_i##B##_g##G##_s##S##_ref);                                    \
    FMT_DECLARE_MATMUL(fmt_qmatmul_i##B##_g##G##_s##S##_avx2);                                   \
    FMT_DECLARE_MATMUL(fmt_qmatmul_i##B##_g##G##_s##S##_avx512);
QF_FOR_EACH_FORMAT(FMT_DECLARE_QF)
#undef FMT_DECLARE_QF

#endif
