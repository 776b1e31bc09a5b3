// KV-cache attention microbenchmark: one decode step's attend (n = 1) over a 4096-token cache with
// TinyLlama-1.1B shapes (22 layers, 32 query heads, 4 kv heads, head_dim 64), 2 threads, for the
// fp32 cache (kv_full), uniform F16 / INT4 / INT2 caches (kv_quant, per-token keys, group 32) and
// MiKV (20 % F16 hi + INT2 lo, recent 32, sink 1; demotions done), with the scalar (ref), AVX2 and
// AVX-512 kv_kern kernels side by side (AVX-512 is what the engine runs where the CPU has it). Reports µs per layer and GB/s of cache bytes read (the layer's
// share of bytes(kv, 4096): what the attend must stream), and the ratio to F16 of the same ISA.
//
// Build (from the repo root, after `make`; one shell line):
//   cc -O2 -std=c11 -D_DEFAULT_SOURCE -Isrc -pthread bench/bench_kvattn.c build/libintact.a -lm -o /tmp/bench_kvattn && /tmp/bench_kvattn
// Options: bench_kvattn [quick] [rounds R] [threads N] [avx2 | best] [only C]
//   avx2: skip the scalar kernels; best: run only the widest ISA's (the engine's); only C: run
//   configuration C alone (0 fp32, 1 F16, 2 INT4, 3 INT2, 4 MiKV; for `perf record`, so that the
//   profile is that cache's alone). "-": not run.
//
// Each timed step walks all 22 layers (attend only; the new token is stored untimed, re-stored at
// the same position every round so the cache stays 4096 tokens), so the F16 and fp32 caches
// (92 / 185 MB) stream from DRAM as in real decoding; the low-bit ones (17-30 MB) partly fit in L3.
// Configurations are interleaved round by round and the fastest round is kept (shared machine).
// The last line: the machine's read bandwidth (one thread streaming 256 MiB with the AVX2 probe of
// `intact bench`, src/eval/membw_avx2.c; best of 3), and each cache's GB/s with the widest ISA's
// kernels as a share of it.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/pool.h"
#include "kv/kv.h"
#include "kv/kv_kern.h"
#include "kv/kv_mikv.h"
#include "kv/kv_quant.h"

enum { NL = 22, NH = 32, NKV = 4, HD = 64, NTOK = 4096, KVD = NKV * HD, QD = NH * HD, NCFG = 5 };

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)(rng >> 40) / (float)(1u << 23) - 1.0f;
}

uint64_t eval_stream_read_avx2(const void *buf, size_t bytes);   // src/eval/membw_avx2.c

// GB/s of one thread reading a 256 MiB buffer (0 without AVX2); the sum is printed so the reads stay.
static double read_bandwidth(int have_avx2) {
    size_t bytes = (size_t)256 << 20;
    uint8_t *buf = have_avx2 ? malloc(bytes) : NULL;
    if (!buf) return 0;
    memset(buf, 1, bytes);
    double best = 1e30;
    uint64_t sum = 0;
    for (int r = 0; r < 3; r++) {
        double t0 = now_s();
        sum += eval_stream_read_avx2(buf, bytes);
        double t = now_s() - t0;
        best = t < best ? t : best;
    }
    free(buf);
    fprintf(stderr, "(probe checksum %llu)\n", (unsigned long long)sum);
    return (double)bytes / best / 1e9;
}

static const char *k_names[NCFG] = {"fp32 (kv_full)", "F16", "INT4 per-token", "INT2 per-token",
                                    "MiKV 20% F16 + INT2"};

static it_kv *make_cache(int which) {
    if (which == 0) return kv_full_new(NL, NTOK, NH, NKV, HD);
    if (which == 4) {
        kv_mikv_config m = kv_mikv_default_config();   // ratio 0.2, F16 hi, recent 32, sink 1, group 32
        m.lo_type = KVQ_INT2;
        return kv_mikv_new(NL, NTOK, NH, NKV, HD, &m);
    }
    static const int types[NCFG] = {0, KVQ_F16, KVQ_INT4, KVQ_INT2, 0};
    kvq_config c = {types[which], types[which], 32, KVQ_PER_TOKEN, 0, 0};
    return kv_quant_new(NL, NTOK, NH, NKV, HD, &c);
}

int main(int argc, char **argv) {
    int rounds = 15, threads = 2, skip = 0, only = -1;   // skip: ISAs (from the scalar up) not run
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "quick")) rounds = 4;
        else if (!strcmp(argv[a], "avx2")) skip = 1;
        else if (!strcmp(argv[a], "best")) skip = 2;
        else if (!strcmp(argv[a], "rounds") && a + 1 < argc) rounds = atoi(argv[++a]);
        else if (!strcmp(argv[a], "only") && a + 1 < argc) only = atoi(argv[++a]);
        else if (!strcmp(argv[a], "threads") && a + 1 < argc) threads = atoi(argv[++a]);
    }
    it_pool *pool = it_pool_new(threads);
    float *k = malloc(sizeof(float) * NTOK * KVD), *v = malloc(sizeof(float) * NTOK * KVD);
    float *q = malloc(sizeof(float) * NL * QD), *out = malloc(sizeof(float) * QD);
    if (!pool || !k || !v || !q || !out) return 1;
    for (size_t i = 0; i < (size_t)NTOK * KVD; i++) k[i] = 2 * frand(), v[i] = frand();
    for (size_t i = 0; i < (size_t)NL * QD; i++) q[i] = frand();
    const kvk_ops *isas[3] = {kvk_get("ref"), kvk_get("avx2"), kvk_get("avx512")};
    int n_isa = isas[2] ? 3 : isas[1] ? 2 : 1, wide = n_isa - 1;
    if (skip > wide) skip = wide;
    it_kv *kv[NCFG];
    double mb[NCFG];   // cache bytes per layer for 4096 tokens
    for (int c = 0; c < NCFG; c++) {
        kv[c] = make_cache(c);
        if (!kv[c]) {
            fprintf(stderr, "cache %s: out of memory\n", k_names[c]);
            return 1;
        }
        for (int l = 0; l < NL; l++) {   // prefill 4095 tokens, then one decode step (MiKV demotes here)
            kv[c]->ops->store(kv[c], l, 0, NTOK - 1, k, v);
            kv[c]->ops->store(kv[c], l, NTOK - 1, 1, k + (size_t)(NTOK - 1) * KVD, v + (size_t)(NTOK - 1) * KVD);
            kv[c]->ops->attend(kv[c], pool, l, NTOK - 1, 1, q + (size_t)l * QD, out);
        }
        mb[c] = (double)kv[c]->ops->bytes(kv[c], NTOK) / NL;
    }
    double best[3][NCFG];
    for (int i = 0; i < 3; i++)
        for (int c = 0; c < NCFG; c++) best[i][c] = 1e30;
    for (int r = 0; r < rounds; r++)
        for (int c = 0; c < NCFG; c++)
            for (int i = 0; i < n_isa; i++) {
                if (c == 0 && i > 0) continue;   // kv_full has one (compiler-vectorized) kernel
                if ((i < skip && c > 0) || (only >= 0 && c != only)) continue;
                kvk_force(isas[i]);
                double t = 0;
                for (int l = 0; l < NL; l++) {
                    const float *kn = k + (size_t)(NTOK - 1) * KVD, *vn = v + (size_t)(NTOK - 1) * KVD;
                    kv[c]->ops->store(kv[c], l, NTOK - 1, 1, kn, vn);
                    double t0 = now_s();
                    kv[c]->ops->attend(kv[c], pool, l, NTOK - 1, 1, q + (size_t)l * QD, out);
                    t += now_s() - t0;
                }
                t /= NL;
                best[i][c] = t < best[i][c] ? t : best[i][c];
            }
    kvk_force(NULL);
    printf("decode attend, %d-token cache, %d layers x %d heads (%d kv) x %d, %d threads, best of %d rounds\n",
           NTOK, NL, NH, NKV, HD, threads, rounds);
    printf("%-22s %9s", "cache", "KB/layer");
    for (int i = 0; i < n_isa; i++) printf("  %6s us/layer   GB/s  vs F16", isas[i]->name);
    printf("\n");
    for (int c = 0; c < NCFG; c++) {
        printf("%-22s %9.0f", k_names[c], mb[c] / 1024);
        for (int i = 0; i < n_isa; i++) {
            double t = best[c == 0 ? 0 : i][c], f = best[i][1];
            if (t > 1e29) printf("  %15s %6s %7s", "-", "-", "-");   // not run (avx2 / best / only)
            else if (f > 1e29) printf("  %15.1f %6.1f %7s", t * 1e6, mb[c] / t / 1e9, "-");
            else printf("  %15.1f %6.1f %6.2fx", t * 1e6, mb[c] / t / 1e9, f / t);
        }
        printf("\n");
    }
    if (n_isa == 1) printf("(no AVX2 on this CPU: scalar kernels only)\n");
    double bw = read_bandwidth(n_isa >= 2);
    if (bw > 0) {
        printf("machine read bandwidth (1 thread, 256 MiB): %.1f GB/s; %s attend as a share of it:", bw,
               isas[wide]->name);
        for (int c = 0; c < NCFG; c++) printf(" %s %.0f%%%s", k_names[c], 100 * mb[c] / best[c == 0 ? 0 : wide][c] / 1e9 / bw,
                                              c + 1 < NCFG ? "," : "\n");   // ~0% for configurations not run
    }
    for (int c = 0; c < NCFG; c++) kv[c]->ops->free(kv[c]);
    free(k); free(v); free(q); free(out);
    it_pool_free(pool);
    return 0;
}
