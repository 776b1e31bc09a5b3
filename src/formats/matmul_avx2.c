// AVX2 + FMA + F16C matmul kernels for F32, F16, BF16 and Q8_0 weights (fp32 activations, fp32
// FMA accumulation). One generic body per shape, specialised per weight type at compile time: the
// type is a constant argument of always-inline helpers, so each exported kernel gets its own
// straight-line code.
//
// Decode (nt == 1) is bandwidth bound: rows are streamed one after another (one sequential stream
// per thread) with 4 independent accumulators and a software prefetch ahead of the stream.
// Small prefill (1 < nt < GEMM_MIN_NT) is compute bound: a 3-row x 4-token register tile
// (12 accumulators + 3 weight vectors + 1 activation vector = all 16 ymm registers) converts each
// group of 8 weights once and uses it for 4 tokens. Tokens are processed in chunks whose
// activations fit in L2, so X comes from cache while a tile's weight rows are re-read from L1/L2.
// Large prefill: packed-panel GEMM (weights converted and transposed once per call), see below.
//
// All loads of weights and X are unaligned: weights come straight from mmapped files at arbitrary
// offsets.
#include <immintrin.h>

#include "core/fp16.h"
#include "formats/fmt_kernels.h"
#include "formats/formats.h"
#include "core/simd.h"


enum { TY_F32, TY_F16, TY_BF16, TY_Q8 };
enum { TILE_R = 3, TILE_T = 4 };
// Activation bytes per token chunk: well inside the 1 MiB L2 of a Zen 4/5 core.
enum { X_CHUNK_BYTES = 256 * 1024 };

// Lanes [0, n) set: masks the n_in % 8 tail of fp32 loads.
KI __m256i tail_mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// 8 weights of a row starting at element i (i a multiple of 8), as fp32.
KI __m256 ld8(const int ty, const char *row, int64_t i) {
    switch (ty) {
    case TY_F32: return _mm256_loadu_ps((const float *)row + i);
    case TY_F16:
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + i)));
    case TY_BF16: {
        // bf16 is the top half of an fp32: widen to 32 bits and shift into place.
        __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)row + i));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    default: {
        const it_block_q8_0 *b = (const it_block_q8_0 *)row + (i / IT_QK8_0);
        __m128i q = _mm_loadl_epi64((const __m128i *)(b->qs + (i % IT_QK8_0)));
        __m256 d = _mm256_set1_ps(_cvtsh_ss(b->d));
        return _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)));
    }
    }
}

// The last n (1..7) weights of a float-type row from element i, zero padded to 8. Q8_0 rows are
// whole blocks (n_in % 32 == 0), so they never get here.
KI __m256 ld_tail(const int ty, const char *row, int64_t i, int n) {
    if (ty == TY_F32) return _mm256_maskload_ps((const float *)row + i, tail_mask(n));
    float buf[8] = {0};
    const uint16_t *h = (const uint16_t *)row + i;
    for (int k = 0; k < n; k++) buf[k] = ty == TY_F16 ? _cvtsh_ss(h[k]) : it_bf16_to_f32(h[k]);
    return _mm256_loadu_ps(buf);
}

// Horizontal sums of four vectors: lane k of the result is the sum of vector k.
KI __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
    __m256 ab = _mm256_hadd_ps(a, b), cd = _mm256_hadd_ps(c, d);
    __m256 s = _mm256_hadd_ps(ab, cd); // [a01+a23 b.. c.. d.. | a45+a67 b.. c.. d..]
    return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}

// Stores the sums of acc[0..R) to y[0..R).
KI void store_sums(int R, const __m256 *acc, float *y) {
    __m256 z = _mm256_setzero_ps();
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

// Rows are contiguous, so streaming one row after another is a single sequential stream per
// thread, which the hardware prefetchers follow best (4 rows in parallel measured ~25% slower:
// the 4 streams restart at every 4 KiB page). X is re-read per row from L1. The software prefetch
// runs PF_DIST bytes ahead, across row ends into the next rows.
#ifndef KERN_PF_DIST
#define KERN_PF_DIST 4096
#endif

KI __m256 decode_row(const int ty, const char *row, int64_t n, const float *x) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    if (ty == TY_Q8) {
        // Per block: unscaled dot product of 32 weights, then one FMA with the block scale (saves
        // a multiply per 8 weights over dequantizing first; this path has no token reuse).
        const it_block_q8_0 *b = (const it_block_q8_0 *)row;
        for (; i < n; i += IT_QK8_0, b++) {
            _mm_prefetch((const char *)b + KERN_PF_DIST, _MM_HINT_T0);
#define Q8F(o) _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(b->qs + (o)))))
            __m256 s = _mm256_mul_ps(Q8F(0), _mm256_loadu_ps(x + i));
            __m256 t = _mm256_mul_ps(Q8F(8), _mm256_loadu_ps(x + i + 8));
            s = _mm256_fmadd_ps(Q8F(16), _mm256_loadu_ps(x + i + 16), s);
            t = _mm256_fmadd_ps(Q8F(24), _mm256_loadu_ps(x + i + 24), t);
#undef Q8F
            __m256 d = _mm256_set1_ps(_cvtsh_ss(b->d));
            a0 = _mm256_fmadd_ps(d, s, a0);
            a1 = _mm256_fmadd_ps(d, t, a1);
        }
    } else {
        const int64_t eb = ty == TY_F32 ? 4 : 2;
        for (; i + 32 <= n; i += 32) {
            // 32 weights are 64 (16-bit) or 128 (fp32) bytes: one prefetch per cache line.
            _mm_prefetch(row + i * eb + KERN_PF_DIST, _MM_HINT_T0);
            if (eb == 4) _mm_prefetch(row + i * eb + KERN_PF_DIST + 64, _MM_HINT_T0);
            a0 = _mm256_fmadd_ps(ld8(ty, row, i), _mm256_loadu_ps(x + i), a0);
            a1 = _mm256_fmadd_ps(ld8(ty, row, i + 8), _mm256_loadu_ps(x + i + 8), a1);
            a2 = _mm256_fmadd_ps(ld8(ty, row, i + 16), _mm256_loadu_ps(x + i + 16), a2);
            a3 = _mm256_fmadd_ps(ld8(ty, row, i + 24), _mm256_loadu_ps(x + i + 24), a3);
        }
        for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(ld8(ty, row, i), _mm256_loadu_ps(x + i), a0);
        if (i < n) {
            int m = (int)(n - i);
            a1 = _mm256_fmadd_ps(ld_tail(ty, row, i, m), _mm256_maskload_ps(x + i, tail_mask(m)), a1);
        }
    }
    return _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
}

KI void decode(const int ty, const char *w, size_t rb, int64_t n, const float *x, float *y,
               int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r += 4) {
        // Rows go 4 at a time only to share the final horizontal sums.
        int R = r1 - r < 4 ? (int)(r1 - r) : 4;
        __m256 v[4];
        _Pragma("GCC unroll 1") for (int k = 0; k < R; k++)
            v[k] = decode_row(ty, w + (size_t)(r + k) * rb, n, x);
        store_sums(R, v, y + r);
    }
}

// ---- prefill: R (1..3) rows x T (1..4) tokens register tile ----

KI void tile(const int ty, const int R, const int T, const char *w, size_t rb, int64_t n,
             const float *x, int64_t ldx, float *y, int64_t ldy) {
    const char *row[TILE_R];
    UNROLL for (int k = 0; k < R; k++) row[k] = w + (size_t)k * rb;
    __m256 acc[TILE_T][TILE_R];
    UNROLL for (int t = 0; t < T; t++) UNROLL for (int k = 0; k < R; k++) acc[t][k] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 wv[TILE_R];
        UNROLL for (int k = 0; k < R; k++) wv[k] = ld8(ty, row[k], i);
        UNROLL for (int t = 0; t < T; t++) {
            __m256 xv = _mm256_loadu_ps(x + t * ldx + i);
            UNROLL for (int k = 0; k < R; k++) acc[t][k] = _mm256_fmadd_ps(wv[k], xv, acc[t][k]);
        }
    }
    if (i < n) {
        int m = (int)(n - i);
        __m256i mask = tail_mask(m);
        __m256 wv[TILE_R];
        UNROLL for (int k = 0; k < R; k++) wv[k] = ld_tail(ty, row[k], i, m);
        UNROLL for (int t = 0; t < T; t++) {
            __m256 xv = _mm256_maskload_ps(x + t * ldx + i, mask);
            UNROLL for (int k = 0; k < R; k++) acc[t][k] = _mm256_fmadd_ps(wv[k], xv, acc[t][k]);
        }
    }
    UNROLL for (int t = 0; t < T; t++) store_sums(R, acc[t], y + t * ldy);
}

// ---- prefill, larger nt: packed-panel GEMM ----
//
// For enough tokens it pays to convert each weight once and vectorize over output rows instead of
// over n_in: a panel of PW rows x KB inputs is converted to fp32 and transposed into P[i][row]
// (16 KiB, stays in L1), then for every tile of TT tokens the micro-kernel does, per input i,
// 2 vector loads of P and TT broadcasts of x[t][i] into 2 x TT = 12 accumulators that hold
// y[t][row..row+16] directly: no horizontal sums, no per-token re-conversion. The K dimension is
// blocked (KB) so P and the X block stay cached; partial sums accumulate in Y.
// Below GEMM_MIN_NT tokens the direct tile is faster (measured on Zen 5: the transposing pack
// costs about as much as 16-32 tokens of FMAs); from there on both run at similar FLOP rates and
// the GEMM wins on big matrices because it streams the weights once per call instead of once per
// token chunk.
#ifndef GEMM_MIN_NT
#define GEMM_MIN_NT 64
#endif
enum { GEMM_PW = 16, GEMM_TT = 6, GEMM_KB = 256 };

// In-register 8x8 transpose (the usual unpack / shuffle / 128-bit permute sequence).
KI void transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
    UNROLL for (int k = 0; k < 8; k += 2) {
        t[k] = _mm256_unpacklo_ps(r[k], r[k + 1]);     // columns 0,1 | 4,5 of rows k, k+1
        t[k + 1] = _mm256_unpackhi_ps(r[k], r[k + 1]); // columns 2,3 | 6,7
    }
    UNROLL for (int k = 0; k < 8; k += 4) {
        u[k] = _mm256_shuffle_ps(t[k], t[k + 2], 0x44);         // column 0 | 4 of rows k..k+3
        u[k + 1] = _mm256_shuffle_ps(t[k], t[k + 2], 0xee);     // column 1 | 5
        u[k + 2] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0x44); // column 2 | 6
        u[k + 3] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0xee); // column 3 | 7
    }
    UNROLL for (int k = 0; k < 4; k++) {
        r[k] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x20);
        r[k + 4] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x31);
    }
}

// P[i*PW + j] = W[row j][k0 + i] as fp32 for i < kb (rounded up to 8), j < PW; rows j >= pr are
// zero.
KI void pack_panel(const int ty, const char *w, size_t rb, int64_t k0, int64_t kb, int pr,
                   float *P) {
    for (int g = 0; g < GEMM_PW; g += 8) {
        for (int64_t c = 0; c < kb; c += 8) {
            int m = kb - c < 8 ? (int)(kb - c) : 8;
            __m256 r[8];
            UNROLL for (int j = 0; j < 8; j++) {
                if (g + j < pr) {
                    const char *row = w + (size_t)(g + j) * rb;
                    r[j] = m == 8 ? ld8(ty, row, k0 + c) : ld_tail(ty, row, k0 + c, m);
                } else {
                    r[j] = _mm256_setzero_ps();
                }
            }
            transpose8(r);
            UNROLL for (int j = 0; j < 8; j++) _mm256_store_ps(P + (c + j) * GEMM_PW + g, r[j]);
        }
    }
}

// y[t*ldy + j] (+)= sum_{i<kb} P[i][j] * x[t*ldx + i] for t < T, j < pr.
KI void gemm_micro(const int T, const float *P, int64_t kb, const float *x, int64_t ldx, float *y,
                   int64_t ldy, int pr, int accumulate) {
    __m256 acc[GEMM_TT][2];
    UNROLL for (int t = 0; t < T; t++) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
    for (int64_t i = 0; i < kb; i++) {
        __m256 w0 = _mm256_load_ps(P + i * GEMM_PW), w1 = _mm256_load_ps(P + i * GEMM_PW + 8);
        UNROLL for (int t = 0; t < T; t++) {
            __m256 xb = _mm256_broadcast_ss(x + t * ldx + i);
            acc[t][0] = _mm256_fmadd_ps(w0, xb, acc[t][0]);
            acc[t][1] = _mm256_fmadd_ps(w1, xb, acc[t][1]);
        }
    }
    if (pr == GEMM_PW) {
        UNROLL for (int t = 0; t < T; t++) {
            float *yt = y + t * ldy;
            if (accumulate) {
                acc[t][0] = _mm256_add_ps(acc[t][0], _mm256_loadu_ps(yt));
                acc[t][1] = _mm256_add_ps(acc[t][1], _mm256_loadu_ps(yt + 8));
            }
            _mm256_storeu_ps(yt, acc[t][0]);
            _mm256_storeu_ps(yt + 8, acc[t][1]);
        }
    } else { // last panel of the range: only pr rows exist in y
        UNROLL for (int t = 0; t < T; t++) {
            float tmp[GEMM_PW], *yt = y + t * ldy;
            _mm256_storeu_ps(tmp, acc[t][0]);
            _mm256_storeu_ps(tmp + 8, acc[t][1]);
            for (int j = 0; j < pr; j++) yt[j] = accumulate ? yt[j] + tmp[j] : tmp[j];
        }
    }
}

#define MICRO_CASE(T) case T: gemm_micro(T, P, kb, x, ldx, y, ldy, pr, acc); break;
static void gemm_micro_any(int T, const float *P, int64_t kb, const float *x, int64_t ldx,
                           float *y, int64_t ldy, int pr, int acc) {
    switch (T) {
        MICRO_CASE(6) MICRO_CASE(5) MICRO_CASE(4) MICRO_CASE(3) MICRO_CASE(2) MICRO_CASE(1)
    default: break;
    }
}

KI void gemm(const int ty, const char *w, size_t rb, int64_t n, const float *x, int64_t ldx,
             int64_t nt, float *y, int64_t ldy, int64_t r0, int64_t r1) {
    _Alignas(32) float P[GEMM_KB * GEMM_PW];
    for (int64_t k0 = 0; k0 < n; k0 += GEMM_KB) {
        int64_t kb = n - k0 < GEMM_KB ? n - k0 : GEMM_KB;
        for (int64_t p0 = r0; p0 < r1; p0 += GEMM_PW) {
            int pr = r1 - p0 < GEMM_PW ? (int)(r1 - p0) : GEMM_PW;
            pack_panel(ty, w + (size_t)p0 * rb, rb, k0, kb, pr, P);
            for (int64_t t0 = 0; t0 < nt; t0 += GEMM_TT) {
                int T = nt - t0 < GEMM_TT ? (int)(nt - t0) : GEMM_TT;
                gemm_micro_any(T, P, kb, x + t0 * ldx + k0, ldx, y + t0 * ldy + p0, ldy, pr,
                               k0 > 0);
            }
        }
    }
}

// One non-inlined function per type holding every tile shape, so edge tiles don't bloat the hot
// loop's caller. Token chunks keep X in L2; inside a chunk, a 3-row strip is swept over all token
// tiles while its weights are still cache-hot.
#define TILE_CASE(R, T) \
    case (R) * 8 + (T): tile(ty, R, T, w, rb, n, x, ldx, y, ldy); break;

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

#define DEFINE_KERNEL(NAME, TY)                                                                  \
    static void tiles_##NAME(int R, int T, const char *w, size_t rb, int64_t n, const float *x,  \
                             int64_t ldx, float *y, int64_t ldy) {                               \
        const int ty = TY;                                                                       \
        switch (R * 8 + T) {                                                                     \
            TILE_CASE(3, 4) TILE_CASE(3, 3) TILE_CASE(3, 2) TILE_CASE(3, 1)                      \
            TILE_CASE(2, 4) TILE_CASE(2, 3) TILE_CASE(2, 2) TILE_CASE(2, 1)                      \
            TILE_CASE(1, 4) TILE_CASE(1, 3) TILE_CASE(1, 2) TILE_CASE(1, 1)                      \
        default: break;                                                                          \
        }                                                                                        \
    }                                                                                            \
    void fmt_matmul_##NAME##_avx2(const void *w, size_t row_bytes, int64_t n_in, const float *x, \
                                   int64_t ldx, int64_t nt, float *y, int64_t ldy, int64_t r0,   \
                                   int64_t r1) {                                                 \
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
