// Forward pass with saved activations for prefix calibration (see train.h). Every op repeats the
// arithmetic of forward.c / ops.c / kv_full.c in the same order, so block outputs match the engine.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
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
    free(w->dkall); free(w->dvall); free(w->dscore);
    it_pool_free(w->pool);
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
    w->pool = it_pool_new(n_threads > 0 ? n_threads : 1);
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
    ok = w->pool && w->theta && w->cs && w->x && w->acts && w->wt && w->wt_data && w->dx && w->dy &&
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
    kern_rope_table(w->cs, P, T, w->theta, (int)half, hp->rope_scale);
    return w;
}

// kern_rmsnorm, also keeping 1/rms per row for the backward.
static void rmsnorm_save(float *out, float *rinv, const float *x, const float *wt, int n, int dim, float eps) {
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * dim;
        float *ot = out + (size_t)t * dim;
        double ss = 0;
        for (int i = 0; i < dim; i++) ss += (double)xt[i] * xt[i];
        float inv = (float)(1.0 / sqrt(ss / dim + eps));
        rinv[t] = inv;
        for (int i = 0; i < dim; i++) ot[i] = xt[i] * inv * wt[i];
    }
}

static void add_bias(float *x, const float *b, int n, int width) {
    if (!b) return;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < width; j++) x[(size_t)i * width + j] += b[j];
}

typedef struct {
    const ikv_train *w;
    ikv_acts *a;
} attn_job;

// kv_full.c's attend_worker over all P + t + 1 keys of query t, saving the probabilities.
static void attend_worker(void *arg, int ith, int nth) {
    const attn_job *j = arg;
    const ikv_train *w = j->w;
    ikv_acts *a = j->a;
    int hd = w->hd, H = w->n_heads, nkv = w->n_kv, group = H / nkv, kvd = w->kv_dim, nk = w->nk;
    float scale = 1.0f / sqrtf((float)hd);
    for (int item = ith; item < w->T * nkv; item += nth) {
        int t = item / nkv, kvh = item % nkv, n_keys = w->P + t + 1;
        for (int g = 0; g < group; g++) {
            int h = kvh * group + g;
            const float *q = a->q + (size_t)t * H * hd + (size_t)h * hd;
            float *sg = a->probs + ((size_t)h * w->T + t) * nk, mx = -INFINITY;
            for (int p = 0; p < n_keys; p++) {
                sg[p] = kv_dot(q, a->kall + (size_t)p * kvd + (size_t)kvh * hd, hd) * scale;
                mx = sg[p] > mx ? sg[p] : mx;
            }
            double sum = 0;
            for (int p = 0; p < n_keys; p++) {
                sg[p] = expf(sg[p] - mx);
                sum += sg[p];
            }
            float inv = (float)(1.0 / sum);
            for (int p = 0; p < n_keys; p++) sg[p] *= inv;
            memset(sg + n_keys, 0, (size_t)(nk - n_keys) * sizeof *sg);
        }
        float *o = a->att + (size_t)t * H * hd + (size_t)kvh * group * hd;
        memset(o, 0, (size_t)group * hd * sizeof(float));
        for (int p = 0; p < n_keys; p++) {
            const float *vp = a->vall + (size_t)p * kvd + (size_t)kvh * hd;
            for (int g = 0; g < group; g++) {
                float pw = a->probs[((size_t)(kvh * group + g) * w->T + t) * nk + p], *og = o + g * hd;
                for (int d = 0; d < hd; d++) og[d] += pw * vp[d];
            }
        }
    }
}

static void embed(const intact_model *m, const int32_t *tokens, int n, float *x) {
    const it_tensor *e = &m->tok_embd;
    const fmt_traits *t = fmt_get(e->type);
    size_t row = fmt_row_bytes(e->type, e->ne[0]);
    for (int i = 0; i < n; i++)
        t->to_float((const char *)e->data + (size_t)tokens[i] * row, x + (size_t)i * m->hp.dim, e->ne[0]);
}

double ikv_train_forward(ikv_train *w, const intact_prefix *p, const int32_t *tokens, const float *target) {
    const intact_model *m = w->m;
    const it_hparams *hp = &m->hp;
    int T = w->T, P = w->P, dim = w->dim, hid = w->hid, kvd = w->kv_dim;
    size_t td = (size_t)T * dim;
    double loss = 0;
    embed(m, tokens, T, w->x);
    for (int l = 0; l < w->n_layers; l++) {
        const it_layer *ly = &m->layers[l];
        ikv_acts *a = &w->acts[l];
        const float *xin = w->x + (size_t)l * td;
        float *xout = w->x + (size_t)(l + 1) * td;
        float *k = a->kall + (size_t)P * kvd, *v = a->vall + (size_t)P * kvd;
        memcpy(a->kall, ikv_layer_k(p, l), (size_t)P * kvd * sizeof(float));
        memcpy(a->vall, ikv_layer_v(p, l), (size_t)P * kvd * sizeof(float));
        rmsnorm_save(a->xn1, a->r1, xin, ly->attn_norm, T, dim, hp->norm_eps);
        const it_tensor *wqkv[3] = {&ly->wq, &ly->wk, &ly->wv};
        float *yqkv[3] = {a->q, k, v};
        kern_matmul_group(w->pool, 3, wqkv, a->xn1, T, yqkv);
        add_bias(a->q, ly->bq, T, dim);
        add_bias(k, ly->bk, T, kvd);
        add_bias(v, ly->bv, T, kvd);
        kern_rope(a->q, T, w->n_heads, w->hd, w->cs, hp->rope_style);
        kern_rope(k, T, w->n_kv, w->hd, w->cs, hp->rope_style);
        attn_job job = {w, a};
        it_pool_run(w->pool, attend_worker, &job);
        kern_matmul(w->pool, &ly->wo, a->att, T, w->dtmp);
        for (size_t i = 0; i < td; i++) a->xmid[i] = xin[i] + w->dtmp[i];

        rmsnorm_save(a->xn2, a->r2, a->xmid, ly->ffn_norm, T, dim, hp->norm_eps);
        const it_tensor *wgu[2] = {&ly->w_gate, &ly->w_up};
        float *ygu[2] = {a->g, a->u};
        kern_matmul_group(w->pool, 2, wgu, a->xn2, T, ygu);
        for (size_t i = 0; i < (size_t)T * hid; i++) a->s[i] = a->g[i] / (1.0f + expf(-a->g[i])) * a->u[i];
        if (m->rot_down_block) kern_hadamard_rows(a->s, T, hid, m->rot_down_block);  // as forward.c
        kern_matmul(w->pool, &ly->w_down, a->s, T, w->dtmp);
        for (size_t i = 0; i < td; i++) xout[i] = a->xmid[i] + w->dtmp[i];
        if (target) {
            const float *tg = target + (size_t)l * td;
            double ss = 0;
            for (size_t i = 0; i < td; i++) ss += ((double)xout[i] - tg[i]) * ((double)xout[i] - tg[i]);
            loss += 0.5 * ss / (double)td;
        }
    }
    return loss;
}
