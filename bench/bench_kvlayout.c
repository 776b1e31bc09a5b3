// Layout microbenchmark for the fp32 cache's decode attention: kvf_attend_avx512 (one token, the 8
// query heads of a kv head, head_dim 64) over NTOK keys whose rows are either interleaved with the
// other kv heads' (position-major, ld = 4 * 64 floats: kv_full's layout before 2026-12-07) or
// contiguous per kv head (head-major, ld = 64: kv_full's layout now). NL layers' worth of rows, so
// with the defaults (22 layers, 4096 keys, 185 MB) the rows stream from memory as in real decoding;
// 2 threads take the 4 kv heads of a layer. Prints µs per layer, best of the rounds, and the ratio.
// docs/speed.md ("KV rows head-major") has the numbers.
//
// Build (from the repo root, after `make`; one shell line):
//   cc -O2 -std=c11 -D_DEFAULT_SOURCE -Isrc -pthread bench/bench_kvlayout.c build/libintact.a -lm -o /tmp/bench_kvlayout && /tmp/bench_kvlayout
// Options: bench_kvlayout [ROUNDS [LAYERS KEYS]]   e.g. `200 1 1024`: data that stays in L2.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/cpu.h"
#include "core/pool.h"
#include "kv/kv_flash.h"

enum { NKV = 4, HD = 64, REP = 8 };

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    const float *K, *V;   // one layer
    int head_major, ntok;
    const float *q;
    float *o, *scratch;
    size_t per;           // scratch floats per thread
} layer_job;

static void attend_heads(void *arg, int ith, int nth) {
    const layer_job *j = arg;
    for (int h = ith; h < NKV; h += nth) {
        size_t ld = j->head_major ? HD : (size_t)NKV * HD;
        size_t off = j->head_major ? (size_t)h * j->ntok * HD : (size_t)h * HD;
        size_t qd = (size_t)NKV * REP * HD;
        kvf_args a = {j->K + off, j->V + off, ld, HD, REP, j->q + (size_t)h * REP * HD, qd,
                      j->o + (size_t)h * REP * HD, qd, 1, j->ntok - 1, 0.125f, j->scratch + ith * j->per,
                      NULL, NULL, 0, 0, NULL, NULL, 0, NULL, NULL};
        kvf_attend_avx512(&a);
    }
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 10, nl = argc > 3 ? atoi(argv[2]) : 22, ntok = argc > 3 ? atoi(argv[3]) : 4096;
    if (rounds < 1 || nl < 1 || ntok < 1) {
        fprintf(stderr, "usage: bench_kvlayout [ROUNDS [LAYERS KEYS]]\n");
        return 2;
    }
    if (!it_cpu_has_avx512()) {
        printf("no AVX-512 here: kvf_attend_avx512 does not run\n");
        return 0;
    }
    size_t per_layer = (size_t)ntok * NKV * HD, per = kvf_scratch_floats(HD, REP);
    float *K = malloc(per_layer * nl * sizeof(float)), *V = malloc(per_layer * nl * sizeof(float));
    float *q = malloc(sizeof(float) * NKV * REP * HD), *o = malloc(sizeof(float) * NKV * REP * HD);
    float *scratch = malloc(sizeof(float) * per * 2);
    it_pool *pool = it_pool_new(2);
    if (!K || !V || !q || !o || !scratch || !pool) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < per_layer * nl; i++) K[i] = (float)(i % 97) * 0.01f, V[i] = (float)(i % 89) * 0.01f;
    for (int i = 0; i < NKV * REP * HD; i++) q[i] = (float)(i % 13) * 0.1f;
    double best[2] = {1e30, 1e30};
    for (int r = 0; r < rounds; r++)
        for (int hm = 0; hm < 2; hm++) {   // the layouts alternate round by round (shared machine)
            double t = 0;
            for (int l = 0; l < nl; l++) {
                layer_job j = {K + per_layer * l, V + per_layer * l, hm, ntok, q, o, scratch, per};
                double t0 = now_s();
                it_pool_run(pool, attend_heads, &j);
                t += now_s() - t0;
            }
            t /= nl;
            best[hm] = t < best[hm] ? t : best[hm];
        }
    printf("kvf_attend_avx512 decode, %d keys, %d layers, 2 threads, best of %d rounds: position-major %.1f us/layer, "
           "head-major %.1f us/layer (%.2fx)\n", ntok, nl, rounds, best[0] * 1e6, best[1] * 1e6, best[0] / best[1]);
    it_pool_free(pool);
    free(K), free(V), free(q), free(o), free(scratch);
    return 0;
}
