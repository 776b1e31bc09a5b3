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

// As kern_matmul_dq_group (same preconditions), any number of tokens a->nt.
void kern_matmul_dqg_group(it_pool *pool, int n, const it_tensor *const *w, const kern_dq *a, float *const *y);

#endif
