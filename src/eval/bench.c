// Speed measurement: batched prefill of a random prompt, then token-by-token decode; and the
// machine's read bandwidth, measured in the same run so decode speed can be stated as a fraction.
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/pool.h"
#include "model/model.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// Bytes a decode step reads: every layer matrix once, the output head, one embedding row and
// the K/V of every cached position.
static double decode_bytes(const intact_model *m, int n_cached) {
    const it_hparams *hp = &m->hp;
    double b = 0;
    for (int l = 0; l < hp->n_layers; l++) {
        const it_layer *ly = &m->layers[l];
        b += (double)ly->wq.nbytes + ly->wk.nbytes + ly->wv.nbytes + ly->wo.nbytes + ly->w_gate.nbytes +
             ly->w_up.nbytes + ly->w_down.nbytes;
    }
    b += (double)m->output.nbytes + (double)m->tok_embd.nbytes / hp->n_vocab;
    b += 2.0 * hp->n_layers * (double)n_cached * hp->n_kv_heads * hp->head_dim * sizeof(float);
    return b;
}

int intact_bench(const intact_model *m, const intact_bench_params *p, intact_bench_result *out,
                 intact_error *err) {
    if (p->n_prompt < 1 || p->n_gen < 0)
        return it_fail(err, INTACT_E_ARG, "bench needs a prompt of at least 1 token");
    if (p->n_prompt + p->n_gen > m->hp.ctx_len)
        return it_fail(err, INTACT_E_ARG, "prompt %d + generated %d exceeds the model context %d",
                       p->n_prompt, p->n_gen, m->hp.ctx_len);
    intact_ctx_params cp = {p->n_prompt + p->n_gen, p->n_threads, 0};
    intact_ctx *c = intact_ctx_new(m, &cp, err);
    if (!c) return -1;
    int32_t *prompt = malloc((size_t)p->n_prompt * sizeof *prompt);
    if (!prompt) { intact_ctx_free(c); return it_fail(err, INTACT_E_NOMEM, "out of memory"); }
    uint64_t s = p->seed * 2654435761u + 1;
    for (int i = 0; i < p->n_prompt; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        prompt[i] = (int32_t)((s >> 33) % (uint64_t)m->hp.n_vocab);
    }
    memset(out, 0, sizeof *out);
    // Warm-up: one token touches every weight page of the mapping, so timings exclude page faults.
    int rc = intact_ctx_eval(c, prompt, 1, err);
    intact_ctx_reset(c);
    double t0 = now_s();
    if (rc == 0) rc = intact_ctx_eval(c, prompt, p->n_prompt, err);
    out->prefill_s = now_s() - t0;
    double bytes = 0;
    t0 = now_s();
    for (int i = 0; rc == 0 && i < p->n_gen; i++) {
        const float *lg = intact_ctx_logits(c, -1);
        int32_t best = 0;
        for (int v = 1; v < m->hp.n_vocab; v++) if (lg[v] > lg[best]) best = v;
        bytes += decode_bytes(m, intact_ctx_pos(c) + 1);
        rc = intact_ctx_eval(c, &best, 1, err);
    }
    out->decode_s = now_s() - t0;
    if (rc == 0) {
        out->prefill_tok_s = p->n_prompt / out->prefill_s;
        out->decode_tok_s = p->n_gen > 0 ? p->n_gen / out->decode_s : 0;
        out->decode_bytes_per_token = p->n_gen > 0 ? bytes / p->n_gen : decode_bytes(m, p->n_prompt);
        out->decode_gb_s = out->decode_bytes_per_token * out->decode_tok_s / 1e9;
    }
    free(prompt);
    intact_ctx_free(c);
    return rc;
}

typedef struct {
    const uint64_t *buf;
    size_t n;
    uint64_t sink[64];
} bw_job;

static void bw_worker(void *arg, int ith, int nth) {
    bw_job *j = arg;
    long b, e;
    it_split_range((long)j->n, ith, nth, 64, &b, &e);
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
    for (long i = b; i + 8 <= e; i += 8) {
        a0 ^= j->buf[i]; a1 ^= j->buf[i + 1]; a2 ^= j->buf[i + 2]; a3 ^= j->buf[i + 3];
        a4 ^= j->buf[i + 4]; a5 ^= j->buf[i + 5]; a6 ^= j->buf[i + 6]; a7 ^= j->buf[i + 7];
    }
    j->sink[ith % 64] = a0 ^ a1 ^ a2 ^ a3 ^ a4 ^ a5 ^ a6 ^ a7;
}

double intact_measure_read_bandwidth(int n_threads, size_t bytes) {
    size_t n = bytes / sizeof(uint64_t);
    uint64_t *buf = malloc(n * sizeof *buf);
    it_pool *pool = it_pool_new(n_threads);
    double best = 0;
    if (buf && pool) {
        for (size_t i = 0; i < n; i++) buf[i] = i;
        bw_job j = {buf, n, {0}};
        for (int rep = 0; rep < 5; rep++) {
            double t0 = now_s();
            it_pool_run(pool, bw_worker, &j);
            double gbs = (double)(n * sizeof *buf) / (now_s() - t0) / 1e9;
            if (gbs > best) best = gbs;
        }
    }
    it_pool_free(pool);
    free(buf);
    return best;
}
