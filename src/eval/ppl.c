// Perplexity: every chunk is [BOS] + n_ctx-1 text tokens, evaluated from an empty cache, and every
// position after BOS is scored (the token at i+1 under the logits of position i).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "eval/eval.h"
#include "ikv/prefix.h"
#include "model/model.h"

int eval_chunks(const intact_model *m, const char *text, size_t len, const intact_eval_params *p,
                int32_t **tokens, int *chunk_len, intact_error *err) {
    *tokens = NULL;
    int head = p->prefix ? intact_prefix_n_tokens(p->prefix) : 1;
    if (p->n_ctx < head + 1)
        return it_fail(err, INTACT_E_ARG, "context size %d is too small (min %d)", p->n_ctx, head + 1);
    // n_ctx may exceed the training context (as llama.cpp's -c may; the CLI warns): RoPE runs on.
    if (len > (size_t)1 << 30) return it_fail(err, INTACT_E_LIMIT, "text larger than 1 GiB");
    if (m->vocab && tok_start(m->vocab) < 0)
        return it_fail(err, INTACT_E_ARG, "the tokenizer has neither BOS nor EOS to start chunks with");
    int n = intact_tokenize(m, text, len, 0, NULL, 0, err);
    if (n < 0) return -1;
    if (n < 1) return it_fail(err, INTACT_E_ARG, "text has no tokens");
    int32_t *t = malloc((size_t)n * sizeof *t);
    if (!t) return it_fail(err, INTACT_E_NOMEM, "out of memory");
    if (intact_tokenize(m, text, len, 0, t, n, err) != n) { free(t); return -1; }
    int cl = p->n_ctx - head;
    int chunks = n / cl;
    if (chunks == 0) { chunks = 1; cl = n; }
    if (p->max_chunks > 0 && chunks > p->max_chunks) chunks = p->max_chunks;
    *tokens = t;
    *chunk_len = cl;
    return chunks;
}

void eval_log_softmax(const float *logits, int n, double *out) {
    double mx = logits[0];
    for (int i = 1; i < n; i++) if (logits[i] > mx) mx = logits[i];
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)logits[i] - mx);
    double lse = mx + log(sum);
    for (int i = 0; i < n; i++) out[i] = (double)logits[i] - lse;
}

// Evaluates one chunk of cl text tokens from an empty cache, after its head: the IntactKV prefix
// (installed, not computed) when given, else the prefix's tokens or [BOS] computed by this model.
// buf holds head + cl ids of scratch.
int eval_run_chunk(intact_ctx *ctx, const intact_model *m, const intact_prefix *prefix, int use_prefix_kv,
                   const int32_t *chunk, int cl, int32_t *buf, intact_error *err) {
    if (prefix && use_prefix_kv) {
        if (intact_ctx_use_prefix(ctx, prefix, err) != 0) return -1;
        return intact_ctx_eval(ctx, chunk, cl, err);
    }
    int head = prefix ? intact_prefix_n_tokens(prefix) : 1;
    if (prefix) memcpy(buf, intact_prefix_tokens(prefix), (size_t)head * sizeof *buf);
    else buf[0] = tok_start(m->vocab);   // BOS, or EOS for models without one (Qwen2)
    memcpy(buf + head, chunk, (size_t)cl * sizeof *buf);
    intact_ctx_reset(ctx);
    return intact_ctx_eval(ctx, buf, head + cl, err);
}

const float *eval_score_logits(const intact_ctx *ctx, const intact_prefix *prefix, int use_prefix_kv, int i) {
    if (prefix && use_prefix_kv) return i == 0 ? prefix->logits : intact_ctx_logits(ctx, i - 1);
    int head = prefix ? intact_prefix_n_tokens(prefix) : 1;
    return intact_ctx_logits(ctx, head - 1 + i);
}

int intact_eval_ppl(const intact_model *m, const char *text, size_t len, const intact_eval_params *p,
                    intact_ppl_result *out, intact_error *err) {
    int32_t *tokens;
    int cl;
    int chunks = eval_chunks(m, text, len, p, &tokens, &cl, err);
    if (chunks < 0) return -1;
    intact_ctx_params cp = {p->n_ctx, p->n_threads, 1};
    intact_ctx *ctx = intact_ctx_new(m, &cp, err);
    int32_t *buf = malloc((size_t)p->n_ctx * sizeof *buf);
    double *lp = malloc((size_t)m->hp.n_vocab * sizeof *lp);
    int rc = 0;
    if (!ctx || !buf || !lp) rc = ctx ? it_fail(err, INTACT_E_NOMEM, "out of memory") : -1;
    if (rc == 0 && p->kv) rc = intact_ctx_set_kv(ctx, p->kv, err);
    double nll = 0;
    int64_t scored = 0;
    for (int c = 0; rc == 0 && c < chunks; c++) {
        const int32_t *chunk = tokens + (size_t)c * cl;
        if (eval_run_chunk(ctx, m, p->prefix, 1, chunk, cl, buf, err) != 0) { rc = -1; break; }
        for (int i = 0; i < cl; i++) {
            eval_log_softmax(eval_score_logits(ctx, p->prefix, 1, i), m->hp.n_vocab, lp);
            nll -= lp[chunk[i]];
            scored++;
        }
        if (p->progress) p->progress(p->progress_user, c + 1, chunks);
    }
    if (rc == 0) {
        out->nll = nll / (double)scored;
        out->ppl = exp(out->nll);
        out->tokens = scored;
        out->chunks = chunks;
        out->kv_bytes = intact_ctx_kv_bytes(ctx);
        out->kv_bytes_vs_f16 = (double)out->kv_bytes / (double)intact_ctx_kv_bytes_f16(ctx);
    }
    intact_ctx_free(ctx);
    free(buf);
    free(lp);
    free(tokens);
    return rc;
}
