// AVX-512 attention kernels over stored KV rows (contract in kv_kern.h): the AVX2 table with
// `accum`, `scores` and `softmax` done 16 lanes at a time. Why: at a 4K context MiKV's INT2 value
// accumulation was the largest attention cost (10% of decode samples, ac_b2_h8; docs/speed.md), and
// the AVX2 kernel decodes 8 values and issues one weight broadcast per head for every 8 channels of
// a row; the INT2 scores (5.7%, sq_b2_h8) and the softmax followed.
//
// Each output lane of `accum` sees exactly the AVX2 kernel's operations in the same order:
// v = fma(code, d, m) (fp16 rows: the converted value), then acc = fma(w, v, acc) row by row over
// the caller's rows. So `accum` is bit-identical to kvk_avx2's (test_kv_kern checks it). `scores`
// of fp16 / INT8 / INT3 rows sums 16 lanes before the AVX2 kernel's 8-lane tree, so it matches the
// others up to float reassociation; INT4 / INT2 rows take the int8-query kernel of
// kv_score_avx512.c (exact integer sums per 32 channels as in the AVX2 one; only the float sum of
// the scaled terms is reassociated). The
// softmax's exp is simd_exp8's, lane for lane. The per-channel keys are the AVX2 ones. Rows these do
// not cover (head_dim not a multiple of 16, INT groups not a multiple of 16; int8-query: head_dim not a
// multiple of 64 or groups not of 32) go to the AVX2 kernel.
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "kernels/iqmatmul.h"
#include "kv/kv_exp512.h"
#include "kv/kv_kern_x86.h"
#include "kv/kv_quant.h"

enum { MAX_HD = 256, VB = 32, PF_ROWS = 16 };   // PF_ROWS: scores prefetch this many rows ahead

// 16 codes of `bits` bits at p (exactly 2 * bits bytes) as floats: lane l = code l, the same
// integers the AVX2 kernel decodes. INT2's 4 bytes are one broadcast load shifted per lane, INT4's 8
// bytes two dwords spread by one permute; INT3 (6 bytes, so no wider load stays in the row) takes
// two 3-byte halves as the AVX2 kernel does. Why: the half-by-half form costs two scalar loads,
// two broadcasts and an insert (3 shuffle-port ops) per 16 codes, and INT2 value sums were MiKV's
// largest attention cost (docs/speed.md).
KI __m512 codes16(const uint8_t *p, int bits) {
    if (bits == 8) return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)p)));
    __m512i x;
    if (bits == 2) {
        uint32_t w;
        memcpy(&w, p, 4);
        x = _mm512_srlv_epi32(_mm512_set1_epi32((int)w),
                              _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30));
    } else if (bits == 4) {
        const __m512i half = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        x = _mm512_permutexvar_epi32(half, _mm512_castsi128_si512(_mm_loadl_epi64((const __m128i *)(const void *)p)));
        x = _mm512_srlv_epi32(x, _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28));
    } else {
        uint32_t x0 = 0, x1 = 0;
        memcpy(&x0, p, 3);
        memcpy(&x1, p + 3, 3);
        x = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi32((int)x0)), _mm256_set1_epi32((int)x1), 1);
        x = _mm512_srlv_epi32(x, _mm512_setr_epi32(0, 3, 6, 9, 12, 15, 18, 21, 0, 3, 6, 9, 12, 15, 18, 21));
    }
    return _mm512_cvtepi32_ps(_mm512_and_si512(x, _mm512_set1_epi32((1 << bits) - 1)));
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

// Rows i0 .. i0+n-1 (those that exist) toward L1. Why: the hardware prefetchers alone ran too little
// ahead. With a head's rows n_kv_heads rows apart (the uniform cache's old layout) the F16 cache's
// attend at 4K took 35% less time with it; with the rows contiguous (head-major, now) still 24% less
// (docs/speed.md).
KI void prefetch_rows(const kvk_rows *r, int i0, int n, size_t rowb) {
    for (int i = i0; i < i0 + n && i < r->n; i++) {
        const char *x = (const char *)(r->base + (size_t)(r->pos ? r->pos[i] : r->p0 + i) * r->stride);
        for (size_t o = 0; o < rowb; o += 64) _mm_prefetch(x + o, _MM_HINT_T0);
    }
}

// s[h·ld + a_i] = scale · (q_h · row_i), 16 channels per FMA (fp16, INT8 and INT3 rows: INT4 and
// INT2 rows take the int8-query form, kv_score_avx512.c). Sums in another order than the AVX2 kernel:
// equal to it up to float reassociation, as both are to the scalar one.
KI void scores16_body(const kvk_rows *r, const float *q, float scale, float *s, size_t ld, const int NH,
                      const int bits) {
    int hd = r->hd, nc = hd / 16, ng = bits == 16 ? 0 : hd / r->group, cpg = bits == 16 ? 1 : r->group / 16;
    float dm[2 * MAX_HD / 16], out[8];
    __m256 vs = _mm256_set1_ps(scale);
    const size_t rowb = kvq_row_bytes(bits, hd, r->group);
    for (int i = 0; i < r->n; i++) {
        int p = r->pos ? r->pos[i] : r->p0 + i, a = r->at ? r->at[i] : p;
        const uint8_t *row = r->base + (size_t)p * r->stride, *codes = row + 4 * (size_t)ng;
        prefetch_rows(r, i + PF_ROWS, 1, rowb);
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

// Output channels 16c .. 16c + 16·CU - 1 of the NH heads over the block's nb rows: the running
// sums stay in registers across the rows, and each row's NH weights are loaded once for CU units.
KI void accum16_units(const uint8_t *const *rows, const int *ps, int nb, float (*dm)[2 * MAX_HD / 16],
                      const float *w, size_t ld, float *o, int hd, int ng, int cpg, int c, const int CU,
                      const int NH, const int bits) {
    // Zero-initialised although every entry read is loaded first: without it the ASan build of GCC
    // 12 summed the odd last unit (CU = 1) wrongly (test_kv_kern, head_dim 48).
    __m512 acc[2][8] = {{_mm512_setzero_ps()}};
    UNROLL for (int u = 0; u < CU; u++)
        UNROLL for (int h = 0; h < NH; h++) acc[u][h] = _mm512_loadu_ps(o + (size_t)h * hd + 16 * (c + u));
    for (int j = 0; j < nb; j++) {
        UNROLL for (int u = 0; u < CU; u++) {
            __m512 v = value16(rows[j], rows[j] + 4 * (size_t)ng, dm[j], bits, c + u, cpg);
            UNROLL for (int h = 0; h < NH; h++)
                acc[u][h] = _mm512_fmadd_ps(_mm512_set1_ps(w[h * ld + ps[j]]), v, acc[u][h]);
        }
    }
    UNROLL for (int u = 0; u < CU; u++)
        UNROLL for (int h = 0; h < NH; h++) _mm512_storeu_ps(o + (size_t)h * hd + 16 * (c + u), acc[u][h]);
}

// o[h·hd + c] += Σ_i w[h·ld + a_i] · row_i[c]: rows in blocks of VB, per pair of 16-channel units
// the NH heads' running sums in registers across the block's rows (2 × 8 of the 32 registers).
KI void accum16_body(const kvk_rows *r, const float *w, size_t ld, float *o, const int NH, const int bits) {
    int hd = r->hd, nc = hd / 16, ng = bits == 16 ? 0 : hd / r->group, cpg = bits == 16 ? 1 : r->group / 16;
    float dm[VB][2 * MAX_HD / 16];
    const size_t rowb = kvq_row_bytes(bits, hd, r->group);
    const uint8_t *rows[VB];
    int ps[VB];
    for (int i0 = 0; i0 < r->n; i0 += VB) {
        int nb = r->n - i0 < VB ? r->n - i0 : VB, c = 0;
        kvk_block_rows(r, i0, nb, rows, ps);
        prefetch_rows(r, i0 + VB, VB, rowb);   // the next block's rows
        for (int j = 0; bits != 16 && j < nb; j++) header16(rows[j], ng, dm[j]);
        for (; c + 2 <= nc; c += 2) accum16_units(rows, ps, nb, dm, w, ld, o, hd, ng, cpg, c, 2, NH, bits);
        if (c < nc) accum16_units(rows, ps, nb, dm, w, ld, o, hd, ng, cpg, c, 1, NH, bits);
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
    if (r->bits == 4 || r->bits == 2) {
        int done = kern_iq_cpu_has_vnni() ? kvk_scores_i8q_avx512vnni(r, q, rep, scale, s, ld)
                                          : kvk_scores_i8q_avx512(r, q, rep, scale, s, ld);
        if (!done) kvk_avx2()->scores(r, q, rep, scale, s, ld);
        return;
    }
    if (b < 0) {
        kvk_avx2()->scores(r, q, rep, scale, s, ld);
        return;
    }
    for (int h0 = 0; h0 < rep;) {
        int nh = kvk_heads_step(rep - h0, &col);
        k_sc16[b][col](r, q + (size_t)h0 * r->hd, scale, s + h0 * ld, ld);
        h0 += nh;
    }
}

// simd_exp8 (core/simd.h, the AVX2 softmax's) on 16 lanes: the same constants and operations in the
// same order, so each lane is bit-identical to simd_exp8's (x <= 0, -inf allowed; x is clamped at
// -88, where 2^n's exponent field is 0 and the result exactly 0). Not kv_flash_avx512.c's exp512:
// its scalef gives 2^-127·p at the clamp, not 0.
KI __m512 exp16(__m512 x) {
    __m512 n, p = kv_exp512_poly(x, &n);
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

// softmax_avx2 on 16 lanes: max, exp16, the sum in double (two 8-lane accumulators), the float
// multiply by 1/Σ. The last n % 16 entries take masked vectors (the missing lanes read as -inf,
// whose exp is exactly 0), so every entry gets the same polynomial exp. Only the order of the
// double sum differs from the AVX2 kernel's.
static void softmax_avx512(float *s, int n) {
    int n16 = n & ~15;
    __mmask16 mt = (__mmask16)((1u << (n - n16)) - 1);
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __m512 vm = _mm512_mask_loadu_ps(ninf, mt, s + n16);
    for (int i = 0; i < n16; i += 16) vm = _mm512_max_ps(vm, _mm512_loadu_ps(s + i));
    __m512 vmx = _mm512_set1_ps(_mm512_reduce_max_ps(vm));
    __m512d d0 = _mm512_setzero_pd(), d1 = _mm512_setzero_pd();
    for (int i = 0; i <= n16; i += 16) {
        __mmask16 m = i < n16 ? (__mmask16)0xffff : mt;
        __m512 e = exp16(_mm512_sub_ps(_mm512_mask_loadu_ps(ninf, m, s + i), vmx));
        _mm512_mask_storeu_ps(s + i, m, e);
        d0 = _mm512_add_pd(d0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        d1 = _mm512_add_pd(d1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
    }
    double dl[8];
    _mm512_storeu_pd(dl, _mm512_add_pd(d0, d1));
    double sum = ((dl[0] + dl[1]) + (dl[2] + dl[3])) + ((dl[4] + dl[5]) + (dl[6] + dl[7]));
    __m512 vi = _mm512_set1_ps((float)(1.0 / sum));
    for (int i = 0; i <= n16; i += 16) {
        __mmask16 m = i < n16 ? (__mmask16)0xffff : mt;
        _mm512_mask_storeu_ps(s + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + i), vi));
    }
}

static kvk_ops g_ops;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void init_ops(void) {
    g_ops = *kvk_avx2();
    g_ops.name = "avx512";
    g_ops.accum = accum_avx512;
    g_ops.scores = scores_avx512;
    g_ops.softmax = softmax_avx512;
}

const kvk_ops *kvk_avx512(void) {
    pthread_once(&g_once, init_ops);
    return &g_ops;
}
