// `intact run` (generation) and `intact tokenize`.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/common.h"
#include "cli/kv_flags.h"
#include "cli/quant_flags.h"
#include "cli/sample_flags.h"
#include "sample/stop.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// Tokenizes with BOS; returns a malloc'd array or NULL (error printed).
static int32_t *tokenize_all(const char *cmd, intact_model *m, const char *text, size_t len, int bos, int *n) {
    intact_error err = {0, ""};
    int k = intact_tokenize(m, text, len, bos, NULL, 0, &err);
    int32_t *ids = k >= 0 ? malloc(((size_t)k + 1) * sizeof *ids) : NULL;
    if (ids && intact_tokenize(m, text, len, bos, ids, k, &err) == k) {
        *n = k;
        return ids;
    }
    fprintf(stderr, "intact %s: %s\n", cmd, k < 0 ? err.msg : "out of memory");
    free(ids);
    return NULL;
}

int cmd_run(int argc, char **argv) {
    const char *model = NULL, *tok = NULL, *prompt = NULL, *prompt_file = NULL, *ikv = NULL;
    int n_gen = 128, threads = cli_default_threads(), n_ctx = 0, show_stats = 0;
    cli_load_mode load = {0, 0, 0};
    sample_flags sf;
    quant_flags qf;
    quant_flags_init(&qf);
    kv_flags kvf;
    cli_opt opts[11 + SAMPLE_N_OPTS + QUANT_N_OPTS + KV_N_OPTS] = {
        CLI_OPT_LOAD_MODE(&load),
        {"--ikv", NULL, ARG_STR, &ikv, "P.ikv", "IntactKV prefix; the prompt must start with its tokens", 0, 0},
        {"--model", "-m", ARG_STR | ARG_REQUIRED, &model, "PATH", "model file (GGUF or llama2.c .bin)", 0, 0},
        {"--tokenizer", "-z", ARG_STR, &tok, "PATH", "llama2.c tokenizer.bin (GGUF carries its own)", 0, 0},
        {"--prompt", "-p", ARG_STR, &prompt, "TEXT", "prompt (default: empty, BOS only)", 0, 0},
        {"--file", "-f", ARG_STR, &prompt_file, "PATH", "read the prompt from a file ('-': standard input)", 0, 0},
        {"--n-predict", "-n", ARG_INT, &n_gen, "N", "tokens to generate (default 128; 0: only evaluate and echo "
         "the prompt)", 0, 1 << 24},
        {"--threads", "-t", ARG_INT, &threads, "N", "threads (default: online CPUs, at most 16)", 1, 256},
        {"--ctx-size", "-c", ARG_INT, &n_ctx, "N", "context size (default: the model's)", 0, 1 << 20},
        {"--stats", NULL, ARG_FLAG, &show_stats, NULL, "print timings to stderr", 0, 0},
    };
    int n_opts = sample_flags_add(&sf, opts, 11);
    n_opts = quant_flags_add(&qf, opts, n_opts, 0);
    n_opts = kv_flags_add(&kvf, opts, n_opts);
    int rc = cli_parse("run", "-m MODEL [-z TOKENIZER] -p PROMPT [-n N] [options]", opts, n_opts, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    if (quant_flags_check("run", &qf, opts, n_opts, argc, argv) != 0) return 2;
    intact_sampler smp;
    if (sample_flags_init("run", &sf, &smp) != 0) return 2;
    int bad_kv;
    const intact_kv_params *kvp = kv_flags_get("run", &kvf, 0, &bad_kv);
    if (bad_kv) return 2;
    if (prompt && prompt_file) {
        fprintf(stderr, "intact run: give either -p or -f, not both\n");
        return 2;
    }
    size_t plen = prompt ? strlen(prompt) : 0;
    char *fbuf = NULL;   // the prompt file; text points into it until the prompt is echoed
    if (prompt_file && !(fbuf = cli_read_file("run", prompt_file, &plen))) return 1;
    const char *text = fbuf ? fbuf : prompt ? prompt : "";
    if (quant_flags_rewrites(&qf) && !load.no_mmap) load.mmap = 1;
    intact_model *m = cli_load_model_ex("run", model, tok, &load);
    if (m && quant_flags_apply("run", &qf, m, threads, 0, NULL) != 0) { intact_model_free(m); m = NULL; }
    if (!m) { free(fbuf); return 1; }
    intact_model_info in;
    intact_model_get_info(m, &in);
    int n_prompt = 0;
    int32_t *ids = tokenize_all("run", m, text, plen, in.add_bos, &n_prompt);
    if (!ids) { free(fbuf); intact_model_free(m); return 1; }
    if (n_ctx == 0) n_ctx = in.ctx_len;
    cli_warn_ctx("run", n_ctx, in.ctx_len);
    intact_error err = {0, ""};
    intact_ctx_params cp = {n_ctx, threads, 0};
    intact_ctx *c = intact_ctx_new(m, &cp, &err);
    rc = 0;
    if (!c || (kvp && intact_ctx_set_kv(c, kvp, &err) != 0)) {
        fprintf(stderr, "intact run: %s\n", err.msg);
        rc = 1;
    } else if (n_prompt == 0) {
        fprintf(stderr, "intact run: the prompt is empty and this model adds no BOS: give one with -p\n");
        rc = 1;
    } else if (n_prompt > n_ctx) {
        fprintf(stderr, "intact run: prompt has %d tokens, more than the context size %d\n", n_prompt, n_ctx);
        rc = 1;
    }
    double t0 = now_s(), t_prefill = 0;
    int generated = 0;
    intact_prefix *prefix = rc == 0 && ikv ? cli_load_prefix("run", ikv, m) : NULL;
    int skip = 0; // prompt tokens the prefix already holds
    if (ikv && !prefix) rc = 1;
    if (prefix) {
        int pn = intact_prefix_n_tokens(prefix);
        const int32_t *pt = intact_prefix_tokens(prefix);
        if (n_prompt < pn || memcmp(ids, pt, (size_t)pn * sizeof *ids) != 0) {
            fprintf(stderr, "intact run: the prompt does not start with the prefix's %d token%s (%s)\n", pn,
                    pn == 1 ? "" : "s", intact_prefix_from_bos(prefix) ? "its BOS" : "its system prompt");
            rc = 1;
        } else if (intact_ctx_use_prefix(c, prefix, &err) != 0) { // every cache then keeps it exact
            fprintf(stderr, "intact run: %s\n", err.msg);
            rc = 1;
        }
        skip = pn;
    }
    if (rc == 0 && n_prompt > skip && intact_ctx_eval(c, ids + skip, n_prompt - skip, &err) != 0) {
        fprintf(stderr, "intact run: %s\n", err.msg);
        rc = 1;
    }
    if (rc == 0) {
        t_prefill = now_s() - t0;
        fwrite(text, 1, plen, stdout);
        int32_t prev = ids[n_prompt - 1];
        for (int i = 0; i < n_prompt; i++) intact_sampler_accept(&smp, ids[i]);
        // The generated text, kept for the stop strings: shown up to `shown`, the rest held back.
        char *gen = NULL;
        size_t gen_len = 0, gen_cap = 0, shown = 0;
        int stopped = 0;
        t0 = now_s();
        while (!stopped && generated < n_gen && intact_ctx_pos(c) < n_ctx) {
            int32_t next = intact_sample(&smp, intact_ctx_logits(c, -1), in.n_vocab);
            if (next == in.eos_id || next == in.bos_id) break;
            intact_sampler_accept(&smp, next);
            char piece[256];
            int k = intact_token_to_text(m, prev, next, piece, sizeof piece);
            if (k > (int)sizeof piece) k = (int)sizeof piece;
            if (k > 0 && gen_len + (size_t)k > gen_cap) {
                char *ng = realloc(gen, gen_cap = 2 * gen_cap + 4096);
                if (!ng) { fprintf(stderr, "\nintact run: out of memory\n"); rc = 1; break; }
                gen = ng;
            }
            if (k > 0) memcpy(gen + gen_len, piece, (size_t)k), gen_len += (size_t)k;
            size_t upto = gen_len;
            if (sf.stops.n) upto = stop_scan(gen, gen_len, shown, sf.stops.v, sf.stops.n, &stopped);
            if (gen) fwrite(gen + shown, 1, upto - shown, stdout);
            shown = upto;
            fflush(stdout);
            generated++;
            prev = next;
            if (!stopped && generated < n_gen && intact_ctx_eval(c, &next, 1, &err) != 0) {
                fprintf(stderr, "\nintact run: %s\n", err.msg);
                rc = 1;
                break;
            }
        }
        if (!stopped && gen) fwrite(gen + shown, 1, gen_len - shown, stdout);   // a held-back tail that never matched
        free(gen);
        printf("\n");
        if (!stopped && generated < n_gen && intact_ctx_pos(c) >= n_ctx)
            fprintf(stderr, "intact run: stopped at the context size (%d tokens)\n", n_ctx);
        double t_gen = now_s() - t0;
        if (show_stats)
            fprintf(stderr, "prompt %d tokens in %.3f s (%.1f tok/s), generated %d tokens in %.3f s (%.1f tok/s)\n",
                    n_prompt, t_prefill, n_prompt / t_prefill, generated, t_gen,
                    generated > 0 ? generated / t_gen : 0.0);
    }
    free(ids);
    free(fbuf);
    intact_prefix_free(prefix);
    intact_ctx_free(c);
    intact_model_free(m);
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *tok = NULL, *text = NULL, *file = NULL;
    int no_bos = 0;
    const cli_opt opts[] = {
        {"--model", "-m", ARG_STR | ARG_REQUIRED, &model, "PATH", "model file (GGUF or llama2.c .bin)", 0, 0},
        {"--tokenizer", "-z", ARG_STR, &tok, "PATH", "llama2.c tokenizer.bin", 0, 0},
        {"--prompt", "-p", ARG_STR, &text, "TEXT", "text to tokenize", 0, 0},
        {"--file", "-f", ARG_STR, &file, "PATH", "read the text from a file ('-': standard input)", 0, 0},
        {"--no-bos", NULL, ARG_FLAG, &no_bos, NULL, "do not prepend BOS (default: as the tokenizer says)", 0, 0},
    };
    int rc = cli_parse("tokenize", "-m MODEL [-z TOKENIZER] -p TEXT", opts, 5, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    if (!text == !file) {
        fprintf(stderr, "intact tokenize: give the text with -p TEXT or -f FILE\n");
        return 2;
    }
    size_t len = text ? strlen(text) : 0;
    char *fbuf = NULL;
    if (file && !(fbuf = cli_read_file("tokenize", file, &len))) return 1;
    intact_model *m = cli_load_model("tokenize", model, tok);
    int n = 0;
    intact_model_info in = {0};
    if (m) intact_model_get_info(m, &in);
    int32_t *ids = m ? tokenize_all("tokenize", m, fbuf ? fbuf : text, len, in.add_bos && !no_bos, &n) : NULL;
    if (ids) {
        printf("[");
        for (int i = 0; i < n; i++) printf("%s%d", i ? ", " : "", ids[i]);
        printf("]\n");
    }
    free(ids);
    free(fbuf);
    intact_model_free(m);
    return ids ? 0 : 1;
}
