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
    IT_TYPE_Q8_0 = 8,
    IT_TYPE_BF16 = 30,
};

// GGML's Q8_0: 32 weights sharing one fp16 scale.
#define IT_QK8_0 32
typedef struct {
    uint16_t d;            // fp16 scale
    int8_t qs[IT_QK8_0];   // w = d * qs[i]
} it_block_q8_0;
_Static_assert(sizeof(it_block_q8_0) == 34, "Q8_0 block must be 34 bytes as in ggml");

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
