// AVX2 decode GEMV (kernels/iqdec.h), bit-identical to kern_dq_ref, and the AVX2 activation
// quantizer. The fallback for CPUs without AVX-512 VNNI: each 32-block's codes are unpacked into
// one ymm of bytes in natural order (nibble masks; 2-bit fields by a per-qword shift; int3's high
// bits by a byte shuffle + bit test), multiplied with the int8 activations by vpmaddubsw (no
// saturation: 2 * 15 * 127 < 2^15) and summed to int32 by vpmaddwd. int8 codes would saturate
// vpmaddubsw, so they go in as q - 128 with the sign moved onto the activation (|q - 128| <= 128:
// 2 * 128 * 127 < 2^15) and 128 * sum_b added back. 8 blocks' lanes are reduced to one ymm of block
// sums by vphaddd; the float step is kern_dq_ref's, 8 lanes at a time.
#include <immintrin.h>
#include <string.h>

#include "kernels/iqdec.h"
#include "core/simd.h"

#define DQ_PF_DIST 2048

enum { MAX_T = 3 };

KI size_t hdr(const int S) { return S ? 2 : 3; }
KI size_t blkb(const int B, const int G, const int S) { return hdr(S) + (size_t)(G * B / 8); }

// The 32 codes of block k of a chunk at cb, natural order (B = 8: q - 128 as signed bytes).
KI __m256i codes(const int B, const int G, const int S, const uint8_t *cb, int k) {
    const int kpg = G / 32;
    const uint8_t *qs = cb + (size_t)(k / kpg) * blkb(B, G, S) + hdr(S);
    const int j = k % kpg;
    if (B == 8) return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(qs + 32 * j)), _mm256_set1_epi8((char)0x80));
    if (B == 4) {
        __m128i b = _mm_loadu_si128((const __m128i *)(qs + 16 * j)), m = _mm_set1_epi8(0x0f);
        return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b, 4), m), _mm_and_si128(b, m));
    }
    long long x;
    memcpy(&x, qs + 8 * j, 8);
    __m256i v = _mm256_and_si256(_mm256_srlv_epi64(_mm256_set1_epi64x(x), _mm256_setr_epi64x(0, 2, 4, 6)),
                                 _mm256_set1_epi8(3));
    if (B == 3) {
        int hw;
        memcpy(&hw, qs + G / 4 + 4 * j, 4);
        const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL);
        __m256i h = _mm256_shuffle_epi8(_mm256_set1_epi32(hw), _mm256_setr_epi64x(0, 0x0101010101010101LL,
                                                                                   0x0202020202020202LL, 0x0303030303030303LL));
        h = _mm256_cmpeq_epi8(_mm256_and_si256(h, bit), bit);
        v = _mm256_or_si256(v, _mm256_and_si256(h, _mm256_set1_epi8(4)));
    }
    return v;
}

// 8 int32 partial sums of one block's dot product.
KI __m256i dot8(const int B, __m256i c, const int8_t *q) {
    __m256i a = _mm256_loadu_si256((const __m256i *)q);
    __m256i p = B == 8 ? _mm256_maddubs_epi16(_mm256_abs_epi8(c), _mm256_sign_epi8(a, c)) : _mm256_maddubs_epi16(c, a);
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

// Block sums of 8 blocks' partial-sum vectors, in block order.
KI __m256i reduce8(const __m256i *p) {
    __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
    __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(p[4], p[5]), _mm256_hadd_epi32(p[6], p[7]));
    __m128i sa = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    __m128i sb = _mm_add_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
    return _mm256_set_m128i(sb, sa);
}

KI float hsum16(__m256 lo, __m256 hi) {
    __m256 h = _mm256_add_ps(lo, hi);
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    __m128 p = _mm_add_ps(q, _mm_movehl_ps(q, q));
    return _mm_cvtss_f32(_mm_add_ss(p, _mm_shuffle_ps(p, p, 1)));
}

KI void rows(const int B, const int G, const int S, const int T, const uint8_t *w, size_t rb, const kern_dq *a,
             int64_t t0, float *y, int64_t ldy, int64_t r0, int64_t r1) {
    const int kpg = G / 32, gpc = 16 / kpg;
    const size_t bb = blkb(B, G, S), cbytes = (size_t)gpc * bb;
    const int64_t nb = a->n_in / 32, nfull = nb / 16, np = a->nbp * 32;
    const int tail = (int)(nb % 16);
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const int sh = kpg == 1 ? 0 : kpg == 2 ? 1 : 2;
    const __m256i off0 = _mm256_mullo_epi32(_mm256_srli_epi32(iota, sh), _mm256_set1_epi32((int)bb));
    const __m256i off1 = _mm256_mullo_epi32(_mm256_srli_epi32(_mm256_add_epi32(iota, _mm256_set1_epi32(8)), sh),
                                            _mm256_set1_epi32((int)bb));
    _Alignas(64) uint8_t pad[16 * 131 + 64];
    uintptr_t pl = 0;   // the next line to prefetch (simd_pf_row)
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * rb;
        simd_pf_row(&pl, row + DQ_PF_DIST);
        __m256 f[MAX_T][2];
        UNROLL for (int t = 0; t < T; t++) f[t][0] = f[t][1] = _mm256_setzero_ps();
        for (int64_t c = 0; c <= nfull; c++) {
            const uint8_t *cb = row + (size_t)c * cbytes;
            __m256i lm[2] = {_mm256_set1_epi32(-1), _mm256_set1_epi32(-1)};
            if (c == nfull) {
                if (!tail) break;
                memset(pad, 0, cbytes + 64);
                memcpy(pad, cb, (size_t)(tail / kpg) * bb);
                cb = pad;
                lm[0] = _mm256_cmpgt_epi32(_mm256_set1_epi32(tail), iota);
                lm[1] = _mm256_cmpgt_epi32(_mm256_set1_epi32(tail - 8), iota);
            } else {
                simd_pf_upto(&pl, cb + DQ_PF_DIST + cbytes - 1);
            }
            __m256i dz[2] = {_mm256_i32gather_epi32((const int *)cb, off0, 1), _mm256_i32gather_epi32((const int *)cb, off1, 1)};
            UNROLL for (int h = 0; h < 2; h++) {
                __m256i p[MAX_T][8];
                UNROLL for (int k = 0; k < 8; k++) {
                    __m256i cv = codes(B, G, S, cb, 8 * h + k);
                    UNROLL for (int t = 0; t < T; t++) p[t][k] = dot8(B, cv, a->q + (t0 + t) * np + 512 * c + 32 * (8 * h + k));
                }
                __m256i dm = _mm256_and_si256(dz[h], _mm256_set1_epi32(0xffff));
                __m256 d = _mm256_cvtph_ps(_mm_packus_epi32(_mm256_castsi256_si128(dm), _mm256_extracti128_si256(dm, 1)));
                __m256i z = S ? _mm256_set1_epi32(1 << (B - 1))
                              : _mm256_and_si256(_mm256_srli_epi32(dz[h], 16), _mm256_set1_epi32(0xff));
                UNROLL for (int t = 0; t < T; t++) {
                    const int64_t bo = (t0 + t) * a->nbp + 16 * c + 8 * h;
                    __m256i su = _mm256_loadu_si256((const __m256i *)(a->sum + bo));
                    __m256i is = reduce8(p[t]);
                    if (B == 8) is = _mm256_add_epi32(is, _mm256_slli_epi32(su, 7));
                    __m256i iv = _mm256_sub_epi32(is, _mm256_mullo_epi32(z, su));
                    __m256 ds = _mm256_mul_ps(d, _mm256_loadu_ps(a->scale + bo));
                    __m256 nf = _mm256_fmadd_ps(ds, _mm256_cvtepi32_ps(iv), f[t][h]);
                    f[t][h] = _mm256_blendv_ps(f[t][h], nf, _mm256_castsi256_ps(lm[h]));
                }
            }
        }
        UNROLL for (int t = 0; t < T; t++) y[(t0 + t) * ldy + r] = hsum16(f[t][0], f[t][1]);
    }
}

#define DQ_FN(B, G, S)                                                                                   \
    static void dq_i##B##_g##G##_s##S(const uint8_t *w, size_t rb, const kern_dq *a, float *y, int64_t ldy, \
                                      int64_t r0, int64_t r1) {                                         \
        int64_t t0 = 0;                                                                                  \
        for (; t0 + 3 <= a->nt; t0 += 3) rows(B, G, S, 3, w, rb, a, t0, y, ldy, r0, r1);                 \
        if (a->nt - t0 == 2) rows(B, G, S, 2, w, rb, a, t0, y, ldy, r0, r1);                             \
        if (a->nt - t0 == 1) rows(B, G, S, 1, w, rb, a, t0, y, ldy, r0, r1);                             \
    }
QF_FOR_EACH_FORMAT(DQ_FN)

void kern_dq_avx2(const qf_spec *s, const void *w, size_t row_bytes, const kern_dq *a, float *y, int64_t ldy,
                  int64_t r0, int64_t r1) {
#define DQ_CASE(B, G, S) \
    if (s->bits == B && s->group == G && s->sym == S) return dq_i##B##_g##G##_s##S(w, row_bytes, a, y, ldy, r0, r1);
    QF_FOR_EACH_FORMAT(DQ_CASE)
#undef DQ_CASE
}

// ---- activation quantizer (kern_dq_quantize's per-token work) ----

void kern_dq_quant_row_avx2(const float *x, int64_t n, int8_t *q, float *scale, int32_t *sum) {
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-127.0f);
    for (int64_t b = 0; b < n / 32; b++) {
        const float *xb = x + 32 * b;
        __m256 v[4], m = _mm256_setzero_ps();
        UNROLL for (int i = 0; i < 4; i++) {
            v[i] = _mm256_loadu_ps(xb + 8 * i);
            m = _mm256_max_ps(_mm256_and_ps(v[i], absm), m);   // a NaN first operand keeps m
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
        float amax = _mm_cvtss_f32(m4);
        float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        scale[b] = amax / 127.0f;
        __m256 iv = _mm256_set1_ps(inv);
        __m256i r[4], s = _mm256_setzero_si256();
        UNROLL for (int i = 0; i < 4; i++) {
            __m256 t = _mm256_max_ps(_mm256_min_ps(_mm256_mul_ps(v[i], iv), hi), lo);
            r[i] = _mm256_cvtps_epi32(t);
            s = _mm256_add_epi32(s, r[i]);
        }
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(r[0], r[1]), _mm256_packs_epi32(r[2], r[3]));
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(q + 32 * b), p);
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
        sum[b] = _mm_cvtsi128_si32(s4);
    }
}
