// Integer-format matmul microbenchmark: decode (nt = 1) weight-streaming bandwidth in GB/s of
// packed weights, as a fraction of the machine's read bandwidth (measured in the same rounds by a
// streaming probe over the same buffers, same thread count), and the tok/s it would mean for
// TinyLlama-1.1B; and prefill GFLOP/s (nt = 8, 64, 128), per format and ISA, with 1 and 2 threads;
// F16 (matmul_avx*.c) alongside as the baseline. Decode rows "dq-avx2" / "dq-avx512" are the int8-
// activation GEMV (kernels/iqdec.h, the default decode path; kernels/ggdec.h for ggml Q4_0 / Q8_0 /
// Q4_K / Q6_K), its activation quantization included. Their prefill rows run the same kernels as
// forward/linear.c's prefill drivers do (row blocks, every token over a block: kernels/iqgemm.h,
// kern_matmul_ggdg_group), activation quantization included.
//
// Build (from the repo root, after `make`; one shell line):
//   cc -O2 -std=c11 -D_DEFAULT_SOURCE -Isrc -pthread bench/bench_qkernels.c build/libintact.a -lm -o /tmp/bench_qkernels && /tmp/bench_qkernels
// Options: bench_qkernels [quick] [decode|prefill|hot] [ggml] (ggml: only ggml's types and int4_g128)
// hot: the decode kernels' compute ceiling, one thread over a 512-row matrix that stays in L2; a
// kernel whose ceiling is near the DRAM rate cannot hide its work behind the memory stream.
//
// Decode cycles through enough different 5632x2048 matrices (>= 96 MB in all) that every call
// streams its weights from DRAM, as a real decode step does. Prefill uses one 2048x2048 matrix.
// tok/s-equivalent = weights per second / 1.03e9, the weights TinyLlama-1.1B reads per token
// (22 layers x (2 x 2048^2 + 2 x 2048 x 256 + 3 x 2048 x 5632) + the 32000 x 2048 output head),
// i.e. the speed of a model whose every matrix were in that format, matmuls alone.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/pool.h"
#include "formats/fmt_kernels.h"
#include "formats/formats.h"
#include "kernels/ggdec.h"
#include "kernels/iqdec.h"
#include "kernels/iqgemm.h"

uint64_t eval_stream_read_avx2(const void *buf, size_t bytes);   // src/eval/membw_avx2.c

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    it_matmul_fn fn;
    kern_dq_fn dq;   // instead of fn: the int8-activation GEMV over *a
    ggdec_fn gg;     // the same for ggml's types (kernels/ggdec.h); type in gtype
    int gtype;
    qf_spec spec;
    const kern_dq *a;
    const char *w;
    size_t row_bytes;
    int64_t n_in, n_out, nt;
    const float *x;
    float *y;
    long block;   // > 0: rows walked in blocks of this many, every token over a block (prefill driver)
} job;

// Same split as kern_matmul: contiguous row slices aligned to 16.
static void worker(void *arg, int ith, int nth) {
    const job *j = arg;
    long r0, r1;
    it_split_range((long)j->n_out, ith, nth, 16, &r0, &r1);
    if (r0 >= r1) return;
    long step = j->block > 0 ? j->block : r1 - r0;
    for (long r = r0; r < r1; r += step) {
        long re = r + step < r1 ? r + step : r1;
        if (j->gg) j->gg(j->gtype, j->w, j->row_bytes, j->a, j->y, j->n_out, r, re);
        else if (j->dq) j->dq(&j->spec, j->w, j->row_bytes, j->a, j->y, j->n_out, r, re);
        else j->fn(j->w, j->row_bytes, j->n_in, j->x, j->n_in, j->nt, j->y, j->n_out, r, re);
    }
}

// The bandwidth probe: each thread streams its half of the buffer.
typedef struct {
    const char *p;
    size_t n;
    volatile uint64_t sink;
} probe;
static void probe_worker(void *arg, int ith, int nth) {
    probe *pr = arg;
    size_t per = pr->n / (size_t)nth / 128 * 128;
    pr->sink ^= eval_stream_read_avx2(pr->p + per * (size_t)ith, per);
}

// Random bytes, then every block's fp16 scale set to a small normal value (no inf/NaN); F16
// weights keep their exponents small the same way.
static void fill(int type, char *p, size_t n) {
    uint32_t s = 12345;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (char)((s >> 24) & (type == IT_TYPE_F16 ? 0x3f : 0xff));
    }
    if (type == IT_TYPE_F16) return;
    size_t bb = fmt_get(type)->block_bytes, at = type == IT_TYPE_Q6_K ? 208 : 0;
    for (size_t o = 0; o + bb <= n; o += bb) {
        p[o + at] = 0x00, p[o + at + 1] = 0x20;
        if (type == IT_TYPE_Q4_K) p[o + 2] = 0x00, p[o + 3] = 0x20;   // dmin
    }
}

static double best(const double *t, int n) {
    double m = 1e30;
    for (int i = 0; i < n; i++) m = t[i] < m ? t[i] : m;
    return m;
}

enum { NTYPES = 11, NISA = 4, MAXS = 512 };
static const int k_types[NTYPES] = {IT_TYPE_F16,       IT_QTYPE(4, 2, 0), IT_QTYPE(4, 2, 1),
                                    IT_QTYPE(4, 0, 0), IT_QTYPE(8, 2, 0), IT_QTYPE(3, 2, 0),
                                    IT_QTYPE(2, 2, 0), IT_TYPE_Q4_0, IT_TYPE_Q8_0, IT_TYPE_Q4_K, IT_TYPE_Q6_K};
static const char *k_isas[NISA] = {"avx2", "avx512", "dq-avx2", "dq-avx512"};

static it_matmul_fn kernel(int type, int isa) { return isa < 2 ? fmt_kernel(type, k_isas[isa]) : NULL; }
static kern_dq_fn dq_kernel(int type, int isa) { return isa >= 2 ? kern_dq_kernel(type, k_isas[isa] + 3) : NULL; }
static ggdec_fn gg_kernel(int type, int isa) { return isa >= 2 ? ggdec_kernel(type, k_isas[isa] + 3) : NULL; }
static int only_ggml_types;   // the "ggml" option
static int have(int type, int isa) {
    if (only_ggml_types && type != IT_QTYPE(4, 2, 0) && !ggdec_supported(type)) return 0;
    return kernel(type, isa) || dq_kernel(type, isa) || gg_kernel(type, isa);
}

// Fastest call over several rounds, configurations interleaved (the machine is shared).
int main(int argc, char **argv) {
    int quick = 0, do_decode = 1, do_prefill = 1, do_hot = 0, only_ggml = 0;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "quick")) quick = 1;
        if (!strcmp(argv[a], "decode")) do_prefill = 0;
        if (!strcmp(argv[a], "prefill")) do_decode = 0;
        if (!strcmp(argv[a], "ggml")) only_ggml = 1;
        if (!strcmp(argv[a], "hot")) do_hot = 1, do_decode = do_prefill = 0;
    }
    only_ggml_types = only_ggml;
    enum { NT_N = 3, NISA_PF = NISA };
    const int64_t n_in = 2048, n_out = 5632, pn_out = 2048;
    static const int64_t nts[NT_N] = {8, 64, 128};
    const double tok_weights = 22.0 * (2.0 * 2048 * 2048 + 2.0 * 2048 * 256 + 3.0 * 2048 * 5632) +
                               32000.0 * 2048;
    it_pool *pools[3] = {NULL, it_pool_new(1), it_pool_new(2)};
    float *x = malloc((size_t)(128 * n_in) * sizeof(float));
    float *y = malloc((size_t)(128 * n_out) * sizeof(float));
    for (int i = 0; i < 128 * n_in; i++) x[i] = (float)((i % 1000) * 7 % 1000) / 1000.0f - 0.5f;
    char *w[NTYPES];
    size_t rb[NTYPES], mb[NTYPES];
    int nmat[NTYPES];
    for (int ti = 0; ti < NTYPES; ti++) {
        rb[ti] = fmt_row_bytes(k_types[ti], n_in);
        mb[ti] = rb[ti] * (size_t)n_out;
        nmat[ti] = (int)((96u << 20) / mb[ti]) + 1;
        w[ti] = malloc(mb[ti] * (size_t)nmat[ti]);
        fill(k_types[ti], w[ti], mb[ti] * (size_t)nmat[ti]);
    }

    if (do_decode) {
        static double t[NTYPES][NISA][3][MAXS], tbw[3][MAXS];
        static int cnt[NTYPES][NISA][3], cbw[3];
        int rounds = quick ? 3 : 10;
        kern_dq a = {0};
        for (int round = -1; round < rounds; round++) // round -1 warms up (page faults, pools)
            for (int ti = 0; ti < NTYPES; ti++) {
                for (int s = 0; s < NISA; s++) {
                    it_matmul_fn fn = kernel(k_types[ti], s);
                    kern_dq_fn dq = dq_kernel(k_types[ti], s);
                    ggdec_fn gg = gg_kernel(k_types[ti], s);
                    if (!have(k_types[ti], s)) continue;
                    for (int nth = 1; nth <= 2; nth++)
                        for (int m = 0; m < nmat[ti]; m++) {
                            job j = {fn, dq, gg, k_types[ti], {0, 0, 0}, &a, w[ti] + (size_t)m * mb[ti], rb[ti], n_in, n_out, 1, x, y, 0};
                            if (dq) qf_spec_of(k_types[ti], &j.spec);
                            double t0 = now_s();
                            if (dq || gg) kern_dq_quantize(&a, x, 1, n_in);   // once per matmul, as in the model
                            it_pool_run(pools[nth], worker, &j);
                            double dt = now_s() - t0;
                            if (round >= 0 && cnt[ti][s][nth] < MAXS) t[ti][s][nth][cnt[ti][s][nth]++] = dt;
                        }
                }
                // The machine's read bandwidth, probed between the kernels (same buffers, threads).
                for (int nth = 1; nth <= 2; nth++)
                    for (int m = 0; m < nmat[ti]; m++) {
                        probe pr = {w[ti] + (size_t)m * mb[ti], mb[ti], 0};
                        double t0 = now_s();
                        it_pool_run(pools[nth], probe_worker, &pr);
                        double dt = now_s() - t0;
                        if (round >= 0 && cbw[nth] < MAXS) tbw[nth][cbw[nth]++] = dt / (double)mb[ti];
                    }
            }
        kern_dq_free(&a);
        double bw[3];
        for (int nth = 1; nth <= 2; nth++) bw[nth] = 1.0 / best(tbw[nth], cbw[nth]) / 1e9;
        printf("decode (nt=1), %lld x %lld matrices from DRAM: GB/s of packed weights, fraction of the "
               "probed read bandwidth (%.1f GB/s 1 thread, %.1f GB/s 2 threads), TinyLlama-1.1B "
               "tok/s-equivalent\n", (long long)n_out, (long long)n_in, bw[1], bw[2]);
        printf("%-14s %-9s %6s %30s %30s\n", "type", "isa", "MB", "1 thread", "2 threads");
        for (int ti = 0; ti < NTYPES; ti++)
            for (int s = 0; s < NISA; s++) {
                if (!have(k_types[ti], s)) continue;
                printf("%-14s %-9s %6.2f", fmt_get(k_types[ti])->name, k_isas[s], (double)mb[ti] / 1e6);
                for (int nth = 1; nth <= 2; nth++) {
                    double b = best(t[ti][s][nth], cnt[ti][s][nth]), gbs = (double)mb[ti] / b / 1e9;
                    printf("  %6.1f GB/s %4.2f %6.1f tok/s", gbs, gbs / bw[nth], (double)(n_out * n_in) / b / tok_weights);
                }
                printf("\n");
            }
    }

    if (do_prefill) {
        static double t[NTYPES][NISA][NT_N][3][64];
        static int cnt[NTYPES][NISA][NT_N][3];
        int rounds = quick ? 2 : 5;
        kern_dq pa = {0};
        for (int round = -1; round < rounds; round++)
            for (int ti = 0; ti < NTYPES; ti++)
                for (int s = 0; s < NISA_PF; s++) {
                    it_matmul_fn fn = kernel(k_types[ti], s);
                    kern_dq_fn dq = dq_kernel(k_types[ti], s);
                    ggdec_fn gg = gg_kernel(k_types[ti], s);
                    if (!have(k_types[ti], s)) continue;
                    for (int a = 0; a < NT_N; a++)
                        for (int nth = 1; nth <= 2; nth++) {
                            double flop = 2.0 * (double)pn_out * (double)n_in * (double)nts[a];
                            int reps = (int)(0.5e9 / flop) + 1;
                            // The int8 kernels driven as forward/linear.c does at prefill (kernels/iqgemm.h,
                            // kern_matmul_ggdg_group): row blocks, activation quantization included.
                            long blk = gg ? (long)ggdec_block_rows(rb[ti]) : dq ? KERN_DQG_ROWS : 0;
                            job j = {fn, dq, gg, k_types[ti], {0, 0, 0}, &pa, w[ti], rb[ti], n_in, pn_out, nts[a], x, y, blk};
                            if (dq) qf_spec_of(k_types[ti], &j.spec);
                            for (int r = 0; r < reps; r++) {
                                double t0 = now_s();
                                if (dq || gg) kern_dq_quantize(&pa, x, nts[a], n_in);
                                it_pool_run(pools[nth], worker, &j);
                                double dt = now_s() - t0;
                                int *c = &cnt[ti][s][a][nth];
                                if (round >= 0 && *c < 64) t[ti][s][a][nth][(*c)++] = dt;
                            }
                        }
                }
        printf("\nprefill, %lld x %lld matrix, GFLOP/s of the best call, 1 thread / 2 threads\n",
               (long long)pn_out, (long long)n_in);
        printf("%-14s %-9s", "type", "isa");
        for (int a = 0; a < NT_N; a++) printf("  nt=%-11lld", (long long)nts[a]);
        printf("\n");
        for (int ti = 0; ti < NTYPES; ti++)
            for (int s = 0; s < NISA_PF; s++) {
                if (!have(k_types[ti], s)) continue;
                printf("%-14s %-9s", fmt_get(k_types[ti])->name, k_isas[s]);
                for (int a = 0; a < NT_N; a++) {
                    double flop = 2.0 * (double)pn_out * (double)n_in * (double)nts[a];
                    printf("  %6.1f/%-7.1f", flop / best(t[ti][s][a][1], cnt[ti][s][a][1]) / 1e9,
                           flop / best(t[ti][s][a][2], cnt[ti][s][a][2]) / 1e9);
                }
                printf("\n");
            }
        kern_dq_free(&pa);
    }
    if (do_hot) {
        enum { HOT_ROWS = 512, HOT_CALLS = 100 };
        static double t[NTYPES][NISA][8];
        int rounds = quick ? 3 : 8;
        kern_dq a = {0};
        kern_dq_quantize(&a, x, 1, n_in);
        for (int round = 0; round < rounds; round++)   // configurations interleaved, best round kept
            for (int ti = 0; ti < NTYPES; ti++)
                for (int s = 0; s < NISA; s++) {
                    if (!have(k_types[ti], s)) continue;
                    job j = {kernel(k_types[ti], s), dq_kernel(k_types[ti], s), gg_kernel(k_types[ti], s), k_types[ti],
                             {0, 0, 0}, &a, w[ti], rb[ti], n_in, HOT_ROWS, 1, x, y, 0};
                    if (j.dq) qf_spec_of(k_types[ti], &j.spec);
                    worker(&j, 0, 1);   // into L2
                    double t0 = now_s();
                    for (int c = 0; c < HOT_CALLS; c++) worker(&j, 0, 1);
                    t[ti][s][round] = (now_s() - t0) / HOT_CALLS;
                }
        kern_dq_free(&a);
        printf("\ndecode (nt=1) from L2, 1 thread, %d x %lld matrix: GB/s of packed weights (compute ceiling)\n",
               HOT_ROWS, (long long)n_in);
        for (int ti = 0; ti < NTYPES; ti++)
            for (int s = 0; s < NISA; s++) {
                if (!have(k_types[ti], s)) continue;
                double b = best(t[ti][s], rounds);
                printf("%-14s %-9s %6.1f GB/s  %6.2f ns per 512 weights\n", fmt_get(k_types[ti])->name, k_isas[s],
                       (double)rb[ti] * HOT_ROWS / b / 1e9, b * 1e9 / ((double)HOT_ROWS * (double)n_in / 512.0));
            }
    }
    for (int ti = 0; ti < NTYPES; ti++) free(w[ti]);
    it_pool_free(pools[1]);
    it_pool_free(pools[2]);
    free(x);
    free(y);
    return 0;
}
