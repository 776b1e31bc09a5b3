// Request parsing (see req.h). Every field is type-checked; unknown fields are ignored, as OpenAI's
// clients send many (model, n, user, ...).
#include "serve/req.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const templates[] = {"plain", "chatml", "llama-2", "llama-3", "mistral", "zephyr", "gemma"};
enum { T_PLAIN, T_CHATML, T_LLAMA2, T_LLAMA3, T_MISTRAL, T_ZEPHYR, T_GEMMA, N_TEMPLATES };

int req_template_id(const char *name) {
    for (int i = 0; i < N_TEMPLATES; i++)
        if (!strcmp(name, templates[i])) return i;
    return -1;
}

const char *req_template_detect(const char *j) {
    if (!j) return "plain";
    if (strstr(j, "<|im_start|>")) return "chatml";
    if (strstr(j, "<|start_header_id|>")) return "llama-3";
    if (strstr(j, "<start_of_turn>")) return "gemma";
    if (strstr(j, "<|user|>")) return "zephyr";
    if (strstr(j, "[INST]")) return strstr(j, "<<SYS>>") ? "llama-2" : "mistral";
    return "plain";
}

static int fail(char *msg, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
    return -1;
}

// A growing string; on allocation failure s becomes NULL and stays so.
typedef struct { char *s; size_t n, cap; } sbuf;
static void put(sbuf *b, const char *t) {
    if (!b->s && b->cap) return;
    size_t k = strlen(t);
    if (b->n + k + 1 > b->cap) {
        size_t nc = (b->n + k + 1) * 2;
        char *ns = realloc(b->s, nc);
        if (!ns) { free(b->s); b->s = NULL; b->cap = 1; return; }
        b->s = ns;
        b->cap = nc;
    }
    memcpy(b->s + b->n, t, k + 1);
    b->n += k;
}

// Renders messages (validated: role in system/user/assistant, content a string) with template t;
// the prompt ends where the assistant's answer starts.
static char *render(int t, cJSON *const *role, cJSON *const *content, int n) {
    sbuf b = {0};
    put(&b, "");
    for (int i = 0; i < n; i++) {
        const char *r = role[i]->valuestring, *c = content[i]->valuestring;
        int sys = !strcmp(r, "system"), asst = !strcmp(r, "assistant");
        switch (t) {
        case T_CHATML: put(&b, "<|im_start|>"); put(&b, r); put(&b, "\n"); put(&b, c); put(&b, "<|im_end|>\n"); break;
        case T_LLAMA3:
            put(&b, "<|start_header_id|>"); put(&b, r); put(&b, "<|end_header_id|>\n\n"); put(&b, c); put(&b, "<|eot_id|>");
            break;
        case T_ZEPHYR: put(&b, "<|"); put(&b, r); put(&b, "|>\n"); put(&b, c); put(&b, "</s>\n"); break;
        case T_GEMMA:
            put(&b, "<start_of_turn>"); put(&b, asst ? "model" : "user"); put(&b, "\n"); put(&b, c);
            put(&b, "<end_of_turn>\n");
            break;
        case T_LLAMA2: case T_MISTRAL:
            if (sys) { put(&b, t == T_LLAMA2 ? "[INST] <<SYS>>\n" : "[INST] "); put(&b, c); put(&b, t == T_LLAMA2 ? "\n<</SYS>>\n\n" : "\n\n"); }
            else if (asst) { put(&b, " "); put(&b, c); put(&b, " </s>"); }
            else {
                if (!(i > 0 && !strcmp(role[i - 1]->valuestring, "system"))) put(&b, "[INST] ");
                put(&b, c); put(&b, " [/INST]");
            }
            break;
        default:   // plain: what a base model continues
            if (i) put(&b, "\n\n");
            put(&b, c);
        }
    }
    if (t == T_CHATML) put(&b, "<|im_start|>assistant\n");
    if (t == T_LLAMA3) put(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    if (t == T_ZEPHYR) put(&b, "<|assistant|>\n");
    if (t == T_GEMMA) put(&b, "<start_of_turn>model\n");
    return b.s;
}

static int get_num(cJSON *root, const char *key, double lo, double hi, double *v, int *given, char *msg, size_t cap) {
    cJSON *x = cJSON_GetObjectItemCaseSensitive(root, key);
    if (given) *given = 0;
    if (!x || cJSON_IsNull(x)) return 0;
    if (!cJSON_IsNumber(x)) return fail(msg, cap, "'%s' must be a number", key);
    if (!(x->valuedouble >= lo && x->valuedouble <= hi))
        return fail(msg, cap, "'%s' must be in [%g, %g]", key, lo, hi);
    *v = x->valuedouble;
    if (given) *given = 1;
    return 0;
}

static int get_bool(cJSON *root, const char *key, int *v, char *msg, size_t cap) {
    cJSON *x = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!x || cJSON_IsNull(x)) return 0;
    if (!cJSON_IsBool(x)) return fail(msg, cap, "'%s' must be true or false", key);
    *v = cJSON_IsTrue(x);
    return 0;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

int req_parse(const char *body, size_t len, int chat, int template_id, serve_req *r, char *msg, size_t cap) {
    memset(r, 0, sizeof *r);
    r->chat = chat;
    r->max_tokens = 16;
    r->temperature = 1.0f;   // OpenAI's defaults
    r->top_p = 1.0f;
    r->repeat_penalty = 1.0f;
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) return fail(msg, cap, "malformed JSON");
    int rc = -1;
    double d;
    int given;
    if (!cJSON_IsObject(root)) { fail(msg, cap, "the body must be a JSON object"); goto done; }
    if (get_bool(root, "stream", &r->stream, msg, cap) || get_bool(root, "logprobs", &r->logprobs, msg, cap)) goto done;
    if (!chat) {   // completions: logprobs is an integer there (top alternatives); any >= 0 turns it on
        cJSON *lp = cJSON_GetObjectItemCaseSensitive(root, "logprobs");
        if (lp && cJSON_IsNumber(lp)) r->logprobs = 1;
    }
    if (get_num(root, "max_tokens", 0, 1 << 20, &d, &given, msg, cap)) goto done;
    if (given) r->max_tokens = (int)d;
    if (get_num(root, "temperature", 0, 2, &d, &given, msg, cap)) goto done;
    if (given) r->temperature = (float)d;
    if (get_num(root, "top_p", 1e-9, 1, &d, &given, msg, cap)) goto done;
    if (given) r->top_p = (float)d;
    if (get_num(root, "min_p", 0, 1, &d, &given, msg, cap)) goto done;
    if (given) r->min_p = (float)d;
    if (get_num(root, "repeat_penalty", 1e-3, 100, &d, &given, msg, cap)) goto done;
    if (given) r->repeat_penalty = (float)d;
    if (get_num(root, "top_k", 0, 1 << 24, &d, &given, msg, cap)) goto done;
    if (given) r->top_k = (int)d;
    if (get_num(root, "seed", -9.2e18, 9.2e18, &d, &r->has_seed, msg, cap)) goto done;
    if (r->has_seed) r->seed = (uint64_t)(int64_t)d;
    cJSON *stop = cJSON_GetObjectItemCaseSensitive(root, "stop");
    if (stop && cJSON_IsString(stop)) {
        if (stop->valuestring[0] && !(r->stops[r->n_stops++] = dup_str(stop->valuestring))) goto nomem;
    } else if (stop && cJSON_IsArray(stop)) {
        if (cJSON_GetArraySize(stop) > REQ_MAX_STOPS) { fail(msg, cap, "'stop' has more than %d strings", REQ_MAX_STOPS); goto done; }
        cJSON *s;
        cJSON_ArrayForEach(s, stop) {
            if (!cJSON_IsString(s)) { fail(msg, cap, "'stop' must be a string or an array of strings"); goto done; }
            if (s->valuestring[0] && !(r->stops[r->n_stops++] = dup_str(s->valuestring))) goto nomem;
        }
    } else if (stop && !cJSON_IsNull(stop)) { fail(msg, cap, "'stop' must be a string or an array of strings"); goto done; }
    if (!chat) {
        cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
        if (!p) { fail(msg, cap, "missing field 'prompt'"); goto done; }
        if (!cJSON_IsString(p)) { fail(msg, cap, "'prompt' must be a string"); goto done; }
        if (!(r->prompt = dup_str(p->valuestring))) goto nomem;
    } else {
        cJSON *ms = cJSON_GetObjectItemCaseSensitive(root, "messages");
        if (!ms) { fail(msg, cap, "missing field 'messages'"); goto done; }
        if (!cJSON_IsArray(ms)) { fail(msg, cap, "'messages' must be an array"); goto done; }
        int n = cJSON_GetArraySize(ms);
        if (n < 1 || n > REQ_MAX_MESSAGES) { fail(msg, cap, "'messages' must hold 1 to %d messages", REQ_MAX_MESSAGES); goto done; }
        cJSON *role[REQ_MAX_MESSAGES], *content[REQ_MAX_MESSAGES], *m;
        int i = 0;
        cJSON_ArrayForEach(m, ms) {
            role[i] = cJSON_GetObjectItemCaseSensitive(m, "role");
            content[i] = cJSON_GetObjectItemCaseSensitive(m, "content");
            if (!cJSON_IsObject(m) || !cJSON_IsString(role[i]) || !cJSON_IsString(content[i])) {
                fail(msg, cap, "messages[%d] needs string fields 'role' and 'content'", i);
                goto done;
            }
            const char *ro = role[i]->valuestring;
            if (strcmp(ro, "system") && strcmp(ro, "user") && strcmp(ro, "assistant")) {
                fail(msg, cap, "messages[%d].role must be system, user or assistant", i);
                goto done;
            }
            i++;
        }
        if (!strcmp(role[0]->valuestring, "system") && !(r->system = dup_str(content[0]->valuestring))) goto nomem;
        if (!(r->prompt = render(template_id, role, content, n))) goto nomem;
    }
    rc = 0;
    goto done;
nomem:
    fail(msg, cap, "out of memory");
done:
    cJSON_Delete(root);
    if (rc != 0) req_free(r);
    return rc;
}

void req_free(serve_req *r) {
    free(r->prompt);
    free(r->system);
    for (int i = 0; i < r->n_stops; i++) free(r->stops[i]);
    memset(r, 0, sizeof *r);
}
