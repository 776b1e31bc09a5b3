// Integer-activation matmul kernels for the group-wise integer weight formats of formats/qformat.h
// (W4A8, W8A8, W4A4, and W2/W3 through the scalar reference): activations quantized per token
// (symmetric, dynamic), int32 dot products per weight group, fp32 accumulation across groups.
//
// Files: iqmatmul.c (activation quantizer, kernel choice, threaded wrapper), iqmatmul_ref.c (scalar
// reference, any of the 24 formats), iqmatmul_avx2.c (AVX2 maddubs), iqmatmul_avx512vnni.c
// (AVX-512 VNNI vpdpbusd; compiled with -mavx512vnni, chosen only when cpuid reports VNNI).
//
// The result is defined exactly (see kern_iq_fn), so every ISA's kernel gives bit-identical results
// to the reference: the integer part is exact whatever the summation order, and the float part is
// the same operations in the same order. A model therefore computes the same logits whichever CPU
// or INTACT_ISA it runs with, and tests compare kernels with memcmp.
#ifndef IT_KERNELS_IQMATMUL_H
#define IT_KERNELS_IQMATMUL_H

#include <stddef.h>
#include <stdint.h>

#include "core/pool.h"
#include "formats/formats.h"
#include "formats/qformat.h"

// Per-token quantized activations. The buffers are owned and grown on demand, so one kern_actq can
// be reused for every layer input of a forward pass (zero-initialize it, free with kern_actq_free).
//
// Besides the row-major q / scale / sum32 (what the reference reads), kern_actq_quantize writes
// the same values in a token-interleaved layout for the SIMD kernels (qt, nsum; tokens padded to a
// multiple of 16 with zeros): there the lanes of a vector are 16 (AVX-512) or 8 (AVX2) different
// tokens and each weight is broadcast, so a group's int32 dot products for 16 tokens land in 16
// lanes with no horizontal sums, and the per-group float step runs on whole vectors. Building the
// layout once per activation (shared by q/k/v or gate/up, and by every thread) is cheaper than in
// each kernel call. Only kern_actq_quantize fills a kern_actq; do not write the fields by hand.
typedef struct kern_actq {
    int bits;                   // 8 or 4 (int4 values in [-7, 7], one per int8)
    int64_t nt, n_in;           // n_in multiple of 32
    int64_t ntp;                // nt rounded up to a multiple of 16
    int8_t *q;                  // (nt, n_in)
    float *scale;               // (ntp): the per-token scales s_t, zeros past nt
    int32_t *sum32;             // (nt, n_in/32): sum of q over each 32-block (zero-point correction)
    int8_t *qt;                 // (n_in/4, ntp, 4): qt[(k/4*ntp + t)*4 + k%4] = q[t][k], 0 past nt
    int32_t *nsum;              // (n_in/32, ntp): nsum[b*ntp + t] = -sum32[t][b], 0 past nt
    size_t cap_q, cap_t;        // capacities: bytes of q (and of qt), tokens of scale (ntp)
    size_t cap_sum;             // int32s of sum32 (and of nsum)
} kern_actq;

void kern_actq_free(kern_actq *a);

// Quantizes x (nt, n_in) row by row: amax = max|x_row|, qmax = 2^(bits-1)-1, s = clip*amax/qmax
// (float, evaluated as (clip*amax)/qmax), q = clamp(nearbyintf(x / s), -qmax, qmax) (s == 0 or a
// NaN x/s -> q = 0). 0, or -1 on OOM / bad args (bits not 4/8, n_in not a multiple of 32, nt < 1,
// clip not in (0, 1]). On failure *a keeps its buffers but its contents are unspecified.
int kern_actq_quantize(kern_actq *a, const float *x, int64_t nt, int64_t n_in, int bits, float clip);

// The fake-quant twin: out = s * q with exactly the q and s above (out may alias x).
void kern_actq_fake(const float *x, int64_t nt, int64_t n_in, int bits, float clip, float *out);

// y[t*ldy + r] for rows r0..r1-1 of weights w (our int format *s, row_bytes per row) and tokens
// t < a->nt: y = s_t * acc with acc a float, starting at 0, accumulated over the groups g of the row
// in order:
//     acc = acc + d_g * (float)(isum_g - z_g * asum_g)      (separate multiply and add, no FMA)
// isum_g = sum_i q_i * a_i (int32, exact: q_i the unsigned weight codes, a_i the int8 activations),
// asum_g = sum of the activations over the group (from sum32), d_g the fp16 scale as float.
// So every ISA's kernel gives bit-identical results to the _ref one (integer arithmetic is exact and
// the float operations are the same ones in the same order). |isum_g - z_g asum_g| < 2^24, so the
// conversion to float is exact too. n_in = a->n_in (a multiple of the group).
typedef void (*kern_iq_fn)(const qf_spec *s, const void *w, size_t row_bytes, const kern_actq *a,
                           float *y, int64_t ldy, int64_t r0, int64_t r1);

// The scalar reference (any of the 24 formats; *s must be one of ours).
void kern_iq_ref(const qf_spec *s, const void *w, size_t row_bytes, const kern_actq *a, float *y,
                 int64_t ldy, int64_t r0, int64_t r1);

// The kernel for one of our type ids and an ISA: "ref" (any bits), "avx2", "avx512" (AVX-512 with
// VNNI); NULL when the type is not ours, the ISA is unknown or the CPU/OS lacks it, and for 2/3-bit
// weights with "avx2"/"avx512" (no SIMD kernel: they use the reference). For tests and benchmarks.
kern_iq_fn kern_iq_kernel(int type, const char *isa);
// The kernel kern_matmul_iq uses: the widest one allowed by it_cpu_isa() (INTACT_ISA, it_cpu_force_ref;
// the float kernels' cap) and the CPU, else the reference. NULL if the type is not ours.
kern_iq_fn kern_iq_best(int type);
int kern_iq_supported(int type);   // 1 if `type` is one of our int formats (any bits: 2/3 use ref)

// Threaded wrapper (rows split across the pool in multiples of 16, like kern_matmul): y (a->nt,
// n_out) with row stride n_out = w->ne[1]. w->type must be supported and w->ne[0] == a->n_in
// (the caller checks; a mismatch is a programming error and leaves y untouched).
void kern_matmul_iq(it_pool *pool, const it_tensor *w, const kern_actq *a, float *y);
// n matrices sharing the activations (q/k/v; gate/up) in one dispatch per 4: y[i] = a * w[i]^T.
void kern_matmul_iq_group(it_pool *pool, int n, const it_tensor *const *w, const kern_actq *a,
                          float *const *y);

// Per-ISA lookups (iqmatmul_avx2.c / iqmatmul_avx512vnni.c): bits 4 or 8, else NULL. Only call
// after checking the CPU (it_cpu_has_avx2(); kern_iq_cpu_has_vnni()).
kern_iq_fn kern_iq_avx2_get(int bits, int group, int sym);
kern_iq_fn kern_iq_avx512vnni_get(int bits, int group, int sym);
// kern_actq_quantize's per-row work with AVX2 (iqmatmul_avx2.c), bit-identical to the scalar loop:
// writes *scale, q[0..n) and sum32[0..n/32).
void kern_iq_quant_row_avx2(const float *x, int64_t n, int qmax, float clip, int8_t *q, int32_t *sum32,
                            float *scale);
// AVX-512 F/BW/VL/DQ (it_cpu_has_avx512) plus AVX512_VNNI (cpuid 7.0 ecx bit 11).
int kern_iq_cpu_has_vnni(void);

// X(bits, group, sym) for every format the SIMD kernels instantiate (4- and 8-bit weights).
#define IQ_FOR_EACH_SIMD(X) \
    X(4, 32, 0) X(4, 64, 0) X(4, 128, 0) X(4, 32, 1) X(4, 64, 1) X(4, 128, 1) \
    X(8, 32, 0) X(8, 64, 0) X(8, 128, 0) X(8, 32, 1) X(8, 64, 1) X(8, 128, 1)

#endif
