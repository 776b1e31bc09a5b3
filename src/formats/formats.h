// Tensor storage formats: how a weight matrix is laid out in memory, and the one table that says,
// per type id, how to read it (block geometry, dequantization, the matmul kernels that read it in
// place). Everything above this layer (io, model, kernels, forward, quant) reads weights through
// fmt_get(); quant/ only produces tensors in these formats.
#ifndef IT_FORMATS_FORMATS_H
#define IT_FORMATS_FORMATS_H

#include <stddef.h>
#include <stdint.h>

#include "core/cpu.h"

// Ids follow ggml's enum ggml_type so GGUF files map 1:1; our own integer formats use ids >= 1024
// (IT_QTYPE in formats/qformat.h).
enum it_type {
    IT_TYPE_F32 = 0,
    IT_TYPE_F16 = 1,
    IT_TYPE_Q4_0 = 2,
    IT_TYPE_Q4_1 = 3,
    IT_TYPE_Q5_0 = 6,
    IT_TYPE_Q5_1 = 7,
    IT_TYPE_Q8_0 = 8,
    IT_TYPE_Q2_K = 10,
    IT_TYPE_Q3_K = 11,
    IT_TYPE_Q4_K = 12,
    IT_TYPE_Q5_K = 13,
    IT_TYPE_Q6_K = 14,
    IT_TYPE_Q8_K = 15,
    IT_TYPE_BF16 = 30,
};

// GGML's Q8_0: 32 weights sharing one fp16 scale.
#define IT_QK8_0 32
typedef struct {
    uint16_t d;            // fp16 scale
    int8_t qs[IT_QK8_0];   // w = d * qs[i]
} it_block_q8_0;
_Static_assert(sizeof(it_block_q8_0) == 34, "Q8_0 block must be 34 bytes as in ggml");

// ggml's other block formats, byte for byte as in GGUF files. Weight i of a 32-block is called
// x_i; "lo(b)" is b & 15 and "hi(b)" is b >> 4. All fp16 fields are little-endian IEEE halves.
//
// Q4_0, 18 bytes / 32 weights: d; qs[16].  x_j = d*(lo(qs[j]) - 8), x_{j+16} = d*(hi(qs[j]) - 8).
typedef struct { uint16_t d; uint8_t qs[16]; } it_block_q4_0;
// Q4_1, 20 bytes / 32: d, m; qs[16].  x_j = d*lo(qs[j]) + m, x_{j+16} = d*hi(qs[j]) + m.
typedef struct { uint16_t d, m; uint8_t qs[16]; } it_block_q4_1;
// Q5_0, 22 bytes / 32: d; qh[4] (32 fifth bits, h = little-endian u32, bit i for x_i); qs[16].
// x_j = d*((lo(qs[j]) | bit_j(h) << 4) - 16), x_{j+16} = d*((hi(qs[j]) | bit_{j+16}(h) << 4) - 16).
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; } it_block_q5_0;
// Q5_1, 24 bytes / 32: d, m; qh[4]; qs[16]. As Q5_0 with q in [0, 31] and x = d*q + m.
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; } it_block_q5_1;

// The k-quants: super-blocks of 256 weights (IT_QK_K) split into sub-blocks whose scales are
// themselves quantized against the fp16 super-block scale d (and dmin for the minimums).
#define IT_QK_K 256
// Q2_K, 84 bytes: scales[16] (sub-block s of 16: scale lo, min hi); qs[64]; d; dmin.
// x at 128*n + 32*j + l (n < 2, j < 4, l < 32): q = (qs[32n + l] >> 2j) & 3, s = 8n + 2j + l/16,
// x = d*lo(scales[s])*q - dmin*hi(scales[s]).
typedef struct { uint8_t scales[16]; uint8_t qs[64]; uint16_t d, dmin; } it_block_q2_K;
// Q3_K, 110 bytes: hmask[32]; qs[64]; scales[12] (16 6-bit signed scales, see fmt_q3k_scale); d.
// x at 128*n + 32*j + l: q = ((qs[32n + l] >> 2j) & 3) - (bit (4n + j) of hmask[l] ? 0 : 4),
// s = 8n + 2j + l/16, x = d*(scale_s - 32)*q.
typedef struct { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d; } it_block_q3_K;
// Q4_K, 144 bytes: d; dmin; scales[12] (8 6-bit scales + 8 6-bit mins, see fmt_k4_scale_min);
// qs[128]. x at 64*n + l (l < 32) = d*sc_{2n}*lo(qs[32n + l]) - dmin*m_{2n};
// x at 64*n + 32 + l = d*sc_{2n+1}*hi(qs[32n + l]) - dmin*m_{2n+1}.
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; } it_block_q4_K;
// Q5_K, 176 bytes: d; dmin; scales[12] (as Q4_K); qh[32]; qs[128]. As Q4_K with a fifth bit
// (+16): sub-block s (32 weights) takes bit s of qh[l] for its weight l.
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } it_block_q5_K;
// Q6_K, 210 bytes: ql[128]; qh[64]; scales[16] (int8, one per 16 weights); d.
// x at 128*n + 32*k + l (k < 4, l < 32): low nibble from ql[64n + l + 32*(k&1)] (lo for k < 2, hi
// for k >= 2), high 2 bits (qh[32n + l] >> 2k) & 3, q = (low | high << 4) - 32,
// x = d*scales[8n + 2k + l/16]*q.
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; } it_block_q6_K;
// Q8_K, 292 bytes: d (fp32!); qs[256]; bsums[16] (sums of 16 qs each, unused here). x_i = d*qs[i].
// ggml uses it for activations; a GGUF file may still store it.
typedef struct { float d; int8_t qs[256]; int16_t bsums[16]; } it_block_q8_K;

_Static_assert(sizeof(it_block_q4_0) == 18, "Q4_0 block is 18 bytes in ggml");
_Static_assert(sizeof(it_block_q4_1) == 20, "Q4_1 block is 20 bytes in ggml");
_Static_assert(sizeof(it_block_q5_0) == 22, "Q5_0 block is 22 bytes in ggml");
_Static_assert(sizeof(it_block_q5_1) == 24, "Q5_1 block is 24 bytes in ggml");
_Static_assert(sizeof(it_block_q2_K) == 84, "Q2_K block is 84 bytes in ggml");
_Static_assert(sizeof(it_block_q3_K) == 110, "Q3_K block is 110 bytes in ggml");
_Static_assert(sizeof(it_block_q4_K) == 144, "Q4_K block is 144 bytes in ggml");
_Static_assert(sizeof(it_block_q5_K) == 176, "Q5_K block is 176 bytes in ggml");
_Static_assert(sizeof(it_block_q6_K) == 210, "Q6_K block is 210 bytes in ggml");
_Static_assert(sizeof(it_block_q8_K) == 292, "Q8_K block is 292 bytes in ggml");

// A weight matrix stored row-major: ne[0] inputs per row, ne[1] rows (GGUF order).
typedef struct it_tensor {
    const char *name;
    int type;              // enum it_type or an IT_QTYPE id
    int n_dims;
    int64_t ne[4];
    const void *data;      // points into the mmapped file (or owned memory)
    size_t nbytes;
} it_tensor;

// Y[t*ldy + r] = sum_i W[r][i] * X[t*ldx + i]  for rows r in [r0, r1) and tokens t in [0, nt).
// w points at row 0; row r starts at w + r*row_bytes. n_in is a multiple of the type's block size.
typedef void (*it_matmul_fn)(const void *w, size_t row_bytes, int64_t n_in,
                             const float *x, int64_t ldx, int64_t nt,
                             float *y, int64_t ldy, int64_t r0, int64_t r1);

typedef struct fmt_traits {
    const char *name;          // "f32", "f16", "bf16", "q8_0", "int4_g128", ...
    int block_size;            // weights per block
    size_t block_bytes;        // bytes per block
    double bits_per_weight;    // block_bytes * 8 / block_size (scales and zero points included)
    // Converts n weights (a multiple of block_size) to float.
    void (*to_float)(const void *src, float *dst, int64_t n);
    // The matmul kernels, indexed by enum it_isa (core/cpu.h): [IT_ISA_REF] is the portable scalar
    // reference every other one is tested against (never NULL); a NULL SIMD entry means "no kernel
    // for this ISA", and the selector falls back to the next narrower one.
    it_matmul_fn matmul[IT_ISA_COUNT];
} fmt_traits;

// The entry of a type id, or NULL for an unknown id. The table is const: nothing to initialize.
const fmt_traits *fmt_get(int type);

// The kernel the engine uses for t: the widest entry at or below it_cpu_isa() (the CPU's ISA,
// detected once at start-up and capped by INTACT_ISA; scalar under it_cpu_force_ref). The table is
// never patched; this picks from it.
it_matmul_fn fmt_matmul(const fmt_traits *t);

// The kernel of a type id for an ISA named "ref", "avx2" or "avx512"; NULL when the type or the
// ISA is unknown, the type has no kernel for it, or the CPU/OS lacks the ISA. For tests and
// benchmarks that compare every variant.
it_matmul_fn fmt_kernel(int type, const char *isa);

// ggml's name for a type id ("q4_K"), or NULL if it is not a ggml type.
const char *fmt_ggml_name(uint32_t type);

// Bytes of a row of n weights; 0 for an unknown type, if n is not a multiple of the block size,
// or on overflow.
size_t fmt_row_bytes(int type, int64_t n);

#endif
