// Scalar reference of the integer-activation kernels (kernels/iqmatmul.h), any of the 24 formats.
// It is the definition the SIMD kernels must match bit for bit: int32 dot product per group, then
// acc = acc + d * (float)(isum - z * asum) in group order, then y = s_t * acc.
#include "kernels/iqmatmul.h"

void kern_iq_ref(const qf_spec *s, const void *w, size_t row_bytes, const kern_actq *a, float *y,
                 int64_t ldy, int64_t r0, int64_t r1) {
    const int G = s->group;
    const size_t bb = qf_block_bytes(s);
    const int64_t n_in = a->n_in, ng = n_in / G, nb = n_in / 32, nt = a->nt;
    uint8_t q[128];
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + (size_t)r * row_bytes;
        // y holds the running float acc of each token (a float store is exact), so each group is
        // unpacked once per row and not once per token.
        for (int64_t t = 0; t < nt; t++) y[t * ldy + r] = 0.0f;
        for (int64_t g = 0; g < ng; g++) {
            float d;
            int z;
            qf_unpack_group(s, row + (size_t)g * bb, &d, &z, q);
            for (int64_t t = 0; t < nt; t++) {
                const int8_t *at = a->q + t * n_in + g * G;
                int32_t isum = 0, asum = 0;
                for (int i = 0; i < G; i++) isum += (int32_t)q[i] * at[i];
                for (int j = 0; j < G / 32; j++) asum += a->sum32[t * nb + g * (G / 32) + j];
                float v = (float)(isum - z * asum);
                float p = d * v;
                float acc = y[t * ldy + r];
                acc = acc + p;
                y[t * ldy + r] = acc;
            }
        }
        for (int64_t t = 0; t < nt; t++) {
            float acc = y[t * ldy + r];
            y[t * ldy + r] = a->scale[t] * acc;
        }
    }
}
