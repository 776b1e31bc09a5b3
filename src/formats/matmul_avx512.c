// AVX-512 (F/BW/VL/DQ) matmul kernels for F32, F16, BF16 and Q8_0 weights; same structure as
// matmul_avx2.c with 16-wide vectors and 32 registers:
//
// Decode (nt == 1, bandwidth bound): rows streamed one after another, 4 accumulators, prefetch.
// Small prefill (1 < nt < GEMM_MIN_NT, compute bound): 4-row x 6-token register tile
// (24 accumulators + 4 weight vectors + 1 activation vector of the 32 zmm registers): each group
// of 16 weights is converted once and used for 6 tokens. Token chunks keep X in L2.
// Large prefill: packed-panel GEMM (weights converted and transposed once per call), see below.
// Tails (n_in % 16) use masked loads, which never touch memory past the row.
#include <immintrin.h>
#include <stdlib.h>

#include "core/cpu.h"
#include "core/fp16.h"
#include "formats/fmt_kernels.h"
#include "formats/formats.h"
#include "core/simd.h"


enum { TY_F32, TY_F16, TY_BF16, TY_Q8 };
enum { TILE_R = 4, TILE_T = 6 };
enum { X_CHUNK_BYTES = 256 * 1024 };

// 16 weights of a row from element i, as fp32; lanes outside mask m read as 0 (m = all ones
// except for the n_in % 16 tail of float types; Q8_0 rows are whole 32-blocks).
KI __m512 ld16(const int ty, const char *row, int64_t i, __mmask16 m, const int full) {
    switch (ty) {
    case TY_F32:
        return full ? _mm512_loadu_ps((const float *)row + i)
                    : _mm512_maskz_loadu_ps(m, (const float *)row + i);
    case TY_F16: {
        const uint16_t *p = (const uint16_t *)row + i;
        __m256i h = full ? _mm256_loadu_si256((const __m256i *)p) : _mm256_maskz_loadu_epi16(m, p);
        return _mm512_cvtph_ps(h);
    }
    case TY_BF16: {
        // bf16 is the top half of an fp32: widen to 32 bits and shift into place.
        const uint16_t *p = (const uint16_t *)row + i;
        __m256i h = full ? _mm256_loadu_si256((const __m256i *)p) : _mm256_maskz_loadu_epi16(m, p);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    default: {
        const it_block_q8_0 *b = (const it_block_q8_0 *)row + (i / IT_QK8_0);
        __m128i q = _mm_loadu_si128((const __m128i *)(b->qs + (i % IT_QK8_0)));
        __m512 d = _mm512_set1_ps(_cvtsh_ss(b->d));
        return _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)));
    }
    }
}

KI __m512 ldx16(const float *x, __mmask16 m, const int full) {
    return full ? _mm512_loadu_ps(x) : _mm512_maskz_loadu_ps(m, x);
}

// Horizontal sums of four vectors: lane k of the result is the sum of vector k.
KI __m128 hsum4(__m512 a, __m512 b, __m512 c, __m512 d) {
#define HALF(v) _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1))
    __m256 ab = _mm256_hadd_ps(HALF(a), HALF(b)), cd = _mm256_hadd_ps(HALF(c), HALF(d));
#undef HALF
    __m256 s = _mm256_hadd_ps(ab, cd);
    return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}

// Stores the sums of acc[0..R) to y[0..R) (R <= 4).
KI void store_sums(int R, const __m512 *acc, float *y) {
    __m512 z = _mm512_setzero_ps();
    __m128 s = hsum4(acc[0], R > 1 ? acc[1] : z, R > 2 ? acc[2] : z, R > 3 ? acc[3] : z);
    if (R == 4) {
        _mm_storeu_ps(y, s);
    } else {
        float tmp[4];
        _mm_storeu_ps(tmp, s);
        UNROLL for (int k = 0; k < R; k++) y[k] = tmp[k];
    }
}

// ---- decode: one row at a time ----

// As in matmul_avx2.c: one sequential stream per thread (rows are contiguous), 4 accumulators,
// software prefetch pf bytes ahead (across row ends into the next rows): KERN_PF_ZEN on AMD Zen 5,
// 2 KB on Intel, where 4 KB made F16 decode 23% slower (it_cpu_stream_prefetch). On Zen 4 pf is 0
// (each prefetch names the line being loaded): its hardware prefetcher alone decoded F16 TinyLlama
// 10-15% faster than 0.5 or 4 KB ahead (4 alternating rounds, docs/speed.md).
#define KERN_PF_ZEN 4096

KI __m512 decode_row(const int ty, const char *row, int64_t n, const float *x, const size_t pf) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    if (ty == TY_Q8) {
        // Per block: unscaled dot product of 32 weights, then one FMA with the block scale.
        const it_block_q8_0 *b = (const it_block_q8_0 *)row;
        for (; i + 64 <= n; i += 64, b += 2) {
            _mm_prefetch((const char *)b + pf, _MM_HINT_T0);
            _mm_prefetch((const char *)b + pf + 64, _MM_HINT_T0);
#define Q8F(blk, o) _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)((blk)->qs + (o)))))
            __m512 s0 = _mm512_mul_ps(Q8F(b, 0), _mm512_loadu_ps(x + i));
            __m512 s1 = _mm512_mul_ps(Q8F(b + 1, 0), _mm512_loadu_ps(x + i + 32));
            s0 = _mm512_fmadd_ps(Q8F(b, 16), _mm512_loadu_ps(x + i + 16), s0);
            s1 = _mm512_fmadd_ps(Q8F(b + 1, 16), _mm512_loadu_ps(x + i + 48), s1);
            a0 = _mm512_fmadd_ps(_mm512_set1_ps(_cvtsh_ss(b[0].d)), s0, a0);
            a1 = _mm512_fmadd_ps(_mm512_set1_ps(_cvtsh_ss(b[1].d)), s1, a1);
        }
        if (i < n) {
            __m512 s0 = _mm512_mul_ps(Q8F(b, 0), _mm512_loadu_ps(x + i));
            s0 = _mm512_fmadd_ps(Q8F(b, 16), _mm512_loadu_ps(x + i + 16), s0);
            a2 = _mm512_mul_ps(_mm512_set1_ps(_cvtsh_ss(b[0].d)), s0);
#undef Q8F
        }
    } else {
        const int64_t eb = ty == TY_F32 ? 4 : 2;
        for (; i + 64 <= n; i += 64) {
            // 64 weights are 128 (16-bit) or 256 (fp32) bytes: one prefetch per cache line.
            const char *p = row + i * eb + pf;
            _mm_prefetch(p, _MM_HINT_T0);
            _mm_prefetch(p + 64, _MM_HINT_T0);
            if (eb == 4) {
                _mm_prefetch(p + 128, _MM_HINT_T0);
                _mm_prefetch(p + 192, _MM_HINT_T0);
            }
            a0 = _mm512_fmadd_ps(ld16(ty, row, i, 0xffff, 1), _mm512_loadu_ps(x + i), a0);
            a1 = _mm512_fmadd_ps(ld16(ty, row, i + 16, 0xffff, 1), _mm512_loadu_ps(x + i + 16), a1);
            a2 = _mm512_fmadd_ps(ld16(ty, row, i + 32, 0xffff, 1), _mm512_loadu_ps(x + i + 32), a2);
            a3 = _mm512_fmadd_ps(ld16(ty, row, i + 48, 0xffff, 1), _mm512_loadu_ps(x + i + 48), a3);
        }
        for (; i + 16 <= n; i += 16)
            a0 = _mm512_fmadd_ps(ld16(ty, row, i, 0xffff, 1), _mm512_loadu_ps(x + i), a0);
        if (i < n) {
            __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
            a1 = _mm512_fmadd_ps(ld16(ty, row, i, m, 0), _mm512_maskz_loadu_ps(m, x + i), a1);
        }
    }
    return _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
}

KI void decode(const int ty, const char *w, size_t rb, int64_t n, const float *x, float *y,
               int64_t r0, int64_t r1) {
    const size_t pf = (size_t)it_cpu_stream_prefetch(KERN_PF_ZEN, 0);
    for (int64_t r = r0; r < r1; r += 4) {
        // Rows go 4 at a time only to share the final horizontal sums.
        int R = r1 - r < 4 ? (int)(r1 - r) : 4;
        __m512 v[4];
        _Pragma("GCC unroll 1") for (int k = 0; k < R; k++)
            v[k] = decode_row(ty, w + (size_t)(r + k) * rb, n, x, pf);
        store_sums(R, v, y + r);
    }
}

// ---- prefill: R (1..4) rows x T (1..6) tokens register tile ----

KI void tile_step(const int ty, const int R, const int T, const char *const *row, int64_t i,
                  const float *x, int64_t ldx, __m512 acc[TILE_T][TILE_R], __mmask16 m,
                  const int full) {
    __m512 wv[TILE_R];
    UNROLL for (int k = 0; k < R; k++) wv[k] = ld16(ty, row[k], i, m, full);
    UNROLL for (int t = 0; t < T; t++) {
        __m512 xv = ldx16(x + t * ldx + i, m, full);
        UNROLL for (int k = 0; k < R; k++) acc[t][k] = _mm512_fmadd_ps(wv[k], xv, acc[t][k]);
    }
}

KI void tile(const int ty, const int R, const int T, const char *w, size_t rb, int64_t n,
             const float *x, int64_t ldx, float *y, int64_t ldy) {
    const char *row[TILE_R];
    UNROLL for (int k = 0; k < R; k++) row[k] = w + (size_t)k * rb;
    __m512 acc[TILE_T][TILE_R];
    UNROLL for (int t = 0; t < T; t++) UNROLL for (int k = 0; k < R; k++) acc[t][k] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) tile_step(ty, R, T, row, i, x, ldx, acc, 0xffff, 1);
    if (i < n) tile_step(ty, R, T, row, i, x, ldx, acc, (__mmask16)((1u << (n - i)) - 1), 0);
    UNROLL for (int t = 0; t < T; t++) store_sums(R, acc[t], y + t * ldy);
}

typedef void (*tiles_fn)(int, int, const char *, size_t, int64_t, const float *, int64_t, float *,
                         int64_t);

KI void prefill(const char *w, size_t rb, int64_t n, const float *x, int64_t ldx, int64_t nt,
                float *y, int64_t ldy, int64_t r0, int64_t r1, tiles_fn tilefn) {
    // Equal chunks of at most X_CHUNK_BYTES of X (rounded up to whole token tiles), so that no
    // chunk is a sliver that runs at the speed of a narrow tile.
    int64_t cmax = X_CHUNK_BYTES / (n * (int64_t)sizeof(float));
    cmax = cmax < TILE_T ? TILE_T : cmax;
    int64_t nchunks = (nt + cmax - 1) / cmax;
    int64_t chunk = ((nt + nchunks - 1) / nchunks + TILE_T - 1) / TILE_T * TILE_T;
    for (int64_t c0 = 0; c0 < nt; c0 += chunk) {
        int64_t c1 = c0 + chunk < nt ? c0 + chunk : nt;
        for (int64_t r = r0; r < r1; r += TILE_R) {
            int R = r1 - r < TILE_R ? (int)(r1 - r) : TILE_R;
            for (int64_t t = c0; t < c1; t += TILE_T) {
                int T = c1 - t < TILE_T ? (int)(c1 - t) : TILE_T;
                tilefn(R, T, w + (size_t)r * rb, rb, n, x + t * ldx, ldx, y + t * ldy + r, ldy);
            }
        }
    }
}

// ---- prefill, larger nt: packed-panel GEMM ----
//
// For enough tokens it pays to convert each weight once and vectorize over output rows instead of
// over n_in: a panel of PW rows x KB inputs is converted to fp32 and transposed into P[i][row]
// (32 KiB, stays in L1), then for every tile of TT tokens the micro-kernel does, per input i,
// 2 vector loads of P and TT broadcasts of x[t][i] into PW/16 x TT = 24 accumulators that hold
// y[t][row..row+32] directly: no horizontal sums, no per-token re-conversion. The K dimension is
// blocked (KB) so P and the X block stay cached; partial sums accumulate in Y.
// Below GEMM_MIN_NT tokens the direct tile is faster (measured on Zen 5: the transposing pack
// costs about as much as 16 tokens of FMAs); from there on both run at ~180-200 GFLOP/s on one
// core and the GEMM wins on big matrices because it streams the weights once per call instead of
// once per token chunk.
#ifndef GEMM_MIN_NT
#define GEMM_MIN_NT 32
#endif
enum { GEMM_PW = 32, GEMM_TT = 12, GEMM_KB = 256 };

// P[i*PW + j] = W[row j][k0 + i] as fp32 for i < kb, j < PW; rows j >= pr are zero.
KI void pack_panel(const int ty, const char *w, size_t rb, int64_t k0, int64_t kb, int pr,
                   float *P) {
    for (int g = 0; g < GEMM_PW; g += 16) {
        for (int64_t c = 0; c < kb; c += 16) {
            int m = kb - c < 16 ? (int)(kb - c) : 16;
            __mmask16 mask = (__mmask16)((1u << m) - 1);
            __m512 r[16];
            UNROLL for (int j = 0; j < 16; j++) {
                if (g + j < pr) {
                    const char *row = w + (size_t)(g + j) * rb;
                    r[j] = m == 16 ? ld16(ty, row, k0 + c, 0xffff, 1) : ld16(ty, row, k0 + c, mask, 0);
                } else {
                    r[j] = _mm512_setzero_ps();
                }
            }
            simd_transpose16(r);
            UNROLL for (int j = 0; j < 16; j++) _mm512_store_ps(P + (c + j) * GEMM_PW + g, r[j]);
        }
    }
}

// The X tile packed as XP[i * GEMM_TT + t] = x[t][k0 + i] (t < T), for every tile of the call, once
// per k block. Why: rows of x are n_in floats apart, and for n_in a multiple of 1024 (2048-wide
// TinyLlama / LLaMA matrices: 8 KB) the TT broadcasts of one step all hit the same L1 set, so the
// tile evicted the packed panel P from L1; packed, a step reads TT consecutive floats.
KI void pack_x(const float *x, int64_t ldx, int T, int64_t k0, int64_t kb, float *XP) {
    for (int64_t c = 0; c < kb; c += 16) {
        int m = kb - c < 16 ? (int)(kb - c) : 16;
        __mmask16 mask = (__mmask16)((1u << m) - 1);
        __m512 r[16];
        UNROLL for (int t = 0; t < 16; t++)
            r[t] = t < T ? _mm512_maskz_loadu_ps(mask, x + t * ldx + k0 + c) : _mm512_setzero_ps();
        simd_transpose16(r);   // r[i] lane t = x[t][k0 + c + i]
        for (int i = 0; i < m; i++) _mm512_mask_storeu_ps(XP + (c + i) * GEMM_TT, (__mmask16)((1u << GEMM_TT) - 1), r[i]);
    }
}

// y[t*ldy + j] (+)= sum_{i<kb} P[i][j] * XP[i][t] for t < T, j < pr (masks m0, m1).
KI void gemm_micro(const int T, const float *P, int64_t kb, const float *XP, float *y, int64_t ldy,
                   __mmask16 m0, __mmask16 m1, int accumulate) {
    __m512 acc[GEMM_TT][2];
    UNROLL for (int t = 0; t < T; t++) {
        if (accumulate) {
            acc[t][0] = _mm512_maskz_loadu_ps(m0, y + t * ldy);
            acc[t][1] = _mm512_maskz_loadu_ps(m1, y + t * ldy + 16);
        } else {
            acc[t][0] = acc[t][1] = _mm512_setzero_ps();
        }
    }
    for (int64_t i = 0; i < kb; i++) {
        __m512 w0 = _mm512_load_ps(P + i * GEMM_PW), w1 = _mm512_load_ps(P + i * GEMM_PW + 16);
        UNROLL for (int t = 0; t < T; t++) {
            __m512 xb = _mm512_set1_ps(XP[i * GEMM_TT + t]);
            acc[t][0] = _mm512_fmadd_ps(w0, xb, acc[t][0]);
            acc[t][1] = _mm512_fmadd_ps(w1, xb, acc[t][1]);
        }
    }
    UNROLL for (int t = 0; t < T; t++) {
        _mm512_mask_storeu_ps(y + t * ldy, m0, acc[t][0]);
        _mm512_mask_storeu_ps(y + t * ldy + 16, m1, acc[t][1]);
    }
}

#define MICRO_CASE(T) case T: gemm_micro(T, P, kb, XP, y, ldy, m0, m1, acc); break;
static void gemm_micro_any(int T, const float *P, int64_t kb, const float *XP, float *y, int64_t ldy,
                           __mmask16 m0, __mmask16 m1, int acc) {
    switch (T) {
        MICRO_CASE(12) MICRO_CASE(11) MICRO_CASE(10) MICRO_CASE(9) MICRO_CASE(8) MICRO_CASE(7)
        MICRO_CASE(6) MICRO_CASE(5) MICRO_CASE(4) MICRO_CASE(3) MICRO_CASE(2) MICRO_CASE(1)
    default: break;
    }
}

// Tokens [t0, t1) over rows r0..r1-1; XP holds (t1 - t0) / GEMM_TT rounded up packed tiles.
KI void gemm_span(const int ty, const char *w, size_t rb, int64_t n, const float *x, int64_t ldx, int64_t t0,
                  int64_t t1, float *y, int64_t ldy, int64_t r0, int64_t r1, float *P, float *XP) {
    for (int64_t k0 = 0; k0 < n; k0 += GEMM_KB) {
        int64_t kb = n - k0 < GEMM_KB ? n - k0 : GEMM_KB;
        for (int64_t t = t0; t < t1; t += GEMM_TT) {
            int T = t1 - t < GEMM_TT ? (int)(t1 - t) : GEMM_TT;
            pack_x(x + t * ldx, ldx, T, k0, kb, XP + (t - t0) / GEMM_TT * GEMM_KB * GEMM_TT);
        }
        for (int64_t p0 = r0; p0 < r1; p0 += GEMM_PW) {
            int pr = r1 - p0 < GEMM_PW ? (int)(r1 - p0) : GEMM_PW;
            pack_panel(ty, w + (size_t)p0 * rb, rb, k0, kb, pr, P);
            __mmask16 m0 = pr >= 16 ? 0xffff : (__mmask16)((1u << pr) - 1);
            __mmask16 m1 = pr >= 32 ? 0xffff : pr <= 16 ? 0 : (__mmask16)((1u << (pr - 16)) - 1);
            for (int64_t t = t0; t < t1; t += GEMM_TT) {
                int T = t1 - t < GEMM_TT ? (int)(t1 - t) : GEMM_TT;
                gemm_micro_any(T, P, kb, XP + (t - t0) / GEMM_TT * GEMM_KB * GEMM_TT, y + t * ldy + p0, ldy, m0,
                               m1, k0 > 0);
            }
        }
    }
}

KI void gemm(const int ty, const char *w, size_t rb, int64_t n, const float *x, int64_t ldx,
             int64_t nt, float *y, int64_t ldy, int64_t r0, int64_t r1) {
    _Alignas(64) float P[GEMM_KB * GEMM_PW];
    // All tiles' packed X in one buffer (nt x 1 KB); if that allocation fails, one tile at a time
    // from the stack (the panel is then re-packed per tile: slower, same result).
    int64_t ntiles = (nt + GEMM_TT - 1) / GEMM_TT;
    float *XP = aligned_alloc(64, (size_t)ntiles * GEMM_KB * GEMM_TT * sizeof(float));
    if (XP) {
        gemm_span(ty, w, rb, n, x, ldx, 0, nt, y, ldy, r0, r1, P, XP);
        free(XP);
        return;
    }
    _Alignas(64) float XS[GEMM_KB * GEMM_TT];
    for (int64_t t = 0; t < nt; t += GEMM_TT)
        gemm_span(ty, w, rb, n, x, ldx, t, t + GEMM_TT < nt ? t + GEMM_TT : nt, y, ldy, r0, r1, P, XS);
}

#define TILE_CASE(R, T) \
    case (R) * 8 + (T): tile(ty, R, T, w, rb, n, x, ldx, y, ldy); break;
#define TILE_ROW(R) TILE_CASE(R, 6) TILE_CASE(R, 5) TILE_CASE(R, 4) TILE_CASE(R, 3) \
    TILE_CASE(R, 2) TILE_CASE(R, 1)

#define DEFINE_KERNEL(NAME, TY)                                                                  \
    static void tiles_##NAME(int R, int T, const char *w, size_t rb, int64_t n, const float *x,  \
                             int64_t ldx, float *y, int64_t ldy) {                               \
        const int ty = TY;                                                                       \
        switch (R * 8 + T) {                                                                     \
            TILE_ROW(4) TILE_ROW(3) TILE_ROW(2) TILE_ROW(1)                                      \
        default: break;                                                                          \
        }                                                                                        \
    }                                                                                            \
    void fmt_matmul_##NAME##_avx512(const void *w, size_t row_bytes, int64_t n_in,             \
                                     const float *x, int64_t ldx, int64_t nt, float *y,          \
                                     int64_t ldy, int64_t r0, int64_t r1) {                      \
        if (nt == 1)                                                                             \
            decode(TY, w, row_bytes, n_in, x, y, r0, r1);                                        \
        else if (nt < GEMM_MIN_NT)                                                               \
            prefill(w, row_bytes, n_in, x, ldx, nt, y, ldy, r0, r1, tiles_##NAME);               \
        else                                                                                     \
            gemm(TY, w, row_bytes, n_in, x, ldx, nt, y, ldy, r0, r1);                            \
    }

DEFINE_KERNEL(f32, TY_F32)
DEFINE_KERNEL(f16, TY_F16)
DEFINE_KERNEL(bf16, TY_BF16)
DEFINE_KERNEL(q8_0, TY_Q8)
