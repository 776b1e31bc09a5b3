// Scalar reference kernels for the integer formats, and the run-time choice of their SIMD kernels.
#include "kernels/qmatmul.h"

#include <string.h>

#include "kernels/matmul.h"
#include "kernels/matmul_simd.h"
#include "kernels/matmul_simd_impl.h"

// Exactly sum over groups of d * sum_i (q_i - z) * x_i, accumulated in double, so the reference
// is independent of every SIMD kernel's summation order and of the Σx factoring they may use.
void kern_qmatmul_ref(const qf_spec *s, const void *w, size_t row_bytes, int64_t n_in,
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
    static void ref_i##B##_g##G##_s##S(const void *w, size_t rb, int64_t n, const float *x,     \
                                       int64_t ldx, int64_t nt, float *y, int64_t ldy,           \
                                       int64_t r0, int64_t r1) {                                 \
        static const qf_spec spec = {B, G, S};                                                   \
        kern_qmatmul_ref(&spec, w, rb, n, x, ldx, nt, y, ldy, r0, r1);                           \
    }
QF_FOR_EACH_FORMAT(QF_REF)

static it_matmul_fn ref_get(const qf_spec *s) {
#define QF_REF_CASE(B, G, S) \
    if (s->bits == B && s->group == G && s->sym == S) return ref_i##B##_g##G##_s##S;
    QF_FOR_EACH_FORMAT(QF_REF_CASE)
#undef QF_REF_CASE
    return NULL;
}

it_matmul_fn kern_qmatmul_kernel(int type, const char *isa) {
    qf_spec s;
    if (!isa || qf_spec_of(type, &s)) return NULL;
    if (!strcmp(isa, "ref")) return ref_get(&s);
    if (!strcmp(isa, "avx2"))
        return kern_cpu_has_avx2() ? kern_qmatmul_avx2_get(s.bits, s.group, s.sym) : NULL;
    if (!strcmp(isa, "avx512"))
        return kern_cpu_has_avx512() ? kern_qmatmul_avx512_get(s.bits, s.group, s.sym) : NULL;
    return NULL;
}

// Follows the float kernels' choice rather than re-reading INTACT_ISA / kern_force_ref (their
// state is private to matmul_simd.c): whichever ISA kern_simd_matmul picked for F16 is the cap,
// and we take the widest kernel up to it (AVX-512 wins on the target for every format, as it does
// for the float types).
it_matmul_fn kern_simd_qmatmul(int type) {
    it_matmul_fn f16 = kern_simd_matmul(IT_TYPE_F16);
    if (!f16) return NULL;
    if (f16 == kern_matmul_kernel(IT_TYPE_F16, "avx512")) {
        it_matmul_fn fn = kern_qmatmul_kernel(type, "avx512");
        if (fn) return fn;
    }
    return kern_qmatmul_kernel(type, "avx2");
}
