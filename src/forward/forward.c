// The one forward pass. Every run (FP or quantized weights, any KV cache, with or without an
// observer) goes through ctx_forward_ubatch; differences between runs come only from the pluggable
// parts, so measured differences are differences of those parts.
#include "forward/forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "kernels/hadamard.h"
#include "kernels/ops.h"

static void observe(intact_ctx *c, int layer, const char *name, const float *x, int n, int width) {
    if (c->observer) c->observer(c->observer_user, layer, name, x, n, width);
}

// Embeds n tokens into x (n, dim), converting rows of whatever type the embedding is stored in.
static void embed(const intact_model *m, const int32_t *tokens, int n, float *x) {
    const it_tensor *e = &m->tok_embd;
    const fmt_traits *t = fmt_get(e->type);
    size_t row = fmt_row_bytes(e->type, e->ne[0]);
    for (int i = 0; i < n; i++)
        t->to_float((const char *)e->data + (size_t)tokens[i] * row, x + (size_t)i * m->hp.dim, e->ne[0]);
}

static void add_bias(float *x, const float *b, int n, int width) {
    if (!b) return;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < width; j++) x[(size_t)i * width + j] += b[j];
}

// One micro-batch of n <= c->ubatch tokens at positions c->pos .. c->pos+n-1. Writes logits for
// the tokens selected by logits_from (all tokens from that index on). 0, or the cache's error
// (KV_E_ARG / KV_E_NOMEM, with *bad_layer) when it could not store or attend: then c->pos is
// unchanged and the caller reports it.
static int forward_ubatch(intact_ctx *c, const int32_t *tokens, int n, int logits_from, float *logits,
                          int *bad_layer) {
    const intact_model *m = c->model;
    const it_hparams *hp = &m->hp;
    int dim = hp->dim, hid = hp->hidden_dim, kv_dim = hp->head_dim * hp->n_kv_heads;
    it_pool *pool = c->pool;
    float *x = c->x, *xb = c->xb, *q = c->q, *k = c->k, *v = c->v, *att = c->att;
    float *g = c->gate, *u = c->up;

    embed(m, tokens, n, x);
    observe(c, 0, "embd", x, n, dim);
    kern_rope_table(c->pos, n, c->rope_theta, hp->head_dim / 2, hp->rope_scale, c->rope_cs);
    for (int l = 0; l < hp->n_layers; l++) {
        const it_layer *ly = &m->layers[l];
        kern_rmsnorm(x, ly->attn_norm, n, dim, hp->norm_eps, xb);
        observe(c, l, "attn_norm", xb, n, dim);
        const it_tensor *wqkv[3] = {&ly->wq, &ly->wk, &ly->wv};
        float *yqkv[3] = {q, k, v};
        fwd_linear_group(c, 3, wqkv, xb, n, yqkv);
        add_bias(q, ly->bq, n, dim);
        add_bias(k, ly->bk, n, kv_dim);
        add_bias(v, ly->bv, n, kv_dim);
        kern_rope(q, n, hp->n_heads, hp->head_dim, c->rope_cs, hp->rope_style);
        kern_rope(k, n, hp->n_kv_heads, hp->head_dim, c->rope_cs, hp->rope_style);
        observe(c, l, "q", q, n, dim);
        observe(c, l, "k", k, n, kv_dim);
        observe(c, l, "v", v, n, kv_dim);
        *bad_layer = l;
        int rc = c->bal ? ctx_balance_layer(c, l, n, q, k) : 0;
        if (rc == 0) rc = c->kv->ops->store(c->kv, l, c->pos, n, k, v);
        if (rc != 0) return rc;
        c->kv->probs = c->probs;
        rc = c->kv->ops->attend(c->kv, pool, l, c->pos, n, q, att);
        c->kv->probs = NULL;
        if (rc != 0) return rc;
        if (c->probs) observe(c, l, "attn_probs", c->probs, hp->n_heads * n, c->pos + n);
        observe(c, l, "wo_in", att, n, dim);
        fwd_linear(c, &ly->wo, att, n, xb);
        observe(c, l, "attn_out", xb, n, dim);
        kern_add(x, xb, (size_t)n * dim);
        observe(c, l, "attn_resid", x, n, dim);

        kern_rmsnorm(x, ly->ffn_norm, n, dim, hp->norm_eps, xb);
        observe(c, l, "ffn_norm", xb, n, dim);
        const it_tensor *wgu[2] = {&ly->w_gate, &ly->w_up};
        float *ygu[2] = {g, u};
        fwd_linear_group(c, 2, wgu, xb, n, ygu);
        observe(c, l, "ffn_gate", g, n, hid);
        observe(c, l, "ffn_up", u, n, hid);
        kern_swiglu(g, u, (size_t)n * hid);
        // Rotated models (quant/rotate.h): the online Hadamard transform w_down was built for.
        if (m->rot_down_block) kern_hadamard_rows(g, n, hid, m->rot_down_block);
        observe(c, l, "down_in", g, n, hid);
        fwd_linear(c, &ly->w_down, g, n, xb);
        observe(c, l, "ffn_out", xb, n, dim);
        kern_add(x, xb, (size_t)n * dim);
        observe(c, l, "block_out", x, n, dim);
        if (l == c->stop_after_layer) { // calibration only needs the layers up to this one
            c->pos += n;
            return 0;
        }
    }
    kern_rmsnorm(x, m->output_norm, n, dim, hp->norm_eps, xb);
    observe(c, hp->n_layers, "final_norm", xb, n, dim);
    if (logits_from < n) {
        int nl = n - logits_from;
        fwd_linear_head(c, &m->output, xb + (size_t)logits_from * dim, nl, logits);
        observe(c, hp->n_layers, "logits", logits, nl, hp->n_vocab);
    }
    c->pos += n;
    return 0;
}

int intact_ctx_eval(intact_ctx *c, const int32_t *tokens, int n, intact_error *err) {
    const it_hparams *hp = &c->model->hp;
    if (n <= 0) return it_fail(err, INTACT_E_ARG, "nothing to evaluate");
    if (n > c->n_ctx - c->pos)
        return it_fail(err, INTACT_E_LIMIT, "context full: %d cached + %d new tokens > n_ctx %d", c->pos,
                       n, c->n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= hp->n_vocab)
            return it_fail(err, INTACT_E_ARG, "token id %d out of range [0, %d)", tokens[i], hp->n_vocab);
    if (c->logits_all && ctx_reserve_logits(c, n) != 0)
        return it_fail(err, INTACT_E_NOMEM, "out of memory for %d x %d logits", n, hp->n_vocab);
    c->n_logits = c->logits_all ? n : 1;
    for (int done = 0; done < n;) {
        int nb = n - done < c->ubatch ? n - done : c->ubatch;
        int last = done + nb == n, layer = 0, rc;
        if (c->logits_all)
            rc = forward_ubatch(c, tokens + done, nb, 0, c->logits + (size_t)done * hp->n_vocab, &layer);
        else
            rc = forward_ubatch(c, tokens + done, nb, last ? nb - 1 : nb, c->logits, &layer);
        if (rc == KV_E_NOMEM)
            return it_fail(err, INTACT_E_NOMEM, "out of memory in the KV cache (layer %d, positions %d..%d)", layer,
                           c->pos, c->pos + nb - 1);
        if (rc != 0)
            return it_fail(err, INTACT_E_ARG, "the KV cache refused positions %d..%d of layer %d", c->pos,
                           c->pos + nb - 1, layer);
        done += nb;
    }
    return 0;
}

const float *intact_ctx_logits(const intact_ctx *c, int i) {
    if (i < 0) i = c->n_logits - 1;
    if (i < 0 || i >= c->n_logits) return NULL;
    return c->logits + (size_t)i * c->model->hp.n_vocab;
}
