// `intact serve`: loads the model, builds or loads the IntactKV system-prompt prefix and runs the
// OpenAI-compatible server (src/serve/).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "cli/args.h"
#include "cli/common.h"
#include "cli/kv_flags.h"
#include "serve/req.h"
#include "serve/server.h"
#include "serve/template.h"

// --kv-budget SIZE: a number of MiB, or with a K, M or G suffix (binary units). 0 or -1 (bad).
static int parse_budget(const char *v, uint64_t *out) {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    double unit = 1048576.0;
    if (*end && !end[1]) {
        switch (*end) {
            case 'K': case 'k': unit = 1024.0; end++; break;
            case 'M': case 'm': unit = 1048576.0; end++; break;
            case 'G': case 'g': unit = 1073741824.0; end++; break;
        }
    }
    if (errno || end == v || *end || !(d > 0) || d * unit > 1e18) return -1;
    *out = (uint64_t)(d * unit);
    return *out ? 0 : -1;
}

int cmd_serve(int argc, char **argv) {
    const char *model = NULL, *tok = NULL, *ikv = NULL, *ikv_base = NULL, *system = NULL, *host = "127.0.0.1";
    const char *api_key = NULL, *tmpl = NULL, *budget_s = NULL;
    int port = 8080, parallel = 2, queue = 8, n_ctx = 0, threads = 1, timeout = 10, max_body_kib = 1024;
    cli_load_mode load = {0, 0, 0};
    kv_flags kvf;
    cli_opt opts[19 + KV_N_OPTS] = {
        CLI_OPT_LOAD_MODE(&load),
        {"--model", "-m", ARG_STR | ARG_REQUIRED, &model, "PATH", "model file (GGUF or llama2.c .bin)", 0, 0},
        {"--tokenizer", "-z", ARG_STR, &tok, "PATH", "llama2.c tokenizer.bin (GGUF carries its own)", 0, 0},
        {"--host", NULL, ARG_STR, &host, "ADDR", "IPv4 address to bind (default 127.0.0.1: loopback only)", 0, 0},
        {"--port", NULL, ARG_INT, &port, "N", "TCP port (default 8080; 0: any free port, printed)", 0, 65535},
        {"--ikv", NULL, ARG_STR, &ikv, "P.ikv", "IntactKV prefix shared by every session (system prompt)", 0, 0},
        {"--ikv-base", NULL, ARG_STR, &ikv_base, "FP", "build the prefix of --system with this full-precision model", 0, 0},
        {"--system", NULL, ARG_STR, &system, "TEXT", "system prompt (its prefix: --ikv-base, else this model)", 0, 0},
        {"--parallel", "-np", ARG_INT, &parallel, "N", "sessions decoding at once (default 2)", 1, 256},
        {"--queue", NULL, ARG_INT, &queue, "N", "requests waiting for a session before 503 (default 8)", 0, 4096},
        {"--ctx-size", "-c", ARG_INT, &n_ctx, "N", "context per session (default: the model's)", 0, 1 << 20},
        {"--threads", "-t", ARG_INT, &threads, "N", "threads per session (default 1)", 1, 256},
        {"--timeout", NULL, ARG_INT, &timeout, "S", "close connections idle for S seconds (default 10)", 1, 86400},
        {"--api-key", NULL, ARG_STR, &api_key, "KEY", "require 'Authorization: Bearer KEY' (401 otherwise)", 0, 0},
        {"--chat-template", NULL, ARG_STR, &tmpl, "NAME",
         "plain, chatml, llama-2, llama-3, mistral, zephyr, gemma (default: from the GGUF's tokenizer.chat_template, else plain)", 0, 0},
        {"--max-body", NULL, ARG_INT, &max_body_kib, "KIB", "largest request body (default 1024 KiB; 413 above)", 1,
         1 << 20},
        {"--kv-budget", NULL, ARG_STR, &budget_s, "SIZE",
         "KV cache all sessions may hold together, MiB or with K/M/G (default: no limit; requests wait, 503 when the queue is full)", 0, 0},
    };
    int n_opts = kv_flags_add(&kvf, opts, 18);
    int rc = cli_parse("serve", "-m MODEL [--port N] [--ikv P.ikv | --system TEXT [--ikv-base FP]] [options]", opts,
                       n_opts, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    if (tmpl && tmpl_id(tmpl) < 0) return cli_flag_error("serve", "unknown chat template '%s'%s", tmpl, ""), 2;
    if (ikv && (system || ikv_base)) return cli_flag_error("serve", "%s excludes %s (the file holds the prompt)", "--ikv",
                                                           system ? "--system" : "--ikv-base"), 2;
    if (ikv_base && !system) return cli_flag_error("serve", "%s needs %s TEXT", "--ikv-base", "--system"), 2;
    uint64_t budget = 0;
    if (budget_s && parse_budget(budget_s, &budget) != 0)
        return cli_flag_error("serve", "--kv-budget expects a positive size in MiB or with K/M/G, got '%s'%s", budget_s, ""), 2;
    if (api_key && !*api_key) return cli_flag_error("serve", "%s needs a non-empty key%s", "--api-key", ""), 2;
    int bad_kv;
    const intact_kv_params *kvp = kv_flags_get("serve", &kvf, 0, &bad_kv);
    if (bad_kv) return 2;
    intact_model *m = cli_load_model_ex("serve", model, tok, &load);
    if (!m) return 1;
    intact_model_info in;
    intact_model_get_info(m, &in);
    if (!tmpl) tmpl = tmpl_detect(intact_model_meta_str(m, "tokenizer.chat_template"));
    int tid = tmpl_id(tmpl);
    if (n_ctx == 0) n_ctx = in.ctx_len;
    cli_warn_ctx("serve", n_ctx, in.ctx_len);
    intact_prefix *prefix = NULL;
    rc = 0;
    if (ikv && !(prefix = cli_load_prefix("serve", ikv, m))) rc = 1;
    if (system) {   // the system prompt's K/V, computed once by the FP model (or this one)
        char *text = tmpl_system(tid, system);
        if (!text || !(prefix = cli_system_prefix("serve", m, ikv_base, tok, text))) rc = 1;
        free(text);
    }
    if (rc == 0) {
        serve_config cfg = {m, prefix, kvp, host, port, parallel, queue, n_ctx, threads, timeout, api_key,
                            in.name ? in.name : "intact", tid, (size_t)max_body_kib * 1024, budget};
        rc = serve_run(&cfg);
    }
    intact_prefix_free(prefix);
    intact_model_free(m);
    return rc;
}
