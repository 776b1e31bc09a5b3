// Decode GEMV with int8 activations (kernels/iqdec.h): the per-block quantizer against hand-computed
// values, its AVX2 loop == the scalar one (memcmp), its layouts and fake twin; the scalar reference
// against an independent double computation over dequantized weights and s*q activations; every
// SIMD kernel bit-identical (memcmp) to the reference for all 24 formats, with partial chunks, odd
// row ranges, 1..7 tokens and extreme codes; the threaded wrapper == the single-thread kernel.
#include "harness.h"

#include <stdint.h>

#include "core/cpu.h"
#include "core/pool.h"
#include "formats/formats.h"
#include "formats/qformat.h"
#include "kernels/iqdec.h"
#include "quant/rtn.h"

static uint64_t g_rng = 0x2545f4914f6cdd1dull;
static uint32_t rnd_u32(void) {
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return (uint32_t)((g_rng * 0x2545f4914f6cdd1dull) >> 32);
}
static float rnd_f(void) { return (float)((double)rnd_u32() / 4294967296.0 * 2.0 - 1.0); }

// "avx512" is this CPU's variant; both vendors' are checked on any CPU that runs them.
static const char *k_isas[] = {"avx2", "avx512", "avx512-intel", "avx512-amd"};
enum { N_ISAS = sizeof k_isas / sizeof *k_isas };

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
    for (int64_t i = 0; i < nt * n_in; i++) x[i] = rnd_f() * ((i * 7) % 13 == 0 ? 3.0f : 1.0f) * (i % 64 < 32 ? 1.0f : 0.01f);
    return x;
}

static void test_quantizer(void) {
    TEST_CASE("dq quantizer: hand-computed block, zero block, layouts, AVX2 == scalar, fake twin") {
        // Block 0: amax 2, s = 2/127, inv = 127/2 = 63.5 (exact products): 2 -> 127, -1 -> -63.5 -> -64
        // and 1 -> 63.5 -> 64 (ties to even), 0.25 -> 15.875 -> 16, -0.5 -> -31.75 -> -32, 1.5 -> 95.25
        // -> 95. Sum 127 - 64 + 16 - 32 + 0 + 95 + 64 = 206. Block 1: all zero -> s 0, q 0.
        float x[128] = {2.0f, -1.0f, 0.25f, -0.5f, 0.0f, 1.5f, 1.0f};
        static const int8_t q0[7] = {127, -64, 16, -32, 0, 95, 64};
        kern_dq a = {0};
        for (int force = 0; force < 2; force++) {
            it_cpu_force_ref(force);
            CHECK(kern_dq_quantize(&a, x, 1, 64) == 0, "quantize");
            CHECK(a.nbp == 16 && a.scale[0] == 2.0f / 127.0f && a.scale[1] == 0.0f, "scale %.9g", (double)a.scale[0]);
            for (int i = 0; i < 64; i++) CHECK(a.q[i] == (i < 7 ? q0[i] : 0), "force %d q[%d] = %d", force, i, a.q[i]);
            CHECK(a.sum[0] == 206 && a.sum[1] == 0, "sums %d %d", a.sum[0], a.sum[1]);
        }
        it_cpu_force_ref(0);
        // Random rows (with NaN/inf-free extremes): the AVX2 loop == the scalar one, byte for byte.
        const int64_t nt = 3, n_in = 1088;   // 34 blocks: padded to 48
        float *xr = make_x(nt, n_in);
        xr[5] = 1e30f, xr[40] = -3e-30f, xr[2000] = 0.0f;
        kern_dq b = {0};
        it_cpu_force_ref(1);
        CHECK(kern_dq_quantize(&b, xr, nt, n_in) == 0, "scalar");
        it_cpu_force_ref(0);
        CHECK(kern_dq_quantize(&a, xr, nt, n_in) == 0, "simd");
        size_t nq = (size_t)(nt * b.nbp * 32), ns = (size_t)(nt * b.nbp);
        CHECK(!memcmp(a.q, b.q, nq) && !memcmp(a.q4, b.q4, nq) && !memcmp(a.q2, b.q2, nq), "bytes");
        CHECK(!memcmp(a.scale, b.scale, ns * 4) && !memcmp(a.sum, b.sum, ns * 4), "scales, sums");
        // Layouts and sums from the definition.
        int bad = 0;
        for (int64_t t = 0; t < nt; t++) {
            const int8_t *q = a.q + t * a.nbp * 32, *q4 = a.q4 + t * a.nbp * 32, *q2 = a.q2 + t * a.nbp * 32;
            for (int64_t i = 0; i < a.nbp * 32; i++) {
                int64_t u = i / 128 * 128, k = i % 128 / 32, j = i % 32;
                if (q4[u + (j < 16 ? 0 : 64) + 16 * k + j % 16] != q[i]) bad++;
                int64_t u2 = i / 256 * 256, k2 = i % 256 / 32, f = i % 32 / 8, jj = i % 8;
                if (q2[u2 + 64 * f + 8 * k2 + jj] != q[i]) bad++;
                if (i >= n_in && q[i]) bad++;
            }
            for (int64_t bl = 0; bl < a.nbp; bl++) {
                int32_t s = 0;
                for (int i = 0; i < 32; i++) s += q[32 * bl + i];
                if (s != a.sum[t * a.nbp + bl]) bad++;
                if (bl < n_in / 32) {
                    float amax = 0;
                    for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(xr[t * n_in + 32 * bl + i]));
                    if (a.scale[t * a.nbp + bl] != amax / 127.0f) bad++;
                }
            }
        }
        CHECK(bad == 0, "%d layout/sum/scale mismatches", bad);
        float *fk = malloc((size_t)(nt * n_in) * sizeof(float));
        kern_dq_fake(xr, nt, n_in, fk);
        bad = 0;
        for (int64_t t = 0; t < nt; t++)
            for (int64_t i = 0; i < n_in; i++)
                if (fk[t * n_in + i] != a.scale[t * a.nbp + i / 32] * (float)a.q[t * a.nbp * 32 + i]) bad++;
        CHECK(bad == 0, "fake twin: %d", bad);
        CHECK(kern_dq_quantize(&a, xr, 1, 48) == -1 && kern_dq_quantize(&a, xr, 0, 64) == -1, "bad args");
        free(fk), free(xr);
        kern_dq_free(&a), kern_dq_free(&b);
    }
}

static void test_ref_vs_double(void) {
    TEST_CASE("dq ref: every format vs double over dequantized weights and s*q activations") {
        const int64_t n_in = 640, n_out = 9, nt = 2;
        float *x = make_x(nt, n_in), *wf = malloc((size_t)n_in * sizeof(float)), y[2 * 9];
        kern_dq a = {0};
        CHECK(kern_dq_quantize(&a, x, nt, n_in) == 0, "quantize");
        for (int bits = 2; bits <= 8; bits = bits == 4 ? 8 : bits + 1)
            for (int g = 32; g <= 128; g *= 2)
                for (int sym = 0; sym < 2; sym++) {
                    qf_spec s = {bits, g, sym};
                    size_t rb;
                    uint8_t *w = make_weights(&s, n_out, n_in, &rb);
                    kern_dq_ref(&s, w, rb, &a, y, n_out, 0, n_out);
                    double worst = 0;
                    for (int64_t r = 0; r < n_out; r++) {
                        qf_dequantize_row(&s, w + (size_t)r * rb, wf, n_in);
                        for (int64_t t = 0; t < nt; t++) {
                            double e = 0, mag = 0;
                            for (int64_t i = 0; i < n_in; i++) {
                                double xv = (double)a.scale[t * a.nbp + i / 32] * a.q[t * a.nbp * 32 + i];
                                e += (double)wf[i] * xv, mag += fabs((double)wf[i] * xv);
                            }
                            double err = fabs(e - y[t * n_out + r]) / (mag + 1e-30);
                            worst = err > worst ? err : worst;
                        }
                    }
                    CHECK(worst < 1e-5, "w%d g%d sym %d: rel err %g", bits, g, sym, worst);
                    free(w);
                }
        free(x), free(wf);
        kern_dq_free(&a);
    }
}

static void test_simd_exact(void) {
    TEST_CASE("dq simd: every format == ref exactly (partial chunks, odd rows, nt 1..7, extremes)") {
        static const int64_t n_ins[] = {128, 384, 512, 1152, 5632};
        kern_dq a = {0};
        int ran = 0;
        for (int ii = 0; ii < N_ISAS; ii++) {
            for (int bits = 2; bits <= 8; bits = bits == 4 ? 8 : bits + 1)
                for (int g = 32; g <= 128; g *= 2)
                    for (int sym = 0; sym < 2; sym++) {
                        int type;
                        qf_spec s = {bits, g, sym};
                        qf_type_of(&s, &type);
                        kern_dq_fn fn = kern_dq_kernel(type, k_isas[ii]);
                        if (!fn) continue;
                        for (int ni = 0; ni < 5; ni++) {
                            const int64_t n_in = n_ins[ni], n_out = 21;
                            size_t rb;
                            uint8_t *w = make_weights(&s, n_out, n_in, &rb);
                            if (ni == 1) {   // extreme codes: every weight at its max, one row at 0
                                for (size_t i = 0; i < rb * (size_t)n_out; i++)
                                    if (i % (qf_block_bytes(&s)) >= (size_t)(sym ? 2 : 3)) w[i] = 0xff;
                                memset(w, 0, rb);
                            }
                            for (int64_t nt = 1; nt <= 7; nt += (nt < 4 ? 1 : 3)) {
                                float *x = make_x(nt, n_in);
                                if (ni == 1)
                                    for (int64_t i = 0; i < nt * n_in; i++) x[i] = i % 2 ? 1.0f : -1.0f;
                                CHECK(kern_dq_quantize(&a, x, nt, n_in) == 0, "quantize");
                                size_t ny = (size_t)(nt * n_out);
                                float *e = malloc(ny * sizeof(float)), *y = malloc(ny * sizeof(float));
                                for (size_t i = 0; i < ny; i++) e[i] = y[i] = -7.0f;
                                kern_dq_ref(&s, w, rb, &a, e, n_out, 3, 20);
                                fn(&s, w, rb, &a, y, n_out, 3, 20);
                                CHECK(!memcmp(e, y, ny * sizeof(float)), "%s w%d g%d sym %d n_in %lld nt %lld",
                                      k_isas[ii], bits, g, sym, (long long)n_in, (long long)nt);
                                ran++;
                                free(x), free(e), free(y);
                            }
                            free(w);
                        }
                    }
        }
        kern_dq_free(&a);
        if (!ran) printf("  (no SIMD kernel on this CPU)\n");
    }
}

static void test_wrapper(void) {
    TEST_CASE("dq wrapper: kern_matmul_dq_group on 1..3 threads == the single-thread kernel") {
        const int64_t n_in = 256, n_out = 100, n_out2 = 33;
        it_pool *pools[3] = {it_pool_new(1), it_pool_new(2), it_pool_new(3)};
        kern_dq a = {0};
        static const int types[] = {IT_QTYPE(4, 2, 0), IT_QTYPE(8, 2, 1), IT_QTYPE(3, 1, 0)};
        for (int ti = 0; ti < 3; ti++) {
            qf_spec s;
            qf_spec_of(types[ti], &s);
            size_t rb;
            uint8_t *w1 = make_weights(&s, n_out, n_in, &rb), *w2 = make_weights(&s, n_out2, n_in, &rb);
            it_tensor t1 = {"w1", types[ti], 2, {n_in, n_out, 1, 1}, w1, rb * (size_t)n_out};
            it_tensor t2 = {"w2", types[ti], 2, {n_in, n_out2, 1, 1}, w2, rb * (size_t)n_out2};
            for (int64_t nt = 1; nt <= 3; nt += 2) {
                float *x = make_x(nt, n_in);
                CHECK(kern_dq_quantize(&a, x, nt, n_in) == 0, "quantize");
                float *e1 = malloc((size_t)(nt * n_out) * 4), *e2 = malloc((size_t)(nt * n_out2) * 4);
                float *y1 = malloc((size_t)(nt * n_out) * 4), *y2 = malloc((size_t)(nt * n_out2) * 4);
                kern_dq_ref(&s, w1, rb, &a, e1, n_out, 0, n_out);
                kern_dq_ref(&s, w2, rb, &a, e2, n_out2, 0, n_out2);
                for (int p = 0; p < 3; p++) {
                    const it_tensor *ws[2] = {&t1, &t2};
                    float *ys[2] = {y1, y2};
                    memset(y1, 0, (size_t)(nt * n_out) * 4);
                    memset(y2, 0, (size_t)(nt * n_out2) * 4);
                    kern_matmul_dq_group(pools[p], 2, ws, &a, ys);
                    CHECK(!memcmp(y1, e1, (size_t)(nt * n_out) * 4) && !memcmp(y2, e2, (size_t)(nt * n_out2) * 4),
                          "type %d nt %lld threads %d", types[ti], (long long)nt, p + 1);
                }
                free(x), free(e1), free(e2), free(y1), free(y2);
            }
            free(w1), free(w2);
        }
        kern_dq_free(&a);
        for (int p = 0; p < 3; p++) it_pool_free(pools[p]);
    }
    TEST_CASE("dq dispatch: ours only, forced ref") {
        CHECK(kern_dq_kernel(IT_TYPE_F16, "ref") == NULL && kern_dq_best(IT_TYPE_Q8_0) == NULL, "not ours");
        CHECK(kern_dq_kernel(IT_QTYPE(3, 0, 0), "ref") == kern_dq_ref && kern_dq_kernel(IT_QTYPE(4, 0, 0), "neon") == NULL, "names");
        it_cpu_force_ref(1);
        CHECK(kern_dq_best(IT_QTYPE(4, 2, 0)) == kern_dq_ref && !kern_dq_fast(), "forced ref");
        it_cpu_force_ref(0);
    }
    TEST_CASE("dq dispatch: int3 takes the mask-register variant on AMD only, other formats one entry") {
        kern_dq_fn k3 = kern_dq_kernel(IT_QTYPE(3, 2, 0), "avx512"), k4 = kern_dq_kernel(IT_QTYPE(4, 2, 0), "avx512");
        if (!k3) {
            printf("  (no AVX-512 VNNI kernel on this CPU)\n");
            break;
        }
        // The vendor from cpuid leaf 0 here, not from core/cpu.c.
        unsigned a = 0, b = 0, c = 0, d = 0;
        __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0), "c"(0));
        char v[13];
        memcpy(v, &b, 4), memcpy(v + 4, &d, 4), memcpy(v + 8, &c, 4), v[12] = 0;
        int amd = !strcmp(v, "AuthenticAMD") || !strcmp(v, "HygonGenuine");
        CHECK(k3 == (amd ? kern_dq_avx512vnni_amd : kern_dq_avx512vnni), "%s: int3 got the other variant", v);
        CHECK(k4 == kern_dq_avx512vnni && kern_dq_best(IT_QTYPE(4, 2, 0)) == kern_dq_avx512vnni, "int4 not the one entry point");
        CHECK(it_cpu_isa() < IT_ISA_AVX512 || kern_dq_best(IT_QTYPE(3, 2, 0)) == k3, "best != kernel(avx512) for int3");
    }
}

int main(void) {
    test_quantizer();
    test_ref_vs_double();
    test_simd_exact();
    test_wrapper();
    return th_finish("test_iqdec");
}
