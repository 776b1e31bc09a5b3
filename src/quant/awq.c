// AWQ scale and clip searches. See awq.h.
#include "quant/awq.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant/qgrid.h"

static float dot_f(const float *restrict a, const float *restrict b, int64_t n) {
    float s[8] = {0};
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int q = 0; q < 8; q++) s[q] += a[k + q] * b[k + q];
    for (; k < n; k++) s[0] += a[k] * b[k];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

// Evenly spaced rows of X, at most AWQ_MAX_TOKENS; *ns receives the count. NULL on OOM.
static float *subsample(const float *X, int64_t nt, int64_t n_in, int64_t *ns) {
    int64_t m = nt < AWQ_MAX_TOKENS ? nt : AWQ_MAX_TOKENS;
    float *xs = malloc((size_t)m * (size_t)n_in * sizeof(float));
    if (!xs) return NULL;
    for (int64_t k = 0; k < m; k++)
        memcpy(xs + k * n_in, X + (k * nt / m) * n_in, (size_t)n_in * sizeof(float));
    *ns = m;
    return xs;
}

static int check_shape(const qgrid *g, int64_t n_out, int64_t n_in, intact_error *err) {
    if (n_out <= 0 || n_in <= 0 || n_in % g->block)
        return it_fail(err, INTACT_E_ARG, "awq: bad shape %lld × %lld for %s blocks of %d", (long long)n_out,
                       (long long)n_in, g->name, g->block);
    return 0;
}

// ---------------------------------------------------------------- scale search

typedef struct {
    const qgrid *g;
    const float *const *W;
    const int64_t *n_out;
    int n_mats;
    int64_t n_in, rows, ns;
    const float *xs, *scales;
    double *row_loss;     // rows
    float *scratch;       // per thread 2·n_in
} scale_ctx;

// Per row: δ = Q(w·s)/s − w, loss = Σ_t (x_t·δ)². Rows of all matrices are numbered consecutively.
static void scale_worker(void *arg, int ith, int nth) {
    const scale_ctx *c = arg;
    const int64_t n = c->n_in, B = c->g->block;
    float *ws = c->scratch + (size_t)ith * 2 * (size_t)n, *dq = ws + n;
    long b, e;
    it_split_range((long)c->rows, ith, nth, 1, &b, &e);
    int k = 0;
    int64_t base = 0;
    for (int64_t r = b; r < e; r++) {
        while (r >= base + c->n_out[k]) base += c->n_out[k++];
        const float *w = c->W[k] + (r - base) * n;
        for (int64_t j = 0; j < n; j++) ws[j] = w[j] * c->scales[j];
        for (int64_t k = 0; k < n; k += B) qgrid_quantize_block(c->g, ws + k, NULL, NULL, dq + k);
        for (int64_t j = 0; j < n; j++) dq[j] = dq[j] / c->scales[j] - w[j];
        double loss = 0;
        for (int64_t t = 0; t < c->ns; t++) {
            double y = dot_f(c->xs + t * n, dq, n);
            loss += y * y;
        }
        c->row_loss[r] = loss;
    }
}

// The reference's scale for grid point i: mean|x|^α clamped at 1e-4, normalized by sqrt(max·min).
static void grid_scales(const float *mean_abs, int64_t n, int i, float *s) {
    const float alpha = (float)i / AWQ_N_GRID;
    float mx = 0, mn = INFINITY;
    for (int64_t j = 0; j < n; j++) {
        float v = powf(mean_abs[j], alpha);
        s[j] = v < 1e-4f ? 1e-4f : v;
        mx = s[j] > mx ? s[j] : mx;
        mn = s[j] < mn ? s[j] : mn;
    }
    const float norm = sqrtf(mx * mn);
    for (int64_t j = 0; j < n; j++) s[j] /= norm;
}

int awq_search_scale(const qf_spec *s, const float *const *W, const int64_t *n_out, int n_mats, int64_t n_in,
                     const float *X, int64_t nt, const float *mean_abs, float *scales, awq_scale_result *res,
                     it_pool *pool, intact_error *err) {
    qgrid g;
    if (qgrid_from_spec(&g, s)) return it_fail(err, INTACT_E_ARG, "awq: unsupported format spec");
    return awq_search_scale_grid(&g, W, n_out, n_mats, n_in, X, nt, mean_abs, scales, res, pool, err);
}

int awq_search_scale_grid(const qgrid *s, const float *const *W, const int64_t *n_out, int n_mats, int64_t n_in,
                          const float *X, int64_t nt, const float *mean_abs, float *scales, awq_scale_result *res,
                          it_pool *pool, intact_error *err) {
    if (n_mats <= 0 || nt <= 0) return it_fail(err, INTACT_E_ARG, "awq: no matrices or no tokens");
    int64_t rows = 0;
    for (int k = 0; k < n_mats; k++) {
        if (check_shape(s, n_out[k], n_in, err)) return -1;
        rows += n_out[k];
    }
    int64_t ns = 0;
    const int nth = it_pool_size(pool);
    float *xs = subsample(X, nt, n_in, &ns);
    double *row_loss = malloc((size_t)rows * sizeof(double));
    float *scratch = malloc((size_t)nth * 2 * (size_t)n_in * sizeof(float));
    float *cur = malloc((size_t)n_in * sizeof(float));
    int rc = -1;
    if (!xs || !row_loss || !scratch || !cur) { it_fail(err, INTACT_E_NOMEM, "awq: out of memory"); goto done; }

    memset(res, 0, sizeof *res);
    double best = INFINITY;
    res->best = 0;
    for (int i = 0; i < AWQ_N_GRID; i++) {
        grid_scales(mean_abs, n_in, i, cur);
        scale_ctx c = {s, W, n_out, n_mats, n_in, rows, ns, xs, cur, row_loss, scratch};
        it_pool_run(pool, scale_worker, &c);
        double loss = 0;   // summed serially in row order: the result does not depend on the pool
        for (int64_t r = 0; r < rows; r++) loss += row_loss[r];
        loss /= (double)ns * (double)rows;
        res->loss[i] = loss;
        if (loss < best) best = loss, res->best = i;
    }
    res->alpha = (float)res->best / AWQ_N_GRID;
    grid_scales(mean_abs, n_in, res->best, scales);
    rc = 0;
done:
    free(xs);
    free(row_loss);
    free(scratch);
    free(cur);
    return rc;
}

// ---------------------------------------------------------------- clip search

typedef struct {
    const qgrid *g;
    const float *W, *xs;
    int64_t n_out, n_in, ns;
    double *gram;    // per group G × G: Σ_t x_g[t] x_g[t]ᵀ
    float *clips;
} clip_ctx;

static void gram_worker(void *arg, int ith, int nth) {
    const clip_ctx *c = arg;
    const int64_t G = c->g->group, ng = c->n_in / G;
    for (int64_t g = ith; g < ng; g += nth) {
        double *m = c->gram + g * G * G;
        memset(m, 0, (size_t)(G * G) * sizeof(double));
        for (int64_t t = 0; t < c->ns; t++) {
            const float *x = c->xs + t * c->n_in + g * G;
            for (int64_t i = 0; i < G; i++)
                for (int64_t j = 0; j < G; j++) m[i * G + j] += (double)x[i] * (double)x[j];
        }
    }
}

// Σ_t (x_t·δ)² = δᵀ·Gram·δ: G² work per candidate instead of ns·G.
static double quad_form(const double *m, const float *d, int64_t G) {
    double s = 0;
    for (int64_t i = 0; i < G; i++) {
        double r = 0;
        for (int64_t j = 0; j < G; j++) r += m[i * G + j] * (double)d[j];
        s += (double)d[i] * r;
    }
    return s;
}

static void clip_worker(void *arg, int ith, int nth) {
    const clip_ctx *c = arg;
    const qgrid *q = c->g;
    const int64_t G = q->group, B = q->block, ng = c->n_in / G;
    float dq[128];
    long b, e;
    it_split_range((long)c->n_out, ith, nth, 1, &b, &e);
    for (int64_t r = b; r < e; r++) {
        qg_super sup;
        for (int64_t g = 0; g < ng; g++) {
            const float *w = c->W + r * c->n_in + g * G;
            // A group's clip is searched against its block's super parameters, taken at clip 1.
            if ((g * G) % B == 0) qgrid_super(q, w, &sup);
            double best = INFINITY;
            float best_c = 1.0f;
            for (int i = 0; i < AWQ_CLIP_GRID; i++) {
                const float clip = 1.0f - (float)i / 20.0f;
                qg_group p;
                qgrid_group(q, &sup, w, clip, &p);
                for (int64_t j = 0; j < G; j++) dq[j] = qgrid_value(&p, qgrid_code(q, &p, w[j])) - w[j];
                double loss = quad_form(c->gram + g * G * G, dq, G);
                if (loss < best) best = loss, best_c = clip;
            }
            c->clips[r * ng + g] = best_c;
        }
    }
}

int awq_search_clip(const qf_spec *s, const float *W, int64_t n_out, int64_t n_in, const float *X, int64_t nt,
                    float *clips, it_pool *pool, intact_error *err) {
    qgrid g;
    if (qgrid_from_spec(&g, s)) return it_fail(err, INTACT_E_ARG, "awq: unsupported format spec");
    return awq_search_clip_grid(&g, W, n_out, n_in, X, nt, clips, pool, err);
}

int awq_search_clip_grid(const qgrid *s, const float *W, int64_t n_out, int64_t n_in, const float *X, int64_t nt,
                         float *clips, it_pool *pool, intact_error *err) {
    if (check_shape(s, n_out, n_in, err)) return -1;
    if (nt <= 0) return it_fail(err, INTACT_E_ARG, "awq: no tokens");
    int64_t ns = 0;
    float *xs = subsample(X, nt, n_in, &ns);
    double *gram = malloc((size_t)n_in * (size_t)s->group * sizeof(double));
    int rc = -1;
    if (!xs || !gram) { it_fail(err, INTACT_E_NOMEM, "awq: out of memory"); goto done; }
    clip_ctx c = {s, W, xs, n_out, n_in, ns, gram, clips};
    it_pool_run(pool, gram_worker, &c);
    it_pool_run(pool, clip_worker, &c);
    rc = 0;
done:
    free(xs);
    free(gram);
    return rc;
}

typedef struct {
    const qgrid *g;
    const float *W, *clips;
    float *out;
    uint8_t *packed;
    int64_t n_out, n_in;
} aq_ctx;

static void aq_worker(void *arg, int ith, int nth) {
    const aq_ctx *c = arg;
    const qgrid *g = c->g;
    const int64_t B = g->block, nb = c->n_in / B, gpb = B / g->group;
    long b, e;
    it_split_range((long)c->n_out, ith, nth, 1, &b, &e);
    for (int64_t r = b; r < e; r++) {
        uint8_t *prow = c->packed + (size_t)r * (size_t)nb * g->block_bytes;
        for (int64_t k = 0; k < nb; k++)
            qgrid_quantize_block(g, c->W + r * c->n_in + k * B, c->clips ? c->clips + (r * nb + k) * gpb : NULL,
                                 prow + (size_t)k * g->block_bytes, NULL);
        if (c->out) qgrid_dequantize_row(g, prow, c->out + r * c->n_in, c->n_in);
    }
}

int awq_quantize_matrix(const qf_spec *s, const float *W, int64_t n_out, int64_t n_in, const float *clips,
                        void *packed, float *W_dequant_out, it_pool *pool, intact_error *err) {
    qgrid g;
    if (qgrid_from_spec(&g, s)) return it_fail(err, INTACT_E_ARG, "awq: unsupported format spec");
    return awq_quantize_matrix_grid(&g, W, n_out, n_in, clips, packed, W_dequant_out, pool, err);
}

int awq_quantize_matrix_grid(const qgrid *g, const float *W, int64_t n_out, int64_t n_in, const float *clips,
                             void *packed, float *W_dequant_out, it_pool *pool, intact_error *err) {
    if (check_shape(g, n_out, n_in, err)) return -1;
    aq_ctx c = {g, W, clips, W_dequant_out, packed, n_out, n_in};
    it_pool_run(pool, aq_worker, &c);
    return 0;
}
