// AVX2 integer-activation kernels (kernels/iqmatmul.h) for 4- and 8-bit weights; bit-identical to
// kern_iq_ref (the int32 dot products are exact, the float step is the same mul then add per group).
//
// Integer products: _mm256_maddubs_epi16 multiplies unsigned bytes by signed bytes and adds pairs
// into int16 with saturation, so the operands are arranged to make saturation impossible:
//   4-bit: codes 0..15 x activations |a| <= 127: a pair is at most 2*15*127 = 3810, so 8 pairs
//          (one 32-weight sub-block per lane) still fit int16 (30480) and are widened once;
//   8-bit: codes 0..255 would overflow (2*255*127), so the kernel uses w' = q - 128 (int8) with
//          llama.cpp's sign trick, |w'| * sign(a, w') (a pair is at most 2*128*127 = 32512) and
//          widens every step; sum q*a = sum w'*a + 128*asum is folded into the zero-point term:
//          isum - z*asum = sum w'*a + (z - 128) * (-asum).
// The zero-point term zc * (-asum) uses vpmaddwd on (zc, 0) int16 pairs: |zc| <= 255 and
// |asum| <= 128*127 < 2^15, exact.
//
// Prefill (nt >= IQ_TOK_MIN): lanes are tokens. The SIMD layout of kern_actq (qt) holds 4
// consecutive activations of each token in one int32 lane, so broadcasting 4 weight codes of a row
// and one maddubs + (madd) gives 8 tokens' partial dot products with no horizontal sums; a
// register tile of TILE_R rows x TILE_TV*8 tokens reuses every unpacked weight for 16 tokens and
// every activation load for TILE_R rows. The per-group float step then runs on whole vectors.
// Decode (nt < IQ_TOK_MIN): lanes run along the input; 8 rows' int32 vectors are reduced to one
// vector of 8 row sums (hadd tree) per group, and the float step runs across the 8 rows.
#include <immintrin.h>
#include <string.h>

#include "kernels/iqmatmul.h"
#include "core/simd.h"


enum { TILE_R = 3, TILE_TV = 2, VL = 8, DEC_R = 8, IQ_TOK_MIN = 4 };

KI size_t hdr_bytes(const int S) { return S ? 2 : 3; }
KI size_t blk_bytes(const int B, const int G, const int S) { return hdr_bytes(S) + (size_t)(G * B / 8); }
KI float blk_d(const uint8_t *b) {
    uint16_t h;
    memcpy(&h, b, 2);
    return _cvtsh_ss(h);
}
KI int blk_z(const int B, const int S, const uint8_t *b) { return S ? 1 << (B - 1) : b[2]; }
KI __m256i bcast4(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

// 32 codes of sub-block k as bytes in weight order: 4-bit unpacked; 8-bit as w' = q - 128.
KI __m256i codes32(const int B, const uint8_t *qs, int k) {
    if (B == 4) {
        __m128i x = _mm_loadu_si128((const __m128i *)(qs + 16 * k)), m = _mm_set1_epi8(15);
        __m128i lo = _mm_and_si128(x, m), hi = _mm_and_si128(_mm_srli_epi16(x, 4), m);
        return _mm256_set_m128i(hi, lo);
    }
    return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(qs + 32 * k)), _mm256_set1_epi8((char)0x80));
}

// ---- prefill: lanes = tokens ----

// Rows r..r+R-1 (rows past r1 are computed on a copy of the last row and not stored) x tokens
// t0..t0+8*TV-1 (padding tokens are zeros in qt and not stored).
KI void tok_tile(const int B, const int G, const int S, const int TV, const uint8_t *w, size_t rb,
                 const kern_actq *a, float *y, int64_t ldy, int64_t r, int64_t r1, int64_t t0) {
    enum { R = TILE_R };
    const int64_t ntp = a->ntp, ng = a->n_in / G;
    const size_t bb = blk_bytes(B, G, S);
    const uint8_t *rows[R];
    UNROLL for (int i = 0; i < R; i++) rows[i] = w + (size_t)(r + i < r1 ? r + i : r1 - 1) * rb;
    const __m256i ones16 = _mm256_set1_epi16(1);
    _Alignas(32) uint8_t wbuf[R][128], wabs[R][128];
    __m256 facc[R][TILE_TV];
    UNROLL for (int i = 0; i < R; i++) UNROLL for (int v = 0; v < TV; v++) facc[i][v] = _mm256_setzero_ps();
    for (int64_t g = 0; g < ng; g++) {
        float dv[R];
        int zc[R];
        UNROLL for (int i = 0; i < R; i++) {
            const uint8_t *blk = rows[i] + (size_t)g * bb;
            dv[i] = blk_d(blk);
            zc[i] = blk_z(B, S, blk) - (B == 8 ? 128 : 0);
            UNROLL for (int k = 0; k < G / 32; k++) {
                __m256i c = codes32(B, blk + hdr_bytes(S), k);
                _mm256_store_si256((__m256i *)(wbuf[i] + 32 * k), c);
                if (B == 8) _mm256_store_si256((__m256i *)(wabs[i] + 32 * k), _mm256_abs_epi8(c));
            }
        }
        __m256i i32[R][TILE_TV];
        UNROLL for (int i = 0; i < R; i++) UNROLL for (int v = 0; v < TV; v++) i32[i][v] = _mm256_setzero_si256();
        const int8_t *ag = a->qt + ((size_t)g * (G / 4) * ntp + t0) * 4;
        // Not unrolled: fully unrolled, GCC reassociates the int32 sums into a tree, computes every
        // product first and spills them all (AVX2 has 16 registers).
        _Pragma("GCC unroll 1") for (int k = 0; k < G / 32; k++) {
            if (B == 4) {
                // Widened every step: int16 accumulators across steps would need R*TV more
                // registers than AVX2's 16 and spill.
                _Pragma("GCC unroll 1") for (int j = 0; j < 8; j++) {
                    __m256i av[TILE_TV];
                    UNROLL for (int v = 0; v < TV; v++)
                        av[v] = _mm256_loadu_si256((const __m256i *)(ag + ((size_t)(8 * k + j) * ntp + VL * v) * 4));
                    UNROLL for (int i = 0; i < R; i++) {
                        __m256i wb = bcast4(wbuf[i] + 32 * k + 4 * j);
                        UNROLL for (int v = 0; v < TV; v++)
                            i32[i][v] = _mm256_add_epi32(i32[i][v], _mm256_madd_epi16(_mm256_maddubs_epi16(wb, av[v]), ones16));
                    }
                }
            } else {
                _Pragma("GCC unroll 1") for (int j = 0; j < 8; j++) {
                    __m256i av[TILE_TV];
                    UNROLL for (int v = 0; v < TV; v++)
                        av[v] = _mm256_loadu_si256((const __m256i *)(ag + ((size_t)(8 * k + j) * ntp + VL * v) * 4));
                    UNROLL for (int i = 0; i < R; i++) {
                        __m256i ws = bcast4(wbuf[i] + 32 * k + 4 * j), wa = bcast4(wabs[i] + 32 * k + 4 * j);
                        UNROLL for (int v = 0; v < TV; v++) {
                            __m256i p = _mm256_maddubs_epi16(wa, _mm256_sign_epi8(av[v], ws));
                            i32[i][v] = _mm256_add_epi32(i32[i][v], _mm256_madd_epi16(p, ones16));
                        }
                    }
                }
            }
        }
        __m256i nsg[TILE_TV];
        UNROLL for (int v = 0; v < TV; v++) {
            const int32_t *ns = a->nsum + (size_t)g * (G / 32) * ntp + t0 + VL * v;
            nsg[v] = _mm256_loadu_si256((const __m256i *)ns);
            UNROLL for (int k = 1; k < G / 32; k++)
                nsg[v] = _mm256_add_epi32(nsg[v], _mm256_loadu_si256((const __m256i *)(ns + k * ntp)));
        }
        UNROLL for (int i = 0; i < R; i++) {
            __m256i zv = _mm256_set1_epi32(zc[i] & 0xffff);
            __m256 dd = _mm256_set1_ps(dv[i]);
            UNROLL for (int v = 0; v < TV; v++) {
                __m256i iv = _mm256_add_epi32(i32[i][v], _mm256_madd_epi16(zv, nsg[v]));
                __m256 p = _mm256_mul_ps(dd, _mm256_cvtepi32_ps(iv));
                facc[i][v] = _mm256_add_ps(facc[i][v], p);
            }
        }
    }
    UNROLL for (int v = 0; v < TV; v++) {
        __m256 sc = _mm256_loadu_ps(a->scale + t0 + VL * v);
        UNROLL for (int i = 0; i < R; i++) {
            if (r + i >= r1) break;
            float tmp[VL];
            _mm256_storeu_ps(tmp, _mm256_mul_ps(sc, facc[i][v]));
            for (int l = 0; l < VL && t0 + VL * v + l < a->nt; l++) y[(t0 + VL * v + l) * ldy + r + i] = tmp[l];
        }
    }
}

KI void tok_kernel(const int B, const int G, const int S, const uint8_t *w, size_t rb,
                   const kern_actq *a, float *y, int64_t ldy, int64_t r0, int64_t r1) {
    for (int64_t t0 = 0; t0 < a->nt; t0 += TILE_TV * VL) {
        // ntp is a multiple of 16 = TILE_TV * VL, so a full-width tile never reads past qt.
        for (int64_t r = r0; r < r1; r += TILE_R) tok_tile(B, G, S, TILE_TV, w, rb, a, y, ldy, r, r1, t0);
    }
}

// ---- decode: lanes along the input, 8 rows reduced together ----

// Lane k of the result = sum of the 8 lanes of v[k].
KI __m256i hsum8(const __m256i v[8]) {
    __m256i h0 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    __m256i h1 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(h0, h1, 0x20), _mm256_permute2x128_si256(h0, h1, 0x31));
}

KI void dec_rows(const int B, const int G, const int S, const uint8_t *w, size_t rb, const kern_actq *a,
                 int64_t t, float *y, int64_t ldy, int64_t r, int64_t r1) {
    const int64_t n_in = a->n_in, ng = n_in / G, nb = n_in / 32;
    const size_t bb = blk_bytes(B, G, S);
    const int8_t *at = a->q + t * n_in;
    const int32_t *st = a->sum32 + t * nb;
    int32_t offs[DEC_R];
    UNROLL for (int i = 0; i < DEC_R; i++) offs[i] = (int32_t)((r + i < r1 ? i : r1 - 1 - r) * (int64_t)rb);
    const __m256i vo = _mm256_loadu_si256((const __m256i *)offs), ones16 = _mm256_set1_epi16(1);
    const uint8_t *base = w + (size_t)r * rb;
    __m256 facc = _mm256_setzero_ps();
    for (int64_t g = 0; g < ng; g++) {
        const uint8_t *bg = base + (size_t)g * bb;
        __m256i v[DEC_R];
        UNROLL for (int i = 0; i < DEC_R; i++) {
            const uint8_t *qs = bg + offs[i] + hdr_bytes(S);
            UNROLL for (size_t o = 0; o < (bb < 64 ? 64 : bb); o += 64) _mm_prefetch((const char *)qs + 1024 + o, _MM_HINT_T0);
            if (B == 4) {
                __m256i acc16 = _mm256_setzero_si256();
                UNROLL for (int k = 0; k < G / 32; k++) {
                    __m256i av = _mm256_loadu_si256((const __m256i *)(at + g * G + 32 * k));
                    acc16 = _mm256_add_epi16(acc16, _mm256_maddubs_epi16(codes32(B, qs, k), av));
                }
                v[i] = _mm256_madd_epi16(acc16, ones16);
            } else {
                v[i] = _mm256_setzero_si256();
                UNROLL for (int k = 0; k < G / 32; k++) {
                    __m256i av = _mm256_loadu_si256((const __m256i *)(at + g * G + 32 * k));
                    __m256i c = codes32(B, qs, k);
                    __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(c), _mm256_sign_epi8(av, c));
                    v[i] = _mm256_add_epi32(v[i], _mm256_madd_epi16(p, ones16));
                }
            }
        }
        __m256i isum = hsum8(v);
        // Headers of the 8 blocks: d in the low 16 bits, z (asym) in bits 16..23.
        __m256i hdr = _mm256_i32gather_epi32((const int *)bg, vo, 1);
        __m256i d16 = _mm256_and_si256(hdr, _mm256_set1_epi32(0xffff));
        __m256 dd = _mm256_cvtph_ps(_mm_packus_epi32(_mm256_castsi256_si128(d16), _mm256_extracti128_si256(d16, 1)));
        __m256i zv = S ? _mm256_set1_epi32(B == 8 ? 0 : 8)
                       : _mm256_sub_epi32(_mm256_and_si256(_mm256_srli_epi32(hdr, 16), _mm256_set1_epi32(0xff)),
                                          _mm256_set1_epi32(B == 8 ? 128 : 0));
        int32_t nas = 0;
        UNROLL for (int k = 0; k < G / 32; k++) nas -= st[g * (G / 32) + k];
        __m256i iv = _mm256_add_epi32(isum, _mm256_mullo_epi32(zv, _mm256_set1_epi32(nas)));
        __m256 p = _mm256_mul_ps(dd, _mm256_cvtepi32_ps(iv));
        facc = _mm256_add_ps(facc, p);
    }
    float tmp[DEC_R];
    _mm256_storeu_ps(tmp, _mm256_mul_ps(_mm256_set1_ps(a->scale[t]), facc));
    for (int i = 0; i < DEC_R && r + i < r1; i++) y[t * ldy + r + i] = tmp[i];
}

KI void dec_kernel(const int B, const int G, const int S, const uint8_t *w, size_t rb, const kern_actq *a,
                   float *y, int64_t ldy, int64_t r0, int64_t r1) {
    for (int64_t t = 0; t < a->nt; t++)
        for (int64_t r = r0; r < r1; r += DEC_R) dec_rows(B, G, S, w, rb, a, t, y, ldy, r, r1);
}

#define IQ_AVX2(B, G, S)                                                                         \
    static void iq_i##B##_g##G##_s##S(const qf_spec *s, const void *w, size_t rb,                \
                                      const kern_actq *a, float *y, int64_t ldy, int64_t r0,     \
                                      int64_t r1) {                                              \
        (void)s;                                                                                 \
        if (a->nt < IQ_TOK_MIN)                                                                  \
            dec_kernel(B, G, S, w, rb, a, y, ldy, r0, r1);                                       \
        else                                                                                     \
            tok_kernel(B, G, S, w, rb, a, y, ldy, r0, r1);                                       \
    }
IQ_FOR_EACH_SIMD(IQ_AVX2)

kern_iq_fn kern_iq_avx2_get(int bits, int group, int sym) {
#define IQ_AVX2_CASE(B, G, S) \
    if (bits == B && group == G && sym == S) return iq_i##B##_g##G##_s##S;
    IQ_FOR_EACH_SIMD(IQ_AVX2_CASE)
#undef IQ_AVX2_CASE
    return NULL;
}

// ---- the activation quantizer's row loop (kern_actq_quantize), same results as the scalar one ----

// One row: scale = (clip * amax) / qmax, q = clamp(round_half_even(x / scale), +-qmax) (NaN -> 0),
// sum32 per 32-block. max_ps(v, m) returns m when v is NaN, as the scalar `if (v > amax)`; the max
// is exact in any order; divps is the IEEE division; the rounding is the scalar code's
// (v + 1.5*2^23) - 1.5*2^23 on v clamped to [-256, 256].
void kern_iq_quant_row_avx2(const float *x, int64_t n, int qmax, float clip, int8_t *q, int32_t *sum32,
                            float *scale) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 m = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 8) m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + i), absmask), m);
    float t[8];
    _mm256_storeu_ps(t, m);
    float amax = 0.0f;
    for (int k = 0; k < 8; k++) amax = t[k] > amax ? t[k] : amax;
    float s = clip * amax / (float)qmax;
    *scale = s;
    if (s == 0.0f) {
        memset(q, 0, (size_t)n);
        for (int64_t b = 0; b < n / 32; b++) sum32[b] = 0;
        return;
    }
    const __m256 sv = _mm256_set1_ps(s), magic = _mm256_set1_ps(12582912.0f), lim = _mm256_set1_ps(256.0f);
    const __m256 qm = _mm256_set1_ps((float)qmax), nqm = _mm256_set1_ps((float)-qmax);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t b = 0; b < n / 32; b++) {
        __m256i v[4];
        UNROLL for (int k = 0; k < 4; k++) {
            __m256 d = _mm256_div_ps(_mm256_loadu_ps(x + 32 * b + 8 * k), sv);
            __m256 ord = _mm256_cmp_ps(d, d, _CMP_ORD_Q);
            d = _mm256_min_ps(_mm256_max_ps(d, _mm256_sub_ps(_mm256_setzero_ps(), lim)), lim);
            __m256 r = _mm256_sub_ps(_mm256_add_ps(d, magic), magic);
            r = _mm256_min_ps(_mm256_max_ps(r, nqm), qm);
            v[k] = _mm256_and_si256(_mm256_cvttps_epi32(r), _mm256_castps_si256(ord));
        }
        __m256i s4 = _mm256_add_epi32(_mm256_add_epi32(v[0], v[1]), _mm256_add_epi32(v[2], v[3]));
        __m128i s2 = _mm_add_epi32(_mm256_castsi256_si128(s4), _mm256_extracti128_si256(s4, 1));
        s2 = _mm_add_epi32(s2, _mm_shuffle_epi32(s2, 0x4e));
        s2 = _mm_add_epi32(s2, _mm_shuffle_epi32(s2, 0xb1));
        sum32[b] = _mm_cvtsi128_si32(s2);
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
        _mm256_storeu_si256((__m256i *)(q + 32 * b), _mm256_permutevar8x32_epi32(p, perm));
    }
}
