// `intact ikv build | mse | calibrate`: IntactKV prefixes.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/common.h"
#include "cli/ikv_calibrate_cmd.h"
#include "cli/quant_flags.h"

static int ikv_build(int argc, char **argv) {
    const char *model = NULL, *tok = NULL, *out = NULL, *prompt = NULL, *prompt_file = NULL;
    int bos = 0, fp16 = 0;
    const cli_opt opts[] = {
        {"--model", "-m", ARG_STR | ARG_REQUIRED, &model, "PATH", "full-precision model", 0, 0},
        {"--tokenizer", "-z", ARG_STR, &tok, "PATH", "llama2.c tokenizer.bin", 0, 0},
        {"--bos", NULL, ARG_FLAG, &bos, NULL, "the prefix is [BOS] alone (default)", 0, 0},
        {"--prompt", NULL, ARG_STR, &prompt, "TEXT", "the prefix is BOS + this system prompt", 0, 0},
        {"--prompt-file", NULL, ARG_STR, &prompt_file, "F", "the system prompt from a file ('-': standard input)", 0, 0},
        {"--output", "-o", ARG_STR, &out, "P.ikv", "output prefix file", 0, 0},
        {"--fp16", NULL, ARG_FLAG, &fp16, NULL, "store K/V as fp16 (half the size, not lossless)", 0, 0},
    };
    int rc = cli_parse("ikv build", "-m FP_MODEL [--bos | --prompt TEXT | --prompt-file F] -o P.ikv", opts, 7, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    if (!out) { fprintf(stderr, "intact ikv build: no output given (-o P.ikv)\n"); return 2; }
    if (bos + !!prompt + !!prompt_file > 1) {
        fprintf(stderr, "intact ikv build: give one of --bos, --prompt, --prompt-file\n");
        return 2;
    }
    size_t len = prompt ? strlen(prompt) : 0;
    char *fbuf = prompt_file ? cli_read_file("ikv build", prompt_file, &len) : NULL;
    if (prompt_file && !fbuf) return 1;
    intact_model *m = cli_load_model("ikv build", model, tok);
    rc = 1;
    if (m) {
        intact_model_info in;
        intact_model_get_info(m, &in);
        intact_error err = {0, ""};
        int32_t *ids = NULL;
        int n = 0, from_bos = !prompt && !fbuf;
        if (in.bos_id < 0) {
            fprintf(stderr, "intact ikv build: the model has no BOS token to build a prefix from\n");
        } else if (from_bos) {
            ids = malloc(sizeof *ids);
            if (ids) { ids[0] = in.bos_id; n = 1; }
        } else {
            const char *text = fbuf ? fbuf : prompt;
            n = intact_tokenize(m, text, len, 1, NULL, 0, &err);
            ids = n > 0 ? malloc((size_t)n * sizeof *ids) : NULL;
            if (ids) intact_tokenize(m, text, len, 1, ids, n, &err);
        }
        intact_prefix *p = ids ? intact_prefix_build(m, ids, n, from_bos, &err) : NULL;
        if (p && intact_prefix_save(p, out, fp16, &err) == 0) {
            printf("wrote %s: %d prefix token%s (%s), K/V of %d layers in %s\n", out, n, n == 1 ? "" : "s",
                   from_bos ? "[BOS]" : "BOS + system prompt", in.n_layers, fp16 ? "fp16" : "fp32");
            rc = 0;
        } else if (in.bos_id >= 0) {
            fprintf(stderr, "intact ikv build: %s\n", err.msg[0] ? err.msg : "out of memory");
        }
        intact_prefix_free(p);
        free(ids);
    }
    free(fbuf);
    intact_model_free(m);
    return rc;
}

int cmd_ikv(int argc, char **argv) {
    if (argc >= 1 && !strcmp(argv[0], "build")) return ikv_build(argc - 1, argv + 1);
    if (argc >= 1 && !strcmp(argv[0], "mse")) return ikv_mse_cmd(argc - 1, argv + 1);
    if (argc >= 1 && !strcmp(argv[0], "calibrate")) return ikv_calibrate_cmd(argc - 1, argv + 1);
    FILE *f = argc >= 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) ? stdout : stderr;
    fprintf(f, "usage: intact ikv build|calibrate|mse [options]\n\n"
               "  build      full-precision K/V of [BOS] or BOS + a system prompt -> P.ikv\n"
               "  calibrate  train a prefix's K/V so a quantized model's layer outputs match the FP model's\n"
               "  mse        attention/block output MSE vs FP as more initial tokens stay intact\n\n"
               "'intact ikv SUBCOMMAND --help' shows its options.\n");
    if (f == stdout) return 0;
    if (argc >= 1) fprintf(stderr, "intact ikv: unknown subcommand '%s'\n", argv[0]);
    return 2;
}
