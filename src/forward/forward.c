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
    if (c && c->observer) c->observer(c->observer_user, layer, name, x, n, width);
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

// Appends rows' K/V and attends with their queries, row by row: row i is one token of context
// rows[i] at that context's own position (the batched decode of intact_ctx_eval_batch).
static int store_attend_rows(intact_ctx *const *rows, it_pool *pool, int l, int n, int dim, int kv_dim,
                             float *q, float *k, float *v, float *att) {
    for (int i = 0; i < n; i++) {
        intact_ctx *r = rows[i];
        float *qi = q + (size_t)i * dim, *ki = k + (size_t)i * kv_dim, *vi = v + (size_t)i * kv_dim;
        int rc = r->bal ? ctx_balance_layer(r, l, 1, qi, ki) : 0;
        if (rc == 0) rc = r->kv->ops->store(r->kv, l, r->pos, 1, ki, vi);
        if (rc == 0) rc = r->kv->ops->attend(r->kv, pool, l, r->pos, 1, qi, att + (size_t)i * dim);
        if (rc != 0) return rc;
    }
    return 0;
}

// One micro-batch of n <= c->ubatch_max tokens. rows == NULL: n consecutive tokens of c at positions
// c->pos .. c->pos+n-1. Otherwise row i is one token of context rows[i] (same model) at rows[i]->pos,
// and c (one of them) lends its scratch, thread pool and activation settings; everything per row
// (RoPE angle, KV cache, key balancing) is that row's context's, while the linears and the output
// head run as one n-row product over the weights. Writes logits for the tokens selected by
// logits_from (all tokens from that index on). 0, or the cache's error (KV_E_ARG / KV_E_NOMEM, with
// *bad_layer) when it could not store or attend: then no position has moved and the caller reports it.
static int forward_ubatch_run(intact_ctx *c, intact_ctx *const *rows, const int32_t *tokens, int n, int logits_from,
                              float *logits, int *bad_layer) {
    const intact_model *m = c->model;
    const it_hparams *hp = &m->hp;
    int dim = hp->dim, hid = hp->hidden_dim, kv_dim = hp->head_dim * hp->n_kv_heads, half = hp->head_dim / 2;
    it_pool *pool = c->pool;
    float *x = c->x, *xb = c->xb, *q = c->q, *k = c->k, *v = c->v, *att = c->att;
    float *g = c->gate, *u = c->up;
    intact_ctx *oc = rows ? NULL : c;   // observers see single-sequence evals only

    embed(m, tokens, n, x);
    observe(oc, 0, "embd", x, n, dim);
    if (!rows) kern_rope_table(c->pos, n, c->rope_theta, half, hp->rope_scale, c->rope_cs);
    else
        for (int i = 0; i < n; i++)
            kern_rope_table(rows[i]->pos, 1, c->rope_theta, half, hp->rope_scale, c->rope_cs + (size_t)i * half * 2);
    for (int l = 0; l < hp->n_layers; l++) {
        const it_layer *ly = &m->layers[l];
        kern_rmsnorm(x, ly->attn_norm, n, dim, hp->norm_eps, xb);
        observe(oc, l, "attn_norm", xb, n, dim);
        const it_tensor *wqkv[3] = {&ly->wq, &ly->wk, &ly->wv};
        float *yqkv[3] = {q, k, v};
        fwd_linear_group(c, 3, wqkv, xb, n, yqkv);
        add_bias(q, ly->bq, n, dim);
        add_bias(k, ly->bk, n, kv_dim);
        add_bias(v, ly->bv, n, kv_dim);
        kern_rope(q, n, hp->n_heads, hp->head_dim, c->rope_cs, hp->rope_style);
        kern_rope(k, n, hp->n_kv_heads, hp->head_dim, c->rope_cs, hp->rope_style);
        observe(oc, l, "q", q, n, dim);
        observe(oc, l, "k", k, n, kv_dim);
        observe(oc, l, "v", v, n, kv_dim);
        *bad_layer = l;
        if (rows) {
            int rc = store_attend_rows(rows, pool, l, n, dim, kv_dim, q, k, v, att);
            if (rc != 0) return rc;
        } else {
            int rc = c->bal ? ctx_balance_layer(c, l, n, q, k) : 0;
            if (rc == 0) rc = c->kv->ops->store(c->kv, l, c->pos, n, k, v);
            if (rc != 0) return rc;
            c->kv->probs = c->probs;
            rc = c->kv->ops->attend(c->kv, pool, l, c->pos, n, q, att);
            c->kv->probs = NULL;
            if (rc != 0) return rc;
        }
        if (c->probs) observe(oc, l, "attn_probs", c->probs, hp->n_heads * n, c->pos + n);
        observe(oc, l, "wo_in", att, n, dim);
        fwd_linear(c, &ly->wo, att, n, xb);
        observe(oc, l, "attn_out", xb, n, dim);
        kern_add(x, xb, (size_t)n * dim);
        observe(oc, l, "attn_resid", x, n, dim);

        kern_rmsnorm(x, ly->ffn_norm, n, dim, hp->norm_eps, xb);
        observe(oc, l, "ffn_norm", xb, n, dim);
        const it_tensor *wgu[2] = {&ly->w_gate, &ly->w_up};
        float *ygu[2] = {g, u};
        fwd_linear_group(c, 2, wgu, xb, n, ygu);
        observe(oc, l, "ffn_gate", g, n, hid);
        observe(oc, l, "ffn_up", u, n, hid);
        kern_swiglu(g, u, (size_t)n * hid);
        // Rotated models (quant/rotate.h): the online Hadamard transform w_down was built for.
        if (m->rot_down_block) kern_hadamard_rows(g, n, hid, m->rot_down_block);
        observe(oc, l, "down_in", g, n, hid);
        fwd_linear(c, &ly->w_down, g, n, xb);
        observe(oc, l, "ffn_out", xb, n, dim);
        kern_add(x, xb, (size_t)n * dim);
        observe(oc, l, "block_out", x, n, dim);
        if (l == c->stop_after_layer) { // calibration only needs the layers up to this one
            c->pos += n;
            return 0;
        }
    }
    kern_rmsnorm(x, m->output_norm, n, dim, hp->norm_eps, xb);
    observe(oc, hp->n_layers, "final_norm", xb, n, dim);
    if (logits_from < n) {
        int nl = n - logits_from;
        fwd_linear_head(c, &m->output, xb + (size_t)logits_from * dim, nl, logits);
        observe(oc, hp->n_layers, "logits", logits, nl, hp->n_vocab);
    }
    if (rows)
        for (int i = 0; i < n; i++) rows[i]->pos++;
    else c->pos += n;
    return 0;
}

// One token is one decode step: the pool's step governor (core/pool.h) times it to choose between
// the team and the caller alone on a loaded machine.
static int forward_ubatch(intact_ctx *c, intact_ctx *const *rows, const int32_t *tokens, int n, int logits_from,
                          float *logits, int *bad_layer) {
    if (n != 1) return forward_ubatch_run(c, rows, tokens, n, logits_from, logits, bad_layer);
    it_pool_step_begin(c->pool);
    int rc = forward_ubatch_run(c, rows, tokens, n, logits_from, logits, bad_layer);
    it_pool_step_end(c->pool);
    return rc;
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
            rc = forward_ubatch(c, NULL, tokens + done, nb, 0, c->logits + (size_t)done * hp->n_vocab, &layer);
        else
            rc = forward_ubatch(c, NULL, tokens + done, nb, last ? nb - 1 : nb, c->logits, &layer);
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

static int same_act(const it_act_quant *a, const it_act_quant *b) {
    return a->bits == b->bits && a->clip == b->clip && a->fake == b->fake && a->dec == b->dec;
}

// Everything is checked before anything runs, so a refused batch changes no context.
static int batch_check(intact_ctx *const *ctxs, const int32_t *tokens, int n, intact_error *err) {
    if (!ctxs || !tokens || n <= 0) return it_fail(err, INTACT_E_ARG, "batch of %d contexts (need >= 1 and arrays)", n);
    for (int i = 0; i < n; i++) {
        const intact_ctx *c = ctxs[i];
        if (!c) return it_fail(err, INTACT_E_ARG, "context %d of the batch is NULL", i);
        if (c->model != ctxs[0]->model)
            return it_fail(err, INTACT_E_ARG, "context %d of the batch has another model than context 0", i);
        if (!same_act(&c->aq, &ctxs[0]->aq))
            return it_fail(err, INTACT_E_ARG, "context %d of the batch has other activation settings than context 0", i);
        if (c->stop_after_layer >= 0)
            return it_fail(err, INTACT_E_ARG, "context %d stops after a layer (calibration): not batchable", i);
        for (int j = 0; j < i; j++)
            if (ctxs[j] == c) return it_fail(err, INTACT_E_ARG, "context %d appears twice in the batch (also %d)", i, j);
        if (c->pos >= c->n_ctx)
            return it_fail(err, INTACT_E_LIMIT, "context %d of the batch is full (%d tokens)", i, c->n_ctx);
        if (tokens[i] < 0 || tokens[i] >= c->model->hp.n_vocab)
            return it_fail(err, INTACT_E_ARG, "token id %d (context %d) out of range [0, %d)", tokens[i], i,
                           c->model->hp.n_vocab);
    }
    return 0;
}

int intact_ctx_eval_batch(intact_ctx *const *ctxs, const int32_t *tokens, int n, intact_error *err) {
    if (batch_check(ctxs, tokens, n, err) != 0) return -1;
    intact_ctx *lead = ctxs[0];
    int nv = lead->model->hp.n_vocab;
    // The head writes a chunk's rows into the lead's logits buffer; row 0 is the lead's own, so
    // chunks after the first (more rows than the scratch holds) write from row 1 on.
    int chunk = lead->ubatch_max, rows_max = n <= chunk ? n : chunk + 1;
    for (int i = 1; i < n; i++)
        if (ctx_reserve_logits(ctxs[i], 1) != 0) return it_fail(err, INTACT_E_NOMEM, "out of memory for logits");
    if (ctx_reserve_logits(lead, rows_max) != 0)   // last: growing it drops the lead's current logits
        return it_fail(err, INTACT_E_NOMEM, "out of memory for %d x %d logits", rows_max, nv);
    for (int done = 0; done < n;) {
        int nb = n - done < chunk ? n - done : chunk, layer = 0;
        float *out = lead->logits + (done ? (size_t)nv : 0);
        int rc = forward_ubatch(lead, ctxs + done, tokens + done, nb, 0, out, &layer);
        if (rc == KV_E_NOMEM)
            return it_fail(err, INTACT_E_NOMEM, "out of memory in the KV cache (layer %d, batch rows %d..%d)", layer,
                           done, done + nb - 1);
        if (rc != 0)
            return it_fail(err, INTACT_E_ARG, "a KV cache refused a position (layer %d, batch rows %d..%d)", layer, done,
                           done + nb - 1);
        for (int i = 0; i < nb; i++) {
            intact_ctx *c = ctxs[done + i];
            if (c != lead) memcpy(c->logits, out + (size_t)i * nv, (size_t)nv * sizeof(float));
            c->n_logits = 1;
        }
        done += nb;
    }
    return 0;
}

const float *intact_ctx_logits(const intact_ctx *c, int i) {
    if (i < 0) i = c->n_logits - 1;
    if (i < 0 || i >= c->n_logits) return NULL;
    return c->logits + (size_t)i * c->model->hp.n_vocab;
}
