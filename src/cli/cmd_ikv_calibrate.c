// `intact ikv calibrate`: train a prefix's K/V for a quantized model (src/ikv/calibrate.c).
#include <stdio.h>
#include <stdlib.h>

#include "cli/args.h"
#include "cli/common.h"
#include "cli/ikv_calibrate_cmd.h"
#include "cli/quant_flags.h"

static void epoch_progress(void *user, int epoch, int epochs, double loss) {
    (void)user;
    fprintf(stderr, "ikv calibrate: epoch %d/%d, loss %.6g\n", epoch, epochs, loss);
}

int ikv_calibrate_cmd(int argc, char **argv) {
    const char *model = NULL, *base = NULL, *tok = NULL, *ikv = NULL, *calib = NULL, *out = NULL;
    intact_ikv_calib_params cp = intact_ikv_calib_default_params();
    int threads = cli_default_threads(), json = 0;
    quant_flags qf;
    quant_flags_init(&qf);
    cli_opt opts[12 + QUANT_N_OPTS] = {
        {"--model", "-m", ARG_STR | ARG_REQUIRED, &model, "PATH", "quantized model (or FP with --quant ...)", 0, 0},
        {"--base", NULL, ARG_STR, &base, "PATH", "full-precision model the prefix came from", 0, 0},
        {"--tokenizer", "-z", ARG_STR, &tok, "PATH", "llama2.c tokenizer.bin (both models)", 0, 0},
        {"--ikv", NULL, ARG_STR, &ikv, "P.ikv", "prefix to calibrate (from ikv build)", 0, 0},
        {"--output", "-o", ARG_STR, &out, "P2.ikv", "calibrated prefix", 0, 0},
        {"--samples", NULL, ARG_INT, &cp.samples, "N", "calibration windows (default 8)", 1, 1 << 16},
        {"--len", NULL, ARG_INT, &cp.len, "L", "tokens per window (default 128, capped by the context)", 1, 1 << 20},
        {"--epochs", NULL, ARG_INT, &cp.epochs, "E", "epochs (default 4)", 1, 100000},
        {"--lr", NULL, ARG_FLOAT, &cp.lr, "LR", "AdamW learning rate (default 1e-2)", 1e-9, 1},
        {"--seed", NULL, ARG_U64, &cp.seed, "S", "window choice and order (default 0)", 0, 0},
        {"--threads", "-t", ARG_INT, &threads, "N", "threads (default: online CPUs, at most 16)", 1, 256},
        {"--json", NULL, ARG_FLAG, &json, NULL, "print a JSON summary", 0, 0},
    };
    // --calib (from the quantization flags) is the calibration text of both the prefix and, when
    // quantizing in memory, the quantizer.
    int n = quant_flags_add(&qf, opts, 12, QF_CALIB_CMD);
    int rc = cli_parse("ikv calibrate", "-m QUANT_MODEL --base FP_MODEL --ikv P.ikv --calib FILE -o P2.ikv",
                       opts, n, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    if (quant_flags_check("ikv calibrate", &qf, opts, n, argc, argv) != 0) return 2;
    if (!base || !ikv || !qf.calib || !out) {
        fprintf(stderr, "intact ikv calibrate: needs --base, --ikv, --calib and -o\n");
        return 2;
    }
    calib = qf.calib;
    size_t len;
    char *text = cli_read_file("ikv calibrate", calib, &len);
    if (!text) return 1;
    intact_model *m = cli_load_model("ikv calibrate", model, tok);
    if (m && quant_flags_apply("ikv calibrate", &qf, m, threads, 0, NULL) != 0) { intact_model_free(m); m = NULL; }
    intact_model *fp = m ? cli_load_model("ikv calibrate", base, tok) : NULL;
    if (fp && quant_flags_rotate_base("ikv calibrate", &qf, fp, threads, 0) != 0) { intact_model_free(fp); fp = NULL; }
    intact_prefix *p = fp ? cli_load_prefix("ikv calibrate", ikv, fp) : NULL;
    rc = 1;
    if (p) {
        cp.n_threads = threads;
        cp.progress = epoch_progress;
        intact_ikv_calib_report r;
        intact_error err = {0, ""};
        if (intact_prefix_calibrate(m, fp, p, text, len, &cp, &r, &err) != 0 ||
            intact_prefix_save(p, out, 0, &err) != 0) {
            fprintf(stderr, "intact ikv calibrate: %s\n", err.msg);
        } else {
            rc = 0;
            if (json)
                printf("{\"loss_before\":%.9g,\"loss_after\":%.9g,\"seconds\":%.3f,\"epochs\":%d,\"samples\":%d,"
                       "\"threads\":%d}\n", r.loss_before, r.loss_after, r.seconds, cp.epochs, cp.samples, threads);
            else
                printf("wrote %s: loss %.6g -> %.6g in %.1f s\n", out, r.loss_before, r.loss_after, r.seconds);
        }
    }
    intact_prefix_free(p);
    free(text);
    intact_model_free(m);
    intact_model_free(fp);
    return rc;
}
