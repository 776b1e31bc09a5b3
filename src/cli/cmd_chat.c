// `intact chat`: interactive multi-turn chat in the style of llama-cli -cnv. The conversation stays
// in the KV cache (each turn evaluates only its new tokens); the system prompt is an IntactKV prefix
// (--ikv, or --system/--system-file built at start-up by --ikv-base or the model itself).
// Ctrl-C during a reply stops the reply; at the prompt it ends the program.
// Commands: /reset, /save FILE, /load FILE, /quit.
// Session files (/save) hold the tokens only; /load validates them and re-prefills (the cache is not
// stored). Format, text: "intact-chat 1\n" "fingerprint <16 hex>\n" "tokens <n>\n" then n decimal
// ids separated by spaces or newlines, then "end\n". Rejected unless the fingerprint is this
// model's, 1 <= n < the context size and every id is in the vocabulary.
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/common.h"
#include "cli/kv_flags.h"
#include "cli/sample_flags.h"
#include "sample/stop.h"
#include "serve/template.h"

static volatile sig_atomic_t interrupted;
static void on_sigint(int s) { (void)s; interrupted = 1; }

typedef struct chat {
    intact_model *m;
    intact_model_info in;
    intact_ctx *c;
    intact_prefix *prefix;
    int32_t *toks;   // the conversation as evaluated
    int n, cap, n_ctx;
} chat;

static int push(chat *ch, const int32_t *t, int k) {
    if (ch->n + k > ch->cap) {
        int nc = ch->n + k + 256;
        int32_t *nt = realloc(ch->toks, (size_t)nc * sizeof *nt);
        if (!nt) return -1;
        ch->toks = nt;
        ch->cap = nc;
    }
    memcpy(ch->toks + ch->n, t, (size_t)k * sizeof *t);
    ch->n += k;
    return 0;
}

// Evaluates tokens and appends them to the conversation. 0 or -1 (printed).
static int feed(chat *ch, const int32_t *t, int k) {
    intact_error err = {0, ""};
    if (intact_ctx_pos(ch->c) + k >= ch->n_ctx) {
        fprintf(stderr, "intact chat: the context is full (%d tokens): /reset or /save and start again\n", ch->n_ctx);
        return -1;
    }
    if (k > 0 && (intact_ctx_eval(ch->c, t, k, &err) != 0 || push(ch, t, k) != 0)) {
        fprintf(stderr, "intact chat: %s\n", err.msg[0] ? err.msg : "out of memory");
        return -1;
    }
    return 0;
}

static int feed_text(chat *ch, const char *s, int bos) {
    intact_error err = {0, ""};
    int k = intact_tokenize(ch->m, s, strlen(s), bos, NULL, 0, &err);
    if (k < 0) { fprintf(stderr, "intact chat: %s\n", err.msg); return -1; }
    int32_t *t = malloc((size_t)(k + 1) * sizeof *t);
    int rc = t && intact_tokenize(ch->m, s, strlen(s), bos, t, k, &err) == k ? feed(ch, t, k) : -1;
    free(t);
    return rc;
}

// Starts over with tokens t[0..k) (NULL: the system prefix or [BOS] only).
static int restart(chat *ch, const int32_t *t, int k) {
    intact_error err = {0, ""};
    intact_ctx_reset(ch->c);
    ch->n = 0;
    int skip = 0;
    if (ch->prefix) {
        int pn = intact_prefix_n_tokens(ch->prefix);
        const int32_t *pt = intact_prefix_tokens(ch->prefix);
        if (!t || (k >= pn && !memcmp(t, pt, (size_t)pn * sizeof *t))) {
            if (intact_ctx_use_prefix(ch->c, ch->prefix, &err) != 0 || push(ch, pt, pn) != 0) {
                fprintf(stderr, "intact chat: %s\n", err.msg[0] ? err.msg : "out of memory");
                return -1;
            }
            skip = pn;
        }
    }
    if (t) return feed(ch, t + skip, k - skip);
    if (!ch->prefix && ch->in.add_bos && ch->in.bos_id >= 0) {
        int32_t b = ch->in.bos_id;
        return feed(ch, &b, 1);
    }
    return 0;
}

static int save_session(const chat *ch, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) { fprintf(stderr, "intact chat: cannot write '%s': %s\n", path, strerror(errno)); return -1; }
    fprintf(f, "intact-chat 1\nfingerprint %016" PRIx64 "\ntokens %d\n", intact_model_fingerprint(ch->m), ch->n);
    for (int i = 0; i < ch->n; i++) fprintf(f, "%d%c", ch->toks[i], i % 16 == 15 || i == ch->n - 1 ? '\n' : ' ');
    fprintf(f, "end\n");
    if (fclose(f) != 0) { fprintf(stderr, "intact chat: cannot write '%s'\n", path); return -1; }
    return 0;
}

static int load_session(chat *ch, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) { fprintf(stderr, "intact chat: cannot open '%s': %s\n", path, strerror(errno)); return -1; }
    uint64_t fp = 0;
    int n = 0, ok = fscanf(f, "intact-chat 1 fingerprint %" SCNx64 " tokens %d", &fp, &n) == 2;
    const char *why = !ok ? "not an intact chat session file" : fp != intact_model_fingerprint(ch->m)
                          ? "saved with another model" : n < 1 || n >= ch->n_ctx ? "token count out of range" : NULL;
    int32_t *t = why ? NULL : malloc((size_t)n * sizeof *t);
    if (!why && !t) why = "out of memory";
    for (int i = 0; !why && i < n; i++)
        if (fscanf(f, "%d", &t[i]) != 1 || t[i] < 0 || t[i] >= ch->in.n_vocab) why = "bad or missing token id";
    char tail[8] = "";
    if (!why && (fscanf(f, " %7s", tail) != 1 || strcmp(tail, "end") != 0)) why = "no 'end' line (truncated?)";
    fclose(f);
    int rc = -1;
    if (why) fprintf(stderr, "intact chat: '%s': %s\n", path, why);
    else rc = restart(ch, t, n);
    free(t);
    return rc;
}

int cmd_chat(int argc, char **argv) {
    const char *model = NULL, *tok = NULL, *ikv = NULL, *ikv_base = NULL, *system = NULL, *system_file = NULL;
    const char *tname = NULL;
    int n_reply = 256, n_ctx = 0, threads = cli_default_threads();
    cli_load_mode load = {0, 0, 0};
    sample_flags sf;
    kv_flags kvf;
    cli_opt opts[12 + SAMPLE_N_OPTS + KV_N_OPTS] = {
        CLI_OPT_LOAD_MODE(&load),
        {"--model", "-m", ARG_STR | ARG_REQUIRED, &model, "PATH", "model file (GGUF or llama2.c .bin)", 0, 0},
        {"--tokenizer", "-z", ARG_STR, &tok, "PATH", "llama2.c tokenizer.bin (GGUF carries its own)", 0, 0},
        {"--ikv", NULL, ARG_STR, &ikv, "P.ikv", "IntactKV prefix: the system prompt", 0, 0},
        {"--ikv-base", NULL, ARG_STR, &ikv_base, "FP", "build the system prompt's prefix with this full-precision model", 0, 0},
        {"--system", NULL, ARG_STR, &system, "TEXT", "system prompt", 0, 0},
        {"--system-file", NULL, ARG_STR, &system_file, "PATH", "system prompt from a file", 0, 0},
        {"--chat-template", NULL, ARG_STR, &tname, "NAME", "plain, chatml, llama-3, llama-2, mistral, zephyr, gemma (default: from the GGUF, else plain)", 0, 0},
        {"--n-predict", "-n", ARG_INT, &n_reply, "N", "tokens per reply at most (default 256)", 1, 1 << 20},
        {"--ctx-size", "-c", ARG_INT, &n_ctx, "N", "context size (default: the model's)", 0, 1 << 20},
        {"--threads", "-t", ARG_INT, &threads, "N", "threads (default: online CPUs, at most 16)", 1, 256},
    };
    int n_opts = sample_flags_add(&sf, opts, 12);
    n_opts = kv_flags_add(&kvf, opts, n_opts);
    int rc = cli_parse("chat", "-m MODEL [--ikv P.ikv | --system TEXT [--ikv-base FP]] [options] < turns", opts, n_opts,
                       argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    intact_sampler smp;
    if (sample_flags_init("chat", &sf, &smp) != 0) return 2;
    int ti = tname ? tmpl_id(tname) : -1;
    if (tname && ti < 0) return cli_flag_error("chat", "unknown chat template '%s'%s", tname, ""), 2;
    if (system && system_file) return cli_flag_error("chat", "give %s or %s, not both", "--system", "--system-file"), 2;
    if (ikv && (system || system_file || ikv_base))
        return cli_flag_error("chat", "%s excludes %s (the file holds the system prompt)", "--ikv",
                              ikv_base ? "--ikv-base" : "--system"), 2;
    if (ikv_base && !system && !system_file) return cli_flag_error("chat", "%s needs %s", "--ikv-base", "--system"), 2;
    int bad_kv;
    const intact_kv_params *kvp = kv_flags_get("chat", &kvf, 0, &bad_kv);
    if (bad_kv) return 2;
    char *sysbuf = NULL;
    size_t slen;
    if (system_file && !(system = sysbuf = cli_read_file("chat", system_file, &slen))) return 1;
    chat ch = {0};
    ch.m = cli_load_model_ex("chat", model, tok, &load);
    if (!ch.m) { free(sysbuf); return 1; }
    intact_model_get_info(ch.m, &ch.in);
    if (ti < 0) ti = tmpl_id(tmpl_detect(intact_model_meta_str(ch.m, "tokenizer.chat_template")));
    ch.n_ctx = n_ctx ? n_ctx : ch.in.ctx_len;
    cli_warn_ctx("chat", ch.n_ctx, ch.in.ctx_len);
    intact_error err = {0, ""};
    rc = 0;
    if (ikv && !(ch.prefix = cli_load_prefix("chat", ikv, ch.m))) rc = 1;
    if (system) {   // the system prompt's K/V, computed once by the FP model (or this one)
        char *text = tmpl_system(ti, system);
        if (!text || !(ch.prefix = cli_system_prefix("chat", ch.m, ikv_base, tok, text))) rc = 1;
        free(text);
    }
    intact_ctx_params cp = {ch.n_ctx, threads, 0};
    if (rc == 0 && (!(ch.c = intact_ctx_new(ch.m, &cp, &err)) || (kvp && intact_ctx_set_kv(ch.c, kvp, &err) != 0))) {
        fprintf(stderr, "intact chat: %s\n", err.msg);
        rc = 1;
    }
    if (rc == 0 && restart(&ch, NULL, 0) != 0) rc = 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;   // no SA_RESTART: Ctrl-C at the prompt interrupts fgets
    sigaction(SIGINT, &sa, NULL);
    char line[16384];
    int turn = 0, accepted = 0;   // conversation tokens the sampler's repetition window has seen
    const char *stops[CLI_MAX_STRS + 1];
    int n_stops = 0;
    for (int i = 0; i < sf.stops.n; i++) stops[n_stops++] = sf.stops.v[i];
    if (tmpl_reply_end(ti)[0]) stops[n_stops++] = tmpl_reply_end(ti);
    while (rc == 0) {
        interrupted = 0;
        if (!fgets(line, sizeof line, stdin)) break;   // EOF or Ctrl-C at the prompt
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0]) continue;
        if (!strcmp(line, "/quit")) break;
        if (!strcmp(line, "/reset")) { if (restart(&ch, NULL, 0) == 0) fprintf(stderr, "(reset)\n"); turn = 0; continue; }
        if (!strncmp(line, "/save ", 6)) { if (save_session(&ch, line + 6) == 0) fprintf(stderr, "(saved %d tokens)\n", ch.n); continue; }
        if (!strncmp(line, "/load ", 6)) {
            if (load_session(&ch, line + 6) == 0) { fprintf(stderr, "(loaded %d tokens)\n", ch.n); turn = 1; }
            else restart(&ch, NULL, 0);
            continue;
        }
        if (line[0] == '/') { fprintf(stderr, "intact chat: unknown command '%s' (/reset, /save FILE, /load FILE, /quit)\n", line); continue; }
        // The turn in the template's markers (plain: a blank line after what came before); the first
        // one follows the system prompt when there is one.
        char *turn_text = tmpl_user_turn(ti, line, turn > 0 || ch.prefix, turn == 0 && ch.prefix);
        if (!turn_text) break;
        int ok = feed_text(&ch, turn_text, 0) == 0;
        free(turn_text);
        turn++;
        if (!ok) continue;
        char *gen = NULL;
        size_t len = 0, cap = 0, shown = 0;
        int hit = 0, g = 0;
        int32_t prev = ch.toks[ch.n - 1];
        if (accepted > ch.n) accepted = 0;   // after /reset or /load
        while (!hit && !interrupted && g < n_reply) {
            for (; accepted < ch.n; accepted++) intact_sampler_accept(&smp, ch.toks[accepted]);
            int32_t next = intact_sample(&smp, intact_ctx_logits(ch.c, -1), ch.in.n_vocab);
            if (next == ch.in.eos_id || next == ch.in.bos_id) break;
            char piece[256];
            int k = intact_token_to_text(ch.m, prev, next, piece, sizeof piece);
            if (k > (int)sizeof piece) k = (int)sizeof piece;
            if (k > 0 && len + (size_t)k > cap) {
                char *ng = realloc(gen, cap = 2 * cap + 4096);
                if (!ng) break;
                gen = ng;
            }
            if (k > 0) { memcpy(gen + len, piece, (size_t)k); len += (size_t)k; }
            size_t upto = n_stops ? stop_scan(gen, len, shown, stops, n_stops, &hit) : len;
            if (gen) fwrite(gen + shown, 1, upto - shown, stdout);
            fflush(stdout);
            shown = upto;
            prev = next;
            g++;
            if (feed(&ch, &next, 1) != 0) break;
        }
        if (!hit) fwrite(gen ? gen + shown : "", 1, len - shown, stdout);
        free(gen);
        if (interrupted) fprintf(stderr, "\n(stopped)\n");
        printf("\n");
        fflush(stdout);
        if (!hit && tmpl_reply_end(ti)[0]) feed_text(&ch, tmpl_reply_end(ti), 0);
    }
    free(ch.toks);
    free(sysbuf);
    intact_prefix_free(ch.prefix);
    intact_ctx_free(ch.c);
    intact_model_free(ch.m);
    return rc;
}
