// Tiled (flash) attention of the fp32 cache (kv_flash.h, kv_full.c): the AVX-512 kernel and its
// scalar _ref twin against an independent double-precision causal softmax attention, at lengths
// around the query (16) and key (64) block sizes, with GQA (1, 4 and 8 query heads per kv head),
// head_dim 16/64/80/128 and a cached prefix (pos > 0), with every row position-major, with a
// head's rows contiguous behind a position-major shared prefix (k0 / ld0), and with fp16 rows
// behind a prefix and fp32 sinks (k0, k1: kv_quant's F16 cache). Keys and values are fp16 values. Then through kv_full: tiled vs the untiled
// per-query order, batched == token by token bit for bit, and probs recording still untiled.
// (kv_full takes the tiled path only with AVX-512; the _ref twin is exercised here directly.)
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "core/fp16.h"
#include "core/pool.h"
#include "harness.h"
#include "kv/kv.h"
#include "kv/kv_flash.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) {   // uniform in [-1, 1)
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)(rng >> 40) / (float)(1u << 23) - 1.0f;
}

// out (nt, n_heads*hd) for queries at pos0.. over keys (pos0+nt, n_kv*hd), all in double.
static void ref_attend(const float *k, const float *v, const float *q, int nt, int pos0, int n_heads, int n_kv,
                       int hd, double *out) {
    int rep = n_heads / n_kv, kvd = n_kv * hd;
    double *s = malloc((size_t)(pos0 + nt) * sizeof *s);
    for (int t = 0; t < nt; t++)
        for (int h = 0; h < n_heads; h++) {
            const float *qh = q + (size_t)t * n_heads * hd + (size_t)h * hd;
            int kvh = h / rep, nk = pos0 + t + 1;
            double mx = -INFINITY, sum = 0;
            for (int p = 0; p < nk; p++) {
                double d = 0;
                for (int i = 0; i < hd; i++) d += (double)qh[i] * k[(size_t)p * kvd + kvh * hd + i];
                s[p] = d / sqrt((double)hd);
                mx = s[p] > mx ? s[p] : mx;
            }
            for (int p = 0; p < nk; p++) sum += (s[p] = exp(s[p] - mx));
            double *o = out + (size_t)t * n_heads * hd + (size_t)h * hd;
            for (int i = 0; i < hd; i++) {
                double acc = 0;
                for (int p = 0; p < nk; p++) acc += s[p] * v[(size_t)p * kvd + kvh * hd + i];
                o[i] = acc / sum;
            }
        }
    free(s);
}

// Worst |got - ref| / (1e-3 + max |ref|) over a block; NaN when got has a NaN (fails every check).
static double err_of(const float *got, const double *ref, size_t n) {
    double worst = 0, mx = 0;
    for (size_t i = 0; i < n; i++) mx = fabs(ref[i]) > mx ? fabs(ref[i]) : mx;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(got[i] - ref[i]) / (1e-3 + mx);
        worst = e <= worst ? worst : e;   // a NaN e sticks
    }
    return worst;
}

// Scores spread over several units (q scaled by 3) so the softmax is far from uniform.
static void fill(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = frand() * scale;
}

static void test_kernels(void) {
    static const int shapes[][3] = {{4, 4, 16}, {8, 2, 64}, {8, 1, 80}, {4, 1, 128}, {32, 4, 64}};
    static const int lens[][2] = {{1, 0}, {1, 63}, {1, 64}, {5, 0}, {16, 0}, {16, 48}, {7, 130}, {16, 200}, {3, 61}};
    int isa_max = it_cpu_has_avx512() ? 2 : 1;
    for (int isa = 0; isa < isa_max; isa++) {
        char name[128];
        snprintf(name, sizeof name, "tiled attention %s vs double reference (GQA, lengths, prefix)",
                 isa ? "avx512" : "ref");
        TEST_CASE(name) {
            double worst = 0;
            for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
                int nh = shapes[si][0], nkv = shapes[si][1], hd = shapes[si][2], rep = nh / nkv;
                if (isa && hd % 16) continue;
                for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
                    int nt = lens[li][0], pos0 = lens[li][1], np = pos0 + nt;
                    size_t kvd = (size_t)nkv * hd, qd = (size_t)nh * hd;
                    float *k = malloc(np * kvd * sizeof(float)), *v = malloc(np * kvd * sizeof(float));
                    float *q = malloc(nt * qd * sizeof(float)), *o = malloc(nt * qd * sizeof(float));
                    double *ref = malloc(nt * qd * sizeof(double));
                    float *scr = malloc(kvf_scratch_floats(hd, rep) * sizeof(float));
                    fill(k, np * kvd, 1.0f);
                    fill(v, np * kvd, 1.0f);
                    for (size_t i = 0; i < np * kvd; i++)   // fp16 values, so the half layout is exact
                        k[i] = it_fp16_to_f32(it_f32_to_fp16(k[i])), v[i] = it_fp16_to_f32(it_f32_to_fp16(v[i]));
                    fill(q, nt * qd, 3.0f);
                    ref_attend(k, v, q, nt, pos0, nh, nkv, hd, ref);
                    // Head-major copies (kv_full's layout: a head's rows hd apart), fp32 and fp16.
                    float *kh = malloc(np * kvd * sizeof(float)), *vh = malloc(np * kvd * sizeof(float));
                    uint16_t *k16 = malloc(np * kvd * sizeof(uint16_t)), *v16 = malloc(np * kvd * sizeof(uint16_t));
                    for (int h = 0; h < nkv; h++)
                        for (int p = 0; p < np; p++) {
                            memcpy(kh + ((size_t)h * np + p) * hd, k + p * kvd + h * hd, hd * sizeof(float));
                            memcpy(vh + ((size_t)h * np + p) * hd, v + p * kvd + h * hd, hd * sizeof(float));
                            for (int d = 0; d < hd; d++) {
                                k16[((size_t)h * np + p) * hd + d] = it_f32_to_fp16(k[p * kvd + h * hd + d]);
                                v16[((size_t)h * np + p) * hd + d] = it_f32_to_fp16(v[p * kvd + h * hd + d]);
                            }
                        }
                    // Layout 0: every row position-major (kvd apart). 1: head-major, with the first
                    // pos0 / 2 + 1 rows from the position-major buffer as a shared prefix (k0, ld0).
                    // 2: fp16 head-major rows (kv_quant's F16 cache) behind pos0 / 3 prefix rows (k0)
                    // and up to pos0 / 2 + 1 fp32 sinks (k1), both position-major.
                    for (int lay = 0; lay < 3; lay++) {
                        memset(o, 0xff, nt * qd * sizeof(float));   // NaN: every output must be written
                        for (int h = 0; h < nkv; h++) {
                            kvf_args a = {k + h * hd, v + h * hd, kvd, hd, rep, q + (size_t)h * rep * hd, qd,
                                          o + (size_t)h * rep * hd, qd, nt, pos0, 1.0f / sqrtf((float)hd), scr,
                                          NULL, NULL, 0, 0, NULL, NULL, 0, NULL, NULL};
                            if (lay == 1) {
                                a.k = kh + (size_t)h * np * hd, a.v = vh + (size_t)h * np * hd, a.ld = (size_t)hd;
                                a.k0 = k + h * hd, a.v0 = v + h * hd, a.n0 = pos0 / 2 + 1, a.ld0 = kvd;
                            } else if (lay == 2) {
                                a.k = a.v = NULL, a.ld = (size_t)hd;
                                a.k16 = k16 + (size_t)h * np * hd, a.v16 = v16 + (size_t)h * np * hd;
                                a.k0 = k + h * hd, a.v0 = v + h * hd, a.n0 = pos0 / 3, a.ld0 = kvd;
                                a.k1 = k + h * hd, a.v1 = v + h * hd, a.n1 = pos0 / 2 + 1;
                            }
                            (isa ? kvf_attend_avx512 : kvf_attend_ref)(&a);
                        }
                        double e = err_of(o, ref, nt * qd);
                        CHECK(e < 2e-5, "heads %d/%d hd %d nt %d pos %d layout %d: err %g", nh, nkv, hd, nt, pos0, lay, e);
                        worst = e > worst ? e : worst;
                    }
                    free(k), free(v), free(kh), free(vh), free(k16), free(v16), free(q), free(o), free(ref), free(scr);
                }
            }
            printf("  worst error / max|out|: %.3g\n", worst);
        }
    }
}

enum { NH = 8, NKV = 2, HD = 64, NCTX = 300 };

static void run_full(it_kv *kv, it_pool *pool, const float *k, const float *v, const float *q, float *out, int step) {
    size_t kvd = (size_t)NKV * HD, qd = (size_t)NH * HD;
    for (int p = 0; p < NCTX; p += step) {
        int n = NCTX - p < step ? NCTX - p : step;
        kv->ops->store(kv, 0, p, n, k + p * kvd, v + p * kvd);
        kv->ops->attend(kv, pool, 0, p, n, q + p * qd, out + p * qd);
    }
}

static void test_cache(it_pool *pool) {
    size_t kvd = (size_t)NKV * HD, qd = (size_t)NH * HD;
    float *k = malloc(NCTX * kvd * sizeof(float)), *v = malloc(NCTX * kvd * sizeof(float));
    float *q = malloc(NCTX * qd * sizeof(float)), *o1 = malloc(NCTX * qd * sizeof(float));
    float *o2 = malloc(NCTX * qd * sizeof(float));
    double *ref = malloc(NCTX * qd * sizeof(double));
    fill(k, NCTX * kvd, 1.0f);
    fill(v, NCTX * kvd, 1.0f);
    fill(q, NCTX * qd, 3.0f);
    ref_attend(k, v, q, NCTX, 0, NH, NKV, HD, ref);
    TEST_CASE("kv_full tiled: batched (blocks of 300, 64, 37) == token by token, bit for bit") {
        it_kv *kv = kv_full_new(1, NCTX, NH, NKV, HD);
        run_full(kv, pool, k, v, q, o1, 1);
        static const int steps[] = {NCTX, 64, 37};
        for (int i = 0; i < 3; i++) {
            run_full(kv, pool, k, v, q, o2, steps[i]);
            CHECK(memcmp(o1, o2, NCTX * qd * sizeof(float)) == 0, "step %d differs", steps[i]);
        }
        CHECK(err_of(o1, ref, NCTX * qd) < 2e-5, "vs double: %g", err_of(o1, ref, NCTX * qd));
        kv->ops->free(kv);
    }
    TEST_CASE("kv_full tiled vs untiled: both near the double reference, not identical") {
        it_kv *kv = kv_full_new(1, NCTX, NH, NKV, HD);
        run_full(kv, pool, k, v, q, o1, 64);
        kv_full_set_tiled(kv, 0);
        run_full(kv, pool, k, v, q, o2, 64);
        double e1 = err_of(o1, ref, NCTX * qd), e2 = err_of(o2, ref, NCTX * qd);
        printf("  tiled %.3g, untiled %.3g\n", e1, e2);
        CHECK(e1 < 2e-5 && e2 < 2e-5, "tiled %g untiled %g", e1, e2);
        if (it_cpu_isa() >= IT_ISA_AVX512)   // elsewhere kv_full always attends untiled
            CHECK(memcmp(o1, o2, NCTX * qd * sizeof(float)) != 0, "tiled path not taken?");
        kv->ops->free(kv);
    }
    TEST_CASE("kv_full with probs recording: untiled, probs sum to 1") {
        it_kv *kv = kv_full_new(1, 40, NH, NKV, HD);
        float *pr = calloc((size_t)NH * 40 * 40, sizeof(float));
        kv->probs = pr;
        kv->ops->store(kv, 0, 0, 40, k, v);
        kv->ops->attend(kv, pool, 0, 0, 40, q, o1);
        double worst = 0;
        for (int r = 0; r < NH * 40; r++) {
            double s = 0;
            for (int p = 0; p < 40; p++) s += pr[(size_t)r * 40 + p];
            worst = fabs(s - 1) > worst ? fabs(s - 1) : worst;
        }
        CHECK(worst < 1e-5, "row sum off by %g", worst);
        CHECK(err_of(o1, ref, 40 * qd) < 2e-5, "vs double");
        free(pr);
        kv->ops->free(kv);
    }
    free(k), free(v), free(q), free(o1), free(o2), free(ref);
}

// Hand-computed: 4 heads x 32 dims = 2 * 128 = 256 multiply-adds per query and key; the matmuls'
// rule (it_pool_chunks) runs inline below 2 x 64K, then one thread per 64K, at most the pool.
static void test_attend_threads(it_pool *pool3) {
    TEST_CASE("kv_attend_threads: inline for small attention, one thread per 64K multiply-adds") {
        it_kv kv;
        memset(&kv, 0, sizeof kv);
        kv.n_heads = 4, kv.head_dim = 32;
        CHECK(kv_attend_threads(pool3, &kv, 510, 1) == 1, "511 keys: 130816 MACs");
        CHECK(kv_attend_threads(pool3, &kv, 511, 1) == 2, "512 keys: 131072 MACs = 2 x 64K");
        CHECK(kv_attend_threads(pool3, &kv, 767, 1) == 3, "768 keys: 3 x 64K");
        CHECK(kv_attend_threads(pool3, &kv, 4095, 1) == 3, "capped at the pool's 3");
        CHECK(kv_attend_threads(pool3, &kv, 0, 16) == 1, "16 queries over 16 keys: 65536");
        CHECK(kv_attend_threads(pool3, &kv, 0, 32) == 3, "32 x 32: 4 x 64K, capped");
        CHECK(kv_attend_threads(NULL, &kv, 4095, 1) == 1, "no pool");
    }
}

int main(void) {
    test_kernels();
    it_pool *pool = it_pool_new(3);
    test_attend_threads(pool);
    test_cache(pool);
    it_pool_free(pool);
    return th_finish("test_kv_flash");
}
