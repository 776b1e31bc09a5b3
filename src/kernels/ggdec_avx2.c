// AVX2 decode GEMV for ggml's Q8_0 / Q4_K / Q6_K (kernels/ggdec.h): maddubs + madd byte dots,
// bit-identical to ggdec_ref. The body is kernels/ggdec_simd.h.
#define GG_VNNI 0
#include "kernels/ggdec_simd.h"

void ggdec_avx2(int type, const void *w, size_t row_bytes, const kern_dq *a, float *y, int64_t ldy,
                int64_t r0, int64_t r1) {
    gg_dispatch(type, w, row_bytes, a, y, ldy, r0, r1);
}
