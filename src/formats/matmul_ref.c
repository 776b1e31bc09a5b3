#include "formats/fmt_kernels.h"

#include <string.h>

#include "core/fp16.h"
#include "formats/formats.h"

void fmt_to_float_f32(const void *src, float *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void fmt_to_float_f16(const void *src, float *dst, int64_t n) {
    const uint16_t *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = it_fp16_to_f32(s[i]);
}

void fmt_to_float_bf16(const void *src, float *dst, int64_t n) {
    const uint16_t *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = it_bf16_to_f32(s[i]);
}

void fmt_to_float_q8_0(const void *src, float *dst, int64_t n) {
    const it_block_q8_0 *b = src;
    for (int64_t i = 0; i < n / IT_QK8_0; i++) {
        float d = it_fp16_to_f32(b[i].d);
        for (int j = 0; j < IT_QK8_0; j++) dst[i * IT_QK8_0 + j] = d * (float)b[i].qs[j];
    }
}

// Accumulates in double so the reference is the most accurate thing in the tree, not just a copy
// of the SIMD kernels' summation order.
#define DEFINE_REF(NAME, ELEM_EXPR)                                                              \
    void fmt_matmul_##NAME##_ref(const void *w, size_t row_bytes, int64_t n_in, const float *x, \
                                  int64_t ldx, int64_t nt, float *y, int64_t ldy, int64_t r0,    \
                                  int64_t r1) {                                                  \
        for (int64_t r = r0; r < r1; r++) {                                                      \
            const void *row = (const char *)w + (size_t)r * row_bytes;                          \
            for (int64_t t = 0; t < nt; t++) {                                                   \
                const float *xt = x + t * ldx;                                                   \
                double acc = 0;                                                                  \
                for (int64_t i = 0; i < n_in; i++) acc += (double)(ELEM_EXPR) * xt[i];           \
                y[t * ldy + r] = (float)acc;                                                     \
            }                                                                                    \
        }                                                                                        \
    }

DEFINE_REF(f32, ((const float *)row)[i])
DEFINE_REF(f16, it_fp16_to_f32(((const uint16_t *)row)[i]))
DEFINE_REF(bf16, it_bf16_to_f32(((const uint16_t *)row)[i]))
DEFINE_REF(q8_0, it_fp16_to_f32(((const it_block_q8_0 *)row)[i / IT_QK8_0].d) *
                     (float)((const it_block_q8_0 *)row)[i / IT_QK8_0].qs[i % IT_QK8_0])
