// PROTOTYPE, timing only (not used by the engine): int4 g128 decode from a 16-row-interleaved copy
// of the weights, against the engine's decode kernel on the file layout, both streaming from DRAM.
//
// Why: the engine's AVX-512 decode kernel (kernels/iqdec_avx512vnni.c) spends ~43 vector ops per
// 512 weights of one row: 20 to unpack and multiply, 9 to reduce its vpdpbusd lanes (4 per block)
// to one per block, ~14 for the float step of 16 blocks. Decode time behaves like memory time plus
// about half of that (docs/speed.md). Here a tile of 16 rows is stored so that dword lane r of every
// 64-byte load is row r: vpdpbusd with the activations' 4 bytes broadcast accumulates one row per
// lane, nothing is reduced, and one float step serves 16 rows: ~26 ops per 512 weights.
//
// The tile copy holds exactly the file's bytes, rearranged (a group of 16 rows: 16 fp16 d, 16 z, then
// per 32-weight block four 64-byte loads, load k lane r = bytes 4k..4k+3 of row r's 16 code bytes).
// The float step sums a row's blocks in order, not in the engine's 16 lanes + tree
// (kern_dq_ref), so results agree with it only to rounding (checked: max relative error printed).
//
// Measured (docs/speed.md, 2026-12-07): from L2 the tile kernel streams 1.42x the engine kernel
// (39-44 against 27-31 GB/s, one thread); from DRAM only 1.02-1.04x (0.79 against 0.76-0.77 of
// the probe, 2 threads). Halving the instructions per byte does not buy decode speed here.
//
// Build (repo root, after `make`; one line; -DPF=BYTES -DPFSTEP=64|128 set the software prefetch):
//   cc -O2 -std=c11 -D_DEFAULT_SOURCE -Isrc -pthread -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mf16c -mfma bench/proto_rowtile.c build/libintact.a -lm -o /tmp/proto_rowtile && /tmp/proto_rowtile
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "core/pool.h"
#include "formats/formats.h"
#include "formats/qformat.h"
#include "kernels/iqdec.h"

#include "bench_peak.h"

enum { N_IN = 2048, N_OUT = 5632, G = 128, BB = 3 + G / 2, TILE = 16 };
#ifndef PF
#define PF 2048
#endif
#ifndef PFSTEP
#define PFSTEP 64
#endif

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double median(const double *v, int n) {
    double s[64];
    memcpy(s, v, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof(double), cmp_d);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}
static double fmin_arr(const double *v, int n) {
    double m = v[0];
    for (int i = 1; i < n; i++) m = fmin(m, v[i]);
    return m;
}
static double fmax_arr(const double *v, int n) {
    double m = v[0];
    for (int i = 1; i < n; i++) m = fmax(m, v[i]);
    return m;
}

// File layout (rows of N_IN / G blocks of BB bytes) -> tiles: per tile, per group: 16 d (fp16), 16 z,
// then 4 blocks x 4 loads x 64 bytes.
static size_t tile_group_bytes(void) { return 32 + 16 + 4 * 4 * 64; }
static void repack(const uint8_t *w, uint8_t *t) {
    const int ng = N_IN / G;
    for (int r0 = 0; r0 < N_OUT; r0 += TILE)
        for (int g = 0; g < ng; g++) {
            uint8_t *o = t + ((size_t)(r0 / TILE) * ng + g) * tile_group_bytes();
            for (int r = 0; r < TILE; r++) {
                const uint8_t *blk = w + (size_t)(r0 + r) * ng * BB + (size_t)g * BB;
                memcpy(o + 2 * r, blk, 2);
                o[32 + r] = blk[2];
                for (int b = 0; b < 4; b++)
                    for (int k = 0; k < 4; k++) memcpy(o + 48 + 256 * b + 64 * k + 4 * r, blk + 3 + 16 * b + 4 * k, 4);
            }
        }
}

typedef struct {
    const uint8_t *t;
    const kern_dq *a;
    float *y;
} tjob;

static void tile_rows(const uint8_t *t, const kern_dq *a, float *y, int tb, int te) {
    const int ng = N_IN / G;
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    for (int ti = tb; ti < te; ti++) {
        const uint8_t *p = t + (size_t)ti * ng * tile_group_bytes();
        __m512 f = _mm512_setzero_ps();
        for (int g = 0; g < ng; g++, p += tile_group_bytes()) {
            for (size_t o = 0; o < tile_group_bytes(); o += PFSTEP) _mm_prefetch((const char *)p + PF + o, _MM_HINT_T0);
            const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
            const __m512i z = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(p + 32)));
            for (int b = 0; b < 4; b++) {
                const int blk = 4 * g + b;
                const int8_t *q = a->q + 32 * blk;
                __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
                for (int k = 0; k < 4; k++) {
                    __m512i x = _mm512_loadu_si512(p + 48 + 256 * b + 64 * k);
                    int32_t ql, qh;
                    memcpy(&ql, q + 4 * k, 4);
                    memcpy(&qh, q + 16 + 4 * k, 4);
                    s0 = _mm512_dpbusd_epi32(s0, _mm512_and_si512(x, m4), _mm512_set1_epi32(ql));
                    s1 = _mm512_dpbusd_epi32(s1, _mm512_and_si512(_mm512_srli_epi16(x, 4), m4), _mm512_set1_epi32(qh));
                }
                __m512i iv = _mm512_sub_epi32(_mm512_add_epi32(s0, s1), _mm512_madd_epi16(z, _mm512_set1_epi32(a->sum[blk])));
                f = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(a->scale[blk])), _mm512_cvtepi32_ps(iv), f);
            }
        }
        _mm512_storeu_ps(y + TILE * ti, f);
    }
}

static void tile_worker(void *arg, int ith, int nth) {
    const tjob *j = arg;
    long b, e;
    it_split_range(N_OUT / TILE, ith, nth, 1, &b, &e);
    tile_rows(j->t, j->a, j->y, (int)b, (int)e);
}

typedef struct {
    kern_dq_fn fn;
    qf_spec spec;
    const uint8_t *w;
    const kern_dq *a;
    float *y;
} fjob;
static void file_worker(void *arg, int ith, int nth) {
    const fjob *j = arg;
    long b, e;
    it_split_range(N_OUT, ith, nth, 16, &b, &e);
    j->fn(&j->spec, j->w, (size_t)(N_IN / G) * BB, j->a, j->y, N_OUT, b, e);
}

int main(void) {
    const int type = IT_QTYPE(4, 2, 0);
    const size_t mb = (size_t)N_OUT * (N_IN / G) * BB, tb = (size_t)(N_OUT / TILE) * (N_IN / G) * tile_group_bytes();
    const int nmat = (int)((256u << 20) / mb) + 1;
    // Both copies in 2 MiB pages, as the engine maps a model (the probe reads the file layout).
    uint8_t *w = aligned_alloc(2u << 20, (mb * nmat + (2u << 20)) & ~(size_t)((2u << 20) - 1));
    uint8_t *t = aligned_alloc(2u << 20, (tb * nmat + (2u << 20)) & ~(size_t)((2u << 20) - 1));
    madvise(w, mb * nmat, MADV_HUGEPAGE), madvise(t, tb * nmat, MADV_HUGEPAGE);
    uint32_t s = 12345;
    for (size_t i = 0; i < mb * nmat; i++) s = s * 1664525u + 1013904223u, w[i] = (uint8_t)(s >> 24);
    for (size_t o = 0; o < mb * nmat; o += BB) w[o] = 0x00, w[o + 1] = 0x20, w[o + 2] &= 15;   // d = 2^-7, z < 16
    for (int m = 0; m < nmat; m++) repack(w + mb * m, t + tb * m);
    float *x = malloc(N_IN * sizeof(float)), *y0 = malloc(N_OUT * sizeof(float)), *y1 = malloc(N_OUT * sizeof(float));
    for (int i = 0; i < N_IN; i++) x[i] = sinf(0.37f * (float)i) * (1.0f + (float)(i % 7));
    kern_dq a = {0};
    kern_dq_quantize(&a, x, 1, N_IN);
    qf_spec sp;
    qf_spec_of(type, &sp);

    // Agreement with the reference kernel (rounding only).
    kern_dq_ref(&sp, w, (size_t)(N_IN / G) * BB, &a, y0, N_OUT, 0, N_OUT);
    tile_rows(t, &a, y1, 0, N_OUT / TILE);
    double maxrel = 0, scale = 0;
    for (int r = 0; r < N_OUT; r++) scale = fmax(scale, fabs(y0[r]));
    for (int r = 0; r < N_OUT; r++) maxrel = fmax(maxrel, fabs(y0[r] - y1[r]) / scale);
    printf("tile kernel vs kern_dq_ref: max |diff| / max |y| = %.2e over %d rows\n", maxrel, N_OUT);

    // Compute ceilings: 512 rows (544 KB) that stay in L2, one thread, best of 200 calls.
    double hf = 1e30, ht = 1e30;
    for (int c = 0; c < 200; c++) {
        double t0 = peak_now();
        kern_dq_kernel(type, "avx512")(&sp, w, (size_t)(N_IN / G) * BB, &a, y0, N_OUT, 0, 512);
        double t1 = peak_now();
        tile_rows(t, &a, y1, 0, 512 / TILE);
        double t2 = peak_now();
        hf = fmin(hf, t1 - t0), ht = fmin(ht, t2 - t1);
    }
    printf("from L2, 1 thread: file layout %.1f GB/s, tiles %.1f GB/s\n", 512.0 * (N_IN / G) * BB / hf / 1e9,
           512.0 / TILE * (N_IN / G) * tile_group_bytes() / ht / 1e9);

    it_pool *pools[3] = {NULL, it_pool_new(1), it_pool_new(2)};
    // Per round: the median over the matrices of each kind; reported: the best round's, and the
    // median round's ratio tile / file (the machine is shared: read the ratio).
    enum { ROUNDS = 15 };
    static double per[3][3][64], rnd[3][3][ROUNDS];
    for (int round = -1; round < ROUNDS; round++)
        for (int nth = 1; nth <= 2; nth++)
            for (int m = 0; m < nmat; m++) {
                fjob fj = {kern_dq_kernel(type, "avx512"), sp, w + mb * m, &a, y0};
                tjob tj = {t + tb * m, &a, y1};
                double t0 = peak_now();
                it_pool_run(pools[nth], file_worker, &fj);
                double t1 = peak_now();
                it_pool_run(pools[nth], tile_worker, &tj);
                double t2 = peak_now();
                double t3 = t2 + peak_stream(pools[nth], w + mb * m, mb);
                if (round < 0 || m >= 64) continue;
                per[nth][0][m] = (t1 - t0) / (double)mb, per[nth][1][m] = (t2 - t1) / (double)tb;
                per[nth][2][m] = (t3 - t2) / (double)mb;
                if (m == nmat - 1 || m == 63)
                    for (int k = 0; k < 3; k++) rnd[nth][k][round] = median(per[nth][k], m + 1);
            }
    printf("int4 g128 decode, %d x %d matrices from DRAM (%d of them), GB/s and fraction of the probe:\n", N_OUT, N_IN, nmat);
    for (int nth = 1; nth <= 2; nth++) {
        double r[ROUNDS], f[ROUNDS], tl[ROUNDS];
        for (int k = 0; k < ROUNDS; k++)
            r[k] = rnd[nth][0][k] / rnd[nth][1][k], f[k] = rnd[nth][2][k] / rnd[nth][0][k], tl[k] = rnd[nth][2][k] / rnd[nth][1][k];
        printf("  %d thread(s): probe %.1f GB/s (median round); fraction of the probe: file layout %.2f, tiles %.2f; "
               "tiles / file layout per round: median %.2f [%.2f-%.2f]\n",
               nth, 1 / median(rnd[nth][2], ROUNDS) / 1e9, median(f, ROUNDS), median(tl, ROUNDS), median(r, ROUNDS),
               fmin_arr(r, ROUNDS), fmax_arr(r, ROUNDS));
    }
    kern_dq_free(&a);
    it_pool_free(pools[1]);
    it_pool_free(pools[2]);
    free(w), free(t), free(x), free(y0), free(y1);
    return 0;
}
