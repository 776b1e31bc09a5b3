// Forward pass with saved activations for prefix calibration (see train.h). It is the engine's
// forward pass (forward/forward.c) itself: a context with the prefix installed evaluates the sample,
// and an observer saves what the backward pass needs. So the training forward cannot drift from the
// engine, and whatever the engine does (activation quantization, a rotated model) calibration sees.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "forward/forward.h"
#include "ikv/train.h"
#include "kernels/hadamard.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "kv/kv.h"

static float *falloc(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

// Dequantizes W (n_out rows of n_in, any type) row by row into its transpose (n_in rows of n_out).
static int transpose_weight(const it_tensor *w, it_tensor *out, float **data) {
    int64_t n_in = w->ne[0], n_out = w->ne[1];
    const fmt_traits *t = fmt_get(w->type);
    size_t row = fmt_row_bytes(w->type, n_in);
    float *d = falloc((size_t)n_in * n_out), *buf = falloc((size_t)n_in);
    if (!t || !row || !d || !buf) {
        free(d);
        free(buf);
        return -1;
    }
    for (int64_t r = 0; r < n_out; r++) {
        t->to_float((const char *)w->data + (size_t)r * row, buf, n_in);
        for (int64_t i = 0; i < n_in; i++) d[(size_t)i * n_out + r] = buf[i];
    }
    free(buf);
    it_tensor o = {w->name, IT_TYPE_F32, 2, {n_out, n_in, 1, 1}, d, (size_t)n_in * n_out * sizeof(float)};
    *out = o;
    *data = d;
    return 0;
}

// Saves the engine's activations of one sample. A micro-batch of n rows of layer l starts at row
// rows[l] (rows[l] advances at block_out, the last tensor of a layer); attention probabilities come
// as (n_heads * n, P + rows[l] + n) — the observer's row count is n_heads * n there — and are stored zero-padded to all nk keys.
static void train_observer(void *user, int layer, const char *name, const float *x, int n, int width) {
    ikv_train *w = user;
    if (layer < 0 || layer >= w->n_layers || w->obs_bad) return;
    ikv_acts *a = &w->acts[layer];
    int t0 = w->rows[layer], dim = w->dim, hid = w->hid, kvd = w->kv_dim, nk = w->nk;
    if (!strcmp(name, "attn_probs")) {   // n counts rows of all heads: n_heads * tokens
        int keys = w->P + t0 + n / w->n_heads;
        if (n % w->n_heads || t0 + n / w->n_heads > w->T || width != keys) { w->obs_bad = 1; return; }
        n /= w->n_heads;
        for (int h = 0; h < w->n_heads; h++)
            for (int t = 0; t < n; t++) {
                float *dst = a->probs + ((size_t)h * w->T + t0 + t) * nk;
                memcpy(dst, x + ((size_t)h * n + t) * width, (size_t)keys * sizeof *dst);
                memset(dst + keys, 0, (size_t)(nk - keys) * sizeof *dst);
            }
        return;
    }
    if (t0 + n > w->T) { w->obs_bad = 1; return; }
    float *dst = NULL;
    int wd = dim;
    size_t td = (size_t)w->T * dim;
    if (!strcmp(name, "embd")) dst = w->x;
    else if (!strcmp(name, "attn_norm")) dst = a->xn1;
    else if (!strcmp(name, "q")) dst = a->q;
    else if (!strcmp(name, "k")) dst = a->kall + (size_t)w->P * kvd, wd = kvd;
    else if (!strcmp(name, "v")) dst = a->vall + (size_t)w->P * kvd, wd = kvd;
    else if (!strcmp(name, "wo_in")) dst = a->att;
    else if (!strcmp(name, "attn_resid")) dst = a->xmid;
    else if (!strcmp(name, "ffn_norm")) dst = a->xn2;
    else if (!strcmp(name, "ffn_gate")) dst = a->g, wd = hid;
    else if (!strcmp(name, "ffn_up")) dst = a->u, wd = hid;
    else if (!strcmp(name, "down_in")) dst = a->s, wd = hid;
    else if (!strcmp(name, "block_out")) dst = w->x + (size_t)(layer + 1) * td;
    if (!dst) return;
    if (width != wd) { w->obs_bad = 1; return; }
    memcpy(dst + (size_t)t0 * wd, x, (size_t)n * wd * sizeof *dst);
    if (!strcmp(name, "block_out")) w->rows[layer] += n;
}

void ikv_train_free(ikv_train *w) {
    if (!w) return;
    for (int i = 0; w->wt_data && i < w->n_layers * IT_LAYER_NMAT; i++) free(w->wt_data[i]);
    for (int l = 0; w->acts && l < w->n_layers; l++) {
        ikv_acts *a = &w->acts[l];
        float *all[] = {a->xn1, a->r1, a->q, a->kall, a->vall, a->probs, a->att, a->xmid,
                        a->xn2, a->r2, a->g, a->u, a->s};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
    }
    free(w->wt_data); free(w->wt); free(w->acts); free(w->theta); free(w->cs); free(w->x);
    free(w->dx); free(w->dy); free(w->dtmp); free(w->dh1); free(w->dh2); free(w->dq);
    free(w->dkall); free(w->dvall); free(w->dscore); free(w->rows);
    intact_ctx_free(w->ctx);   // owns w->pool
    free(w);
}

ikv_train *ikv_train_new(const intact_model *m, int P, int T, int n_threads, intact_error *err) {
    const it_hparams *hp = &m->hp;
    if (P < 1 || T < 1 || P + T > (1 << 16)) {
        it_fail(err, INTACT_E_ARG, "bad calibration shape: %d prefix + %d sample tokens", P, T);
        return NULL;
    }
    ikv_train *w = calloc(1, sizeof *w);
    if (!w) { it_fail(err, INTACT_E_NOMEM, "out of memory"); return NULL; }
    w->m = m;
    w->P = P, w->T = T, w->nk = P + T, w->dim = hp->dim, w->hid = hp->hidden_dim;
    w->n_layers = hp->n_layers, w->n_heads = hp->n_heads, w->n_kv = hp->n_kv_heads, w->hd = hp->head_dim;
    w->kv_dim = w->n_kv * w->hd;
    size_t t = (size_t)T, dim = (size_t)w->dim, hid = (size_t)w->hid, nk = (size_t)w->nk;
    size_t kvd = (size_t)w->kv_dim, half = (size_t)w->hd / 2, L = (size_t)w->n_layers;
    int ok = 1;
    intact_ctx_params cp = {P + T, n_threads > 0 ? n_threads : 1, 0};
    w->ctx = intact_ctx_new(m, &cp, err);
    if (!w->ctx) { free(w); return NULL; }
    w->pool = w->ctx->pool;   // the backward pass runs on the context's threads
    w->rows = calloc(L, sizeof *w->rows);
    w->theta = malloc(half * sizeof(double));
    w->cs = falloc(t * half * 2);
    w->x = falloc((L + 1) * t * dim);
    w->acts = calloc(L, sizeof *w->acts);
    w->wt = calloc(L * IT_LAYER_NMAT, sizeof *w->wt);
    w->wt_data = calloc(L * IT_LAYER_NMAT, sizeof *w->wt_data);
    w->dx = falloc(t * dim), w->dy = falloc(t * dim), w->dtmp = falloc(t * dim), w->dq = falloc(t * dim);
    w->dh1 = falloc(t * hid), w->dh2 = falloc(t * hid);
    w->dkall = falloc(nk * kvd), w->dvall = falloc(nk * kvd);
    w->dscore = falloc((size_t)w->n_heads * t * nk);
    ok = w->rows && intact_ctx_record_attention(w->ctx, 1) == 0 && w->theta && w->cs && w->x && w->acts && w->wt && w->wt_data && w->dx && w->dy &&
         w->dtmp && w->dq && w->dh1 && w->dh2 && w->dkall && w->dvall && w->dscore;
    for (size_t l = 0; ok && l < L; l++) {
        ikv_acts *a = &w->acts[l];
        a->xn1 = falloc(t * dim), a->r1 = falloc(t), a->q = falloc(t * dim);
        a->kall = falloc(nk * kvd), a->vall = falloc(nk * kvd);
        a->probs = falloc((size_t)w->n_heads * t * nk);
        a->att = falloc(t * dim), a->xmid = falloc(t * dim), a->xn2 = falloc(t * dim), a->r2 = falloc(t);
        a->g = falloc(t * hid), a->u = falloc(t * hid), a->s = falloc(t * hid);
        ok = a->xn1 && a->r1 && a->q && a->kall && a->vall && a->probs && a->att && a->xmid && a->xn2 &&
             a->r2 && a->g && a->u && a->s;
        const it_layer *ly = &m->layers[l];
        const it_tensor *mats[IT_LAYER_NMAT] = IT_LAYER_MATRICES(ly);
        for (int i = 0; ok && i < IT_LAYER_NMAT; i++)
            ok = transpose_weight(mats[i], &w->wt[l * IT_LAYER_NMAT + i], &w->wt_data[l * IT_LAYER_NMAT + i]) == 0;
    }
    if (!ok) {
        ikv_train_free(w);
        it_fail(err, INTACT_E_NOMEM, "out of memory for calibration buffers (%d + %d tokens)", P, T);
        return NULL;
    }
    // Same frequencies and position table as ctx.c + forward.c for positions P .. P+T-1.
    for (size_t i = 0; i < half; i++) {
        double theta = pow((double)hp->rope_base, -2.0 * (double)i / hp->head_dim);
        if (m->rope_freqs) theta /= m->rope_freqs[i];
        w->theta[i] = theta;
    }
    kern_rope_table(P, T, w->theta, (int)half, hp->rope_scale, w->cs);   // for the backward's RoPE
    ctx_stop_after_layer(w->ctx, hp->n_layers - 1);   // block outputs only: no head
    intact_ctx_set_observer(w->ctx, train_observer, w);
    return w;
}

// 1/rms of each row, exactly as kern_rmsnorm computes it (double sum of squares), for the backward.
static void inv_rms(float *rinv, const float *x, int n, int dim, float eps) {
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * dim;
        double ss = 0;
        for (int i = 0; i < dim; i++) ss += (double)xt[i] * xt[i];
        rinv[t] = (float)(1.0 / sqrt(ss / dim + eps));
    }
}

double ikv_train_forward(ikv_train *w, const intact_prefix *p, const int32_t *tokens, const float *target) {
    const it_hparams *hp = &w->m->hp;
    int T = w->T, P = w->P, dim = w->dim, kvd = w->kv_dim;
    size_t td = (size_t)T * dim;
    for (int l = 0; l < w->n_layers; l++) {
        memcpy(w->acts[l].kall, ikv_layer_k(p, l), (size_t)P * kvd * sizeof(float));
        memcpy(w->acts[l].vall, ikv_layer_v(p, l), (size_t)P * kvd * sizeof(float));
        w->rows[l] = 0;
    }
    w->obs_bad = 0;
    intact_error err;
    if (intact_ctx_use_prefix(w->ctx, p, &err) != 0 || intact_ctx_eval(w->ctx, tokens, T, &err) != 0 || w->obs_bad)
        return NAN;
    double loss = 0;
    for (int l = 0; l < w->n_layers; l++) {
        ikv_acts *a = &w->acts[l];
        if (w->rows[l] != T) return NAN;
        inv_rms(a->r1, w->x + (size_t)l * td, T, dim, hp->norm_eps);
        inv_rms(a->r2, a->xmid, T, dim, hp->norm_eps);
        if (target) {
            const float *xout = w->x + (size_t)(l + 1) * td, *tg = target + (size_t)l * td;
            double ss = 0;
            for (size_t i = 0; i < td; i++) ss += ((double)xout[i] - tg[i]) * ((double)xout[i] - tg[i]);
            loss += 0.5 * ss / (double)td;
        }
    }
    return loss;
}
