// Prefill driver over the int8-activation kernels (kernels/iqgemm.h): kern_matmul_dqg_group on 1..3
// threads, 4..37 tokens (token tiles of 3 plus tails), rows not a multiple of the row block, two
// matrices sharing activations, several formats (int4/int3/int2/int8, g32..g128, sym and asym) ==
// the scalar reference kern_dq_ref byte for byte (memcmp), so prefill computes exactly what decode
// computes; and the reference itself against an independent double computation on one case.
#include "harness.h"

#include <stdint.h>

#include "core/pool.h"
#include "formats/formats.h"
#include "formats/qformat.h"
#include "kernels/iqgemm.h"
#include "quant/rtn.h"

#include <sys/wait.h>

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static float rnd_f(void) {
    g_rng ^= g_rng >> 12, g_rng ^= g_rng << 25, g_rng ^= g_rng >> 27;
    return (float)((double)(uint32_t)((g_rng * 0x2545f4914f6cdd1dull) >> 32) / 4294967296.0 * 2.0 - 1.0);
}

static uint8_t *make_w(const qf_spec *s, int64_t n_out, int64_t n_in, size_t *rb) {
    *rb = qf_block_bytes(s) * (size_t)(n_in / s->group);
    uint8_t *w = malloc(*rb * (size_t)n_out);
    float *row = malloc((size_t)n_in * sizeof(float));
    for (int64_t r = 0; r < n_out; r++) {
        for (int64_t i = 0; i < n_in; i++) row[i] = rnd_f() * (i % 19 == 5 ? 5.0f : 1.0f) + (s->sym ? 0.0f : 0.2f);
        rtn_quantize_row(s, row, n_in, 1.0f, w + (size_t)r * *rb);
    }
    free(row);
    return w;
}

static void test_group_exact(void) {
    TEST_CASE("dqg: kern_matmul_dqg_group == kern_dq_ref bit for bit (formats, 4..37 tokens, 1..3 threads)") {
        const int64_t n_in = 640, n_out = 53, n_out2 = 16;   // 20 blocks: a partial 16-block chunk
        it_pool *pools[3] = {it_pool_new(1), it_pool_new(2), it_pool_new(3)};
        static const int types[] = {IT_QTYPE(4, 2, 0), IT_QTYPE(3, 2, 0), IT_QTYPE(4, 0, 1),
                                    IT_QTYPE(8, 2, 0), IT_QTYPE(2, 1, 0), IT_QTYPE(3, 0, 1)};
        static const int64_t nts[] = {4, 5, 7, 16, 37};
        kern_dq a = {0};
        int cases = 0;
        for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
            qf_spec s;
            qf_spec_of(types[ti], &s);
            size_t rb;
            uint8_t *w1 = make_w(&s, n_out, n_in, &rb), *w2 = make_w(&s, n_out2, n_in, &rb);
            it_tensor t1 = {"w1", types[ti], 2, {n_in, n_out, 1, 1}, w1, rb * (size_t)n_out};
            it_tensor t2 = {"w2", types[ti], 2, {n_in, n_out2, 1, 1}, w2, rb * (size_t)n_out2};
            for (size_t ni = 0; ni < sizeof nts / sizeof *nts; ni++) {
                int64_t nt = nts[ni];
                float *x = malloc((size_t)(nt * n_in) * 4);
                for (int64_t i = 0; i < nt * n_in; i++) x[i] = rnd_f() * (i % 64 < 32 ? 1.0f : 0.05f);
                CHECK(kern_dq_quantize(&a, x, nt, n_in) == 0, "quantize");
                float *e1 = malloc((size_t)(nt * n_out) * 4), *e2 = malloc((size_t)(nt * n_out2) * 4);
                float *y1 = malloc((size_t)(nt * n_out) * 4), *y2 = malloc((size_t)(nt * n_out2) * 4);
                kern_dq_ref(&s, w1, rb, &a, e1, n_out, 0, n_out);
                kern_dq_ref(&s, w2, rb, &a, e2, n_out2, 0, n_out2);
                for (int p = 0; p < 3; p++) {
                    const it_tensor *ws[2] = {&t1, &t2};
                    float *ys[2] = {y1, y2};
                    memset(y1, 0xff, (size_t)(nt * n_out) * 4);
                    memset(y2, 0xff, (size_t)(nt * n_out2) * 4);
                    kern_matmul_dqg_group(pools[p], 2, ws, &a, ys);
                    CHECK(!memcmp(y1, e1, (size_t)(nt * n_out) * 4) && !memcmp(y2, e2, (size_t)(nt * n_out2) * 4),
                          "type %d nt %lld threads %d", types[ti], (long long)nt, p + 1);
                    cases++;
                }
                // The reference against double on the first format (dequantized weights, s*q inputs).
                if (ti == 0) {
                    float *wf = malloc((size_t)n_in * 4);
                    double worst = 0;
                    for (int64_t r = 0; r < n_out; r++) {
                        qf_dequantize_row(&s, w1 + (size_t)r * rb, wf, n_in);
                        for (int64_t t = 0; t < nt; t++) {
                            double e = 0, mag = 0;
                            for (int64_t i = 0; i < n_in; i++) {
                                double xv = (double)a.scale[t * a.nbp + i / 32] * a.q[t * a.nbp * 32 + i];
                                e += wf[i] * xv, mag += fabs(wf[i] * xv);
                            }
                            double err = fabs(e - y1[t * n_out + r]) / (mag + 1e-30);
                            worst = err > worst ? err : worst;
                        }
                    }
                    CHECK(worst < 1e-5, "vs double: rel err %g", worst);
                    free(wf);
                }
                free(x), free(e1), free(e2), free(y1), free(y2);
            }
            free(w1), free(w2);
        }
        CHECK(cases == 90, "ran %d cases", cases);
        kern_dq_free(&a);
        for (int p = 0; p < 3; p++) it_pool_free(pools[p]);
    }
}

// The GEMM kernels themselves (kern_dqg_kernel "avx512" and "amx") on every format, 1..35 tokens
// (the VNNI GEMM's 8-token tile and its 4/2/1 tails; AMX's 16-token tiles, whole and partial), odd row ranges (a 16-row block cut short at both ends), n_in
// with a partial 16-block chunk and with more than one 4-chunk k block: == kern_dq_ref by memcmp,
// rows outside [r0, r1) untouched. Skipped (with a note) on a CPU without AVX-512 VNNI + BITALG.
static void test_gemm_kernel(void) {
    TEST_CASE("dqg: GEMM kernels (VNNI, AMX) == kern_dq_ref bit for bit (24 formats, 1..35 tokens, odd row ranges)") {
        static const int64_t n_ins[] = {640, 2560};   // 20 blocks (partial chunk); 5 chunks (2 k blocks)
        const int64_t n_out = 41;
        kern_dq a = {0};
        int cases = 0, skipped = 0;
        CHECK(kern_dqg_kernel(IT_QTYPE(4, 2, 0), "ref") == kern_dq_ref, "ref is kern_dq_ref");
        for (int isa = 0; isa < 2; isa++)
        for (int bits = 2; bits <= 8; bits += bits == 4 ? 4 : 1)
            for (int gi = 0; gi < 3; gi++)
                for (int sym = 0; sym < 2; sym++) {
                    const int type = IT_QTYPE(bits, gi, sym);
                    kern_dq_fn fn = kern_dqg_kernel(type, isa ? "amx" : "avx512");
                    if (!fn) {
                        skipped++;
                        continue;
                    }
                    qf_spec s;
                    qf_spec_of(type, &s);
                    for (size_t ni = 0; ni < sizeof n_ins / sizeof *n_ins; ni++) {
                        const int64_t n_in = n_ins[ni];
                        size_t rb;
                        uint8_t *w = make_w(&s, n_out, n_in, &rb);
                        for (int64_t nt = 1; nt <= 35; nt += (ni ? 4 : 1)) {   // AMX: 16-token tiles, partial and whole
                            float *x = malloc((size_t)(nt * n_in) * 4);
                            for (int64_t i = 0; i < nt * n_in; i++) x[i] = rnd_f() * (i % 64 < 32 ? 1.0f : 0.05f);
                            CHECK(kern_dq_quantize(&a, x, nt, n_in) == 0, "quantize");
                            float *e = malloc((size_t)(nt * n_out) * 4), *y = malloc((size_t)(nt * n_out) * 4);
                            memset(e, 0xff, (size_t)(nt * n_out) * 4);
                            memset(y, 0xff, (size_t)(nt * n_out) * 4);
                            const int64_t r0 = 3, r1 = n_out - 2;   // 36 rows: 16 + 16 + 4
                            kern_dq_ref(&s, w, rb, &a, e, n_out, r0, r1);
                            fn(&s, w, rb, &a, y, n_out, r0, r1);
                            CHECK(!memcmp(y, e, (size_t)(nt * n_out) * 4), "int%d g%d sym %d n_in %lld nt %lld", bits,
                                  s.group, sym, (long long)n_in, (long long)nt);
                            cases++;
                            free(x), free(e), free(y);
                        }
                        free(w);
                    }
                }
        if (skipped) printf("note: GEMM kernel not available on this CPU, %d formats x ISAs skipped\n", skipped);
        CHECK(cases + skipped * 44 == 2 * 24 * 44, "ran %d cases", cases);
        kern_dq_free(&a);
    }
}

// kern_dq_quantize builds the AMX copy exactly where the AMX GEMM can run; the AMX entry point hands
// a kern_dq without it (and formats it does not cover) to the VNNI GEMM: same result.
static void test_amx_layout(void) {
    TEST_CASE("dqg: AMX activation tiles (qa) exist iff AMX is usable; without them the VNNI GEMM answers") {
        const int64_t n_in = 640, n_out = 19, nt = 21;
        kern_dq a = {0};
        float *x = malloc((size_t)(nt * n_in) * 4);
        for (int64_t i = 0; i < nt * n_in; i++) x[i] = rnd_f();
        CHECK(kern_dq_quantize(&a, x, nt, n_in) == 0, "quantize");
        CHECK((a.qa != NULL) == (kern_dqa_usable() != 0), "qa %p, usable %d", (void *)a.qa, kern_dqa_usable());
        kern_dq one = {0};   // decode never builds it
        CHECK(kern_dq_quantize(&one, x, 3, n_in) == 0 && one.qa == NULL, "qa built for 3 tokens");
        kern_dq_free(&one);
        if (a.qa) {
            // Token 17's block 3, dword 5 sits in tile 1 at 512 (nbp + 3) + 64 * 5 + 4 * 1.
            CHECK(!memcmp(a.qa + 512 * (a.nbp + 3) + 64 * 5 + 4, a.q + 17 * a.nbp * 32 + 32 * 3 + 4 * 5, 4), "qa layout");
            CHECK(a.sca[16 * (a.nbp + 3) + 1] == a.scale[17 * a.nbp + 3], "sca layout");
            int zero = 1;   // tokens 21..31 of tile 1: zero
            for (int64_t b = 0; b < a.nbp; b++)
                for (int m = 0; m < 8; m++)
                    for (int t = 5; t < 16; t++)
                        for (int j = 0; j < 4; j++) zero &= a.qa[512 * (a.nbp + b) + 64 * m + 4 * t + j] == 0;
            CHECK(zero, "padding tokens of the last tile are not zero");
            qf_spec s;
            qf_spec_of(IT_QTYPE(4, 2, 0), &s);
            size_t rb;
            uint8_t *w = make_w(&s, n_out, n_in, &rb);
            float *e = malloc((size_t)(nt * n_out) * 4), *y = malloc((size_t)(nt * n_out) * 4);
            kern_dq_ref(&s, w, rb, &a, e, n_out, 0, n_out);
            kern_dq noqa = a;
            noqa.qa = NULL;
            memset(y, 0xff, (size_t)(nt * n_out) * 4);
            kern_dqg_amx(&s, w, rb, &noqa, y, n_out, 0, n_out);
            CHECK(!memcmp(y, e, (size_t)(nt * n_out) * 4), "without qa");
            free(w), free(e), free(y);
        }
        free(x);
        kern_dq_free(&a);
    }
}

// kern_dqa_usable() in a child started with INTACT_AMX=env (read once per process, so a fork each),
// before this process has asked: 1 / 0, -1 if the child failed.
static int amx_in_child(const char *env) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("INTACT_AMX", env, 1);
        _exit(kern_dqa_usable() ? 1 : 0);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

int main(void) {
    TEST_CASE("dqg: INTACT_AMX=0 turns AMX off; any other value leaves the CPU's answer") {
        int on = amx_in_child("1");
        CHECK(on == 0 || on == 1, "child failed");
        CHECK(amx_in_child("0") == 0, "INTACT_AMX=0 still uses AMX");
        CHECK(amx_in_child("yes") == on && amx_in_child("") == on, "other values change the choice");
    }
    test_group_exact();
    test_gemm_kernel();
    test_amx_layout();
    return th_finish("test_iqgemm");
}
