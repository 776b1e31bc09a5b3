// AVX-512 VNNI integer-activation kernels (kernels/iqmatmul.h) for 4- and 8-bit weights;
// bit-identical to kern_iq_ref. Compiled with the AVX-512 flags plus -mavx512vnni (Makefile rule
// for *_avx512vnni.c) and only called when cpuid reports AVX512_VNNI (kern_iq_cpu_has_vnni), so
// a Skylake-X (AVX-512 without VNNI) never runs it and uses the AVX2 kernels instead.
//
// vpdpbusd multiplies unsigned bytes by signed bytes and adds 4 products into an int32 lane with no
// intermediate saturation: the unsigned codes q (0..15 or 0..255) times the int8 activations give
// isum exactly (|4 * 255 * 127| is far from overflow), and the zero-point term z * (-asum) is one
// vpmaddwd on (z, 0) int16 pairs (|asum| <= 128*127 < 2^15).
//
// Prefill (nt >= IQ_TOK_MIN): lanes are 16 tokens. 4 weight codes of a row are broadcast to every
// lane and multiplied with the token-interleaved activations (kern_actq.qt: 4 consecutive inputs
// of a token per int32 lane), so a register tile of TILE_R rows x TILE_TV*16 tokens (12 int32 +
// 12 float accumulators) reuses each broadcast for 64 tokens and each activation load for TILE_R
// rows, with no horizontal sums; the per-group float step (cvt, mul, add) runs on whole vectors.
// Decode (nt < IQ_TOK_MIN): lanes run along the input (64 inputs per vpdpbusd); the vectors of 16
// rows are reduced to per-row group sums with a 3-level transpose-add, and the float step runs
// across the 16 rows (their scales fetched with one gather).
#include <immintrin.h>
#include <string.h>

#include "kernels/iqmatmul.h"
#include "core/simd.h"


enum { TILE_R = 3, TILE_TV = 4, VL = 16, DEC_R = 16, IQ_TOK_MIN = 4 };
// Decode streams 16 rows at once: software prefetch this far ahead in each row.
#define IQ_PF_DIST 1024

KI size_t hdr_bytes(const int S) { return S ? 2 : 3; }
KI size_t blk_bytes(const int B, const int G, const int S) { return hdr_bytes(S) + (size_t)(G * B / 8); }
KI float blk_d(const uint8_t *b) {
    uint16_t h;
    memcpy(&h, b, 2);
    return _cvtsh_ss(h);
}
KI int blk_z(const int B, const int S, const uint8_t *b) { return S ? 1 << (B - 1) : b[2]; }
KI __m512i bcast4(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

// ---- prefill: lanes = tokens ----

KI void tok_tile(const int B, const int G, const int S, const int TV, const uint8_t *w, size_t rb,
                 const kern_actq *a, float *y, int64_t ldy, int64_t r, int64_t r1, int64_t t0) {
    enum { R = TILE_R };
    const int64_t ntp = a->ntp, ng = a->n_in / G;
    const size_t bb = blk_bytes(B, G, S);
    const uint8_t *rows[R];
    UNROLL for (int i = 0; i < R; i++) rows[i] = w + (size_t)(r + i < r1 ? r + i : r1 - 1) * rb;
    _Alignas(64) uint8_t wbuf[R][128];
    __m512 facc[R][TILE_TV];
    UNROLL for (int i = 0; i < R; i++) UNROLL for (int v = 0; v < TV; v++) facc[i][v] = _mm512_setzero_ps();
    for (int64_t g = 0; g < ng; g++) {
        float dv[R];
        int zv[R];
        const uint8_t *wc[R];   // the group's codes as bytes in weight order
        UNROLL for (int i = 0; i < R; i++) {
            const uint8_t *blk = rows[i] + (size_t)g * bb;
            dv[i] = blk_d(blk);
            zv[i] = blk_z(B, S, blk);
            if (B == 8) {
                wc[i] = blk + hdr_bytes(S);
            } else {
                const __m128i m = _mm_set1_epi8(15);
                UNROLL for (int k = 0; k < G / 32; k++) {
                    __m128i x = _mm_loadu_si128((const __m128i *)(blk + hdr_bytes(S) + 16 * k));
                    _mm_store_si128((__m128i *)(wbuf[i] + 32 * k), _mm_and_si128(x, m));
                    _mm_store_si128((__m128i *)(wbuf[i] + 32 * k + 16), _mm_and_si128(_mm_srli_epi16(x, 4), m));
                }
                wc[i] = wbuf[i];
            }
        }
        // The int32 accumulators start at the zero-point term z * (-asum), so they end at
        // isum - z * asum with no extra add.
        __m512i nsg[TILE_TV];
        UNROLL for (int v = 0; v < TV; v++) {
            const int32_t *ns = a->nsum + (size_t)g * (G / 32) * ntp + t0 + VL * v;
            nsg[v] = _mm512_loadu_si512((const void *)ns);
            UNROLL for (int k = 1; k < G / 32; k++)
                nsg[v] = _mm512_add_epi32(nsg[v], _mm512_loadu_si512((const void *)(ns + k * ntp)));
        }
        __m512i i32[R][TILE_TV];
        UNROLL for (int i = 0; i < R; i++) {
            __m512i zz = _mm512_set1_epi32(zv[i]);
            UNROLL for (int v = 0; v < TV; v++) i32[i][v] = _mm512_madd_epi16(zz, nsg[v]);
        }
        const int8_t *ag = a->qt + ((size_t)g * (G / 4) * ntp + t0) * 4;
        UNROLL for (int j = 0; j < G / 4; j++) {
            __m512i av[TILE_TV];
            UNROLL for (int v = 0; v < TV; v++)
                av[v] = _mm512_loadu_si512((const void *)(ag + ((size_t)j * ntp + VL * v) * 4));
            UNROLL for (int i = 0; i < R; i++) {
                __m512i wb = bcast4(wc[i] + 4 * j);
                UNROLL for (int v = 0; v < TV; v++) i32[i][v] = _mm512_dpbusd_epi32(i32[i][v], wb, av[v]);
            }
        }
        UNROLL for (int i = 0; i < R; i++) {
            __m512 dd = _mm512_set1_ps(dv[i]);
            UNROLL for (int v = 0; v < TV; v++) {
                __m512 p = _mm512_mul_ps(dd, _mm512_cvtepi32_ps(i32[i][v]));
                facc[i][v] = _mm512_add_ps(facc[i][v], p);
            }
        }
    }
    UNROLL for (int v = 0; v < TV; v++) {
        __m512 sc = _mm512_loadu_ps(a->scale + t0 + VL * v);
        UNROLL for (int i = 0; i < R; i++) {
            if (r + i >= r1) break;
            float tmp[VL];
            _mm512_storeu_ps(tmp, _mm512_mul_ps(sc, facc[i][v]));
            for (int l = 0; l < VL && t0 + VL * v + l < a->nt; l++) y[(t0 + VL * v + l) * ldy + r + i] = tmp[l];
        }
    }
}

KI void tok_kernel(const int B, const int G, const int S, const uint8_t *w, size_t rb,
                   const kern_actq *a, float *y, int64_t ldy, int64_t r0, int64_t r1) {
    for (int64_t t0 = 0; t0 < a->nt; t0 += TILE_TV * VL) {
        // Token vectors in this tile; qt holds ntp (a multiple of 16) tokens, so never read past.
        int64_t tv = (a->ntp - t0) / VL;
        tv = tv > TILE_TV ? TILE_TV : tv;
        for (int64_t r = r0; r < r1; r += TILE_R) {
            switch (tv) {
            case 4: tok_tile(B, G, S, 4, w, rb, a, y, ldy, r, r1, t0); break;
            case 3: tok_tile(B, G, S, 3, w, rb, a, y, ldy, r, r1, t0); break;
            case 2: tok_tile(B, G, S, 2, w, rb, a, y, ldy, r, r1, t0); break;
            default: tok_tile(B, G, S, 1, w, rb, a, y, ldy, r, r1, t0); break;
            }
        }
    }
}

// ---- decode: lanes along the input, 16 rows reduced together ----

// v[0..15]: per-row int32 vectors. Returns o0 (lane k = sum of lanes 0..7 of v[k]) and o1 (lanes
// 8..15).
KI void reduce16(const __m512i v[16], __m512i *o0, __m512i *o1) {
    __m512i u[8], w4[4];
    UNROLL for (int i = 0; i < 8; i++)
        u[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]),
                                _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
    UNROLL for (int j = 0; j < 4; j++)
        w4[j] = _mm512_add_epi32(_mm512_unpacklo_epi64(u[2 * j], u[2 * j + 1]),
                                 _mm512_unpackhi_epi64(u[2 * j], u[2 * j + 1]));
    __m512i s01 = _mm512_add_epi32(_mm512_shuffle_i32x4(w4[0], w4[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_i32x4(w4[0], w4[1], _MM_SHUFFLE(3, 1, 3, 1)));
    __m512i s23 = _mm512_add_epi32(_mm512_shuffle_i32x4(w4[2], w4[3], _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_i32x4(w4[2], w4[3], _MM_SHUFFLE(3, 1, 3, 1)));
    *o0 = _mm512_shuffle_i32x4(s01, s23, _MM_SHUFFLE(2, 0, 2, 0));
    *o1 = _mm512_shuffle_i32x4(s01, s23, _MM_SHUFFLE(3, 1, 3, 1));
}

// Codes of two 32-weight sub-blocks (packed at p0 and p1) as 64 bytes in weight order.
KI __m512i codes64(const int B, const uint8_t *p0, const uint8_t *p1) {
    if (B == 8)
        return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p0)),
                                  _mm256_loadu_si256((const __m256i *)p1), 1);
    __m256i x = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)p1), _mm_loadu_si128((const __m128i *)p0));
    __m512i z = _mm512_castsi256_si512(x);
    z = _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(1, 1, 0, 0));   // p0 p0 p1 p1
    const long long F = 0x0004000400040004ll;   // a shift count of 4 in every 16-bit element
    z = _mm512_srlv_epi16(z, _mm512_set_epi64(F, F, 0, 0, F, F, 0, 0)); // hi nibbles: lanes 1, 3
    return _mm512_and_si512(z, _mm512_set1_epi8(15));
}

// One group's float step for 16 rows: facc = facc + d * (float)(isum + z * nas).
KI __m512 dec_step(const int B, const int S, const uint8_t *bg, __m512i vo, __m512i isum, int32_t nas,
                   __m512 facc) {
    __m512i hdr = _mm512_i32gather_epi32(vo, (const void *)bg, 1);
    __m512 dd = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(hdr));
    __m512i zv = S ? _mm512_set1_epi32(1 << (B - 1))
                   : _mm512_and_si512(_mm512_srli_epi32(hdr, 16), _mm512_set1_epi32(0xff));
    __m512i iv = _mm512_add_epi32(isum, _mm512_mullo_epi32(zv, _mm512_set1_epi32(nas)));
    return _mm512_add_ps(facc, _mm512_mul_ps(dd, _mm512_cvtepi32_ps(iv)));
}

KI void dec_rows(const int B, const int G, const int S, const uint8_t *w, size_t rb, const kern_actq *a,
                 int64_t t, float *y, int64_t ldy, int64_t r, int64_t r1) {
    const int64_t n_in = a->n_in, ng = n_in / G, nb = n_in / 32;
    const size_t bb = blk_bytes(B, G, S), hb = hdr_bytes(S);
    const int8_t *at = a->q + t * n_in;
    const int32_t *st = a->sum32 + t * nb;
    int32_t offs[DEC_R];
    UNROLL for (int i = 0; i < DEC_R; i++) offs[i] = (int32_t)((r + i < r1 ? i : r1 - 1 - r) * (int64_t)rb);
    const __m512i vo = _mm512_loadu_si512((const void *)offs);
    const uint8_t *base = w + (size_t)r * rb;
    __m512 facc = _mm512_setzero_ps();
    const size_t sbb = (size_t)B * 4;   // packed bytes of a 32-weight sub-block
    if (G == 32) {
        int64_t g = 0;
        for (; g + 1 < ng; g += 2) {   // two groups per 64-byte vector
            const uint8_t *bg = base + (size_t)g * bb;
            __m512i av = _mm512_loadu_si512((const void *)(at + g * 32)), v[DEC_R];
            UNROLL for (int i = 0; i < DEC_R; i++) {
                const uint8_t *q0 = bg + offs[i] + hb;
                _mm_prefetch((const char *)q0 + IQ_PF_DIST, _MM_HINT_T0);
                v[i] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), codes64(B, q0, q0 + bb), av);
            }
            __m512i s0, s1;
            reduce16(v, &s0, &s1);
            facc = dec_step(B, S, bg, vo, s0, -st[g], facc);
            facc = dec_step(B, S, bg + bb, vo, s1, -st[g + 1], facc);
        }
        if (g < ng) {   // an odd last group: the upper half of the vectors is zero
            const uint8_t *bg = base + (size_t)g * bb;
            __m512i av = _mm512_maskz_loadu_epi8(0xffffffffull, at + g * 32), v[DEC_R];
            UNROLL for (int i = 0; i < DEC_R; i++) {
                const uint8_t *q0 = bg + offs[i] + hb;
                __m512i c = _mm512_maskz_mov_epi8(0xffffffffull, codes64(B, q0, q0));
                v[i] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), c, av);
            }
            __m512i s0, s1;
            reduce16(v, &s0, &s1);
            facc = dec_step(B, S, bg, vo, s0, -st[g], facc);
        }
    } else {
        for (int64_t g = 0; g < ng; g++) {
            const uint8_t *bg = base + (size_t)g * bb;
            __m512i v[DEC_R];
            UNROLL for (int i = 0; i < DEC_R; i++) {
                const uint8_t *qs = bg + offs[i] + hb;
                UNROLL for (size_t o = 0; o < bb; o += 64) _mm_prefetch((const char *)qs + IQ_PF_DIST + o, _MM_HINT_T0);
                v[i] = _mm512_setzero_si512();
                UNROLL for (int c = 0; c < G / 64; c++)
                    v[i] = _mm512_dpbusd_epi32(v[i], codes64(B, qs + 2 * c * sbb, qs + (2 * c + 1) * sbb),
                                               _mm512_loadu_si512((const void *)(at + g * G + 64 * c)));
            }
            __m512i s0, s1;
            reduce16(v, &s0, &s1);
            int32_t nas = 0;
            UNROLL for (int k = 0; k < G / 32; k++) nas -= st[g * (G / 32) + k];
            facc = dec_step(B, S, bg, vo, _mm512_add_epi32(s0, s1), nas, facc);
        }
    }
    float tmp[DEC_R];
    _mm512_storeu_ps(tmp, _mm512_mul_ps(_mm512_set1_ps(a->scale[t]), facc));
    for (int i = 0; i < DEC_R && r + i < r1; i++) y[t * ldy + r + i] = tmp[i];
}

KI void dec_kernel(const int B, const int G, const int S, const uint8_t *w, size_t rb, const kern_actq *a,
                   float *y, int64_t ldy, int64_t r0, int64_t r1) {
    for (int64_t t = 0; t < a->nt; t++)
        for (int64_t r = r0; r < r1; r += DEC_R) dec_rows(B, G, S, w, rb, a, t, y, ldy, r, r1);
}

#define IQ_VNNI(B, G, S)                                                                         \
    static void iq_i##B##_g##G##_s##S(const qf_spec *s, const void *w, size_t rb,                \
                                      const kern_actq *a, float *y, int64_t ldy, int64_t r0,     \
                                      int64_t r1) {                                              \
        (void)s;                                                                                 \
        if (a->nt < IQ_TOK_MIN)                                                                  \
            dec_kernel(B, G, S, w, rb, a, y, ldy, r0, r1);                                       \
        else                                                                                     \
            tok_kernel(B, G, S, w, rb, a, y, ldy, r0, r1);                                       \
    }
IQ_FOR_EACH_SIMD(IQ_VNNI)

kern_iq_fn kern_iq_avx512vnni_get(int bits, int group, int sym) {
#define IQ_VNNI_CASE(B, G, S) \
    if (bits == B && group == G && sym == S) return iq_i##B##_g##G##_s##S;
    IQ_FOR_EACH_SIMD(IQ_VNNI_CASE)
#undef IQ_VNNI_CASE
    return NULL;
}
