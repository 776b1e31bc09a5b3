// intact's group-wise integer weight formats ("intN_gG" asymmetric, "intN_gG_sym" symmetric).
//
// A row of n_in weights is cut into groups of G consecutive weights (G = 32, 64 or 128; n_in must be
// a multiple of G). Each group is one block:
//   asymmetric: { uint16 d (fp16 scale); uint8 z (zero point, 0..2^b-1); uint8 qs[G*b/8] }
//   symmetric:  { uint16 d (fp16 scale);                                 uint8 qs[G*b/8] }, z = 2^(b-1)
// and dequantizes as w = d * (q - z), q in [0, 2^b-1]. Blocks are byte-packed (no padding); the
// packed bits are laid out per 32-weight sub-block k of the group (weights 32k .. 32k+31):
//   b = 8: qs[32k + j] = q(32k + j)
//   b = 4: qs[16k + j] low nibble = q(32k + j), high nibble = q(32k + j + 16)        (j < 16)
//   b = 2: qs[8k + j] bits 2i..2i+1 = q(32k + j + 8i)                                (j < 8, i < 4)
//   b = 3: the low 2 bits exactly as b = 2 in qs[0 .. G/4), then the high bit of q(32k + j) in bit j
//          of the little-endian uint32 at qs[G/4 + 4k]
// so SIMD kernels unpack 32 weights with a few shifts and masks.
//
// This file only describes storage (layout, ids, packing, decoding). How d, z and q are chosen
// (RTN/GPTQ/AWQ) is the producers' business: quant/rtn.h (rtn_group_params) documents the rule.
#ifndef IT_FORMATS_QFORMAT_H
#define IT_FORMATS_QFORMAT_H

#include <stddef.h>
#include <stdint.h>

// Type ids: IT_QTYPE_BASE + bits*16 + group_index*2 + sym, group_index 0/1/2 for G = 32/64/128.
// They are stored in GGUF tensor infos as the tensor type and never collide with ggml's (< 64).
#define IT_QTYPE_BASE 1024
#define IT_QTYPE(bits, group_index, sym) (IT_QTYPE_BASE + (bits) * 16 + (group_index) * 2 + (sym))

typedef struct qf_spec {
    int bits;    // 2, 3, 4 or 8
    int group;   // 32, 64 or 128
    int sym;     // 0 asymmetric, 1 symmetric
} qf_spec;

// 0 if the spec is one of ours; fills *type with its id.
int qf_type_of(const qf_spec *s, int *type);
// 0 if type is one of ours; fills *s.
int qf_spec_of(int type, qf_spec *s);
// Bytes of one block: header (d, and z unless symmetric) + packed bits; a constant expression.
#define QF_BLOCK_BYTES(bits, group, sym) ((size_t)((sym) ? 2 : 3) + (size_t)((group) * (bits) / 8))
size_t qf_block_bytes(const qf_spec *s);          // QF_BLOCK_BYTES of *s
double qf_bits_per_weight(const qf_spec *s);      // including the scale and zero point

// Packs one group: given params and the ints q[0..G), writes one block.
void qf_pack_group(const qf_spec *s, float d, int z, const uint8_t *q, void *block);
// Dequantizes n weights (a multiple of G) of packed blocks.
void qf_dequantize_row(const qf_spec *s, const void *blocks, float *w, int64_t n);
// Inverse of qf_pack_group: reads one block's d (as float), z and q[0..G).
void qf_unpack_group(const qf_spec *s, const void *block, float *d, int *z, uint8_t *q);

// X(bits, group, sym) for each of the 24 formats, to instantiate one function (or one table entry,
// formats.c) per format.
#define QF_FOR_EACH_GROUP(X, B, S) X(B, 32, S) X(B, 64, S) X(B, 128, S)
#define QF_FOR_EACH_SYM(X, B) QF_FOR_EACH_GROUP(X, B, 0) QF_FOR_EACH_GROUP(X, B, 1)
#define QF_FOR_EACH_FORMAT(X) \
    QF_FOR_EACH_SYM(X, 2) QF_FOR_EACH_SYM(X, 3) QF_FOR_EACH_SYM(X, 4) QF_FOR_EACH_SYM(X, 8)

#endif
