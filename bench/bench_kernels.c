// Matmul kernel microbenchmark: decode (nt = 1) weight-streaming bandwidth in GB/s and prefill
// (nt = 64, 128, 512) throughput in GFLOP/s, for each weight type and ISA, with 1 and 2 threads.
//
// Build without make (from the repo root; one shell line):
//   cc -O2 -std=c11 -D_DEFAULT_SOURCE -Isrc -pthread -mavx2 -mfma -mf16c -c src/kernels/matmul_avx2.c -o /tmp/mm_avx2.o &&
//   cc -O2 -std=c11 -D_DEFAULT_SOURCE -Isrc -pthread -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16 -mfma -mf16c -c src/kernels/matmul_avx512.c -o /tmp/mm_avx512.o &&
//   cc -O2 -std=c11 -D_DEFAULT_SOURCE -Isrc -pthread bench/bench_kernels.c src/core/pool.c src/core/types.c src/kernels/matmul_ref.c src/kernels/matmul_simd.c /tmp/mm_avx2.o /tmp/mm_avx512.o -lm -o /tmp/bench_kernels && /tmp/bench_kernels
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
#include "core/types.h"
#include "kernels/matmul_simd_impl.h"

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

static const int k_types[] = {IT_TYPE_F32, IT_TYPE_F16, IT_TYPE_BF16, IT_TYPE_Q8_0};
static const char *k_isas[] = {"ref", "avx2", "avx512"};

int main(int argc, char **argv) {
    int quick = 0, do_decode = 1, do_prefill = 1;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "quick")) quick = 1;
        if (!strcmp(argv[a], "decode")) do_prefill = 0;
        if (!strcmp(argv[a], "prefill")) do_decode = 0;
    }
    it_types_init();
    enum { NMAT = 8 };
    const int64_t n_in = 2048, n_out = 5632;
    it_pool *pools[3] = {NULL, it_pool_new(1), it_pool_new(2)};
    float *x = malloc((size_t)(512 * 5632) * sizeof(float));
    float *y = malloc((size_t)(512 * 5632) * sizeof(float));
    for (int i = 0; i < 512 * 5632; i++) x[i] = (float)((i % 1000) * 7 % 1000) / 1000.0f - 0.5f;

    printf("decode (nt=1), %d x %lld x %lld matrices, GB/s of weights streamed\n", NMAT,
           (long long)n_out, (long long)n_in);
    printf("%-6s %-7s %9s %9s\n", "type", "isa", "1 thread", "2 threads");
    for (int ti = 0; ti < 4 && do_decode; ti++) {
        int type = k_types[ti];
        size_t rb = it_type_row_bytes(type, n_in), mb = rb * (size_t)n_out;
        char *w = malloc(mb * NMAT);
        fill(w, mb * NMAT);
        for (int s = 0; s < 3; s++) {
            it_matmul_fn fn = kern_matmul_kernel(type, k_isas[s]);
            if (!fn) continue;
            printf("%-6s %-7s", it_type_get(type)->name, k_isas[s]);
            for (int nth = 1; nth <= 2; nth++) {
                int passes = s == 0 ? 1 : (quick ? 3 : 10);
                double best = 1e30;
                for (int p = -1; p < passes; p++) { // pass -1 warms up (page faults, pool spin-up)
                    double t0 = now_s();
                    for (int m = 0; m < NMAT; m++) {
                        job j = {fn, w + (size_t)m * mb, rb, n_in, n_out, 1, x, y};
                        it_pool_run(pools[nth], worker, &j);
                    }
                    double dt = now_s() - t0;
                    if (p >= 0 && dt < best) best = dt;
                }
                printf(" %9.1f", (double)(mb * NMAT) / best / 1e9);
            }
            printf("\n");
        }
        free(w);
    }

    static const int64_t nts[] = {8, 64, 128, 512};
    const int64_t pn_out = 2048;
    printf("\nprefill, %lld x %lld matrix, GFLOP/s (1 thread / 2 threads)\n", (long long)pn_out,
           (long long)n_in);
    printf("%-6s %-7s", "type", "isa");
    for (int a = 0; a < 4; a++) printf("    nt=%-10lld", (long long)nts[a]);
    printf("\n");
    for (int ti = 0; ti < 4 && do_prefill; ti++) {
        int type = k_types[ti];
        size_t rb = it_type_row_bytes(type, n_in), mb = rb * (size_t)pn_out;
        char *w = malloc(mb);
        fill(w, mb);
        for (int s = 1; s < 3; s++) {
            it_matmul_fn fn = kern_matmul_kernel(type, k_isas[s]);
            if (!fn) continue;
            printf("%-6s %-7s", it_type_get(type)->name, k_isas[s]);
            for (int a = 0; a < 4; a++) {
                int64_t nt = nts[a];
                double flop = 2.0 * (double)pn_out * (double)n_in * (double)nt;
                for (int nth = 1; nth <= 2; nth++) {
                    int reps = (int)(4e10 / flop / (quick ? 4 : 1)) + 1;
                    double best = 1e30;
                    for (int p = -1; p < reps; p++) {
                        job j = {fn, w, rb, n_in, pn_out, nt, x, y};
                        double t0 = now_s();
                        it_pool_run(pools[nth], worker, &j);
                        double dt = now_s() - t0;
                        if (p >= 0 && dt < best) best = dt;
                    }
                    printf(nth == 1 ? " %6.1f" : "/%-7.1f", flop / best / 1e9);
                }
            }
            printf("\n");
        }
        free(w);
    }
    it_pool_free(pools[1]);
    it_pool_free(pools[2]);
    free(x);
    free(y);
    return 0;
}
