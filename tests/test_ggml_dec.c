// ggml decode GEMV with int8 activations (kernels/ggdec.h) for Q4_0, Q8_0, Q4_K, Q6_K: hand-computed
// cases (Q6_K's extremes and kern_dq.hsum among them); the scalar reference against an independent
// double computation over the weights decoded by formats/ggml_ref.c's dequantizers (and against the
// float activations, within the bound the activation quantization allows); every SIMD kernel bit-identical (memcmp) to the reference with
// random codes and scales (extreme values included), 1..5 tokens, odd row ranges, rows with blocks
// past the last group of 8; the threaded wrapper over mixed types == the single-thread kernels; the
// prefill driver (kern_matmul_ggdg_group: row blocks, 4..13 tokens, 1..3 threads, mixed types, row
// counts not a multiple of the row block) == ggdec_ref by memcmp, so prefill computes what decode does.
#include "harness.h"

#include <stdint.h>

#include "core/cpu.h"
#include "core/fp16.h"
#include "core/pool.h"
#include "formats/formats.h"
#include "kernels/ggdec.h"

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd_u32(void) {
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return (uint32_t)((g_rng * 0x2545f4914f6cdd1dull) >> 32);
}
static float rnd_f(void) { return (float)((double)rnd_u32() / 4294967296.0 * 2.0 - 1.0); }

static const int k_types[] = {IT_TYPE_Q4_0, IT_TYPE_Q8_0, IT_TYPE_Q4_K, IT_TYPE_Q6_K};
static const char *k_isas[] = {"avx2", "avx512"};

// Random bytes everywhere (every code, 6-bit scale/min and int8 scale value occurs), then sane fp16
// super/block scales (0.001 .. 0.03, Q4_K's dmin too) so the sums stay finite.
static uint8_t *make_weights(int type, int64_t n_out, int64_t n_in, size_t *rb) {
    *rb = fmt_row_bytes(type, n_in);
    const fmt_traits *t = fmt_get(type);
    size_t nblk = *rb * (size_t)n_out / t->block_bytes;
    uint8_t *w = malloc(*rb * (size_t)n_out);
    for (size_t i = 0; i < *rb * (size_t)n_out; i++) w[i] = (uint8_t)rnd_u32();
    for (size_t k = 0; k < nblk; k++) {
        uint8_t *b = w + k * t->block_bytes;
        uint16_t d = it_f32_to_fp16(0.001f + 0.03f * (rnd_f() + 1.0f) / 2.0f);
        uint16_t dm = it_f32_to_fp16(0.001f + 0.01f * (rnd_f() + 1.0f) / 2.0f);
        if (type == IT_TYPE_Q4_0 || type == IT_TYPE_Q8_0) memcpy(b, &d, 2);
        if (type == IT_TYPE_Q4_K) memcpy(b, &d, 2), memcpy(b + 2, &dm, 2);
        if (type == IT_TYPE_Q6_K) memcpy(b + 208, &d, 2);
    }
    return w;
}

static float *make_x(int64_t nt, int64_t n_in) {
    float *x = malloc((size_t)(nt * n_in) * sizeof(float));
    for (int64_t i = 0; i < nt * n_in; i++) x[i] = rnd_f() * ((i * 7) % 13 == 0 ? 3.0f : 1.0f) * (i % 64 < 32 ? 1.0f : 0.02f);
    return x;
}

static void test_hand(void) {
    TEST_CASE("hand-computed Q8_0 and Q4_0 blocks") {
        // Q8_0: d = 0.5, codes 0..31 minus 16; x = 1 everywhere: s = 1/127, q = 127.
        // Sum of (i - 16) over i < 32 = 496 - 512 = -16: iv = -16 * 127, y = 0.5/127 * -2032 = -8.
        it_block_q8_0 b8;
        b8.d = it_f32_to_fp16(0.5f);
        for (int i = 0; i < 32; i++) b8.qs[i] = (int8_t)(i - 16);
        // Q4_0: d = 0.25, all codes 15 (w = 7 * 0.25): iv = 15 * 127 * 32 - 8 * 4064 = 28448,
        // y = (0.25/127) * 28448 = 56.
        it_block_q4_0 b4;
        b4.d = it_f32_to_fp16(0.25f);
        memset(b4.qs, 0xff, 16);
        float x[32];
        for (int i = 0; i < 32; i++) x[i] = 1.0f;
        kern_dq a = {0};
        CHECK(kern_dq_quantize(&a, x, 1, 32) == 0, "quantize");
        for (int v = 0; v < 3; v++) {
            const char *isa = v == 0 ? "ref" : k_isas[v - 1];
            ggdec_fn f8 = ggdec_kernel(IT_TYPE_Q8_0, isa), f4 = ggdec_kernel(IT_TYPE_Q4_0, isa);
            if (!f8) continue;
            float y8 = 0, y4 = 0;
            f8(IT_TYPE_Q8_0, &b8, sizeof b8, &a, &y8, 1, 0, 1);
            f4(IT_TYPE_Q4_0, &b4, sizeof b4, &a, &y4, 1, 0, 1);
            CHECK_NEAR(y8, -8.0, 1e-5);
            CHECK_NEAR(y4, 56.0, 1e-4);
        }
        CHECK(ggdec_kernel(IT_TYPE_Q4_1, "ref") == NULL && ggdec_best(IT_TYPE_F32) == NULL, "unsupported types");
        kern_dq_free(&a);
    }
}

// Q6_K at the ends of its ranges (the int32 block value just under 2^24), hand-computed: 3 rows of 3
// super-blocks (a 512-weight chunk and a group of 8) with d = 1, x = +1, -1 and +1/-1 by 16-weight
// halves (s_b = 1/127, q = +-127, half sums +-2032). Row A: codes 0 (w = -32), every sc = -128:
// iv = -128 * -32 * 2032 * 2 = 16646144 per block, y = 24 * iv / 127 = 3145728. Row B: codes 63,
// sc = 127: iv = 127 * 31 * 2032 * 2, y = 24 * 125984. Row C: codes 0, sc_2j = 127, sc_2j+1 = -128
// (a swap of the two sub-scales of a block changes y): x = 1 gives 24 * 512, the halves x give
// 24 * -130560. Also kern_dq.hsum (the 16-input sums the AVX-512 kernel takes the -32 with).
static void test_q6k_extremes(void) {
    TEST_CASE("Q6_K extremes (block sums near 2^24, sub-scale order), hand-computed; kern_dq.hsum") {
        enum { NI = 768, NR = 3, NT = 3 };
        it_block_q6_K w[NR][3];
        memset(w, 0, sizeof w);
        for (int s = 0; s < 3; s++) {
            memset(w[1][s].ql, 0xff, 128), memset(w[1][s].qh, 0xff, 64);
            for (int j = 0; j < 16; j++) {
                w[0][s].scales[j] = -128, w[1][s].scales[j] = 127;
                w[2][s].scales[j] = (int8_t)(j % 2 ? -128 : 127);
            }
            for (int r = 0; r < NR; r++) w[r][s].d = it_f32_to_fp16(1.0f);
        }
        float x[NT * NI];
        for (int i = 0; i < NI; i++) x[i] = 1.0f, x[NI + i] = -1.0f, x[2 * NI + i] = i % 32 < 16 ? 1.0f : -1.0f;
        const double want[NT][NR] = {{3145728, 24 * 125984, 24 * 512}, {-3145728, -24 * 125984, -24 * 512},
                                     {0, 0, -24 * 130560}};
        kern_dq a = {0};
        CHECK(kern_dq_quantize(&a, x, NT, NI) == 0, "quantize");
        int bad = 0;
        for (int64_t t = 0; t < NT; t++)
            for (int64_t h = 0; h < 2 * a.nbp; h++) {
                int32_t v = 0;
                for (int i = 0; i < 16; i++) v += a.q[t * a.nbp * 32 + 16 * h + i];
                bad += a.hsum[t * 2 * a.nbp + h] != v || (h >= NI / 16 && v != 0);
            }
        CHECK(!bad && a.hsum[0] == 2032 && a.hsum[2 * a.nbp] == -2032 && a.hsum[4 * a.nbp + 1] == -2032, "hsum (%d bad)", bad);
        float yr[NT * NR];
        ggdec_ref(IT_TYPE_Q6_K, w, sizeof w[0], &a, yr, NR, 0, NR);
        for (int t = 0; t < NT; t++)
            for (int r = 0; r < NR; r++) CHECK_NEAR(yr[t * NR + r], want[t][r], 4.0);
        for (int v = 0; v < 2; v++) {
            ggdec_fn fn = ggdec_kernel(IT_TYPE_Q6_K, k_isas[v]);
            if (!fn) continue;
            float ys[NT * NR];
            fn(IT_TYPE_Q6_K, w, sizeof w[0], &a, ys, NR, 0, NR);
            CHECK(!memcmp(yr, ys, sizeof ys), "%s: %.9g vs %.9g", k_isas[v], (double)yr[0], (double)ys[0]);
        }
        kern_dq_free(&a);
    }
}

static void test_ref_vs_float(void) {
    TEST_CASE("reference == dequantize-then-dot (double) over s*q; within the activation error of x") {
        const int64_t n_out = 7, n_in = 768, nt = 2;
        for (size_t ti = 0; ti < sizeof k_types / sizeof *k_types; ti++) {
            const int type = k_types[ti];
            size_t rb;
            uint8_t *w = make_weights(type, n_out, n_in, &rb);
            float *x = make_x(nt, n_in), *wf = malloc((size_t)n_in * sizeof(float)), y[nt * n_out];
            kern_dq a = {0};
            CHECK(kern_dq_quantize(&a, x, nt, n_in) == 0, "quantize");
            ggdec_ref(type, w, rb, &a, y, n_out, 0, n_out);
            for (int64_t r = 0; r < n_out; r++) {
                fmt_get(type)->to_float(w + (size_t)r * rb, wf, n_in);
                for (int64_t t = 0; t < nt; t++) {
                    double dq = 0, ab = 0, dx = 0, bound = 0;
                    for (int64_t i = 0; i < n_in; i++) {
                        double s = a.scale[t * a.nbp + i / 32], xq = s * a.q[t * a.nbp * 32 + i];
                        dq += (double)wf[i] * xq;
                        ab += fabs((double)wf[i] * xq);
                        dx += (double)wf[i] * x[t * n_in + i];
                        bound += fabs((double)wf[i]) * s * 0.5;   // |x - s q| <= s / 2
                    }
                    double yr = y[t * n_out + r];
                    CHECK(fabs(yr - dq) <= 2e-6 * ab + 1e-7, "%s r%lld t%lld: %.9g vs %.9g", fmt_get(type)->name,
                          (long long)r, (long long)t, yr, dq);
                    CHECK(fabs(yr - dx) <= bound * 1.0001 + 2e-6 * ab, "%s vs x: %.9g vs %.9g (bound %g)",
                          fmt_get(type)->name, yr, dx, bound);
                }
            }
            kern_dq_free(&a);
            free(w), free(x), free(wf);
        }
    }
}

static void test_simd(void) {
    TEST_CASE("every SIMD kernel == reference (memcmp): 1..5 tokens, tails, odd row ranges") {
        int ran = 0;
        for (size_t ti = 0; ti < sizeof k_types / sizeof *k_types; ti++) {
            const int type = k_types[ti];
            const int64_t qk = fmt_get(type)->block_size;
            // 864: chunk + group + 3; 544: chunk + 1; k-quants: 256 (a group), 512 (a chunk), 768 (chunk + group).
            const int64_t ins[] = {qk == 32 ? 864 : 256, qk == 32 ? 32 : 512, qk == 32 ? 544 : 768, 2304};
            for (int ni = 0; ni < 4; ni++) {
                const int64_t n_in = ins[ni], n_out = 37;
                size_t rb;
                uint8_t *w = make_weights(type, n_out, n_in, &rb);
                for (int64_t nt = 1; nt <= 5; nt++) {
                    float *x = make_x(nt, n_in), *yr = malloc((size_t)(nt * n_out) * 4), *ys = malloc((size_t)(nt * n_out) * 4);
                    kern_dq a = {0};
                    CHECK(kern_dq_quantize(&a, x, nt, n_in) == 0, "quantize");
                    ggdec_ref(type, w, rb, &a, yr, n_out, 0, n_out);
                    for (int v = 0; v < 2; v++) {
                        ggdec_fn fn = ggdec_kernel(type, k_isas[v]);
                        if (!fn) continue;
                        ran++;
                        memset(ys, 0, (size_t)(nt * n_out) * 4);
                        fn(type, w, rb, &a, ys, n_out, 0, 5);
                        fn(type, w, rb, &a, ys, n_out, 5, n_out);
                        CHECK(!memcmp(yr, ys, (size_t)(nt * n_out) * 4), "%s %s n_in %lld nt %lld: %.9g vs %.9g",
                              fmt_get(type)->name, k_isas[v], (long long)n_in, (long long)nt, (double)yr[0], (double)ys[0]);
                    }
                    kern_dq_free(&a);
                    free(x), free(yr), free(ys);
                }
                free(w);
            }
        }
        if (!ran) printf("  (no AVX2 on this CPU: only the reference ran)\n");
    }
}

static void test_group(void) {
    TEST_CASE("threaded wrapper over mixed types == single-thread kernels") {
        const int64_t n_in = 512, nt = 3;
        const int64_t outs[4] = {50, 33, 64, 17};
        it_tensor t[4];
        uint8_t *w[4];
        float *y[4], *yr[4];
        for (int m = 0; m < 4; m++) {
            size_t rb;
            w[m] = make_weights(k_types[m], outs[m], n_in, &rb);
            t[m] = (it_tensor){.name = "w", .type = k_types[m], .n_dims = 2, .ne = {n_in, outs[m], 1, 1},
                               .data = w[m], .nbytes = rb * (size_t)outs[m]};
            y[m] = calloc((size_t)(nt * outs[m]), 4);
            yr[m] = calloc((size_t)(nt * outs[m]), 4);
            ggdec_best(k_types[m]);
        }
        float *x = make_x(nt, n_in);
        kern_dq a = {0};
        CHECK(kern_dq_quantize(&a, x, nt, n_in) == 0, "quantize");
        for (int m = 0; m < 4; m++) ggdec_best(k_types[m])(k_types[m], w[m], fmt_row_bytes(k_types[m], n_in), &a, yr[m], outs[m], 0, outs[m]);
        const it_tensor *ws[4] = {&t[0], &t[1], &t[2], &t[3]};
        for (int p = 1; p <= 3; p++) {
            it_pool *pool = it_pool_new(p);
            kern_matmul_ggdec_group(pool, 4, ws, &a, y);
            for (int m = 0; m < 4; m++) CHECK(!memcmp(y[m], yr[m], (size_t)(nt * outs[m]) * 4), "pool %d matrix %d", p, m);
            it_pool_free(pool);
        }
        kern_dq_free(&a);
        free(x);
        for (int m = 0; m < 4; m++) free(w[m]), free(y[m]), free(yr[m]);
    }
}

static void test_prefill(void) {
    TEST_CASE("prefill driver (row blocks, 4..13 tokens, 1..3 threads, mixed types) == ggdec_ref (memcmp)") {
        // Row counts: not multiples of 16 nor of any row block; n_in 512 and 2304 (9 super-blocks:
        // rows of 1296 .. 2448 bytes, row blocks of 8 .. 16). Tails past the last group of 8 are
        // test_simd's (the driver calls the same kernels).
        const int64_t outs[4] = {53, 37, 70, 19};
        it_pool *pools[3] = {it_pool_new(1), it_pool_new(2), it_pool_new(3)};
        int cases = 0;
        for (int ni = 0; ni < 2; ni++) {
            const int64_t n_in = ni ? 2304 : 512;
            it_tensor t[4];
            uint8_t *w[4];
            for (int m = 0; m < 4; m++) {
                size_t rb;
                // Two orders of the types so each appears at every position of the group.
                int type = k_types[(m + ni) % 4];
                w[m] = make_weights(type, outs[m], n_in, &rb);
                t[m] = (it_tensor){.name = "w", .type = type, .n_dims = 2, .ne = {n_in, outs[m], 1, 1},
                                   .data = w[m], .nbytes = rb * (size_t)outs[m]};
            }
            const it_tensor *ws[4] = {&t[0], &t[1], &t[2], &t[3]};
            for (int64_t nt = 4; nt <= 13; nt++) {
                float *x = make_x(nt, n_in), *y[4], *yr[4];
                kern_dq a = {0};
                CHECK(kern_dq_quantize(&a, x, nt, n_in) == 0, "quantize");
                for (int m = 0; m < 4; m++) {
                    y[m] = malloc((size_t)(nt * outs[m]) * 4);
                    yr[m] = malloc((size_t)(nt * outs[m]) * 4);
                    ggdec_ref(t[m].type, w[m], fmt_row_bytes(t[m].type, n_in), &a, yr[m], outs[m], 0, outs[m]);
                }
                for (int p = 0; p < 3; p++) {
                    for (int m = 0; m < 4; m++) memset(y[m], 0xff, (size_t)(nt * outs[m]) * 4);
                    kern_matmul_ggdg_group(pools[p], 4, ws, &a, y);
                    for (int m = 0; m < 4; m++) {
                        cases++;
                        CHECK(!memcmp(y[m], yr[m], (size_t)(nt * outs[m]) * 4), "%s n_in %lld nt %lld pool %d",
                              fmt_get(t[m].type)->name, (long long)n_in, (long long)nt, p + 1);
                    }
                }
                kern_dq_free(&a);
                free(x);
                for (int m = 0; m < 4; m++) free(y[m]), free(yr[m]);
            }
            for (int m = 0; m < 4; m++) free(w[m]);
        }
        // The row block: the L1 budget over the row bytes, clamped to 4..16.
        CHECK(ggdec_block_rows(1152) == 16 && ggdec_block_rows(3168) == 6 && ggdec_block_rows(1 << 20) == 4,
              "block rows %lld %lld", (long long)ggdec_block_rows(1152), (long long)ggdec_block_rows(3168));
        CHECK(cases == 2 * 10 * 3 * 4, "cases %d", cases);
        for (int p = 0; p < 3; p++) it_pool_free(pools[p]);
    }
}

// Q8_0 / Q4_K / Q6_K prefill on AMX tiles (ggdec_kernel "amx"): == ggdec_ref by memcmp over 4..40 tokens
// (one to three 16-token tiles, partial ones), row ranges that are not multiples of 16, rows of 1 to
// 9 super-blocks (Q8_0 also 27 blocks: lanes with one block fewer).
static void test_amx(void) {
    TEST_CASE("AMX prefill (Q8_0, Q4_K, Q6_K) == reference (memcmp): 4..40 tokens, partial row blocks") {
        if (!ggdec_kernel(IT_TYPE_Q8_0, "amx")) {
            // "note:", not "skip": tests/run.sh counts skips as missing shared files, which CI
            // (INTACT_NO_SKIP=1) fails; a CPU without AMX (Zen 4, Ice Lake) is not a missing file.
            printf("note: %s: not run, no AMX-INT8 on this CPU or process\n", th_case);
            th_case_skipped = 1;
            continue;
        }
        CHECK(ggdec_kernel(IT_TYPE_Q4_0, "amx") == NULL, "Q4_0 takes the int4 GEMM, not this");
        const int types[] = {IT_TYPE_Q8_0, IT_TYPE_Q4_K, IT_TYPE_Q6_K};
        for (int ti = 0; ti < 3; ti++) {
            const int type = types[ti];
            const int64_t ins[] = {256, 2304, type == IT_TYPE_Q8_0 ? 864 : 512};
            for (int ni = 0; ni < 3; ni++) {
                const int64_t n_in = ins[ni], n_out = 37, nts[] = {4, 16, 21, 40};
                size_t rb;
                uint8_t *w = make_weights(type, n_out, n_in, &rb);
                for (int k = 0; k < 4; k++) {
                    const int64_t nt = nts[k];
                    float *x = make_x(nt, n_in), *yr = malloc((size_t)(nt * n_out) * 4), *ys = malloc((size_t)(nt * n_out) * 4);
                    kern_dq a = {0};
                    CHECK(kern_dq_quantize(&a, x, nt, n_in) == 0 && a.qa, "quantize with AMX tiles");
                    ggdec_ref(type, w, rb, &a, yr, n_out, 0, n_out);
                    memset(ys, 0, (size_t)(nt * n_out) * 4);
                    ggdec_fn fn = ggdec_kernel(type, "amx");
                    fn(type, w, rb, &a, ys, n_out, 0, 5);
                    fn(type, w, rb, &a, ys, n_out, 5, n_out);
                    CHECK(!memcmp(yr, ys, (size_t)(nt * n_out) * 4), "%s n_in %lld nt %lld: %.9g vs %.9g", fmt_get(type)->name,
                          (long long)n_in, (long long)nt, (double)yr[n_out + 7], (double)ys[n_out + 7]);
                    kern_dq_free(&a);
                    free(x), free(yr), free(ys);
                }
                free(w);
            }
        }
    }
}

int main(void) {
    test_hand();
    test_q6k_extremes();
    test_ref_vs_float();
    test_simd();
    test_group();
    test_prefill();
    test_amx();
    return th_finish("test_ggml_dec");
}
