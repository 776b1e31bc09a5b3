// Tensor types and their traits. Every weight format plugs into the engine through one entry of
// the traits table: block geometry, dequantization, and the matmul kernels that read it in place.
#ifndef IT_CORE_TYPES_H
#define IT_CORE_TYPES_H

#include <stddef.h>
#include <stdint.h>

// Ids follow ggml's enum ggml_type so GGUF files map 1:1; our own formats (later) use ids >= 1024.
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
    int type;              // enum it_type
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

typedef struct it_type_traits {
    const char *name;      // "f32", "f16", "bf16", "q8_0"
    int block_size;        // weights per block
    size_t block_bytes;    // bytes per block
    // Converts n weights (a multiple of block_size) to float.
    void (*to_float)(const void *src, float *dst, int64_t n);
    it_matmul_fn matmul_ref;   // portable scalar reference
    it_matmul_fn matmul;       // fastest kernel for this CPU (set by it_types_init)
} it_type_traits;

// NULL for an unknown type id. The table is const after it_types_init() (idempotent, thread-safe).
const it_type_traits *it_type_get(int type);
void it_types_init(void);

// Adds a format to the table; only called during it_types_init (from qf_register_types).
void it_type_register(int type, const it_type_traits *t);

// ggml's name for a type id ("q4_K"), or NULL if it is not a ggml type.
const char *it_type_ggml_name(uint32_t type);

// Bytes of a row of n weights; 0 if n is not a multiple of the block size or on overflow.
size_t it_type_row_bytes(int type, int64_t n);

#endif
