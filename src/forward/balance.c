// Key balancing in the forward pass (the method is in kv/kv_balance.h). Doing it here, around the
// cache's store/attend, keeps every cache type unaware of it: a cache just sees keys k·b and
// queries q/b. b is fixed per sequence at its first block ("computed at prefill"), because keys
// cached earlier were stored with it.
#include <stdlib.h>
#include <string.h>

#include "forward/forward.h"
#include "kv/kv_balance.h"

static size_t kv_dim_of(const intact_ctx *c) {
    return (size_t)c->model->hp.n_kv_heads * c->model->hp.head_dim;
}

int ctx_balance_enable(intact_ctx *c, int on) {
    free(c->bal); free(c->bal_set); free(c->bal_pre); free(c->bal_tmp);
    c->bal = NULL; c->bal_set = NULL; c->bal_pre = NULL; c->bal_tmp = NULL;
    c->bal_pre_n = 0;
    if (!on) return 0;
    int L = c->model->hp.n_layers;
    c->bal = malloc((size_t)L * kv_dim_of(c) * sizeof(float));
    c->bal_set = calloc((size_t)L, 1);
    if (!c->bal || !c->bal_set) { ctx_balance_enable(c, 0); return -1; }
    return 0;
}

void ctx_balance_reset(intact_ctx *c) {
    if (!c->bal) return;
    memset(c->bal_set, 0, (size_t)c->model->hp.n_layers);
    c->bal_pre_n = 0;
}

int ctx_balance_keep_prefix(intact_ctx *c, int l, int n, const float *k, const float *v) {
    if (!c->bal) return 0;
    size_t kvd = kv_dim_of(c), L = (size_t)c->model->hp.n_layers;
    if (l == 0) {
        free(c->bal_pre); free(c->bal_tmp);
        c->bal_pre = malloc(L * 2 * (size_t)n * kvd * sizeof(float));
        c->bal_tmp = malloc((size_t)n * kvd * sizeof(float));
        c->bal_pre_n = c->bal_pre && c->bal_tmp ? n : 0;
        if (!c->bal_pre_n) return -1;
    }
    if (n != c->bal_pre_n) return -1;
    float *dst = c->bal_pre + (size_t)l * 2 * n * kvd;
    memcpy(dst, k, (size_t)n * kvd * sizeof(float));
    memcpy(dst + (size_t)n * kvd, v, (size_t)n * kvd * sizeof(float));
    return 0;
}

int ctx_balance_layer(intact_ctx *c, int l, int n, float *q, float *k) {
    const it_hparams *hp = &c->model->hp;
    size_t kvd = kv_dim_of(c);
    float *b = c->bal + (size_t)l * kvd;
    if (!c->bal_set[l]) {
        // Keys already cached can only be rescaled if we still have them: the kept prefix.
        int pre = c->pos > 0 && c->pos == c->bal_pre_n ? c->bal_pre_n : 0;
        const float *pk = pre ? c->bal_pre + (size_t)l * 2 * pre * kvd : NULL;
        if (c->pos > 0 && !pre) {
            for (size_t i = 0; i < kvd; i++) b[i] = 1.0f;   // unknown history: leave it unbalanced
        } else {
            kv_balance_channels(q, n, k, n, pk, pre, hp->n_heads, hp->n_kv_heads, hp->head_dim, b);
        }
        c->bal_set[l] = 1;
        if (pre) {
            memcpy(c->bal_tmp, pk, (size_t)pre * kvd * sizeof(float));
            kv_balance_scale_keys(c->bal_tmp, pre, (int)kvd, b);
            int rc = c->kv->ops->store(c->kv, l, 0, pre, c->bal_tmp, pk + (size_t)pre * kvd);
            if (rc != 0) return rc;   // the cache's KV_E_* code: the caller tells memory from a refusal
        }
    }
    kv_balance_scale_keys(k, n, (int)kvd, b);
    kv_balance_scale_queries(q, n, hp->n_heads, hp->n_kv_heads, hp->head_dim, b);
    return 0;
}
