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
// Quantization parameters follow the GPTQ/AWQ reference quantizer (per group, optional clip c ≤ 1):
//   asymmetric: lo = min(c*min(w), 0), hi = max(c*max(w), 0) (the range holds 0, as in GPTQ's
//               quantizer); d = (hi - lo) / (2^b - 1); z = clamp(round(-lo / d), 0, 2^b-1)
//   symmetric:  a = c*max|w|;  d = 2a / (2^b - 1); z = 2^(b-1)
//   (d == 0, i.e. a constant-zero group, uses d = 1 so every q is z.) d is rounded to fp16 FIRST and
//   the rounded value is used to compute q = clamp(round(w / d) + z, 0, 2^b - 1), so a packed weight
//   and its fake-quantized float twin are bit-identical.
#ifndef IT_QUANT_QFORMAT_H
#define IT_QUANT_QFORMAT_H

#include <math.h>
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
size_t qf_block_bytes(const qf_spec *s);          // header + packed bits
double qf_bits_per_weight(const qf_spec *s);      // including the scale and zero point

// Group parameters for n = s->group weights with clip ratio c in (0, 1].
void qf_group_params(const qf_spec *s, const float *w, float clip, float *d, int *z);
// q for one weight given the (fp16-rounded) parameters.
// Rounds half to even, as torch.round in the GPTQ/AWQ references. NaN maps to z (0 after dequant).
static inline int qf_quantize_value(float w, float d, int z, int bits) {
    float r = nearbyintf(w / d) + (float)z;
    if (r != r) return z;
    float maxq = (float)((1 << bits) - 1);
    return r < 0 ? 0 : r > maxq ? (int)maxq : (int)r;
}

// Packs one group: given params and the ints q[0..G), writes one block.
void qf_pack_group(const qf_spec *s, float d, int z, const uint8_t *q, void *block);
// Quantizes one group with its own min/max params (RTN) at clip c; writes one block.
void qf_quantize_group(const qf_spec *s, const float *w, float clip, void *block);
// Quantizes a row of n weights (n multiple of G), RTN at clip c.
void qf_quantize_row(const qf_spec *s, const float *w, int64_t n, float clip, void *blocks);
// Dequantizes n weights (a multiple of G) of packed blocks.
void qf_dequantize_row(const qf_spec *s, const void *blocks, float *w, int64_t n);
// Inverse of qf_pack_group: reads one block's d (as float), z and q[0..G).
void qf_unpack_group(const qf_spec *s, const void *block, float *d, int *z, uint8_t *q);

// Registers the 24 formats in the type-traits table (called from it_types_init).
void qf_register_types(void);

#endif
