// IntactKV calibration driver: FP targets once, then AdamW over the prefix K/V (see calibrate.h).
#include "ikv/calibrate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "forward/forward.h"
#include "ikv/train.h"

ikv_calib_opts ikv_calib_default_opts(void) {
    ikv_calib_opts o = {20, 1, 2e-4f, 0.0f, 0.9f, 0.999f, 1e-8f, 1, 0, NULL, NULL};
    return o;
}

typedef struct {
    float *dst;          // (n_layers, len, dim) of the current sample
    int len, dim, n_layers;
    int rows[1024];      // block_out rows received per layer (evals arrive in micro-batches)
} target_obs;

static void target_observer(void *user, int layer, const char *name, const float *x, int n, int width) {
    target_obs *o = user;
    if (layer >= o->n_layers || strcmp(name, "block_out")) return;
    int row = o->rows[layer];
    if (row + n > o->len || width != o->dim) return;
    memcpy(o->dst + ((size_t)layer * o->len + row) * o->dim, x, (size_t)n * width * sizeof *x);
    o->rows[layer] += n;
}

// The FP model's block outputs for every sample after the FP prefix, through the engine itself.
static int fp_targets(const intact_model *fp, const intact_prefix *p, const int32_t *tokens, int n_samples,
                      int len, int n_threads, float *targets, intact_error *err) {
    intact_ctx_params cp = {p->n + len, n_threads, 0};
    intact_ctx *c = intact_ctx_new(fp, &cp, err);
    target_obs *o = calloc(1, sizeof *o);
    if (!c || !o) {
        intact_ctx_free(c);
        free(o);
        return c ? it_fail(err, INTACT_E_NOMEM, "out of memory") : -1;
    }
    ctx_stop_after_layer(c, fp->hp.n_layers - 1);   // the output head is not needed
    o->len = len, o->dim = fp->hp.dim, o->n_layers = fp->hp.n_layers;
    intact_ctx_set_observer(c, target_observer, o);
    int rc = 0;
    for (int s = 0; rc == 0 && s < n_samples; s++) {
        o->dst = targets + (size_t)s * fp->hp.n_layers * len * fp->hp.dim;
        memset(o->rows, 0, sizeof o->rows);
        rc = intact_ctx_use_prefix(c, p, err);
        if (rc == 0) rc = intact_ctx_eval(c, tokens + (size_t)s * len, len, err);
        for (int l = 0; rc == 0 && l < o->n_layers; l++)
            if (o->rows[l] != len) rc = it_fail(err, INTACT_E_ARG, "missing block_out of layer %d", l);
    }
    intact_ctx_free(c);
    free(o);
    return rc;
}

static uint64_t xorshift64(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return *s = x;
}

static int check_args(const intact_model *qm, const intact_model *fp, const intact_prefix *p, const int32_t *tokens,
                      int n_samples, int len, const ikv_calib_opts *o, intact_error *err) {
    const it_hparams *a = &qm->hp, *b = &fp->hp;
    if (a->n_layers != b->n_layers || a->dim != b->dim || a->n_heads != b->n_heads ||
        a->n_kv_heads != b->n_kv_heads || a->head_dim != b->head_dim || a->hidden_dim != b->hidden_dim ||
        a->n_vocab != b->n_vocab)
        return it_fail(err, INTACT_E_ARG, "the quantized and FP models have different shapes");
    if (qm->rotated != fp->rotated)   // quant/rotate.h: block outputs live in the rotated basis
        return it_fail(err, INTACT_E_ARG, "the quantized model is %s but the FP model is %s: the residual "
                       "streams compared must be in one basis (rotate both with the same seed, or neither)",
                       qm->rotated ? "rotated" : "not rotated", fp->rotated ? "rotated" : "not rotated");
    if (p->n_layers != a->n_layers || p->n_kv_heads != a->n_kv_heads || p->head_dim != a->head_dim)
        return it_fail(err, INTACT_E_ARG, "the prefix does not fit the model");
    if (a->n_layers > 1024 || a->head_dim > 256 || a->n_heads % a->n_kv_heads)
        return it_fail(err, INTACT_E_UNSUPPORTED, "calibration supports head_dim <= 256 and <= 1024 layers");
    if (n_samples < 1 || len < 1 || !tokens) return it_fail(err, INTACT_E_ARG, "no calibration samples");
    if (p->n + len > b->ctx_len)
        return it_fail(err, INTACT_E_LIMIT, "prefix %d + %d tokens exceed the context %d", p->n, len, b->ctx_len);
    for (size_t i = 0; i < (size_t)n_samples * len; i++)
        if (tokens[i] < 0 || tokens[i] >= a->n_vocab)
            return it_fail(err, INTACT_E_ARG, "token id %d out of range", tokens[i]);
    if (o->epochs < 1 || o->batch < 1 || !(o->lr > 0) || !(o->weight_decay >= 0) || !(o->beta1 >= 0 && o->beta1 < 1) ||
        !(o->beta2 >= 0 && o->beta2 < 1) || !(o->eps > 0))
        return it_fail(err, INTACT_E_ARG, "bad optimizer settings");
    return 0;
}

// Mean loss over all samples with the prefix as it is (no step).
static double eval_loss(ikv_train *w, const intact_prefix *p, const int32_t *tokens, const float *targets,
                        int n_samples, int len, size_t per_sample) {
    double sum = 0;
    for (int s = 0; s < n_samples; s++)
        sum += ikv_train_forward(w, p, tokens + (size_t)s * len, targets + (size_t)s * per_sample);
    return sum / n_samples;
}

int ikv_calibrate(const intact_model *qm, const intact_model *fp, intact_prefix *p, const int32_t *tokens,
                  int n_samples, int len, const ikv_calib_opts *o, ikv_calib_report *rep, intact_error *err) {
    double t0 = it_now_s();
    ikv_calib_opts def = ikv_calib_default_opts();
    if (!o) o = &def;
    if (check_args(qm, fp, p, tokens, n_samples, len, o, err)) return -1;
    const it_hparams *hp = &qm->hp;
    size_t per_sample = (size_t)hp->n_layers * len * hp->dim, n_tgt, n_par;
    if (it_mul_size(per_sample, (size_t)n_samples, &n_tgt) || n_tgt > ((size_t)1 << 30))
        return it_fail(err, INTACT_E_LIMIT, "FP targets for %d samples x %d tokens exceed 4 GiB", n_samples, len);
    n_par = (size_t)hp->n_layers * p->n * hp->n_kv_heads * hp->head_dim;   // per K (and per V)
    float *targets = malloc(n_tgt * sizeof(float));
    float *grad = calloc(2 * n_par, sizeof(float)), *m1 = calloc(2 * n_par, sizeof(float));
    float *m2 = calloc(2 * n_par, sizeof(float));
    int *order = malloc((size_t)n_samples * sizeof(int));
    ikv_train *w = NULL;
    int rc = 0;
    if (!targets || !grad || !m1 || !m2 || !order) rc = it_fail(err, INTACT_E_NOMEM, "out of memory");
    if (rc == 0) rc = fp_targets(fp, p, tokens, n_samples, len, o->n_threads, targets, err);
    if (rc == 0 && !(w = ikv_train_new(qm, p->n, len, o->n_threads, err))) rc = -1;
    ikv_calib_report r = {o->epochs, 0, 0, 0, 0, 0, 0};
    if (rc == 0) r.loss_init = eval_loss(w, p, tokens, targets, n_samples, len, per_sample);
    if (rc == 0 && isnan(r.loss_init)) rc = it_fail(err, INTACT_E_NOMEM, "out of memory in the calibration forward");
    uint64_t rng = o->seed * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL;
    for (int s = 0; s < n_samples; s++) order[s] = s;
    // The parameters, as one vector: all layers' K, then all layers' V (gradients likewise).
    float *par[2] = {p->k, p->v};
    for (int ep = 0; rc == 0 && ep < o->epochs; ep++) {
        for (int s = n_samples - 1; s > 0; s--) {
            int j = (int)(xorshift64(&rng) % (uint64_t)(s + 1)), tmp = order[s];
            order[s] = order[j], order[j] = tmp;
        }
        double ep_loss = 0;
        for (int b0 = 0; rc == 0 && b0 < n_samples; b0 += o->batch) {
            int nb = n_samples - b0 < o->batch ? n_samples - b0 : o->batch;
            memset(grad, 0, 2 * n_par * sizeof *grad);
            for (int i = 0; i < nb; i++) {
                int s = order[b0 + i];
                const float *tg = targets + (size_t)s * per_sample;
                double l = ikv_train_forward(w, p, tokens + (size_t)s * len, tg);
                if (isnan(l)) { rc = it_fail(err, INTACT_E_NOMEM, "out of memory in the calibration forward"); break; }
                ep_loss += l;
                ikv_train_backward(w, tg, grad, grad + n_par);
            }
            if (rc != 0) break;
            // AdamW (Loshchilov & Hutter): decoupled decay, bias-corrected moments, as torch.optim.AdamW.
            r.steps++;
            double bc1 = 1.0 - pow(o->beta1, r.steps), bc2 = 1.0 - pow(o->beta2, r.steps);
            for (int half = 0; half < 2; half++)
                for (size_t i = 0; i < n_par; i++) {
                    size_t k = (size_t)half * n_par + i;
                    float g = grad[k] / (float)nb, *x = &par[half][i];
                    m1[k] = o->beta1 * m1[k] + (1 - o->beta1) * g;
                    m2[k] = o->beta2 * m2[k] + (1 - o->beta2) * g * g;
                    double mh = m1[k] / bc1, vh = m2[k] / bc2;
                    *x = (float)(*x * (1.0 - (double)o->lr * o->weight_decay) - o->lr * mh / (sqrt(vh) + o->eps));
                }
        }
        ep_loss /= n_samples;
        if (ep == 0) r.loss_first = ep_loss;
        r.loss_last = ep_loss;
        if (o->progress) o->progress(o->progress_user, ep + 1, o->epochs, ep_loss);
    }
    if (rc == 0) r.loss_final = eval_loss(w, p, tokens, targets, n_samples, len, per_sample);
    r.seconds = it_now_s() - t0;
    if (rc == 0 && rep) *rep = r;
    ikv_train_free(w);
    free(targets); free(grad); free(m1); free(m2); free(order);
    return rc;
}
