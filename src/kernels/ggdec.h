// Decode GEMV with int8 activations for ggml's Q4_0, Q8_0, Q4_K and Q6_K weights: the default
// product of a ggml-typed linear at 1..3 tokens (forward/linear.c), the twin of kernels/iqdec.h for
// our own formats. It takes the same activations (kern_dq: int8 per 32-block, scale s_b, sum_b).
//
// Why: unpacking these blocks to float and doing float FMAs (formats/ggml_avx2.c) reached 5-11% of
// the memory bandwidth on TinyLlama; in the byte domain a weight costs a mask/shift and a fraction
// of one maddubs (AVX2) or vpdpbusd (AVX-512 VNNI).
//
// The result is defined exactly, so every ISA's kernel is bit-identical to ggdec_ref (tests compare
// with memcmp). For each token and row: 16 float accumulators f[0..16) start at 0, and 32-block b of
// the row (in order) adds into f[b % 16] (q_i, s_b, sum_b the activation block; all products
// below are float, left to right, and fma is one rounding):
//   Q4_0 (codes c in 0..15, w = d(c-8)):  f = fma(d*s_b, (float)(sum c_i q_i - 8 sum_b), f)
//   Q8_0 (codes c in -128..127, w = d c): f = fma(d*s_b, (float)(sum c_i q_i), f)
//   Q4_K (sub-block j = b % 8 of super-block b / 8, w = d sc_j c - dmin mn_j):
//       f = fma((d*sc_j)*s_b, (float)(sum c_i q_i), f);  f = fma(-((dmin*mn_j)*s_b), (float)sum_b, f)
//   Q6_K (32-block j = b % 8 holds the 16-weight sub-blocks 2j, 2j+1 with int8 scales; w = d sc (c-32)):
//       f = fma(d*s_b, (float)(sc_2j sum_{i<16} (c_i-32) q_i + sc_2j+1 sum_{i>=16} (c_i-32) q_i), f)
// then y = h_0 + h_1 with h_i = f_i + f_{i+8} (i < 8), h_i += h_{i+4} (i < 4), h_i += h_{i+2} (i < 2).
// Every integer above is below 2^24 in magnitude (Q6_K: 2 * 16 * 32 * 127 * 128 < 2^24), so its
// conversion to float is exact and the int32 block dots are exact.
#ifndef IT_KERNELS_GGDEC_H
#define IT_KERNELS_GGDEC_H

#include <stddef.h>
#include <stdint.h>

#include "core/pool.h"
#include "formats/formats.h"
#include "kernels/iqdec.h"

// y[t*ldy + r] for rows r0..r1-1 of w (ggml type `type`, row_bytes per row), every token t < a->nt.
typedef void (*ggdec_fn)(int type, const void *w, size_t row_bytes, const kern_dq *a, float *y,
                         int64_t ldy, int64_t r0, int64_t r1);
void ggdec_ref(int type, const void *w, size_t row_bytes, const kern_dq *a, float *y, int64_t ldy,
               int64_t r0, int64_t r1);
// 1 for Q4_0, Q8_0, Q4_K, Q6_K.
int ggdec_supported(int type);
// "ref", "avx2", "avx512" (AVX-512 VL + VNNI), "amx" (Q8_0, Q4_K, Q6_K; kern_dqa_usable): NULL if the
// type is not supported there or the CPU lacks it.
ggdec_fn ggdec_kernel(int type, const char *isa);
// The widest allowed by it_cpu_isa() and the CPU; NULL if the type is not supported.
ggdec_fn ggdec_best(int type);
// Threaded (rows split in multiples of 16); n matrices sharing the activations, each of a supported
// type (types may differ) with ne[0] == a->n_in (caller checks).
void kern_matmul_ggdec_group(it_pool *pool, int n, const it_tensor *const *w, const kern_dq *a, float *const *y);
// Prefill (any a->nt; forward/linear.c uses it above 3 tokens): the same kernels, each thread's rows
// walked in blocks of ggdec_block_rows(row_bytes) with every token over a block before the next (the
// driver shape of kernels/iqgemm.h), so a block's packed weights (<= GGDEC_BLOCK_BYTES, a bit under
// half of a 48 KB L1) stay in L1 while the 3-token tiles pass. Every output is a function of its own
// row and token only, so the result equals ggdec_ref bit for bit: prefill computes what decode does.
enum { GGDEC_BLOCK_BYTES = 20 * 1024 };
void kern_matmul_ggdg_group(it_pool *pool, int n, const it_tensor *const *w, const kern_dq *a, float *const *y);
// Rows per block for rows of row_bytes: GGDEC_BLOCK_BYTES / row_bytes clamped to 4..16.
int64_t ggdec_block_rows(size_t row_bytes);

// One 32-block's step of the definition above, for token t: f[b % 16] updated. The SIMD kernels use
// it for blocks past their last whole group of 8 (Q4_0 / Q8_0 rows not a multiple of 256).
void ggdec_block(int type, const uint8_t *row, int64_t b, const kern_dq *a, int64_t t, float f[16]);
// The final reduction of f (as defined above).
float ggdec_reduce(float f[16]);

// Q4_K's 6-bit scale and min of sub-block j (formats.h: 8 scales + 8 mins packed in 12 bytes).
void ggdec_k4_scale_min(const uint8_t *k, int j, int *sc, int *mn);

// Per-ISA entry points (ggdec_avx2.c, ggdec_avx512vnni.c); call only after the CPU checks.
void ggdec_avx2(int type, const void *w, size_t row_bytes, const kern_dq *a, float *y, int64_t ldy,
                int64_t r0, int64_t r1);
void ggdec_avx512vnni(int type, const void *w, size_t row_bytes, const kern_dq *a, float *y, int64_t ldy,
                      int64_t r0, int64_t r1);
// Prefill of Q8_0, Q4_K and Q6_K on AMX tiles (kernels/iqgemm_amx.c, the GEMM of our formats with its own
// code unpacking): bit-identical to ggdec_ref. Other types, or a kern_dq without AMX activation
// tiles (a->qa), go to ggdec_avx512vnni. Call only when kern_dqa_usable().
void ggdec_amx(int type, const void *w, size_t row_bytes, const kern_dq *a, float *y, int64_t ldy, int64_t r0,
               int64_t r1);

#endif
