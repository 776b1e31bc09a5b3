// AVX-512 tiled attention (contract in kv_flash.h). Per key block of KVF_KB = 64 keys:
//   1. the block's keys are transposed to Kt (hd, 64) with 16x16 in-register transposes, so
//   2. scores of 4 query rows x 64 keys sit in 16 zmm accumulators: per channel d, 4 loads of Kt
//      and 4 broadcasts of q[d] feed 16 FMAs (no horizontal sums);
//   3. online softmax per row on those registers (polynomial exp, masked lanes exactly 0);
//   4. o (4 rows x 64 channels, 16 zmm) += p_j · v_j over the block's keys: per key 4 loads of v
//      and 4 broadcasts of p feed 16 FMAs.
// Everything per block stays in L1: Kt is 16 KiB at hd 64; the running outputs are rows x hd.
// The next key block's K and V rows are prefetched into L2 while this block is computed, spread
// over the loads (steps 1 and 4) (decode at a 4K fp32 cache +7-12%, docs/speed.md). To L2, not L1:
// an L1 prefetch waits for one of the core's few fill buffers, and with T1 the 4K decode attend of
// kv_full's head-major rows took 0.78 of the time it took with T0. One burst of all 512 prefetches
// per block did not help: it filled the fill buffers at once.
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kv/kv_exp512.h"
#include "kv/kv_flash.h"
#include "core/simd.h"


// exp(x) for x <= 0 (-inf allowed: gives 2^-127·p, callers mask those lanes anyway): Cephes expf's
// range reduction and polynomial, 2^n applied with scalef. Relative error ~2 ulp.
KI __m512 exp512(__m512 x) {
    __m512 n, p = kv_exp512_poly(x, &n);
    return _mm512_scalef_ps(p, n);
}

// Rows of a key block. MODE 0: any rows (kvf_row resolves each: the blocks that hold prefix or sink
// rows); 1 / 2: every row past the prefix and sinks, fp32 / fp16, one base and stride. Why: most
// blocks are of the second kind, and a per-row resolve in the inner loops cost ~12% from L2.
KI const void *row_at(const kvf_args *a, const int MODE, int which, int p, int *half) {
    if (MODE == 0) return kvf_row(a, which, p, half);
    *half = MODE == 2;
    if (MODE == 2) return (which ? a->v16 : a->k16) + (size_t)p * a->ld;
    return (which ? a->v : a->k) + (size_t)p * a->ld;
}

// 16 channels of a resolved row: fp32 loaded, fp16 converted.
KI __m512 load16(const void *row, int half, int d0) {
    if (half) return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)((const uint16_t *)row + d0)));
    return _mm512_loadu_ps((const float *)row + d0);
}

// Toward L2: the line holding channel d0 of a resolved row.
KI void prefetch16(const void *row, int half, int d0) {
    _mm_prefetch((const char *)row + (size_t)d0 * (half ? 2 : 4), _MM_HINT_T1);
}

// Kt[d·KB + j] = k row (kb0 + j), channel d, for j < nk; 0 for nk <= j < KB.
KI void transpose_keys(const int MODE, const kvf_args *a, int kb0, int nk, float *Kt, int last) {
    for (int j0 = 0; j0 < KVF_KB; j0 += 16) {
        const void *row[16], *next[16];
        int half[16], nhalf[16];
        for (int j = 0; j < 16; j++) {   // each row resolved once, for all of its channels
            row[j] = j0 + j < nk ? row_at(a, MODE, 0, kb0 + j0 + j, &half[j]) : NULL;
            next[j] = kb0 + KVF_KB + j0 + j <= last ? row_at(a, MODE, 0, kb0 + KVF_KB + j0 + j, &nhalf[j]) : NULL;
        }
        for (int d0 = 0; d0 < a->hd; d0 += 16) {
            __m512 r[16];
            UNROLL for (int j = 0; j < 16; j++) {
                r[j] = row[j] ? load16(row[j], half[j], d0) : _mm512_setzero_ps();
                if (next[j]) prefetch16(next[j], nhalf[j], d0);
            }
            simd_transpose16(r);
            UNROLL for (int d = 0; d < 16; d++) _mm512_storeu_ps(Kt + (size_t)(d0 + d) * KVF_KB + j0, r[d]);
        }
    }
}

KI float hmax(__m512 a, __m512 b, __m512 c, __m512 d) {
    return _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(a, b), _mm512_max_ps(c, d)));
}

// o rows += p · v over keys j < nj, CH·16 channels from d0; o rows first scaled by corr.
KI void pv(const int MODE, const int R, const int CH, const kvf_args *a, int kb0, int nj, int d0, float *const *orow,
           const float *P, const float *corr, int last) {
    __m512 acc[4][4];
    UNROLL for (int k = 0; k < R; k++) {
        __m512 c = _mm512_set1_ps(corr[k]);
        UNROLL for (int v = 0; v < CH; v++) acc[k][v] = _mm512_mul_ps(_mm512_loadu_ps(orow[k] + d0 + 16 * v), c);
    }
    for (int j = 0; j < nj; j++) {
        int half;
        if (kb0 + KVF_KB + j <= last) {
            const void *nx = row_at(a, MODE, 1, kb0 + KVF_KB + j, &half);
            UNROLL for (int v = 0; v < CH; v++) prefetch16(nx, half, d0 + 16 * v);
        }
        const void *vr = row_at(a, MODE, 1, kb0 + j, &half);
        __m512 vv[4];
        UNROLL for (int v = 0; v < CH; v++) vv[v] = load16(vr, half, d0 + 16 * v);
        UNROLL for (int k = 0; k < R; k++) {
            __m512 b = _mm512_set1_ps(P[k * KVF_KB + j]);
            UNROLL for (int v = 0; v < CH; v++) acc[k][v] = _mm512_fmadd_ps(vv[v], b, acc[k][v]);
        }
    }
    UNROLL for (int k = 0; k < R; k++) UNROLL for (int v = 0; v < CH; v++) _mm512_storeu_ps(orow[k] + d0 + 16 * v, acc[k][v]);
}

// Rows r0 .. r0+R-1 against the key block at kb0 (nk keys in Kt).
KI void rows_block(const int MODE, const int R, const kvf_args *a, int r0, int kb0, int nk, const float *Kt, float *O,
                   float *M, float *L, float *P, int last) {
    int hd = a->hd;
    const float *qr[4];
    float *orow[4], corr[4];
    int lim[4], nj = 0;
    UNROLL for (int k = 0; k < R; k++) {
        int t = (r0 + k) / a->rep, g = (r0 + k) % a->rep;
        qr[k] = a->q + (size_t)t * a->ldq + (size_t)g * hd;
        orow[k] = O + (size_t)(r0 + k) * hd;
        int c = a->pos0 + t - kb0 + 1;
        lim[k] = c < 0 ? 0 : c > nk ? nk : c;
        nj = lim[k] > nj ? lim[k] : nj;
    }
    __m512 s[4][4];
    UNROLL for (int k = 0; k < R; k++) UNROLL for (int v = 0; v < 4; v++) s[k][v] = _mm512_setzero_ps();
    for (int d = 0; d < hd; d++) {
        const float *kt = Kt + (size_t)d * KVF_KB;
        __m512 k0 = _mm512_loadu_ps(kt), k1 = _mm512_loadu_ps(kt + 16), k2 = _mm512_loadu_ps(kt + 32),
               k3 = _mm512_loadu_ps(kt + 48);
        UNROLL for (int k = 0; k < R; k++) {
            __m512 b = _mm512_set1_ps(qr[k][d]);
            s[k][0] = _mm512_fmadd_ps(k0, b, s[k][0]);
            s[k][1] = _mm512_fmadd_ps(k1, b, s[k][1]);
            s[k][2] = _mm512_fmadd_ps(k2, b, s[k][2]);
            s[k][3] = _mm512_fmadd_ps(k3, b, s[k][3]);
        }
    }
    const __m512 scale = _mm512_set1_ps(a->scale), ninf = _mm512_set1_ps(-INFINITY);
    UNROLL for (int k = 0; k < R; k++) {
        int r = r0 + k;
        if (lim[k] == 0) {   // the whole block is in this row's future
            corr[k] = 1.0f;
            UNROLL for (int v = 0; v < 4; v++) _mm512_storeu_ps(P + k * KVF_KB + 16 * v, _mm512_setzero_ps());
            continue;
        }
        __mmask16 mk[4];
        UNROLL for (int v = 0; v < 4; v++) {
            int c = lim[k] - 16 * v;
            mk[v] = c >= 16 ? (__mmask16)0xffff : c <= 0 ? (__mmask16)0 : (__mmask16)((1u << c) - 1);
            s[k][v] = _mm512_mask_mul_ps(ninf, mk[v], s[k][v], scale);
        }
        float bm = hmax(s[k][0], s[k][1], s[k][2], s[k][3]), mn = bm > M[r] ? bm : M[r];
        corr[k] = expf(M[r] - mn);
        __m512 mv = _mm512_set1_ps(mn), sum = _mm512_setzero_ps();
        UNROLL for (int v = 0; v < 4; v++) {
            __m512 p = _mm512_maskz_mov_ps(mk[v], exp512(_mm512_sub_ps(s[k][v], mv)));
            sum = _mm512_add_ps(sum, p);
            _mm512_storeu_ps(P + k * KVF_KB + 16 * v, p);
        }
        L[r] = L[r] * corr[k] + _mm512_reduce_add_ps(sum);
        M[r] = mn;
    }
    int d0 = 0;
    // Only the first row block prefetches the next key block's V rows (last < 0: none).
    if (r0) last = -1;
    for (; d0 + 64 <= hd; d0 += 64) pv(MODE, R, 4, a, kb0, nj, d0, orow, P, corr, last);
    for (; d0 < hd; d0 += 16) pv(MODE, R, 1, a, kb0, nj, d0, orow, P, corr, last);
}

// One key block against every query row: transpose its keys, then 4 query rows at a time.
KI void key_block(const int MODE, const kvf_args *a, int kb0, int nk, float *Kt, float *O, float *M, float *L,
                  float *P, int last) {
    int rows = a->nt * a->rep, r0 = 0;
    transpose_keys(MODE, a, kb0, nk, Kt, last);
    for (; r0 + 4 <= rows; r0 += 4) rows_block(MODE, 4, a, r0, kb0, nk, Kt, O, M, L, P, last);
    switch (rows - r0) {
    case 3: rows_block(MODE, 3, a, r0, kb0, nk, Kt, O, M, L, P, last); break;
    case 2: rows_block(MODE, 2, a, r0, kb0, nk, Kt, O, M, L, P, last); break;
    case 1: rows_block(MODE, 1, a, r0, kb0, nk, Kt, O, M, L, P, last); break;
    default: break;
    }
}

void kvf_attend_avx512(const kvf_args *a) {
    int hd = a->hd, rows = a->nt * a->rep, last = a->pos0 + a->nt - 1;
    float *Kt = a->scratch, *O = Kt + (size_t)hd * KVF_KB, *M = O + (size_t)rows * hd, *L = M + rows,
          *P = L + rows;
    memset(O, 0, (size_t)rows * hd * sizeof *O);
    for (int r = 0; r < rows; r++) M[r] = -INFINITY, L[r] = 0;
    const int nm = a->n0 > a->n1 ? a->n0 : a->n1;   // rows from nm on: one base and stride
    for (int kb0 = 0; kb0 <= last; kb0 += KVF_KB) {
        int nk = last - kb0 + 1 < KVF_KB ? last - kb0 + 1 : KVF_KB;
        int mode = kb0 < nm ? 0 : a->k16 ? 2 : 1;
        if (mode == 0) key_block(0, a, kb0, nk, Kt, O, M, L, P, last);
        else if (mode == 1) key_block(1, a, kb0, nk, Kt, O, M, L, P, last);
        else key_block(2, a, kb0, nk, Kt, O, M, L, P, last);
    }
    for (int r = 0; r < rows; r++) {
        int t = r / a->rep, g = r % a->rep;
        float *out = a->o + (size_t)t * a->ldo + (size_t)g * hd;
        __m512 inv = _mm512_set1_ps(1.0f / L[r]);
        for (int d = 0; d < hd; d += 16)
            _mm512_storeu_ps(out + d, _mm512_mul_ps(_mm512_loadu_ps(O + (size_t)r * hd + d), inv));
    }
}
