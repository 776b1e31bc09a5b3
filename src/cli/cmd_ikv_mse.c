// `intact ikv mse`: the paper's Fig. 2 table.
#include <stdio.h>
#include <stdlib.h>

#include "cli/args.h"
#include "cli/common.h"
#include "cli/ikv_calibrate_cmd.h"
#include "cli/quant_flags.h"

int ikv_mse_cmd(int argc, char **argv) {
    const char *model = NULL, *base = NULL, *tok = NULL, *file = NULL;
    int max_prefix = 8, n_ctx = 0, chunks = 4, threads = cli_default_threads(), json = 0;
    quant_flags qf;
    quant_flags_init(&qf);
    cli_opt opts[9 + QUANT_N_OPTS] = {
        {"--model", "-m", ARG_STR | ARG_REQUIRED, &model, "PATH", "quantized model (or FP with --quant ...)", 0, 0},
        {"--base", NULL, ARG_STR, &base, "PATH", "full-precision model", 0, 0},
        {"--tokenizer", "-z", ARG_STR, &tok, "PATH", "llama2.c tokenizer.bin (both models)", 0, 0},
        {"--file", "-f", ARG_STR, &file, "PATH", "text ('-': standard input)", 0, 0},
        {"--max-prefix", NULL, ARG_INT, &max_prefix, "N", "intact initial tokens 0..N (default 8)", 0, 4096},
        {"--ctx-size", "-c", ARG_INT, &n_ctx, "N", "chunk length incl. BOS (default min(512, model ctx))", 2, 1 << 20},
        {"--chunks", NULL, ARG_INT, &chunks, "N", "chunks (default 4)", 1, 1 << 20},
        {"--threads", "-t", ARG_INT, &threads, "N", "threads (default: online CPUs, at most 16)", 1, 256},
        {"--json", NULL, ARG_FLAG, &json, NULL, "print JSON", 0, 0},
    };
    int n = quant_flags_add(&qf, opts, 9, 0);
    int rc = cli_parse("ikv mse", "-m QUANT --base FP -f TEXT [--max-prefix 8] [--json]", opts, n, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    if (quant_flags_check("ikv mse", &qf, opts, n, argc, argv) != 0) return 2;
    if (!file || !base) {
        fprintf(stderr, "intact ikv mse: needs --base FP_MODEL and -f TEXT\n");
        return 2;
    }
    size_t len;
    char *text = cli_read_file("ikv mse", file, &len);
    if (!text) return 1;
    intact_model *m = cli_load_model("ikv mse", model, tok);
    if (m && quant_flags_apply("ikv mse", &qf, m, threads, json, NULL) != 0) { intact_model_free(m); m = NULL; }
    intact_model *fp = m ? cli_load_model("ikv mse", base, tok) : NULL;
    if (fp && quant_flags_rotate_base("ikv mse", &qf, fp, threads, json) != 0) { intact_model_free(fp); fp = NULL; }
    intact_ikv_mse_row *rows = calloc((size_t)max_prefix + 1, sizeof *rows);
    rc = 1;
    if (fp && rows) {
        intact_model_info in;
        intact_model_get_info(m, &in);
        cli_warn_ctx("ikv mse", n_ctx, in.ctx_len);
        intact_eval_params p = {n_ctx ? n_ctx : in.ctx_len < 512 ? in.ctx_len : 512, chunks, threads, cli_progress,
                                "ikv mse chunks", NULL, NULL};
        intact_error err = {0, ""};
        if (intact_ikv_mse(m, fp, text, len, &p, max_prefix, rows, &err) != 0) {
            fprintf(stderr, "intact ikv mse: %s\n", err.msg);
        } else {
            rc = 0;
            if (json) printf("{\"rows\":[");
            else printf("intact tokens | attn_out MSE | block_out MSE (vs FP, mean over layers)\n");
            for (int k = 0; k <= max_prefix; k++) {
                if (json)
                    printf("%s{\"n_intact\":%d,\"attn_mse\":%.9g,\"block_mse\":%.9g}", k ? "," : "", k,
                           rows[k].attn_mse, rows[k].block_mse);
                else
                    printf("%13d | %12.6g | %13.6g\n", k, rows[k].attn_mse, rows[k].block_mse);
            }
            if (json) printf("]}\n");
        }
    }
    free(rows);
    free(text);
    intact_model_free(m);
    intact_model_free(fp);
    return rc;
}
