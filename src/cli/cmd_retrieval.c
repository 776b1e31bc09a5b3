// `intact retrieval`: LongEval line retrieval (see src/eval/retrieval.c) with any KV cache, IntactKV
// prefix or in-memory weight quantization, to see what a compressed cache does to long-context recall.
#include <stdio.h>

#include "cli/args.h"
#include "cli/common.h"
#include "cli/kv_flags.h"
#include "cli/quant_flags.h"
#include "eval/retrieval.h"

static const char ABOUT[] =
    "\nA LongEval-style line-retrieval benchmark (Li et al. 2023), the test MiKV reports. Each trial is a\n"
    "record of --lines lines 'line swift-baker: REGISTER_CONTENT is <12345>' and a question for one of\n"
    "them; the model answers greedily and is right when the first integer it writes is the line's value.\n"
    "Trials are deterministic for a --seed. It is meant for the chat models you bring (LLaMA-2/3 chat,\n"
    "Qwen2 instruct, ...; pick their --template): the tiny test models in ../shared/models cannot follow\n"
    "instructions and score near zero; with their 512-piece tokenizer stories260K (512-token context)\n"
    "fits about 4 lines and english-1m (256) not even one. A prompt that does not fit is an error.\n"
    "Templates: none = the plain prompt; llama2 = '[INST] prompt [/INST]'; llama3 and chatml write\n"
    "their header markers (<|start_header_id|>, <|eot_id|>, <|im_start|>, <|im_end|>) as the vocabulary's\n"
    "special tokens when it has them, else as plain text. Every prompt starts with [BOS] (or the --ikv\n"
    "prefix). Progress per trial goes to stderr; the summary (or --json) to stdout.\n";

typedef struct {
    int quiet;
} trial_ctx;

// One stderr line per trial, the answer on one line (control characters shown as spaces).
static void print_trial(void *user, const retrieval_trial *t) {
    if (((trial_ctx *)user)->quiet) return;
    fprintf(stderr, "retrieval trial %d/%d: line %s = %d, %d prompt tokens, answer \"", t->trial, t->trials,
            t->c->asked_id, t->c->value, t->prompt_tokens);
    for (const unsigned char *s = (const unsigned char *)t->answer; *s; s++)
        fputc(*s < 0x20 || *s == 0x7f ? ' ' : *s, stderr);
    fprintf(stderr, "\": %s\n", t->correct ? "correct" : "wrong");
}

int cmd_retrieval(int argc, char **argv) {
    const char *model = NULL, *tok = NULL, *ikv = NULL, *tmpl_name = "none";
    intact_retrieval_params p = intact_retrieval_default_params();
    int json = 0, quiet = 0;
    p.n_threads = cli_default_threads();
    quant_flags qf;
    quant_flags_init(&qf);
    kv_flags kvf;
    cli_opt opts[12 + QUANT_N_OPTS + KV_N_OPTS] = {
        {"--model", "-m", ARG_STR | ARG_REQUIRED, &model, "PATH", "model file (GGUF or llama2.c .bin)", 0, 0},
        {"--tokenizer", "-z", ARG_STR, &tok, "PATH", "llama2.c tokenizer.bin (GGUF carries its own)", 0, 0},
        {"--lines", NULL, ARG_INT, &p.n_lines, "N", "lines in each record (default 20)", 1, RETRIEVAL_MAX_LINES},
        {"--trials", NULL, ARG_INT, &p.trials, "T", "prompts to ask (default 10)", 1, 1 << 20},
        {"--seed", NULL, ARG_U64, &p.seed, "S", "seed of the records and questions (default 0)", 0, 0},
        {"--max-answer", NULL, ARG_INT, &p.max_answer_tokens, "N", "answer tokens at most (default 16)", 1, 4096},
        {"--template", NULL, ARG_STR, &tmpl_name, "NAME", "chat template: none (default), llama2, llama3, chatml",
         0, 0},
        {"--threads", "-t", ARG_INT, &p.n_threads, "N", "threads (default: online CPUs, at most 16)", 1, 256},
        {"--ikv", NULL, ARG_STR, &ikv, "P.ikv", "IntactKV prefix: each prompt starts with it", 0, 0},
        {"--json", NULL, ARG_FLAG, &json, NULL, "print the result as JSON", 0, 0},
        {"--quiet", "-q", ARG_FLAG, &quiet, NULL, "no per-trial lines on stderr", 0, 0},
    };
    int n_opts = quant_flags_add(&qf, opts, 11, 0);
    n_opts = kv_flags_add(&kvf, opts, n_opts);
    int rc = cli_parse("retrieval", "-m MODEL [-z TOKENIZER] [--lines 20] [--trials 10] [--seed S] "
                       "[--template none|llama2|llama3|chatml] [KV-cache flags] [--json]", opts, n_opts, argc, argv);
    if (rc > 0) fputs(ABOUT, stdout);
    if (rc) return rc > 0 ? 0 : 2;
    if (quant_flags_check("retrieval", &qf, opts, n_opts, argc, argv) != 0) return 2;
    int tmpl = retrieval_template_parse(tmpl_name);
    if (tmpl < 0) {
        fprintf(stderr, "intact retrieval: --template is none, llama2, llama3 or chatml, not '%s'\n", tmpl_name);
        return 2;
    }
    int bad_kv;
    const intact_kv_params *kvp = kv_flags_get("retrieval", &kvf, 0, &bad_kv);
    if (bad_kv) return 2;
    intact_model *m = cli_load_model("retrieval", model, tok);
    if (m && quant_flags_apply("retrieval", &qf, m, p.n_threads, json, NULL) != 0) { intact_model_free(m); m = NULL; }
    if (!m) return 1;
    intact_prefix *prefix = ikv ? cli_load_prefix("retrieval", ikv, m) : NULL;
    if (ikv && !prefix) { intact_model_free(m); return 1; }
    p.prefix = prefix;
    p.kv = kvp;
    trial_ctx tc = {quiet};
    intact_retrieval_result r;
    intact_error err = {0, ""};
    rc = retrieval_eval(m, &p, tmpl, print_trial, &tc, &r, &err);
    intact_prefix_free(prefix);
    intact_model_free(m);
    if (rc != 0) {
        fprintf(stderr, "intact retrieval: %s\n", err.msg);
        return 1;
    }
    if (json)
        printf("{\"accuracy\":%.6f,\"correct\":%d,\"trials\":%d,\"lines\":%d,\"prompt_tokens\":%.2f,"
               "\"kv_bytes\":%llu,\"kv_bytes_vs_f16\":%.4f}\n", r.accuracy, r.correct, r.trials, p.n_lines,
               r.prompt_tokens, (unsigned long long)r.kv_bytes, r.kv_bytes_vs_f16);
    else
        printf("retrieval accuracy %.3f (%d/%d correct), %d lines, mean prompt %.1f tokens, KV cache %.1f KiB "
               "(%.1f%% of fp16)\n", r.accuracy, r.correct, r.trials, p.n_lines, r.prompt_tokens,
               r.kv_bytes / 1024.0, 100 * r.kv_bytes_vs_f16);
    return 0;
}
