// Matmul kernel microbenchmark: decode (nt = 1) weight-streaming bandwidth in GB/s and prefill
// (nt = 64, 128, 512) throughput in GFLOP/s, for each weight type and ISA, with 1 and 2 threads,
// each also as a fraction of the machine's read bandwidth / FMA peak measured in the same run
// (bench_peak.h), so a regression shows as a fraction rather than as a number to remember.
//
// Build (from the repo root, after `make`; one shell line):
//   cc -O2 -std=c11 -D_DEFAULT_SOURCE -Isrc -pthread bench/bench_kernels.c build/libintact.a -lm -o /tmp/bench_kernels && /tmp/bench_kernels
// Options: bench_kernels [quick] [decode|prefill]   ("quick" runs fewer repetitions; decode or
// prefill runs only that half).
//
// Decode cycles through 8 different 5632x2048 matrices (8 x 23 MB for F16) so every pass streams
// the weights from DRAM, as a real decode step does. Prefill uses one 2048x2048 matrix (it is
// compute bound; the weights stay cache-resident as they would for a real layer's token chunk).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/pool.h"
#include "formats/fmt_kernels.h"
#include "formats/formats.h"
#include "bench_peak.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    it_matmul_fn fn;
    const char *w;
    size_t row_bytes;
    int64_t n_in, n_out, nt;
    const float *x;
    float *y;
} job;

// Same split as kern_matmul: contiguous row slices aligned to 16.
static void worker(void *arg, int ith, int nth) {
    const job *j = arg;
    long r0, r1;
    it_split_range((long)j->n_out, ith, nth, 16, &r0, &r1);
    if (r0 < r1) j->fn(j->w, j->row_bytes, j->n_in, j->x, j->n_in, j->nt, j->y, j->n_out, r0, r1);
}

static void fill(char *p, size_t n) {
    uint32_t s = 12345;
    // Small random values that are valid in every format (no NaN/inf patterns for f16/bf16):
    // bytes in [0x00, 0x3f] keep 16-bit exponents small; Q8_0 scales land in the same range.
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (char)((s >> 24) & 0x3f);
    }
}

// Per-configuration call times: the best shows what the kernel can do, the median what a run on
// this shared machine typically gets.
typedef struct {
    int n;
    double t[256];
} sampler;

static void sample_add(sampler *s, double t) {
    if (s->n < 256) s->t[s->n++] = t;
}

static double sample_min(const sampler *s) {
    double m = 1e30;
    for (int i = 0; i < s->n; i++) m = s->t[i] < m ? s->t[i] : m;
    return m;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double sample_median(sampler *s) {
    if (!s->n) return 1e30;
    qsort(s->t, (size_t)s->n, sizeof s->t[0], cmp_double);
    return s->t[s->n / 2];
}

static const int k_types[] = {IT_TYPE_F32, IT_TYPE_F16, IT_TYPE_BF16, IT_TYPE_Q8_0};
static const char *k_isas[] = {"ref", "avx2", "avx512"};

// Fastest single call over several rounds, every configuration measured in each round: the bench
// machine is shared, and interleaving spreads bursts of foreign load over all configurations
// instead of ruining one of them. Each decode call streams a 12-46 MB matrix that was last touched
// 7 calls earlier (8 x the matrix exceeds the 32 MB L3), so it comes from DRAM.
int main(int argc, char **argv) {
    int quick = 0, do_decode = 1, do_prefill = 1;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "quick")) quick = 1;
        if (!strcmp(argv[a], "decode")) do_prefill = 0;
        if (!strcmp(argv[a], "prefill")) do_decode = 0;
    }
    enum { NMAT = 8, NT_N = 4 };
    const int64_t n_in = 2048, n_out = 5632, pn_out = 2048;
    static const int64_t nts[NT_N] = {8, 64, 128, 512};
    it_pool *pools[3] = {NULL, it_pool_new(1), it_pool_new(2)};
    float *x = malloc((size_t)(512 * n_in) * sizeof(float));
    float *y = malloc((size_t)(512 * n_out) * sizeof(float));
    for (int i = 0; i < 512 * n_in; i++) x[i] = (float)((i % 1000) * 7 % 1000) / 1000.0f - 0.5f;
    char *w[4];
    size_t rb[4], mb[4];
    for (int ti = 0; ti < 4; ti++) {
        rb[ti] = fmt_row_bytes(k_types[ti], n_in);
        mb[ti] = rb[ti] * (size_t)n_out;
        w[ti] = malloc(mb[ti] * NMAT);
        fill(w[ti], mb[ti] * NMAT);
    }

    if (do_decode) {
        static sampler sm[4][3][3], sm_stream[4][3];
        int rounds = quick ? 4 : 15;
        for (int round = -1; round < rounds; round++) { // round -1 warms up (page faults, pools)
            for (int ti = 0; ti < 4; ti++)
                for (int s = 0; s < 3; s++) {
                    it_matmul_fn fn = fmt_kernel(k_types[ti], k_isas[s]);
                    if (!fn || (s == 0 && round > 0)) continue; // the scalar kernel: one sample
                    for (int nth = 1; nth <= 2; nth++) {
                        for (int m = 0; m < NMAT; m++) {
                            job j = {fn, w[ti] + (size_t)m * mb[ti], rb[ti], n_in, n_out, 1, x, y};
                            double t0 = now_s();
                            it_pool_run(pools[nth], worker, &j);
                            double dt = now_s() - t0;
                            if (round >= 0) sample_add(&sm[ti][s][nth], dt);
                            // As many bytes merely read, right after: the bound this call had. The
                            // matrix half a cycle away, last touched 4 calls ago, so from DRAM too.
                            dt = peak_stream(pools[nth], w[ti] + (size_t)((m + NMAT / 2) % NMAT) * mb[ti], mb[ti]);
                            if (round >= 0 && s == 1) sample_add(&sm_stream[ti][nth], dt);
                        }
                    }
                }
        }
        printf("decode (nt=1), %d different %lld x %lld matrices per pass, GB/s of weights\n",
               NMAT, (long long)n_out, (long long)n_in);
        printf("best call (median call) [fraction of the best time to merely stream the same matrices,\n"
               "measured between the calls]\n");
        printf("%-6s %-7s %22s %22s\n", "type", "isa", "1 thread", "2 threads");
        for (int ti = 0; ti < 4; ti++)
            for (int s = 0; s < 3; s++) {
                if (!fmt_kernel(k_types[ti], k_isas[s])) continue;
                printf("%-6s %-7s", fmt_get(k_types[ti])->name, k_isas[s]);
                for (int nth = 1; nth <= 2; nth++) {
                    double best = (double)mb[ti] / sample_min(&sm[ti][s][nth]) / 1e9;
                    double bw = (double)mb[ti] / sample_min(&sm_stream[ti][nth]) / 1e9;
                    printf("  %5.1f (%5.1f) [%3.0f%%]", best, (double)mb[ti] / sample_median(&sm[ti][s][nth]) / 1e9,
                           100 * best / bw);
                }
                printf("\n");
            }
        printf("streaming only:");
        for (int ti = 0; ti < 4; ti++)
            printf(" %s %.1f/%.1f", fmt_get(k_types[ti])->name, (double)mb[ti] / sample_min(&sm_stream[ti][1]) / 1e9,
                   (double)mb[ti] / sample_min(&sm_stream[ti][2]) / 1e9);
        printf(" GB/s (1/2 threads)\n");
    }

    if (do_prefill) {
        static sampler sm[4][3][NT_N][3];
        int rounds = quick ? 3 : 8;
        for (int round = -1; round < rounds; round++)
            for (int ti = 0; ti < 4; ti++)
                for (int s = 1; s < 3; s++) {
                    it_matmul_fn fn = fmt_kernel(k_types[ti], k_isas[s]);
                    if (!fn) continue;
                    for (int a = 0; a < NT_N; a++)
                        for (int nth = 1; nth <= 2; nth++) {
                            double flop = 2.0 * (double)pn_out * (double)n_in * (double)nts[a];
                            int reps = (int)(1e9 / flop) + 1;
                            job j = {fn, w[ti], rb[ti], n_in, pn_out, nts[a], x, y};
                            for (int r = 0; r < reps; r++) {
                                double t0 = now_s();
                                it_pool_run(pools[nth], worker, &j);
                                double dt = now_s() - t0;
                                if (round >= 0) sample_add(&sm[ti][s][a][nth], dt);
                            }
                        }
                }
        double pk[3] = {0, peak_compute(pools[1], 0), peak_compute(pools[2], 0)};
        printf("\nprefill, %lld x %lld matrix, GFLOP/s of the best call, 1 thread / 2 threads\n",
               (long long)pn_out, (long long)n_in);
        printf("machine fp32 FMA peak (same run): %.0f GFLOP/s 1 thread, %.0f GFLOP/s 2 threads; "
               "[%%] = 2-thread fraction of it\n", pk[1], pk[2]);
        printf("%-6s %-7s", "type", "isa");
        for (int a = 0; a < NT_N; a++) printf("  nt=%-15lld", (long long)nts[a]);
        printf("\n");
        for (int ti = 0; ti < 4; ti++)
            for (int s = 1; s < 3; s++) {
                if (!fmt_kernel(k_types[ti], k_isas[s])) continue;
                printf("%-6s %-7s", fmt_get(k_types[ti])->name, k_isas[s]);
                for (int a = 0; a < NT_N; a++) {
                    double flop = 2.0 * (double)pn_out * (double)n_in * (double)nts[a];
                    double g2 = flop / sample_min(&sm[ti][s][a][2]) / 1e9;
                    printf("  %6.1f/%-6.1f[%2.0f%%]", flop / sample_min(&sm[ti][s][a][1]) / 1e9, g2,
                           pk[2] > 0 ? 100 * g2 / pk[2] : 0.0);
                }
                printf("\n");
            }
    }
    for (int ti = 0; ti < 4; ti++) free(w[ti]);
    it_pool_free(pools[1]);
    it_pool_free(pools[2]);
    free(x);
    free(y);
    return 0;
}
