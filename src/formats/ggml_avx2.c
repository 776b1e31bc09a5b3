// AVX2 + FMA twins of ggml_ref.c's Q4_0 and Q4_K kernels. Each 32-weight group is decoded into four
// registers of floats (the very values the reference decodes: code times scale is exact in float,
// Q4_K's "- dmin*min" is one fused rounding as in the reference's float expression) and multiplied
// into per-token float accumulators; a tile of 4 tokens shares one decode. Tested against the
// reference in tests/test_kernels.c.
#include <immintrin.h>

#include "core/fp16.h"
#include "formats/fmt_kernels.h"
#include "formats/formats.h"

enum { TILE = 4 };

// 32 bytes of codes 0..15 (one per weight) -> 4 x 8 floats.
static inline void codes_to_ps(__m256i q8, __m256 out[4]) {
    __m128i lo = _mm256_castsi256_si128(q8), hi = _mm256_extracti128_si256(q8, 1);
    out[0] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo));
    out[1] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)));
    out[2] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi));
    out[3] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)));
}

// Q4_0 group g (= block g): x = d * (q - 8); low nibbles are weights 0..15, high ones 16..31.
static inline void decode_q4_0(const char *row, int64_t g, __m256 w[4]) {
    const it_block_q4_0 *b = (const it_block_q4_0 *)(const void *)(row + (size_t)g * sizeof(it_block_q4_0));
    __m128i qs = _mm_loadu_si128((const __m128i *)(const void *)b->qs), m4 = _mm_set1_epi8(15);
    __m256i q = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(qs, 4), m4), _mm_and_si128(qs, m4));
    codes_to_ps(q, w);
    __m256 d = _mm256_set1_ps(it_fp16_to_f32(b->d)), eight = _mm256_set1_ps(8.0f);
    for (int k = 0; k < 4; k++) w[k] = _mm256_mul_ps(_mm256_sub_ps(w[k], eight), d);
}

// Q4_K group g: block g / 8, sub-block s = g % 8 (nibble s % 2 of qs[32*(s/2) ..]),
// x = (d*sc_s) * q - dmin*m_s. The 6-bit scale/min unpacking as in ggml_ref.c.
static inline void decode_q4_K(const char *row, int64_t g, __m256 w[4]) {
    const it_block_q4_K *b = (const it_block_q4_K *)(const void *)(row + (size_t)(g / 8) * sizeof(it_block_q4_K));
    int s = (int)(g % 8), sc, mn;
    const uint8_t *k = b->scales;
    if (s < 4) {
        sc = k[s] & 63;
        mn = k[s + 4] & 63;
    } else {
        sc = (k[s + 4] & 15) | (k[s - 4] >> 6) << 4;
        mn = (k[s + 4] >> 4) | (k[s] >> 6) << 4;
    }
    __m256i qs = _mm256_loadu_si256((const __m256i *)(const void *)(b->qs + 32 * (s / 2)));
    if (s % 2) qs = _mm256_srli_epi16(qs, 4);
    codes_to_ps(_mm256_and_si256(qs, _mm256_set1_epi8(15)), w);
    __m256 ds = _mm256_set1_ps(it_fp16_to_f32(b->d) * (float)sc);
    __m256 ms = _mm256_set1_ps(it_fp16_to_f32(b->dmin) * (float)mn);
    for (int j = 0; j < 4; j++) w[j] = _mm256_fmsub_ps(ds, w[j], ms);
}

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#define DEFINE_AVX2(T)                                                                              \
    void fmt_matmul_##T##_avx2(const void *w, size_t row_bytes, int64_t n_in, const float *x,      \
                               int64_t ldx, int64_t nt, float *y, int64_t ldy, int64_t r0,          \
                               int64_t r1) {                                                        \
        for (int64_t r = r0; r < r1; r++) {                                                         \
            const char *row = (const char *)w + (size_t)r * row_bytes;                             \
            for (int64_t t0 = 0; t0 < nt; t0 += TILE) {                                             \
                int64_t tn = nt - t0 < TILE ? nt - t0 : TILE;                                       \
                __m256 acc[TILE];                                                                   \
                for (int t = 0; t < TILE; t++) acc[t] = _mm256_setzero_ps();                       \
                for (int64_t g = 0; g < n_in / 32; g++) {                                           \
                    __m256 wv[4];                                                                   \
                    decode_##T(row, g, wv);                                                         \
                    for (int64_t t = 0; t < tn; t++) {                                              \
                        const float *xt = x + (t0 + t) * ldx + g * 32;                              \
                        for (int k = 0; k < 4; k++)                                                 \
                            acc[t] = _mm256_fmadd_ps(wv[k], _mm256_loadu_ps(xt + 8 * k), acc[t]);   \
                    }                                                                               \
                }                                                                                   \
                for (int64_t t = 0; t < tn; t++) y[(t0 + t) * ldy + r] = hsum(acc[t]);              \
            }                                                                                       \
        }                                                                                           \
    }

DEFINE_AVX2(q4_0)
DEFINE_AVX2(q4_K)
