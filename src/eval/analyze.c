// Pivot-token analysis (IntactKV): one forward pass with an observer that reduces what it sees to
// per-token statistics right away — max|h| and its channels from "block_out", sums of the attention
// probabilities each key receives from "attn_probs", absmax/sum/sum of squares of each K and V row —
// so memory stays O(layers x heads x tokens) unless the caller asks for the full attention maps.
// The criteria are documented with the API in intact.h.
#include "eval/analyze.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

enum { KV_ACC = 6 };   // per (layer, token): k absmax, k sum, k sum of squares, then the same for v

typedef struct obs_state {
    intact_analysis *a;
    int kv_dim;
    int *done;       // [n_layers] tokens each layer has seen so far (evals arrive in micro-batches)
    double *kvacc;   // [(layer * n + token) * KV_ACC]
    double *psum;    // [(layer * n_heads + head) * n + key] attention probability summed over queries
    double *pfar;    // the same over queries at least a->local positions after the key
    int bad;         // an observed tensor had an unexpected shape: the result would be wrong
} obs_state;

double analyze_uniform_share(int n, int j) {
    double s = 0;
    for (int t = j; t < n; t++) s += 1.0 / (t + 1);
    return s / (n - j);
}

float analyze_median_without(const float *sorted, int n, int skip) {
    int m = n - 1;   // elements left; reduced index k maps to k (< skip) or k + 1
    int lo = (m - 1) / 2, hi = m / 2;
    float a = sorted[lo < skip ? lo : lo + 1], b = sorted[hi < skip ? hi : hi + 1];
    return 0.5f * (a + b);
}

intact_analyze_params intact_analyze_default_params(void) {
    intact_analyze_params p = {1, 4.0f, 3.0f, 0};
    return p;
}

static void observe_kv(obs_state *s, int layer, int which, const float *data, int nt, int width) {
    if (width != s->kv_dim) { s->bad = 1; return; }
    int n = s->a->n_tokens, pos = s->done[layer];
    for (int t = 0; t < nt; t++) {
        const float *r = data + (size_t)t * width;
        double amax = 0, sum = 0, sq = 0;
        for (int c = 0; c < width; c++) {
            double x = r[c];
            if (fabs(x) > amax) amax = fabs(x);
            sum += x;
            sq += x * x;
        }
        double *acc = s->kvacc + ((size_t)layer * n + pos + t) * KV_ACC + 3 * which;
        acc[0] = amax;
        acc[1] = sum;
        acc[2] = sq;
    }
}

static void observe_probs(obs_state *s, int layer, const float *data, int rows, int width) {
    intact_analysis *a = s->a;
    int H = a->n_heads, n = a->n_tokens, pos = s->done[layer];
    int nq = rows / H;
    if (rows % H || width != pos + nq) { s->bad = 1; return; }
    for (int h = 0; h < H; h++) {
        double *ps = s->psum + ((size_t)layer * H + h) * n;
        for (int t = 0; t < nq; t++) {
            const float *r = data + ((size_t)h * nq + t) * width;
            int q = pos + t;   // keys after the query are masked: only 0..q are meaningful
            double *pf = s->pfar + ((size_t)layer * H + h) * n;
            for (int j = 0; j <= q; j++) ps[j] += r[j];
            for (int j = 0; j <= q - a->local; j++) pf[j] += r[j];
            if (a->maps) memcpy(a->maps + (((size_t)layer * H + h) * n + q) * n, r, (size_t)(q + 1) * sizeof *r);
        }
    }
}

static void observe_block(obs_state *s, int layer, const float *data, int nt, int width) {
    intact_analysis *a = s->a;
    if (width != a->dim) { s->bad = 1; return; }
    for (int t = 0; t < nt; t++) {
        const float *r = data + (size_t)t * width;
        float m1 = -1, m2 = -1;
        int c1 = -1, c2 = -1;
        for (int c = 0; c < width; c++) {
            float v = fabsf(r[c]);
            if (v > m1) { m2 = m1; c2 = c1; m1 = v; c1 = c; }
            else if (v > m2) { m2 = v; c2 = c; }
        }
        size_t i = (size_t)layer * a->n_tokens + s->done[layer] + t;
        a->max_abs[i] = m1;
        a->channel[i] = c1;
        a->channel2[i] = c2;
    }
    s->done[layer] += nt;   // block_out is the last per-layer tensor of a micro-batch
}

static void on_tensor(void *user, int layer, const char *name, const float *data, int nt, int width) {
    obs_state *s = user;
    if (s->bad || layer < 0 || layer >= s->a->n_layers) return;   // final_norm, logits: not needed
    int is_probs = strcmp(name, "attn_probs") == 0;
    if (!is_probs && s->done[layer] + nt > s->a->n_tokens) { s->bad = 1; return; }
    if (strcmp(name, "k") == 0) observe_kv(s, layer, 0, data, nt, width);
    else if (strcmp(name, "v") == 0) observe_kv(s, layer, 1, data, nt, width);
    else if (is_probs) observe_probs(s, layer, data, nt, width);
    else if (strcmp(name, "block_out") == 0) observe_block(s, layer, data, nt, width);
}

static int cmp_float(const void *x, const void *y) {
    float a = *(const float *)x, b = *(const float *)y;
    return (a > b) - (a < b);
}

// Medians over the other tokens, attention shares and the criteria, once the pass is complete.
static void finish_layers(intact_analysis *a, const obs_state *s, const intact_analyze_params *p,
                          float *sorted) {
    int n = a->n_tokens, H = a->n_heads;
    for (int j = 0; j < n; j++) a->uniform[j] = (float)analyze_uniform_share(n, j);
    for (int l = 0; l < a->n_layers; l++) {
        const float *mx = a->max_abs + (size_t)l * n;
        memcpy(sorted, mx, (size_t)n * sizeof *sorted);
        qsort(sorted, (size_t)n, sizeof *sorted, cmp_float);
        for (int i = 0; i < n; i++) {
            int r = 0;   // any element equal to mx[i] will do: removing it leaves the same multiset
            while (r < n - 1 && sorted[r] != mx[i]) r++;
            a->median_other[(size_t)l * n + i] = analyze_median_without(sorted, n, r);
        }
        for (int j = 0; j < n; j++) {
            double mean = 0;
            for (int h = 0; h < H; h++) {
                size_t hi = ((size_t)l * H + h) * n + j;
                a->head_share[hi] = (float)(s->psum[hi] / (n - j));
                mean += a->head_share[hi];
            }
            a->share[(size_t)l * n + j] = (float)(mean / H);
            a->sink_ratio[(size_t)l * n + j] = NAN;
            if (2 * (n - j - a->local) < n) continue;
            double far = 0, uni = 0;
            for (int h = 0; h < H; h++) far += s->pfar[((size_t)l * H + h) * n + j];
            for (int t = j + a->local; t < n; t++) uni += 1.0 / (t + 1);
            a->sink_ratio[(size_t)l * n + j] = (float)(far / H / uni);
        }
        for (int i = 0; i < n; i++) {
            size_t li = (size_t)l * n + i;
            unsigned char w = 0;
            if (a->max_abs[li] >= p->pivot_ratio * a->median_other[li]) w |= INTACT_PIVOT_ACT;
            if (a->sink_ratio[li] >= p->attn_ratio) w |= INTACT_PIVOT_ATTN;   // false for NaN
            a->why[li] = w;
        }
    }
}

// K/V absmax and standard deviation of the pivot tokens' rows vs the other rows, per layer.
static void finish_kv(intact_analysis *a, const obs_state *s, const unsigned char *is_pivot) {
    int n = a->n_tokens;
    for (int l = 0; l < a->n_layers; l++) {
        intact_kv_stats *st = &a->kv[l];
        for (int g = 0; g < 2; g++) {          // g = 0: pivot tokens, 1: the others
            for (int w = 0; w < 2; w++) {      // w = 0: K, 1: V
                double amax = 0, sum = 0, sq = 0, cnt = 0;
                for (int i = 0; i < n; i++) {
                    if ((is_pivot[i] != 0) != (g == 0)) continue;
                    const double *acc = s->kvacc + ((size_t)l * n + i) * KV_ACC + 3 * w;
                    if (acc[0] > amax) amax = acc[0];
                    sum += acc[1];
                    sq += acc[2];
                    cnt += s->kv_dim;
                }
                double mean = cnt > 0 ? sum / cnt : 0, var = cnt > 0 ? sq / cnt - mean * mean : 0;
                float am = cnt > 0 ? (float)amax : NAN, sd = cnt > 0 ? (float)sqrt(var > 0 ? var : 0) : NAN;
                if (w == 0) { st->k_absmax[g] = am; st->k_std[g] = sd; }
                else { st->v_absmax[g] = am; st->v_std[g] = sd; }
            }
        }
    }
}

void intact_analysis_free(intact_analysis *a) {
    if (!a) return;
    free(a->tokens); free(a->max_abs); free(a->channel); free(a->channel2); free(a->median_other);
    free(a->share); free(a->head_share); free(a->uniform); free(a->sink_ratio); free(a->why); free(a->pivots); free(a->kv);
    free(a->maps);
    free(a);
}

static intact_analysis *alloc_analysis(const intact_model_info *in, int n, int keep_maps) {
    intact_analysis *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->n_tokens = n;
    a->n_layers = in->n_layers;
    a->n_heads = in->n_heads;
    a->dim = in->dim;
    size_t ln = (size_t)in->n_layers * n, lhn = ln * in->n_heads, maps = 0;
    a->tokens = malloc((size_t)n * sizeof *a->tokens);
    a->max_abs = malloc(ln * sizeof *a->max_abs);
    a->channel = malloc(ln * sizeof *a->channel);
    a->channel2 = malloc(ln * sizeof *a->channel2);
    a->median_other = malloc(ln * sizeof *a->median_other);
    a->share = malloc(ln * sizeof *a->share);
    a->head_share = malloc(lhn * sizeof *a->head_share);
    a->uniform = malloc((size_t)n * sizeof *a->uniform);
    a->sink_ratio = malloc(ln * sizeof *a->sink_ratio);
    a->local = n / 4 < 8 ? n / 4 : 8;
    a->why = calloc(ln, 1);
    a->pivots = malloc((size_t)n * sizeof *a->pivots);
    a->kv = calloc((size_t)in->n_layers, sizeof *a->kv);
    int ok = a->tokens && a->max_abs && a->channel && a->channel2 && a->median_other && a->share &&
             a->head_share && a->uniform && a->sink_ratio && a->why && a->pivots && a->kv;
    if (ok && keep_maps) {
        ok = it_mul_size(lhn, (size_t)n, &maps) == 0 && it_mul_size(maps, sizeof(float), &maps) == 0 &&
             (a->maps = calloc(1, maps)) != NULL;
    }
    if (!ok) { intact_analysis_free(a); return NULL; }
    return a;
}

intact_analysis *intact_analyze(const intact_model *m, const int32_t *tokens, int n,
                                const intact_analyze_params *p, intact_error *err) {
    intact_analyze_params dp = intact_analyze_default_params();
    if (!p) p = &dp;
    if (!m || !tokens) { it_fail(err, INTACT_E_ARG, "analyze: no model or tokens"); return NULL; }
    if (!(p->pivot_ratio > 0) || !(p->attn_ratio > 0)) {
        it_fail(err, INTACT_E_ARG, "analyze: pivot_ratio and attn_ratio must be positive");
        return NULL;
    }
    intact_model_info in;
    intact_model_get_info(m, &in);
    if (n < 2 || n > in.ctx_len) {
        it_fail(err, INTACT_E_ARG, "analyze: needs 2 to %d tokens (the model context), got %d", in.ctx_len, n);
        return NULL;
    }
    intact_analysis *a = alloc_analysis(&in, n, p->keep_maps);
    obs_state s = {a, in.head_dim * in.n_kv_heads, NULL, NULL, NULL, NULL, 0};
    size_t lhn = (size_t)in.n_layers * in.n_heads * n;
    s.done = calloc((size_t)in.n_layers, sizeof *s.done);
    s.kvacc = calloc((size_t)in.n_layers * n * KV_ACC, sizeof *s.kvacc);
    s.psum = calloc(lhn, sizeof *s.psum);
    s.pfar = calloc(lhn, sizeof *s.pfar);
    float *sorted = malloc((size_t)n * sizeof *sorted);
    unsigned char *is_pivot = calloc((size_t)n, 1);
    intact_ctx *c = NULL;
    int rc = -1;
    if (!a || !s.done || !s.kvacc || !s.psum || !s.pfar || !sorted || !is_pivot) {
        it_fail(err, INTACT_E_NOMEM, "analyze: out of memory for %d tokens", n);
        goto out;
    }
    memcpy(a->tokens, tokens, (size_t)n * sizeof *tokens);
    intact_ctx_params cp = intact_ctx_default_params();
    cp.n_ctx = n;
    cp.n_threads = p->n_threads > 0 ? p->n_threads : 1;
    if (!(c = intact_ctx_new(m, &cp, err))) goto out;
    if (intact_ctx_record_attention(c, 1) != 0) {
        it_fail(err, INTACT_E_NOMEM, "analyze: out of memory for attention probabilities");
        goto out;
    }
    intact_ctx_set_observer(c, on_tensor, &s);
    if (intact_ctx_eval(c, tokens, n, err) != 0) goto out;
    for (int l = 0; l < in.n_layers; l++) s.bad |= s.done[l] != n;
    if (s.bad) {
        it_fail(err, INTACT_E_UNSUPPORTED, "analyze: the forward pass reported unexpected tensor shapes");
        goto out;
    }
    finish_layers(a, &s, p, sorted);
    for (size_t li = 0; li < (size_t)in.n_layers * n; li++)
        if (a->why[li]) is_pivot[li % n] = 1;
    for (int i = 0; i < n; i++)
        if (is_pivot[i]) a->pivots[a->n_pivots++] = i;
    finish_kv(a, &s, is_pivot);
    rc = 0;
out:
    intact_ctx_free(c);
    free(s.done); free(s.kvacc); free(s.psum); free(s.pfar); free(sorted); free(is_pivot);
    if (rc != 0) { intact_analysis_free(a); a = NULL; }
    return a;
}

typedef struct prof_state {
    const int *layers;
    int nl, n, dim, bad;
    int *done;      // [nl] tokens seen so far (evals arrive in micro-batches)
    float *rows;    // [(k * n + token) * dim] |h| after layers[k]
} prof_state;

static void on_block(void *user, int layer, const char *name, const float *data, int nt, int width) {
    prof_state *s = user;
    if (strcmp(name, "block_out") != 0) return;
    for (int k = 0; k < s->nl; k++) {
        if (s->layers[k] != layer) continue;
        if (width != s->dim || s->done[k] + nt > s->n) { s->bad = 1; return; }
        float *dst = s->rows + ((size_t)k * s->n + s->done[k]) * s->dim;
        for (size_t i = 0; i < (size_t)nt * width; i++) dst[i] = fabsf(data[i]);
        s->done[k] += nt;
    }
}

int analyze_channel_profile(const intact_model *m, const int32_t *tokens, int n, int who, const int *layers,
                            int nl, int n_threads, float *out, intact_error *err) {
    if (!m || !tokens || !layers || !out || nl < 1 || who < 0 || who >= n)
        return it_fail(err, INTACT_E_ARG, "channel profile: bad arguments");
    intact_model_info in;
    intact_model_get_info(m, &in);
    if (n < 2 || n > in.ctx_len)
        return it_fail(err, INTACT_E_ARG, "channel profile: needs 2 to %d tokens, got %d", in.ctx_len, n);
    for (int k = 0; k < nl; k++)
        if (layers[k] < 0 || layers[k] >= in.n_layers)
            return it_fail(err, INTACT_E_ARG, "channel profile: no layer %d", layers[k]);
    prof_state s = {layers, nl, n, in.dim, 0, calloc((size_t)nl, sizeof(int)), NULL};
    size_t cells;
    if (it_mul_size((size_t)nl * n, (size_t)in.dim * sizeof(float), &cells) == 0) s.rows = malloc(cells);
    float *col = malloc((size_t)n * sizeof *col);
    intact_ctx *c = NULL;
    int rc = -1;
    if (!s.done || !s.rows || !col) { it_fail(err, INTACT_E_NOMEM, "channel profile: out of memory"); goto out; }
    intact_ctx_params cp = intact_ctx_default_params();
    cp.n_ctx = n;
    cp.n_threads = n_threads > 0 ? n_threads : 1;
    if (!(c = intact_ctx_new(m, &cp, err))) goto out;
    intact_ctx_set_observer(c, on_block, &s);
    if (intact_ctx_eval(c, tokens, n, err) != 0) goto out;
    for (int k = 0; k < nl; k++) s.bad |= s.done[k] != n;
    if (s.bad) { it_fail(err, INTACT_E_UNSUPPORTED, "channel profile: unexpected tensor shapes"); goto out; }
    for (int k = 0; k < nl; k++)
        for (int ch = 0; ch < in.dim; ch++) {
            int m2 = 0;
            float mx = 0;
            for (int t = 0; t < n; t++) {
                float v = s.rows[((size_t)k * n + t) * in.dim + ch];
                if (t == who) continue;
                col[m2++] = v;
                mx = v > mx ? v : mx;
            }
            qsort(col, (size_t)m2, sizeof *col, cmp_float);
            float *o = out + (size_t)k * 3 * in.dim + ch;
            o[0] = s.rows[((size_t)k * n + who) * in.dim + ch];
            o[in.dim] = mx;
            o[2 * in.dim] = m2 % 2 ? col[m2 / 2] : 0.5f * (col[m2 / 2 - 1] + col[m2 / 2]);
        }
    rc = 0;
out:
    intact_ctx_free(c);
    free(s.done); free(s.rows); free(col);
    return rc;
}
