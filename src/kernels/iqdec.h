// Decode GEMV with int8 activations for our integer weight formats (formats/qformat.h, all 24):
// the default product of a quantized linear at 1..3 tokens (forward/linear.c).
//
// Why: decode is bandwidth bound, and unpacking each weight to float costs more shuffle/FMA work
// per byte than the memory system leaves time for (int4 g128 streamed at 0.43 of bandwidth). Here
// the activation row is quantized once per matmul to int8 and a weight costs a mask or shift in the
// byte domain plus a quarter of a vpdpbusd (AVX-512 VNNI) or of a maddubs (AVX2).
//
// Activation quantization: per 32-block (as ggml's Q8_0), not per row: one outlier channel then
// costs precision only in its own 32 inputs, and the per-block float step is cheap next to the
// stream (one FMA lane per 32 weights). For block b of a row x: amax = max|x| (NaN skipped),
// s_b = amax / 127, inv = amax > 0 ? 127 / amax : 0, q = round_even(clamp(x * inv)) where
// clamp(v) = max'(min'(v, 127), -127), min'(v, c) = v < c ? v : c, max'(v, c) = v > c ? v : c
// (so a NaN x*inv gives 127, as the SIMD min/max do). sum_b = sum of the block's q.
//
// The result is defined exactly, so every ISA's kernel is bit-identical to the reference (tests
// compare with memcmp): for each token and row, 16 float accumulators f[0..16) start at 0; block b
// of the row (in order) adds into f[b % 16]
//     f = fmaf(d_g * s_b, (float)(isum_b - z_g * sum_b), f)      (d_g * s_b rounded to float first)
// with isum_b = sum_i qw_i * q_i over the block's 32 weights (int32, exact; qw the unsigned codes,
// d_g / z_g the scale / zero point of the weight group holding block b); then
//     y = ((f[i] + f[i+8]) then + [i+4] then + [i+2] for the low lanes, then h[0] + h[1])
// i.e. h_i = f_i + f_{i+8} (i < 8), h_i += h_{i+4} (i < 4), h_i += h_{i+2} (i < 2), y = h_0 + h_1.
// |isum_b - z_g sum_b| <= 2 * 32 * 255 * 127 < 2^24, so its conversion to float is exact.
#ifndef IT_KERNELS_IQDEC_H
#define IT_KERNELS_IQDEC_H

#include <stddef.h>
#include <stdint.h>

#include "core/pool.h"
#include "formats/formats.h"
#include "formats/qformat.h"

// Quantized activations of nt tokens. Blocks are padded to nbp (a multiple of 16) with zeros so the
// SIMD kernels read whole 512-input chunks. Besides the natural order q, two copies are arranged for
// the AVX-512 kernels' unpacking (so weights need no shuffles):
//   q4: per 128 inputs u, q4[128u + 16k + j] = q[128u + 32k + j], q4[128u + 64 + 16k + j] =
//       q[128u + 32k + 16 + j] (k < 4, j < 16): int4's low / high nibbles of 64 packed bytes;
//   q2: per 256 inputs u, q2[256u + 64i + 8k + j] = q[256u + 32k + 8i + j] (i < 4, k < 8, j < 8):
//       the 2-bit fields i of 64 packed bytes (int2, and int3's low bits);
//   qg: the prefill GEMM's order (kernels/iqgemm.h), by tiles of KERN_DQ_GT tokens and chunks of
//       512 inputs (16 blocks): token t's chunk c starts at byte 512 * ((t / GT * nch + c) * GT + t % GT)
//       (nch = nbp / 16 chunks per token; tokens padded to a multiple of GT) and holds, at
//       64m + 4b + j, q[512c + 32b + 4m + j] (m < 8, b < 16, j < 4): dword lane b = block b, so the
//       GEMM's vpdpbusd sums land one lane per block with no horizontal reduction, and a tile's
//       tokens sit at fixed offsets from one pointer;
//   scg, sumg: scale and (float)sum (exact: |sum_b| <= 32 * 127) in the same tiled order, 16 per
//       (tile, chunk, token);
//   qa, sca, suma: the AMX GEMM's order (iqgemm_amx.c), only where it can run (kern_dqa_usable)
//       and for nt >= KERN_DQ_AMX_MIN_T (NULL otherwise): per 16 tokens u and block b, 512 bytes at qa + 512 (u nbp + b) with
//       q[32b + 4m + j] of token 16u + t at 64m + 4t + j (the tile's VNNI layout), 0 for tokens past
//       nt; sca / suma: 16 floats per (u, b), scale and (float)sum by token, 0 past nt.
// hsum holds the sums of q over each 16 inputs (hsum[2b] + hsum[2b+1] = sum_b): ggml's Q6_K kernel
// (kernels/ggdec_q6k512.h) takes its weights' -32 offset off per 16-weight sub-block with them.
// Zero-initialize, fill with kern_dq_quantize, free with kern_dq_free; reusable across calls.
enum { KERN_DQ_GT = 8 };   // tokens per tile of qg / scg / sumg
enum { KERN_DQ_AMX_MIN_T = 4 };   // qa is built for nt >= this (forward/linear.c's GEMM threshold)

typedef struct kern_dq {
    int64_t nt, n_in, nbp;      // tokens, inputs (multiple of 32), blocks padded to a multiple of 16
    int8_t *q, *q4, *q2;        // (nt, nbp * 32) each
    int8_t *qg;                 // (nt rounded up to KERN_DQ_GT) * nbp * 32, tiled
    float *scale;               // (nt, nbp) s_b, 0 in the padding
    int32_t *sum;               // (nt, nbp) sum_b, 0 in the padding
    int32_t *hsum;              // (nt, 2 * nbp) sums over 16 inputs, 0 in the padding
    float *scg, *sumg;          // (nt rounded up to KERN_DQ_GT) * nbp each, tiled
    int8_t *qa;                 // (nt rounded up to 16) * nbp * 32, AMX tiles; NULL without AMX
    float *sca, *suma;          // (nt rounded up to 16) * nbp each
    void *mem;                  // one allocation for all of the above
    size_t cap;                 // its bytes
} kern_dq;

void kern_dq_free(kern_dq *a);
// 0, or -1 on OOM / bad args (nt < 1, n_in not a positive multiple of 32).
int kern_dq_quantize(kern_dq *a, const float *x, int64_t nt, int64_t n_in);
// The float twin of the quantizer: out = s_b * q (out may alias x); for prefill, so that a whole
// evaluation can see the activations decode sees (no longer used by forward/linear.c: prefill now
// runs the integer kernels themselves, kernels/iqgemm.h).
void kern_dq_fake(const float *x, int64_t nt, int64_t n_in, float *out);

// y[t*ldy + r] for rows r0..r1-1 of w (our format *s, row_bytes per row), every token t < a->nt.
typedef void (*kern_dq_fn)(const qf_spec *s, const void *w, size_t row_bytes, const kern_dq *a,
                           float *y, int64_t ldy, int64_t r0, int64_t r1);
void kern_dq_ref(const qf_spec *s, const void *w, size_t row_bytes, const kern_dq *a, float *y,
                 int64_t ldy, int64_t r0, int64_t r1);
// "ref", "avx2", "avx512" (AVX-512 BW + VNNI): NULL if the type is not ours or the CPU lacks the ISA.
// "avx512" is the CPU's variant (int3 on AMD: kern_dq_avx512vnni_amd); "avx512-intel" and
// "avx512-amd" name one of them, for tests.
kern_dq_fn kern_dq_kernel(int type, const char *isa);
// The widest allowed by it_cpu_isa() and the CPU; NULL if the type is not ours.
kern_dq_fn kern_dq_best(int type);
// 1 if a SIMD kernel exists for this CPU (else the float kernels are faster than the reference and
// forward/linear.c keeps them).
int kern_dq_fast(void);

// Threaded (rows split across the pool in multiples of 16, like kern_matmul); n matrices sharing the
// activations. Every w[i]->type must be ours with ne[0] == a->n_in (caller checks).
void kern_matmul_dq_group(it_pool *pool, int n, const it_tensor *const *w, const kern_dq *a, float *const *y);

// Per-ISA entry points (iqdec_avx2.c, iqdec_avx512vnni.c); call only after the CPU checks.
void kern_dq_avx2(const qf_spec *s, const void *w, size_t row_bytes, const kern_dq *a, float *y,
                  int64_t ldy, int64_t r0, int64_t r1);
void kern_dq_avx512vnni(const qf_spec *s, const void *w, size_t row_bytes, const kern_dq *a, float *y,
                        int64_t ldy, int64_t r0, int64_t r1);
// The same, with int3's high-bit masks made in mask registers (faster on AMD Zen 4; iqdec_avx512vnni.c).
void kern_dq_avx512vnni_amd(const qf_spec *s, const void *w, size_t row_bytes, const kern_dq *a, float *y,
                            int64_t ldy, int64_t r0, int64_t r1);
// One token's quantization with AVX2 (bit-identical to the scalar loop in iqdec.c).
void kern_dq_quant_row_avx2(const float *x, int64_t n_in, int8_t *q, float *scale, int32_t *sum);

#endif
