// AVX-512 VNNI decode GEMV for ggml's Q8_0 / Q4_K / Q6_K (kernels/ggdec.h): 512-bit chunks
// of 16 blocks (vpdpbusd, vpermt2d reduction trees; Q6_K's in kernels/ggdec_q6k512.h), a row's last
// group of 8 with 256-bit vpdpbusd; bit-identical to ggdec_ref. The body is kernels/ggdec_simd.h.
// Chosen only when cpuid reports AVX-512 (F, BW, VL, DQ) and VNNI (ggdec_kernel).
#define GG_VNNI 1
#include "kernels/ggdec_simd.h"

void ggdec_avx512vnni(int type, const void *w, size_t row_bytes, const kern_dq *a, float *y, int64_t ldy,
                      int64_t r0, int64_t r1) {
    gg_dispatch(type, w, row_bytes, a, y, ldy, r0, r1);
}
