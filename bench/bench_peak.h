// The machine's own ceilings, measured in the same process as a kernel benchmark, so a kernel's
// speed prints as a fraction of what this (shared, noisy) machine gives right now:
//   - read bandwidth: the decode kernels' access pattern (eval_stream_read_avx2, wide loads with
//     a page-ahead prefetch), split across the pool's threads, over the kernel's own weights
//     (peak_stream, timed between its calls) or a 256 MB buffer;
//   - FMA peak: independent fp32 FMA chains in registers (AVX-512 when the CPU has it, else AVX2),
//     GFLOP/s counting a multiply-add as 2 flops;
//   - VNNI peak: independent vpdpbusd chains (AVX-512 VNNI), G int8 multiply-adds per second.
// Header-only for the bench/*.c programs (each is built from one source file and libintact.a).
#ifndef BENCH_PEAK_H
#define BENCH_PEAK_H

#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/cpu.h"
#include "core/pool.h"
#include "kernels/iqmatmul.h"

uint64_t eval_stream_read_avx2(const void *buf, size_t bytes);   // src/eval/membw_avx2.c

static double peak_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    const void *buf;
    size_t bytes;
    volatile uint64_t sink;
} peak_bw_job;

static void peak_bw_worker(void *arg, int ith, int nth) {
    peak_bw_job *j = arg;
    size_t per = (j->bytes / (size_t)nth) & ~(size_t)4095;
    j->sink ^= eval_stream_read_avx2((const char *)j->buf + (size_t)ith * per, per);
}

// Seconds to stream `bytes` at buf with the pool's threads: time it on the very buffers a kernel
// reads, interleaved with the kernel's calls, and "fraction of bandwidth" compares like with like.
__attribute__((unused)) static double peak_stream(it_pool *pool, const void *buf, size_t bytes) {
    peak_bw_job j = {buf, bytes, 0};
    double t0 = peak_now();
    it_pool_run(pool, peak_bw_worker, &j);
    return peak_now() - t0;
}

// Best of `rounds` passes over 256 MB (8x a typical L3), in GB/s; 0 when out of memory.
__attribute__((unused)) static double peak_bandwidth(it_pool *pool, int rounds) {
    const size_t bytes = (size_t)256 << 20;
    char *buf = malloc(bytes);
    if (!buf) return 0;
    memset(buf, 1, bytes);
    double best = 0;
    for (int r = 0; r < rounds; r++) {
        double gbs = (double)bytes / peak_stream(pool, buf, bytes) / 1e9;
        best = gbs > best ? gbs : best;
    }
    free(buf);
    return best;
}

enum { PEAK_ITERS = 1 << 20 };

// Twelve independent chains, written out so that they stay in registers at any optimization level
// (an array of vectors indexed in a loop can be spilled, and then the loop measures the stores).
#define PEAK_CHAINS(OP) OP(0) OP(1) OP(2) OP(3) OP(4) OP(5) OP(6) OP(7) OP(8) OP(9) OP(10) OP(11)

__attribute__((target("avx512f"))) static float peak_fma_avx512(void) {
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
#define DECL(k) __m512 a##k = _mm512_set1_ps((float)k);
#define STEP(k) a##k = _mm512_fmadd_ps(a##k, m, c);
#define SUM(k) s = _mm512_add_ps(s, a##k);
    PEAK_CHAINS(DECL)
    for (int i = 0; i < PEAK_ITERS; i++) { PEAK_CHAINS(STEP) }
    __m512 s = _mm512_setzero_ps();
    PEAK_CHAINS(SUM)
#undef DECL
#undef STEP
#undef SUM
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float peak_fma_avx2(void) {
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
#define DECL(k) __m256 a##k = _mm256_set1_ps((float)k);
#define STEP(k) a##k = _mm256_fmadd_ps(a##k, m, c);
#define SUM(k) s = _mm256_add_ps(s, a##k);
    PEAK_CHAINS(DECL)
    for (int i = 0; i < PEAK_ITERS; i++) { PEAK_CHAINS(STEP) }
    __m256 s = _mm256_setzero_ps();
    PEAK_CHAINS(SUM)
#undef DECL
#undef STEP
#undef SUM
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[7];
}

__attribute__((target("avx512f,avx512vnni"))) static int peak_vnni_avx512(void) {
    const __m512i x = _mm512_set1_epi8(3), y = _mm512_set1_epi8(-2);
#define DECL(k) __m512i a##k = _mm512_set1_epi32(k);
#define STEP(k) a##k = _mm512_dpbusd_epi32(a##k, x, y);
#define SUM(k) s = _mm512_add_epi32(s, a##k);
    PEAK_CHAINS(DECL)
    for (int i = 0; i < PEAK_ITERS; i++) { PEAK_CHAINS(STEP) }
    __m512i s = _mm512_setzero_si512();
    PEAK_CHAINS(SUM)
#undef DECL
#undef STEP
#undef SUM
    return _mm512_reduce_add_epi32(s);
}

typedef struct {
    int vnni;
    volatile float fsink;
    volatile int isink;
} peak_job;

static void peak_worker(void *arg, int ith, int nth) {
    (void)ith;
    (void)nth;
    peak_job *j = arg;
    if (j->vnni) j->isink += peak_vnni_avx512();
    else j->fsink += it_cpu_has_avx512() ? peak_fma_avx512() : peak_fma_avx2();
}

// fp32 GFLOP/s (vnni = 0) or G int8 MAC/s (vnni = 1, 0 without AVX-512 VNNI) of the whole pool:
// the best of 7 short runs (~10 ms each), so that one quiet moment on a shared machine is enough.
__attribute__((unused)) static double peak_compute(it_pool *pool, int vnni) {
    if (vnni && !(it_cpu_has_avx512() && kern_iq_cpu_has_vnni())) return 0;
    double lanes = vnni ? 64 : it_cpu_has_avx512() ? 16 : 8, per_op = vnni ? 1 : 2, best = 0;
    for (int r = 0; r < 7; r++) {
        peak_job j = {vnni, 0, 0};
        double t0 = peak_now();
        it_pool_run(pool, peak_worker, &j);
        double g = (double)PEAK_ITERS * 12 * lanes * per_op * it_pool_size(pool) / (peak_now() - t0) / 1e9;
        best = g > best ? g : best;
    }
    return best;
}

#endif
