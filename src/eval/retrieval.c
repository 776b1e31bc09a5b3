// Line retrieval, after LongEval (Li et al. 2023, "How long can open-source LLMs truly promise on
// context length?"), the long-context test MiKV reports: a record of lines "line <id>:
// REGISTER_CONTENT is <n>", then a question for one id; the model answers greedily and is right when
// the first integer it writes is n. The wording, the value range 1..50000 and the "<n>" brackets
// follow LongEval's generator; its ids are random word pairs, here from two built-in lists.
#include "eval/retrieval.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/model.h"
#include "model/tokenizer.h"

static const char *const ADJ[48] = {
    "swift", "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "kind", "lively", "merry", "nice",
    "proud", "silly", "witty", "zany", "bold", "bright", "clever", "daring", "fierce", "glad", "humble", "icy",
    "jumpy", "keen", "loud", "mighty", "noble", "odd", "quiet", "rapid", "shy", "tall", "vast", "warm",
    "young", "ancient", "busy", "cheap", "dusty", "early", "fuzzy", "giant", "hollow", "lucky", "muddy", "rusty"};
static const char *const NOUN[48] = {
    "baker", "tiger", "river", "candle", "falcon", "garden", "hammer", "island", "jacket", "kettle", "lemon",
    "mirror", "needle", "orange", "pencil", "rabbit", "saddle", "tunnel", "violin", "wagon", "anchor", "bottle",
    "castle", "dragon", "engine", "forest", "guitar", "harbor", "jungle", "ladder", "magnet", "napkin", "otter",
    "parrot", "rocket", "spider", "turtle", "walrus", "basket", "cobweb", "donkey", "feather", "goblin",
    "helmet", "lantern", "meadow", "pillow", "sparrow"};

static const char HEADER[] =
    "Below is a record of lines I want you to remember. Each line begins with 'line <line index>' and contains "
    "a '<REGISTER_CONTENT>' at the end of the line as a numerical value. For each line index, memorize its "
    "corresponding <REGISTER_CONTENT>. At the end of the record, I will ask you to retrieve the corresponding "
    "<REGISTER_CONTENT> of a certain line index. Now the record start:\n\n";

// splitmix64: every (seed, trial) pair gets its own well-mixed stream, so trials do not depend on
// how many were run before.
static uint64_t next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

int retrieval_build_case(int n_lines, uint64_t seed, int trial, retrieval_case *out, intact_error *err) {
    memset(out, 0, sizeof *out);
    if (n_lines < 1 || n_lines > RETRIEVAL_MAX_LINES)
        return it_fail(err, INTACT_E_ARG, "retrieval needs 1 to %d lines, got %d", RETRIEVAL_MAX_LINES, n_lines);
    uint64_t s = seed ^ (0xD1B54A32D192ED03ULL * ((uint64_t)trial + 1));
    // Ids without repeats: the first n_lines of a partial Fisher-Yates shuffle of all word pairs.
    enum { n_pairs = RETRIEVAL_MAX_LINES };
    int perm[n_pairs];
    for (int i = 0; i < n_pairs; i++) perm[i] = i;
    for (int i = 0; i < n_lines; i++) {
        int j = i + (int)(next_u64(&s) % (uint64_t)(n_pairs - i));
        int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
    // Every line is under 64 bytes (ids <= 16, values <= 5 digits); the question under 160.
    size_t cap = sizeof HEADER + (size_t)n_lines * 64 + 160;
    char *text = malloc(cap);
    if (!text) return it_fail(err, INTACT_E_NOMEM, "out of memory");
    size_t len = (size_t)snprintf(text, cap, "%s", HEADER);
    out->asked = (int)(next_u64(&s) % (uint64_t)n_lines);
    for (int i = 0; i < n_lines; i++) {
        int v = 1 + (int)(next_u64(&s) % RETRIEVAL_MAX_VALUE);
        const char *a = ADJ[perm[i] / 48], *b = NOUN[perm[i] % 48];
        len += (size_t)snprintf(text + len, cap - len, "line %s-%s: REGISTER_CONTENT is <%d>\n", a, b, v);
        if (i == out->asked) {
            out->value = v;
            snprintf(out->asked_id, sizeof out->asked_id, "%s-%s", a, b);
        }
    }
    snprintf(text + len, cap - len, "\nNow the record is over. Tell me what is the <REGISTER_CONTENT> in line %s? "
             "I need the number.", out->asked_id);
    out->text = text;
    out->n_lines = n_lines;
    return 0;
}

void retrieval_case_free(retrieval_case *c) {
    if (c) free(c->text);
    if (c) c->text = NULL;
}

int retrieval_first_int(const char *s, long *value) {
    while (*s && (*s < '0' || *s > '9')) s++;
    if (!*s) return 0;
    long v = 0;
    for (; *s >= '0' && *s <= '9'; s++) v = v >= 100000000 ? 1000000000 : v * 10 + (*s - '0');
    *value = v;
    return 1;
}

int retrieval_score(const retrieval_case *c, const char *answer) {
    long v;
    return retrieval_first_int(answer, &v) && v == c->value;
}

// ---------------------------------------------------------------- chat templates

static const char *const TEMPLATE_NAMES[] = {"none", "llama2", "llama3", "chatml"};
// Markers written as text in the templates; retrieval_tokenize maps them to special ids.
static const char *const MARKERS[] = {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|im_start|>",
                                      "<|im_end|>"};
enum { N_MARKERS = sizeof MARKERS / sizeof MARKERS[0] };

int retrieval_template_parse(const char *name) {
    for (int i = 0; i < 4; i++)
        if (strcmp(name, TEMPLATE_NAMES[i]) == 0) return i;
    return -1;
}

char *retrieval_apply_template(int tmpl, const char *prompt) {
    // BOS is not written here: it (or the IntactKV prefix) is the head every prompt is evaluated after.
    static const char *const pre[] = {"", "[INST] ", "<|start_header_id|>user<|end_header_id|>\n\n",
                                      "<|im_start|>user\n"};
    static const char *const post[] = {"", " [/INST]",
                                       "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
                                       "<|im_end|>\n<|im_start|>assistant\n"};
    if (tmpl < 0 || tmpl > RT_CHATML) tmpl = RT_NONE;
    size_t n = strlen(pre[tmpl]) + strlen(prompt) + strlen(post[tmpl]) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s%s%s", pre[tmpl], prompt, post[tmpl]);
    return s;
}

// The id of a control token such as <|eot_id|> spelled by `text`, or -1.
static int special_id(const intact_model *m, const char *text) {
    return m->vocab ? tok_find_piece(m->vocab, text, strlen(text)) : -1;
}

// Appends the tokens of text[0..len) (no BOS) to *ids.
static int append_text(const intact_model *m, const char *text, size_t len, int32_t **ids, int *n, int *cap,
                       intact_error *err) {
    if (len == 0) return 0;
    int k = intact_tokenize(m, text, len, 0, NULL, 0, err);
    if (k < 0) return -1;
    if (*n + k > *cap) {
        int nc = *n + k + 64;
        int32_t *g = realloc(*ids, (size_t)nc * sizeof *g);
        if (!g) return it_fail(err, INTACT_E_NOMEM, "out of memory");
        *ids = g;
        *cap = nc;
    }
    if (intact_tokenize(m, text, len, 0, *ids + *n, k, err) != k) return -1;
    *n += k;
    return 0;
}

int retrieval_tokenize(const intact_model *m, const char *text, int32_t **ids, intact_error *err) {
    int n = 0, cap = 0, rc = 0;
    *ids = NULL;
    const char *seg = text, *p = text;
    while (*p && rc == 0) {
        int which = -1;
        if (p[0] == '<' && p[1] == '|')
            for (int i = 0; i < N_MARKERS && which < 0; i++)
                if (strncmp(p, MARKERS[i], strlen(MARKERS[i])) == 0) which = i;
        int id = which >= 0 ? special_id(m, MARKERS[which]) : -1;
        if (id < 0) { p++; continue; } // not a marker, or one the vocabulary lacks: plain text
        rc = append_text(m, seg, (size_t)(p - seg), ids, &n, &cap, err);
        if (rc == 0 && n + 1 > cap) {
            int32_t *g = realloc(*ids, (size_t)(cap = n + 64) * sizeof *g);
            if (g) *ids = g;
            else rc = it_fail(err, INTACT_E_NOMEM, "out of memory");
        }
        if (rc == 0) (*ids)[n++] = id;
        p += strlen(MARKERS[which]);
        seg = p;
    }
    if (rc == 0) rc = append_text(m, seg, strlen(seg), ids, &n, &cap, err);
    if (rc == 0 && n == 0) rc = it_fail(err, INTACT_E_ARG, "the prompt has no tokens");
    if (rc != 0) { free(*ids); *ids = NULL; return -1; }
    return n;
}

// ---------------------------------------------------------------- evaluation

intact_retrieval_params intact_retrieval_default_params(void) {
    intact_retrieval_params p;
    memset(&p, 0, sizeof p);
    p.n_lines = 20;
    p.trials = 10;
    p.n_threads = 1;
    p.max_answer_tokens = 16;
    return p;
}

// Trial t's templated prompt as tokens (head excluded); the case is returned too (free both).
static int trial_tokens(const intact_model *m, int n_lines, uint64_t seed, int t, int tmpl, retrieval_case *c,
                        int32_t **ids, intact_error *err) {
    if (retrieval_build_case(n_lines, seed, t, c, err) != 0) return -1;
    char *s = retrieval_apply_template(tmpl, c->text);
    int n = s ? retrieval_tokenize(m, s, ids, err) : it_fail(err, INTACT_E_NOMEM, "out of memory");
    free(s);
    if (n < 0) retrieval_case_free(c);
    return n;
}

// Positions a trial occupies: head, prompt, and all answer tokens but the last (never evaluated).
static int needed(int head, int n_prompt, int max_answer) { return head + n_prompt + max_answer - 1; }

// Positions trial 0 of a run with n_lines lines needs (INT32_MAX if it cannot be built).
static int need_for(const intact_model *m, const intact_retrieval_params *p, int tmpl, int head, int n_lines) {
    retrieval_case c;
    int32_t *ids;
    int n = trial_tokens(m, n_lines, p->seed, 0, tmpl, &c, &ids, NULL);
    if (n < 0) return INT32_MAX;
    free(ids);
    retrieval_case_free(&c);
    return needed(head, n, p->max_answer_tokens);
}

// After a prompt was found too long: the most lines that fit (binary search on trial 0), 0 if none.
static int lines_that_fit(const intact_model *m, const intact_retrieval_params *p, int tmpl, int head) {
    int lo = 0, hi = p->n_lines - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (need_for(m, p, tmpl, head, mid) <= m->hp.ctx_len) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

// Whether the answer already holds a whole integer (digits followed by something else): greedy
// decoding can stop there, the parser would not read further.
static int answer_done(const char *s) {
    while (*s && (*s < '0' || *s > '9')) s++;
    while (*s >= '0' && *s <= '9') s++;
    return *s != '\0';
}

static int32_t argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[best]) best = i;
    return best;
}

// Greedy answer after the prompt was evaluated; prev is the last prompt token. ans holds cap bytes.
static int answer(intact_ctx *c, const intact_model *m, int32_t prev, int max_tokens, const int32_t *stop,
                  char *ans, size_t cap, intact_error *err) {
    size_t len = 0;
    ans[0] = '\0';
    for (int k = 0; k < max_tokens; k++) {
        int32_t tok = argmax(intact_ctx_logits(c, -1), m->hp.n_vocab);
        if (tok == stop[0] || tok == stop[1] || tok == stop[2]) break;
        char piece[256];
        int pl = intact_token_to_text(m, prev, tok, piece, (int)sizeof piece);
        if (pl > (int)sizeof piece) pl = (int)sizeof piece;
        if (pl > 0 && len + (size_t)pl < cap) {
            memcpy(ans + len, piece, (size_t)pl);
            ans[len += (size_t)pl] = '\0';
        }
        if (answer_done(ans) || k + 1 == max_tokens) break;
        if (intact_ctx_eval(c, &tok, 1, err) != 0) return -1;
        prev = tok;
    }
    return 0;
}

int retrieval_eval(const intact_model *m, const intact_retrieval_params *p, int tmpl, retrieval_report report,
                   void *report_user, intact_retrieval_result *out, intact_error *err) {
    if (p->n_lines < 1 || p->n_lines > RETRIEVAL_MAX_LINES)
        return it_fail(err, INTACT_E_ARG, "retrieval needs 1 to %d lines, got %d", RETRIEVAL_MAX_LINES, p->n_lines);
    if (p->trials < 1) return it_fail(err, INTACT_E_ARG, "retrieval needs at least 1 trial, got %d", p->trials);
    if (p->max_answer_tokens < 1)
        return it_fail(err, INTACT_E_ARG, "retrieval needs max_answer_tokens >= 1, got %d", p->max_answer_tokens);
    if (tmpl < RT_NONE || tmpl > RT_CHATML) return it_fail(err, INTACT_E_ARG, "unknown chat template %d", tmpl);
    if (!m->vocab) return it_fail(err, INTACT_E_ARG, "the model has no tokenizer (pass one with -z)");
    if (!p->prefix && tok_start(m->vocab) < 0)
        return it_fail(err, INTACT_E_ARG, "the tokenizer has neither BOS nor EOS to start prompts with");
    int head = p->prefix ? intact_prefix_n_tokens(p->prefix) : 1;
    int32_t start = tok_start(m->vocab);   // BOS, or EOS for models without one (Qwen2)
    // First pass: every prompt's length, so that one too long fails before any compute.
    int max_need = 0, worst = 0;
    for (int t = 0; t < p->trials; t++) {
        retrieval_case c;
        int32_t *ids;
        int n = trial_tokens(m, p->n_lines, p->seed, t, tmpl, &c, &ids, err);
        if (n < 0) return -1;
        free(ids);
        retrieval_case_free(&c);
        int need = needed(head, n, p->max_answer_tokens);
        if (need > max_need) { max_need = need; worst = n; }
    }
    if (max_need > m->hp.ctx_len) {
        int fit = lines_that_fit(m, p, tmpl, head);
        char hint[128];
        if (fit > 0) snprintf(hint, sizeof hint, "use fewer lines (--lines): about %d fit", fit);
        else snprintf(hint, sizeof hint, "even 1 line needs %d tokens: the context is too short for this benchmark",
                      need_for(m, p, tmpl, head, 1));
        return it_fail(err, INTACT_E_LIMIT, "a %d-line prompt needs %d tokens (%d prompt + %d head + %d answer) but "
                       "the model's context is %d; %s", p->n_lines, max_need, worst, head, p->max_answer_tokens - 1,
                       m->hp.ctx_len, hint);
    }
    intact_ctx_params cp = {max_need, p->n_threads, 0};
    intact_ctx *ctx = intact_ctx_new(m, &cp, err);
    if (!ctx) return -1;
    int rc = p->kv ? intact_ctx_set_kv(ctx, p->kv, err) : 0;
    // Stop at EOS and at the end-of-turn marker of a chat template (ids that do not exist stay -1).
    int32_t stop[3] = {tok_eos(m->vocab), special_id(m, "<|eot_id|>"), special_id(m, "<|im_end|>")};
    int32_t *buf = rc == 0 ? malloc((size_t)max_need * sizeof *buf) : NULL;
    if (rc == 0 && !buf) rc = it_fail(err, INTACT_E_NOMEM, "out of memory");
    int correct = 0;
    double tokens = 0;
    for (int t = 0; rc == 0 && t < p->trials; t++) {
        retrieval_case c;
        int32_t *ids;
        int n = trial_tokens(m, p->n_lines, p->seed, t, tmpl, &c, &ids, err);
        if (n < 0) { rc = -1; break; }
        if (p->prefix) {
            rc = intact_ctx_use_prefix(ctx, p->prefix, err);
            if (rc == 0) rc = intact_ctx_eval(ctx, ids, n, err);
        } else {
            buf[0] = start;
            memcpy(buf + 1, ids, (size_t)n * sizeof *buf);
            intact_ctx_reset(ctx);
            rc = intact_ctx_eval(ctx, buf, n + 1, err);
        }
        char ans[512];
        if (rc == 0) rc = answer(ctx, m, ids[n - 1], p->max_answer_tokens, stop, ans, sizeof ans, err);
        if (rc == 0) {
            int ok = retrieval_score(&c, ans);
            correct += ok;
            tokens += head + n;
            retrieval_trial tr = {t + 1, p->trials, &c, ans, head + n, ok};
            if (report) report(report_user, &tr);
            if (p->progress) p->progress(p->progress_user, t + 1, p->trials);
        }
        free(ids);
        retrieval_case_free(&c);
    }
    if (rc == 0) {
        memset(out, 0, sizeof *out);
        out->trials = p->trials;
        out->correct = correct;
        out->accuracy = (double)correct / p->trials;
        out->prompt_tokens = tokens / p->trials;
        out->kv_bytes = intact_ctx_kv_bytes(ctx);
        out->kv_bytes_vs_f16 = (double)out->kv_bytes / (double)intact_ctx_kv_bytes_f16(ctx);
    }
    free(buf);
    intact_ctx_free(ctx);
    return rc;
}

int intact_eval_retrieval(const intact_model *m, const intact_retrieval_params *p, intact_retrieval_result *out,
                          intact_error *err) {
    int tmpl = p->chat_template ? retrieval_template_parse(p->chat_template) : RT_NONE;
    if (tmpl < 0) return it_fail(err, INTACT_E_ARG, "unknown chat template '%s' (none, llama2, llama3, chatml)",
                                 p->chat_template);
    return retrieval_eval(m, p, tmpl, NULL, NULL, out, err);
}
