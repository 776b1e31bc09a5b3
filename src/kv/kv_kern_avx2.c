// AVX2 + FMA + F16C attention kernels over stored KV rows (contract in kv_kern.h).
//
// Work is arranged so that each decoded group of 8 values feeds one FMA per query head:
//   scores:      per row, 8 values at a time are decoded (fp16: vcvtph2ps; INT: shift/mask the codes,
//                then d·code + m with one FMA) and multiplied into one accumulator per query head
//                (≤ 8 heads at once = 8 independent FMA chains); a hadd tree then turns the 8
//                accumulators into the 8 heads' scores in one vector.
//   accum:       rows in blocks of VB; per 8 output channels the heads' running sums stay in
//                registers across the block's rows (the block's bytes stay in L1 for the passes).
//   chan_scores: per 8 tokens of a block, Σ_c (q_c·d_c)·code_{c,j} accumulates in registers per head
//                (q·d and Σ q·m precomputed once per block), stored contiguously: no reduction.
// Heads are taken 8, 4, 2, 1 at a time, each count and bit width a compile-time constant of an
// always-inline body. head_dim must be a multiple of 8 and ≤ MAX_HD; otherwise the scalar kernels
// run (they have no such limit).
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kv/kv_kern_x86.h"
#include "kv/kv_quant.h"

// Head loops fully unrolled so the accumulators live in registers (GCC keeps a rolled loop's
// __m256 array in memory: a store-forwarding round trip per FMA).

enum { MAX_HD = 256, VB = 32, PF_AHEAD = 32 };   // PF_AHEAD: rows the int8-query scores prefetch ahead

// 8 codes of `bits` bits starting at p (exactly `bits` bytes: never reads past a row) as floats.
KI __m256 codes8(const uint8_t *p, int bits) {
    if (bits == 8) return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p)));
    uint32_t x = 0;
    memcpy(&x, p, (size_t)bits);
    __m256i sh = bits == 4 ? _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)
               : bits == 3 ? _mm256_setr_epi32(0, 3, 6, 9, 12, 15, 18, 21)
                           : _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    __m256i v = _mm256_srlv_epi32(_mm256_set1_epi32((int)x), sh);
    return _mm256_cvtepi32_ps(_mm256_and_si256(v, _mm256_set1_epi32((1 << bits) - 1)));
}

// The ng {fp16 d, fp16 m} pairs at src as floats dm[2g] = d, dm[2g+1] = m.
KI void header(const uint8_t *src, int ng, float *dm) {
    int g = 0;
    for (; g + 4 <= ng; g += 4)
        _mm256_storeu_ps(dm + 2 * g, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(src + 4 * g))));
    if (g + 2 <= ng) {
        _mm_storeu_ps(dm + 2 * g, _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(const void *)(src + 4 * g))));
        g += 2;
    }
    if (g < ng) {
        uint32_t x;
        memcpy(&x, src + 4 * g, 4);
        __m128 v = _mm_cvtph_ps(_mm_cvtsi32_si128((int)x));
        _mm_storel_pi((__m64 *)(void *)(dm + 2 * g), v);
    }
}

// Values 8c .. 8c+7 of a row. INT: dm holds the row's header (see header()), codes its packed codes.
KI __m256 value8(const uint8_t *row, const uint8_t *codes, const float *dm, int bits, int c, int cpg) {
    if (bits == 16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(row + 16 * c)));
    int g = c / cpg;
    return _mm256_fmadd_ps(codes8(codes + (size_t)c * bits, bits), _mm256_broadcast_ss(dm + 2 * g),
                           _mm256_broadcast_ss(dm + 2 * g + 1));
}

KI void scores_body(const kvk_rows *r, const float *q, float scale, float *s, size_t ld, const int NH,
                    const int bits) {
    int hd = r->hd, nc = hd / 8, ng = bits == 16 ? 0 : hd / r->group, cpg = bits == 16 ? 1 : r->group / 8;
    float dm[2 * MAX_HD / 8], out[8];
    __m256 vs = _mm256_set1_ps(scale);
    for (int i = 0; i < r->n; i++) {
        int p = r->pos ? r->pos[i] : r->p0 + i, a = r->at ? r->at[i] : p;
        const uint8_t *row = r->base + (size_t)p * r->stride, *codes = row + 4 * (size_t)ng;
        if (bits != 16) header(row, ng, dm);
        __m256 acc[8];
        UNROLL for (int h = 0; h < 8; h++) acc[h] = _mm256_setzero_ps();
        for (int c = 0; c < nc; c++) {
            __m256 k = value8(row, codes, dm, bits, c, cpg);
            UNROLL for (int h = 0; h < NH; h++)
                acc[h] = _mm256_fmadd_ps(_mm256_loadu_ps(q + (size_t)h * hd + 8 * c), k, acc[h]);
        }
        _mm256_storeu_ps(out, _mm256_mul_ps(reduce8(acc), vs));
        UNROLL for (int h = 0; h < NH; h++) s[h * ld + a] = out[h];
    }
}

// Integer twin of reduce8 without its last step: lo lane h = Σ of a[h]'s low 128-bit half, hi lane
// h = Σ of its high half (exact int32).
KI void reduce8_i32(const __m256i *a, __m256i *lo, __m256i *hi) {
    __m256i s01 = _mm256_hadd_epi32(a[0], a[1]), s23 = _mm256_hadd_epi32(a[2], a[3]);
    __m256i s45 = _mm256_hadd_epi32(a[4], a[5]), s67 = _mm256_hadd_epi32(a[6], a[7]);
    __m256i s03 = _mm256_hadd_epi32(s01, s23), s47 = _mm256_hadd_epi32(s45, s67);
    *lo = _mm256_permute2x128_si256(s03, s47, 0x20);
    *hi = _mm256_permute2x128_si256(s03, s47, 0x31);
}

// INT4 rows, int8 query (kv_kern.h): hd % 64 == 0, group % 32 == 0, so each 16-byte half of a
// 32-byte code chunk (64 channels) lies in one group. Per chunk, the low nibbles (even channels) and
// high nibbles (odd channels) meet the query's even / odd int8 values in two maddubs per head
// (|c·q8| ≤ 15·127: no saturation), a madd with ones widens to int32, and an integer hadd tree
// gives each head's per-half sums in one vector; d·sq and m·Σq are then applied per group in 8
// head lanes.
//
// INT2 rows (same conditions) take the same route: a 64-channel chunk is 16 code bytes, byte j
// holding channels 4j..4j+3 in its bit pairs. The four bit-pair planes p_s (byte j = channel 4j+s)
// are regrouped so that the low 128 bits of `lo` / `hi` hold bytes 0..7 (channels 0..31, the first
// half) of planes 0,1 / 2,3 and the high 128 bits bytes 8..15 (the second half); the query is
// permuted to match, so the integer tree and the per-half scaling are the INT4 ones unchanged.
KI void scores_i8q_body(const kvk_rows *r, const float *q, float scale, float *s, size_t ld, const int NH,
                        const int bits) {
    enum { MAXC = MAX_HD / 64, MAXG = MAX_HD / 32 };
    int hd = r->hd, G = r->group, ng = hd / G, nck = hd / 64;
    const size_t rowb = 4 * (size_t)ng + (size_t)hd * bits / 8;
    int8_t q8[MAX_HD];
    float sqh[8][MAXG], qsh[8][MAXG], sqv[MAXG][8], qsv[MAXG][8], dm[2 * MAXG], out[8];
    __m256i qe[8][MAXC], qo[8][MAXC];
    UNROLL for (int h = 0; h < NH; h++) {
        kvk_quant_q(q + (size_t)h * hd, hd, G, q8, sqh[h], qsh[h]);
        for (int k = 0; k < nck; k++) {
            int8_t e[32], o[32];
            if (bits == 4) {
                for (int j = 0; j < 32; j++) e[j] = q8[64 * k + 2 * j], o[j] = q8[64 * k + 2 * j + 1];
            } else {   // byte b of half x (0..1) of e: plane b / 8, code byte 8x + b % 8; o: planes 2, 3
                for (int x = 0; x < 2; x++)
                    for (int b = 0; b < 16; b++) {
                        int cb = 8 * x + b % 8, pl = b / 8;
                        e[16 * x + b] = q8[64 * k + 4 * cb + pl];
                        o[16 * x + b] = q8[64 * k + 4 * cb + pl + 2];
                    }
            }
            qe[h][k] = _mm256_loadu_si256((const __m256i *)(const void *)e);
            qo[h][k] = _mm256_loadu_si256((const __m256i *)(const void *)o);
        }
    }
    for (int g = 0; g < ng; g++)
        for (int h = 0; h < 8; h++) sqv[g][h] = h < NH ? sqh[h][g] : 0.0f, qsv[g][h] = h < NH ? qsh[h][g] : 0.0f;
    const __m256i m4 = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
    __m256 vs = _mm256_set1_ps(scale);
    int hpg = G / 32;   // 32-channel halves per group
    for (int i = 0; i < r->n; i++) {
        int p = r->pos ? r->pos[i] : r->p0 + i, a = r->at ? r->at[i] : p;
        const uint8_t *row = r->base + (size_t)p * r->stride, *codes = row + 4 * (size_t)ng;
        if (i + PF_AHEAD < r->n) {   // as kv_score_avx512.c: the row PF_AHEAD rows on toward L1
            int pf = r->pos ? r->pos[i + PF_AHEAD] : r->p0 + i + PF_AHEAD;
            const char *x = (const char *)(r->base + (size_t)pf * r->stride);
            _mm_prefetch(x, _MM_HINT_T0);
            _mm_prefetch(x + rowb - 1, _MM_HINT_T0);
        }
        header(row, ng, dm);
        __m256 tot = _mm256_setzero_ps();
        for (int g = 0; g < ng; g++)
            tot = _mm256_fmadd_ps(_mm256_broadcast_ss(dm + 2 * g + 1), _mm256_loadu_ps(qsv[g]), tot);
        for (int k = 0; k < nck; k++) {
            __m256i lo, hi;
            if (bits == 4) {
                __m256i x = _mm256_loadu_si256((const __m256i *)(const void *)(codes + 32 * k));
                lo = _mm256_and_si256(x, m4), hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), m4);
            } else {
                __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(codes + 16 * k)), m2 = _mm_set1_epi8(3);
                __m128i p0 = _mm_and_si128(x, m2), p1 = _mm_and_si128(_mm_srli_epi16(x, 2), m2);
                __m128i p2 = _mm_and_si128(_mm_srli_epi16(x, 4), m2), p3 = _mm_and_si128(_mm_srli_epi16(x, 6), m2);
                lo = _mm256_set_m128i(_mm_unpackhi_epi64(p0, p1), _mm_unpacklo_epi64(p0, p1));
                hi = _mm256_set_m128i(_mm_unpackhi_epi64(p2, p3), _mm_unpacklo_epi64(p2, p3));
            }
            __m256i a[8];
            UNROLL for (int h = 0; h < 8; h++) {
                if (h < NH) {
                    __m256i t = _mm256_add_epi16(_mm256_maddubs_epi16(lo, qe[h][k]), _mm256_maddubs_epi16(hi, qo[h][k]));
                    a[h] = _mm256_madd_epi16(t, ones);
                } else {
                    a[h] = _mm256_setzero_si256();
                }
            }
            __m256i sl, sh;
            reduce8_i32(a, &sl, &sh);
            int g0 = 2 * k / hpg, g1 = (2 * k + 1) / hpg;
            tot = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sl),
                                  _mm256_mul_ps(_mm256_broadcast_ss(dm + 2 * g0), _mm256_loadu_ps(sqv[g0])), tot);
            tot = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sh),
                                  _mm256_mul_ps(_mm256_broadcast_ss(dm + 2 * g1), _mm256_loadu_ps(sqv[g1])), tot);
        }
        _mm256_storeu_ps(out, _mm256_mul_ps(tot, vs));
        UNROLL for (int h = 0; h < NH; h++) s[h * ld + a] = out[h];
    }
}

KI void accum_body(const kvk_rows *r, const float *w, size_t ld, float *o, const int NH, const int bits) {
    int hd = r->hd, nc = hd / 8, ng = bits == 16 ? 0 : hd / r->group, cpg = bits == 16 ? 1 : r->group / 8;
    const size_t rowb = kvq_row_bytes(bits, hd, r->group);
    float dm[VB][2 * MAX_HD / 8];
    const uint8_t *rows[VB];
    int ps[VB];
    for (int i0 = 0; i0 < r->n; i0 += VB) {
        int nb = r->n - i0 < VB ? r->n - i0 : VB;
        kvk_block_rows(r, i0, nb, rows, ps);
        // The next block's rows toward L1 (first and last byte: rows are at most 512 bytes apart
        // inside, so the middle lines of a wide row are left to the hardware prefetcher).
        for (int j = i0 + VB; j < i0 + 2 * VB && j < r->n; j++) {
            const char *x = (const char *)(r->base + (size_t)(r->pos ? r->pos[j] : r->p0 + j) * r->stride);
            _mm_prefetch(x, _MM_HINT_T0);
            _mm_prefetch(x + rowb - 1, _MM_HINT_T0);
        }
        for (int j = 0; bits != 16 && j < nb; j++) header(rows[j], ng, dm[j]);
        for (int c = 0; c < nc; c++) {
            __m256 acc[8];
            UNROLL for (int h = 0; h < NH; h++) acc[h] = _mm256_loadu_ps(o + (size_t)h * hd + 8 * c);
            for (int j = 0; j < nb; j++) {
                __m256 v = value8(rows[j], rows[j] + 4 * (size_t)ng, dm[j], bits, c, cpg);
                UNROLL for (int h = 0; h < NH; h++)
                    acc[h] = _mm256_fmadd_ps(_mm256_broadcast_ss(w + h * ld + ps[j]), v, acc[h]);
            }
            UNROLL for (int h = 0; h < NH; h++) _mm256_storeu_ps(o + (size_t)h * hd + 8 * c, acc[h]);
        }
    }
}

KI void chan_body(const uint8_t *blk, int hd, int group, int nt, const float *q, float scale, float *s, size_t ld,
                  const int NH, const int bits) {
    float dm[2 * MAX_HD], qd[8 * MAX_HD], qm[8], out[8];
    size_t gb = (size_t)group * bits / 8;
    const uint8_t *codes = blk + 4 * (size_t)hd;
    header(blk, hd, dm);
    for (int h = 0; h < NH; h++) {
        float a = 0;
        for (int c = 0; c < hd; c++) {
            qd[h * hd + c] = q[h * hd + c] * dm[2 * c];
            a += q[h * hd + c] * dm[2 * c + 1];
        }
        qm[h] = a;
    }
    __m256 vs = _mm256_set1_ps(scale);
    for (int j0 = 0; j0 < nt; j0 += 8) {
        __m256 acc[8];
        UNROLL for (int h = 0; h < NH; h++) acc[h] = _mm256_setzero_ps();
        for (int c = 0; c < hd; c++) {
            __m256 k = codes8(codes + c * gb + (size_t)j0 * bits / 8, bits);
            UNROLL for (int h = 0; h < NH; h++) acc[h] = _mm256_fmadd_ps(_mm256_broadcast_ss(qd + h * hd + c), k, acc[h]);
        }
        int m = nt - j0 < 8 ? nt - j0 : 8;
        UNROLL for (int h = 0; h < NH; h++) {
            __m256 v = _mm256_mul_ps(_mm256_add_ps(acc[h], _mm256_set1_ps(qm[h])), vs);
            if (m == 8) {
                _mm256_storeu_ps(s + h * ld + j0, v);
            } else {
                _mm256_storeu_ps(out, v);
                memcpy(s + h * ld + j0, out, (size_t)m * sizeof(float));
            }
        }
    }
}

// One specialised function per (bits, heads at once); tables indexed by kvk_bits_index / heads index.
#define KVK_FNS(B, NH)                                                                                \
    static void sc_b##B##_h##NH(const kvk_rows *r, const float *q, float scale, float *s, size_t ld) { \
        scores_body(r, q, scale, s, ld, NH, B);                                                       \
    }                                                                                                 \
    static void ac_b##B##_h##NH(const kvk_rows *r, const float *w, size_t ld, float *o) {             \
        accum_body(r, w, ld, o, NH, B);                                                               \
    }
#define KVK_CHAN(B, NH)                                                                              \
    static void ch_b##B##_h##NH(const uint8_t *blk, int hd, int g, int nt, const float *q, float scale, \
                                float *s, size_t ld) {                                               \
        chan_body(blk, hd, g, nt, q, scale, s, ld, NH, B);                                           \
    }
#define KVK_I4(B, NH)                                                                                \
    static void sq_b##B##_h##NH(const kvk_rows *r, const float *q, float scale, float *s, size_t ld) { \
        scores_i8q_body(r, q, scale, s, ld, NH, B);                                                   \
    }
#define KVK_ALL_HEADS(M, B) M(B, 8) M(B, 4) M(B, 2) M(B, 1)
KVK_ALL_HEADS(KVK_FNS, 16)
KVK_ALL_HEADS(KVK_FNS, 8)
KVK_ALL_HEADS(KVK_FNS, 4)
KVK_ALL_HEADS(KVK_FNS, 3)
KVK_ALL_HEADS(KVK_FNS, 2)
KVK_ALL_HEADS(KVK_I4, 4)
KVK_ALL_HEADS(KVK_I4, 2)
KVK_ALL_HEADS(KVK_CHAN, 8)
KVK_ALL_HEADS(KVK_CHAN, 4)
KVK_ALL_HEADS(KVK_CHAN, 3)
KVK_ALL_HEADS(KVK_CHAN, 2)

typedef void (*sc_fn)(const kvk_rows *, const float *, float, float *, size_t);
typedef void (*ac_fn)(const kvk_rows *, const float *, size_t, float *);
typedef void (*ch_fn)(const uint8_t *, int, int, int, const float *, float, float *, size_t);

#define ROW4(P, B) {P##_b##B##_h8, P##_b##B##_h4, P##_b##B##_h2, P##_b##B##_h1}
static const sc_fn k_sc[5][4] = {ROW4(sc, 16), ROW4(sc, 8), ROW4(sc, 4), ROW4(sc, 3), ROW4(sc, 2)};
static const ac_fn k_ac[5][4] = {ROW4(ac, 16), ROW4(ac, 8), ROW4(ac, 4), ROW4(ac, 3), ROW4(ac, 2)};
static const sc_fn k_sq4[4] = ROW4(sq, 4), k_sq2[4] = ROW4(sq, 2);
static const ch_fn k_ch[5][4] = {{0}, ROW4(ch, 8), ROW4(ch, 4), ROW4(ch, 3), ROW4(ch, 2)};


static int rows_ok(const kvk_rows *r) {
    return r->hd % 8 == 0 && r->hd <= MAX_HD && kvk_bits_index(r->bits) >= 0 && (r->bits == 16 || r->group % 8 == 0);
}

static void scores_avx2(const kvk_rows *r, const float *q, int rep, float scale, float *s, size_t ld) {
    if (!rows_ok(r)) {
        kvk_ref()->scores(r, q, rep, scale, s, ld);
        return;
    }
    int b = kvk_bits_index(r->bits), col;
    if (r->bits == 4 || r->bits == 2) {   // int8-query form (kv_kern.h); the scalar twin where the layout doesn't fit
        if (r->hd % 64 || r->group % 32) {
            kvk_ref()->scores(r, q, rep, scale, s, ld);
            return;
        }
        for (int h0 = 0; h0 < rep;) {
            int nh = kvk_heads_step(rep - h0, &col);
            (r->bits == 4 ? k_sq4 : k_sq2)[col](r, q + (size_t)h0 * r->hd, scale, s + h0 * ld, ld);
            h0 += nh;
        }
        return;
    }
    for (int h0 = 0; h0 < rep;) {
        int nh = kvk_heads_step(rep - h0, &col);
        k_sc[b][col](r, q + (size_t)h0 * r->hd, scale, s + h0 * ld, ld);
        h0 += nh;
    }
}

static void accum_avx2(const kvk_rows *r, const float *w, size_t ld, int rep, float *o) {
    if (!rows_ok(r)) {
        kvk_ref()->accum(r, w, ld, rep, o);
        return;
    }
    int b = kvk_bits_index(r->bits), col;
    for (int h0 = 0; h0 < rep;) {
        int nh = kvk_heads_step(rep - h0, &col);
        k_ac[b][col](r, w + h0 * ld, ld, o + (size_t)h0 * r->hd);
        h0 += nh;
    }
}

static void chan_scores_avx2(const uint8_t *blk, int bits, int hd, int group, int nt, const float *q, int rep,
                             float scale, float *s, size_t ld) {
    int b = kvk_bits_index(bits), col;
    if (b < 1 || hd > MAX_HD || group % 8) {
        kvk_ref()->chan_scores(blk, bits, hd, group, nt, q, rep, scale, s, ld);
        return;
    }
    for (int h0 = 0; h0 < rep;) {
        int nh = kvk_heads_step(rep - h0, &col);
        k_ch[b][col](blk, hd, group, nt, q + (size_t)h0 * hd, scale, s + h0 * ld, ld);
        h0 += nh;
    }
}

// The scalar softmax spent more time than the whole INT2 attention kernels (a libm expf call and a
// serial double add per score): 8 lanes of max, polynomial exp and double sums (two 4-lane
// accumulators), then the same float multiply by 1/Σ. The last n % 8 entries take the scalar path.
static void softmax_avx2(float *s, int n) {
    int n8 = n & ~7;
    __m256 vm = _mm256_set1_ps(-INFINITY);
    for (int i = 0; i < n8; i += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(s + i));
    float lanes[8], mx = -INFINITY;
    _mm256_storeu_ps(lanes, vm);
    for (int i = 0; i < 8; i++) mx = lanes[i] > mx ? lanes[i] : mx;
    for (int i = n8; i < n; i++) mx = s[i] > mx ? s[i] : mx;
    __m256 vmx = _mm256_set1_ps(mx);
    __m256d d0 = _mm256_setzero_pd(), d1 = _mm256_setzero_pd();
    for (int i = 0; i < n8; i += 8) {
        __m256 e = simd_exp8(_mm256_sub_ps(_mm256_loadu_ps(s + i), vmx));
        _mm256_storeu_ps(s + i, e);
        d0 = _mm256_add_pd(d0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        d1 = _mm256_add_pd(d1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double dl[4], sum = 0;
    _mm256_storeu_pd(dl, _mm256_add_pd(d0, d1));
    sum = (dl[0] + dl[1]) + (dl[2] + dl[3]);
    for (int i = n8; i < n; i++) {
        s[i] = expf(s[i] - mx);
        sum += s[i];
    }
    float inv = (float)(1.0 / sum);
    __m256 vi = _mm256_set1_ps(inv);
    for (int i = 0; i < n8; i += 8) _mm256_storeu_ps(s + i, _mm256_mul_ps(_mm256_loadu_ps(s + i), vi));
    for (int i = n8; i < n; i++) s[i] *= inv;
}

static const kvk_ops avx2_ops = {"avx2", scores_avx2, accum_avx2, chan_scores_avx2, softmax_avx2};

const kvk_ops *kvk_avx2(void) { return &avx2_ops; }
