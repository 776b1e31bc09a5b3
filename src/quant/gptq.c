// GPTQ: Hessian accumulation, double-precision Cholesky machinery, and the error-feedback column loop.
// See gptq.h for the algorithm and where it departs from the reference.
#include "quant/gptq.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant/qgrid.h"

#define HESS_ROWS 8      // rows of H per tile in the accumulator
#define HESS_COLS 128    // columns per tile: the 8×128 double tile stays in L1 across all tokens
#define CHOL_NB 64       // panel width of the blocked Cholesky
#define TRI_NB 8         // columns of L⁻¹ solved together (one 64-byte line of each output row)
#define TILE_ROWS 8      // rows of W quantized together (each Hinv row is reused for all of them)

// y -= a·x, unrolled by 8 so GCC's SLP vectorizer handles it at -O2.
static void axpy_neg(float *restrict y, const float *restrict x, float a, int64_t n) {
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        y[j + 0] -= a * x[j + 0]; y[j + 1] -= a * x[j + 1];
        y[j + 2] -= a * x[j + 2]; y[j + 3] -= a * x[j + 3];
        y[j + 4] -= a * x[j + 4]; y[j + 5] -= a * x[j + 5];
        y[j + 6] -= a * x[j + 6]; y[j + 7] -= a * x[j + 7];
    }
    for (; j < n; j++) y[j] -= a * x[j];
}

static double dot_d(const double *restrict a, const double *restrict b, int64_t n) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t k = 0;
    for (; k + 4 <= n; k += 4) {
        s0 += a[k] * b[k]; s1 += a[k + 1] * b[k + 1];
        s2 += a[k + 2] * b[k + 2]; s3 += a[k + 3] * b[k + 3];
    }
    for (; k < n; k++) s0 += a[k] * b[k];
    return (s0 + s1) + (s2 + s3);
}

// ---------------------------------------------------------------- Hessian accumulator

int gptq_hessian_init(gptq_hessian *h, int64_t n_in, intact_error *err) {
    memset(h, 0, sizeof *h);
    size_t n2;
    if (n_in <= 0 || it_mul_size((size_t)n_in, (size_t)n_in, &n2) || it_mul_size(n2, sizeof(double), &n2))
        return it_fail(err, INTACT_E_ARG, "gptq: bad Hessian size %lld", (long long)n_in);
    h->H = calloc(1, n2);
    if (!h->H) return it_fail(err, INTACT_E_NOMEM, "gptq: out of memory for a %lld² Hessian", (long long)n_in);
    h->n_in = n_in;
    return 0;
}

void gptq_hessian_free(gptq_hessian *h) {
    free(h->H);
    memset(h, 0, sizeof *h);
}

typedef struct {
    double *H;
    const float *X;
    int64_t nt, n;
    double a, b;   // H = a·H + b·Σ x xᵀ
} hess_ctx;

// Each thread owns interleaved row tiles (the upper-triangle work shrinks down the rows) and
// computes only j ≥ i, writing both H[i][j] and H[j][i]: every unordered pair has one owner.
static void hess_worker(void *arg, int ith, int nth) {
    const hess_ctx *c = arg;
    const int64_t n = c->n;
    double acc[HESS_ROWS][HESS_COLS];
    for (int64_t i0 = (int64_t)ith * HESS_ROWS; i0 < n; i0 += (int64_t)nth * HESS_ROWS) {
        int ni = n - i0 < HESS_ROWS ? (int)(n - i0) : HESS_ROWS;
        for (int64_t j0 = i0; j0 < n; j0 += HESS_COLS) {
            int nj = n - j0 < HESS_COLS ? (int)(n - j0) : HESS_COLS;
            memset(acc, 0, sizeof acc);
            for (int64_t t = 0; t < c->nt; t++) {
                const float *x = c->X + t * n;
                for (int r = 0; r < ni; r++) {
                    double xi = x[i0 + r];
                    double *ar = acc[r];
                    const float *xj = x + j0;
                    // A constant trip count for full tiles lets GCC vectorize this at -O2.
                    if (nj == HESS_COLS)
                        for (int j = 0; j < HESS_COLS; j++) ar[j] += xi * (double)xj[j];
                    else
                        for (int j = 0; j < nj; j++) ar[j] += xi * (double)xj[j];
                }
            }
            for (int r = 0; r < ni; r++) {
                int64_t i = i0 + r;
                for (int j = 0; j < nj; j++) {
                    int64_t jj = j0 + j;
                    if (jj < i) continue;
                    double v = c->a * c->H[i * n + jj] + c->b * acc[r][j];
                    c->H[i * n + jj] = v;
                    c->H[jj * n + i] = v;
                }
            }
        }
    }
}

void gptq_hessian_add(gptq_hessian *h, const float *X, int64_t nt, it_pool *pool) {
    if (nt <= 0) return;
    // Running mean as the reference: the old sum is rescaled so H is always 2/N·Σ x xᵀ.
    int64_t total = h->n_samples + nt;
    hess_ctx c = {h->H, X, nt, h->n_in, (double)h->n_samples / (double)total, 2.0 / (double)total};
    it_pool_run(pool, hess_worker, &c);
    h->n_samples = total;
}

// ---------------------------------------------------------------- Cholesky

typedef struct {
    double *A;
    int64_t n, k0, k1;
    int failed;   // set by the diagonal block (serial part) only
} chol_ctx;

// Rows [b, e) of the current panel: A[i][c] = (A[i][c] - Σ_{k0≤k<c} A[i][k]·A[c][k]) / A[c][c].
static void chol_panel_rows(chol_ctx *c, int64_t b, int64_t e) {
    const int64_t n = c->n;
    for (int64_t i = b; i < e; i++) {
        double *ai = c->A + i * n;
        for (int64_t col = c->k0; col < c->k1 && col < i; col++) {
            const double *ac = c->A + col * n;
            ai[col] = (ai[col] - dot_d(ai + c->k0, ac + c->k0, col - c->k0)) / ac[col];
        }
    }
}

static void chol_panel_worker(void *arg, int ith, int nth) {
    chol_ctx *c = arg;
    long b, e;
    it_split_range((long)(c->n - c->k1), ith, nth, 1, &b, &e);
    chol_panel_rows(c, c->k1 + b, c->k1 + e);
}

// Trailing update A[i][j] -= Σ_{k∈panel} A[i][k]·A[j][k] for k1 ≤ j ≤ i; rows interleaved because
// the work per row grows with i.
static void chol_update_worker(void *arg, int ith, int nth) {
    chol_ctx *c = arg;
    const int64_t n = c->n, w = c->k1 - c->k0;
    for (int64_t i = c->k1 + ith; i < n; i += nth) {
        double *ai = c->A + i * n;
        for (int64_t j = c->k1; j <= i; j++) ai[j] -= dot_d(ai + c->k0, c->A + j * n + c->k0, w);
    }
}

int gptq_cholesky(double *A, int64_t n, it_pool *pool) {
    chol_ctx c = {A, n, 0, 0, 0};
    for (int64_t k0 = 0; k0 < n; k0 += CHOL_NB) {
        c.k0 = k0;
        c.k1 = k0 + CHOL_NB < n ? k0 + CHOL_NB : n;
        // Diagonal block, serial: it is small and every later step depends on it.
        for (int64_t col = k0; col < c.k1; col++) {
            double *ac = A + col * n;
            double d = ac[col] - dot_d(ac + k0, ac + k0, col - k0);
            if (!(d > 0) || !isfinite(d)) return -1;
            ac[col] = sqrt(d);
            for (int64_t i = col + 1; i < c.k1; i++) {
                double *ai = A + i * n;
                ai[col] = (ai[col] - dot_d(ai + k0, ac + k0, col - k0)) / ac[col];
            }
        }
        if (c.k1 < n) {
            it_pool_run(pool, chol_panel_worker, &c);
            it_pool_run(pool, chol_update_worker, &c);
        }
    }
    for (int64_t i = 0; i < n; i++) memset(A + i * n + i + 1, 0, (size_t)(n - i - 1) * sizeof(double));
    return 0;
}

typedef struct {
    const double *L;   // lower factor
    double *out;       // receives L⁻¹ (lower)
    double *scratch;   // nth × n·TRI_NB
    int64_t n;
} trinv_ctx;

// Columns j0 .. j0+TRI_NB of L⁻¹ by forward substitution, solved together so each row of L is read
// once per group of columns. x[k·TRI_NB + c] holds column j0+c.
static void trinv_worker(void *arg, int ith, int nth) {
    const trinv_ctx *c = arg;
    const int64_t n = c->n;
    double *x = c->scratch + (size_t)ith * (size_t)n * TRI_NB;
    for (int64_t j0 = (int64_t)ith * TRI_NB; j0 < n; j0 += (int64_t)nth * TRI_NB) {
        int nc = n - j0 < TRI_NB ? (int)(n - j0) : TRI_NB;
        for (int64_t i = j0; i < n; i++) {
            const double *li = c->L + i * n;
            double acc[TRI_NB] = {0};
            for (int64_t k = j0; k < i; k++) {
                const double *xk = x + k * TRI_NB;
                for (int q = 0; q < TRI_NB; q++) acc[q] += li[k] * xk[q];
            }
            double *xi = x + i * TRI_NB;
            for (int q = 0; q < TRI_NB; q++) {
                double delta = (i == j0 + q) ? 1.0 : 0.0;
                xi[q] = (delta - acc[q]) / li[i];
            }
            for (int q = 0; q < nc; q++) c->out[i * n + j0 + q] = xi[q];
        }
    }
}

int gptq_hinv_upper(double *H, int64_t n, double *U, it_pool *pool) {
    // Reverse rows and columns: chol(PHP) = M M ᵀ gives H = V Vᵀ with V = P M P upper, so
    // H⁻¹ = V⁻ᵀ V⁻¹ and U = V⁻¹ = P M⁻¹ P.
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) U[i * n + j] = H[(n - 1 - i) * n + (n - 1 - j)];
    if (gptq_cholesky(U, n, pool)) return -1;
    int nth = it_pool_size(pool);
    double *scratch = malloc((size_t)nth * (size_t)n * TRI_NB * sizeof(double));
    if (!scratch) return -2;
    memset(H, 0, (size_t)n * (size_t)n * sizeof(double));
    trinv_ctx t = {U, H, scratch, n};
    it_pool_run(pool, trinv_worker, &t);
    free(scratch);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) U[i * n + j] = H[(n - 1 - i) * n + (n - 1 - j)];
    return 0;
}

// ---------------------------------------------------------------- quantization

gptq_opts gptq_default_opts(void) {
    gptq_opts o = {0.01, 128, 0};
    return o;
}

typedef struct {
    double d;
    int64_t i;
} diag_idx;

static int cmp_diag_desc(const void *pa, const void *pb) {
    const diag_idx *a = pa, *b = pb;
    if (a->d != b->d) return a->d > b->d ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

typedef struct {
    const qgrid *g;
    float *W;
    uint8_t *packed;
    const float *Hinv;      // n × n upper, in processing (possibly permuted) order
    const int64_t *perm;    // processing position -> natural column, or NULL
    int64_t n_out, n, block;
    char *scratch;          // per thread: tile_scratch_bytes()
} quant_ctx;

// Per tile of rows: group params (rows × n/group), super params (rows × n/block), Wt (rows × n),
// Err (rows × lazy block), codes (rows × n bytes).
static size_t tile_scratch_bytes(const qgrid *g, int64_t n, int64_t block) {
    size_t ng = (size_t)(n / g->group), nb = (size_t)(n / g->block);
    return (size_t)TILE_ROWS * (ng * sizeof(qg_group) + nb * sizeof(qg_super) + ((size_t)n + (size_t)block) * sizeof(float) +
                                (size_t)n);
}

static void quant_worker(void *arg, int ith, int nth) {
    const quant_ctx *c = arg;
    const qgrid *g = c->g;
    const int64_t n = c->n, G = g->group, B = g->block, ng = n / G, nb = n / B;
    char *base = c->scratch + (size_t)ith * tile_scratch_bytes(g, n, c->block);
    qg_group *pp = (qg_group *)base;
    qg_super *ss = (qg_super *)(pp + TILE_ROWS * ng);
    float *Wt = (float *)(ss + TILE_ROWS * nb);
    float *Err = Wt + TILE_ROWS * n;
    uint8_t *qq = (uint8_t *)(Err + TILE_ROWS * c->block);
    const int64_t n_tiles = (c->n_out + TILE_ROWS - 1) / TILE_ROWS;

    for (int64_t tile = ith; tile < n_tiles; tile += nth) {
        const int64_t r0 = tile * TILE_ROWS;
        const int rn = c->n_out - r0 < TILE_ROWS ? (int)(c->n_out - r0) : TILE_ROWS;
        for (int r = 0; r < rn; r++) {
            const float *wrow = c->W + (r0 + r) * n;
            float *wt = Wt + r * n;
            if (c->perm) {
                // Static groups: parameters of each natural block and group from the original weights.
                for (int64_t k = 0; k < nb; k++) qgrid_super(g, wrow + k * B, &ss[r * nb + k]);
                for (int64_t k = 0; k < ng; k++)
                    qgrid_group(g, &ss[r * nb + k * G / B], wrow + k * G, 1.0f, &pp[r * ng + k]);
                for (int64_t i = 0; i < n; i++) wt[i] = wrow[c->perm[i]];
            } else {
                memcpy(wt, wrow, (size_t)n * sizeof(float));
            }
        }
        for (int64_t i1 = 0; i1 < n; i1 += c->block) {
            const int64_t i2 = i1 + c->block < n ? i1 + c->block : n;
            for (int64_t i = i1; i < i2; i++) {
                const int64_t col = c->perm ? c->perm[i] : i, k = col / G;
                const float *hrow = c->Hinv + i * n;
                const float hii = hrow[i];
                for (int r = 0; r < rn; r++) {
                    float *wt = Wt + r * n;
                    // Without act_order i == col; the lazy block is a multiple of the stored block, so
                    // a block's (and a group's) weights are all in this lazy block and carry every
                    // update of the columns before them when the loop reaches their first column.
                    if (!c->perm && col % B == 0) qgrid_super(g, wt + i, &ss[r * nb + col / B]);
                    if (!c->perm && col % G == 0) qgrid_group(g, &ss[r * nb + col / B], wt + i, 1.0f, &pp[r * ng + k]);
                    const qg_group *p = &pp[r * ng + k];
                    const float w = wt[i];
                    const int q = qgrid_code(g, p, w);
                    qq[r * n + col] = (uint8_t)q;
                    // The error fed back is against the value the file will decode to.
                    const float e = (w - qgrid_value(p, q)) / hii;
                    Err[r * c->block + (i - i1)] = e;
                    axpy_neg(wt + i + 1, hrow + i + 1, e, i2 - i - 1);
                }
            }
            // Lazy batch update of the columns after the block with this block's errors.
            if (i2 < n) {
                for (int64_t k = 0; k < i2 - i1; k++) {
                    const float *hrow = c->Hinv + (i1 + k) * n;
                    for (int r = 0; r < rn; r++) {
                        const float e = Err[r * c->block + k];
                        if (e != 0.0f) axpy_neg(Wt + r * n + i2, hrow + i2, e, n - i2);
                    }
                }
            }
        }
        for (int r = 0; r < rn; r++) {
            uint8_t *prow = c->packed + (size_t)(r0 + r) * (size_t)nb * g->block_bytes;
            for (int64_t k = 0; k < nb; k++)
                qgrid_pack(g, &ss[r * nb + k], &pp[r * ng + k * B / G], qq + r * n + k * B, prow + (size_t)k * g->block_bytes);
            // The returned weights are by construction exactly what the packed blocks decode to.
            qgrid_dequantize_row(g, prow, c->W + (r0 + r) * n, n);
        }
    }
}

int gptq_quantize(const qf_spec *s, float *W, int64_t n_out, int64_t n_in, const double *H,
                  const gptq_opts *o, void *packed, it_pool *pool, intact_error *err) {
    qgrid g;
    if (qgrid_from_spec(&g, s)) return it_fail(err, INTACT_E_ARG, "gptq: unsupported format spec");
    return gptq_quantize_grid(&g, W, n_out, n_in, H, o, packed, pool, err);
}

int gptq_quantize_grid(const qgrid *g, float *W, int64_t n_out, int64_t n_in, const double *H,
                       const gptq_opts *o, void *packed, it_pool *pool, intact_error *err) {
    gptq_opts opts = o ? *o : gptq_default_opts();
    if (n_out <= 0 || n_in <= 0 || n_in % g->block)
        return it_fail(err, INTACT_E_ARG, "gptq: bad shape %lld × %lld for %s blocks of %d", (long long)n_out,
                       (long long)n_in, g->name, g->block);
    if (!(opts.damp >= 0) || opts.block <= 0) return it_fail(err, INTACT_E_ARG, "gptq: bad options");
    const int64_t n = n_in, G = g->block;
    const int64_t block = (opts.block + G - 1) / G * G;
    size_t n2;
    if (it_mul_size((size_t)n, (size_t)n, &n2) || it_mul_size(n2, sizeof(double), &n2))
        return it_fail(err, INTACT_E_ARG, "gptq: n_in %lld too large", (long long)n);

    int rc = -1;
    double *Hw = malloc(n2), *U = malloc(n2);
    float *Hinv = NULL;
    char *scratch = NULL;
    int64_t *perm = NULL;
    diag_idx *di = NULL;
    if (!Hw || !U) { it_fail(err, INTACT_E_NOMEM, "gptq: out of memory (n_in %lld)", (long long)n); goto done; }

    // Dead inputs (never active in calibration) carry no information: pin H_ii and drop the weights.
    for (int64_t i = 0; i < n; i++)
        if (H[i * n + i] == 0)
            for (int64_t r = 0; r < n_out; r++) W[r * n + i] = 0.0f;

    if (opts.act_order) {
        perm = malloc((size_t)n * sizeof *perm);
        di = malloc((size_t)n * sizeof *di);
        if (!perm || !di) { it_fail(err, INTACT_E_NOMEM, "gptq: out of memory"); goto done; }
        for (int64_t i = 0; i < n; i++) di[i] = (diag_idx){H[i * n + i] == 0 ? 1.0 : H[i * n + i], i};
        qsort(di, (size_t)n, sizeof *di, cmp_diag_desc);
        for (int64_t i = 0; i < n; i++) perm[i] = di[i].i;
    }

    double mean_diag = 0;
    for (int64_t i = 0; i < n; i++) mean_diag += H[i * n + i] == 0 ? 1.0 : H[i * n + i];
    mean_diag /= (double)n;

    int ok = 0;
    for (int attempt = 0; attempt < 4 && !ok; attempt++) {
        const double damp = opts.damp * pow(10.0, attempt) * mean_diag;
        for (int64_t i = 0; i < n; i++) {
            const int64_t pi = perm ? perm[i] : i;
            for (int64_t j = 0; j < n; j++) Hw[i * n + j] = H[pi * n + (perm ? perm[j] : j)];
            if (Hw[i * n + i] == 0) Hw[i * n + i] = 1.0;
            Hw[i * n + i] += damp;
        }
        int r = gptq_hinv_upper(Hw, n, U, pool);
        if (r == -2) { it_fail(err, INTACT_E_NOMEM, "gptq: out of memory"); goto done; }
        ok = r == 0;
    }
    if (!ok) {
        it_fail(err, INTACT_E_ARG, "gptq: Hessian is not positive definite even with damping %g·mean(diag H)",
                opts.damp * 1000);
        goto done;
    }
    free(Hw);
    Hw = NULL;
    if (it_mul_size((size_t)n, (size_t)n, &n2) || !(Hinv = malloc(n2 * sizeof(float)))) {
        it_fail(err, INTACT_E_NOMEM, "gptq: out of memory");
        goto done;
    }
    for (size_t k = 0; k < n2; k++) Hinv[k] = (float)U[k];
    free(U);
    U = NULL;

    const int nth = it_pool_size(pool);
    scratch = malloc((size_t)nth * tile_scratch_bytes(g, n, block));
    if (!scratch) { it_fail(err, INTACT_E_NOMEM, "gptq: out of memory"); goto done; }
    quant_ctx c = {g, W, packed, Hinv, perm, n_out, n, block, scratch};
    it_pool_run(pool, quant_worker, &c);
    rc = 0;
done:
    free(Hw);
    free(U);
    free(Hinv);
    free(scratch);
    free(perm);
    free(di);
    return rc;
}
