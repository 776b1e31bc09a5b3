// A user of the installed library: tests/test_install.sh compiles this file with nothing but
// `pkg-config --cflags --libs intact` (static and shared) and runs it on the repo's stories260K.
// It loads the model, tokenizes a prompt and decodes greedily; the text must be the continuation
// that the models README records from an independent reference (llama2.c / numpy), and every
// logit finite. Exit 0 on success, 1 with one line on stderr otherwise.
#include <intact.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: use_intact MODEL TOKENIZER\n");
        return 2;
    }
    static const char prompt[] = "Once upon a time";
    static const char want[] = ", there was a little girl named Lily.";
    intact_error err = {0, ""};
    intact_model *m = intact_model_load(argv[1], argv[2], &err);
    if (!m) { fprintf(stderr, "use_intact: %s\n", err.msg); return 1; }
    intact_model_info info;
    intact_model_get_info(m, &info);
    int32_t ids[64];
    int n = intact_tokenize(m, prompt, strlen(prompt), 1, ids, 64, &err);
    intact_ctx *c = n > 1 && n < 64 ? intact_ctx_new(m, NULL, &err) : NULL;
    char text[256] = "";
    size_t len = 0;
    int ok = c != NULL, finite = 1;
    for (int step = 0; ok && step < 12 && len < sizeof text - 64; step++) {
        ok = intact_ctx_eval(c, step ? &ids[n - 1] : ids, step ? 1 : n, &err) == 0;
        const float *lg = ok ? intact_ctx_logits(c, -1) : NULL;
        if (!lg) { ok = 0; break; }
        int best = 0;
        for (int v = 0; v < info.n_vocab; v++) {
            finite &= isfinite(lg[v]) != 0;
            if (lg[v] > lg[best]) best = v;
        }
        int k = intact_token_to_text(m, ids[n - 1], best, text + len, 32);
        if (k < 0) { ok = 0; break; }
        len += (size_t)k;
        text[len] = '\0';
        ids[n++] = best;
    }
    intact_ctx_free(c);
    intact_model_free(m);
    if (!ok) { fprintf(stderr, "use_intact: %s\n", err.msg[0] ? err.msg : "tokenize/eval failed"); return 1; }
    printf("intact %s: \"%s\" ->%s\n", INTACT_VERSION, prompt, text);
    if (!finite) { fprintf(stderr, "use_intact: a logit is not finite\n"); return 1; }
    if (strncmp(text, want, strlen(want)) != 0) {
        fprintf(stderr, "use_intact: greedy text '%s' does not start with '%s'\n", text, want);
        return 1;
    }
    return 0;
}
