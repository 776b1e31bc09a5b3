// `intact serve`: libmicrohttpd with a thread per connection. A request takes one of `parallel`
// slots (each an intact_ctx with the session cache) or waits in a bounded queue (503 when it is
// full). Its connection thread tokenizes and prefills the prompt on its own context, then samples
// each token itself and hands it to the scheduler thread, which decodes the pending tokens of all
// sessions in one batched step (intact_ctx_eval_batch: each weight read once per step, so throughput
// grows with the number of sessions) and wakes their threads.
// Streaming responses generate one token per content-reader call, so a client that disconnects
// ends its generation and frees its slot at the next token; a non-streamed request checks its
// socket between tokens for the same.
#include "serve/server.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <microhttpd.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "sample/stop.h"
#include "serve/req.h"

// A slot's decode state: IDLE, PENDING (tok handed to the scheduler), RUNNING (in a batch), DONE
// (rc set; its connection thread takes it back to IDLE).
enum { SLOT_IDLE, SLOT_PENDING, SLOT_RUNNING, SLOT_DONE };
typedef struct slot { intact_ctx *ctx; int busy, state, rc; int32_t tok; uint64_t reserved; } slot;

static struct server {
    const serve_config *cfg;
    intact_model_info info;
    slot *slots;
    pthread_mutex_t mu;
    pthread_cond_t cv;          // a slot was freed
    pthread_cond_t sched_cv;    // to the scheduler: a token is pending, a session stopped decoding, or stop
    pthread_cond_t done_cv;     // to the connection threads: a batch finished
    int waiting;                // requests waiting for a slot or for room in the KV budget
    uint64_t kv_reserved;       // --kv-budget: the sum of the busy slots' reservations
    intact_ctx_params ctx_params;
    int decoding, pending, stop;   // sessions past prefill and not finished; tokens handed over
    pthread_t sched;
    uint64_t steps, step_rows;  // batched steps and the tokens they decoded (mean batch, at exit)
    // metrics
    uint64_t tokens_gen, tokens_prompt, requests, prefix_hits, errors;
    double gen_seconds, t_start;
} S;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// ---------------------------------------------------------------- slots
static int slot_acquire(void) {
    pthread_mutex_lock(&S.mu);
    int id = -1;
    for (;;) {
        for (int i = 0; i < S.cfg->parallel && id < 0; i++)
            if (!S.slots[i].busy) id = i;
        if (id >= 0) break;
        if (S.waiting >= S.cfg->queue) break;
        S.waiting++;
        pthread_cond_wait(&S.cv, &S.mu);
        S.waiting--;
    }
    if (id >= 0) S.slots[id].busy = 1;
    pthread_mutex_unlock(&S.mu);
    return id;
}

// A fresh context for slot id, replacing the one a finished session used, so that its cache pages
// go back to the system (the caches are large mmap'd blocks, see serve_run): under --kv-budget the
// idle slots hold no KV memory. Kept as it was when a new one cannot be made.
static void slot_renew(int id) {
    intact_error err = {0, ""};
    intact_ctx *c = intact_ctx_new(S.cfg->model, &S.ctx_params, &err);
    if (c && S.cfg->kv && intact_ctx_set_kv(c, S.cfg->kv, &err) != 0) {
        intact_ctx_free(c);
        c = NULL;
    }
    if (!c) return;
    intact_ctx_free(S.slots[id].ctx);
    S.slots[id].ctx = c;
}

static void slot_release(int id) {
    if (S.cfg->kv_budget) slot_renew(id);
    pthread_mutex_lock(&S.mu);
    S.slots[id].busy = 0;
    S.kv_reserved -= S.slots[id].reserved;
    S.slots[id].reserved = 0;
    pthread_cond_broadcast(&S.cv);   // waiters for a slot and for budget share it
    pthread_mutex_unlock(&S.mu);
}

// Admits slot id's session under --kv-budget: reserves the cache bytes it can reach (its prompt and
// max_tokens, at most the context; a shared prefix is not its own) and, like a request waiting for
// a slot, waits while the running sessions' reservations leave too little. Reserving the worst case
// up front means an admitted session never runs out of budget half-way through an answer.
// 0, 400 (it can never fit) or 503 (the queue is full).
static int budget_reserve(int id, uint64_t need, char *msg, size_t cap) {
    uint64_t budget = S.cfg->kv_budget;
    if (need > budget) {
        snprintf(msg, cap, "this request needs %.2f MiB of KV cache (prompt + max_tokens); the server's --kv-budget is %.2f MiB",
                 (double)need / 1048576.0, (double)budget / 1048576.0);
        return 400;
    }
    int st = 0;
    pthread_mutex_lock(&S.mu);
    while (S.kv_reserved + need > budget) {
        if (S.waiting >= S.cfg->queue) { st = 503; break; }
        S.waiting++;
        pthread_cond_wait(&S.cv, &S.mu);
        S.waiting--;
    }
    if (!st) {
        S.kv_reserved += need;
        S.slots[id].reserved = need;
    }
    pthread_mutex_unlock(&S.mu);
    if (st) snprintf(msg, cap, "the KV budget is taken by running sessions and the queue is full; retry later");
    return st;
}

// ---------------------------------------------------------------- scheduler
// After the first pending token the scheduler waits up to this long for the other decoding sessions
// to hand theirs over (they are sampling or writing their last chunk: microseconds), so one step
// serves them all; a session that is slow to come back (a client slow to read) delays the others
// by at most this much per step.
enum { SCHED_GATHER_US = 2000 };

static void deadline_in(struct timespec *ts, long us) {
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_nsec += us * 1000;
    ts->tv_sec += ts->tv_nsec / 1000000000L;
    ts->tv_nsec %= 1000000000L;
}

// Evaluates the batch; when the batch is refused as a whole (a context full, out of memory), each
// context is evaluated alone so only the sessions at fault see the error.
static void sched_eval(intact_ctx **ctxs, const int32_t *toks, int *rcs, int n) {
    intact_error err = {0, ""};
    int rc = intact_ctx_eval_batch(ctxs, toks, n, &err);
    for (int i = 0; i < n; i++) rcs[i] = rc;
    if (rc != 0 && n > 1)
        for (int i = 0; i < n; i++) rcs[i] = intact_ctx_eval(ctxs[i], &toks[i], 1, &err);
}

static void *sched_main(void *arg) {
    (void)arg;
    int cap = S.cfg->parallel;
    intact_ctx **ctxs = malloc((size_t)cap * sizeof *ctxs);
    int32_t *toks = malloc((size_t)cap * sizeof *toks);
    int *ids = malloc((size_t)cap * sizeof *ids), *rcs = malloc((size_t)cap * sizeof *rcs);
    pthread_mutex_lock(&S.mu);
    while (!S.stop) {
        if (S.pending == 0) { pthread_cond_wait(&S.sched_cv, &S.mu); continue; }
        struct timespec dl;
        deadline_in(&dl, SCHED_GATHER_US);
        while (!S.stop && S.pending < S.decoding && pthread_cond_timedwait(&S.sched_cv, &S.mu, &dl) != ETIMEDOUT) {}
        int n = 0;
        for (int i = 0; i < cap; i++)
            if (S.slots[i].state == SLOT_PENDING) {
                S.slots[i].state = SLOT_RUNNING;
                ctxs[n] = S.slots[i].ctx;
                toks[n] = S.slots[i].tok;
                ids[n++] = i;
            }
        S.pending = 0;
        pthread_mutex_unlock(&S.mu);
        if (!ctxs || !toks || !ids || !rcs) for (int i = 0; i < n; i++) rcs[i] = -1;
        else sched_eval(ctxs, toks, rcs, n);
        pthread_mutex_lock(&S.mu);
        for (int i = 0; i < n; i++) {
            S.slots[ids[i]].rc = rcs ? rcs[i] : -1;
            S.slots[ids[i]].state = SLOT_DONE;
        }
        S.steps++;
        S.step_rows += (uint64_t)n;
        pthread_cond_broadcast(&S.done_cv);
    }
    pthread_mutex_unlock(&S.mu);
    free(ctxs); free(toks); free(ids); free(rcs);
    return NULL;
}

// Hands tok to the scheduler for slot id and waits for its step. 0, or -1 when it was not evaluated.
static int sched_decode(int id, int32_t tok) {
    slot *s = &S.slots[id];
    pthread_mutex_lock(&S.mu);
    s->tok = tok;
    s->state = SLOT_PENDING;
    S.pending++;
    pthread_cond_signal(&S.sched_cv);
    while (s->state != SLOT_DONE) pthread_cond_wait(&S.done_cv, &S.mu);
    s->state = SLOT_IDLE;
    int rc = s->rc;
    pthread_mutex_unlock(&S.mu);
    return rc;
}

// ---------------------------------------------------------------- generation
typedef struct gen {
    serve_req req;
    int slot;
    intact_ctx *ctx;
    intact_sampler smp;
    int n_prompt, n_gen, prefix_hit;
    int32_t prev;
    char *text;                 // generated text; [0, shown) sent
    size_t len, cap, shown;
    int done;                   // 1: finished (finish reason set)
    const char *finish;         // "stop" or "length"
    double logprob_sum;
    struct gen_tok { double lp; size_t off, len; } *toks;   // logprobs: per generated token, its text span
    int n_toks, cap_toks;
    char id[40];
    long created;
    int stream_state;           // 0: role chunk due (chat), 1: tokens, 2: final chunk sent, 3: [DONE] sent
    int decoding;               // counted in S.decoding (past prefill, not finished)
} gen;

static void gen_decoding(gen *g, int on) {
    if (g->decoding == on) return;
    pthread_mutex_lock(&S.mu);
    S.decoding += on ? 1 : -1;
    pthread_cond_signal(&S.sched_cv);   // the scheduler may be waiting for this session's token
    pthread_mutex_unlock(&S.mu);
    g->decoding = on;
}

static void gen_finish(gen *g, const char *reason) {
    g->done = 1;
    g->finish = reason;
    gen_decoding(g, 0);
}

// INTACT_SERVE_COPY_PREFIX=1 restores the per-session copy, only to measure what sharing saves.
static int prefix_shared(void) {
    return S.cfg->prefix && !(S.cfg->kv && S.cfg->kv->balance) && !getenv("INTACT_SERVE_COPY_PREFIX");
}

// Tokenizes, installs the prefix when the prompt starts with it, prefills. 0, or an HTTP status with
// msg filled.
// Tokens of text[0..len) (bos: with the model's BOS) appended at ids[*n..]; ids grows. 0 or -1.
static int tokenize_append(const char *text, size_t len, int bos, int32_t **ids, int *n, intact_error *err) {
    const intact_model *m = S.cfg->model;
    int k = intact_tokenize(m, text, len, bos, NULL, 0, err);
    if (k < 0) return -1;
    int32_t *grown = realloc(*ids, (size_t)(*n + k + 1) * sizeof *grown);
    if (!grown) {
        err->code = INTACT_E_NOMEM;
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return -1;
    }
    *ids = grown;
    if (k > 0 && intact_tokenize(m, text, len, bos, grown + *n, k, err) != k) return -1;
    *n += k;
    return 0;
}

// The prompt's tokens. A chat that opens with the system prompt of the shared prefix is tokenized
// in two parts, the system text (which must give exactly the prefix's tokens) and the rest, so the
// prefix matches whatever the tokenizer would merge across the boundary. 0, or -1 with err set.
static int prompt_tokens(const gen *g, int32_t **ids, int *n, intact_error *err) {
    const char *pr = g->req.prompt, *sys = g->req.system;
    const intact_prefix *p = S.cfg->prefix;
    *ids = NULL;
    *n = 0;
    if (p && sys && !strncmp(pr, sys, strlen(sys))) {
        if (tokenize_append(sys, strlen(sys), S.info.add_bos, ids, n, err)) return -1;
        int pn = intact_prefix_n_tokens(p);
        if (*n == pn && !memcmp(*ids, intact_prefix_tokens(p), (size_t)pn * sizeof **ids))
            return tokenize_append(pr + strlen(sys), strlen(pr) - strlen(sys), 0, ids, n, err);
        *n = 0;   // another system prompt: one ordinary tokenization
    }
    return tokenize_append(pr, strlen(pr), S.info.add_bos, ids, n, err);
}

static int gen_start(gen *g, char *msg, size_t cap) {
    intact_error err = {0, ""};
    int32_t *ids;
    int n;
    if (prompt_tokens(g, &ids, &n, &err) != 0) {
        free(ids);
        snprintf(msg, cap, "%s", err.msg);
        return err.code == INTACT_E_NOMEM ? 500 : 400;
    }
    int bad = n == 0 ? snprintf(msg, cap, "the prompt is empty")
              : n >= S.cfg->n_ctx ? snprintf(msg, cap, "the prompt has %d tokens; the context holds %d", n, S.cfg->n_ctx)
                                  : 0;
    if (bad) {
        free(ids);
        return 400;
    }
    g->n_prompt = n;
    intact_sampler_params sp = intact_sampler_default_params();
    sp.temp = g->req.temperature;
    sp.top_p = g->req.top_p;
    sp.top_k = g->req.top_k;
    sp.min_p = g->req.min_p;
    sp.repeat_penalty = g->req.repeat_penalty;
    sp.seed = g->req.has_seed ? g->req.seed : (uint64_t)time(NULL);
    if (intact_sampler_init_params(&g->smp, &sp, &err) != 0) { free(ids); snprintf(msg, cap, "%s", err.msg); return 400; }
    for (int i = 0; i < n; i++) intact_sampler_accept(&g->smp, ids[i]);
    int skip = 0;
    const intact_prefix *p = S.cfg->prefix;
    intact_ctx_reset(g->ctx);
    if (p) {
        int pn = intact_prefix_n_tokens(p);
        if (n >= pn && !memcmp(ids, intact_prefix_tokens(p), (size_t)pn * sizeof *ids)) {
            // Shared in place (one copy for every session), except with key balancing, which
            // stores each session's prefix keys rescaled (intact_ctx_share_prefix refuses it).
            int rc = prefix_shared() ? intact_ctx_share_prefix(g->ctx, p, &err) : intact_ctx_use_prefix(g->ctx, p, &err);
            if (rc != 0) { free(ids); snprintf(msg, cap, "%s", err.msg); return 500; }
            skip = pn;
            g->prefix_hit = 1;
        }
    }
    if (S.cfg->kv_budget) {
        int reach = n + g->req.max_tokens < S.cfg->n_ctx ? n + g->req.max_tokens : S.cfg->n_ctx;
        int st = budget_reserve(g->slot, intact_ctx_kv_bytes_at(g->ctx, reach), msg, cap);
        if (st) { free(ids); return st; }
    }
    if (n > skip && intact_ctx_eval(g->ctx, ids + skip, n - skip, &err) != 0) {
        free(ids);
        snprintf(msg, cap, "%s", err.msg);
        return 500;
    }
    g->prev = ids[n - 1];
    free(ids);
    if (g->req.max_tokens == 0) gen_finish(g, "length");
    else gen_decoding(g, 1);
    pthread_mutex_lock(&S.mu);
    S.tokens_prompt += (uint64_t)n;
    S.prefix_hits += (uint64_t)g->prefix_hit;
    pthread_mutex_unlock(&S.mu);
    return 0;
}

// One token. Afterwards text[shown, end) is new text to send (end returned).
static size_t gen_step(gen *g) {
    if (g->done) return g->shown;
    double t0 = now_s();
    const float *logits = intact_ctx_logits(g->ctx, -1);
    int nv = S.info.n_vocab;
    int32_t next = intact_sample(&g->smp, logits, nv);
    size_t end = g->len;
    if (next == S.info.eos_id || next == S.info.bos_id) {
        gen_finish(g, "stop");
        return end;   // a held-back tail that never became a stop string
    }
    if (g->req.logprobs) {   // log-softmax of the raw logits at the chosen token
        float mx = logits[0];
        for (int i = 1; i < nv; i++) mx = logits[i] > mx ? logits[i] : mx;
        double z = 0;
        for (int i = 0; i < nv; i++) z += exp((double)(logits[i] - mx));
        double lp = (double)(logits[next] - mx) - log(z);
        g->logprob_sum += lp;
        if (g->n_toks == g->cap_toks) {
            struct gen_tok *nt = realloc(g->toks, (size_t)(g->cap_toks = 2 * g->cap_toks + 64) * sizeof *nt);
            if (!nt) { gen_finish(g, "length"); return g->shown; }
            g->toks = nt;
        }
        g->toks[g->n_toks++] = (struct gen_tok){lp, g->len, 0};
    }
    intact_sampler_accept(&g->smp, next);
    char piece[256];
    int k = intact_token_to_text(S.cfg->model, g->prev, next, piece, sizeof piece);
    if (k > (int)sizeof piece) k = (int)sizeof piece;
    if (k > 0 && g->len + (size_t)k + 1 > g->cap) {
        char *nt = realloc(g->text, g->cap = 2 * g->cap + 4096);
        if (!nt) { gen_finish(g, "length"); return g->shown; }
        g->text = nt;
    }
    if (k > 0) { memcpy(g->text + g->len, piece, (size_t)k); g->len += (size_t)k; g->text[g->len] = 0; }
    if (g->req.logprobs) g->toks[g->n_toks - 1].len = (size_t)(k > 0 ? k : 0);
    g->prev = next;
    g->n_gen++;
    int hit = 0;
    end = g->req.n_stops ? stop_scan(g->text, g->len, g->shown, (const char *const *)g->req.stops, g->req.n_stops, &hit)
                         : g->len;
    if (hit) gen_finish(g, "stop");
    else if (g->n_gen >= g->req.max_tokens || intact_ctx_pos(g->ctx) >= S.cfg->n_ctx || sched_decode(g->slot, next) != 0) {
        gen_finish(g, "length");
        end = g->len;
    }
    pthread_mutex_lock(&S.mu);
    S.tokens_gen++;
    S.gen_seconds += now_s() - t0;
    pthread_mutex_unlock(&S.mu);
    return end;
}

static void gen_free(gen *g) {
    if (!g) return;
    gen_decoding(g, 0);
    if (g->slot >= 0) slot_release(g->slot);
    req_free(&g->req);
    free(g->text);
    free(g->toks);
    free(g);
}

// ---------------------------------------------------------------- JSON responses
static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type, const char *body) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    if (status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s) return send_text(c, 500, "application/json", "{\"error\":{\"message\":\"out of memory\"}}");
    enum MHD_Result r = send_text(c, status, "application/json", s);
    free(s);
    return r;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *msg) {
    const char *type = status == 401 ? "authentication_error" : status == 503 ? "server_busy"
                     : status >= 500 ? "server_error" : "invalid_request_error";
    cJSON *j = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(j, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", type);
    cJSON_AddNumberToObject(e, "code", status);
    pthread_mutex_lock(&S.mu);
    S.errors++;
    pthread_mutex_unlock(&S.mu);
    return send_json(c, status, j);
}

static void add_usage(cJSON *j, const gen *g) {
    cJSON *u = cJSON_AddObjectToObject(j, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", g->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", g->n_gen);
    cJSON_AddNumberToObject(u, "total_tokens", g->n_prompt + g->n_gen);
}

// OpenAI's logprobs of the tokens whose text starts in text[from, from + n): chat
// {"content": [{token, logprob, bytes, top_logprobs: []}]}, completions {tokens, token_logprobs,
// top_logprobs: null, text_offset}. Log-softmax of the raw logits (before temperature and penalties);
// "sum" (ours) adds them up over the whole generation so far.
static void add_logprobs(cJSON *c, const gen *g, size_t from, size_t n) {
    cJSON *lp = cJSON_AddObjectToObject(c, "logprobs");
    cJSON *content = g->req.chat ? cJSON_AddArrayToObject(lp, "content") : NULL;
    cJSON *tokens = g->req.chat ? NULL : cJSON_AddArrayToObject(lp, "tokens");
    cJSON *tlp = g->req.chat ? NULL : cJSON_AddArrayToObject(lp, "token_logprobs");
    cJSON *offs = g->req.chat ? NULL : cJSON_AddArrayToObject(lp, "text_offset");
    if (!g->req.chat) cJSON_AddNullToObject(lp, "top_logprobs");
    for (int i = 0; i < g->n_toks; i++) {
        const struct gen_tok *t = &g->toks[i];
        if (t->off < from || t->off >= from + n || !t->len) continue;
        size_t len = t->off + t->len <= g->len ? t->len : g->len - t->off;
        char *piece = malloc(len + 1);
        if (!piece) continue;
        memcpy(piece, g->text + t->off, len);
        piece[len] = 0;
        if (content) {
            cJSON *e = cJSON_CreateObject(), *bytes = cJSON_AddArrayToObject(e, "bytes");
            cJSON_AddStringToObject(e, "token", piece);
            cJSON_AddNumberToObject(e, "logprob", t->lp);
            for (size_t b = 0; b < len; b++) cJSON_AddItemToArray(bytes, cJSON_CreateNumber((unsigned char)piece[b]));
            cJSON_AddArrayToObject(e, "top_logprobs");
            cJSON_AddItemToArray(content, e);
        } else {
            cJSON_AddItemToArray(tokens, cJSON_CreateString(piece));
            cJSON_AddItemToArray(tlp, cJSON_CreateNumber(t->lp));
            cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)t->off));
        }
        free(piece);
    }
    cJSON_AddNumberToObject(lp, "sum", g->logprob_sum);
}

// The envelope of a response or a stream chunk, with one choice whose text/delta is text (or none);
// text is g->text + from when it is generated text.
static cJSON *envelope(const gen *g, int chunk, const char *text, size_t n, const char *finish, int role) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", g->id);
    cJSON_AddStringToObject(j, "object", g->req.chat ? (chunk ? "chat.completion.chunk" : "chat.completion")
                                                     : "text_completion");
    cJSON_AddNumberToObject(j, "created", (double)g->created);
    cJSON_AddStringToObject(j, "model", S.cfg->model_name);
    cJSON *cs = cJSON_AddArrayToObject(j, "choices"), *c = cJSON_CreateObject();
    cJSON_AddItemToArray(cs, c);
    cJSON_AddNumberToObject(c, "index", 0);
    char *t = malloc(n + 1);
    if (t) { memcpy(t, text ? text : "", n); t[n] = 0; }
    if (g->req.chat) {
        cJSON *m = cJSON_AddObjectToObject(c, chunk ? "delta" : "message");
        if (role || !chunk) cJSON_AddStringToObject(m, "role", "assistant");
        if (text) cJSON_AddStringToObject(m, "content", t ? t : "");
    } else {
        cJSON_AddStringToObject(c, "text", t ? t : "");
    }
    free(t);
    if (g->req.logprobs && text && g->text && text >= g->text && text <= g->text + g->len)
        add_logprobs(c, g, (size_t)(text - g->text), n);
    if (finish) cJSON_AddStringToObject(c, "finish_reason", finish);
    else cJSON_AddNullToObject(c, "finish_reason");
    return j;
}

// ---------------------------------------------------------------- streaming (SSE)
static ssize_t sse_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    gen *g = cls;
    cJSON *j = NULL;
    if (g->stream_state == 3) return MHD_CONTENT_READER_END_OF_STREAM;
    if (g->stream_state == 2) {
        g->stream_state = 3;
        const char *d = "data: [DONE]\n\n";
        size_t n = strlen(d) < max ? strlen(d) : max;
        memcpy(buf, d, n);
        return (ssize_t)n;
    }
    if (g->stream_state == 0 && g->req.chat) {
        j = envelope(g, 1, "", 0, NULL, 1);
        g->stream_state = 1;
    } else {
        g->stream_state = 1;
        size_t from = g->shown, end = from;
        while (!g->done && end == from) end = gen_step(g);   // until there is text or the end
        g->shown = end;
        if (g->done) {
            j = envelope(g, 1, g->text ? g->text + from : "", end - from, g->finish, 0);
            add_usage(j, g);
            g->stream_state = 2;
        } else {
            j = envelope(g, 1, g->text + from, end - from, NULL, 0);
        }
    }
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s) return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = strlen(s);
    // MHD's buffer is 32 KiB or more; a chunk holds a few tokens of text. Never cut one.
    if (n + 8 > max) { free(s); return MHD_CONTENT_READER_END_WITH_ERROR; }
    memcpy(buf, "data: ", 6);
    memcpy(buf + 6, s, n);
    memcpy(buf + 6 + n, "\n\n", 2);
    free(s);
    return (ssize_t)(n + 8);
}

static void sse_free(void *cls) { gen_free(cls); }

// ---------------------------------------------------------------- endpoints
// 1 when the peer has closed the connection. The request is fully read, so the socket has nothing
// to read unless the client closed it (recv 0 or a reset) or pipelined another request (> 0).
static int client_gone(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return 0;
    char b;
    ssize_t r = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static enum MHD_Result do_completion(struct MHD_Connection *c, int chat, const char *body, size_t len) {
    char msg[512];
    gen *g = calloc(1, sizeof *g);
    if (!g) return send_error(c, 500, "out of memory");
    g->slot = -1;
    if (req_parse(body, len, chat, S.cfg->template_id, &g->req, msg, sizeof msg) != 0) {
        gen_free(g);
        return send_error(c, 400, msg);
    }
    pthread_mutex_lock(&S.mu);
    S.requests++;
    uint64_t rid = S.requests;
    pthread_mutex_unlock(&S.mu);
    snprintf(g->id, sizeof g->id, "%s-%llu", chat ? "chatcmpl" : "cmpl", (unsigned long long)rid);
    g->created = (long)time(NULL);
    if ((g->slot = slot_acquire()) < 0) {
        gen_free(g);
        return send_error(c, 503, "all slots are busy and the queue is full; retry later");
    }
    g->ctx = S.slots[g->slot].ctx;
    int st = gen_start(g, msg, sizeof msg);
    if (st) { gen_free(g); return send_error(c, (unsigned)st, msg); }
    if (g->req.stream) {
        struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, sse_reader, g, sse_free);
        if (!r) { gen_free(g); return MHD_NO; }
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        enum MHD_Result ret = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    while (!g->done) {
        if (client_gone(c)) {   // nobody will read the answer: free the slot now
            gen_free(g);
            return MHD_NO;
        }
        g->shown = gen_step(g);
    }
    cJSON *j = envelope(g, 0, g->text ? g->text : "", g->shown, g->finish, 0);
    add_usage(j, g);
    gen_free(g);
    return send_json(c, 200, j);
}

static uint64_t kv_bytes_in_use(int *busy) {
    uint64_t b = 0;
    *busy = 0;
    for (int i = 0; i < S.cfg->parallel; i++)
        if (S.slots[i].busy) { b += intact_ctx_kv_bytes(S.slots[i].ctx); (*busy)++; }
    return b;
}

static enum MHD_Result do_metrics(struct MHD_Connection *c) {
    char out[2048];
    pthread_mutex_lock(&S.mu);
    int busy;
    uint64_t kvb = kv_bytes_in_use(&busy);
    double up = now_s() - S.t_start;
    snprintf(out, sizeof out,
             "# HELP intact_tokens_per_second generated tokens per second of decoding (per slot, mean)\n"
             "# TYPE intact_tokens_per_second gauge\nintact_tokens_per_second %.3f\n"
             "# TYPE intact_throughput_tokens_per_second gauge\nintact_throughput_tokens_per_second %.3f\n"
             "# TYPE intact_tokens_generated_total counter\nintact_tokens_generated_total %llu\n"
             "# TYPE intact_prompt_tokens_total counter\nintact_prompt_tokens_total %llu\n"
             "# TYPE intact_requests_total counter\nintact_requests_total %llu\n"
             "# TYPE intact_errors_total counter\nintact_errors_total %llu\n"
             "# HELP intact_queue_depth requests waiting for a slot or for room in the KV budget\n"
             "# TYPE intact_queue_depth gauge\nintact_queue_depth %d\n"
             "# TYPE intact_slots_busy gauge\nintact_slots_busy %d\n"
             "# HELP intact_kv_bytes_in_use KV cache bytes of the busy slots, their own rows only (a shared prefix is not counted)\n"
             "# TYPE intact_kv_bytes_in_use gauge\nintact_kv_bytes_in_use %llu\n"
             "# HELP intact_prefix_kv_bytes the IntactKV prefix K/V as loaded (fp32), once\n"
             "# TYPE intact_prefix_kv_bytes gauge\nintact_prefix_kv_bytes %llu\n"
             "# TYPE intact_prefix_hits_total counter\nintact_prefix_hits_total %llu\n"
             "# HELP intact_kv_prefix_shared_bytes the prefix K/V every session reads in place, counted once (0: not shared)\n"
             "# TYPE intact_kv_prefix_shared_bytes gauge\nintact_kv_prefix_shared_bytes %llu\n"
             "# HELP intact_kv_budget_bytes --kv-budget (0: none)\n"
             "# TYPE intact_kv_budget_bytes gauge\nintact_kv_budget_bytes %llu\n"
             "# HELP intact_kv_bytes_reserved KV cache bytes the busy sessions may reach (prompt + max_tokens), held against the budget\n"
             "# TYPE intact_kv_bytes_reserved gauge\nintact_kv_bytes_reserved %llu\n",
             S.gen_seconds > 0 ? (double)S.tokens_gen / S.gen_seconds : 0.0, up > 0 ? (double)S.tokens_gen / up : 0.0,
             (unsigned long long)S.tokens_gen, (unsigned long long)S.tokens_prompt, (unsigned long long)S.requests,
             (unsigned long long)S.errors, S.waiting, busy, (unsigned long long)kvb,
             (unsigned long long)(S.cfg->prefix ? intact_prefix_kv_bytes(S.cfg->prefix) : 0),
             (unsigned long long)S.prefix_hits,
             (unsigned long long)(prefix_shared() ? intact_prefix_kv_bytes(S.cfg->prefix) : 0),
             (unsigned long long)S.cfg->kv_budget, (unsigned long long)S.kv_reserved);
    pthread_mutex_unlock(&S.mu);
    return send_text(c, 200, "text/plain; version=0.0.4", out);
}

// Per-connection upload state: the body, or too_big once it exceeds max_body (then dropped).
typedef struct upload { char *buf; size_t len; int too_big; } upload;

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *data, size_t *data_size, void **con_cls) {
    (void)cls; (void)version;
    upload *u = *con_cls;
    if (!u) {
        if (!(u = calloc(1, sizeof *u))) return MHD_NO;
        *con_cls = u;
        return MHD_YES;
    }
    if (*data_size) {
        if (!u->too_big && u->len + *data_size > S.cfg->max_body) { u->too_big = 1; free(u->buf); u->buf = NULL; }
        if (!u->too_big) {
            char *nb = realloc(u->buf, u->len + *data_size + 1);
            if (!nb) return MHD_NO;
            u->buf = nb;
            memcpy(u->buf + u->len, data, *data_size);
            u->len += *data_size;
        }
        *data_size = 0;
        return MHD_YES;
    }
    if (S.cfg->api_key && strcmp(url, "/health") != 0) {
        const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
        if (!h || strncmp(h, "Bearer ", 7) != 0 || strcmp(h + 7, S.cfg->api_key) != 0)
            return send_error(c, 401, "missing or wrong API key (Authorization: Bearer KEY)");
    }
    int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    if (!strcmp(url, "/health")) return get ? send_text(c, 200, "application/json", "{\"status\":\"ok\"}")
                                            : send_error(c, 405, "use GET");
    if (!strcmp(url, "/metrics")) return get ? do_metrics(c) : send_error(c, 405, "use GET");
    if (!strcmp(url, "/v1/models")) {
        if (!get) return send_error(c, 405, "use GET");
        cJSON *j = cJSON_CreateObject(), *d = cJSON_AddArrayToObject(j, "data"), *m = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "object", "list");
        cJSON_AddStringToObject(m, "id", S.cfg->model_name);
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddNumberToObject(m, "created", 0);
        cJSON_AddStringToObject(m, "owned_by", "intact");
        cJSON_AddItemToArray(d, m);
        return send_json(c, 200, j);
    }
    int chat = !strcmp(url, "/v1/chat/completions");
    if (chat || !strcmp(url, "/v1/completions")) {
        if (!post) return send_error(c, 405, "use POST");
        if (u->too_big) return send_error(c, 413, "request body too large");
        return do_completion(c, chat, u->buf ? u->buf : "", u->len);
    }
    return send_error(c, 404, "no such endpoint");
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls; (void)c; (void)toe;
    upload *u = *con_cls;
    if (u) { free(u->buf); free(u); }
    *con_cls = NULL;
}

int serve_run(const serve_config *cfg) {
    memset(&S, 0, sizeof S);
    S.cfg = cfg;
    intact_model_get_info(cfg->model, &S.info);
    pthread_mutex_init(&S.mu, NULL);
    pthread_cond_init(&S.cv, NULL);
    pthread_cond_init(&S.sched_cv, NULL);
    pthread_cond_init(&S.done_cv, NULL);
    S.slots = calloc((size_t)cfg->parallel, sizeof *S.slots);
    int rc = S.slots ? 0 : 1;
    intact_error err = {0, ""};
    S.ctx_params = (intact_ctx_params){cfg->n_ctx, cfg->n_threads, 0};
#ifdef __GLIBC__
    // A fixed mmap threshold (it otherwise grows to the largest block freed): every cache block is
    // then its own mapping and a renewed slot's pages really go back to the system.
    if (cfg->kv_budget) mallopt(M_MMAP_THRESHOLD, 256 * 1024);
#endif
    for (int i = 0; rc == 0 && i < cfg->parallel; i++) {
        S.slots[i].ctx = intact_ctx_new(cfg->model, &S.ctx_params, &err);
        if (!S.slots[i].ctx || (cfg->kv && intact_ctx_set_kv(S.slots[i].ctx, cfg->kv, &err) != 0)) rc = 1;
    }
    if (rc) fprintf(stderr, "intact serve: %s\n", err.msg[0] ? err.msg : "out of memory");
    if (rc == 0 && cfg->kv_budget) {
        double full = (double)intact_ctx_kv_bytes_at(S.slots[0].ctx, cfg->n_ctx) / 1048576.0;
        fprintf(stderr, "intact serve: --kv-budget %.2f MiB; a session that fills its %d-token context reserves %.2f MiB\n",
                (double)cfg->kv_budget / 1048576.0, cfg->n_ctx, full);
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)cfg->port);
    if (rc == 0 && inet_pton(AF_INET, cfg->host, &sa.sin_addr) != 1) {
        fprintf(stderr, "intact serve: --host '%s' is not an IPv4 address\n", cfg->host);
        rc = 1;
    }
    // Signals are taken by sigwait below; every thread MHD starts inherits the blocked mask.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct MHD_Daemon *d = NULL;
    int sched_up = 0;
    if (rc == 0) {
        sched_up = pthread_create(&S.sched, NULL, sched_main, NULL) == 0;
        if (!sched_up) { fprintf(stderr, "intact serve: cannot start the scheduler thread\n"); rc = 1; }
    }
    if (rc == 0) {
        S.t_start = now_s();
        d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG, 0,
                             NULL, NULL, handler, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                             MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->timeout_s,
                             MHD_OPTION_CONNECTION_LIMIT, (unsigned int)(cfg->parallel + cfg->queue + 16),
                             MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
        if (!d) {
            fprintf(stderr, "intact serve: cannot listen on %s:%d (in use or not permitted)\n", cfg->host, cfg->port);
            rc = 1;
        }
    }
    if (rc == 0) {
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
        fprintf(stderr, "intact serve: listening on http://%s:%u\n", cfg->host, di ? di->port : (unsigned)cfg->port);
        int sig;
        sigwait(&sigs, &sig);
        fprintf(stderr, "intact serve: stopping\n");
        MHD_stop_daemon(d);   // joins the connection threads: nobody waits on the scheduler after this
        fprintf(stderr, "intact serve: %llu decode steps, %.2f sessions per step on average\n",
                (unsigned long long)S.steps, S.steps ? (double)S.step_rows / (double)S.steps : 0.0);
    }
    if (sched_up) {
        pthread_mutex_lock(&S.mu);
        S.stop = 1;
        pthread_cond_signal(&S.sched_cv);
        pthread_mutex_unlock(&S.mu);
        pthread_join(S.sched, NULL);
    }
    for (int i = 0; S.slots && i < cfg->parallel; i++) intact_ctx_free(S.slots[i].ctx);
    free(S.slots);
    pthread_mutex_destroy(&S.mu);
    pthread_cond_destroy(&S.cv);
    pthread_cond_destroy(&S.sched_cv);
    pthread_cond_destroy(&S.done_cv);
    return rc;
}
