// Scalar reference kernels for the integer formats (one per format for the formats table).
#include "formats/fmt_kernels.h"

// Exactly sum over groups of d * sum_i (q_i - z) * x_i, accumulated in double, so the reference
// is independent of every SIMD kernel's summation order and of the Σx factoring they may use.
void fmt_qmatmul_ref(const qf_spec *s, const void *w, size_t row_bytes, int64_t n_in,
                      const float *x, int64_t ldx, int64_t nt, float *y, int64_t ldy, int64_t r0,
                      int64_t r1) {
    const int G = s->group;
    const size_t bb = qf_block_bytes(s);
    uint8_t q[128];
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + (size_t)r * row_bytes;
        for (int64_t t = 0; t < nt; t++) {
            const float *xt = x + t * ldx;
            double acc = 0;
            for (int64_t g = 0; g < n_in / G; g++) {
                float d;
                int z;
                qf_unpack_group(s, row + (size_t)g * bb, &d, &z, q);
                double ga = 0;
                for (int i = 0; i < G; i++) ga += (double)(q[i] - z) * xt[g * G + i];
                acc += (double)d * ga;
            }
            y[t * ldy + r] = (float)acc;
        }
    }
}

#define QF_REF(B, G, S)                                                                          \
    void fmt_qmatmul_i##B##_g##G##_s##S##_ref(const void *w, size_t rb, int64_t n, const float *x, \
                                              int64_t ldx, int64_t nt, float *y, int64_t ldy,    \
                                              int64_t r0, int64_t r1) {                          \
        static const qf_spec spec = {B, G, S};                                                   \
        fmt_qmatmul_ref(&spec, w, rb, n, x, ldx, nt, y, ldy, r0, r1);                            \
    }
QF_FOR_EACH_FORMAT(QF_REF)
