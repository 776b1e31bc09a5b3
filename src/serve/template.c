// Chat templates (see template.h): each family is a row of text pieces around the messages, the
// way the Hugging Face Jinja templates of those families lay them out (tests/test_template.c holds
// hand-written renderings of each).
#include "serve/template.h"

#include <stdlib.h>
#include <string.h>

typedef struct tmpl_row {
    const char *name;
    const char *sys_pre, *sys_post, *user_pre, *user_post, *asst_pre, *asst_post;
    const char *gen;        // the generation prompt: what precedes the reply to be written
    int sys_merges;         // the system text opens the first [INST] (llama-2, mistral): no user_pre
} tmpl_row;

static const tmpl_row k_rows[TMPL_N] = {
    {"plain", "", "", "", "", "", "", "", 0},
    {"chatml", "<|im_start|>system\n", "<|im_end|>\n", "<|im_start|>user\n", "<|im_end|>\n",
     "<|im_start|>assistant\n", "<|im_end|>\n", "<|im_start|>assistant\n", 0},
    {"llama-2", "[INST] <<SYS>>\n", "\n<</SYS>>\n\n", "[INST] ", " [/INST]", " ", " </s>", "", 1},
    {"llama-3", "<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>",
     "<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>", "<|start_header_id|>assistant<|end_header_id|>\n\n",
     "<|eot_id|>", "<|start_header_id|>assistant<|end_header_id|>\n\n", 0},
    {"mistral", "[INST] ", "\n\n", "[INST] ", " [/INST]", "", "</s>", "", 1},
    {"zephyr", "<|system|>\n", "</s>\n", "<|user|>\n", "</s>\n", "<|assistant|>\n", "</s>\n", "<|assistant|>\n", 0},
    // Gemma has no system role: its template folds a system message into a user turn.
    {"gemma", "<start_of_turn>user\n", "<end_of_turn>\n", "<start_of_turn>user\n", "<end_of_turn>\n",
     "<start_of_turn>model\n", "<end_of_turn>\n", "<start_of_turn>model\n", 0},
};

int tmpl_id(const char *name) {
    for (int i = 0; name && i < TMPL_N; i++)
        if (!strcmp(name, k_rows[i].name)) return i;
    return -1;
}

const char *tmpl_name(int id) { return id >= 0 && id < TMPL_N ? k_rows[id].name : NULL; }

const char *tmpl_detect(const char *j) {
    if (!j) return "plain";
    if (strstr(j, "<|im_start|>")) return "chatml";
    if (strstr(j, "<|start_header_id|>")) return "llama-3";
    if (strstr(j, "<start_of_turn>")) return "gemma";
    if (strstr(j, "<|user|>")) return "zephyr";
    if (strstr(j, "[INST]")) return strstr(j, "<<SYS>>") ? "llama-2" : "mistral";
    return "plain";
}

// A growing string; on allocation failure s becomes NULL and stays so (failed = 1).
typedef struct { char *s; size_t n, cap; int failed; } sbuf;

static void put(sbuf *b, const char *t) {
    if (b->failed) return;
    size_t k = strlen(t);
    if (b->n + k + 1 > b->cap) {
        size_t nc = (b->n + k + 1) * 2;
        char *ns = realloc(b->s, nc);
        if (!ns) {
            free(b->s);
            b->s = NULL;
            b->failed = 1;
            return;
        }
        b->s = ns;
        b->cap = nc;
    }
    memcpy(b->s + b->n, t, k + 1);
    b->n += k;
}

// Message i of a conversation whose previous message was a system one (prev_system).
static void put_msg(sbuf *b, const tmpl_row *r, const tmpl_msg *m, int i, int prev_system) {
    if (!strcmp(r->name, "plain")) {
        if (i) put(b, "\n\n");
        put(b, m->content);
    } else if (!strcmp(m->role, "system")) {
        put(b, r->sys_pre), put(b, m->content), put(b, r->sys_post);
    } else if (!strcmp(m->role, "assistant")) {
        put(b, r->asst_pre), put(b, m->content), put(b, r->asst_post);
    } else {
        if (!(r->sys_merges && prev_system)) put(b, r->user_pre);
        put(b, m->content), put(b, r->user_post);
    }
}

char *tmpl_render(int id, const tmpl_msg *msgs, int n) {
    if (id < 0 || id >= TMPL_N) return NULL;
    sbuf b = {0};
    put(&b, "");
    for (int i = 0; i < n; i++) put_msg(&b, &k_rows[id], &msgs[i], i, i > 0 && !strcmp(msgs[i - 1].role, "system"));
    put(&b, k_rows[id].gen);
    return b.s;
}

char *tmpl_system(int id, const char *text) {
    if (id < 0 || id >= TMPL_N) return NULL;
    sbuf b = {0};
    put(&b, "");
    tmpl_msg m = {"system", text};
    put_msg(&b, &k_rows[id], &m, 0, 0);
    return b.s;
}

char *tmpl_user_turn(int id, const char *line, int n_before, int prev_system) {
    if (id < 0 || id >= TMPL_N) return NULL;
    sbuf b = {0};
    put(&b, "");
    tmpl_msg m = {"user", line};
    put_msg(&b, &k_rows[id], &m, n_before, prev_system);
    put(&b, k_rows[id].gen);
    return b.s;
}

const char *tmpl_reply_end(int id) { return id >= 0 && id < TMPL_N ? k_rows[id].asst_post : ""; }
