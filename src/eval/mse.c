// IntactKV's Fig. 2: how much of the quantized model's layer-output error goes away as more initial
// tokens keep their full-precision K/V.
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "eval/eval.h"
#include "model/model.h"

typedef struct {
    int n_layers, dim, T;     // T: positions per chunk
    float *attn, *block;      // (n_layers, T, dim)
    int *row_attn, *row_block; // next position per layer
} capture;

static void capture_observer(void *user, int layer, const char *name, const float *x, int n, int width) {
    capture *c = user;
    int is_attn = !strcmp(name, "attn_out"), is_block = !strcmp(name, "block_out");
    if (!(is_attn || is_block) || layer >= c->n_layers || width != c->dim) return;
    int *row = is_attn ? &c->row_attn[layer] : &c->row_block[layer];
    if (*row + n > c->T) return;
    float *dst = (is_attn ? c->attn : c->block) + ((size_t)layer * c->T + (size_t)*row) * c->dim;
    memcpy(dst, x, (size_t)n * c->dim * sizeof *x);
    *row += n;
}

static int capture_init(capture *c, const intact_model *m, int T) {
    c->n_layers = m->hp.n_layers;
    c->dim = m->hp.dim;
    c->T = T;
    size_t n = (size_t)c->n_layers * (size_t)T * (size_t)c->dim;
    c->attn = calloc(n, sizeof *c->attn);
    c->block = calloc(n, sizeof *c->block);
    c->row_attn = calloc((size_t)c->n_layers, sizeof *c->row_attn);
    c->row_block = calloc((size_t)c->n_layers, sizeof *c->row_block);
    return c->attn && c->block && c->row_attn && c->row_block ? 0 : -1;
}

static void capture_start(capture *c, int pos) {
    for (int l = 0; l < c->n_layers; l++) c->row_attn[l] = c->row_block[l] = pos;
}

static void capture_free(capture *c) {
    free(c->attn); free(c->block); free(c->row_attn); free(c->row_block);
}

// Mean squared difference over layers, positions [from, T) and dims.
static double mse(const float *a, const float *b, const capture *c, int from) {
    double s = 0;
    for (int l = 0; l < c->n_layers; l++)
        for (int t = from; t < c->T; t++) {
            size_t o = ((size_t)l * c->T + (size_t)t) * c->dim;
            for (int d = 0; d < c->dim; d++) {
                double e = (double)a[o + d] - b[o + d];
                s += e * e;
            }
        }
    return s / ((double)c->n_layers * (c->T - from) * c->dim);
}

int intact_ikv_mse(const intact_model *qm, const intact_model *fp, const char *text, size_t len,
                   const intact_eval_params *p, int max_prefix, intact_ikv_mse_row *rows, intact_error *err) {
    if (qm->hp.dim != fp->hp.dim || qm->hp.n_layers != fp->hp.n_layers || qm->hp.n_vocab != fp->hp.n_vocab)
        return it_fail(err, INTACT_E_ARG, "the quantized and base models have different shapes");
    if (qm->rotated != fp->rotated)   // quant/rotate.h: attn_out / block_out live in the rotated basis
        return it_fail(err, INTACT_E_ARG, "the quantized model is %s but the base model is %s: the residual "
                       "streams compared must be in one basis (rotate both with the same seed, or neither)",
                       qm->rotated ? "rotated" : "not rotated", fp->rotated ? "rotated" : "not rotated");
    if (max_prefix < 0 || max_prefix >= p->n_ctx - 1)
        return it_fail(err, INTACT_E_ARG, "--max-prefix %d must be below the chunk length %d", max_prefix, p->n_ctx - 1);
    intact_eval_params ep = *p;
    ep.prefix = NULL;
    int32_t *tokens;
    int cl;
    int chunks = eval_chunks(qm, text, len, &ep, &tokens, &cl, err);
    if (chunks < 0) return -1;
    int T = cl + 1;
    intact_ctx_params cp = {T, p->n_threads, 0};
    intact_ctx *qc = intact_ctx_new(qm, &cp, err), *fc = qc ? intact_ctx_new(fp, &cp, err) : NULL;
    capture ref = {0}, got = {0};
    int32_t *seq = malloc((size_t)T * sizeof *seq);
    int rc = qc && fc ? 0 : -1;
    if (rc == 0 && (!seq || capture_init(&ref, fp, T) || capture_init(&got, qm, T)))
        rc = it_fail(err, INTACT_E_NOMEM, "out of memory");
    for (int k = 0; k <= max_prefix; k++) rows[k] = (intact_ikv_mse_row){k, 0, 0};
    for (int c = 0; rc == 0 && c < chunks; c++) {
        seq[0] = tok_start(qm->vocab);
        memcpy(seq + 1, tokens + (size_t)c * cl, (size_t)cl * sizeof *seq);
        intact_ctx_set_observer(fc, capture_observer, &ref);
        intact_ctx_reset(fc);
        capture_start(&ref, 0);
        rc = intact_ctx_eval(fc, seq, T, err);
        intact_ctx_set_observer(qc, capture_observer, &got);
        for (int k = 0; rc == 0 && k <= max_prefix; k++) {
            intact_prefix *pre = k ? intact_prefix_build(fp, seq, k, 0, err) : NULL;
            if (k && !pre) { rc = -1; break; }
            if (pre) rc = intact_ctx_use_prefix(qc, pre, err);
            else intact_ctx_reset(qc);
            capture_start(&got, k);
            if (rc == 0) rc = intact_ctx_eval(qc, seq + k, T - k, err);
            intact_prefix_free(pre);
            if (rc == 0) {
                rows[k].attn_mse += mse(got.attn, ref.attn, &ref, max_prefix) / chunks;
                rows[k].block_mse += mse(got.block, ref.block, &ref, max_prefix) / chunks;
            }
        }
        if (rc == 0 && p->progress) p->progress(p->progress_user, c + 1, chunks);
    }
    capture_free(&ref);
    capture_free(&got);
    free(seq);
    free(tokens);
    intact_ctx_free(qc);
    intact_ctx_free(fc);
    return rc;
}
