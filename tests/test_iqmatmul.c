// Integer-activation kernels (kernels/iqmatmul.h): the per-token activation quantizer against
// hand-computed values (and its SIMD layout and fake-quant twin); the scalar reference against an
// independent double computation over dequantized weights and s*q activations; every SIMD kernel
// bit-identical (memcmp) to the reference for all 4/8-bit formats, odd row ranges, several token
// counts and extreme values; the fake-quant float path against the integer one; the threaded
// wrapper against the single-thread kernel.
#include "harness.h"

#include <stdint.h>

#include "core/pool.h"
#include "formats/fmt_kernels.h"
#include "formats/formats.h"
#include "formats/qformat.h"
#include "kernels/iqmatmul.h"
#include "kernels/matmul.h"
#include "quant/rtn.h"

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd_u32(void) { // xorshift64*
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return (uint32_t)((g_rng * 0x2545f4914f6cdd1dull) >> 32);
}
static float rnd_f(void) { return (float)((double)rnd_u32() / 4294967296.0 * 2.0 - 1.0); }

static const int k_bits[] = {2, 3, 4, 8};
static const int k_groups[] = {32, 64, 128};
static const char *k_isas[] = {"avx2", "avx512"};

// Random weights (n_out, n_in) in format s, quantized with RTN; rows with an outlier now and then
// so the scales vary.
static uint8_t *make_weights(const qf_spec *s, int64_t n_out, int64_t n_in, size_t *rb) {
    *rb = qf_block_bytes(s) * (size_t)(n_in / s->group);
    uint8_t *w = malloc(*rb * (size_t)n_out);
    float *row = malloc((size_t)n_in * sizeof(float));
    for (int64_t r = 0; r < n_out; r++) {
        for (int64_t i = 0; i < n_in; i++) row[i] = rnd_f() * (i % 17 == 3 ? 4.0f : 1.0f) + (s->sym ? 0.0f : 0.3f);
        rtn_quantize_row(s, row, n_in, 1.0f, w + (size_t)r * *rb);
    }
    free(row);
    return w;
}

static float *make_x(int64_t nt, int64_t n_in) {
    float *x = malloc((size_t)(nt * n_in) * sizeof(float));
    for (int64_t i = 0; i < nt * n_in; i++) x[i] = rnd_f() * ((i * 7) % 13 == 0 ? 3.0f : 1.0f);
    return x;
}

// ---- (a) the quantizer ----

static void test_quantizer(void) {
    TEST_CASE("actq: hand-computed rows (8-bit, 4-bit with clip, zero row), layouts, fake twin") {
        // Row 0, 8 bits, clip 1: amax = 1.27, s = 1.27 / 127 = 0.01 (float: 0.0099999998);
        //   x / s: 1.27 -> 127, -1.27 -> -127, 0.5 -> 50, -0.504 -> -50.4 -> -50, 0.014 -> 1.4 -> 1,
        //   0.016 -> 1.6 -> 2, -0.026 -> -2.6 -> -3, 0 -> 0; the rest zero. Sum = 127-127+50-50+1+2-3 = 0.
        // Row 1, 4 bits (qmax 7), clip 0.5: amax = 1.4, s = 0.5 * 1.4 / 7 = 0.1;
        //   1.4 -> 14 -> clamp 7, -1.4 -> -7, 0.7 -> 7, 0.33 -> 3.3 -> 3, -0.36 -> -3.6 -> -4,
        //   0.04 -> 0.4 -> 0, 0.26 -> 2.6 -> 3, -0.94 -> -9.4 -> clamp -7. Sum = 7-7+7+3-4+0+3-7 = 2.
        // Row 2: all zero -> s = 0, q = 0.
        float x[3][64] = {{1.27f, -1.27f, 0.5f, -0.504f, 0.014f, 0.016f, -0.026f, 0.0f},
                          {1.4f, -1.4f, 0.7f, 0.33f, -0.36f, 0.04f, 0.26f, -0.94f},
                          {0}};
        static const int8_t q0[8] = {127, -127, 50, -50, 1, 2, -3, 0}, q1[8] = {7, -7, 7, 3, -4, 0, 3, -7};
        kern_actq a = {0};
        CHECK(kern_actq_quantize(&a, x[0], 1, 64, 8, 1.0f) == 0, "quantize row 0");
        CHECK(a.scale[0] == 1.27f / 127.0f, "%.9g", (double)a.scale[0]);
        CHECK_NEAR(a.scale[0], 0.01, 1e-9);
        for (int i = 0; i < 64; i++) CHECK(a.q[i] == (i < 8 ? q0[i] : 0), "q[%d] = %d", i, a.q[i]);
        CHECK(a.sum32[0] == 0 && a.sum32[1] == 0, "sums %d %d", a.sum32[0], a.sum32[1]);
        CHECK(kern_actq_quantize(&a, x[1], 1, 64, 4, 0.5f) == 0, "quantize row 1");
        CHECK(a.scale[0] == 0.5f * 1.4f / 7.0f, "%.9g", (double)a.scale[0]);
        CHECK_NEAR(a.scale[0], 0.1, 1e-8);
        for (int i = 0; i < 64; i++) CHECK(a.q[i] == (i < 8 ? q1[i] : 0), "q[%d] = %d", i, a.q[i]);
        CHECK(a.sum32[0] == 2 && a.sum32[1] == 0, "sums %d %d", a.sum32[0], a.sum32[1]);
        // All three rows at once (bits 8): the zero row, and the SIMD layout (3 tokens pad to 16).
        CHECK(kern_actq_quantize(&a, &x[0][0], 3, 64, 8, 1.0f) == 0, "quantize 3 rows");
        CHECK(a.nt == 3 && a.ntp == 16 && a.n_in == 64 && a.bits == 8, "dims");
        CHECK(a.scale[2] == 0.0f, "zero row scale %g", (double)a.scale[2]);
        for (int i = 0; i < 64; i++) CHECK(a.q[2 * 64 + i] == 0, "zero row q[%d]", i);
        CHECK(a.q[64 + 0] == 127 && a.q[64 + 7] == -85, "row 1 at 8 bits: %d %d", a.q[64], a.q[64 + 7]);
        int lay_ok = 1;
        for (int t = 0; t < 16; t++)
            for (int k = 0; k < 64; k++) {
                int8_t e = t < 3 ? a.q[t * 64 + k] : 0;
                lay_ok &= a.qt[((k / 4) * 16 + t) * 4 + k % 4] == e;
                if (k % 32 == 0) lay_ok &= a.nsum[(k / 32) * 16 + t] == (t < 3 ? -a.sum32[t * 2 + k / 32] : 0);
            }
        for (int t = 3; t < 16; t++) lay_ok &= a.scale[t] == 0.0f;
        CHECK(lay_ok, "token-interleaved layout");
        // Fake twin: s * q, in place too.
        float out[3][64], inpl[3][64];
        memcpy(inpl, x, sizeof inpl);
        kern_actq_fake(&x[0][0], 3, 64, 8, 1.0f, &out[0][0]);
        kern_actq_fake(&inpl[0][0], 3, 64, 8, 1.0f, &inpl[0][0]);
        int fk = 1;
        for (int t = 0; t < 3; t++)
            for (int i = 0; i < 64; i++) fk &= out[t][i] == a.scale[t] * (float)a.q[t * 64 + i] && inpl[t][i] == out[t][i];
        CHECK(fk, "fake == s * q");
        CHECK(out[0][3] == -50.0f * (1.27f / 127.0f), "%g", (double)out[0][3]);
        // Ties round to even: amax = 127 gives s = 1 exactly, x = k + 0.5.
        float tie[64];
        for (int i = 0; i < 64; i++) tie[i] = i == 0 ? 127.0f : (float)(i % 9) - 4.0f + 0.5f;
        CHECK(kern_actq_quantize(&a, tie, 1, 64, 8, 1.0f) == 0 && a.scale[0] == 1.0f, "tie row");
        int tie_ok = 1;
        for (int i = 1; i < 64; i++) tie_ok &= a.q[i] == (int8_t)nearbyintf(tie[i]) && (a.q[i] % 2 == 0);
        CHECK(tie_ok, "ties to even");
        // Random rows (with clip and a NaN) against the formula with libm's nearbyintf.
        float xr[4 * 96];
        for (int i = 0; i < 4 * 96; i++) xr[i] = rnd_f() * (i % 11 == 0 ? 9.0f : 1.0f);
        xr[100] = NAN;
        for (int bits = 4; bits <= 8; bits += 4) {
            CHECK(kern_actq_quantize(&a, xr, 4, 96, bits, 0.7f) == 0, "random rows");
            int qmax = (1 << (bits - 1)) - 1, fm = 1;
            for (int t = 0; t < 4; t++) {
                float amax = 0;
                for (int i = 0; i < 96; i++) amax = fabsf(xr[t * 96 + i]) > amax ? fabsf(xr[t * 96 + i]) : amax;
                float sc = 0.7f * amax / (float)qmax;
                fm &= a.scale[t] == sc;
                for (int i = 0; i < 96; i++) {
                    float r = nearbyintf(xr[t * 96 + i] / sc);
                    int e = r != r ? 0 : r > qmax ? qmax : r < -qmax ? -qmax : (int)r;
                    fm &= a.q[t * 96 + i] == e;
                }
            }
            CHECK(fm, "bits %d: q == clamp(nearbyintf(x / s))", bits);
        }
        // The SIMD row loop (used when the kernels may use AVX2) == the scalar one (forced ref).
        {
            kern_actq b = {0};
            int same = 1;
            for (int bits = 4; bits <= 8; bits += 4) {
                it_cpu_force_ref(1);
                CHECK(kern_actq_quantize(&b, xr, 3, 128, bits, 0.9f) == 0, "scalar");
                it_cpu_force_ref(0);
                CHECK(kern_actq_quantize(&a, xr, 3, 128, bits, 0.9f) == 0, "simd");
                same &= !memcmp(a.q, b.q, 3 * 128) && !memcmp(a.scale, b.scale, 16 * sizeof(float)) &&
                        !memcmp(a.sum32, b.sum32, 12 * sizeof(int32_t)) && !memcmp(a.qt, b.qt, 16 * 128) &&
                        !memcmp(a.nsum, b.nsum, 16 * 4 * sizeof(int32_t));
            }
            CHECK(same, "simd quantizer == scalar quantizer");
            kern_actq_free(&b);
        }
        // Bad arguments.
        CHECK(kern_actq_quantize(&a, x[0], 1, 48, 8, 1.0f) == -1, "n_in %% 32");
        CHECK(kern_actq_quantize(&a, x[0], 1, 64, 6, 1.0f) == -1, "bits");
        CHECK(kern_actq_quantize(&a, x[0], 1, 64, 8, 0.0f) == -1, "clip 0");
        CHECK(kern_actq_quantize(&a, x[0], 0, 64, 8, 1.0f) == -1, "nt 0");
        kern_actq_free(&a);
    }
}

// ---- (b) the reference against double ----

static void test_ref_vs_double(void) {
    TEST_CASE("ref: every format vs double over dequantized weights and s*q activations") {
        const int64_t n_in = 256, n_out = 7, nt = 3;
        float *x = make_x(nt, n_in), *wd = malloc((size_t)n_in * sizeof(float));
        kern_actq a = {0};
        for (int abits = 4; abits <= 8; abits += 4) {
            CHECK(kern_actq_quantize(&a, x, nt, n_in, abits, abits == 4 ? 0.9f : 1.0f) == 0, "quantize");
            for (int bi = 0; bi < 4; bi++)
                for (int gi = 0; gi < 3; gi++)
                    for (int sym = 0; sym < 2; sym++) {
                        qf_spec s = {k_bits[bi], k_groups[gi], sym};
                        size_t rb;
                        uint8_t *w = make_weights(&s, n_out, n_in, &rb);
                        float y[3 * 7];
                        kern_iq_ref(&s, w, rb, &a, y, n_out, 0, n_out);
                        double worst = 0;
                        for (int64_t r = 0; r < n_out; r++) {
                            qf_dequantize_row(&s, w + (size_t)r * rb, wd, n_in);
                            for (int64_t t = 0; t < nt; t++) {
                                double e = 0, mag = 0;
                                for (int64_t i = 0; i < n_in; i++) {
                                    double p = (double)wd[i] * ((double)a.scale[t] * a.q[t * n_in + i]);
                                    e += p;
                                    mag += fabs(p);
                                }
                                double err = fabs(y[t * n_out + r] - e) / (mag + 1e-30);
                                worst = err > worst ? err : worst;
                            }
                        }
                        CHECK(worst < 2e-6, "a%d w%d g%d sym%d: rel err %g", abits, s.bits, s.group, sym, worst);
                        free(w);
                    }
        }
        kern_actq_free(&a);
        free(x);
        free(wd);
    }
}

// ---- (c) SIMD == ref, bit for bit ----

static const float SENT = -12345.678f;

// Runs kernel fn and the reference on rows [r0, r1) with ldy = n_out + 3 over a sentinel-filled y;
// returns 1 when both outputs (the untouched entries included) are identical.
static int same_as_ref(kern_iq_fn fn, const qf_spec *s, const uint8_t *w, size_t rb, const kern_actq *a,
                       int64_t n_out, int64_t r0, int64_t r1) {
    const int64_t ldy = n_out + 3;
    size_t n = (size_t)(a->nt * ldy);
    float *y0 = malloc(n * sizeof(float)), *y1 = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) y0[i] = y1[i] = SENT;
    kern_iq_ref(s, w, rb, a, y0, ldy, r0, r1);
    fn(s, w, rb, a, y1, ldy, r0, r1);
    int ok = !memcmp(y0, y1, n * sizeof(float));
    for (int64_t t = 0; ok && t < a->nt; t++)
        for (int64_t r = 0; r < ldy; r++)
            if ((r >= r0 && r < r1) == (y0[t * ldy + r] == SENT)) ok = 0;   // written exactly [r0, r1)
    free(y0);
    free(y1);
    return ok;
}

static void test_simd_exact(void) {
    static const int64_t nts[] = {1, 2, 3, 4, 5, 17, 64, 70};
    int n_isa = 0;
    for (int ii = 0; ii < 2; ii++) n_isa += kern_iq_kernel(IT_QTYPE(4, 0, 0), k_isas[ii]) != NULL;
    printf("  SIMD kernels available: %d (avx2: %s, avx512 vnni: %s)\n", n_isa,
           kern_iq_kernel(IT_QTYPE(4, 0, 0), "avx2") ? "yes" : "no",
           kern_iq_kernel(IT_QTYPE(4, 0, 0), "avx512") ? "yes" : "no");
    TEST_CASE("simd: every 4/8-bit format == ref exactly (random, odd row ranges, nt 1..70)") {
        const int64_t n_out = 37;
        kern_actq a = {0};
        for (int bi = 2; bi < 4; bi++)
            for (int gi = 0; gi < 3; gi++)
                for (int sym = 0; sym < 2; sym++) {
                    qf_spec s = {k_bits[bi], k_groups[gi], sym};
                    int type;
                    qf_type_of(&s, &type);
                    // 3 groups of 128, 6 of 64, 12 of 32; and an odd count of 32-groups (7).
                    for (int64_t n_in = 384; n_in >= 224; n_in -= 160) {
                        if (n_in % s.group) continue;
                        size_t rb;
                        uint8_t *w = make_weights(&s, n_out, n_in, &rb);
                        for (size_t ni = 0; ni < sizeof nts / sizeof nts[0]; ni++) {
                            float *x = make_x(nts[ni], n_in);
                            int abits = ni % 2 ? 4 : 8;
                            CHECK(kern_actq_quantize(&a, x, nts[ni], n_in, abits, 1.0f) == 0, "quantize");
                            for (int ii = 0; ii < 2; ii++) {
                                kern_iq_fn fn = kern_iq_kernel(type, k_isas[ii]);
                                if (!fn) continue;
                                static const int64_t rr[][2] = {{0, 37}, {5, 22}, {36, 37}, {1, 18}, {16, 32}};
                                for (int k = 0; k < 5; k++)
                                    CHECK(same_as_ref(fn, &s, w, rb, &a, n_out, rr[k][0], rr[k][1]),
                                          "%s w%d g%d sym%d n_in %lld nt %lld a%d rows %lld..%lld", k_isas[ii], s.bits,
                                          s.group, sym, (long long)n_in, (long long)nts[ni], abits,
                                          (long long)rr[k][0], (long long)rr[k][1]);
                            }
                            free(x);
                        }
                        free(w);
                    }
                }
        kern_actq_free(&a);
    }
    TEST_CASE("simd: extreme values == ref exactly (all codes max / min, activations +-qmax)") {
        const int64_t n_out = 19, n_in = 256;
        kern_actq a = {0};
        uint8_t q[128];
        for (int bi = 2; bi < 4; bi++)
            for (int gi = 0; gi < 3; gi++)
                for (int sym = 0; sym < 2; sym++) {
                    qf_spec s = {k_bits[bi], k_groups[gi], sym};
                    int type;
                    qf_type_of(&s, &type);
                    size_t bb = qf_block_bytes(&s), rb = bb * (size_t)(n_in / s.group);
                    uint8_t *w = malloc(rb * (size_t)n_out);
                    int maxq = (1 << s.bits) - 1;
                    // Rows alternate all-max codes with z = 0 (asym) / all-zero codes with z = max,
                    // and a large fp16 scale, so |isum - z asum| reaches G * maxq * 127.
                    for (int64_t r = 0; r < n_out; r++)
                        for (int64_t g = 0; g < n_in / s.group; g++) {
                            memset(q, r % 2 ? 0 : maxq, sizeof q);
                            qf_pack_group(&s, r % 3 ? 1024.0f : 0.5f, r % 2 ? maxq : 0, q, w + (size_t)r * rb + (size_t)g * bb);
                        }
                    for (int pattern = 0; pattern < 3; pattern++)
                        for (int ntc = 0; ntc < 3; ntc++) {
                            int64_t nt = ntc == 0 ? 1 : ntc == 1 ? 5 : 33;
                            float *x = malloc((size_t)(nt * n_in) * sizeof(float));
                            for (int64_t i = 0; i < nt * n_in; i++)
                                x[i] = pattern == 0 ? 1.0f : pattern == 1 ? -1.0f : (i % 2 ? 1.0f : -1.0f);
                            for (int abits = 4; abits <= 8; abits += 4) {
                                CHECK(kern_actq_quantize(&a, x, nt, n_in, abits, 1.0f) == 0, "quantize");
                                CHECK(a.q[0] == (pattern == 0 ? 1 : -1) * ((1 << (abits - 1)) - 1), "q %d", a.q[0]);
                                for (int ii = 0; ii < 2; ii++) {
                                    kern_iq_fn fn = kern_iq_kernel(type, k_isas[ii]);
                                    if (fn)
                                        CHECK(same_as_ref(fn, &s, w, rb, &a, n_out, 0, n_out),
                                              "%s w%d g%d sym%d pattern %d nt %lld a%d", k_isas[ii], s.bits,
                                              s.group, sym, pattern, (long long)nt, abits);
                                }
                            }
                            free(x);
                        }
                    free(w);
                }
        kern_actq_free(&a);
    }
}

// ---- (d) fake-quant twin ----

static void test_fake_twin(void) {
    TEST_CASE("fake twin: float matmul over kern_actq_fake == integer path (rel 1e-5)") {
        const int64_t n_in = 512, n_out = 9, nt = 5;
        float *x = make_x(nt, n_in), *xf = malloc((size_t)(nt * n_in) * sizeof(float));
        float *wd = malloc((size_t)n_in * sizeof(float));
        kern_actq a = {0};
        for (int abits = 4; abits <= 8; abits += 4)
            for (int bi = 0; bi < 4; bi++)
                for (int gi = 0; gi < 3; gi++)
                    for (int sym = 0; sym < 2; sym++) {
                        qf_spec s = {k_bits[bi], k_groups[gi], sym};
                        int type;
                        qf_type_of(&s, &type);
                        size_t rb;
                        uint8_t *w = make_weights(&s, n_out, n_in, &rb);
                        kern_actq_fake(x, nt, n_in, abits, 0.8f, xf);
                        CHECK(kern_actq_quantize(&a, x, nt, n_in, abits, 0.8f) == 0, "quantize");
                        float yf[5 * 9], yi[5 * 9];
                        fmt_qmatmul_ref(&s, w, rb, n_in, xf, n_in, nt, yf, n_out, 0, n_out);
                        kern_iq_best(type)(&s, w, rb, &a, yi, n_out, 0, n_out);
                        // Relative to the magnitude of the dot product (sum of |w_i x_i|), the
                        // scale of the rounding errors of either float accumulation.
                        double worst = 0;
                        for (int64_t r = 0; r < n_out; r++) {
                            qf_dequantize_row(&s, w + (size_t)r * rb, wd, n_in);
                            for (int64_t t = 0; t < nt; t++) {
                                double mag = 0;
                                for (int64_t i = 0; i < n_in; i++) mag += fabs((double)wd[i] * xf[t * n_in + i]);
                                double e = fabs((double)yf[t * n_out + r] - yi[t * n_out + r]) / (mag + 1e-30);
                                worst = e > worst ? e : worst;
                            }
                        }
                        CHECK(worst < 1e-5, "a%d w%d g%d sym%d: rel %g", abits, s.bits, s.group, sym, worst);
                        free(w);
                    }
        kern_actq_free(&a);
        free(x);
        free(xf);
        free(wd);
    }
}

// ---- (e) threaded wrapper, dispatch ----

static void test_wrapper(void) {
    TEST_CASE("wrapper: kern_matmul_iq(_group) on 1..3 threads == the single-thread kernel") {
        const int64_t n_in = 256, n_out = 100, n_out2 = 33;
        it_pool *pools[3] = {it_pool_new(1), it_pool_new(2), it_pool_new(3)};
        kern_actq a = {0};
        static const int types[] = {IT_QTYPE(4, 0, 0), IT_QTYPE(8, 2, 1), IT_QTYPE(3, 1, 0), IT_QTYPE(4, 2, 1)};
        for (int ti = 0; ti < 4; ti++) {
            qf_spec s;
            qf_spec_of(types[ti], &s);
            size_t rb;
            uint8_t *w1 = make_weights(&s, n_out, n_in, &rb), *w2 = make_weights(&s, n_out2, n_in, &rb);
            it_tensor t1 = {"w1", types[ti], 2, {n_in, n_out, 1, 1}, w1, rb * (size_t)n_out};
            it_tensor t2 = {"w2", types[ti], 2, {n_in, n_out2, 1, 1}, w2, rb * (size_t)n_out2};
            for (int64_t nt = 1; nt <= 20; nt += 19) {
                float *x = make_x(nt, n_in);
                CHECK(kern_actq_quantize(&a, x, nt, n_in, 8, 1.0f) == 0, "quantize");
                float *e1 = malloc((size_t)(nt * n_out) * sizeof(float)), *e2 = malloc((size_t)(nt * n_out2) * sizeof(float));
                float *y1 = malloc((size_t)(nt * n_out) * sizeof(float)), *y2 = malloc((size_t)(nt * n_out2) * sizeof(float));
                kern_iq_best(types[ti])(&s, w1, rb, &a, e1, n_out, 0, n_out);
                kern_iq_best(types[ti])(&s, w2, rb, &a, e2, n_out2, 0, n_out2);
                for (int p = 0; p < 3; p++) {
                    memset(y1, 0, (size_t)(nt * n_out) * sizeof(float));
                    kern_matmul_iq(pools[p], &t1, &a, y1);
                    CHECK(!memcmp(y1, e1, (size_t)(nt * n_out) * sizeof(float)), "type %d nt %lld threads %d", types[ti], (long long)nt, p + 1);
                    const it_tensor *ws[2] = {&t1, &t2};
                    float *ys[2] = {y1, y2};
                    memset(y1, 0, (size_t)(nt * n_out) * sizeof(float));
                    kern_matmul_iq_group(pools[p], 2, ws, &a, ys);
                    CHECK(!memcmp(y1, e1, (size_t)(nt * n_out) * sizeof(float)) &&
                          !memcmp(y2, e2, (size_t)(nt * n_out2) * sizeof(float)), "group: type %d nt %lld threads %d", types[ti], (long long)nt, p + 1);
                }
                // The reference gives the same bits too (all kernels agree).
                kern_iq_ref(&s, w1, rb, &a, y1, n_out, 0, n_out);
                CHECK(!memcmp(y1, e1, (size_t)(nt * n_out) * sizeof(float)), "best == ref, type %d", types[ti]);
                free(x), free(e1), free(e2), free(y1), free(y2);
            }
            free(w1);
            free(w2);
        }
        kern_actq_free(&a);
        for (int p = 0; p < 3; p++) it_pool_free(pools[p]);
    }
    TEST_CASE("dispatch: supported types, 2/3-bit SIMD NULL, forced ref") {
        CHECK(kern_iq_supported(IT_QTYPE(4, 0, 0)) && kern_iq_supported(IT_QTYPE(2, 2, 1)), "ours");
        CHECK(!kern_iq_supported(IT_TYPE_F16) && !kern_iq_supported(IT_TYPE_Q8_0), "not ours");
        CHECK(kern_iq_kernel(IT_QTYPE(3, 0, 0), "avx2") == NULL && kern_iq_kernel(IT_QTYPE(2, 1, 1), "avx512") == NULL, "2/3 bits");
        CHECK(kern_iq_kernel(IT_QTYPE(3, 0, 0), "ref") == kern_iq_ref, "ref");
        CHECK(kern_iq_kernel(IT_QTYPE(4, 0, 0), "neon") == NULL && kern_iq_kernel(IT_TYPE_F32, "ref") == NULL, "unknown");
        CHECK(kern_iq_best(IT_QTYPE(2, 0, 0)) == kern_iq_ref, "2-bit best is ref");
        it_cpu_force_ref(1);
        CHECK(kern_iq_best(IT_QTYPE(4, 0, 0)) == kern_iq_ref, "forced ref");
        it_cpu_force_ref(0);
        if (kern_iq_cpu_has_vnni() && !getenv("INTACT_ISA"))
            CHECK(kern_iq_best(IT_QTYPE(4, 0, 0)) == kern_iq_kernel(IT_QTYPE(4, 0, 0), "avx512"), "vnni preferred");
    }
}

int main(void) {
    test_quantizer();
    test_ref_vs_double();
    test_simd_exact();
    test_fake_twin();
    test_wrapper();
    return th_finish("test_iqmatmul");
}
