// Chat templates: how a conversation becomes the prompt text of a chat model. One table serves
// `intact serve` (whole message lists, tmpl_render) and `intact chat` (one turn at a time, from the
// same pieces), so the two can never disagree. The families are those of llama.cpp's built-in
// templates: "plain" (messages joined by blank lines: base models), "chatml" (Qwen2, ...),
// "llama-2", "llama-3", "mistral", "zephyr" (TinyLlama-Chat) and "gemma".
//
// The IntactKV system prompt: tmpl_system(t, text) is the exact text a conversation starts with
// when its first message is that system prompt, so a prefix built from it (by the FP model) is the
// start of every such conversation; serve and chat build and match prefixes with it.
#ifndef IT_SERVE_TEMPLATE_H
#define IT_SERVE_TEMPLATE_H

enum { TMPL_N = 7 };

typedef struct tmpl_msg {
    const char *role;      // "system", "user" or "assistant"
    const char *content;
} tmpl_msg;

// The id of a template name, or -1.
int tmpl_id(const char *name);
const char *tmpl_name(int id);
// The family of a GGUF tokenizer.chat_template (Jinja text), by its markers; "plain" for NULL or
// an unknown template.
const char *tmpl_detect(const char *jinja);

// The prompt for msgs[0..n) (roles already validated), ending where the assistant's reply starts
// (the generation prompt). malloc'd; NULL when out of memory.
char *tmpl_render(int id, const tmpl_msg *msgs, int n);
// The text of a system message alone, as the conversation starts with it. malloc'd or NULL.
char *tmpl_system(int id, const char *text);

// For a turn-by-turn chat: the text that adds user message `line` after `n_before` messages (the
// previous one was a system message: prev_system), through the generation prompt; and the text
// that closes the assistant's reply when generation stopped without the template's end marker.
char *tmpl_user_turn(int id, const char *line, int n_before, int prev_system);
const char *tmpl_reply_end(int id);

#endif
