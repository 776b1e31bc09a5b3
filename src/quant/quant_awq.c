// AWQ applied to a layer of the model: search the per-channel scales s of each input on the
// calibration statistics, fold them in exactly (W <- W·diag(s), the producer of the input <- /s), then
// quantize each scaled matrix with the per-group clip search on the equally scaled inputs.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "quant/awq.h"
#include "quant/quant_internal.h"

// Replaces a tensor by an owned fp32 copy scaled per column (col_scale) and/or per row (row_scale).
static int rescale(quant_run *q, it_tensor *t, const float *col_scale, const float *row_scale) {
    int64_t n_in = t->ne[0], n_out = t->ne[1];
    float *w = model_alloc(q->m, (size_t)(n_in * n_out) * sizeof *w);
    if (!w) return it_fail(q->err, INTACT_E_NOMEM, "out of memory");
    const fmt_traits *tr = fmt_get(t->type);
    size_t row = fmt_row_bytes(t->type, n_in);
    for (int64_t r = 0; r < n_out; r++) {
        float *wr = w + r * n_in;
        tr->to_float((const char *)t->data + (size_t)r * row, wr, n_in);
        for (int64_t i = 0; col_scale && i < n_in; i++) wr[i] *= col_scale[i];
        for (int64_t i = 0; row_scale && i < n_in; i++) wr[i] *= row_scale[r];
    }
    t->type = IT_TYPE_F32;
    t->data = w;
    t->nbytes = (size_t)(n_in * n_out) * sizeof *w;
    return 0;
}

static const float *divided(quant_run *q, const float *v, const float *s, int n) {
    float *o = model_alloc(q->m, (size_t)n * sizeof *o);
    if (!o) return NULL;
    for (int i = 0; i < n; i++) o[i] = v[i] / s[i];
    return o;
}

// Searches s for the matrices reading `input`; returns the malloc'd s or NULL (no scaling).
static float *search(quant_run *q, int input, it_tensor **mats, int n_mats, int *rc) {
    quant_input_stats *st = &q->stats[input];
    int64_t n_in = st->width;
    *rc = 0;
    const qgrid *g = quant_grid_for(q, n_in);
    if (!g || !st->n_tok) return NULL;
    float *mean = malloc((size_t)n_in * sizeof *mean), *s = malloc((size_t)n_in * sizeof *s);
    const float *W[3] = {0};
    int64_t n_out[3];
    float *owned[3] = {0};
    for (int k = 0; k < n_mats; k++) {
        owned[k] = malloc((size_t)(n_in * mats[k]->ne[1]) * sizeof(float));
        if (owned[k]) {
            const fmt_traits *tr = fmt_get(mats[k]->type);
            size_t row = fmt_row_bytes(mats[k]->type, n_in);
            for (int64_t r = 0; r < mats[k]->ne[1]; r++)
                tr->to_float((const char *)mats[k]->data + (size_t)r * row, owned[k] + r * n_in, n_in);
        }
        W[k] = owned[k];
        n_out[k] = mats[k]->ne[1];
    }
    int ok = mean && s && owned[0] && (n_mats < 2 || owned[1]) && (n_mats < 3 || owned[2]);
    if (ok) {
        for (int64_t i = 0; i < n_in; i++) mean[i] = (float)(st->abs_sum[i] / (double)st->n_tok);
        awq_scale_result res;
        *rc = awq_search_scale_grid(g, W, n_out, n_mats, n_in, st->X, st->x_rows, mean, s, &res, q->pool, q->err);
    } else {
        *rc = it_fail(q->err, INTACT_E_NOMEM, "out of memory");
    }
    for (int k = 0; k < n_mats; k++) free(owned[k]);
    free(mean);
    if (*rc) { free(s); return NULL; }
    return s;
}

int quant_awq_scale_layer(quant_run *q, int l) {
    intact_model *m = q->m;
    it_layer *ly = &m->layers[l];
    const it_hparams *hp = &m->hp;
    int rc = 0;
    for (int k = 0; k < QI_COUNT; k++) { free(q->awq_scales[k]); q->awq_scales[k] = NULL; }

    it_tensor *qkv[3] = {&ly->wq, &ly->wk, &ly->wv};
    float *s = search(q, QI_ATTN_NORM, qkv, 3, &rc);
    if (s) {
        for (int k = 0; k < 3 && rc == 0; k++) rc = rescale(q, qkv[k], s, NULL);
        if (rc == 0 && !(ly->attn_norm = divided(q, ly->attn_norm, s, hp->dim)))
            rc = it_fail(q->err, INTACT_E_NOMEM, "out of memory");
        q->awq_scales[QI_ATTN_NORM] = s;
    }
    // wo's input is the attention output, a per-channel copy of v only without GQA (as the reference).
    if (rc == 0 && hp->n_kv_heads == hp->n_heads && !ly->bv) {
        it_tensor *o[1] = {&ly->wo};
        s = search(q, QI_WO_IN, o, 1, &rc);
        if (s) {
            float *inv = malloc((size_t)hp->dim * sizeof *inv);
            for (int i = 0; inv && i < hp->dim; i++) inv[i] = 1.0f / s[i];
            rc = inv ? rescale(q, &ly->wo, s, NULL) : it_fail(q->err, INTACT_E_NOMEM, "out of memory");
            if (rc == 0) rc = rescale(q, &ly->wv, NULL, inv);
            free(inv);
            q->awq_scales[QI_WO_IN] = s;
        }
    }
    it_tensor *gu[2] = {&ly->w_gate, &ly->w_up};
    if (rc == 0 && (s = search(q, QI_FFN_NORM, gu, 2, &rc))) {
        for (int k = 0; k < 2 && rc == 0; k++) rc = rescale(q, gu[k], s, NULL);
        if (rc == 0 && !(ly->ffn_norm = divided(q, ly->ffn_norm, s, hp->dim)))
            rc = it_fail(q->err, INTACT_E_NOMEM, "out of memory");
        q->awq_scales[QI_FFN_NORM] = s;
    }
    it_tensor *d[1] = {&ly->w_down};
    // Rotated models apply a Hadamard transform between up and down, so per-channel scales cannot
    // move from ffn_down's input into ffn_up: that input is left unscaled (clips are still searched).
    if (rc == 0 && !m->rot_down_block && (s = search(q, QI_DOWN_IN, d, 1, &rc))) {
        float *inv = malloc((size_t)hp->hidden_dim * sizeof *inv);
        for (int i = 0; inv && i < hp->hidden_dim; i++) inv[i] = 1.0f / s[i];
        rc = inv ? rescale(q, &ly->w_down, s, NULL) : it_fail(q->err, INTACT_E_NOMEM, "out of memory");
        if (rc == 0) rc = rescale(q, &ly->w_up, NULL, inv); // silu(g)·u is linear in u
        free(inv);
        q->awq_scales[QI_DOWN_IN] = s;
    }
    return rc ? -1 : 0;
}

int quant_awq_matrix(quant_run *q, int input, float *w, int64_t n_out, int64_t n_in, void *packed) {
    quant_input_stats *st = &q->stats[input];
    const float *s = q->awq_scales[input];
    const qgrid *g = quant_grid_for(q, n_in);
    float *X = malloc((size_t)(st->x_rows * n_in) * sizeof *X);
    float *clips = malloc((size_t)(n_out * (n_in / g->group)) * sizeof *clips);
    int rc = -1;
    if (X && clips) {
        // The matrix is already W·diag(s): search its clips on the inputs it now sees, X·diag(1/s).
        for (int64_t t = 0; t < st->x_rows; t++)
            for (int64_t i = 0; i < n_in; i++) X[t * n_in + i] = st->X[t * n_in + i] / (s ? s[i] : 1.0f);
        rc = awq_search_clip_grid(g, w, n_out, n_in, X, st->x_rows, clips, q->pool, q->err);
        if (rc == 0) rc = awq_quantize_matrix_grid(g, w, n_out, n_in, clips, packed, NULL, q->pool, q->err);
    } else {
        it_fail(q->err, INTACT_E_NOMEM, "out of memory");
    }
    free(X);
    free(clips);
    return rc;
}

void quant_awq_free(quant_run *q) {
    for (int k = 0; k < QI_COUNT; k++) { free(q->awq_scales[k]); q->awq_scales[k] = NULL; }
}
