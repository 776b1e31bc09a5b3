// `intact ppl` and `intact kld`.
#include <stdio.h>
#include <stdlib.h>

#include "cli/args.h"
#include "cli/common.h"
#include "cli/kv_flags.h"
#include "cli/quant_flags.h"

typedef struct {
    const char *model, *tok, *file, *base, *ikv;
    int n_ctx, chunks, threads, json;
    quant_flags q;
    kv_flags kv;
} eval_flags;

static int parse_eval(const char *cmd, int with_base, eval_flags *f, int argc, char **argv) {
    cli_opt opts[9 + QUANT_N_OPTS + KV_N_OPTS] = {
        {"--ikv", NULL, ARG_STR, &f->ikv, "P.ikv", "IntactKV prefix: each chunk starts with it (model only)", 0, 0},
        {"--model", "-m", ARG_STR | ARG_REQUIRED, &f->model, "PATH", "model file (GGUF or llama2.c .bin)", 0, 0},
        {"--tokenizer", "-z", ARG_STR, &f->tok, "PATH", "llama2.c tokenizer.bin (used for both models)", 0, 0},
        {"--file", "-f", ARG_STR, &f->file, "PATH", "text to evaluate ('-': standard input)", 0, 0},
        {"--ctx-size", "-c", ARG_INT, &f->n_ctx, "N", "chunk length incl. BOS (default min(512, model ctx))", 2, 1 << 20},
        {"--chunks", NULL, ARG_INT, &f->chunks, "N", "evaluate at most N chunks (default all)", 0, 1 << 30},
        {"--threads", "-t", ARG_INT, &f->threads, "N", "threads (default: online CPUs, at most 16)", 1, 256},
        {"--json", NULL, ARG_FLAG, &f->json, NULL, "print the result as JSON", 0, 0},
        {"--base", NULL, ARG_STR, &f->base, "PATH", "base (reference) model for KL divergence", 0, 0},
    };
    const char *syn = with_base ? "-m MODEL --base BASE_MODEL -f TEXT [-c CTX] [--json]"
                                : "-m MODEL -f TEXT [-c CTX] [--chunks N] [--json]";
    int n = quant_flags_add(&f->q, opts, with_base ? 9 : 8, 0);
    n = kv_flags_add(&f->kv, opts, n);
    int rc = cli_parse(cmd, syn, opts, n, argc, argv);
    if (rc) return rc;
    if (quant_flags_check(cmd, &f->q, opts, n, argc, argv) != 0 || kv_flags_check(cmd, &f->kv) != 0) return -1;
    if (!f->file) {
        fprintf(stderr, "intact %s: no text given (-f FILE)\n", cmd);
        return -1;
    }
    if (with_base && !f->base) {
        fprintf(stderr, "intact %s: no base model given (--base BASE_MODEL)\n", cmd);
        return -1;
    }
    return 0;
}

static int default_ctx(const char *cmd, intact_model *m, int n_ctx) {
    intact_model_info in;
    intact_model_get_info(m, &in);
    cli_warn_ctx(cmd, n_ctx, in.ctx_len);
    return n_ctx ? n_ctx : in.ctx_len < 512 ? in.ctx_len : 512;
}

int cmd_ppl(int argc, char **argv) {
    eval_flags f = {0};
    f.threads = cli_default_threads();
    quant_flags_init(&f.q);
    int rc = parse_eval("ppl", 0, &f, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    size_t len;
    char *text = cli_read_file("ppl", f.file, &len);
    if (!text) return 1;
    intact_model *m = cli_load_model("ppl", f.model, f.tok);
    if (m && quant_flags_apply("ppl", &f.q, m, f.threads, f.json, NULL) != 0) { intact_model_free(m); m = NULL; }
    if (!m) { free(text); return 1; }
    intact_prefix *prefix = f.ikv ? cli_load_prefix("ppl", f.ikv, m) : NULL;
    if (f.ikv && !prefix) { free(text); intact_model_free(m); return 1; }
    int bad;
    const intact_kv_params *kvp = kv_flags_get("ppl", &f.kv, prefix ? intact_prefix_n_tokens(prefix) : 0, &bad);
    if (bad) { intact_prefix_free(prefix); free(text); intact_model_free(m); return 2; }
    intact_eval_params p = {default_ctx("ppl", m, f.n_ctx), f.chunks, f.threads, cli_progress, "ppl chunks", prefix, kvp};
    intact_ppl_result r;
    intact_error err = {0, ""};
    rc = intact_eval_ppl(m, text, len, &p, &r, &err);
    intact_prefix_free(prefix);
    if (rc != 0) fprintf(stderr, "intact ppl: %s\n", err.msg);
    else if (f.json)
        printf("{\"ppl\":%.6f,\"nll\":%.6f,\"tokens\":%lld,\"chunks\":%d,\"ctx\":%d,\"kv_bytes\":%llu,"
               "\"kv_bytes_vs_f16\":%.4f}\n", r.ppl, r.nll, (long long)r.tokens, r.chunks, p.n_ctx,
               (unsigned long long)r.kv_bytes, r.kv_bytes_vs_f16);
    else
        printf("perplexity %.4f (nll %.5f nats/token) over %lld tokens in %d chunks of %d\n", r.ppl, r.nll,
               (long long)r.tokens, r.chunks, p.n_ctx);
    free(text);
    intact_model_free(m);
    return rc ? 1 : 0;
}

int cmd_kld(int argc, char **argv) {
    eval_flags f = {0};
    f.threads = cli_default_threads();
    quant_flags_init(&f.q);
    int rc = parse_eval("kld", 1, &f, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    size_t len;
    char *text = cli_read_file("kld", f.file, &len);
    if (!text) return 1;
    intact_model *m = cli_load_model("kld", f.model, f.tok);
    if (m && quant_flags_apply("kld", &f.q, m, f.threads, f.json, NULL) != 0) { intact_model_free(m); m = NULL; }
    intact_model *base = m ? cli_load_model("kld", f.base, f.tok) : NULL;
    rc = 1;
    intact_prefix *prefix = base && f.ikv ? cli_load_prefix("kld", f.ikv, m) : NULL;
    int bad = 0;
    const intact_kv_params *kvp = kv_flags_get("kld", &f.kv, prefix ? intact_prefix_n_tokens(prefix) : 0, &bad);
    if (bad) rc = 2;
    if (base && !bad && (!f.ikv || prefix)) {
        intact_eval_params p = {default_ctx("kld", m, f.n_ctx), f.chunks, f.threads, cli_progress, "kld chunks", prefix, kvp};
        intact_model_info mi, bi;
        intact_model_get_info(m, &mi);
        intact_model_get_info(base, &bi);
        if (bi.ctx_len < mi.ctx_len) cli_warn_ctx("kld --base", p.n_ctx, bi.ctx_len);   // the base's own limit
        intact_kld_result r;
        intact_error err = {0, ""};
        rc = intact_eval_kld(m, base, text, len, &p, &r, &err);
        if (rc != 0) fprintf(stderr, "intact kld: %s\n", err.msg);
        else if (f.json)
            printf("{\"kld_mean\":%.8f,\"kld_p99\":%.8f,\"top1\":%.6f,\"ppl\":%.6f,\"ppl_base\":%.6f,"
                   "\"tokens\":%lld,\"chunks\":%d,\"kv_bytes\":%llu,\"kv_bytes_vs_f16\":%.4f}\n", r.kld_mean,
                   r.kld_p99, r.top1, r.ppl, r.ppl_base, (long long)r.tokens, r.chunks,
                   (unsigned long long)r.kv_bytes, r.kv_bytes_vs_f16);
        else
            printf("KL(base||model) mean %.6f, p99 %.6f, top-1 agreement %.2f%%, ppl %.4f vs base %.4f "
                   "(%lld tokens)\n", r.kld_mean, r.kld_p99, 100 * r.top1, r.ppl, r.ppl_base, (long long)r.tokens);
        rc = rc ? 1 : 0;
    }
    free(text);
    intact_prefix_free(prefix);
    intact_model_free(m);
    intact_model_free(base);
    return rc;
}
