// Matmul kernels for the group-wise integer formats of quant/qformat.h (it_matmul_fn contract of
// core/types.h). Scalar references in qmatmul_ref.c, SIMD kernels in qmatmul_avx2.c and
// qmatmul_avx512.c; all of them read the packed blocks in place.
#ifndef IT_KERNELS_QMATMUL_H
#define IT_KERNELS_QMATMUL_H

#include <stddef.h>
#include <stdint.h>

#include "core/types.h"
#include "quant/qformat.h"

// X(bits, group, sym) for each of the 24 formats, to instantiate one function per format.
#define QF_FOR_EACH_GROUP(X, B, S) X(B, 32, S) X(B, 64, S) X(B, 128, S)
#define QF_FOR_EACH_SYM(X, B) QF_FOR_EACH_GROUP(X, B, 0) QF_FOR_EACH_GROUP(X, B, 1)
#define QF_FOR_EACH_FORMAT(X) \
    QF_FOR_EACH_SYM(X, 2) QF_FOR_EACH_SYM(X, 3) QF_FOR_EACH_SYM(X, 4) QF_FOR_EACH_SYM(X, 8)

// The double-accumulating scalar kernel for any spec: y = sum over groups of d * sum (q_i - z) x_i.
void kern_qmatmul_ref(const qf_spec *s, const void *w, size_t row_bytes, int64_t n_in,
                      const float *x, int64_t ldx, int64_t nt, float *y, int64_t ldy, int64_t r0,
                      int64_t r1);

// The kernel for one of our type ids and an ISA ("ref", "avx2", "avx512"); NULL when the type is
// not ours or the CPU/OS lacks the ISA. For tests and benchmarks (qmatmul_ref.c).
it_matmul_fn kern_qmatmul_kernel(int type, const char *isa);
// The fastest kernel allowed here (same rules as kern_simd_matmul: INTACT_ISA, kern_force_ref,
// CPU support), or NULL to keep the scalar reference.
it_matmul_fn kern_simd_qmatmul(int type);

// Per-ISA lookups; only call after checking kern_cpu_has_avx2()/kern_cpu_has_avx512().
it_matmul_fn kern_qmatmul_avx2_get(int bits, int group, int sym);
it_matmul_fn kern_qmatmul_avx512_get(int bits, int group, int sym);

#endif
