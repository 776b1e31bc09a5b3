// Calibration for GPTQ and AWQ: random windows of the calibration text (BOS first, like the
// evaluation chunks; or plain slices with calib_no_bos, like the GPTQ/AWQ references), run through
// the partially quantized model; an observer turns what each linear
// layer of the target layer reads into statistics (Hessians for GPTQ, channel magnitudes and a
// token subsample for AWQ).
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "forward/forward.h"
#include "quant/quant_internal.h"

static int input_of(const char *name) {
    if (!strcmp(name, "attn_norm")) return QI_ATTN_NORM;
    if (!strcmp(name, "wo_in")) return QI_WO_IN;
    if (!strcmp(name, "ffn_norm")) return QI_FFN_NORM;
    if (!strcmp(name, "down_in")) return QI_DOWN_IN;
    return -1;
}

typedef struct {
    quant_run *q;
    int layer;
} collect_ctx;

static void collect_observer(void *user, int layer, const char *name, const float *x, int n, int width) {
    collect_ctx *cc = user;
    quant_run *q = cc->q;
    int k = layer == cc->layer ? input_of(name) : -1;
    if (k < 0) return;
    quant_input_stats *s = &q->stats[k];
    if (q->method == QM_GPTQ) {
        gptq_hessian_add(&s->h, x, n, q->pool);
    } else {
        for (int t = 0; t < n; t++) {
            const float *row = x + (size_t)t * width;
            for (int j = 0; j < width; j++) s->abs_sum[j] += row[j] < 0 ? -row[j] : row[j];
            if ((s->n_tok + t) % q->awq_stride == 0 && s->x_rows < QUANT_AWQ_TOKENS)
                memcpy(s->X + (size_t)s->x_rows++ * width, row, (size_t)width * sizeof *row);
        }
    }
    s->n_tok += n;
}

static int stats_alloc(quant_run *q) {
    const it_hparams *hp = &q->m->hp;
    int widths[QI_COUNT] = {hp->dim, hp->dim, hp->dim, hp->hidden_dim};
    for (int k = 0; k < QI_COUNT; k++) {
        quant_input_stats *s = &q->stats[k];
        s->width = widths[k];
        if (q->method == QM_GPTQ) {
            if (gptq_hessian_init(&s->h, s->width, q->err) != 0) return -1;
        } else {
            s->abs_sum = calloc((size_t)s->width, sizeof *s->abs_sum);
            s->X = malloc((size_t)QUANT_AWQ_TOKENS * (size_t)s->width * sizeof *s->X);
            if (!s->abs_sum || !s->X) return it_fail(q->err, INTACT_E_NOMEM, "out of memory");
        }
    }
    return 0;
}

void quant_stats_clear(quant_run *q) {
    for (int k = 0; k < QI_COUNT; k++) {
        quant_input_stats *s = &q->stats[k];
        if (s->h.H) {
            int64_t n = s->h.n_in;
            memset(s->h.H, 0, (size_t)(n * n) * sizeof *s->h.H);
            s->h.n_samples = 0;
        }
        if (s->abs_sum) memset(s->abs_sum, 0, (size_t)s->width * sizeof *s->abs_sum);
        s->n_tok = 0;
        s->x_rows = 0;
    }
}

int quant_run_begin(quant_run *q) {
    const intact_quant_params *p = q->p;
    intact_model *m = q->m;
    if (q->method == QM_RTN) return 0;
    if (!p->calib_text)
        return it_fail(q->err, INTACT_E_ARG, "%s needs calibration text (--calib FILE)", p->method);
    if (!p->calib_len) return it_fail(q->err, INTACT_E_ARG, "%s: the calibration text is empty", p->method);
    if (p->calib_samples < 1 || p->calib_tokens < 2)
        return it_fail(q->err, INTACT_E_ARG, "bad calibration size: %d samples of %d tokens", p->calib_samples,
                       p->calib_tokens);
    if (!m->vocab) return it_fail(q->err, INTACT_E_ARG, "calibration needs a tokenizer (pass one with -z)");
    int len = p->calib_tokens < m->hp.ctx_len ? p->calib_tokens : m->hp.ctx_len;
    int n = intact_tokenize(m, p->calib_text, p->calib_len, 0, NULL, 0, q->err);
    if (n < 0) return -1;
    if (n < len)
        return it_fail(q->err, INTACT_E_ARG, "calibration text has %d tokens, fewer than one sequence of %d", n, len);
    int32_t *all = malloc((size_t)n * sizeof *all);
    q->samples = malloc((size_t)p->calib_samples * (size_t)len * sizeof *q->samples);
    if (!all || !q->samples) { free(all); return it_fail(q->err, INTACT_E_NOMEM, "out of memory"); }
    intact_tokenize(m, p->calib_text, p->calib_len, 0, all, n, q->err);
    int bos = tok_start(m->vocab);
    uint64_t s = p->seed * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL;
    for (int i = 0; i < p->calib_samples; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;   // xorshift: deterministic windows per seed
        int32_t *dst = q->samples + (size_t)i * len;
        if (p->calib_no_bos) {   // the references' random slices: [BOS] (the pivot) practically never first
            int start = (int)(s % (uint64_t)(n - len + 1));
            memcpy(dst, all + start, (size_t)len * sizeof *dst);
            continue;
        }
        int start = (int)(s % (uint64_t)(n - (len - 1) + 1));
        dst[0] = bos >= 0 ? bos : all[start];
        memcpy(dst + 1, all + start, (size_t)(len - 1) * sizeof *dst);
    }
    free(all);
    q->n_samples = p->calib_samples;
    q->sample_len = len;
    int64_t total = (int64_t)q->n_samples * len;
    q->awq_stride = total / QUANT_AWQ_TOKENS > 1 ? total / QUANT_AWQ_TOKENS : 1;
    intact_ctx_params cp = {len, p->n_threads, 0};
    q->ctx = intact_ctx_new(m, &cp, q->err);
    if (!q->ctx) return -1;
    q->pool = q->ctx->pool;
    return stats_alloc(q);
}

void quant_run_end(quant_run *q) {
    quant_awq_free(q);
    for (int k = 0; k < QI_COUNT; k++) {
        gptq_hessian_free(&q->stats[k].h);
        free(q->stats[k].abs_sum);
        free(q->stats[k].X);
    }
    intact_ctx_free(q->ctx);
    free(q->samples);
}

int quant_collect(quant_run *q, int layer) {
    collect_ctx cc = {q, layer};
    intact_ctx *c = q->ctx;
    intact_ctx_set_observer(c, collect_observer, &cc);
    ctx_stop_after_layer(c, layer);
    int rc = 0;
    for (int i = 0; rc == 0 && i < q->n_samples; i++) {
        intact_ctx_reset(c);
        rc = intact_ctx_eval(c, q->samples + (size_t)i * q->sample_len, q->sample_len, q->err);
    }
    ctx_stop_after_layer(c, -1);
    intact_ctx_set_observer(c, NULL, NULL);
    return rc;
}
