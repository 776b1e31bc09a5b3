// ggml block encoders; see ggml_pack.h. Each is written from the layout comment of its struct in
// formats.h, the same text the decoders in ggml_ref.c follow, and the tests decode what these write.
#include "formats/ggml_pack.h"

#include <string.h>

#include "formats/formats.h"

// The two nibbles of a 32-weight block: x_j low, x_{j+16} high.
static void pack_nibbles(const uint8_t q[32], uint8_t qs[16]) {
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
}

void fmt_pack_q4_0(uint16_t d, const uint8_t q[32], void *blk) {
    it_block_q4_0 *b = blk;
    b->d = d;
    pack_nibbles(q, b->qs);
}

void fmt_pack_q4_1(uint16_t d, uint16_t m, const uint8_t q[32], void *blk) {
    it_block_q4_1 *b = blk;
    b->d = d;
    b->m = m;
    pack_nibbles(q, b->qs);
}

void fmt_pack_q5_0(uint16_t d, const uint8_t q[32], void *blk) {
    it_block_q5_0 *b = blk;
    uint32_t h = 0;
    for (int i = 0; i < 32; i++) h |= (uint32_t)((q[i] >> 4) & 1) << i;
    b->d = d;
    for (int i = 0; i < 4; i++) b->qh[i] = (uint8_t)(h >> (8 * i));   // little-endian u32
    pack_nibbles(q, b->qs);
}

void fmt_pack_q8_0(uint16_t d, const uint8_t q[32], void *blk) {
    it_block_q8_0 *b = blk;
    b->d = d;
    for (int i = 0; i < 32; i++) b->qs[i] = (int8_t)(q[i] - 128);
}

void fmt_pack_q4_K(uint16_t d, uint16_t dmin, const uint8_t sc[8], const uint8_t mn[8], const uint8_t q[256],
                   void *blk) {
    it_block_q4_K *b = blk;
    b->d = d;
    b->dmin = dmin;
    memset(b->scales, 0, sizeof b->scales);
    // s < 4: the low 6 bits of byte s (scale) and byte s + 4 (min). s >= 4: the low nibbles in byte
    // s + 4 (scale lo, min hi), the top 2 bits in the top bits of bytes s - 4 (scale) and s (min).
    for (int s = 0; s < 8; s++) {
        int c = sc[s] & 63, m = mn[s] & 63;
        if (s < 4) {
            b->scales[s] |= (uint8_t)c;
            b->scales[s + 4] |= (uint8_t)m;
        } else {
            b->scales[s + 4] = (uint8_t)((c & 15) | (m & 15) << 4);
            b->scales[s - 4] |= (uint8_t)((c >> 4) << 6);
            b->scales[s] |= (uint8_t)((m >> 4) << 6);
        }
    }
    // Sub-block s (weights 32s .. 32s+31) is nibble s % 2 of qs[32(s/2) + l].
    for (int p = 0; p < 4; p++)
        for (int l = 0; l < 32; l++)
            b->qs[32 * p + l] = (uint8_t)((q[64 * p + l] & 15) | (q[64 * p + 32 + l] & 15) << 4);
}

void fmt_pack_q6_K(uint16_t d, const int8_t sc[16], const uint8_t q[256], void *blk) {
    it_block_q6_K *b = blk;
    memset(b->ql, 0, sizeof b->ql);
    memset(b->qh, 0, sizeof b->qh);
    // Weight 128n + 32k + l: low nibble into ql[64n + l + 32(k & 1)] (low for k < 2, high for
    // k >= 2), the top 2 bits into bits 2k of qh[32n + l].
    for (int n = 0; n < 2; n++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) {
                int v = q[128 * n + 32 * k + l] & 63;
                uint8_t *lb = &b->ql[64 * n + l + 32 * (k & 1)];
                *lb |= (uint8_t)(k < 2 ? (v & 15) : (v & 15) << 4);
                b->qh[32 * n + l] |= (uint8_t)((v >> 4) << (2 * k));
            }
    memcpy(b->scales, sc, 16);
    b->d = d;
}
