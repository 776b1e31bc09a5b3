// Prefill (n > 3 tokens) with the decode GEMV's int8 activations (kernels/iqdec.h), for our integer
// weight formats (issue 12, "prefill as GEMM"). int2 / int3 / int4 / int8 on AVX-512 VNNI + BITALG run a
// register-blocked GEMM (iqgemm_avx512vnni.c): each packed weight chunk is unpacked once into
// registers, in an order where every vpdpbusd lane belongs to one 32-block, for a tile of 8 tokens
// (activations in the matching tiled order, kern_dq.qg). Everything else (AVX2-only CPUs)
// runs the per-ISA decode kernels cache-blocked: each thread walks its rows (multiples of 16) in
// blocks of KERN_DQG_ROWS rows, every token over one block before the next, so the block's packed
// weights stay in L1. Either way each output equals kern_dq_ref bit for bit (the reference defines
// each output from its own row and token only; the tiling is across outputs), so prefill and decode
// see identical activations and products.
#ifndef IT_KERNELS_IQGEMM_H
#define IT_KERNELS_IQGEMM_H

#include "kernels/iqdec.h"

enum { KERN_DQG_ROWS = 16 };

// As kern_matmul_dq_group (same preconditions), any number of tokens a->nt: each matrix through
// kern_dqg_best's GEMM if there is one, else the decode kernels over blocks of KERN_DQG_ROWS rows.
void kern_matmul_dqg_group(it_pool *pool, int n, const it_tensor *const *w, const kern_dq *a, float *const *y);

// The register-blocked GEMM (iqgemm_avx512vnni.c; same signature and result as kern_dq_ref, which
// is its reference): int2, int3, int4 and int8 (every group size, sym and asym), AVX-512 VNNI + BITALG.
// "ref" gives kern_dq_ref, "avx512" the GEMM; NULL if the format is not covered (int8, not ours) or
// the CPU lacks the ISA.
kern_dq_fn kern_dqg_kernel(int type, const char *isa);
// The GEMM if it_cpu_isa() allows AVX-512 and the CPU and format qualify, else NULL.
kern_dq_fn kern_dqg_best(int type);
void kern_dqg_avx512vnni(const qf_spec *s, const void *w, size_t row_bytes, const kern_dq *a, float *y,
                         int64_t ldy, int64_t r0, int64_t r1);
// The AMX GEMM (iqgemm_amx.c) for every one of our formats (a kern_dq without qa goes to
// kern_dqg_avx512vnni). Same result as kern_dq_ref, bit for bit.
void kern_dqg_amx(const qf_spec *s, const void *w, size_t row_bytes, const kern_dq *a, float *y, int64_t ldy,
                  int64_t r0, int64_t r1);
// 1 if the AMX GEMM may run: cpuid AMX-TILE + AMX-INT8 with VNNI + BITALG, the OS granted this process
// the tile data state (arch_prctl ARCH_REQ_XCOMP_PERM, asked once), and it_cpu_isa() allows AVX-512.
// INTACT_AMX=0 turns it off (read once).
int kern_dqa_usable(void);

#endif
