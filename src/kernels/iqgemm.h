// Prefill (n > 3 tokens) with the decode GEMV's int8 activations (kernels/iqdec.h), for our integer
// weight formats. First step of issue 12 ("prefill as GEMM"): no new arithmetic — the per-ISA
// kern_dq kernels (VNNI / AVX2 / ref; bit-identical to kern_dq_ref) are driven cache-blocked: each
// thread takes its slice of rows (multiples of 16, as kern_matmul_dq_group) and walks it in blocks of
// KERN_DQG_ROWS rows, running every token over one block before the next, so a block's packed
// weights (16 rows x 2048 int4 = 18 KB) stay in L1 while all tokens pass (the driver is
// iqdec.c's threaded wrapper with a row block), instead of the whole slice
// being re-streamed from L2/L3 for each 3-token tile. Results equal kern_dq_ref bit for bit (the
// kernel defines each output from its own row and token only), so prefill and decode see identical
// activations and products.
#ifndef IT_KERNELS_IQGEMM_H
#define IT_KERNELS_IQGEMM_H

#include "kernels/iqdec.h"

enum { KERN_DQG_ROWS = 16 };

// As kern_matmul_dq_group (same preconditions), any number of tokens a->nt: each matrix through
// kern_dqg_best's GEMM if there is one, else the decode kernels over blocks of KERN_DQG_ROWS rows.
void kern_matmul_dqg_group(it_pool *pool, int n, const it_tensor *const *w, const kern_dq *a, float *const *y);

// The register-blocked GEMM (iqgemm_avx512vnni.c; same signature and result as kern_dq_ref, which
// is its reference): int2, int3 and int4 (every group size, sym and asym), AVX-512 VNNI + BITALG.
// "ref" gives kern_dq_ref, "avx512" the GEMM; NULL if the format is not covered (int8, not ours) or
// the CPU lacks the ISA.
kern_dq_fn kern_dqg_kernel(int type, const char *isa);
// The GEMM if it_cpu_isa() allows AVX-512 and the CPU and format qualify, else NULL.
kern_dq_fn kern_dqg_best(int type);
void kern_dqg_avx512vnni(const qf_spec *s, const void *w, size_t row_bytes, const kern_dq *a, float *y,
                         int64_t ldy, int64_t r0, int64_t r1);

#endif
