// GPTQ, AWQ and RTN clip search: GPTQ beats RTN on the layer output for correlated inputs, matches an
// independent NumPy implementation (tests/ref/gptq_ref.py) on a small case, its Cholesky machinery
// is right and fails cleanly; AWQ's scale/clip searches and the RTN clip search never do worse than
// their baselines, and AWQ wins on activation outliers.
#include "harness.h"

#include <stdint.h>

#include "core/pool.h"
#include "formats/qformat.h"
#include "intact.h"
#include "quant/awq.h"
#include "quant/quant_internal.h"
#include "quant/gptq.h"
#include "quant/rtn.h"

// 32-bit LCG shared with tests/ref/gptq_ref.py: next(m) = (state >> 8) % m.
typedef struct { uint32_t s; } lcg;
static uint32_t lcg_next(lcg *g, uint32_t m) {
    g->s = g->s * 1664525u + 1013904223u;
    return (g->s >> 8) % m;
}
static double lcg_unit(lcg *g) { return ((double)lcg_next(g, 1u << 24) + 0.5) / (double)(1u << 24); }
static float lcg_gauss(lcg *g) {
    return (float)(sqrt(-2.0 * log(lcg_unit(g))) * cos(6.283185307179586 * lcg_unit(g)));
}

// ‖(A − B)·Xᵀ‖² for A, B (n_out × n_in) and X (nt × n_in), in double.
static double out_err(const float *A, const float *B, int64_t n_out, int64_t n_in, const float *X, int64_t nt) {
    double tot = 0;
    for (int64_t r = 0; r < n_out; r++)
        for (int64_t t = 0; t < nt; t++) {
            double y = 0;
            for (int64_t j = 0; j < n_in; j++) y += ((double)A[r * n_in + j] - B[r * n_in + j]) * X[t * n_in + j];
            tot += y * y;
        }
    return tot;
}

// X = Z·A (Z, A Gaussian) so H is far from diagonal, with a few ×`outlier` channels.
static float *correlated_inputs(lcg *g, int64_t nt, int64_t n_in, float outlier) {
    float *Z = malloc((size_t)(nt * n_in) * sizeof(float)), *A = malloc((size_t)(n_in * n_in) * sizeof(float));
    float *X = calloc((size_t)(nt * n_in), sizeof(float));
    for (int64_t i = 0; i < nt * n_in; i++) Z[i] = lcg_gauss(g);
    for (int64_t i = 0; i < n_in * n_in; i++) A[i] = lcg_gauss(g) / sqrtf((float)n_in);
    for (int64_t t = 0; t < nt; t++)
        for (int64_t k = 0; k < n_in; k++)
            for (int64_t j = 0; j < n_in; j++) X[t * n_in + j] += Z[t * n_in + k] * A[k * n_in + j];
    for (int64_t t = 0; t < nt; t++)
        for (int64_t j = 3; j < n_in; j += n_in / 4) X[t * n_in + j] *= outlier;
    free(Z);
    free(A);
    return X;
}

// Expected output of /usr/bin/python3 tests/ref/gptq_ref.py (inputs: ref_inputs(), seed 12345).
// gptq_ref_asym3_g32: bits 3 sym 0 G 32 act_order 0
static const float gptq_ref_asym3_g32[256] = {
    -0.775634766f, 0.517089844f, -0.775634766f, -0.258544922f, -0.775634766f, 0.775634766f, 0.517089844f, 0.0f,
    0.775634766f, 0.517089844f, -0.775634766f, -0.258544922f, 0.517089844f, 0.258544922f, 0.517089844f, -0.517089844f,
    -0.517089844f, -1.03417969f, -0.775634766f, -0.258544922f, -0.258544922f, 0.517089844f, 0.517089844f, 0.258544922f,
    0.517089844f, -0.775634766f, -0.775634766f, -1.03417969f, -0.517089844f, -0.258544922f, -0.517089844f, -0.258544922f,
    -0.571777344f, 0.0f, -0.857666016f, -0.857666016f, 0.285888672f, 0.857666016f, -0.857666016f, 0.0f,
    -0.857666016f, 0.571777344f, 0.285888672f, -0.571777344f, 0.857666016f, 0.857666016f, 0.285888672f, -0.285888672f,
    -0.571777344f, 0.0f, 0.571777344f, -0.571777344f, 0.857666016f, -0.857666016f, -0.857666016f, 0.571777344f,
    -0.285888672f, -0.571777344f, -0.285888672f, -0.857666016f, -0.285888672f, 0.857666016f, -0.285888672f, 0.571777344f,
    0.594238281f, 0.594238281f, 0.0f, 1.18847656f, -0.594238281f, 0.297119141f, 0.297119141f, 0.594238281f,
    0.297119141f, 0.891357422f, 0.297119141f, 0.891357422f, -0.297119141f, 0.0f, -0.297119141f, -0.297119141f,
    -0.891357422f, -0.891357422f, -0.297119141f, -0.297119141f, -0.594238281f, -0.891357422f, 0.594238281f, -0.891357422f,
    0.297119141f, 0.297119141f, 0.891357422f, 0.891357422f, 0.0f, -0.891357422f, 0.0f, 0.594238281f,
    0.555175781f, -0.832763672f, -0.555175781f, 0.555175781f, -1.11035156f, -0.555175781f, 0.832763672f, 0.277587891f,
    0.0f, -0.277587891f, 0.555175781f, 0.277587891f, -0.277587891f, -0.277587891f, -0.832763672f, -0.277587891f,
    0.555175781f, -0.832763672f, 0.555175781f, -0.555175781f, 0.555175781f, -0.832763672f, -0.832763672f, 0.555175781f,
    0.0f, 0.0f, 0.0f, 0.0f, 0.555175781f, -0.555175781f, -0.277587891f, -0.555175781f,
    0.545410156f, -0.818115234f, 0.0f, 0.818115234f, -0.818115234f, 0.272705078f, -1.09082031f, 0.0f,
    0.545410156f, 0.818115234f, -0.545410156f, 0.818115234f, -0.545410156f, -0.272705078f, 0.818115234f, -0.818115234f,
    -0.545410156f, 0.545410156f, 0.272705078f, 0.545410156f, 0.0f, 0.272705078f, 0.0f, -0.818115234f,
    0.545410156f, 0.0f, -0.272705078f, -0.545410156f, -0.818115234f, -0.818115234f, 0.272705078f, 0.272705078f,
    0.678955078f, 0.905273438f, -0.678955078f, -0.452636719f, 0.452636719f, 0.226318359f, -0.226318359f, 0.0f,
    0.226318359f, -0.226318359f, 0.226318359f, 0.678955078f, -0.678955078f, -0.452636719f, -0.452636719f, 0.452636719f,
    0.678955078f, 0.0f, 0.452636719f, 0.452636719f, -0.452636719f, -0.678955078f, 0.452636719f, 0.0f,
    0.226318359f, -0.226318359f, -0.678955078f, 0.226318359f, -0.226318359f, -0.678955078f, -0.678955078f, -0.226318359f,
    0.249755859f, 0.999023438f, -0.749267578f, 0.749267578f, -0.749267578f, 0.249755859f, 0.249755859f, 0.0f,
    0.0f, -0.249755859f, 0.249755859f, 0.249755859f, 0.0f, 0.249755859f, 0.249755859f, 0.0f,
    -0.499511719f, -0.499511719f, 0.0f, 0.249755859f, 0.499511719f, -0.499511719f, 0.249755859f, 0.499511719f,
    0.249755859f, 0.749267578f, -0.749267578f, -0.749267578f, 0.0f, 0.249755859f, -0.249755859f, 0.0f,
    -0.249267578f, -0.498535156f, 0.498535156f, 0.0f, -0.249267578f, 0.0f, -0.747802734f, -0.249267578f,
    0.747802734f, -0.498535156f, 0.747802734f, 0.249267578f, -0.747802734f, -0.249267578f, 0.498535156f, -0.747802734f,
    -0.249267578f, 0.747802734f, 0.747802734f, -0.498535156f, 0.0f, 0.747802734f, 0.747802734f, 0.249267578f,
    -0.747802734f, 0.498535156f, 0.498535156f, 0.747802734f, 0.249267578f, -0.249267578f, -0.249267578f, 0.0f,
};
// smallest |w/d - k - 0.5| seen: 0.000545
// gptq_ref_sym4_g32_act: bits 4 sym 1 G 32 act_order 1
static const float gptq_ref_sym4_g32_act[256] = {
    -0.74230957f, 0.494873047f, -0.866027832f, -0.494873047f, -0.866027832f, 0.866027832f, 0.371154785f, 0.0f,
    0.866027832f, 0.618591309f, -0.618591309f, -0.371154785f, 0.494873047f, 0.247436523f, 0.618591309f, -0.371154785f,
    -0.371154785f, -0.866027832f, -0.74230957f, -0.247436523f, -0.123718262f, 0.494873047f, 0.371154785f, 0.123718262f,
    0.371154785f, -0.618591309f, -0.618591309f, -0.618591309f, -0.494873047f, -0.618591309f, -0.371154785f, -0.494873047f,
    -0.756591797f, 0.126098633f, -0.630493164f, -0.630493164f, 0.378295898f, 0.504394531f, -0.630493164f, 0.126098633f,
    -1.00878906f, 0.756591797f, 0.252197266f, -0.504394531f, 0.88269043f, 0.88269043f, 0.378295898f, -0.126098633f,
    -0.504394531f, -0.126098633f, 0.378295898f, -0.630493164f, 0.630493164f, -0.88269043f, -0.756591797f, 0.88269043f,
    -0.504394531f, -0.504394531f, -0.252197266f, -0.756591797f, -0.252197266f, 0.88269043f, -0.252197266f, 0.378295898f,
    0.640258789f, 0.768310547f, 0.128051758f, 0.896362305f, -0.768310547f, -0.128051758f, 0.128051758f, 0.640258789f,
    0.128051758f, 0.896362305f, 0.384155273f, 0.896362305f, -0.512207031f, -0.128051758f, -0.256103516f, -0.512207031f,
    -0.896362305f, -0.768310547f, -0.384155273f, -0.128051758f, -0.384155273f, -0.896362305f, 0.512207031f, -0.896362305f,
    0.128051758f, 0.384155273f, 0.768310547f, 0.896362305f, 0.256103516f, -0.896362305f, 0.0f, 0.512207031f,
    0.650634766f, -1.04101562f, -0.650634766f, 0.780761719f, -0.910888672f, -0.780761719f, 0.650634766f, 0.130126953f,
    0.130126953f, -0.130126953f, 0.650634766f, 0.260253906f, -0.260253906f, -0.130126953f, -0.910888672f, -0.260253906f,
    0.390380859f, -0.520507812f, 0.780761719f, -0.650634766f, 0.650634766f, -1.04101562f, -0.910888672f, 0.780761719f,
    0.0f, -0.260253906f, 0.260253906f, 0.0f, 0.650634766f, -0.650634766f, -0.130126953f, -0.520507812f,
    0.513183594f, -0.641479492f, 0.0f, 0.641479492f, -0.641479492f, 0.256591797f, -0.898071289f, 0.0f,
    0.384887695f, 0.898071289f, -0.513183594f, 0.898071289f, -0.513183594f, -0.128295898f, 0.769775391f, -0.769775391f,
    -0.641479492f, 0.513183594f, 0.256591797f, 0.513183594f, 0.128295898f, 0.128295898f, 0.128295898f, -0.769775391f,
    0.641479492f, -0.256591797f, -0.384887695f, -0.513183594f, -0.641479492f, -0.769775391f, 0.128295898f, 0.128295898f,
    0.586547852f, 0.703857422f, -0.703857422f, -0.469238281f, 0.469238281f, 0.11730957f, -0.11730957f, 0.0f,
    0.234619141f, -0.11730957f, 0.234619141f, 0.703857422f, -0.821166992f, -0.234619141f, -0.469238281f, 0.586547852f,
    0.703857422f, 0.0f, 0.469238281f, 0.586547852f, -0.586547852f, -0.469238281f, 0.234619141f, 0.0f,
    0.11730957f, -0.469238281f, -0.703857422f, 0.234619141f, -0.351928711f, -0.586547852f, -0.821166992f, -0.234619141f,
    0.239379883f, 0.83782959f, -0.83782959f, 0.718139648f, -0.598449707f, 0.119689941f, 0.239379883f, 0.0f,
    0.0f, -0.239379883f, 0.478759766f, 0.359069824f, 0.119689941f, 0.0f, 0.239379883f, -0.119689941f,
    -0.239379883f, -0.478759766f, 0.0f, 0.359069824f, 0.718139648f, -0.478759766f, 0.119689941f, 0.478759766f,
    0.239379883f, 0.718139648f, -0.598449707f, -0.83782959f, -0.239379883f, 0.119689941f, -0.359069824f, -0.119689941f,
    -0.39074707f, -0.781494141f, 0.39074707f, -0.130249023f, -0.39074707f, 0.0f, -0.39074707f, -0.260498047f,
    0.781494141f, -0.520996094f, 0.520996094f, 0.130249023f, -0.781494141f, -0.260498047f, 0.520996094f, -0.911743164f,
    -0.39074707f, 0.651245117f, 0.651245117f, -0.520996094f, 0.0f, 0.520996094f, 0.651245117f, 0.130249023f,
    -1.04199219f, 0.651245117f, 0.39074707f, 0.911743164f, 0.39074707f, -0.130249023f, -0.130249023f, 0.0f,
};
// smallest |w/d - k - 0.5| seen: 0.00203

// The same inputs as gptq_ref.py's make_inputs: every value exact in float32.
static void ref_inputs(float *W, float *X, int64_t n_out, int64_t n_in, int64_t nt, uint32_t seed) {
    lcg g = {seed};
    for (int64_t i = 0; i < n_out * n_in; i++) W[i] = (float)((int)lcg_next(&g, 2001) - 1000) / 1024.0f;
    float *Z = malloc((size_t)(nt * n_in) * sizeof(float)), *A = malloc((size_t)(n_in * n_in) * sizeof(float));
    for (int64_t i = 0; i < nt * n_in; i++) Z[i] = (float)lcg_next(&g, 17) - 8.0f;
    for (int64_t i = 0; i < n_in * n_in; i++) A[i] = ((float)lcg_next(&g, 9) - 4.0f) / 16.0f;
    for (int64_t t = 0; t < nt; t++)
        for (int64_t j = 0; j < n_in; j++) {
            float s = 0;   // multiples of 1/16 below 2^10: exact in any order
            for (int64_t k = 0; k < n_in; k++) s += Z[t * n_in + k] * A[k * n_in + j];
            X[t * n_in + j] = s;
        }
    for (int64_t t = 0; t < nt; t++) X[t * n_in + 5] *= 8.0f, X[t * n_in + 7] = 0.0f;
    free(Z);
    free(A);
}

static void test_gptq_vs_rtn(it_pool *pool) {
    const int64_t n_out = 64, n_in = 256, nt = 512;
    lcg g = {7};
    float *X = correlated_inputs(&g, nt, n_in, 10.0f);
    float *W0 = malloc((size_t)(n_out * n_in) * sizeof(float));
    for (int64_t i = 0; i < n_out * n_in; i++) W0[i] = lcg_gauss(&g) * 0.05f;
    float *W = malloc((size_t)(n_out * n_in) * sizeof(float)), *Wd = malloc((size_t)(n_out * n_in) * sizeof(float));
    float *Wser = malloc((size_t)(n_out * n_in) * sizeof(float));
    uint8_t *packed = malloc((size_t)n_out * (n_in / 32) * 64), *packed2 = malloc((size_t)n_out * (n_in / 32) * 64);

    gptq_hessian h;
    TEST_CASE("gptq: Hessian accumulator (two batches, threaded) = 2/N·XᵀX") {
        CHECK(gptq_hessian_init(&h, n_in, NULL) == 0, "init");
        gptq_hessian_add(&h, X, 200, pool);
        gptq_hessian_add(&h, X + 200 * n_in, nt - 200, pool);
        double maxrel = 0;
        for (int64_t i = 0; i < n_in; i++)
            for (int64_t j = 0; j < n_in; j++) {
                double s = 0;
                for (int64_t t = 0; t < nt; t++) s += (double)X[t * n_in + i] * X[t * n_in + j];
                s *= 2.0 / nt;
                double rel = fabs(s - h.H[i * n_in + j]) / (fabs(s) + 1e-9);
                maxrel = rel > maxrel ? rel : maxrel;
            }
        CHECK(h.n_samples == nt, "%lld samples", (long long)h.n_samples);
        CHECK(maxrel < 1e-9, "max rel err %g", maxrel);
    }

    static const int bits[] = {3, 4}, groups[] = {32, 128};
    for (int bi = 0; bi < 2; bi++)
        for (int gi = 0; gi < 2; gi++)
            for (int act = 0; act < 2; act++) {
                qf_spec s = {bits[bi], groups[gi], 0};
                char name[96];
                snprintf(name, sizeof name, "gptq beats rtn: int%d g%d act_order %d", s.bits, s.group, act);
                TEST_CASE(name) {
                    CHECK(rtn_quantize_matrix(&s, W0, n_out, n_in, 0, packed2, Wd, pool, NULL) == 0, "rtn");
                    double e_rtn = out_err(W0, Wd, n_out, n_in, X, nt);
                    memcpy(W, W0, (size_t)(n_out * n_in) * sizeof(float));
                    gptq_opts o = gptq_default_opts();
                    o.act_order = act;
                    intact_error err = {0};
                    CHECK(gptq_quantize(&s, W, n_out, n_in, h.H, &o, packed, pool, &err) == 0, "%s", err.msg);
                    double e_gptq = out_err(W0, W, n_out, n_in, X, nt);
                    printf("  output err: rtn %.4g  gptq %.4g  (ratio %.3f)\n", e_rtn, e_gptq, e_gptq / e_rtn);
                    CHECK(e_gptq < e_rtn, "gptq %g vs rtn %g", e_gptq, e_rtn);
                    // The returned weights are exactly what the packed blocks decode to.
                    int same = 1;
                    size_t rb = (size_t)(n_in / s.group) * qf_block_bytes(&s);
                    for (int64_t r = 0; r < n_out; r++) {
                        qf_dequantize_row(&s, packed + r * rb, Wd, n_in);
                        if (memcmp(Wd, W + r * n_in, (size_t)n_in * sizeof(float))) same = 0;
                    }
                    CHECK(same, "dequantized packed blocks differ from the returned W");
                    // Threading changes nothing: rows are independent.
                    memcpy(Wser, W0, (size_t)(n_out * n_in) * sizeof(float));
                    CHECK(gptq_quantize(&s, Wser, n_out, n_in, h.H, &o, packed2, NULL, &err) == 0, "%s", err.msg);
                    CHECK(!memcmp(Wser, W, (size_t)(n_out * n_in) * sizeof(float)), "serial != threaded");
                    CHECK(!memcmp(packed, packed2, (size_t)n_out * rb), "serial != threaded (packed)");
                }
            }
    gptq_hessian_free(&h);
    free(X), free(W0), free(W), free(Wd), free(Wser), free(packed), free(packed2);
}

static void test_gptq_golden(it_pool *pool) {
    enum { N_OUT = 2, N_IN = 128, NT = 256 };
    float *W0 = malloc(N_OUT * N_IN * sizeof(float)), *X = malloc(NT * N_IN * sizeof(float));
    float W[N_OUT * N_IN];
    uint8_t packed[N_OUT * (N_IN / 32) * 64];
    ref_inputs(W0, X, N_OUT, N_IN, NT, 12345);
    gptq_hessian h;
    gptq_hessian_init(&h, N_IN, NULL);
    gptq_hessian_add(&h, X, NT, pool);
    struct { const char *name; qf_spec s; int act, block; const float *gold; } cases[] = {
        {"gptq vs numpy: int3 g32, block 64 (groups inside a block)", {3, 32, 0}, 0, 64, gptq_ref_asym3_g32},
        {"gptq vs numpy: int3 g32, block 32", {3, 32, 0}, 0, 32, gptq_ref_asym3_g32},
        {"gptq vs numpy: int3 g32, block 128 (one block)", {3, 32, 0}, 0, 128, gptq_ref_asym3_g32},
        {"gptq vs numpy: int4_sym g32 act_order, block 32", {4, 32, 1}, 1, 32, gptq_ref_sym4_g32_act},
        {"gptq vs numpy: int4_sym g32 act_order, block 128", {4, 32, 1}, 1, 128, gptq_ref_sym4_g32_act},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) TEST_CASE(cases[k].name) {
        memcpy(W, W0, sizeof W);
        gptq_opts o = {0.01, cases[k].block, cases[k].act};
        intact_error err = {0};
        CHECK(gptq_quantize(&cases[k].s, W, N_OUT, N_IN, h.H, &o, packed, pool, &err) == 0, "%s", err.msg);
        double maxd = 0;
        for (int i = 0; i < N_OUT * N_IN; i++) maxd = fmax(maxd, fabs((double)W[i] - cases[k].gold[i]));
        printf("  max |C − numpy| = %.3g\n", maxd);
        CHECK(maxd < 1e-5, "max |C - numpy| = %g", maxd);
    }
    gptq_hessian_free(&h);
    free(W0), free(X);
}

static void test_cholesky(it_pool *pool) {
    TEST_CASE("cholesky: 3×3 by hand") {
        double A[9] = {4, 12, -16, 12, 37, -43, -16, -43, 98};
        const double L[9] = {2, 0, 0, 6, 1, 0, -8, 5, 3};
        CHECK(gptq_cholesky(A, 3, pool) == 0, "failed");
        for (int i = 0; i < 9; i++) CHECK_NEAR(A[i], L[i], 1e-12);
    }
    TEST_CASE("cholesky: H⁻¹ = UᵀU, U upper (n = 150, crosses panels)") {
        const int n = 150;
        double *H = malloc(n * n * sizeof(double)), *H0 = malloc(n * n * sizeof(double)), *U = malloc(n * n * sizeof(double));
        lcg g = {99};
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++) H0[i * n + j] = H0[j * n + i] = (i == j ? n : 0) + lcg_gauss(&g);
        memcpy(H, H0, n * n * sizeof(double));
        CHECK(gptq_hinv_upper(H, n, U, pool) == 0, "failed");
        double maxe = 0, lower = 0;
        // (UᵀU)·H0 should be I.
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < i; j++) lower = fmax(lower, fabs(U[i * n + j]));
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int k = 0; k < n; k++) {
                    double hinv_ik = 0;
                    for (int m = 0; m <= (i < k ? i : k); m++) hinv_ik += U[m * n + i] * U[m * n + k];
                    s += hinv_ik * H0[k * n + j];
                }
                maxe = fmax(maxe, fabs(s - (i == j)));
            }
        }
        CHECK(lower == 0, "U has a lower part");
        CHECK(maxe < 1e-10, "max |UᵀU·H − I| = %g", maxe);
        free(H), free(H0), free(U);
    }
    TEST_CASE("cholesky: not SPD fails; gptq retries with more damping, then errors cleanly") {
        double A[4] = {1, 2, 2, 1};
        CHECK(gptq_cholesky(A, 2, pool) == -1, "accepted an indefinite matrix");
        enum { N = 32 };
        double H[N * N] = {0};
        for (int i = 0; i < N; i++) H[i * N + i] = 1;
        float W[2 * N], W0[2 * N];
        uint8_t packed[2 * 64];
        for (int i = 0; i < 2 * N; i++) W0[i] = W[i] = (float)(i % 7) - 3.0f;
        qf_spec s = {4, 32, 0};
        intact_error err = {0};
        // Eigenvalue 1 − 1.5 = −0.5: fixed by the third damping level (1.0 · mean diag).
        H[1] = H[N] = 1.5;
        CHECK(gptq_quantize(&s, W, 2, N, H, NULL, packed, pool, &err) == 0, "%s", err.msg);
        // Eigenvalue 1 − 100: beyond 1000× damping.
        H[1] = H[N] = 100;
        memcpy(W, W0, sizeof W);
        memset(&err, 0, sizeof err);
        CHECK(gptq_quantize(&s, W, 2, N, H, NULL, packed, pool, &err) == -1, "accepted");
        CHECK(err.code == INTACT_E_ARG && strstr(err.msg, "positive definite"), "code %d: %s", err.code, err.msg);
        CHECK(!memcmp(W, W0, sizeof W), "W modified on failure");
        printf("  error: %s\n", err.msg);
    }
}

// Σ_k ‖X(Q(W_k·s)/s − W_k)ᵀ‖² / (nt·rows), computed independently of awq.c.
static void test_awq(it_pool *pool) {
    const int64_t n_in = 256, nt = 512, n_out[2] = {64, 32};
    lcg g = {2024};
    float *X = malloc((size_t)(nt * n_in) * sizeof(float));
    for (int64_t i = 0; i < nt * n_in; i++) X[i] = lcg_gauss(&g);
    for (int64_t t = 0; t < nt; t++)   // activation outliers: 8 channels ×20
        for (int64_t j = 11; j < n_in; j += n_in / 8) X[t * n_in + j] *= 20.0f;
    float *W[2];
    for (int k = 0; k < 2; k++) {
        W[k] = malloc((size_t)(n_out[k] * n_in) * sizeof(float));
        for (int64_t i = 0; i < n_out[k] * n_in; i++) W[k][i] = lcg_gauss(&g) * 0.02f;
    }
    float *mean = malloc((size_t)n_in * sizeof(float));
    float *scales = malloc((size_t)n_in * sizeof(float));

    // The per-channel mean |x| the scale search takes (quant_awq.c computes its own from the
    // calibration activations).
    for (int64_t j = 0; j < n_in; j++) {
        double s = 0;
        for (int64_t t = 0; t < nt; t++) s += fabs((double)X[t * n_in + j]);
        mean[j] = (float)(s / (double)nt);
    }

    static const qf_spec specs[] = {{3, 128, 0}, {3, 32, 0}, {4, 128, 0}};
    for (int si = 0; si < 3; si++) {
        const qf_spec *s = &specs[si];
        char name[96];
        snprintf(name, sizeof name, "awq: scale search int%d g%d (q+k sharing X, outliers ×20)", s->bits, s->group);
        TEST_CASE(name) {
            awq_scale_result res;
            intact_error err = {0};
            CHECK(awq_search_scale(s, (const float *const *)W, n_out, 2, n_in, X, nt, mean, scales, &res, pool, &err) == 0,
                  "%s", err.msg);
            printf("  alpha %.2f: loss %.4g vs alpha 0 (RTN) %.4g (ratio %.3f)\n", res.alpha, res.loss[res.best],
                   res.loss[0], res.loss[res.best] / res.loss[0]);
            CHECK(res.alpha >= 0 && res.alpha < 1, "alpha %g", res.alpha);
            for (int i = 0; i < AWQ_N_GRID; i++) CHECK(res.loss[res.best] <= res.loss[i], "not the min at %d", i);
            if (s->bits == 3) CHECK(res.loss[res.best] < res.loss[0], "no gain over RTN at 3 bits");
            // loss[0] is plain RTN, measured independently.
            double e = 0;
            for (int k = 0; k < 2; k++) {
                float *Wd = malloc((size_t)(n_out[k] * n_in) * sizeof(float));
                uint8_t *p = malloc((size_t)n_out[k] * (size_t)(n_in / s->group) * qf_block_bytes(s));
                rtn_quantize_matrix(s, W[k], n_out[k], n_in, 0, p, Wd, NULL, NULL);
                e += out_err(W[k], Wd, n_out[k], n_in, X, nt);
                free(Wd), free(p);
            }
            e /= (double)nt * (double)(n_out[0] + n_out[1]);
            CHECK(fabs(e - res.loss[0]) <= 1e-4 * e, "rtn loss %g vs awq loss[0] %g", e, res.loss[0]);
            // The scales are the reference's normalization: max·min = 1.
            float mx = 0, mn = INFINITY;
            for (int64_t j = 0; j < n_in; j++) mx = fmaxf(mx, scales[j]), mn = fminf(mn, scales[j]);
            CHECK_NEAR(mx * mn, 1.0, 1e-4);
        }
        snprintf(name, sizeof name, "awq: clip search int%d g%d never increases the loss", s->bits, s->group);
        TEST_CASE(name) {
            // As the reference: clip the scaled weights W·s against the scaled inputs X/s.
            const int64_t no = n_out[0], ng = n_in / s->group, G = s->group;
            float *Ws = malloc((size_t)(no * n_in) * sizeof(float)), *Xs = malloc((size_t)(nt * n_in) * sizeof(float));
            float *clips = malloc((size_t)(no * ng) * sizeof(float));
            float *Wq1 = malloc((size_t)(no * n_in) * sizeof(float)), *Wqc = malloc((size_t)(no * n_in) * sizeof(float));
            uint8_t *p = malloc((size_t)(no * ng) * qf_block_bytes(s));
            for (int64_t i = 0; i < no * n_in; i++) Ws[i] = W[0][i] * scales[i % n_in];
            for (int64_t i = 0; i < nt * n_in; i++) Xs[i] = X[i] / scales[i % n_in];
            intact_error err = {0};
            CHECK(awq_search_clip(s, Ws, no, n_in, Xs, nt, clips, pool, &err) == 0, "%s", err.msg);
            CHECK(awq_quantize_matrix(s, Ws, no, n_in, NULL, p, Wq1, pool, &err) == 0, "%s", err.msg);
            CHECK(awq_quantize_matrix(s, Ws, no, n_in, clips, p, Wqc, pool, &err) == 0, "%s", err.msg);
            // The searched objective, per (row, group): Σ_t (x_g·δ_g)².
            double obj1 = 0, objc = 0;
            int n_clipped = 0, bad = 0;
            for (int64_t r = 0; r < no; r++)
                for (int64_t gg = 0; gg < ng; gg++) {
                    double o1 = 0, oc = 0;
                    for (int64_t t = 0; t < nt; t++) {
                        double y1 = 0, yc = 0;
                        for (int64_t j = gg * G; j < (gg + 1) * G; j++) {
                            y1 += ((double)Wq1[r * n_in + j] - Ws[r * n_in + j]) * Xs[t * n_in + j];
                            yc += ((double)Wqc[r * n_in + j] - Ws[r * n_in + j]) * Xs[t * n_in + j];
                        }
                        o1 += y1 * y1, oc += yc * yc;
                    }
                    if (oc > o1 * (1 + 1e-9)) bad++;
                    obj1 += o1, objc += oc;
                    float c = clips[r * ng + gg];
                    if (c < 1) n_clipped++;
                    if (!(c <= 1 && c >= 0.55f - 1e-6f)) bad++;
                }
            double full1 = out_err(Ws, Wq1, no, n_in, Xs, nt), fullc = out_err(Ws, Wqc, no, n_in, Xs, nt);
            printf("  %d/%lld groups clipped; group objective %.4g -> %.4g; layer output err %.4g -> %.4g\n", n_clipped,
                   (long long)(no * ng), obj1, objc, full1, fullc);
            CHECK(bad == 0, "%d groups got worse or out-of-range clips", bad);
            CHECK(objc <= obj1, "%g vs %g", objc, obj1);
            free(Ws), free(Xs), free(clips), free(Wq1), free(Wqc), free(p);
        }
    }
    free(X), free(W[0]), free(W[1]), free(mean), free(scales);
}

static void test_rtn_clip(it_pool *pool) {
    static const qf_spec specs[] = {{3, 32, 0}, {4, 128, 1}, {2, 64, 0}, {8, 32, 1}};
    lcg g = {555};
    for (int si = 0; si < 4; si++) {
        const qf_spec *s = &specs[si];
        char name[96];
        snprintf(name, sizeof name, "rtn: clip search int%d g%d%s", s->bits, s->group, s->sym ? "_sym" : "");
        TEST_CASE(name) {
            float w[128], out[128];
            int bad = 0, n_clipped = 0;
            for (int trial = 0; trial < 200; trial++) {
                for (int i = 0; i < s->group; i++) w[i] = lcg_gauss(&g) * (lcg_next(&g, 20) == 0 ? 6.0f : 1.0f);
                float c = rtn_search_clip_group(s, w, RTN_CLIP_GRID);
                double e1 = rtn_fake_quant_group(s, w, 1.0f, out), ec = rtn_fake_quant_group(s, w, c, out);
                if (!(c <= 1.0f && c >= 0.5f - 1e-6f) || ec > e1) bad++;
                n_clipped += c < 1.0f;
            }
            CHECK(bad == 0, "%d bad groups", bad);
            // Whole matrix: clip search never raises the MSE, and the returned weights decode the blocks.
            const int64_t n_out = 16, n_in = 256;
            float *W = malloc((size_t)(n_out * n_in) * sizeof(float)), *W1 = malloc((size_t)(n_out * n_in) * sizeof(float));
            float *Wc = malloc((size_t)(n_out * n_in) * sizeof(float)), *row = malloc((size_t)n_in * sizeof(float));
            size_t rb = (size_t)(n_in / s->group) * qf_block_bytes(s);
            uint8_t *p = malloc((size_t)n_out * rb);
            for (int64_t i = 0; i < n_out * n_in; i++) W[i] = lcg_gauss(&g);
            CHECK(rtn_quantize_matrix(s, W, n_out, n_in, 0, p, W1, pool, NULL) == 0, "rtn");
            CHECK(rtn_quantize_matrix(s, W, n_out, n_in, 1, p, Wc, pool, NULL) == 0, "rtn clip");
            double m1 = 0, mc = 0;
            int same = 1;
            for (int64_t r = 0; r < n_out; r++) {
                qf_dequantize_row(s, p + r * rb, row, n_in);
                if (memcmp(row, Wc + r * n_in, (size_t)n_in * sizeof(float))) same = 0;
            }
            for (int64_t i = 0; i < n_out * n_in; i++) {
                m1 += (W[i] - W1[i]) * (double)(W[i] - W1[i]);
                mc += (W[i] - Wc[i]) * (double)(W[i] - Wc[i]);
            }
            printf("  %d/200 groups clipped; matrix MSE %.4g -> %.4g\n", n_clipped, m1 / (n_out * n_in), mc / (n_out * n_in));
            CHECK(mc <= m1, "%g vs %g", mc, m1);
            CHECK(same, "W_dequant_out differs from the packed blocks");
            free(W), free(W1), free(Wc), free(row), free(p);
        }
    }
}

// Calibration windows (quant_run_begin): with [BOS] first (the default) every window is BOS + a
// contiguous slice of the tokenized text; with calib_no_bos (the references' random slices) every
// window is a contiguous slice of len tokens. Checked against the text tokenized by the public API.
static int is_slice(const int32_t *w, int len, const int32_t *all, int n) {
    for (int st = 0; st + len <= n; st++)
        if (!memcmp(w, all + st, (size_t)len * sizeof *w)) return 1;
    return 0;
}

static void test_calib_windows(void) {
    char mp[512], tp[512], cp[512];
    th_shared("models/stories260K.bin", mp, sizeof mp);
    th_shared("models/tok512.bin", tp, sizeof tp);
    th_shared("data/calib-en.txt", cp, sizeof cp);
    for (int no_bos = 0; no_bos < 2; no_bos++)
        TEST_CASE(no_bos ? "calib_no_bos windows are plain contiguous slices of the text"
                         : "default calibration windows are [BOS] + a contiguous slice of the text") {
            SKIP_UNLESS(cp);
            intact_error err;
            intact_model *m = intact_model_load(mp, tp, &err);
            FILE *f = fopen(cp, "rb");
            CHECK(m && f, "model or calibration text missing");
            if (!m || !f) { if (f) fclose(f); intact_model_free(m); break; }
            static char text[200000];
            size_t tl = fread(text, 1, sizeof text - 1, f);
            fclose(f);
            intact_quant_params p = intact_quant_default_params();
            p.method = "gptq";
            p.calib_text = text;
            p.calib_len = tl;
            p.calib_samples = 6;
            p.calib_tokens = 64;
            p.calib_no_bos = no_bos;
            quant_run q;
            memset(&q, 0, sizeof q);
            q.m = m, q.p = &p, q.err = &err, q.method = QM_GPTQ;
            CHECK(quant_run_begin(&q) == 0, "begin: %s", err.msg);
            int n = intact_tokenize(m, text, tl, 0, NULL, 0, &err);
            int32_t *all = malloc((size_t)n * sizeof *all);
            intact_tokenize(m, text, tl, 0, all, n, &err);
            int bos_first = 0, slices = 0;
            for (int i = 0; q.samples && i < q.n_samples; i++) {
                const int32_t *w = q.samples + (size_t)i * q.sample_len;
                bos_first += w[0] == 1;
                slices += no_bos ? is_slice(w, q.sample_len, all, n) : is_slice(w + 1, q.sample_len - 1, all, n);
            }
            CHECK(q.n_samples == 6 && q.sample_len == 64, "%d windows of %d", q.n_samples, q.sample_len);
            CHECK(bos_first == (no_bos ? 0 : 6), "%d of 6 windows start with BOS", bos_first);
            CHECK(slices == 6, "%d of 6 windows are slices of the text", slices);
            free(all);
            quant_run_end(&q);
            intact_model_free(m);
        }
}

int main(void) {
    test_calib_windows();
    it_pool *pool = it_pool_new(4);
    test_gptq_vs_rtn(pool);
    test_gptq_golden(pool);
    test_cholesky(pool);
    test_awq(pool);
    test_rtn_clip(pool);
    it_pool_free(pool);
    return th_finish(__FILE__);
}
