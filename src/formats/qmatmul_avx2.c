// AVX2 + FMA + F16C matmul kernels for the integer formats of formats/qformat.h, reading the packed
// blocks in place (fp32 activations, fp32 FMA accumulation). Same structure as
// qmatmul_avx512.c; the fallback for CPUs without AVX-512.
//
// Unpacking: AVX2's vpermps only has an 8-entry table, so instead of a LUT the q values are
// unpacked to int32 lanes with shifts and masks, z is subtracted in int32 (exact) and the result
// converted: (q - z) as float, 8 at a time. Decode accumulates the unscaled per-block dot
// product and scales it by d with one FMA per block; prefill dequantizes d * (q - z) (the exact
// value of qf_dequantize_row) into a strip buffer and runs a 3 x 4 register tile over it.
#include <immintrin.h>
#include <string.h>

#include "formats/fmt_kernels.h"
#include "core/simd.h"


#ifndef KERN_PF_DIST
#define KERN_PF_DIST 4096
#endif

// 12 accumulators + 3 weight vectors + 1 activation vector = all 16 ymm registers.
enum { TILE_R = 3, TILE_T = 4, PF_KB = 1024, X_CHUNK_BYTES = 256 * 1024 };

// ---- one block ----

KI size_t hdr_bytes(const int S) { return S ? 2 : 3; }
KI size_t blk_bytes(const int B, const int G, const int S) { return hdr_bytes(S) + (size_t)(G * B / 8); }
KI float blk_d(const uint8_t *b) {
    uint16_t h;
    memcpy(&h, b, 2);
    return _cvtsh_ss(h);
}
KI int blk_z(const int B, const int S, const uint8_t *b) { return S ? 1 << (B - 1) : b[2]; }

KI __m256i load8_u8(const uint8_t *p) { // 8 bytes zero-extended to 8 int32 lanes
    uint64_t v;
    memcpy(&v, p, 8);
    return _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)v));
}

// (q - z) as float for the 32 weights of sub-block k, in 4 vectors of 8 consecutive weights.
KI void unpack32(const int B, const int G, const uint8_t *qs, int k, __m256i zv, __m256 out[4]) {
    __m256i q[4];
    if (B == 8) {
        UNROLL for (int p = 0; p < 4; p++) q[p] = load8_u8(qs + 32 * k + 8 * p);
    } else if (B == 4) { // byte j: low nibble = weight j, high nibble = weight j + 16
        const __m256i m4 = _mm256_set1_epi32(15);
        __m256i v0 = load8_u8(qs + 16 * k), v1 = load8_u8(qs + 16 * k + 8);
        q[0] = _mm256_and_si256(v0, m4);
        q[1] = _mm256_and_si256(v1, m4);
        q[2] = _mm256_srli_epi32(v0, 4);
        q[3] = _mm256_srli_epi32(v1, 4);
    } else { // byte j, bits 2p..2p+1 = weight j + 8p; b = 3 adds bit j of the high-bit word
        const __m256i m2 = _mm256_set1_epi32(3);
        __m256i v = load8_u8(qs + 8 * k);
        UNROLL for (int p = 0; p < 4; p++) q[p] = _mm256_and_si256(_mm256_srli_epi32(v, 2 * p), m2);
        if (B == 3) {
            uint32_t hb;
            memcpy(&hb, qs + G / 4 + 4 * k, 4);
            // Lane j of part p tests bit 8p + j of the word broadcast once.
            const __m256i h = _mm256_set1_epi32((int)hb), four = _mm256_set1_epi32(4);
            UNROLL for (int p = 0; p < 4; p++) {
                const __m256i bit = _mm256_sllv_epi32(_mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128),
                                                      _mm256_set1_epi32(8 * p));
                __m256i set = _mm256_cmpeq_epi32(_mm256_and_si256(h, bit), bit);
                q[p] = _mm256_or_si256(q[p], _mm256_and_si256(set, four));
            }
        }
    }
    UNROLL for (int p = 0; p < 4; p++) out[p] = _mm256_cvtepi32_ps(_mm256_sub_epi32(q[p], zv));
}

// Writes the G dequantized weights of one block to out (32-byte aligned).
KI void deq_block(const int B, const int G, const int S, const uint8_t *blk, float *out) {
    const uint8_t *qs = blk + hdr_bytes(S);
    __m256i zv = _mm256_set1_epi32(blk_z(B, S, blk));
    __m256 d = _mm256_set1_ps(blk_d(blk));
    UNROLL for (int k = 0; k < G / 32; k++) {
        __m256 v[4];
        unpack32(B, G, qs, k, zv, v);
        UNROLL for (int p = 0; p < 4; p++) _mm256_store_ps(out + 32 * k + 8 * p, _mm256_mul_ps(v[p], d));
    }
}

// ---- decode ----

KI void decode_block(const int B, const int G, const int S, const uint8_t *blk, const float *x,
                     __m256 acc[4]) {
    const size_t bb = blk_bytes(B, G, S);
    UNROLL for (size_t o = 0; o < bb; o += 64) _mm_prefetch((const char *)blk + KERN_PF_DIST + o, _MM_HINT_T0);
    const uint8_t *qs = blk + hdr_bytes(S);
    __m256i zv = _mm256_set1_epi32(blk_z(B, S, blk));
    __m256 s[4];
    UNROLL for (int k = 0; k < G / 32; k++) {
        __m256 v[4];
        unpack32(B, G, qs, k, zv, v);
        UNROLL for (int p = 0; p < 4; p++) {
            __m256 xv = _mm256_loadu_ps(x + 32 * k + 8 * p);
            s[p] = k == 0 ? _mm256_mul_ps(v[p], xv) : _mm256_fmadd_ps(v[p], xv, s[p]);
        }
    }
    __m256 d = _mm256_set1_ps(blk_d(blk));
    UNROLL for (int p = 0; p < 4; p++) acc[p] = _mm256_fmadd_ps(d, s[p], acc[p]);
}

KI __m256 decode_row(const int B, const int G, const int S, const uint8_t *row, int64_t n,
                     const float *x) {
    const size_t bb = blk_bytes(B, G, S);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t g = 0; g < n / G; g++) decode_block(B, G, S, row + (size_t)g * bb, x + g * G, acc);
    return _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
}

// Horizontal sums of four vectors: lane k of the result is the sum of vector k.
KI __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
    __m256 ab = _mm256_hadd_ps(a, b), cd = _mm256_hadd_ps(c, d);
    __m256 s = _mm256_hadd_ps(ab, cd);
    return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}

// y[0..R) = (accumulate ? y : 0) + the sums of acc[0..R), R <= 4.
KI void store_sums(int R, const __m256 *acc, float *y, int accumulate) {
    __m256 z = _mm256_setzero_ps();
    __m128 s = hsum4(acc[0], R > 1 ? acc[1] : z, R > 2 ? acc[2] : z, R > 3 ? acc[3] : z);
    float tmp[4];
    _mm_storeu_ps(tmp, s);
    UNROLL for (int k = 0; k < R; k++) y[k] = accumulate ? y[k] + tmp[k] : tmp[k];
}

KI void decode(const int B, const int G, const int S, const uint8_t *w, size_t rb, int64_t n,
               const float *x, float *y, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r += 4) {
        // Rows go 4 at a time only to share the final horizontal sums.
        int R = r1 - r < 4 ? (int)(r1 - r) : 4;
        __m256 v[4];
        _Pragma("GCC unroll 1") for (int k = 0; k < R; k++)
            v[k] = decode_row(B, G, S, w + (size_t)(r + k) * rb, n, x);
        store_sums(R, v, y + r, 0);
    }
}

// ---- prefill ----

// y[t*ldy + k] (+)= sum_{i<kb} buf[k*PF_KB + i] * x[t*ldx + i], k < R, t < T; kb % 8 == 0.
KI void tile(const int R, const int T, const float *buf, int64_t kb, const float *x, int64_t ldx,
             float *y, int64_t ldy, int accumulate) {
    __m256 acc[TILE_T][TILE_R];
    UNROLL for (int t = 0; t < T; t++) UNROLL for (int k = 0; k < R; k++) acc[t][k] = _mm256_setzero_ps();
    for (int64_t i = 0; i < kb; i += 8) {
        __m256 wv[TILE_R];
        UNROLL for (int k = 0; k < R; k++) wv[k] = _mm256_load_ps(buf + k * PF_KB + i);
        UNROLL for (int t = 0; t < T; t++) {
            __m256 xv = _mm256_loadu_ps(x + t * ldx + i);
            UNROLL for (int k = 0; k < R; k++) acc[t][k] = _mm256_fmadd_ps(wv[k], xv, acc[t][k]);
        }
    }
    UNROLL for (int t = 0; t < T; t++) store_sums(R, acc[t], y + t * ldy, accumulate);
}

#define TILE_CASE(R, T) case (R) * 8 + (T): tile(R, T, buf, kb, x, ldx, y, ldy, acc); break;
#define TILE_ROW(R) TILE_CASE(R, 4) TILE_CASE(R, 3) TILE_CASE(R, 2) TILE_CASE(R, 1)
static void tile_any(int R, int T, const float *buf, int64_t kb, const float *x, int64_t ldx,
                     float *y, int64_t ldy, int acc) {
    switch (R * 8 + T) {
        TILE_ROW(3) TILE_ROW(2) TILE_ROW(1)
    default: break;
    }
}

// Dequantizes inputs [k0, k0 + kb) of one row (k0, kb multiples of G) into out.
typedef void (*deq_span_fn)(const uint8_t *row, int64_t k0, int64_t kb, float *out);

KI void deq_span(const int B, const int G, const int S, const uint8_t *row, int64_t k0, int64_t kb,
                 float *out) {
    const size_t bb = blk_bytes(B, G, S);
    for (int64_t i = 0; i < kb; i += G) deq_block(B, G, S, row + (size_t)((k0 + i) / G) * bb, out + i);
}

// Strips of TILE_R rows x PF_KB inputs dequantized once per token chunk (X chunk in L2), swept
// by the register tile; partial sums over the PF_KB blocks accumulate in Y.
static void prefill(deq_span_fn deq, const uint8_t *w, size_t rb, int64_t n, const float *x,
                    int64_t ldx, int64_t nt, float *y, int64_t ldy, int64_t r0, int64_t r1) {
    _Alignas(32) float buf[TILE_R * PF_KB];
    for (int64_t k0 = 0; k0 < n; k0 += PF_KB) {
        int64_t kb = n - k0 < PF_KB ? n - k0 : PF_KB;
        int64_t cmax = X_CHUNK_BYTES / (kb * (int64_t)sizeof(float));
        cmax = cmax < TILE_T ? TILE_T : cmax;
        int64_t nchunks = (nt + cmax - 1) / cmax;
        int64_t chunk = ((nt + nchunks - 1) / nchunks + TILE_T - 1) / TILE_T * TILE_T;
        for (int64_t c0 = 0; c0 < nt; c0 += chunk) {
            int64_t c1 = c0 + chunk < nt ? c0 + chunk : nt;
            for (int64_t r = r0; r < r1; r += TILE_R) {
                int R = r1 - r < TILE_R ? (int)(r1 - r) : TILE_R;
                for (int k = 0; k < R; k++) deq(w + (size_t)(r + k) * rb, k0, kb, buf + k * PF_KB);
                // Tiles of nearly equal width (8 tokens: 4 + 4, not 6 + 2): a narrow tile
                // reloads the weights for few FMAs.
                int64_t ntiles = (c1 - c0 + TILE_T - 1) / TILE_T;
                for (int64_t j = 0, t = c0; j < ntiles; j++) {
                    int T = (int)((c1 - c0) / ntiles + (j < (c1 - c0) % ntiles));
                    tile_any(R, T, buf, kb, x + t * ldx + k0, ldx, y + t * ldy + r, ldy, k0 > 0);
                    t += T;
                }
            }
        }
    }
}

// ---- one kernel per format ----

#define QF_AVX2(B, G, S)                                                                         \
    static void deq_i##B##_g##G##_s##S(const uint8_t *row, int64_t k0, int64_t kb, float *out) { \
        deq_span(B, G, S, row, k0, kb, out);                                                     \
    }                                                                                            \
    void fmt_qmatmul_i##B##_g##G##_s##S##_avx2(const void *w, size_t rb, int64_t n, const float *x, \
                                        int64_t ldx, int64_t nt, float *y, int64_t ldy,          \
                                        int64_t r0, int64_t r1) {                                \
        if (nt == 1)                                                                             \
            decode(B, G, S, w, rb, n, x, y, r0, r1);                                             \
        else                                                                                     \
            prefill(deq_i##B##_g##G##_s##S, w, rb, n, x, ldx, nt, y, ldy, r0, r1);               \
    }
QF_FOR_EACH_FORMAT(QF_AVX2)
