// Integer-activation matmul microbenchmark (kernels/iqmatmul.h): W4A8 / W8A8 / W4A4 integer kernels
// against W4A16 (the float-activation qmatmul kernels on the same packed weights), for TinyLlama-1.1B
// layer shapes, prefill (nt = 64 tokens per call, weights in cache-friendly reuse) and decode
// (nt = 1, weights streamed from DRAM), 1 and 2 threads, all configurations interleaved in one run
// (the machine is shared and noisy: read the ratios).
//
// Build (from the repo root, after `make` (or `make BUILD=build-iq`); one shell line):
//   cc -O2 -std=c11 -D_DEFAULT_SOURCE -Isrc -pthread bench/bench_iqkernels.c build-iq/libintact.a -lm -o /tmp/bench_iqkernels && /tmp/bench_iqkernels
// Options: bench_iqkernels [quick] [decode|prefill] [nt=N]
//
// One "layer" is the 7 matrices of a TinyLlama block: q, o (2048 x 2048), k, v (256 x 2048), gate,
// up (5632 x 2048), down (2048 x 5632), i.e. 44.0 M weight MACs per token; the integer rows include
// the activation quantization of the 4 distinct inputs (kern_actq_quantize, single-threaded).
// G MAC/s = weight MACs (nt x weights) / time; tok/s-equivalent = MAC/s / 1.03e9, the weights
// TinyLlama-1.1B reads per token (22 layers + the 32000 x 2048 output head), matmuls alone.
// Decode cycles through enough layers (>= 96 MB) that every matrix comes from DRAM.
// The prefill section ends with issue 12's int8-activation prefill of our formats (kernels/iqgemm.h):
// the register-blocked GEMM (kern_dqg_kernel "avx512") against the decode GEMV driven over 16-row
// blocks (what prefill ran before it), same kern_dq activations (quantization included), in GMAC/s
// and as a fraction of the VNNI peak (bench_peak.h: independent vpdpbusd chains, same pool).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/pool.h"
#include "formats/fmt_kernels.h"
#include "formats/formats.h"
#include "formats/qformat.h"
#include "kernels/iqgemm.h"
#include "kernels/iqmatmul.h"

#include "bench_peak.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

enum { NMAT = 7, MAXL = 16, NCFG = 8 };
static const int64_t k_out[NMAT] = {2048, 256, 256, 2048, 5632, 5632, 2048};
static const int64_t k_in[NMAT] = {2048, 2048, 2048, 2048, 2048, 2048, 5632};
static const int k_input[NMAT] = {0, 0, 0, 1, 2, 2, 3};   // which of the 4 layer inputs

typedef struct {
    const char *name;
    int type;        // weight format
    int abits;       // 8, 4, or 16 (float activations: kern_qmatmul)
    const char *isa; // "avx512" (VNNI for the integer kernels), "avx2"
} cfg;

static const cfg k_cfgs[NCFG] = {
    {"W4A16 int4_g32", IT_QTYPE(4, 0, 0), 16, "avx512"},   {"W4A16 int4_g128", IT_QTYPE(4, 2, 0), 16, "avx512"},
    {"W4A8  int4_g32", IT_QTYPE(4, 0, 0), 8, "avx512"},    {"W4A8  int4_g128", IT_QTYPE(4, 2, 0), 8, "avx512"},
    {"W4A4  int4_g128", IT_QTYPE(4, 2, 0), 4, "avx512"},   {"W8A8  int8_g128", IT_QTYPE(8, 2, 0), 8, "avx512"},
    {"W4A8  int4_g32 avx2", IT_QTYPE(4, 0, 0), 8, "avx2"}, {"W8A8  int8_g128 avx2", IT_QTYPE(8, 2, 0), 8, "avx2"},
};

typedef struct {
    it_matmul_fn ffn;
    kern_iq_fn ifn;
    qf_spec spec;
    const uint8_t *w;
    size_t rb;
    int64_t n_in, n_out, nt;
    const float *x;
    const kern_actq *a;
    float *y;
} job;

static void worker(void *arg, int ith, int nth) {
    const job *j = arg;
    long r0, r1;
    it_split_range((long)j->n_out, ith, nth, 16, &r0, &r1);
    if (r0 >= r1) return;
    if (j->ifn)
        j->ifn(&j->spec, j->w, j->rb, j->a, j->y, j->n_out, r0, r1);
    else
        j->ffn(j->w, j->rb, j->n_in, j->x, j->n_in, j->nt, j->y, j->n_out, r0, r1);
}

// Random bytes with every block's fp16 scale a small normal value.
static void fill(int type, uint8_t *p, size_t n, uint32_t seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (uint8_t)(seed >> 24);
    }
    size_t bb = fmt_get(type)->block_bytes;
    for (size_t o = 0; o + bb <= n; o += bb) p[o] = 0x00, p[o + 1] = 0x20;
}

static double best(const double *t, int n) {
    double m = 1e30;
    for (int i = 0; i < n; i++) m = t[i] < m ? t[i] : m;
    return m;
}

typedef struct {
    uint8_t *w[MAXL][NMAT];
    size_t rb[NMAT];
    int nl;
} weights;

// One pass over layers [l0, l1): every matrix, integer path quantizing each distinct input once.
static void run_layers(it_pool *pool, const cfg *c, const weights *W, int l0, int l1, int64_t nt,
                       float *const *x, kern_actq *aq, float *y) {
    qf_spec s;
    qf_spec_of(c->type, &s);
    it_matmul_fn ffn = c->abits == 16 ? fmt_kernel(c->type, c->isa) : NULL;
    kern_iq_fn ifn = c->abits == 16 ? NULL : kern_iq_kernel(c->type, c->isa);
    for (int l = l0; l < l1; l++) {
        int last = -1;
        for (int m = 0; m < NMAT; m++) {
            int in = k_input[m];
            if (ifn && in != last) kern_actq_quantize(&aq[in], x[in], nt, k_in[m], c->abits, 1.0f);
            last = in;
            job j = {ffn, ifn, s, W->w[l][m], W->rb[m], k_in[m], k_out[m], nt, x[in], &aq[in], y};
            it_pool_run(pool, worker, &j);
        }
    }
}

// ---- issue 12: int8-activation prefill of our formats (kern_dq), GEMM vs blocked decode GEMV ----

enum { NDQ = 4 };
static const struct {
    const char *name;
    int type;
    int gemm;   // 1: kern_dqg_kernel's GEMM; 0: the decode kernel over 16-row blocks
} k_dq[NDQ] = {
    {"int4_g128 decode-blocked", IT_QTYPE(4, 2, 0), 0}, {"int4_g128 GEMM", IT_QTYPE(4, 2, 0), 1},
    {"int3_g128 GEMM", IT_QTYPE(3, 2, 0), 1},            {"int4_g32 GEMM", IT_QTYPE(4, 0, 0), 1},
};

typedef struct {
    kern_dq_fn fn;
    qf_spec spec;
    const uint8_t *w;
    size_t rb;
    int64_t n_out;
    const kern_dq *a;
    float *y;
    int blocked;
} dq_bjob;

static void dq_bworker(void *arg, int ith, int nth) {
    const dq_bjob *j = arg;
    long r0, r1;
    it_split_range((long)j->n_out, ith, nth, 16, &r0, &r1);
    for (long r = r0; r < r1; r += j->blocked ? 16 : r1 - r0)
        j->fn(&j->spec, j->w, j->rb, j->a, j->y, j->n_out, r, j->blocked && r + 16 < r1 ? r + 16 : r1);
}

// One layer of the int8-activation prefill: each distinct input quantized once (kern_dq), 7 matrices.
static void run_dq_layer(it_pool *pool, int c, uint8_t *const *w, const size_t *rb, int64_t nt, float *const *x,
                         kern_dq *a, float *y) {
    qf_spec s;
    qf_spec_of(k_dq[c].type, &s);
    kern_dq_fn fn = k_dq[c].gemm ? kern_dqg_kernel(k_dq[c].type, "avx512") : kern_dq_kernel(k_dq[c].type, "avx512");
    int last = -1;
    for (int m = 0; m < NMAT; m++) {
        int in = k_input[m];
        if (in != last) kern_dq_quantize(&a[in], x[in], nt, k_in[m]);
        last = in;
        dq_bjob j = {fn, s, w[m], rb[m], k_out[m], &a[in], y, !k_dq[c].gemm};
        it_pool_run(pool, dq_bworker, &j);
    }
}

static void bench_dq(it_pool *const *pools, int64_t nt, float *const *x, float *y, int rounds, double layer_macs) {
    if (!kern_dqg_kernel(IT_QTYPE(4, 2, 0), "avx512")) {
        printf("\nint8-activation prefill GEMM: not available on this CPU (AVX-512 VNNI + BITALG)\n");
        return;
    }
    static uint8_t *w[NDQ][NMAT];
    size_t rb[NDQ][NMAT];
    kern_dq a[4];
    memset(a, 0, sizeof a);
    static double t[NDQ][3][64];
    for (int c = 0; c < NDQ; c++)
        for (int m = 0; m < NMAT; m++) {
            rb[c][m] = fmt_row_bytes(k_dq[c].type, k_in[m]);
            w[c][m] = malloc(rb[c][m] * (size_t)k_out[m]);
            fill(k_dq[c].type, w[c][m], rb[c][m] * (size_t)k_out[m], (uint32_t)(c * 7 + m));
        }
    for (int round = -1; round < rounds; round++)
        for (int c = 0; c < NDQ; c++)
            for (int nth = 1; nth <= 2; nth++) {
                double t0 = now_s();
                run_dq_layer(pools[nth], c, w[c], rb[c], nt, x, a, y);
                if (round >= 0) t[c][nth][round] = now_s() - t0;
            }
    double peak[3] = {0, peak_compute(pools[1], 1), peak_compute(pools[2], 1)};
    printf("\nint8-activation prefill of our formats (nt=%lld, kern_dq, quantization included), best of %d:"
           " G MAC/s and fraction of the VNNI peak (%.0f / %.0f G int8 MAC/s at 1 / 2 threads)\n",
           (long long)nt, rounds, peak[1], peak[2]);
    printf("%-26s %30s %30s\n", "config", "1 thread", "2 threads");
    for (int c = 0; c < NDQ; c++) {
        printf("%-26s", k_dq[c].name);
        for (int nth = 1; nth <= 2; nth++) {
            double macs = layer_macs * (double)nt / best(t[c][nth], rounds);
            printf("  %7.1f GMAC/s %5.1f%% of peak     ", macs / 1e9, peak[nth] > 0 ? 100 * macs / 1e9 / peak[nth] : 0);
        }
        printf("\n");
    }
    for (int c = 0; c < NDQ; c++)
        for (int m = 0; m < NMAT; m++) free(w[c][m]);
    for (int i = 0; i < 4; i++) kern_dq_free(&a[i]);
}

int main(int argc, char **argv) {
    int quick = 0, do_decode = 1, do_prefill = 1;
    int64_t pnt = 64;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "quick")) quick = 1;
        if (!strcmp(argv[i], "decode")) do_prefill = 0;
        if (!strcmp(argv[i], "prefill")) do_decode = 0;
        if (!strncmp(argv[i], "nt=", 3)) pnt = atoll(argv[i] + 3);
    }
    if (pnt < 1 || pnt > 512) pnt = 64;
    double layer_macs = 0;
    for (int m = 0; m < NMAT; m++) layer_macs += (double)k_out[m] * (double)k_in[m];
    const double tok_macs = 1.03e9;
    it_pool *pools[3] = {NULL, it_pool_new(1), it_pool_new(2)};
    float *x[4], *y = malloc((size_t)(pnt * 5632) * sizeof(float));
    for (int i = 0; i < 4; i++) {
        x[i] = malloc((size_t)(pnt * 5632) * sizeof(float));
        for (int64_t k = 0; k < pnt * 5632; k++) x[i][k] = (float)(((k * 7 + i) % 1000) * 7 % 1000) / 1000.0f - 0.5f;
    }
    kern_actq aq[4];
    memset(aq, 0, sizeof aq);
    // Weights per distinct format; decode uses as many layers as make >= 96 MB.
    static weights W[NCFG];
    int avail[NCFG];
    for (int c = 0; c < NCFG; c++) {
        const cfg *cf = &k_cfgs[c];
        avail[c] = cf->abits == 16 ? fmt_kernel(cf->type, cf->isa) != NULL : kern_iq_kernel(cf->type, cf->isa) != NULL;
        int shared = -1;
        for (int p = 0; p < c; p++)
            if (k_cfgs[p].type == cf->type) shared = p;
        if (shared >= 0) {
            W[c] = W[shared];
            continue;
        }
        size_t lb = 0;
        for (int m = 0; m < NMAT; m++) {
            W[c].rb[m] = fmt_row_bytes(cf->type, k_in[m]);
            lb += W[c].rb[m] * (size_t)k_out[m];
        }
        W[c].nl = (int)((96u << 20) / lb) + 1;
        if (W[c].nl > MAXL) W[c].nl = MAXL;
        for (int l = 0; l < W[c].nl; l++)
            for (int m = 0; m < NMAT; m++) {
                size_t n = W[c].rb[m] * (size_t)k_out[m];
                W[c].w[l][m] = malloc(n);
                fill(cf->type, W[c].w[l][m], n, (uint32_t)(l * 31 + m));
            }
    }
    static double tp[NCFG][3][256], td[NCFG][3][256];
    static int np[NCFG][3], nd[NCFG][3];
    int rounds = quick ? 3 : 8;
    for (int round = -1; round < rounds; round++)   // round -1 warms up
        for (int c = 0; c < NCFG; c++) {
            if (!avail[c]) continue;
            for (int nth = 1; nth <= 2; nth++) {
                if (do_prefill) {
                    double t0 = now_s();
                    run_layers(pools[nth], &k_cfgs[c], &W[c], 0, 1, pnt, x, aq, y);
                    double dt = now_s() - t0;
                    if (round >= 0) tp[c][nth][np[c][nth]++] = dt;
                }
                if (do_decode) {
                    for (int l = 0; l < W[c].nl; l++) {
                        double t0 = now_s();
                        run_layers(pools[nth], &k_cfgs[c], &W[c], l, l + 1, 1, x, aq, y);
                        double dt = now_s() - t0;
                        if (round >= 0 && nd[c][nth] < 256) td[c][nth][nd[c][nth]++] = dt;
                    }
                }
            }
        }
    for (int phase = 0; phase < 2; phase++) {
        if (phase == 0 ? !do_prefill : !do_decode) continue;
        int64_t nt = phase == 0 ? pnt : 1;
        printf("\n%s (nt=%lld), one TinyLlama layer (44.0 M weights), best of %d: G MAC/s, tok/s-equivalent, "
               "speed vs W4A16 int4_g32 (same threads)\n",
               phase == 0 ? "prefill" : "decode from DRAM", (long long)nt, rounds);
        printf("%-22s %30s %30s\n", "config", "1 thread", "2 threads");
        double base[3] = {0, 0, 0};
        for (int c = 0; c < NCFG; c++) {
            if (!avail[c]) continue;
            printf("%-22s", k_cfgs[c].name);
            for (int nth = 1; nth <= 2; nth++) {
                double b = phase == 0 ? best(tp[c][nth], np[c][nth]) : best(td[c][nth], nd[c][nth]);
                double macs = layer_macs * (double)nt / b;
                if (c == 0) base[nth] = macs;
                printf("  %7.1f GMAC/s %7.1f tok/s %4.2fx", macs / 1e9, macs / tok_macs, macs / base[nth]);
            }
            printf("\n");
        }
    }
    if (do_prefill) bench_dq(pools, pnt, x, y, rounds, layer_macs);
    for (int c = 0; c < NCFG; c++) {
        int shared = 0;
        for (int p = 0; p < c; p++) shared |= k_cfgs[p].type == k_cfgs[c].type;
        if (!shared)
            for (int l = 0; l < W[c].nl; l++)
                for (int m = 0; m < NMAT; m++) free(W[c].w[l][m]);
    }
    for (int i = 0; i < 4; i++) {
        free(x[i]);
        kern_actq_free(&aq[i]);
    }
    free(y);
    it_pool_free(pools[1]);
    it_pool_free(pools[2]);
    return 0;
}
