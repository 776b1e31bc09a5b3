// Context lifecycle: sizes every buffer once (overflow-checked), so evaluation never allocates
// except to grow the all-positions logits buffer.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "forward/forward.h"
#include "kv/kv_factory.h"

// Tokens per forward micro-batch. Each micro-batch streams every weight matrix once, so prefill
// cost per token falls with it until the GEMMs are compute bound; 512 is llama.cpp's n_ubatch.
// Only the default fp32 cache gets it (ctx_pick_ubatch): the other caches' results depend on the
// block size (MiKV/H2O demote after each block, per-channel INT keys quantize a group once it is
// filled, key balancing is fitted on the first block), so they keep the 64 they were measured with,
// as does recording attention probabilities (that buffer is n_heads x ubatch x n_ctx).
enum { CTX_UBATCH = 512, CTX_UBATCH_SMALL = 64, CTX_MAX_THREADS = 256 };

static void ctx_pick_ubatch(intact_ctx *c, int small) {
    c->ubatch = small && c->ubatch_max > CTX_UBATCH_SMALL ? CTX_UBATCH_SMALL : c->ubatch_max;
}

intact_ctx_params intact_ctx_default_params(void) {
    intact_ctx_params p = {0, 1, 0};
    return p;
}

static float *alloc_floats(size_t rows, size_t width) {
    size_t n;
    if (it_mul_size(rows, width, &n) || it_mul_size(n, sizeof(float), &n)) return NULL;
    return malloc(n ? n : 1);
}

intact_ctx *intact_ctx_new(const intact_model *m, const intact_ctx_params *p, intact_error *err) {
    intact_ctx_params d = intact_ctx_default_params();
    if (!p) p = &d;
    const it_hparams *hp = &m->hp;
    int n_ctx = p->n_ctx > 0 ? p->n_ctx : hp->ctx_len;
    if (p->n_ctx < 0 || n_ctx > (1 << 20)) {
        it_fail(err, INTACT_E_LIMIT, "context size %d out of range (1..%d)", p->n_ctx, 1 << 20);
        return NULL;
    }
    int threads = p->n_threads > 0 ? p->n_threads : 1;
    if (threads > CTX_MAX_THREADS) {
        it_fail(err, INTACT_E_ARG, "too many threads (%d > %d)", threads, CTX_MAX_THREADS);
        return NULL;
    }
    size_t kv_total;
    if (it_mul_size((size_t)hp->n_layers * (size_t)n_ctx, (size_t)hp->n_kv_heads * hp->head_dim * 8, &kv_total) ||
        kv_total > ((size_t)1 << 40)) {
        it_fail(err, INTACT_E_LIMIT, "KV cache for %d tokens is too large", n_ctx);
        return NULL;
    }
    intact_ctx *c = calloc(1, sizeof *c);
    if (!c) { it_fail(err, INTACT_E_NOMEM, "out of memory"); return NULL; }
    c->model = m;
    c->aq = m->aq;   // the model's setting is the default; intact_ctx_set_act_quant changes this context's
    c->n_ctx = n_ctx;
    c->ubatch = c->ubatch_max = n_ctx < CTX_UBATCH ? n_ctx : CTX_UBATCH;
    c->logits_all = p->logits_all;
    c->stop_after_layer = -1;
    size_t ub = (size_t)c->ubatch, dim = (size_t)hp->dim, kv_dim = (size_t)hp->n_kv_heads * hp->head_dim;
    int half = hp->head_dim / 2;
    c->pool = it_pool_new(threads);
    c->kv = kv_full_new(hp->n_layers, n_ctx, hp->n_heads, hp->n_kv_heads, hp->head_dim);
    c->rope_theta = malloc((size_t)half * sizeof(double));
    c->rope_cs = alloc_floats(ub, (size_t)half * 2);
    c->x = alloc_floats(ub, dim);
    c->xb = alloc_floats(ub, dim);
    c->q = alloc_floats(ub, dim);
    c->att = alloc_floats(ub, dim);
    c->k = alloc_floats(ub, kv_dim);
    c->v = alloc_floats(ub, kv_dim);
    c->gate = alloc_floats(ub, (size_t)hp->hidden_dim);
    c->up = alloc_floats(ub, (size_t)hp->hidden_dim);
    c->logits_cap = c->logits_all ? 0 : 1;
    c->logits = c->logits_all ? NULL : alloc_floats(1, (size_t)hp->n_vocab);
    if (!c->pool || !c->kv || !c->rope_theta || !c->rope_cs || !c->x || !c->xb || !c->q || !c->att ||
        !c->k || !c->v || !c->gate || !c->up || (!c->logits_all && !c->logits)) {
        intact_ctx_free(c);
        it_fail(err, INTACT_E_NOMEM, "out of memory for a context of %d tokens", n_ctx);
        return NULL;
    }
    for (int i = 0; i < half; i++) {
        double theta = pow((double)hp->rope_base, -2.0 * i / hp->head_dim);
        if (m->rope_freqs) theta /= m->rope_freqs[i];
        c->rope_theta[i] = theta;
    }
    return c;
}

void intact_ctx_free(intact_ctx *c) {
    if (!c) return;
    if (c->kv) c->kv->ops->free(c->kv);
    it_pool_free(c->pool);
    free(c->rope_theta); free(c->rope_cs);
    free(c->x); free(c->xb); free(c->q); free(c->att); free(c->k); free(c->v);
    free(c->gate); free(c->up); free(c->logits); free(c->probs);
    ctx_balance_enable(c, 0);
    kern_actq_free(&c->actq);
    kern_dq_free(&c->dq);
    free(c);
}

int ctx_reserve_logits(intact_ctx *c, int n) {
    if (n <= c->logits_cap) return 0;
    float *p = alloc_floats((size_t)n, (size_t)c->model->hp.n_vocab);
    if (!p) return -1;
    free(c->logits);
    c->logits = p;
    c->logits_cap = n;
    return 0;
}

void intact_ctx_set_observer(intact_ctx *c, intact_observer fn, void *user) {
    c->observer = fn;
    c->observer_user = user;
}

void intact_ctx_reset(intact_ctx *c) {
    // A shared prefix covers positions a fresh sequence will write: detach it (never fails).
    if (c->kv->n_shared) kv_share(c->kv, 0, NULL, NULL);
    c->pos = 0;
    c->n_logits = 0;
    ctx_balance_reset(c);
}
int intact_ctx_pos(const intact_ctx *c) { return c->pos; }

int intact_ctx_record_attention(intact_ctx *c, int on) {
    if (!on) {
        free(c->probs);
        c->probs = NULL;
        ctx_pick_ubatch(c, c->has_kvp);
        return 0;
    }
    if (c->probs) return 0;
    ctx_pick_ubatch(c, 1);
    size_t n;
    if (it_mul_size((size_t)c->model->hp.n_heads * (size_t)c->ubatch, (size_t)c->n_ctx, &n)) return -1;
    c->probs = alloc_floats(n, 1);
    return c->probs ? 0 : -1;
}

int intact_ctx_set_kv(intact_ctx *c, const intact_kv_params *kp, intact_error *err) {
    const it_hparams *hp = &c->model->hp;
    if (kp->sink < 0 || kp->sink >= c->n_ctx)
        return it_fail(err, INTACT_E_ARG, "sink of %d tokens for a context of %d", kp->sink, c->n_ctx);
    kv_shape shape = {hp->n_layers, c->n_ctx, hp->n_heads, hp->n_kv_heads, hp->head_dim};
    it_kv *kv = kv_from_params(kp, &shape, err);
    if (!kv) return -1;
    if (ctx_balance_enable(c, kp->balance) != 0) {
        kv->ops->free(kv);
        return it_fail(err, INTACT_E_NOMEM, "out of memory for key balancing");
    }
    c->kv->ops->free(c->kv);
    c->kv = kv;
    // Kept (with canonical static type names, so the caller's strings need not outlive the call)
    // for ctx_kv_keep_exact.
    c->kvp = *kp;
    c->kvp.k_type = kv_type_canonical(kp->k_type);
    c->kvp.v_type = kv_type_canonical(kp->v_type);
    c->kvp.mikv_hi_type = kv_type_canonical(kp->mikv_hi_type);
    c->kvp.mikv_lo_type = kv_type_canonical(kp->mikv_lo_type);
    c->has_kvp = 1;
    ctx_pick_ubatch(c, 1);
    intact_ctx_reset(c);
    return 0;
}

int ctx_kv_keep_exact(intact_ctx *c, int n, intact_error *err) {
    if (!c->has_kvp || c->kvp.sink >= n) return 0;
    intact_kv_params kp = c->kvp;
    kp.sink = n;
    return intact_ctx_set_kv(c, &kp, err);
}

int ctx_install_prefix(intact_ctx *c, int n, const float *const *k, const float *const *v, const float *logits,
                       intact_error *err) {
    const it_hparams *hp = &c->model->hp;
    if (ctx_kv_keep_exact(c, n, err) != 0) return -1;
    intact_ctx_reset(c);
    for (int l = 0; l < hp->n_layers; l++) {
        int rc = c->kv->ops->store(c->kv, l, 0, n, k[l], v[l]);
        if (rc == KV_E_NOMEM) return it_fail(err, INTACT_E_NOMEM, "out of memory storing the prefix in the KV cache");
        if (rc != 0) return it_fail(err, INTACT_E_ARG, "the KV cache refused the prefix (layer %d)", l);
        // Fails only for lack of memory: the prefix copy kept for key balancing.
        if (ctx_balance_keep_prefix(c, l, n, k[l], v[l]) != 0)
            return it_fail(err, INTACT_E_NOMEM, "out of memory keeping the prefix for key balancing");
    }
    if (c->logits_all && ctx_reserve_logits(c, 1) != 0) return it_fail(err, INTACT_E_NOMEM, "out of memory");
    memcpy(c->logits, logits, (size_t)hp->n_vocab * sizeof *c->logits);
    c->n_logits = 1;
    c->pos = n;
    return 0;
}

int ctx_share_prefix(intact_ctx *c, int n, const float *k, const float *v, const float *logits,
                     intact_error *err) {
    const it_hparams *hp = &c->model->hp;
    // Balancing stores each sequence's prefix keys as k·b with its own b: a shared, read-only copy
    // cannot hold them (intact_ctx_use_prefix can).
    if (c->bal) return it_fail(err, INTACT_E_ARG, "a shared prefix cannot be used with key balancing (--kv-balance)");
    if (ctx_kv_keep_exact(c, n, err) != 0) return -1;
    intact_ctx_reset(c);
    if (kv_share(c->kv, n, k, v) != KV_OK)
        return it_fail(err, INTACT_E_ARG, "the KV cache cannot share a prefix of %d tokens", n);
    if (c->logits_all && ctx_reserve_logits(c, 1) != 0) {
        kv_share(c->kv, 0, NULL, NULL);
        return it_fail(err, INTACT_E_NOMEM, "out of memory");
    }
    memcpy(c->logits, logits, (size_t)hp->n_vocab * sizeof *c->logits);
    c->n_logits = 1;
    c->pos = n;
    return 0;
}

void ctx_stop_after_layer(intact_ctx *c, int layer) { c->stop_after_layer = layer; }

uint64_t intact_ctx_kv_bytes(const intact_ctx *c) { return c->kv->ops->bytes(c->kv, c->pos); }

uint64_t intact_ctx_kv_bytes_at(const intact_ctx *c, int n_tokens) {
    return c->kv->ops->bytes(c->kv, n_tokens < 0 ? 0 : n_tokens);
}

uint64_t intact_ctx_kv_bytes_f16(const intact_ctx *c) {
    const it_hparams *hp = &c->model->hp;
    return (uint64_t)2 * hp->n_layers * (uint64_t)c->pos * hp->n_kv_heads * hp->head_dim * 2;
}
