// Matmul kernels: every SIMD variant the CPU supports against the double-accumulating scalar
// reference, over odd shapes, sub-ranges, strides, misaligned weights and threaded dispatch; plus
// hand-computed cases and exhaustive checks of the fp16/bf16 conversions in core/fp16.h. And
// RMSNorm and SwiGLU (kernels/ops.h): both kernels of each against hand values and a double-precision
// reference.
#include "harness.h"

#include <math.h>
#include <stdint.h>

#include "core/fp16.h"
#include "core/pool.h"
#include "formats/fmt_kernels.h"
#include "formats/formats.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd_u32(void) { // xorshift64*
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return (uint32_t)((g_rng * 0x2545f4914f6cdd1dull) >> 32);
}
static float rnd_f(void) { return (float)((double)rnd_u32() / 4294967296.0 * 2.0 - 1.0); }
static int rnd_int(int n) { return (int)(rnd_u32() % (unsigned)n); }

static const int k_types[] = {IT_TYPE_F32,  IT_TYPE_F16,  IT_TYPE_BF16, IT_TYPE_Q8_0, IT_TYPE_Q4_0,
                              IT_TYPE_Q4_1, IT_TYPE_Q5_0, IT_TYPE_Q5_1, IT_TYPE_Q2_K, IT_TYPE_Q3_K,
                              IT_TYPE_Q4_K, IT_TYPE_Q5_K, IT_TYPE_Q6_K, IT_TYPE_Q8_K};
enum { N_TYPES = sizeof k_types / sizeof k_types[0] };

// ggml's other block types: random bytes, then each block's fp16 scale fields (their byte offsets
// in the block, -1 ends the list) set to a finite value in [0.001, 0.041]; Q8_K's fp32 d likewise.
static void random_ggml_block(int type, unsigned char *blk, size_t bytes) {
    static const struct { int type, off[3]; } k_f16[] = {
        {IT_TYPE_Q4_0, {0, -1}},  {IT_TYPE_Q4_1, {0, 2, -1}}, {IT_TYPE_Q5_0, {0, -1}},
        {IT_TYPE_Q5_1, {0, 2, -1}}, {IT_TYPE_Q2_K, {80, 82, -1}}, {IT_TYPE_Q3_K, {108, -1}},
        {IT_TYPE_Q4_K, {0, 2, -1}}, {IT_TYPE_Q5_K, {0, 2, -1}}, {IT_TYPE_Q6_K, {208, -1}}};
    for (size_t i = 0; i < bytes; i++) blk[i] = (unsigned char)rnd_u32();
    if (type == IT_TYPE_Q8_K) {
        float d = 0.001f + 0.02f * (rnd_f() + 1.0f);
        memcpy(blk, &d, 4);
        return;
    }
    for (size_t t = 0; t < sizeof k_f16 / sizeof k_f16[0]; t++)
        for (int k = 0; k_f16[t].type == type && k < 3 && k_f16[t].off[k] >= 0; k++) {
            uint16_t h = it_f32_to_fp16(0.001f + 0.02f * (rnd_f() + 1.0f));
            memcpy(blk + k_f16[t].off[k], &h, 2);
        }
}
static const char *k_isas[] = {"avx2", "avx512"};

// A weight matrix placed at an awkward offset: fp32 at 28 bytes past a 64-byte boundary (as in a
// llama2.c file), 16-bit types and Q8_0 at 2 bytes past it, so no vector load is ever aligned.
typedef struct {
    void *alloc;
    char *data;
    size_t row_bytes;
    float *deq; // the weights as fp32, for the error bound
} wmat;

static wmat make_weights(int type, int64_t rows, int64_t n_in) {
    wmat m;
    m.row_bytes = fmt_row_bytes(type, n_in);
    size_t off = type == IT_TYPE_F32 ? 28 : 2;
    m.alloc = malloc((size_t)rows * m.row_bytes + 128);
    m.data = (char *)(((uintptr_t)m.alloc + 63) & ~(uintptr_t)63) + off;
    m.deq = malloc((size_t)(rows * n_in) * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        char *row = m.data + (size_t)r * m.row_bytes;
        const fmt_traits *tr = fmt_get(type);
        if (type != IT_TYPE_Q8_0 && tr->block_size > 1) {
            for (int64_t b = 0; b < n_in / tr->block_size; b++)
                random_ggml_block(type, (unsigned char *)row + b * tr->block_bytes, tr->block_bytes);
        } else if (type == IT_TYPE_Q8_0) {
            for (int64_t b = 0; b < n_in / IT_QK8_0; b++) {
                it_block_q8_0 blk;
                blk.d = it_f32_to_fp16(0.001f + 0.02f * (rnd_f() + 1.0f));
                for (int j = 0; j < IT_QK8_0; j++) blk.qs[j] = (int8_t)(rnd_int(255) - 127);
                memcpy(row + b * sizeof blk, &blk, sizeof blk);
            }
        } else {
            for (int64_t i = 0; i < n_in; i++) {
                float v = rnd_f();
                if (type == IT_TYPE_F32) {
                    memcpy(row + i * 4, &v, 4);
                } else {
                    uint16_t h = type == IT_TYPE_F16 ? it_f32_to_fp16(v) : it_f32_to_bf16(v);
                    memcpy(row + i * 2, &h, 2);
                }
            }
        }
        fmt_get(type)->to_float(row, m.deq + r * n_in, n_in);
    }
    return m;
}

static void free_weights(wmat *m) {
    free(m->alloc);
    free(m->deq);
}

static const float k_sentinel = -1234.5f;
static double g_worst_ratio; // largest |err| / tolerance seen, to show the margin

// Runs fn over rows [r0, r1) and all nt tokens with strides ldx, ldy and checks every output
// against the reference and every other Y element against the sentinel. Returns 1 if all good.
static int check_once(int type, it_matmul_fn fn, const wmat *w, int64_t n_in,
                      int64_t nt, int64_t ldx, int64_t ldy, int64_t r0, int64_t r1,
                      const char *what) {
    float *x = malloc((size_t)(nt * ldx) * sizeof(float));
    float *y = malloc((size_t)(nt * ldy) * sizeof(float));
    float *yr = malloc((size_t)(nt * ldy) * sizeof(float));
    for (int64_t i = 0; i < nt * ldx; i++) x[i] = rnd_f();
    for (int64_t i = 0; i < nt * ldy; i++) y[i] = yr[i] = k_sentinel;
    fn(w->data, w->row_bytes, n_in, x, ldx, nt, y, ldy, r0, r1);
    fmt_get(type)->matmul[IT_ISA_REF](w->data, w->row_bytes, n_in, x, ldx, nt, yr, ldy, r0, r1);
    int ok = 1;
    for (int64_t t = 0; t < nt && ok; t++) {
        for (int64_t r = 0; r < ldy && ok; r++) {
            float got = y[t * ldy + r], want = yr[t * ldy + r];
            if (r < r0 || r >= r1) {
                if (got != k_sentinel) {
                    CHECK(got == k_sentinel, "%s: wrote outside rows: t=%lld r=%lld (rows [%lld,%lld))",
                          what, (long long)t, (long long)r, (long long)r0, (long long)r1);
                    ok = 0;
                }
                continue;
            }
            double mag = 0;
            for (int64_t i = 0; i < n_in; i++)
                mag += fabs((double)w->deq[r * n_in + i] * x[t * ldx + i]);
            double tol = 1e-5 * mag + 1e-6, err = fabs((double)got - want);
            if (err / tol > g_worst_ratio) g_worst_ratio = err / tol;
            if (!(err <= tol)) {
                CHECK(err <= tol, "%s: n_in=%lld nt=%lld t=%lld r=%lld: %.9g vs %.9g (tol %g)", what,
                      (long long)n_in, (long long)nt, (long long)t, (long long)r, got, want, tol);
                ok = 0;
            }
        }
    }
    free(x);
    free(y);
    free(yr);
    return ok;
}

// All shapes for one type and kernel: full range with tight strides, then a random sub-range with
// padded strides.
static void test_shapes(int type, const char *isa, it_matmul_fn fn) {
    static const int64_t n_float[] = {1, 7, 8, 16, 33, 64, 172, 256, 1000};
    static const int64_t n_q8[] = {32, 64, 96, 352, 2048, 4096};
    static const int64_t rows_list[] = {1, 3, 16, 17, 64};
    // 40 and 77 reach the packed GEMM paths (with partial token tiles); with n_in = 4096, 20 (and
    // 40 for AVX2) make the tile path split the tokens into chunks.
    static const int64_t nt_list[] = {1, 2, 3, 4, 5, 8, 13, 20, 40, 77};
    static const int64_t n_qk[] = {256, 512, 2048};
    int bs = fmt_get(type)->block_size;
    const int64_t *ns = bs == 32 ? n_q8 : bs == 256 ? n_qk : n_float;
    int n_ns = bs == 32 ? 6 : bs == 256 ? 3 : 9;
    if (!fn) return;   // no kernel for this ISA: the selector uses the reference
    char name[96];
    for (int a = 0; a < n_ns; a++) {
        int64_t n_in = ns[a];
        snprintf(name, sizeof name, "%s %s n_in=%lld", fmt_get(type)->name, isa, (long long)n_in);
        TEST_CASE(name) {
            int ok = 1;
            for (int b = 0; b < 5 && ok; b++) {
                int64_t rows = rows_list[b];
                wmat w = make_weights(type, rows, n_in);
                for (int c = 0; c < 10 && ok; c++) {
                    int64_t nt = nt_list[c];
                    ok = check_once(type, fn, &w, n_in, nt, n_in, rows, 0, rows, "full");
                    int64_t r0 = rnd_int((int)rows), r1 = r0 + 1 + rnd_int((int)(rows - r0));
                    if (ok)
                        ok = check_once(type, fn, &w, n_in, nt, n_in + 1 + rnd_int(20),
                                        rows + 1 + rnd_int(5), r0, r1, "sub-range+strides");
                }
                free_weights(&w);
            }
        }
    }
}

// Each 16-bit pattern, repeated over a 16-weight row and multiplied by ones, must give exactly 16x
// the scalar conversion: pins the F16C / shift conversions of the SIMD kernels to core/fp16.h for
// every value, subnormals, infinities and NaNs included.
static void test_all_patterns(int type, const char *isa, it_matmul_fn fn) {
    char name[96];
    snprintf(name, sizeof name, "%s %s all 65536 bit patterns", fmt_get(type)->name, isa);
    TEST_CASE(name) {
        enum { N = 16 };
        uint16_t *w = malloc(65536 * N * sizeof(uint16_t));
        float x[N], *y = malloc(65536 * sizeof(float)), *yr = malloc(65536 * sizeof(float));
        for (int i = 0; i < N; i++) x[i] = 1.0f;
        for (int h = 0; h < 65536; h++)
            for (int i = 0; i < N; i++) w[h * N + i] = (uint16_t)h;
        fn(w, N * 2, N, x, N, 1, y, 65536, 0, 65536);
        fmt_get(type)->matmul[IT_ISA_REF](w, N * 2, N, x, N, 1, yr, 65536, 0, 65536);
        int bad = 0;
        for (int h = 0; h < 65536 && bad < 5; h++) {
            int same = (isnan(y[h]) && isnan(yr[h])) || y[h] == yr[h];
            if (!same) {
                CHECK(same, "pattern 0x%04x: %.9g vs %.9g", h, y[h], yr[h]);
                bad++;
            }
        }
        free(w);
        free(y);
        free(yr);
    }
}

// W = [[1,2,3],[4,5,6]], x0 = [1,-1,2] -> [5, 11], x1 = [0,1,0] -> [2, 5]; exact in any order.
static void test_hand_computed(const char *isa, it_matmul_fn fn) {
    char name[64];
    snprintf(name, sizeof name, "f32 %s 2x3 by hand", isa);
    TEST_CASE(name) {
        float w[6] = {1, 2, 3, 4, 5, 6}, x[6] = {1, -1, 2, 0, 1, 0}, y[4] = {0};
        fn(w, 3 * sizeof(float), 3, x, 3, 1, y, 2, 0, 2);
        CHECK(y[0] == 5 && y[1] == 11, "decode: %g %g", y[0], y[1]);
        fn(w, 3 * sizeof(float), 3, x, 3, 2, y, 2, 0, 2);
        CHECK(y[0] == 5 && y[1] == 11 && y[2] == 2 && y[3] == 5, "prefill: %g %g %g %g", y[0], y[1],
              y[2], y[3]);
    }
}

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static void test_fp16_conversions(void) {
    TEST_CASE("fp16 known bit patterns") {
        CHECK(it_fp16_to_f32(0x3c00) == 1.0f, "0x3c00");
        CHECK(it_fp16_to_f32(0xc000) == -2.0f, "0xc000");
        CHECK(it_fp16_to_f32(0x7bff) == 65504.0f, "0x7bff");
        CHECK(it_fp16_to_f32(0x0001) == ldexpf(1, -24), "0x0001");
        CHECK(it_fp16_to_f32(0x03ff) == ldexpf(1023, -24), "0x03ff");
        CHECK(it_fp16_to_f32(0x0400) == ldexpf(1, -14), "0x0400");
        CHECK(isinf(it_fp16_to_f32(0x7c00)) && it_fp16_to_f32(0x7c00) > 0, "0x7c00");
        CHECK(isinf(it_fp16_to_f32(0xfc00)) && it_fp16_to_f32(0xfc00) < 0, "0xfc00");
        CHECK(isnan(it_fp16_to_f32(0x7e00)), "0x7e00");
        CHECK(f2u(it_fp16_to_f32(0x8000)) == 0x80000000u, "-0");
    }
    TEST_CASE("fp16 rounding (ties to even, overflow, subnormals)") {
        CHECK(it_f32_to_fp16(1.0f + ldexpf(1, -11)) == 0x3c00, "1+2^-11");
        CHECK(it_f32_to_fp16(1.0f + 3 * ldexpf(1, -11)) == 0x3c02, "1+3*2^-11");
        CHECK(it_f32_to_fp16(65504.0f) == 0x7bff, "65504");
        CHECK(it_f32_to_fp16(65519.996f) == 0x7bff, "65519.996");
        CHECK(it_f32_to_fp16(65520.0f) == 0x7c00, "65520");
        CHECK(it_f32_to_fp16(-1e10f) == 0xfc00, "-1e10");
        CHECK(it_f32_to_fp16(ldexpf(1, -25)) == 0x0000, "2^-25");
        CHECK(it_f32_to_fp16(1.5f * ldexpf(1, -25)) == 0x0001, "1.5*2^-25");
        CHECK(it_f32_to_fp16(-1.5f * ldexpf(1, -25)) == 0x8001, "-1.5*2^-25");
        CHECK(it_f32_to_fp16(3 * ldexpf(1, -25)) == 0x0002, "3*2^-25");
        CHECK(it_f32_to_fp16(ldexpf(1, -14) - ldexpf(1, -26)) == 0x0400, "just under min normal");
        CHECK(it_f32_to_fp16(u2f(0x7f800000u)) == 0x7c00, "inf");
        uint16_t nan = it_f32_to_fp16(u2f(0x7fc00000u));
        CHECK((nan & 0x7c00) == 0x7c00 && (nan & 0x3ff), "nan -> 0x%04x", nan);
    }
    TEST_CASE("fp16 exhaustive round trip and midpoints") {
        int bad = 0;
        for (uint32_t h = 0; h < 0x7c00 && bad < 5; h++) {
            for (int s = 0; s < 2; s++) {
                uint16_t hs = (uint16_t)(h | (s ? 0x8000 : 0));
                float f = it_fp16_to_f32(hs);
                if (it_f32_to_fp16(f) != hs) {
                    CHECK(0, "round trip 0x%04x -> %g -> 0x%04x", hs, f, it_f32_to_fp16(f));
                    bad++;
                }
                // The midpoint to the next half (exact in fp32) rounds to the even one; a hair
                // either side rounds to the nearer one. 0x7bff's upper neighbour is inf.
                float g = h + 1 == 0x7c00 ? 65536.0f : it_fp16_to_f32((uint16_t)(h + 1));
                if (s) g = -g;
                float mid = (f + g) / 2;
                uint16_t even = (h & 1) ? (uint16_t)(hs + 1) : hs;
                uint16_t up = it_f32_to_fp16(nextafterf(mid, g)), dn = it_f32_to_fp16(nextafterf(mid, f));
                if (it_f32_to_fp16(mid) != even || up != (uint16_t)(hs + 1) || dn != hs) {
                    CHECK(0, "midpoint after 0x%04x: got 0x%04x/0x%04x/0x%04x", hs,
                          it_f32_to_fp16(mid), up, dn);
                    bad++;
                }
            }
        }
    }
    TEST_CASE("bf16 conversions and rounding") {
        CHECK(it_bf16_to_f32(0x3f80) == 1.0f, "0x3f80");
        CHECK(it_bf16_to_f32(0xc000) == -2.0f, "0xc000");
        CHECK(it_f32_to_bf16(1.0f + ldexpf(1, -8)) == 0x3f80, "1+2^-8 tie -> even");
        CHECK(it_f32_to_bf16(1.0f + 3 * ldexpf(1, -8)) == 0x3f82, "1+3*2^-8 tie -> even");
        CHECK(it_f32_to_bf16(1.0f + ldexpf(1, -8) + ldexpf(1, -20)) == 0x3f81, "above tie");
        CHECK(it_f32_to_bf16(1.0f + ldexpf(1, -8) - ldexpf(1, -20)) == 0x3f80, "below tie");
        CHECK(it_f32_to_bf16(u2f(0x7f7fffffu)) == 0x7f80, "FLT_MAX rounds to inf");
        CHECK(it_f32_to_bf16(u2f(0xff800000u)) == 0xff80, "-inf");
        CHECK(it_f32_to_bf16(u2f(0x00000001u)) == 0x0000, "tiny subnormal");
        uint16_t nan = it_f32_to_bf16(u2f(0x7f800001u));
        CHECK((nan & 0x7f80) == 0x7f80 && (nan & 0x7f), "signalling nan stays nan: 0x%04x", nan);
        int bad = 0;
        for (uint32_t h = 0; h < 0x10000 && bad < 5; h++) {
            if ((h & 0x7f80) == 0x7f80 && (h & 0x7f)) continue; // NaN
            if (it_f32_to_bf16(it_bf16_to_f32((uint16_t)h)) != h) {
                CHECK(0, "bf16 round trip 0x%04x", h);
                bad++;
            }
        }
    }
}

// kern_matmul through the pool: rows split across threads must cover every row exactly once.
static void test_threaded(void) {
    static const int64_t outs[] = {1, 17, 100, 333};
    for (int nth = 2; nth <= 3; nth++) {
        it_pool *pool = it_pool_new(nth);
        for (int ti = 0; ti < N_TYPES; ti++) {
            int type = k_types[ti];
            char name[64];
            snprintf(name, sizeof name, "kern_matmul %s %d threads", fmt_get(type)->name, nth);
            TEST_CASE(name) {
                CHECK(pool != NULL, "pool");
                for (int a = 0; a < 4 && pool; a++) {
                    int64_t n_out = outs[a], n_in = fmt_get(type)->block_size == 32 ? 96
                                                 : fmt_get(type)->block_size == 256 ? 512 : 172;
                    wmat w = make_weights(type, n_out, n_in);
                    it_tensor t = {"w", type, 2, {n_in, n_out, 1, 1}, w.data,
                                   (size_t)n_out * w.row_bytes};
                    for (int64_t nt = 1; nt <= 7; nt += 6) {
                        float *x = malloc((size_t)(nt * n_in) * sizeof(float));
                        float *y = malloc((size_t)(nt * n_out) * sizeof(float));
                        float *yr = malloc((size_t)(nt * n_out) * sizeof(float));
                        for (int64_t i = 0; i < nt * n_in; i++) x[i] = rnd_f();
                        for (int64_t i = 0; i < nt * n_out; i++) y[i] = k_sentinel;
                        kern_matmul(pool, &t, x, nt, y);
                        fmt_get(type)->matmul[IT_ISA_REF](w.data, w.row_bytes, n_in, x, n_in, nt, yr,
                                                      n_out, 0, n_out);
                        int bad = 0;
                        for (int64_t i = 0; i < nt * n_out && bad < 3; i++) {
                            double tol = 1e-4 * (fabs(yr[i]) + 1.0);
                            if (!(fabs((double)y[i] - yr[i]) <= tol)) {
                                CHECK(0, "n_out=%lld nt=%lld i=%lld: %g vs %g", (long long)n_out,
                                      (long long)nt, (long long)i, y[i], yr[i]);
                                bad++;
                            }
                        }
                        free(x);
                        free(y);
                        free(yr);
                    }
                    free_weights(&w);
                }
            }
        }
        it_pool_free(pool);
    }
}

// silu(g) * u in double: g / (1 + exp(-g)) * u.
static double swiglu_d(double g, double u) { return g / (1.0 + exp(-g)) * u; }

// |got - want| within rel of |want|, or below 1e-30 (values under ~1e-38 flush to 0 in the AVX2 exp).
static int swiglu_close(float got, double want, double rel) {
    return fabs((double)got - want) <= rel * fabs(want) || fabs((double)got - want) < 1e-30;
}

typedef void (*swiglu_fn)(float *, const float *, size_t);

static void test_swiglu(void) {
    swiglu_fn fns[2] = {kern_swiglu_ref, it_cpu_has_avx2() ? kern_swiglu_avx2 : NULL};
    const char *names[2] = {"ref", "avx2"};
    for (int f = 0; f < 2; f++) {
        if (!fns[f]) {
            printf("(skipping swiglu avx2: not supported here)\n");
            continue;
        }
        char name[64];
        snprintf(name, sizeof name, "swiglu %s: hand values, extremes, a double reference", names[f]);
        TEST_CASE(name) {
            // By hand: silu(1) = 1 / (1 + e^-1) = 0.7310585786300049; silu(-1) = -0.2689414213699951;
            // silu(20) = 20 / (1 + 2.061153622438558e-9) = 19.999999958776925;
            // silu(-20) = -20 / (1 + 4.851651954097903e8) = -4.122307e-8.
            float g[11] = {0.0f, 1.0f, -1.0f, 20.0f, -20.0f, 1.0f, -1000.0f, 1000.0f, INFINITY, NAN, -0.0f};
            const float u[11] = {5.0f, 2.0f, 1.0f, 1.0f, 1.0f, -3.0f, 1.0f, 0.5f, 1.0f, 1.0f, 1.0f};
            const double want[6] = {0.0, 1.4621171572600098, -0.2689414213699951, 19.999999958776925,
                                    -4.1223072448771159e-8, -2.1931757358900147};
            fns[f](g, u, 11);
            for (int i = 0; i < 6; i++) CHECK(swiglu_close(g[i], want[i], 3e-7), "%d: %.9g, want %.17g", i, g[i], want[i]);
            CHECK(g[6] == 0.0f && signbit(g[6]), "silu(-1000) = -0, got %g", g[6]);   // -1000 / (1 + inf)
            CHECK(g[7] == 500.0f, "silu(1000) * 0.5 = 500, got %g", g[7]);
            CHECK(isinf(g[8]) && g[8] > 0, "silu(inf) = inf, got %g", g[8]);
            CHECK(isnan(g[9]), "NaN stays NaN, got %g", g[9]);
            CHECK(g[10] == 0.0f, "silu(-0) = 0, got %g", g[10]);
            // Random values, n = 1003 (the last 3 past the 8-lane blocks).
            enum { N = 1003 };
            static float x[N], y[N], v[N];
            double worst = 0;
            for (int i = 0; i < N; i++) {
                x[i] = 30.0f * rnd_f();
                v[i] = 2.0f * rnd_f();
                y[i] = x[i];
            }
            fns[f](y, v, N);
            for (int i = 0; i < N; i++) {
                double w = swiglu_d(x[i], v[i]), e = fabs(y[i] - w) / (fabs(w) + 1e-30);
                if (e > worst) worst = e;
            }
            CHECK(worst <= 6e-7, "worst relative error %.3g", worst);
        }
    }
    if (!fns[1]) return;
    TEST_CASE("swiglu avx2 is lane-wise; kern_swiglu picks it, or the reference under force_ref") {
        // The same values at offsets 0 and 3 (other lanes, some in the masked tail): the same bits.
        enum { N = 77 };
        float a[N], b[N + 3], u[N], ub[N + 3], r[N], d[N];
        for (int i = 0; i < N; i++) {
            a[i] = b[i + 3] = r[i] = d[i] = 12.0f * rnd_f();
            u[i] = ub[i + 3] = rnd_f();
        }
        kern_swiglu_avx2(a, u, N);
        kern_swiglu_avx2(b + 3, ub + 3, N);
        CHECK(memcmp(a, b + 3, sizeof a) == 0, "offset 3 changed a result");
        kern_swiglu(d, u, N);
        CHECK(it_cpu_isa() < IT_ISA_AVX2 || memcmp(a, d, sizeof a) == 0, "kern_swiglu is not the avx2 kernel");
        float e[N];
        memcpy(e, r, sizeof e);
        it_cpu_force_ref(1);
        kern_swiglu(r, u, N);
        it_cpu_force_ref(0);
        kern_swiglu_ref(e, u, N);
        CHECK(memcmp(r, e, sizeof e) == 0, "forced ref: kern_swiglu is not the reference");
    }
}

typedef void (*rmsnorm_fn)(const float *, const float *, int, int, float, float *);

static void test_rmsnorm(void) {
    rmsnorm_fn fns[2] = {kern_rmsnorm_ref, it_cpu_has_avx2() ? kern_rmsnorm_avx2 : NULL};
    const char *names[2] = {"ref", "avx2"};
    for (int f = 0; f < 2; f++) {
        if (!fns[f]) continue;
        char name[64];
        snprintf(name, sizeof name, "rmsnorm %s: by hand, odd widths, a double reference", names[f]);
        TEST_CASE(name) {
            // By hand: x = (3, 4), eps = 0: mean(x^2) = 12.5, 1/sqrt(12.5) = 0.28284271; w = (1, 2):
            // out = (0.84852814, 2.2627417). A second row (0, 0) with eps 1: out 0.
            const float x[4] = {3, 4, 0, 0}, w[2] = {1, 2};
            float o[4];
            fns[f](x, w, 1, 2, 0.0f, o);
            CHECK(fabsf(o[0] - 0.84852814f) < 1e-6f && fabsf(o[1] - 2.2627417f) < 1e-6f, "%.8g %.8g", o[0], o[1]);
            fns[f](x, w, 2, 2, 1.0f, o);
            CHECK(fabsf(o[0] - 3.0f / sqrtf(13.5f)) < 1e-6f && o[2] == 0 && o[3] == 0, "eps 1: %g %g %g", o[0], o[2], o[3]);
            // 3 rows of widths around the 16-wide sum and 8-wide scaling blocks; one large activation
            // (a pivot token's 500) among small ones.
            static const int dims[] = {1, 7, 8, 15, 16, 17, 33, 384, 2051};
            double worst = 0;
            for (int di = 0; di < (int)(sizeof dims / sizeof dims[0]); di++) {
                int d = dims[di];
                static float xs[3 * 2051], ws[2051], os[3 * 2051];
                for (int i = 0; i < 3 * d; i++) xs[i] = rnd_f();
                xs[d / 2] = 500.0f;
                for (int i = 0; i < d; i++) ws[i] = 1.0f + rnd_f();
                fns[f](xs, ws, 3, d, 1e-5f, os);
                for (int t = 0; t < 3; t++) {
                    double ss = 0;
                    for (int i = 0; i < d; i++) ss += (double)xs[t * d + i] * xs[t * d + i];
                    double inv = 1.0 / sqrt(ss / d + 1e-5);
                    for (int i = 0; i < d; i++) {
                        double want = xs[t * d + i] * inv * ws[i], e = fabs(os[t * d + i] - want) / (fabs(want) + 1e-20);
                        if (e > worst) worst = e;
                    }
                }
            }
            CHECK(worst <= 4e-7, "worst relative error %.3g", worst);
        }
    }
    TEST_CASE("kern_rmsnorm picks the avx2 kernel where it may, the reference under force_ref") {
        float x[40], w[20], a[40], b[40];
        for (int i = 0; i < 40; i++) x[i] = 3.0f * rnd_f();
        for (int i = 0; i < 20; i++) w[i] = rnd_f();
        kern_rmsnorm(x, w, 2, 20, 1e-6f, a);
        if (it_cpu_isa() >= IT_ISA_AVX2) kern_rmsnorm_avx2(x, w, 2, 20, 1e-6f, b);
        else kern_rmsnorm_ref(x, w, 2, 20, 1e-6f, b);
        CHECK(memcmp(a, b, sizeof a) == 0, "default dispatch");
        it_cpu_force_ref(1);
        kern_rmsnorm(x, w, 2, 20, 1e-6f, a);
        it_cpu_force_ref(0);
        kern_rmsnorm_ref(x, w, 2, 20, 1e-6f, b);
        CHECK(memcmp(a, b, sizeof a) == 0, "forced ref");
    }
}

int main(void) {
    printf("cpu: avx2=%d avx512=%d\n", it_cpu_has_avx2(), it_cpu_has_avx512());
    test_rmsnorm();
    test_swiglu();
    test_fp16_conversions();
    TEST_CASE("kernel lookup") {
        for (int ti = 0; ti < N_TYPES; ti++) CHECK(fmt_kernel(k_types[ti], "ref") != NULL, "ref");
        CHECK(fmt_kernel(IT_TYPE_F32, "sse9") == NULL, "unknown isa");
        CHECK(fmt_kernel(12345, "ref") == NULL, "unknown type");
        CHECK((fmt_kernel(IT_TYPE_F16, "avx2") != NULL) == it_cpu_has_avx2(), "avx2");
        CHECK((fmt_kernel(IT_TYPE_F16, "avx512") != NULL) == it_cpu_has_avx512(), "512");
        // The table by hand (ggml's geometry), and the selector: the widest kernel it_cpu_isa() allows.
        static const struct { int type, block_size, block_bytes; double bpw; const char *name; } geo[] = {
            {IT_TYPE_F32, 1, 4, 32, "f32"}, {IT_TYPE_F16, 1, 2, 16, "f16"}, {IT_TYPE_BF16, 1, 2, 16, "bf16"},
            {IT_TYPE_Q8_0, 32, 34, 8.5, "q8_0"}, {IT_TYPE_Q4_0, 32, 18, 4.5, "q4_0"},
            {IT_TYPE_Q4_1, 32, 20, 5, "q4_1"}, {IT_TYPE_Q5_0, 32, 22, 5.5, "q5_0"},
            {IT_TYPE_Q5_1, 32, 24, 6, "q5_1"}, {IT_TYPE_Q2_K, 256, 84, 2.625, "q2_K"},
            {IT_TYPE_Q3_K, 256, 110, 3.4375, "q3_K"}, {IT_TYPE_Q4_K, 256, 144, 4.5, "q4_K"},
            {IT_TYPE_Q5_K, 256, 176, 5.5, "q5_K"}, {IT_TYPE_Q6_K, 256, 210, 6.5625, "q6_K"},
            {IT_TYPE_Q8_K, 256, 292, 9.125, "q8_K"}};
        for (int ti = 0; ti < (int)(sizeof geo / sizeof geo[0]); ti++) {
            const fmt_traits *t = fmt_get(geo[ti].type);
            CHECK(t && !strcmp(t->name, geo[ti].name) && t->block_size == geo[ti].block_size &&
                      t->block_bytes == (size_t)geo[ti].block_bytes && t->bits_per_weight == geo[ti].bpw,
                  "%s geometry", geo[ti].name);
            const char *want = it_cpu_isa() == IT_ISA_AVX512 ? "avx512" : it_cpu_isa() == IT_ISA_AVX2 ? "avx2" : "ref";
            it_matmul_fn widest = fmt_kernel(geo[ti].type, want);   // NULL: none for that ISA yet
            if (!widest && !strcmp(want, "avx512")) widest = fmt_kernel(geo[ti].type, "avx2");
            if (!widest) widest = fmt_kernel(geo[ti].type, "ref");
            CHECK(t && fmt_matmul(t) == widest, "%s selector picks %s or the next narrower", geo[ti].name, want);
        }
        CHECK(fmt_get(-1) == NULL && fmt_get(4) == NULL && fmt_get(9) == NULL && fmt_get(16) == NULL &&
                  fmt_get(64) == NULL && fmt_get(1023) == NULL,
              "ids outside the table");
        it_cpu_force_ref(1);
        CHECK(it_cpu_isa() == IT_ISA_REF, "forced isa");
        for (int ti = 0; ti < N_TYPES; ti++)
            CHECK(fmt_matmul(fmt_get(k_types[ti])) == fmt_kernel(k_types[ti], "ref"), "forced ref");
        it_cpu_force_ref(0);
    }
    for (int s = 0; s < 2; s++) {
        const char *isa = k_isas[s];
        if (!fmt_kernel(IT_TYPE_F32, isa)) {
            printf("(skipping %s: not supported here)\n", isa);
            continue;
        }
        test_hand_computed(isa, fmt_kernel(IT_TYPE_F32, isa));
        for (int ti = 0; ti < N_TYPES; ti++) test_shapes(k_types[ti], isa, fmt_kernel(k_types[ti], isa));
        test_all_patterns(IT_TYPE_F16, isa, fmt_kernel(IT_TYPE_F16, isa));
        test_all_patterns(IT_TYPE_BF16, isa, fmt_kernel(IT_TYPE_BF16, isa));
    }
    test_threaded();
    printf("worst error / tolerance: %.3g\n", g_worst_ratio);
    return th_finish("test_kernels");
}
