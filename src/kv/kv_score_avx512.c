// AVX-512 int8-query scores of INT4 and INT2 rows (contract in kv_kern.h; the AVX2 twin is
// scores_i8q_body in kv_kern_avx2.c, whose comments explain the code layouts). Why: at a 4K context
// MiKV decode (20% fp16 + INT2 rows, head_dim 64, 8 query heads per kv head) spent ~5.7% of its
// time in the AVX2 kernel, which handles 64 channels per step and reduces after every step.
//
// A step is 128 channels, one 32-channel quarter per 128-bit lane (group % 32 == 0, so a quarter
// lies in one group): INT4 64 code bytes whose low / high nibbles (even / odd channels) meet the
// query's even / odd int8 values; INT2 32 code bytes whose bit-pair planes are regrouped per lane
// as the AVX2 kernel does per 128-bit half (lane L: planes 0,1 resp. 2,3 of code bytes 8L..8L+7,
// i.e. channels 32L..32L+31), the query permuted to match. Per head, two maddubs (|c·q8| ≤ 15·127:
// no saturation), an add and a madd with ones give 4 int32 per quarter; an unpack/add tree turns 4
// heads' vectors into one whose lane (quarter L, head h) is the exact integer sum of that quarter.
// That is scaled by d·sq of the quarter's group and accumulated in float, per lane; the lanes of a
// row are summed once, at the end (the m·Σq terms are set into the accumulators at the start).
//
// head_dim 64 and 192 leave a 64-channel tail per row: the tails of two rows share a step (row A in
// lanes 0-1, row B in lanes 2-3), so the common head_dim 64 fills the vector. Rows are therefore
// taken in pairs, which also lets one 16-lane multiply / store finish both.
#include <immintrin.h>
#include <string.h>

#include "kv/kv_kern_x86.h"

enum { MAX_HD = 256, MAXS = MAX_HD / 128 + 1, MAXG = MAX_HD / 32, PF = 32 };   // PF: rows prefetched ahead

// Lane (quarter L, head h) of the result = Σ of a[h]'s 4 int32 in 128-bit lane L (exact).
KI __m512i tree4(const __m512i *a) {
    __m512i t01 = _mm512_add_epi32(_mm512_unpacklo_epi32(a[0], a[1]), _mm512_unpackhi_epi32(a[0], a[1]));
    __m512i t23 = _mm512_add_epi32(_mm512_unpacklo_epi32(a[2], a[3]), _mm512_unpackhi_epi32(a[2], a[3]));
    return _mm512_add_epi32(_mm512_unpacklo_epi64(t01, t23), _mm512_unpackhi_epi64(t01, t23));
}

// The 8 lanes (L mod 2, h) of a per-row accumulator: its two 256-bit halves added.
KI __m256 fold8(__m512 t) { return _mm256_add_ps(_mm512_castps512_ps256(t), _mm512_extractf32x8_ps(t, 1)); }

// Query side of a call, prepared once and used for every row.
typedef struct {
    __m512i qe[8][MAXS], qo[8][MAXS];   // per head and step: int8 query against low / high codes
    __m512 sqv[2][MAXS];                // per 4-head set and step: lane (L, h) = sq of that quarter's group
    __m512 qsv[2][2];                   // per 4-head set: lane (j, h) = Σq of group 4t + j (0 past ng)
    __m512i dix[MAXS];                  // lane (L, h) = index of the quarter's d in dm (tail: B's from 16)
    __m512i mix[2];                     // lane (j, h) = index of m of group 4t + j
} i8q_query;

// Step k of a row: quarter L is quarter 4k + L of the row; in the shared tail step (k == nfull) lanes
// 2-3 are row B's, holding the same quarters as lanes 0-1.
static inline int quarter(int k, int nfull, int L) { return k < nfull ? 4 * k + L : 4 * nfull + L % 2; }

static void prep_query(const float *q, int hd, int G, int NH, int bits, i8q_query *Q) {
    int ng = hd / G, nfull = hd / 128, nst = nfull + (hd % 128 != 0), qpg = G / 32;
    int8_t q8[MAX_HD], e[64], o[64];
    float sq[8][MAXG] = {{0}}, qs[8][MAXG] = {{0}}, v[16];
    int32_t ix[16];
    for (int h = 0; h < NH; h++) {
        kvk_quant_q(q + (size_t)h * hd, hd, G, q8, sq[h], qs[h]);
        for (int k = 0; k < nst; k++) {
            for (int L = 0; L < 4; L++) {
                int c0 = 32 * quarter(k, nfull, L);
                for (int b = 0; b < 16; b++) {
                    // INT4: byte b of the lane = channels c0 + 2b, c0 + 2b + 1. INT2: bytes 0-7 are
                    // plane 0 (resp. 2) of code bytes 0-7 of the quarter, bytes 8-15 plane 1 (3).
                    int ce = bits == 4 ? c0 + 2 * b : c0 + 4 * (b % 8) + b / 8, co = bits == 4 ? ce + 1 : ce + 2;
                    e[16 * L + b] = q8[ce], o[16 * L + b] = q8[co];
                }
            }
            Q->qe[h][k] = _mm512_loadu_si512(e);
            Q->qo[h][k] = _mm512_loadu_si512(o);
        }
    }
    for (int hs = 0; hs < 2; hs++) {
        for (int k = 0; k < nst; k++) {
            for (int l = 0; l < 16; l++) v[l] = sq[4 * hs + l % 4][quarter(k, nfull, l / 4) / qpg];
            Q->sqv[hs][k] = _mm512_loadu_ps(v);
        }
        for (int t = 0; t < 2; t++) {
            for (int l = 0; l < 16; l++) v[l] = 4 * t + l / 4 < ng ? qs[4 * hs + l % 4][4 * t + l / 4] : 0.0f;
            Q->qsv[hs][t] = _mm512_loadu_ps(v);
        }
    }
    for (int k = 0; k < nst; k++) {
        for (int l = 0; l < 16; l++) ix[l] = 2 * (quarter(k, nfull, l / 4) / qpg) + (k == nfull && l >= 8 ? 16 : 0);
        Q->dix[k] = _mm512_loadu_si512(ix);
    }
    for (int t = 0; t < 2; t++) {
        for (int l = 0; l < 16; l++) {
            int g = 4 * t + l / 4;
            ix[l] = 2 * (g < ng ? g : ng - 1) + 1;   // past ng: any m (its Σq lane is 0)
        }
        Q->mix[t] = _mm512_loadu_si512(ix);
    }
}

// Adds step k's terms to t[0] (heads 0-3) and t[1] (heads 4-7): lo / hi are the step's unpacked
// codes (INT4 low / high nibbles; INT2 planes 0,1 / 2,3), dv lane (L, h) the quarter's d.
KI void step(const i8q_query *Q, int k, __m512i lo, __m512i hi, __m512 dv, __m512 *t, const int NH) {
    __m512i a[8];
#ifdef __AVX512VNNI__
    // Two vpdpbusd per head: the same 8 products per int32 lane as the form below, in half the ops
    // (INT2 attend ~5% faster, docs/speed.md); the sums are exact either way.
    UNROLL for (int h = 0; h < 8; h++)
        a[h] = h < NH ? _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, Q->qe[h][k]), hi, Q->qo[h][k])
                      : _mm512_setzero_si512();
#else
    const __m512i ones = _mm512_set1_epi16(1);
    UNROLL for (int h = 0; h < 8; h++)
        a[h] = h < NH ? _mm512_madd_epi16(_mm512_add_epi16(_mm512_maddubs_epi16(lo, Q->qe[h][k]),
                                                           _mm512_maddubs_epi16(hi, Q->qo[h][k])), ones)
                      : _mm512_setzero_si512();
#endif
    UNROLL for (int hs = 0; hs < 2; hs++)
        if (4 * hs < NH)
            t[hs] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(tree4(a + 4 * hs)), _mm512_mul_ps(dv, Q->sqv[hs][k]), t[hs]);
}

// INT2: 32 code bytes (8 per quarter) to planes 0,1 (lo) and 2,3 (hi) per lane: each quarter's 8
// bytes are put in both qwords of its lane and shifted by 0 / 2 (lo) or 4 / 6 (hi) before the mask.
KI void planes2(__m256i y, __m512i *lo, __m512i *hi) {
    const __m512i dup = _mm512_setr_epi64(0, 0, 1, 1, 2, 2, 3, 3), m2 = _mm512_set1_epi8(3);
    __m512i x = _mm512_permutexvar_epi64(dup, _mm512_castsi256_si512(y));
    *lo = _mm512_and_si512(_mm512_srlv_epi64(x, _mm512_setr_epi64(0, 2, 0, 2, 0, 2, 0, 2)), m2);
    *hi = _mm512_and_si512(_mm512_srlv_epi64(x, _mm512_setr_epi64(4, 6, 4, 6, 4, 6, 4, 6)), m2);
}

KI void nibbles4(__m512i x, __m512i *lo, __m512i *hi) {
    const __m512i m4 = _mm512_set1_epi8(15);
    *lo = _mm512_and_si512(x, m4);
    *hi = _mm512_and_si512(_mm512_srli_epi16(x, 4), m4);
}

KI void i8q_body(const kvk_rows *r, const float *q, float scale, float *s, size_t ld, const int NH, const int bits) {
    int hd = r->hd, ng = hd / r->group, nfull = hd / 128, tail = hd % 128 != 0;
    size_t cb = (size_t)hd * bits / 8, rowb = 4 * (size_t)ng + cb;   // code bytes, all bytes per row
    __mmask16 hm = (__mmask16)((1u << (2 * ng)) - 1);   // the header's 2·ng fp16 values
    i8q_query Q;
    prep_query(q, hd, r->group, NH, bits, &Q);
    // Lanes [0..3] ← Z's and W's 128-bit lanes 0, 2; [4..7]: 1, 3 (see the end of a pair).
    const __m512i pe = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
    const __m512i po = _mm512_setr_epi32(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
    const __m512 vs = _mm512_set1_ps(scale);
    float out[16];
    for (int i = 0; i < r->n; i += 2) {
        int two = i + 1 < r->n, idx[2];
        const uint8_t *row[2], *codes[2];
        kvk_block_rows(r, i, 1 + two, row, idx);
        if (!two) row[1] = row[0];   // a lone last row: computed twice, stored once
        // The pair PF rows ahead toward L1 (first and last byte of each row: a row is at most 160
        // bytes). Why: INT4 attend at 4K took 19% less time with it (bench/bench_kvattn.c).
        UNROLL for (int j = 0; j < 2; j++)
            if (i + PF + j < r->n) {
                int p = r->pos ? r->pos[i + PF + j] : r->p0 + i + PF + j;
                const char *x = (const char *)(r->base + (size_t)p * r->stride);
                _mm_prefetch(x, _MM_HINT_T0);
                _mm_prefetch(x + rowb - 1, _MM_HINT_T0);
            }
        __m512 dm[2], t[2][2], tt[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
        UNROLL for (int j = 0; j < 2; j++) {
            codes[j] = row[j] + 4 * (size_t)ng;
            dm[j] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(hm, row[j]));   // d0, m0, d1, m1, ...
            __m512 mv = _mm512_permutexvar_ps(Q.mix[0], dm[j]);
            UNROLL for (int hs = 0; hs < 2; hs++) t[j][hs] = _mm512_mul_ps(mv, Q.qsv[hs][0]);   // hs 1: dead if NH <= 4
            if (ng > 4) {
                mv = _mm512_permutexvar_ps(Q.mix[1], dm[j]);
                UNROLL for (int hs = 0; hs < 2; hs++) t[j][hs] = _mm512_fmadd_ps(mv, Q.qsv[hs][1], t[j][hs]);
            }
            for (int k = 0; k < nfull; k++) {
                __m512i lo, hi;
                if (bits == 4) nibbles4(_mm512_loadu_si512(codes[j] + 64 * k), &lo, &hi);
                else planes2(_mm256_loadu_si256((const __m256i *)(const void *)(codes[j] + 32 * k)), &lo, &hi);
                step(&Q, k, lo, hi, _mm512_permutexvar_ps(Q.dix[k], dm[j]), t[j], NH);
            }
        }
        if (tail) {   // the last 64 channels of both rows: A's in lanes 0-1, B's in 2-3
            __m512i lo, hi;
            size_t off = cb - (size_t)8 * bits;   // the tail's 64 channels are 8·bits bytes
            if (bits == 4) {
                nibbles4(_mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(const void *)(codes[0] + off))),
                                            _mm256_loadu_si256((const __m256i *)(const void *)(codes[1] + off)), 1),
                         &lo, &hi);
            } else {
                planes2(_mm256_set_m128i(_mm_loadu_si128((const __m128i *)(const void *)(codes[1] + off)),
                                         _mm_loadu_si128((const __m128i *)(const void *)(codes[0] + off))),
                        &lo, &hi);
            }
            step(&Q, nfull, lo, hi, _mm512_permutex2var_ps(dm[0], Q.dix[nfull], dm[1]), tt, NH);
        }
        // Z = [A heads 0-3 | B heads 0-3], W the same for heads 4-7, each as 8 lanes (L mod 2, h);
        // the two 128-bit halves of each are then added so that out = [A heads 0-7, B heads 0-7].
        __m256 a0 = _mm256_add_ps(fold8(t[0][0]), _mm512_castps512_ps256(tt[0]));
        __m256 b0 = _mm256_add_ps(fold8(t[1][0]), _mm512_extractf32x8_ps(tt[0], 1));
        __m512 Z = _mm512_insertf32x8(_mm512_castps256_ps512(a0), b0, 1), W = _mm512_setzero_ps();
        if (NH > 4) {
            __m256 a1 = _mm256_add_ps(fold8(t[0][1]), _mm512_castps512_ps256(tt[1]));
            __m256 b1 = _mm256_add_ps(fold8(t[1][1]), _mm512_extractf32x8_ps(tt[1], 1));
            W = _mm512_insertf32x8(_mm512_castps256_ps512(a1), b1, 1);
        }
        __m512 sum = _mm512_add_ps(_mm512_permutex2var_ps(Z, pe, W), _mm512_permutex2var_ps(Z, po, W));
        _mm512_storeu_ps(out, _mm512_mul_ps(sum, vs));
        UNROLL for (int h = 0; h < NH; h++) s[h * ld + idx[0]] = out[h];
        if (two) UNROLL for (int h = 0; h < NH; h++) s[h * ld + idx[1]] = out[8 + h];
    }
}

#define KVK512_I8Q(B, NH)                                                                        \
    static void sq16_b##B##_h##NH(const kvk_rows *r, const float *q, float scale, float *s, size_t ld) { \
        i8q_body(r, q, scale, s, ld, NH, B);                                                      \
    }
KVK512_I8Q(4, 8) KVK512_I8Q(4, 4) KVK512_I8Q(4, 2) KVK512_I8Q(4, 1)
KVK512_I8Q(2, 8) KVK512_I8Q(2, 4) KVK512_I8Q(2, 2) KVK512_I8Q(2, 1)

typedef void (*sq_fn)(const kvk_rows *, const float *, float, float *, size_t);
static const sq_fn k_sq4[4] = {sq16_b4_h8, sq16_b4_h4, sq16_b4_h2, sq16_b4_h1};
static const sq_fn k_sq2[4] = {sq16_b2_h8, sq16_b2_h4, sq16_b2_h2, sq16_b2_h1};

// kv_score_avx512vnni.c builds this file again with VNNI under another name.
#ifndef KVS_ENTRY
#define KVS_ENTRY kvk_scores_i8q_avx512
#endif
int KVS_ENTRY(const kvk_rows *r, const float *q, int rep, float scale, float *s, size_t ld) {
    // The AVX2 kernel's shapes (head_dim a multiple of 64 up to 256, groups of whole quarters).
    if ((r->bits != 4 && r->bits != 2) || r->hd % 64 || r->hd > MAX_HD || r->group % 32 || r->hd % r->group)
        return 0;
    for (int h0 = 0, col; h0 < rep;) {
        int nh = kvk_heads_step(rep - h0, &col);
        (r->bits == 4 ? k_sq4 : k_sq2)[col](r, q + (size_t)h0 * r->hd, scale, s + h0 * ld, ld);
        h0 += nh;
    }
    return 1;
}
