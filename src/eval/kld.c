// KL divergence of a model against a base model on the same chunks as perplexity:
// KL(base || model) = sum_v p_base(v) * (log p_base(v) - log p_model(v)) per scored position.
#include <math.h>
#include <stdlib.h>

#include "core/error.h"
#include "eval/eval.h"
#include "model/model.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int argmax_d(const double *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[b]) b = i;
    return b;
}

int intact_eval_kld(const intact_model *m, const intact_model *base, const char *text, size_t len,
                    const intact_eval_params *p, intact_kld_result *out, intact_error *err) {
    int nv = m->hp.n_vocab;
    if (base->hp.n_vocab != nv)
        return it_fail(err, INTACT_E_ARG, "vocabularies differ: model %d vs base %d", nv, base->hp.n_vocab);
    int32_t *tokens;
    int cl;
    int chunks = eval_chunks(m, text, len, p, &tokens, &cl, err);
    if (chunks < 0) return -1;
    intact_ctx_params cp = {p->n_ctx, p->n_threads, 1};
    intact_ctx *ctx = intact_ctx_new(m, &cp, err);
    intact_ctx *bctx = ctx ? intact_ctx_new(base, &cp, err) : NULL;
    int32_t *buf = malloc((size_t)p->n_ctx * sizeof *buf);
    double *lp = malloc((size_t)nv * sizeof *lp), *lb = malloc((size_t)nv * sizeof *lb);
    double *klds = malloc((size_t)chunks * cl * sizeof *klds);
    int rc = 0;
    if (!ctx || !bctx) rc = -1;
    else if (!buf || !lp || !lb || !klds) rc = it_fail(err, INTACT_E_NOMEM, "out of memory");
    if (rc == 0 && p->kv) rc = intact_ctx_set_kv(ctx, p->kv, err); // the base keeps the fp32 cache
    double nll = 0, nll_base = 0, top1 = 0;
    int64_t k = 0;
    for (int c = 0; rc == 0 && c < chunks; c++) {
        const int32_t *chunk = tokens + (size_t)c * cl;
        // The base model computes the prefix tokens itself: it is the full-precision reference.
        if (eval_run_chunk(ctx, m, p->prefix, 1, chunk, cl, buf, err) ||
            eval_run_chunk(bctx, base, p->prefix, 0, chunk, cl, buf, err)) {
            rc = -1;
            break;
        }
        for (int i = 0; i < cl; i++) {
            eval_log_softmax(eval_score_logits(ctx, p->prefix, 1, i), nv, lp);
            eval_log_softmax(eval_score_logits(bctx, p->prefix, 0, i), nv, lb);
            double kl = 0;
            for (int v = 0; v < nv; v++) kl += exp(lb[v]) * (lb[v] - lp[v]);
            klds[k++] = kl > 0 ? kl : 0; // tiny negatives are rounding
            nll -= lp[chunk[i]];
            nll_base -= lb[chunk[i]];
            top1 += argmax_d(lp, nv) == argmax_d(lb, nv);
        }
        if (p->progress) p->progress(p->progress_user, c + 1, chunks);
    }
    if (rc == 0) {
        double sum = 0;
        for (int64_t i = 0; i < k; i++) sum += klds[i];
        qsort(klds, (size_t)k, sizeof *klds, cmp_double);
        out->kld_mean = sum / (double)k;
        out->kld_p99 = klds[(int64_t)ceil(0.99 * (double)k) - 1];
        out->top1 = top1 / (double)k;
        out->ppl = exp(nll / (double)k);
        out->ppl_base = exp(nll_base / (double)k);
        out->tokens = k;
        out->chunks = chunks;
        out->kv_bytes = intact_ctx_kv_bytes(ctx);
        out->kv_bytes_vs_f16 = (double)out->kv_bytes / (double)intact_ctx_kv_bytes_f16(ctx);
    }
    intact_ctx_free(ctx);
    intact_ctx_free(bctx);
    free(buf); free(lp); free(lb); free(klds); free(tokens);
    return rc;
}
