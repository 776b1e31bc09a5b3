// KV attention kernels (kv_kern): AVX2 vs the scalar _ref on random rows of every format, group
// and head_dim, and _ref vs an independent double-precision computation over the dequantized rows
// (kvq_load_row / kvq_dequant_group). Tolerances are relative to the sum of |terms| (1e-5): the
// kernels differ only in float summation order and in computing d·c + m with or without an FMA.
// INT4 / INT2 `scores` use the int8 query of kvk_quant_q (kv_kern.h): the double reference does
// too, and a separate check bounds its distance from the float-query score. The AVX-512 table goes
// through the same checks, plus its own: accum == AVX2 bit for bit, the int8-query scores against
// the integer formula over head_dim up to 256 (test_i8q_512), softmax exps == AVX2's bit for bit.
#include <stdint.h>

#include "core/cpu.h"
#include "core/fp16.h"
#include "harness.h"
#include "kv/kv_kern.h"
#include "kv/kv_quant.h"

enum { NROWS = 45, MAXREP = 12, MAXHD = 128 };

static uint64_t rng = 0x853c49e6748fea9bull;
static float frand(void) {   // uniform in [-1, 1)
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)(rng >> 40) / (float)(1u << 23) - 1.0f;
}

// Rows of head_dim values with an offset per row (so m is not ~ -max) and an outlier channel.
static void fill_rows(uint8_t *buf, size_t stride, int n, int bits, int hd, int g, float *x) {
    for (int p = 0; p < n; p++) {
        for (int i = 0; i < hd; i++) x[i] = frand() * (i % 17 == 0 ? 4.0f : 1.0f) + 0.5f * (float)(p % 5);
        kvq_store_row(x, hd, g, bits, buf + (size_t)p * stride);
    }
}

// |m| of the group holding channel i of a stored INT row (0 for fp16): the size of the terms that
// d·c + m cancels, which bounds its rounding error.
static double moff(const uint8_t *row, int bits, int hd, int g, int i) {
    if (bits == 16) return 0;
    uint16_t m;
    memcpy(&m, row + 4 * (i / g) + 2, 2);
    (void)hd;
    return fabs(it_fp16_to_f32(m));
}

// Signed m of the group holding channel i of a stored INT row.
static double mval(const uint8_t *row, int g, int i) {
    uint16_t m;
    memcpy(&m, row + 4 * (i / g) + 2, 2);
    return it_fp16_to_f32(m);
}

static const int k_bits[] = {16, 8, 4, 3, 2};
static const int k_reps[] = {1, 3, 8, 12};

static void test_rows(const kvk_ops *ref, const kvk_ops *simd) {
    size_t stride_max = 2 * kvq_row_bytes(16, MAXHD, 32);
    uint8_t *buf = malloc(NROWS * stride_max);
    float *q = malloc(sizeof(float) * MAXREP * MAXHD), x[MAXHD], row[MAXHD];
    float *s1 = malloc(sizeof(float) * MAXREP * NROWS), *s2 = malloc(sizeof(float) * MAXREP * NROWS);
    float *w = malloc(sizeof(float) * MAXREP * NROWS);
    float *o0 = malloc(sizeof(float) * MAXREP * MAXHD), *o1 = malloc(sizeof(float) * MAXREP * MAXHD),
          *o2 = malloc(sizeof(float) * MAXREP * MAXHD);
    int pos[NROWS], npos = 0, at[NROWS];
    for (int p = 1; p < NROWS; p += 1 + p % 3) pos[npos++] = p;   // a sparse ascending list
    // A slot pool: rows 0.. read in order, results at scattered distinct indices (gcd(17, 45) = 1).
    for (int i = 0; i < NROWS; i++) at[i] = (17 * i + 5) % NROWS;
    for (int bi = 0; bi < 5; bi++)
        for (int g = 32; g <= 64; g += 32)
            for (int hd = 64; hd <= MAXHD; hd += 64) {
                int bits = k_bits[bi];
                char name[96];
                snprintf(name, sizeof name, "scores/accum %s%d group %d head_dim %d", bits == 16 ? "F" : "INT", bits, g,
                         hd);
                TEST_CASE(name) {
                    size_t rb = kvq_row_bytes(bits, hd, g), stride = 2 * rb;   // every other row: a stride
                    fill_rows(buf, stride, NROWS, bits, hd, g, x);
                    double worst_simd = 0, worst_ref = 0;
                    for (int ri = 0; ri < 4; ri++)
                        for (int sparse = 0; sparse < 3; sparse++) {   // 2: rows 0..39 written at at[]
                            int rep = k_reps[ri];
                            kvk_rows r = {buf, stride, sparse == 1 ? pos : NULL, sparse == 1 ? 0 : sparse ? 0 : 3,
                                          sparse == 1 ? npos : sparse ? NROWS - 5 : NROWS - 3, bits, hd, g,
                                          sparse == 2 ? at : NULL};
                            for (int i = 0; i < rep * hd; i++) q[i] = frand();
                            for (int i = 0; i < rep * NROWS; i++) s1[i] = s2[i] = -7.0f, w[i] = frand() * frand();
                            float scale = 0.125f;
                            ref->scores(&r, q, rep, scale, s1, NROWS);
                            if (simd) simd->scores(&r, q, rep, scale, s2, NROWS);
                            for (int k = 0; k < r.n; k++) {
                                int rp_i = r.pos ? r.pos[k] : r.p0 + k, p = r.at ? r.at[k] : rp_i;
                                const uint8_t *rp = buf + (size_t)rp_i * stride;
                                kvq_load_row(rp, hd, g, bits, row);
                                for (int h = 0; h < rep; h++) {
                                    double exact = 0, mag = 0, fexact = 0;
                                    int8_t q8[MAXHD];
                                    float sq[MAXHD], qs[MAXHD];
                                    if (bits == 4 || bits == 2) kvk_quant_q(q + h * hd, hd, g, q8, sq, qs);
                                    for (int i = 0; i < hd; i++) {
                                        double qi = q[h * hd + i];
                                        fexact += qi * row[i];
                                        if (bits == 4 || bits == 2) {   // row = d·c + m: q̂·(d·c) + m·q
                                            double qh = (double)q8[i] * sq[i / g], mi = mval(rp, g, i);
                                            exact += qh * (row[i] - mi) + qi * mi;
                                        } else {
                                            exact += qi * row[i];
                                        }
                                        mag += fabs(q[h * hd + i]) * (fabs(row[i]) + moff(rp, bits, hd, g, i));
                                    }
                                    exact *= scale, mag *= scale, fexact *= scale;
                                    // int8 query: |q - q̂| ≤ sq/2 ≤ max|q_g|/254 per channel.
                                    CHECK(fabs(exact - fexact) <= mag / 200 + 1e-6, "int8-query score %g vs float %g",
                                          exact, fexact);
                                    double er = fabs(s1[h * NROWS + p] - exact) / mag;
                                    worst_ref = er > worst_ref ? er : worst_ref;
                                    if (simd) {
                                        double es = fabs(s2[h * NROWS + p] - s1[h * NROWS + p]) / mag;
                                        worst_simd = es > worst_simd ? es : worst_simd;
                                    }
                                }
                            }
                            // Positions outside the batch are left alone.
                            int untouched = 1;
                            for (int h = 0; h < rep; h++)
                                for (int p = 0; p < NROWS; p++) {
                                    int in = 0;
                                    for (int k = 0; k < r.n; k++)
                                        in |= (r.at ? r.at[k] : r.pos ? r.pos[k] : r.p0 + k) == p;
                                    if (!in)
                                        untouched &= s1[h * NROWS + p] == -7.0f && (!simd || s2[h * NROWS + p] == -7.0f);
                                }
                            CHECK(untouched, "rep %d sparse %d: wrote outside the rows", rep, sparse);
                            // accum: o starts non-zero (it accumulates).
                            for (int i = 0; i < rep * hd; i++) o0[i] = o1[i] = o2[i] = frand();
                            ref->accum(&r, w, NROWS, rep, o1);
                            if (simd) simd->accum(&r, w, NROWS, rep, o2);
                            for (int h = 0; h < rep; h++)
                                for (int i = 0; i < hd; i++) {
                                    double exact = o0[h * hd + i], mag = fabs(o0[h * hd + i]);
                                    for (int k = 0; k < r.n; k++) {
                                        int rp_i = r.pos ? r.pos[k] : r.p0 + k, p = r.at ? r.at[k] : rp_i;
                                        const uint8_t *rp = buf + (size_t)rp_i * stride;
                                        kvq_load_row(rp, hd, g, bits, row);
                                        double wv = w[h * NROWS + p];
                                        exact += wv * row[i];
                                        mag += fabs(wv) * (fabs(row[i]) + moff(rp, bits, hd, g, i));
                                    }
                                    double er = fabs(o1[h * hd + i] - exact) / mag;
                                    worst_ref = er > worst_ref ? er : worst_ref;
                                    if (simd) {
                                        double es = fabs(o2[h * hd + i] - o1[h * hd + i]) / mag;
                                        worst_simd = es > worst_simd ? es : worst_simd;
                                    }
                                }
                        }
                    CHECK(worst_ref < 1e-5, "ref vs double: %g", worst_ref);
                    CHECK(worst_simd < 1e-5, "avx2 vs ref: %g", worst_simd);
                    if (bits == 4 && g == 32 && hd == 64)
                        printf("  worst relative error: ref vs double %.2g, avx2 vs ref %.2g\n", worst_ref, worst_simd);
                }
            }
    free(buf); free(q); free(s1); free(s2); free(w); free(o0); free(o1); free(o2);
}

// A per-channel key block: hd channels, each G tokens quantized as one group.
static void test_chan(const kvk_ops *ref, const kvk_ops *simd) {
    float col[64], deq[MAXHD][64], q[MAXREP * MAXHD], s1[MAXREP * 64], s2[MAXREP * 64];
    for (int bi = 1; bi < 5; bi++)
        for (int g = 32; g <= 64; g += 32)
            for (int hd = 64; hd <= MAXHD; hd += 64) {
                int bits = k_bits[bi];
                char name[96];
                snprintf(name, sizeof name, "per-channel block INT%d group %d head_dim %d", bits, g, hd);
                TEST_CASE(name) {
                    size_t gb = (size_t)g * bits / 8;
                    uint8_t *blk = malloc((size_t)hd * (4 + gb));
                    double mabs[MAXHD];
                    for (int c = 0; c < hd; c++) {
                        uint16_t d, m;
                        for (int j = 0; j < g; j++) col[j] = frand() * (c % 13 == 0 ? 5.0f : 1.0f) + 0.3f * (float)(c % 7);
                        kvq_quant_group(col, g, bits, blk + 4 * (size_t)hd + c * gb, &d, &m);
                        memcpy(blk + 4 * c, &d, 2);
                        memcpy(blk + 4 * c + 2, &m, 2);
                        kvq_dequant_group(blk + 4 * (size_t)hd + c * gb, g, bits, d, m, deq[c]);
                        mabs[c] = fabs(it_fp16_to_f32(m));
                    }
                    double worst_ref = 0, worst_simd = 0;
                    int nts[3] = {g, g - 5, 3};
                    for (int ri = 0; ri < 4; ri++)
                        for (int ni = 0; ni < 3; ni++) {
                            int rep = k_reps[ri], nt = nts[ni];
                            for (int i = 0; i < rep * hd; i++) q[i] = frand();
                            for (int i = 0; i < rep * 64; i++) s1[i] = s2[i] = -7.0f;
                            ref->chan_scores(blk, bits, hd, g, nt, q, rep, 0.25f, s1, 64);
                            if (simd) simd->chan_scores(blk, bits, hd, g, nt, q, rep, 0.25f, s2, 64);
                            for (int h = 0; h < rep; h++) {
                                for (int j = 0; j < nt; j++) {
                                    double exact = 0, mag = 0;
                                    for (int c = 0; c < hd; c++) {
                                        exact += (double)q[h * hd + c] * deq[c][j];
                                        mag += fabs(q[h * hd + c]) * (fabs(deq[c][j]) + mabs[c]);
                                    }
                                    exact *= 0.25, mag *= 0.25;
                                    double er = fabs(s1[h * 64 + j] - exact) / mag;
                                    worst_ref = er > worst_ref ? er : worst_ref;
                                    if (simd) {
                                        double es = fabs(s2[h * 64 + j] - s1[h * 64 + j]) / mag;
                                        worst_simd = es > worst_simd ? es : worst_simd;
                                    }
                                }
                                for (int j = nt; j < 64; j++)
                                    CHECK(s1[h * 64 + j] == -7.0f && s2[h * 64 + j] == -7.0f, "wrote token %d of %d", j, nt);
                            }
                        }
                    CHECK(worst_ref < 1e-5, "ref vs double: %g", worst_ref);
                    CHECK(worst_simd < 1e-5, "avx2 vs ref: %g", worst_simd);
                    free(blk);
                }
            }
}

// softmax: ref and a SIMD table against a double-precision softmax (exp()) of the same scores,
// entrywise |got - exact| <= 1e-6·exact + 2e-38 (2 ulp of exp plus the sum's and the 1/Σ multiply's
// rounding; the absolute term covers the polynomial exp flushing values below 2^-126 to 0). -inf
// entries (evicted tokens) must give exactly 0, and lengths not a multiple of 8 / 16 take the tail
// paths. With `same_exp` (the AVX2 table, when `simd` is the AVX-512 one) the two SIMD results must
// also agree wherever both took the polynomial exp (the AVX2 kernel's first n & ~7 entries): each
// exp is bit-identical and only the order of the double sum differs, so the outputs are equal bit
// for bit when the two 1/Σ are (else within 2 ulp). That catches a changed polynomial or clamp the
// looser bound would let pass.
static void test_softmax(const kvk_ops *ref, const kvk_ops *simd, const kvk_ops *same_exp) {
    static const int lens[] = {1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 4096};
    enum { NLENS = sizeof lens / sizeof lens[0] };
    float *x = malloc(4096 * sizeof(float)), *a = malloc(4096 * sizeof(float)), *b = malloc(4096 * sizeof(float));
    float *c = malloc(4096 * sizeof(float));
    double *e = malloc(4096 * sizeof(double));
    const char *isa = simd ? simd->name : "none";
    for (int li = 0; li < NLENS; li++)
        for (int spread = 0; spread < 4; spread++) {
            int n = lens[li];
            char name[96];
            snprintf(name, sizeof name, "softmax %s n %d spread %d", isa, n, spread);
            TEST_CASE(name) {
                // 200: deep underflow; spread 3: scores in [-95, -80] below a max of 0, so exps
                // straddle the -88 clamp.
                float span = spread == 0 ? 4.0f : spread == 1 ? 40.0f : 200.0f;
                for (int i = 0; i < n; i++)
                    x[i] = i % 11 == 5 ? -INFINITY
                         : spread == 3 ? (i == n / 2 ? 0.0f : -87.5f + 7.5f * frand())
                                       : span * frand();
                // Both kernels subtract the max in float (its rounding, up to |x - max|·2^-24 relative
                // after exp, is part of the contract): the reference takes the same float differences.
                float mx = -INFINITY;
                double sum = 0;
                for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
                for (int i = 0; i < n; i++) sum += e[i] = exp((double)(x[i] - mx));
                memcpy(a, x, (size_t)n * sizeof(float));
                memcpy(b, x, (size_t)n * sizeof(float));
                memcpy(c, x, (size_t)n * sizeof(float));
                ref->softmax(a, n);
                if (simd) simd->softmax(b, n);
                if (same_exp) same_exp->softmax(c, n);
                int bad_ref = 0, bad_simd = 0, zero = 1, bad_same = 0, imax = 0;
                double worst = 0;
                // The max's exp is exactly 1, so its output is each kernel's 1/Σ: where those agree
                // (nearly always), so must every polynomial-exp entry, bit for bit.
                for (int i = 0; i < n; i++) imax = x[i] == mx ? i : imax;
                int same_inv = same_exp && b[imax] == c[imax];
                for (int i = 0; i < n; i++) {
                    double ex = e[i] / sum, tol = 1e-6 * ex + 2e-38;
                    bad_ref += fabs(a[i] - ex) > tol;
                    if (simd) {
                        bad_simd += fabs(b[i] - ex) > tol;
                        double r = ex > 1e-30 ? fabs(b[i] - ex) / ex : 0;
                        worst = r > worst ? r : worst;
                    }
                    if (same_exp && i < (n & ~7))
                        bad_same += same_inv ? b[i] != c[i] : fabs(b[i] - c[i]) > 2.4e-7 * fabs(c[i]) + 3e-45;
                    if (x[i] == -INFINITY) zero &= a[i] == 0.0f && (!simd || b[i] == 0.0f);
                }
                CHECK(bad_ref == 0, "ref: %d of %d entries off", bad_ref, n);
                CHECK(bad_simd == 0, "%s: %d of %d entries off (worst relative %g)", isa, bad_simd, n, worst);
                CHECK(bad_same == 0, "%s vs %s: %d of %d entries differ by more than 2 ulp", isa,
                      same_exp ? same_exp->name : "", bad_same, n);
                CHECK(zero, "-inf did not give exactly 0");
                if (n == 4096 && spread == 1) printf("  %s softmax worst relative error %.2g\n", isa, worst);
            }
        }
    free(x); free(a); free(b); free(c); free(e);
}

// The AVX-512 int8-query scores of INT4 / INT2 rows (kv_score_avx512.c) against the formula of
// kv_kern.h evaluated here: q8, sq and Σq from kvk_quant_q, each group's integer Σ c·q8 from codes
// taken out of the row's little-endian code stream (kv_quant.h; a 2- or 4-bit code never straddles
// a byte), the per-group terms d·sq·Σ + m·Σq summed in double. Both SIMD kernels take the integer
// sums per 32-channel quarter and add d·sq·Σ_quarter in float, so they are within a few float
// roundings of Σ |quarter terms| + Σ |m·Σq| (bound 1e-6 relative to that; the AVX2 kernel is held
// to the same). Shapes:
// head_dim 64..256 (64 and 192 take the paired-row tail step), every group of whole 32-channel
// quarters that divides it, 1..8 and 11 query heads (every heads-at-once count and remainder),
// rows contiguous from an offset, from a sparse position list, into a slot pool's at[] (odd n, so
// a pair is left with a lone row), and a single row.
// The table takes the VNNI build of that file where the CPU has VNNI; the build without it (for
// AVX-512 CPUs lacking VNNI) is called directly, so both are held to the formula here.
int kvk_scores_i8q_avx512(const kvk_rows *r, const float *q, int rep, float scale, float *s, size_t ld);
enum { I8Q_HD = 256, I8Q_ROWS = 37 };
static void test_i8q_512(const kvk_ops *simd, const kvk_ops *simd512) {
    static const int hds[] = {64, 128, 192, 256}, gs[] = {32, 64, 96, 128, 256};
    if (!simd || !simd512) {
        TEST_CASE("int8-query scores avx512") {
            printf("skip %s: no AVX-512 here\n", th_case);
            th_case_skipped = 1;
        }
        return;
    }
    size_t stride_max = kvq_row_bytes(4, I8Q_HD, 32) + 3;
    uint8_t *buf = malloc(I8Q_ROWS * stride_max);
    float x[I8Q_HD], *q = malloc(sizeof(float) * 11 * I8Q_HD);
    float *s1 = malloc(sizeof(float) * 11 * I8Q_ROWS), *s2 = malloc(sizeof(float) * 11 * I8Q_ROWS);
    float *s3 = malloc(sizeof(float) * 11 * I8Q_ROWS);
    int pos[I8Q_ROWS], npos = 0, at[I8Q_ROWS];
    for (int p = 1; p < I8Q_ROWS; p += 1 + p % 3) pos[npos++] = p;
    for (int i = 0; i < I8Q_ROWS; i++) at[i] = (10 * i + 3) % I8Q_ROWS;   // gcd(10, 37) = 1
    for (int bits = 4; bits >= 2; bits -= 2)
        for (int hi = 0; hi < 4; hi++)
            for (int gi = 0; gi < 5; gi++) {
                int hd = hds[hi], g = gs[gi];
                if (hd % g) continue;
                char name[96];
                snprintf(name, sizeof name, "int8-query scores avx512 INT%d group %d head_dim %d", bits, g, hd);
                TEST_CASE(name) {
                    int ng = hd / g, mask = (1 << bits) - 1;
                    size_t stride = kvq_row_bytes(bits, hd, g) + 3;   // odd: rows at any alignment
                    for (int p = 0; p < I8Q_ROWS; p++) {
                        for (int i = 0; i < hd; i++) x[i] = frand() * (i % 19 == 0 ? 3.0f : 1.0f) + 0.4f * (float)(p % 4);
                        kvq_store_row(x, hd, g, bits, buf + (size_t)p * stride);
                    }
                    double worst512 = 0, worst2 = 0, worst_plain = 0;
                    int untouched = 1;
                    for (int rep = 1; rep <= 11; rep += rep < 8 ? 1 : 3)
                        for (int sparse = 0; sparse < 4; sparse++) {
                            kvk_rows r = {buf, stride, sparse == 1 ? pos : NULL, sparse == 0 ? 2 : sparse == 3 ? 5 : 0,
                                          sparse == 0 ? I8Q_ROWS - 4 : sparse == 1 ? npos : sparse == 2 ? I8Q_ROWS : 1,
                                          bits, hd, g, sparse == 2 ? at : NULL};
                            for (int i = 0; i < rep * hd; i++) q[i] = frand() * (i % 23 == 7 ? 6.0f : 1.0f);
                            if (sparse == 1) memset(q, 0, sizeof(float) * (size_t)g);   // sq = 0 for a group
                            for (int i = 0; i < 11 * I8Q_ROWS; i++) s1[i] = s2[i] = s3[i] = -7.0f;
                            float scale = 0.09f;
                            simd->scores(&r, q, rep, scale, s1, I8Q_ROWS);
                            simd512->scores(&r, q, rep, scale, s2, I8Q_ROWS);
                            kvk_scores_i8q_avx512(&r, q, rep, scale, s3, I8Q_ROWS);   // the build without VNNI
                            for (int h = 0; h < rep; h++) {
                                int8_t q8[I8Q_HD];
                                float sq[I8Q_HD / 32], qs[I8Q_HD / 32];
                                kvk_quant_q(q + h * hd, hd, g, q8, sq, qs);
                                for (int k = 0; k < r.n; k++) {
                                    int p = r.pos ? r.pos[k] : r.p0 + k, a = r.at ? r.at[k] : p;
                                    const uint8_t *row = buf + (size_t)p * stride;
                                    double exact = 0, mag = 0;
                                    for (int gg = 0; gg < ng; gg++) {
                                        const uint8_t *cs = row + 4 * ng + (size_t)gg * g * bits / 8;
                                        uint16_t d, m;
                                        memcpy(&d, row + 4 * gg, 2);
                                        memcpy(&m, row + 4 * gg + 2, 2);
                                        double dsq = (double)it_fp16_to_f32(d) * sq[gg], isum = 0;
                                        for (int c0 = 0; c0 < g; c0 += 32) {   // the kernels' float terms
                                            long qsum = 0;
                                            for (int i = c0; i < c0 + 32; i++) {
                                                int bit = i * bits, code = (cs[bit / 8] >> (bit % 8)) & mask;
                                                qsum += (long)code * q8[gg * g + i];
                                            }
                                            isum += (double)qsum, mag += fabs(dsq * (double)qsum);
                                        }
                                        double t2 = (double)it_fp16_to_f32(m) * qs[gg];
                                        exact += dsq * isum + t2, mag += fabs(t2);
                                    }
                                    exact *= scale, mag = mag * scale + 1e-30;
                                    double e512 = fabs(s2[h * I8Q_ROWS + a] - exact) / mag;
                                    double e2 = fabs(s1[h * I8Q_ROWS + a] - exact) / mag;
                                    double e3 = fabs(s3[h * I8Q_ROWS + a] - exact) / mag;
                                    worst_plain = e3 > worst_plain ? e3 : worst_plain;
                                    worst512 = e512 > worst512 ? e512 : worst512;
                                    worst2 = e2 > worst2 ? e2 : worst2;
                                }
                            }
                            for (int h = 0; h < rep; h++)
                                for (int p = 0; p < I8Q_ROWS; p++) {
                                    int in = 0;
                                    for (int k = 0; k < r.n; k++) in |= (r.at ? r.at[k] : r.pos ? r.pos[k] : r.p0 + k) == p;
                                    if (!in) untouched &= s2[h * I8Q_ROWS + p] == -7.0f;
                                }
                            for (int i = rep * I8Q_ROWS; i < 11 * I8Q_ROWS; i++) untouched &= s2[i] == -7.0f;
                        }
                    CHECK(worst512 < 1e-6, "avx512 vs formula: %g", worst512);
                    CHECK(worst2 < 1e-6, "avx2 vs formula: %g", worst2);
                    CHECK(worst_plain < 1e-6, "avx512 without VNNI vs formula: %g", worst_plain);
                    CHECK(untouched, "avx512 wrote outside the rows / heads");
                    if (bits == 2 && g == 32 && hd == 64)
                        printf("  int8-query INT2 g32 hd64: avx512 vs formula %.2g, avx2 %.2g\n", worst512, worst2);
                }
            }
    free(buf); free(q); free(s1); free(s2); free(s3);
}

// The AVX-512 accum against the AVX2 one, bit for bit: every lane does the same FMAs in the same
// order (kv_kern_avx512.c). Groups of 8 and head_dim 40 take the AVX2 fallback inside it.
static void test_accum_512(const kvk_ops *simd, const kvk_ops *simd512) {
    TEST_CASE("accum: avx512 == avx2 bit for bit (fp16, INT8/4/3/2; groups 8-64; head_dim 40-128)") {
        if (!simd || !simd512) {
            printf("skip %s: no AVX-512 here\n", th_case);
            th_case_skipped = 1;
            break;
        }
        static const int shapes[][2] = {{40, 8}, {48, 16}, {64, 16}, {64, 32}, {128, 64}, {128, 32}};
        size_t stride_max = 2 * kvq_row_bytes(16, MAXHD, 8);
        uint8_t *buf = malloc(NROWS * stride_max);
        float x[MAXHD], *w = malloc(sizeof(float) * MAXREP * NROWS);
        float *o1 = malloc(sizeof(float) * MAXREP * MAXHD), *o2 = malloc(sizeof(float) * MAXREP * MAXHD);
        int pos[NROWS], npos = 0, at[NROWS], diff = 0;
        for (int p = 1; p < NROWS; p += 1 + p % 3) pos[npos++] = p;
        for (int i = 0; i < NROWS; i++) at[i] = (17 * i + 5) % NROWS;
        for (int bi = 0; bi < 5; bi++)
            for (int si = 0; si < 6; si++)
                for (int ri = 0; ri < 4; ri++)
                    for (int sparse = 0; sparse < 3; sparse++) {
                        int bits = k_bits[bi], hd = shapes[si][0], g = shapes[si][1], rep = k_reps[ri];
                        size_t stride = 2 * kvq_row_bytes(bits, hd, g);
                        fill_rows(buf, stride, NROWS, bits, hd, g, x);
                        kvk_rows r = {buf, stride, sparse == 1 ? pos : NULL, sparse ? 0 : 3,
                                      sparse == 1 ? npos : sparse ? NROWS - 5 : NROWS - 3, bits, hd, g,
                                      sparse == 2 ? at : NULL};
                        for (int i = 0; i < rep * NROWS; i++) w[i] = frand() * frand();
                        for (int i = 0; i < rep * hd; i++) o1[i] = o2[i] = frand();   // accum adds to o
                        simd->accum(&r, w, NROWS, rep, o1);
                        simd512->accum(&r, w, NROWS, rep, o2);
                        if (memcmp(o1, o2, sizeof(float) * (size_t)rep * (size_t)hd) && diff++ < 3)
                            printf("  bits %d hd %d group %d rep %d rows %d: outputs differ\n", bits, hd, g, rep,
                                   sparse);
                    }
        CHECK(diff == 0, "%d of %d cases differ", diff, 5 * 6 * 4 * 3);
        free(buf); free(w); free(o1); free(o2);
    }
}

int main(void) {
    const kvk_ops *ref = kvk_get("ref"), *simd = kvk_get("avx2"), *simd512 = kvk_get("avx512");
    TEST_CASE("dispatch") {
        CHECK(ref == kvk_ref() && !strcmp(ref->name, "ref"), "ref table");
        CHECK(kvk_get("avx1024") == NULL && kvk_get(NULL) == NULL, "unknown ISA");
        const char *isa = getenv("INTACT_ISA");
        const kvk_ops *want = it_cpu_isa() == IT_ISA_AVX512 && simd512 ? simd512 : simd ? simd : ref;
        if (isa && !strcmp(isa, "ref")) CHECK(kvk_active() == ref, "INTACT_ISA=ref not honored");
        else CHECK(kvk_active() == want, "active %s, want %s", kvk_active()->name, want->name);
        CHECK(!simd512 || (simd512->chan_scores == simd->chan_scores && simd512->softmax != simd->softmax &&
                           simd512->scores != simd->scores && simd512->accum != simd->accum), "avx512 table");
        kvk_force(ref);
        CHECK(kvk_active() == ref, "force");
        kvk_force(NULL);
        printf("  active kernels: %s%s\n", kvk_active()->name, simd ? "" : " (no AVX2 here: SIMD checks skipped)");
    }
    test_rows(ref, simd);
    if (simd512) test_rows(ref, simd512);
    else printf("  no AVX-512 here: its accum is not checked\n");
    test_accum_512(simd, simd512);
    test_chan(ref, simd);
    test_i8q_512(simd, simd512);
    test_softmax(ref, simd, NULL);
    if (simd512) test_softmax(ref, simd512, simd);
    return th_finish("test_kv_kern");
}
