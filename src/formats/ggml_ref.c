// Scalar dequantizers and reference matmul kernels for ggml's block formats Q4_0 ... Q8_K (the
// layouts are written out at their structs in formats.h). Written from the format description:
// each type has one block decoder (float out[block size]); to_float runs it over the blocks and
// the matmul kernel decodes a block once per tile of tokens and dots it with x in double, so the
// reference stays the most accurate thing in the tree (as matmul_ref.c's).
#include "formats/fmt_kernels.h"

#include <stddef.h>
#include <string.h>

#include "core/fp16.h"
#include "formats/formats.h"

static float h2f(uint16_t h) { return it_fp16_to_f32(h); }

static void deq_q4_0(const void *p, float *y) {
    const it_block_q4_0 *b = p;
    float d = h2f(b->d);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)((b->qs[j] & 15) - 8);
        y[j + 16] = d * (float)((b->qs[j] >> 4) - 8);
    }
}

static void deq_q4_1(const void *p, float *y) {
    const it_block_q4_1 *b = p;
    float d = h2f(b->d), m = h2f(b->m);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)(b->qs[j] & 15) + m;
        y[j + 16] = d * (float)(b->qs[j] >> 4) + m;
    }
}

// The 32 fifth bits of Q5_0/Q5_1: a little-endian u32, bit i for weight i.
static uint32_t q5_high(const uint8_t qh[4]) {
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

static void deq_q5_0(const void *p, float *y) {
    const it_block_q5_0 *b = p;
    float d = h2f(b->d);
    uint32_t h = q5_high(b->qh);
    for (int j = 0; j < 16; j++) {
        int q0 = (int)((b->qs[j] & 15) | ((h >> j) & 1) << 4);
        int q1 = (int)((b->qs[j] >> 4) | ((h >> (j + 16)) & 1) << 4);
        y[j] = d * (float)(q0 - 16);
        y[j + 16] = d * (float)(q1 - 16);
    }
}

static void deq_q5_1(const void *p, float *y) {
    const it_block_q5_1 *b = p;
    float d = h2f(b->d), m = h2f(b->m);
    uint32_t h = q5_high(b->qh);
    for (int j = 0; j < 16; j++) {
        int q0 = (int)((b->qs[j] & 15) | ((h >> j) & 1) << 4);
        int q1 = (int)((b->qs[j] >> 4) | ((h >> (j + 16)) & 1) << 4);
        y[j] = d * (float)q0 + m;
        y[j + 16] = d * (float)q1 + m;
    }
}

static void deq_q2_K(const void *p, float *y) {
    const it_block_q2_K *b = p;
    float d = h2f(b->d), dmin = h2f(b->dmin);
    for (int n = 0; n < 2; n++)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) {
                int s = 8 * n + 2 * j + l / 16, q = (b->qs[32 * n + l] >> (2 * j)) & 3;
                y[128 * n + 32 * j + l] = d * (float)(b->scales[s] & 15) * (float)q - dmin * (float)(b->scales[s] >> 4);
            }
}

// Q3_K's 16 6-bit scales in 12 bytes: the low 4 bits of scale s are a nibble of bytes 0..7 (lo for
// s < 8 from byte s, hi for s >= 8 from byte s - 8), the high 2 bits are bits 2*(s/4) of byte
// 8 + s%4. Stored with an offset of 32.
static int fmt_q3k_scale(const uint8_t sc[12], int s) {
    int lo = s < 8 ? sc[s] & 15 : sc[s - 8] >> 4;
    int hi = (sc[8 + s % 4] >> (2 * (s / 4))) & 3;
    return (lo | hi << 4) - 32;
}

static void deq_q3_K(const void *p, float *y) {
    const it_block_q3_K *b = p;
    float d = h2f(b->d);
    for (int n = 0; n < 2; n++)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) {
                int s = 8 * n + 2 * j + l / 16;
                int q = ((b->qs[32 * n + l] >> (2 * j)) & 3) - ((b->hmask[l] >> (4 * n + j)) & 1 ? 0 : 4);
                y[128 * n + 32 * j + l] = d * (float)fmt_q3k_scale(b->scales, s) * (float)q;
            }
}

// Q4_K/Q5_K's 8 6-bit scales and 8 6-bit mins in 12 bytes: for s < 4 the low 6 bits of byte s
// (scale) and of byte s + 4 (min); for s >= 4 the nibbles of byte s + 4 (lo: scale, hi: min) with
// their top 2 bits in the top 2 bits of bytes s - 4 (scale) and s (min).
static void fmt_k4_scale_min(const uint8_t sc[12], int s, int *scale, int *min) {
    if (s < 4) {
        *scale = sc[s] & 63;
        *min = sc[s + 4] & 63;
    } else {
        *scale = (sc[s + 4] & 15) | (sc[s - 4] >> 6) << 4;
        *min = (sc[s + 4] >> 4) | (sc[s] >> 6) << 4;
    }
}

// Q4_K and Q5_K share everything but the fifth bit (qh NULL for Q4_K).
static void deq_k45(uint16_t dh, uint16_t dminh, const uint8_t *scales, const uint8_t *qh,
                    const uint8_t *qs, float *y) {
    float d = h2f(dh), dmin = h2f(dminh);
    for (int s = 0; s < 8; s++) {
        int sc, mn;
        fmt_k4_scale_min(scales, s, &sc, &mn);
        float ds = d * (float)sc, ms = dmin * (float)mn;
        const uint8_t *q = qs + 32 * (s / 2);
        for (int l = 0; l < 32; l++) {
            int v = s % 2 ? q[l] >> 4 : q[l] & 15;
            if (qh) v |= ((qh[l] >> s) & 1) << 4;
            y[32 * s + l] = ds * (float)v - ms;
        }
    }
}

static void deq_q4_K(const void *p, float *y) {
    const it_block_q4_K *b = p;
    deq_k45(b->d, b->dmin, b->scales, NULL, b->qs, y);
}

static void deq_q5_K(const void *p, float *y) {
    const it_block_q5_K *b = p;
    deq_k45(b->d, b->dmin, b->scales, b->qh, b->qs, y);
}

static void deq_q6_K(const void *p, float *y) {
    const it_block_q6_K *b = p;
    float d = h2f(b->d);
    for (int n = 0; n < 2; n++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) {
                uint8_t lb = b->ql[64 * n + l + 32 * (k & 1)];
                int low = k < 2 ? lb & 15 : lb >> 4, high = (b->qh[32 * n + l] >> (2 * k)) & 3;
                int q = (low | high << 4) - 32;
                y[128 * n + 32 * k + l] = d * (float)b->scales[8 * n + 2 * k + l / 16] * (float)q;
            }
}

static void deq_q8_K(const void *p, float *y) {
    // Q8_K's struct is 4-aligned (fp32 d) but a row may start 2-aligned: read through bytes.
    const int8_t *qs = (const int8_t *)p + offsetof(it_block_q8_K, qs);
    float d;
    memcpy(&d, (const char *)p + offsetof(it_block_q8_K, d), sizeof d);
    for (int i = 0; i < IT_QK_K; i++) y[i] = d * (float)qs[i];
}

// Tokens per tile: each weight block is decoded once per tile of this many tokens.
enum { REF_TILE = 32 };

typedef void (*deq_fn)(const void *blk, float *y);

static void ggml_to_float(deq_fn deq, int qk, size_t bytes, const void *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n / qk; i++) deq((const char *)src + (size_t)i * bytes, dst + i * qk);
}

static void ggml_matmul_ref(deq_fn deq, int qk, size_t bytes, const void *w, size_t row_bytes,
                            int64_t n_in, const float *x, int64_t ldx, int64_t nt, float *y,
                            int64_t ldy, int64_t r0, int64_t r1) {
    float blk[IT_QK_K];
    double acc[REF_TILE];
    for (int64_t r = r0; r < r1; r++) {
        const char *row = (const char *)w + (size_t)r * row_bytes;
        for (int64_t t0 = 0; t0 < nt; t0 += REF_TILE) {
            int64_t tn = nt - t0 < REF_TILE ? nt - t0 : REF_TILE;
            memset(acc, 0, sizeof acc);
            for (int64_t b = 0; b < n_in / qk; b++) {
                deq(row + (size_t)b * bytes, blk);
                for (int64_t t = 0; t < tn; t++) {
                    const float *xt = x + (t0 + t) * ldx + b * qk;
                    double s = 0;
                    for (int i = 0; i < qk; i++) s += (double)blk[i] * xt[i];
                    acc[t] += s;
                }
            }
            for (int64_t t = 0; t < tn; t++) y[(t0 + t) * ldy + r] = (float)acc[t];
        }
    }
}

#define DEFINE_GGML(T, QK)                                                                       \
    void fmt_to_float_##T(const void *src, float *dst, int64_t n) {                             \
        ggml_to_float(deq_##T, QK, sizeof(it_block_##T), src, dst, n);                          \
    }                                                                                            \
    void fmt_matmul_##T##_ref(const void *w, size_t row_bytes, int64_t n_in, const float *x,    \
                              int64_t ldx, int64_t nt, float *y, int64_t ldy, int64_t r0,        \
                              int64_t r1) {                                                      \
        ggml_matmul_ref(deq_##T, QK, sizeof(it_block_##T), w, row_bytes, n_in, x, ldx, nt, y,  \
                        ldy, r0, r1);                                                            \
    }

DEFINE_GGML(q4_0, 32)
DEFINE_GGML(q4_1, 32)
DEFINE_GGML(q5_0, 32)
DEFINE_GGML(q5_1, 32)
DEFINE_GGML(q2_K, IT_QK_K)
DEFINE_GGML(q3_K, IT_QK_K)
DEFINE_GGML(q4_K, IT_QK_K)
DEFINE_GGML(q5_K, IT_QK_K)
DEFINE_GGML(q6_K, IT_QK_K)
DEFINE_GGML(q8_K, IT_QK_K)
