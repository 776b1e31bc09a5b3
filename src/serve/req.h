// OpenAI request bodies for `intact serve`: parsing and validation (cJSON), and the prompt text of a
// chat (rendered by serve/template.h; template_id is a tmpl_id). No HTTP here, so
// fuzz/fuzz_request.c drives exactly this code.
#ifndef IT_SERVE_REQ_H
#define IT_SERVE_REQ_H

#include <stddef.h>
#include <stdint.h>

enum { REQ_MAX_STOPS = 4, REQ_MAX_MESSAGES = 256 };

typedef struct serve_req {
    int chat;                 // /v1/chat/completions (messages) or /v1/completions (prompt)
    char *prompt;             // the prompt text (chat: rendered by the template); malloc'd
    char *system;             // chat: the prompt's opening system message as rendered (tmpl_system), the
                              // text an IntactKV system-prompt prefix must match; NULL without one
    int stream, logprobs;
    int max_tokens;           // default 16 (OpenAI's), capped by the context later
    float temperature, top_p, min_p, repeat_penalty;
    int top_k;
    uint64_t seed;
    int has_seed;
    int n_stops;
    char *stops[REQ_MAX_STOPS];
} serve_req;

// Parses body[0..len) for a chat (chat = 1) or completion request. 0, or -1 with a one-line reason
// in msg (always HTTP 400: malformed JSON, wrong types, missing or out-of-range fields).
int req_parse(const char *body, size_t len, int chat, int template_id, serve_req *out, char *msg, size_t cap);
void req_free(serve_req *r);

#endif
