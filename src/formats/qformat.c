// The group-wise integer formats of qformat.h: ids, packing, unpacking, dequantization.
#include "formats/qformat.h"

#include <stddef.h>
#include <string.h>

#include "core/fp16.h"
#include "formats/fmt_kernels.h"

// One block struct per (bits, group) and variant. Byte arrays only, so the structs have no
// padding and their sizes are exactly the documented block sizes; the code below addresses blocks
// by byte offset (header 3 or 2 bytes, then qs) and these asserts pin that layout.
#define QF_DECLARE_BLOCKS(B, G)                                                                  \
    typedef struct { uint8_t d[2]; uint8_t z; uint8_t qs[(G) * (B) / 8]; } qf_block_i##B##_g##G; \
    typedef struct { uint8_t d[2]; uint8_t qs[(G) * (B) / 8]; } qf_block_i##B##_g##G##_sym;      \
    _Static_assert(sizeof(qf_block_i##B##_g##G) == 3 + (G) * (B) / 8, "asym block size");        \
    _Static_assert(offsetof(qf_block_i##B##_g##G, qs) == 3, "asym header");                      \
    _Static_assert(sizeof(qf_block_i##B##_g##G##_sym) == 2 + (G) * (B) / 8, "sym block size");   \
    _Static_assert(offsetof(qf_block_i##B##_g##G##_sym, qs) == 2, "sym header");
#define QF_DECLARE_BITS(B) QF_DECLARE_BLOCKS(B, 32) QF_DECLARE_BLOCKS(B, 64) QF_DECLARE_BLOCKS(B, 128)
QF_DECLARE_BITS(2)
QF_DECLARE_BITS(3)
QF_DECLARE_BITS(4)
QF_DECLARE_BITS(8)
_Static_assert(sizeof(qf_block_i4_g128) == 67, "int4_g128 is 67 bytes");

static int valid(const qf_spec *s) {
    return (s->bits == 2 || s->bits == 3 || s->bits == 4 || s->bits == 8) &&
           (s->group == 32 || s->group == 64 || s->group == 128) && (s->sym == 0 || s->sym == 1);
}

int qf_type_of(const qf_spec *s, int *type) {
    if (!valid(s)) return -1;
    int gi = s->group == 32 ? 0 : s->group == 64 ? 1 : 2;
    *type = IT_QTYPE(s->bits, gi, s->sym);
    return 0;
}

int qf_spec_of(int type, qf_spec *s) {
    int v = type - IT_QTYPE_BASE;
    if (v < 0) return -1;
    qf_spec t = {v / 16, 32 << ((v % 16) / 2), v % 2};
    if ((v % 16) / 2 > 2 || !valid(&t)) return -1;
    *s = t;
    return 0;
}

size_t qf_block_bytes(const qf_spec *s) { return QF_BLOCK_BYTES(s->bits, s->group, s->sym); }

double qf_bits_per_weight(const qf_spec *s) {
    return (double)qf_block_bytes(s) * 8.0 / (double)s->group;
}

void qf_pack_group(const qf_spec *s, float d, int z, const uint8_t *q, void *block) {
    uint8_t *b = block;
    uint16_t h = it_f32_to_fp16(d);
    b[0] = (uint8_t)(h & 0xff);
    b[1] = (uint8_t)(h >> 8);
    if (!s->sym) b[2] = (uint8_t)z;
    uint8_t *qs = b + (s->sym ? 2 : 3);
    const int G = s->group, mask = (1 << s->bits) - 1;
    for (int k = 0; k < G / 32; k++) {
        const uint8_t *qk = q + 32 * k;
        switch (s->bits) {
        case 8: memcpy(qs + 32 * k, qk, 32); break;
        case 4:
            for (int j = 0; j < 16; j++) qs[16 * k + j] = (uint8_t)((qk[j] & 15) | (qk[j + 16] & 15) << 4);
            break;
        default: { // 2 and 3: the low two bits interleaved by 8, then (b = 3) a 32-bit high-bit word
            for (int j = 0; j < 8; j++) {
                int v = 0;
                for (int i = 0; i < 4; i++) v |= (qk[j + 8 * i] & 3) << (2 * i);
                qs[8 * k + j] = (uint8_t)v;
            }
            if (s->bits == 3) {
                uint32_t hb = 0;
                for (int j = 0; j < 32; j++) hb |= (uint32_t)((qk[j] & mask) >> 2) << j;
                uint8_t *p = qs + G / 4 + 4 * k;
                for (int i = 0; i < 4; i++) p[i] = (uint8_t)(hb >> (8 * i));
            }
            break;
        }
        }
    }
}

void qf_unpack_group(const qf_spec *s, const void *block, float *d, int *z, uint8_t *q) {
    const uint8_t *b = block;
    *d = it_fp16_to_f32((uint16_t)(b[0] | b[1] << 8));
    *z = s->sym ? 1 << (s->bits - 1) : b[2];
    const uint8_t *qs = b + (s->sym ? 2 : 3);
    const int G = s->group;
    for (int k = 0; k < G / 32; k++) {
        uint8_t *qk = q + 32 * k;
        switch (s->bits) {
        case 8: memcpy(qk, qs + 32 * k, 32); break;
        case 4:
            for (int j = 0; j < 16; j++) {
                qk[j] = qs[16 * k + j] & 15;
                qk[j + 16] = qs[16 * k + j] >> 4;
            }
            break;
        default: {
            for (int j = 0; j < 8; j++)
                for (int i = 0; i < 4; i++) qk[j + 8 * i] = (qs[8 * k + j] >> (2 * i)) & 3;
            if (s->bits == 3) {
                const uint8_t *p = qs + G / 4 + 4 * k;
                uint32_t hb = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                              (uint32_t)p[3] << 24;
                for (int j = 0; j < 32; j++) qk[j] |= (uint8_t)(((hb >> j) & 1) << 2);
            }
            break;
        }
        }
    }
}

void qf_dequantize_row(const qf_spec *s, const void *blocks, float *w, int64_t n) {
    const size_t bb = qf_block_bytes(s);
    uint8_t q[128];
    for (int64_t g = 0; g < n / s->group; g++) {
        float d;
        int z;
        qf_unpack_group(s, (const uint8_t *)blocks + (size_t)g * bb, &d, &z, q);
        // d * (q - z) with the integer difference exact: the one rounding every kernel reproduces.
        for (int i = 0; i < s->group; i++) w[g * s->group + i] = d * (float)(q[i] - z);
    }
}

// One dequantizer per format for the formats table (formats.c).
#define QF_TO_FLOAT(B, G, S)                                                                     \
    void fmt_to_float_i##B##_g##G##_s##S(const void *src, float *dst, int64_t n) {              \
        static const qf_spec spec = {B, G, S};                                                   \
        qf_dequantize_row(&spec, src, dst, n);                                                   \
    }
QF_FOR_EACH_FORMAT(QF_TO_FLOAT)
