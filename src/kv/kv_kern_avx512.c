// AVX-512 attention kernels over stored KV rows (contract in kv_kern.h): the AVX2 table with
// `accum`, and `scores` of fp16 / INT8 / INT3 rows, done 16 channels at a time. Why: at a 4K context MiKV's INT2 value accumulation was the
// largest attention cost (10% of decode samples, ac_b2_h8; docs/speed.md), and the AVX2 kernel
// decodes 8 values and issues one weight broadcast per head for every 8 channels of a row.
//
// Each output lane sees exactly the AVX2 kernel's operations in the same order: v = fma(code, d, m)
// (fp16 rows: the converted value), then acc = fma(w, v, acc) row by row over the caller's rows. So
// `accum` is bit-identical to kvk_avx2's (test_kv_kern checks it). `scores` sums 16 lanes before
// the AVX2 kernel's 8-lane tree, so it matches the others up to float reassociation. The int8-query
// scores of INT4 / INT2 rows, the per-channel keys and the softmax are the AVX2 ones. Rows it does not cover (head_dim not a multiple of 16, INT groups not a multiple of 16) go
// to the AVX2 kernel.
#include <immintrin.h>
#include <pthread.h>
#include <string.h>

#include "kv/kv_kern_x86.h"

enum { MAX_HD = 256, VB = 32 };

// 16 codes of `bits` bits at p (exactly 2 * bits bytes) as floats: two 8-code halves, each
// broadcast and shifted per lane as the AVX2 kernel does for one.
KI __m512 codes16(const uint8_t *p, int bits) {
    if (bits == 8) return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)p)));
    uint32_t x0 = 0, x1 = 0;
    memcpy(&x0, p, (size_t)bits);
    memcpy(&x1, p + bits, (size_t)bits);
    const __m512i sh = bits == 4 ? _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28)
                     : bits == 3 ? _mm512_setr_epi32(0, 3, 6, 9, 12, 15, 18, 21, 0, 3, 6, 9, 12, 15, 18, 21)
                                 : _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 2, 4, 6, 8, 10, 12, 14);
    __m512i x = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi32((int)x0)), _mm256_set1_epi32((int)x1), 1);
    __m512i v = _mm512_and_si512(_mm512_srlv_epi32(x, sh), _mm512_set1_epi32((1 << bits) - 1));
    return _mm512_cvtepi32_ps(v);
}

// The ng {fp16 d, fp16 m} pairs at src as floats dm[2g] = d, dm[2g+1] = m.
static void header16(const uint8_t *src, int ng, float *dm) {
    int g = 0;
    for (; g + 8 <= ng; g += 8)
        _mm512_storeu_ps(dm + 2 * g, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(src + 4 * g))));
    for (; g < ng; g++) {
        uint32_t x;
        memcpy(&x, src + 4 * g, 4);
        _mm_storel_pi((__m64 *)(void *)(dm + 2 * g), _mm_cvtph_ps(_mm_cvtsi32_si128((int)x)));
    }
}

// Values 16c .. 16c+15 of a row (cpg: 16-value units per group).
KI __m512 value16(const uint8_t *row, const uint8_t *codes, const float *dm, int bits, int c, int cpg) {
    if (bits == 16) return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(row + 32 * c)));
    int g = c / cpg;
    return _mm512_fmadd_ps(codes16(codes + (size_t)c * 2 * bits, bits), _mm512_set1_ps(dm[2 * g]),
                           _mm512_set1_ps(dm[2 * g + 1]));
}

// Lane h of the result = horizontal sum of a[h] (h < NH; 0 above): each 16-lane sum folded to 8
// lanes, then the AVX2 kernels' reduce8.
KI __m256 reduce16(const __m512 *a, const int NH) {
    __m256 f[8];
    UNROLL for (int h = 0; h < 8; h++)
        f[h] = h < NH ? _mm256_add_ps(_mm512_castps512_ps256(a[h]), _mm512_extractf32x8_ps(a[h], 1)) : _mm256_setzero_ps();
    return reduce8(f);
}

// s[h·ld + a_i] = scale · (q_h · row_i), 16 channels per FMA (fp16, INT8 and INT3 rows: INT4 and
// INT2 rows take the AVX2 kernel's int8-query form). Sums in another order than the AVX2 kernel:
// equal to it up to float reassociation, as both are to the scalar one.
KI void scores16_body(const kvk_rows *r, const float *q, float scale, float *s, size_t ld, const int NH,
                      const int bits) {
    int hd = r->hd, nc = hd / 16, ng = bits == 16 ? 0 : hd / r->group, cpg = bits == 16 ? 1 : r->group / 16;
    float dm[2 * MAX_HD / 16], out[8];
    __m256 vs = _mm256_set1_ps(scale);
    for (int i = 0; i < r->n; i++) {
        int p = r->pos ? r->pos[i] : r->p0 + i, a = r->at ? r->at[i] : p;
        const uint8_t *row = r->base + (size_t)p * r->stride, *codes = row + 4 * (size_t)ng;
        if (bits != 16) header16(row, ng, dm);
        __m512 acc[8];
        UNROLL for (int h = 0; h < 8; h++) acc[h] = _mm512_setzero_ps();
        for (int c = 0; c < nc; c++) {
            __m512 k = value16(row, codes, dm, bits, c, cpg);
            UNROLL for (int h = 0; h < NH; h++)
                acc[h] = _mm512_fmadd_ps(_mm512_loadu_ps(q + (size_t)h * hd + 16 * c), k, acc[h]);
        }
        _mm256_storeu_ps(out, _mm256_mul_ps(reduce16(acc, NH), vs));
        UNROLL for (int h = 0; h < NH; h++) s[h * ld + a] = out[h];
    }
}

// o[h·hd + c] += Σ_i w[h·ld + a_i] · row_i[c]: rows in blocks of VB, per 16 output channels the NH
// heads' running sums in registers across the block's rows.
KI void accum16_body(const kvk_rows *r, const float *w, size_t ld, float *o, const int NH, const int bits) {
    int hd = r->hd, nc = hd / 16, ng = bits == 16 ? 0 : hd / r->group, cpg = bits == 16 ? 1 : r->group / 16;
    float dm[VB][2 * MAX_HD / 16];
    const uint8_t *rows[VB];
    int ps[VB];
    for (int i0 = 0; i0 < r->n; i0 += VB) {
        int nb = r->n - i0 < VB ? r->n - i0 : VB;
        kvk_block_rows(r, i0, nb, rows, ps);
        for (int j = 0; bits != 16 && j < nb; j++) header16(rows[j], ng, dm[j]);
        for (int c = 0; c < nc; c++) {
            __m512 acc[8];
            UNROLL for (int h = 0; h < NH; h++) acc[h] = _mm512_loadu_ps(o + (size_t)h * hd + 16 * c);
            for (int j = 0; j < nb; j++) {
                __m512 v = value16(rows[j], rows[j] + 4 * (size_t)ng, dm[j], bits, c, cpg);
                UNROLL for (int h = 0; h < NH; h++)
                    acc[h] = _mm512_fmadd_ps(_mm512_set1_ps(w[h * ld + ps[j]]), v, acc[h]);
            }
            UNROLL for (int h = 0; h < NH; h++) _mm512_storeu_ps(o + (size_t)h * hd + 16 * c, acc[h]);
        }
    }
}

#define KVK512_AC(B, NH)                                                                      \
    static void ac16_b##B##_h##NH(const kvk_rows *r, const float *w, size_t ld, float *o) {   \
        accum16_body(r, w, ld, o, NH, B);                                                     \
    }                                                                                         \
    static void sc16_b##B##_h##NH(const kvk_rows *r, const float *q, float scale, float *s, size_t ld) { \
        scores16_body(r, q, scale, s, ld, NH, B);                                             \
    }
#define KVK512_HEADS(B) KVK512_AC(B, 8) KVK512_AC(B, 4) KVK512_AC(B, 2) KVK512_AC(B, 1)
KVK512_HEADS(16)
KVK512_HEADS(8)
KVK512_HEADS(4)
KVK512_HEADS(3)
KVK512_HEADS(2)

typedef void (*ac_fn)(const kvk_rows *, const float *, size_t, float *);
typedef void (*sc_fn)(const kvk_rows *, const float *, float, float *, size_t);
#define ROW4(P, B) {P##16_b##B##_h8, P##16_b##B##_h4, P##16_b##B##_h2, P##16_b##B##_h1}
static const ac_fn k_ac16[5][4] = {ROW4(ac, 16), ROW4(ac, 8), ROW4(ac, 4), ROW4(ac, 3), ROW4(ac, 2)};
static const sc_fn k_sc16[5][4] = {ROW4(sc, 16), ROW4(sc, 8), ROW4(sc, 4), ROW4(sc, 3), ROW4(sc, 2)};

// The table row for r's format, or -1 where these kernels do not apply (the AVX2 ones then do).
static int rows16(const kvk_rows *r) {
    int b = kvk_bits_index(r->bits);
    return b < 0 || r->hd % 16 || r->hd > MAX_HD || (r->bits != 16 && r->group % 16) ? -1 : b;
}

static void accum_avx512(const kvk_rows *r, const float *w, size_t ld, int rep, float *o) {
    int b = rows16(r), col;
    if (b < 0) {
        kvk_avx2()->accum(r, w, ld, rep, o);
        return;
    }
    for (int h0 = 0; h0 < rep;) {
        int nh = kvk_heads_step(rep - h0, &col);
        k_ac16[b][col](r, w + h0 * ld, ld, o + (size_t)h0 * r->hd);
        h0 += nh;
    }
}

static void scores_avx512(const kvk_rows *r, const float *q, int rep, float scale, float *s, size_t ld) {
    int b = rows16(r), col;
    if (b < 0 || r->bits == 4 || r->bits == 2) {
        kvk_avx2()->scores(r, q, rep, scale, s, ld);
        return;
    }
    for (int h0 = 0; h0 < rep;) {
        int nh = kvk_heads_step(rep - h0, &col);
        k_sc16[b][col](r, q + (size_t)h0 * r->hd, scale, s + h0 * ld, ld);
        h0 += nh;
    }
}

static kvk_ops g_ops;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void init_ops(void) {
    g_ops = *kvk_avx2();
    g_ops.name = "avx512";
    g_ops.accum = accum_avx512;
    g_ops.scores = scores_avx512;
}

const kvk_ops *kvk_avx512(void) {
    pthread_once(&g_once, init_ops);
    return &g_ops;
}
