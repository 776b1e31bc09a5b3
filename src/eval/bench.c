// Speed measurement: batched prefill of a random prompt, then token-by-token decode. To state
// decode speed as a fraction of memory bandwidth on a shared, noisy machine, decode runs in
// segments with a bandwidth probe before and after each; the probe streams the very weight pages
// decode reads (no compute), so each segment is compared with what reading its bytes costs right
// then. The median fraction over segments is reported.
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/pool.h"
#include "forward/forward.h"
#include "kernels/matmul.h"
#include "model/model.h"

enum { BENCH_SEGMENT = 16 };

uint64_t eval_stream_read_avx2(const void *buf, size_t bytes, size_t pf);

// The matrices one decode step streams, in order.
static int decode_tensors(const intact_model *m, const it_tensor **out) {
    int k = 0;
    for (int l = 0; l < m->hp.n_layers; l++) {
        const it_layer *ly = &m->layers[l];
        const it_tensor *t[IT_LAYER_NMAT] = IT_LAYER_MATRICES(ly);
        for (int i = 0; i < IT_LAYER_NMAT; i++) out[k++] = t[i];
    }
    out[k++] = &m->output;
    return k;
}

// Bytes a decode step reads: every layer matrix once, the output head, one embedding row and
// the K/V of every cached position.
static double decode_bytes(const intact_ctx *c, int n_cached) {
    const intact_model *m = c->model;
    const it_hparams *hp = &m->hp;
    const it_tensor **t = malloc(((size_t)hp->n_layers * 7 + 1) * sizeof *t);
    double b = 0;
    if (!t) return 0;
    int n = decode_tensors(m, t);
    for (int i = 0; i < n; i++) b += (double)t[i]->nbytes;
    free(t);
    b += (double)m->tok_embd.nbytes / hp->n_vocab;
    b += (double)c->kv->ops->bytes(c->kv, n_cached); // as stored: fp32 or quantized
    return b;
}

typedef struct {
    const it_tensor **t;
    int n;
    uint64_t sink[64];
} probe_job;

static uint64_t stream_read(const void *p, size_t bytes) {
    // The F16 decode kernel's prefetch distance (formats/matmul_avx512.c: 4 KB on Zen 5, none on
    // Zen 4, 2 KB on Intel), one prefetch per line as there.
    if (it_cpu_has_avx2()) return eval_stream_read_avx2(p, bytes, (size_t)it_cpu_stream_prefetch(4096, 0));
    const uint64_t *w = p;
    uint64_t a0 = 0, a1 = 0;
    for (size_t i = 0; i + 2 <= bytes / 8; i += 2) { a0 ^= w[i]; a1 ^= w[i + 1]; }
    return a0 ^ a1;
}

// Each thread reads its share of every matrix, as the matmul kernels split rows.
static void probe_worker(void *arg, int ith, int nth) {
    probe_job *j = arg;
    uint64_t acc = 0;
    for (int i = 0; i < j->n; i++) {
        long b, e;
        it_split_range((long)j->t[i]->nbytes, ith, nth, 4096, &b, &e);
        if (b < e) acc ^= stream_read((const char *)j->t[i]->data + b, (size_t)(e - b));
    }
    j->sink[ith % 64] = acc;
}

static double probe_gb_s(intact_ctx *c, probe_job *j, double bytes) {
    double best = 0;
    for (int rep = 0; rep < 2; rep++) {
        double t0 = it_now_s();
        it_pool_run(c->pool, probe_worker, j);
        double g = bytes / (it_now_s() - t0) / 1e9;
        if (g > best) best = g;
    }
    return best;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

// Prefetch A/B state: steps alternate in pairs, A A B B; `block` holds the current block's times.
typedef struct {
    int on, dist[2];
    long step;
    double sum[2], block[2];
    long n[2];
    double *ratios;   // one per complete block
    int n_ratios;
} bench_ab;

static void ab_step_begin(bench_ab *ab) {
    if (ab->on) it_cpu_set_stream_prefetch(ab->dist[(ab->step >> 1) & 1]);
}

static void ab_step_end(bench_ab *ab, double dt) {
    if (!ab->on) return;
    int side = (int)((ab->step >> 1) & 1);
    ab->sum[side] += dt;
    ab->n[side]++;
    ab->block[side] += dt;
    if ((ab->step & 3) == 3) {
        ab->ratios[ab->n_ratios++] = ab->block[0] / ab->block[1];
        ab->block[0] = ab->block[1] = 0;
    }
    ab->step++;
    // Back to the default after every step (decode_segment ends each one here, failed or not): the
    // probes, and everything after the run, read memory as without A/B.
    it_cpu_set_stream_prefetch(-1);
}

// n greedy decode steps; *secs gets the time of the steps alone. The byte accounting stays outside
// the timing: MiKV's walks every cached position of every layer (0.4% of its decode time at 4K).
static int decode_segment(intact_ctx *c, int n, bench_ab *ab, double *bytes, double *secs, intact_error *err) {
    const intact_model *m = c->model;
    for (int i = 0; i < n; i++) {
        *bytes += decode_bytes(c, intact_ctx_pos(c) + 1);
        ab_step_begin(ab);
        double t0 = it_now_s();
        const float *lg = intact_ctx_logits(c, -1);
        int32_t best = 0;
        for (int v = 1; v < m->hp.n_vocab; v++) if (lg[v] > lg[best]) best = v;
        int rc = intact_ctx_eval(c, &best, 1, err);
        double dt = it_now_s() - t0;
        *secs += dt;
        ab_step_end(ab, dt);
        if (rc != 0) return -1;
    }
    return 0;
}

int intact_bench(const intact_model *m, const intact_bench_params *p, intact_bench_result *out,
                 intact_error *err) {
    if (p->n_prompt < 1 || p->n_gen < 0)
        return it_fail(err, INTACT_E_ARG, "bench needs a prompt of at least 1 token");
    int head = p->prefix ? intact_prefix_n_tokens(p->prefix) : 0;
    int limit = p->n_ctx > 0 ? p->n_ctx : m->hp.ctx_len;
    if (p->prefetch_ab_on && (p->prefetch_ab[0] < 0 || p->prefetch_ab[0] > 65536 || p->prefetch_ab[1] < 0 ||
                              p->prefetch_ab[1] > 65536))
        return it_fail(err, INTACT_E_ARG, "prefetch distances %d, %d not in [0, 65536] bytes", p->prefetch_ab[0],
                       p->prefetch_ab[1]);
    if (p->prefetch_ab_on && p->n_gen < 4)
        return it_fail(err, INTACT_E_ARG, "a prefetch A/B needs at least 4 decoded tokens (one A A B B block), got %d",
                       p->n_gen);
    if (p->n_ctx < 0 || head + p->n_prompt + p->n_gen > limit)
        return it_fail(err, INTACT_E_ARG, "prefix %d + prompt %d + generated %d exceeds the %s context %d", head,
                       p->n_prompt, p->n_gen, p->n_ctx > 0 ? "requested" : "model", limit);
    intact_ctx_params cp = {p->n_ctx > 0 ? p->n_ctx : head + p->n_prompt + p->n_gen, p->n_threads, 0};
    intact_ctx *c = intact_ctx_new(m, &cp, err);
    if (!c) return -1;
    if (p->kv && intact_ctx_set_kv(c, p->kv, err) != 0) {
        intact_ctx_free(c);
        return -1;
    }
    int n_seg = (p->n_gen + BENCH_SEGMENT - 1) / BENCH_SEGMENT;
    int32_t *prompt = malloc((size_t)p->n_prompt * sizeof *prompt);
    const it_tensor **ts = malloc(((size_t)m->hp.n_layers * 7 + 1) * sizeof *ts);
    double *fractions = malloc(((size_t)n_seg + 1) * sizeof *fractions);
    double *probes = malloc(((size_t)n_seg + 1) * sizeof *probes);
    bench_ab ab = {.on = p->prefetch_ab_on, .dist = {p->prefetch_ab[0], p->prefetch_ab[1]}};
    ab.ratios = ab.on ? malloc(((size_t)p->n_gen / 4 + 1) * sizeof *ab.ratios) : NULL;
    if (!prompt || !ts || !fractions || !probes || (ab.on && !ab.ratios)) {
        free(prompt); free(ts); free(fractions); free(probes); free(ab.ratios);
        intact_ctx_free(c);
        return it_fail(err, INTACT_E_NOMEM, "out of memory");
    }
    uint64_t s = p->seed * 2654435761u + 1;
    for (int i = 0; i < p->n_prompt; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        prompt[i] = (int32_t)((s >> 33) % (uint64_t)m->hp.n_vocab);
    }
    memset(out, 0, sizeof *out);
    // Warm-up: one token touches every weight page of the mapping, so timings exclude page faults.
    int rc = intact_ctx_eval(c, prompt, 1, err);
    intact_ctx_reset(c);
    double t0 = it_now_s();
    // The prefix is installed, not computed: its cost is a copy of its K/V, inside the timing.
    if (rc == 0 && p->prefix) rc = intact_ctx_use_prefix(c, p->prefix, err);
    if (rc == 0) rc = intact_ctx_eval(c, prompt, p->n_prompt, err);
    out->prefill_s = it_now_s() - t0;

    probe_job pj = {ts, decode_tensors(m, ts), {0}};
    double weight_read = 0;
    for (int i = 0; i < pj.n; i++) weight_read += (double)ts[i]->nbytes;
    if (p->measure_bandwidth && rc == 0) probes[0] = probe_gb_s(c, &pj, weight_read);
    double bytes = 0;
    for (int seg = 0; rc == 0 && seg < n_seg; seg++) {
        int n = p->n_gen - seg * BENCH_SEGMENT < BENCH_SEGMENT ? p->n_gen - seg * BENCH_SEGMENT : BENCH_SEGMENT;
        double seg_bytes = 0, dt = 0;
        rc = decode_segment(c, n, &ab, &seg_bytes, &dt, err);
        out->decode_s += dt;
        bytes += seg_bytes;
        if (p->measure_bandwidth && rc == 0) {
            probes[seg + 1] = probe_gb_s(c, &pj, weight_read);
            fractions[seg] = seg_bytes / dt / 1e9 / (0.5 * (probes[seg] + probes[seg + 1]));
        }
    }
    if (rc == 0) {
        out->prefill_tok_s = p->n_prompt / out->prefill_s;
        out->decode_tok_s = p->n_gen > 0 ? p->n_gen / out->decode_s : 0;
        out->decode_bytes_per_token = p->n_gen > 0 ? bytes / p->n_gen : decode_bytes(c, p->n_prompt);
        out->decode_gb_s = out->decode_bytes_per_token * out->decode_tok_s / 1e9;
        out->kv_bytes = intact_ctx_kv_bytes(c);
        out->kv_bytes_vs_f16 = (double)out->kv_bytes / (double)intact_ctx_kv_bytes_f16(c);
        if (ab.on) {
            for (int i = 0; i < 2; i++) out->ab_step_ms[i] = ab.n[i] ? 1e3 * ab.sum[i] / (double)ab.n[i] : 0;
            qsort(ab.ratios, (size_t)ab.n_ratios, sizeof *ab.ratios, cmp_double);
            out->ab_blocks = ab.n_ratios;
            out->ab_speed = ab.n_ratios ? ab.ratios[ab.n_ratios / 2] : 0;
        }
        if (p->measure_bandwidth && n_seg > 0) {
            qsort(probes, (size_t)n_seg + 1, sizeof *probes, cmp_double);
            qsort(fractions, (size_t)n_seg, sizeof *fractions, cmp_double);
            out->mem_bw_gb_s = probes[n_seg / 2];
            out->bw_fraction = fractions[n_seg / 2];
        }
    }
    free(prompt); free(ts); free(fractions); free(probes); free(ab.ratios);
    intact_ctx_free(c);
    return rc;
}
