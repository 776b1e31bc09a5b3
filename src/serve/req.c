// Request parsing (see req.h). Every field is type-checked; unknown fields are ignored, as OpenAI's
// clients send many (model, n, user, ...).
#include "serve/req.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/template.h"

static int fail(char *msg, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
    return -1;
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
    if (get_bool(root, "stream", &r->stream, msg, cap)) goto done;
    // completions: logprobs is an integer there (top alternatives, of which we give none); any >= 0
    // turns it on. Chat: a boolean.
    cJSON *lp = cJSON_GetObjectItemCaseSensitive(root, "logprobs");
    if (!chat && lp && cJSON_IsNumber(lp)) {
        if (!(lp->valuedouble >= 0 && lp->valuedouble <= 20)) { fail(msg, cap, "'logprobs' must be in [0, 20]"); goto done; }
        r->logprobs = 1;
    } else if (get_bool(root, "logprobs", &r->logprobs, msg, cap)) {
        goto done;
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
        tmpl_msg msgs[REQ_MAX_MESSAGES];
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
            msgs[i] = (tmpl_msg){ro, content[i]->valuestring};
            i++;
        }
        if (!strcmp(msgs[0].role, "system") && !(r->system = tmpl_system(template_id, msgs[0].content))) goto nomem;
        if (!(r->prompt = tmpl_render(template_id, msgs, n))) goto nomem;
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
