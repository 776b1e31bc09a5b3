#include "cli/quant_flags.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/common.h"
#include "quant/qgrid.h"

void quant_flags_init(quant_flags *q) {
    memset(q, 0, sizeof *q);
    q->bits = 4;
    q->group = 0;   // not given: quant_flags_group picks what fits the model
    q->samples = 128;
    q->len = 512;
    q->rotate_seed = intact_quant_default_params().rotate_seed;
    q->abits = 16;
    q->a_clip = 1.0f;
}

int quant_flags_add(quant_flags *q, cli_opt *o, int n, int mode) {
    int for_quantize_cmd = mode == QF_QUANTIZE_CMD;
    q->mode = mode;
    const cli_opt add[QUANT_N_OPTS] = {
        {for_quantize_cmd ? "--method" : "--quant", NULL, ARG_STR, &q->method, "rtn|gptq|awq",
         for_quantize_cmd ? "quantization method (default rtn; none: only --rotate and/or --outtype)"
                          : "quantize the model in memory first", 0, 0},
        {"--bits", NULL, ARG_INT, &q->bits, "B", "bits per weight: 2, 3, 4 or 8 (default 4)", 2, 8},
        {"--group", NULL, ARG_INT, &q->group, "G", "group size: 32, 64 or 128 (default: the largest that divides the model's matrix widths)", 32, 128},
        {"--sym", NULL, ARG_FLAG, &q->sym, NULL, "symmetric groups (no zero point)", 0, 0},
        {"--format", NULL, ARG_STR, &q->format, "q4_0|q4_1|q8_0|q4_k|q6_k",
         "store ggml's type instead of intact's intN_gG (llama.cpp reads the file)", 0, 0},
        {"--clip-search", NULL, ARG_FLAG, &q->clip_search, NULL, "rtn: search each group's clip ratio", 0, 0},
        {"--act-order", NULL, ARG_FLAG, &q->act_order, NULL, "gptq: quantize columns by Hessian diagonal", 0, 0},
        {"--calib", NULL, ARG_STR, &q->calib, "FILE", "calibration text (gptq, awq)", 0, 0},
        {"--calib-samples", NULL, ARG_INT, &q->samples, "N", "calibration sequences (default 128)", 1, 1 << 16},
        {"--calib-len", NULL, ARG_INT, &q->len, "L", "tokens per sequence (default 512)", 2, 1 << 20},
        {"--quant-seed", NULL, ARG_U64, &q->seed, "S", "seed for the calibration windows (default 0)", 0, 0},
        {"--calib-no-bos", NULL, ARG_FLAG, &q->calib_no_bos, NULL,
         "windows are plain text slices, as the GPTQ/AWQ references take (default: BOS first)", 0, 0},
        {"--fake-quant", NULL, ARG_FLAG, &q->fake, NULL, "keep dequantized fp32 weights, not packed", 0, 0},
        {"--rotate", NULL, ARG_FLAG, &q->rotate, NULL,
         "QuaRot Hadamard rotation of the fp model first (same function; fp32 weights)", 0, 0},
        {"--rotate-seed", NULL, ARG_U64, &q->rotate_seed, "S", "seed of the rotation's random signs (default 24301)",
         0, 0},
        {"--abits", NULL, ARG_INT, &q->abits, "8|4|16", "quantize every layer linear's input per token (16: off)", 4, 16},
        {"--a-clip", NULL, ARG_FLOAT, &q->a_clip, "R", "activation clip ratio in (0, 1] (default 1)", 1e-3, 1},
        {"--a-fake", NULL, ARG_FLAG, &q->a_fake, NULL, "fake-quantized activations through float kernels", 0, 0},
        {"--exact-act", NULL, ARG_FLAG, &q->exact_act, NULL,
         "float activations (default: int8 per 32 inputs with integer weights, decode and prefill)", 0, 0},
        {"--int8-act-all", NULL, ARG_FLAG, &q->int8_act_all, NULL,
         "int8 activations at every batch size (now the default; kept for scripts)", 0, 0},
    };
    int count = for_quantize_cmd ? QUANT_N_OPTS - 5 : QUANT_N_OPTS;
    memcpy(o + n, add, (size_t)count * sizeof add[0]);
    return n + count;
}

// Whether option `name` is on the command line as an option (not as another option's value):
// argv walked with the very table cli_parse accepted it with, so values are skipped as it skips them.
// Needed for flags whose default is a valid value (--bits 4).
static int given(const cli_opt *opts, int n_opts, int argc, char **argv, const char *name) {
    for (int i = 0; i < argc; i++) {
        const cli_opt *o = NULL;
        int inline_val = 0;
        for (int k = 0; k < n_opts && !o; k++) {
            size_t ln = strlen(opts[k].lng);
            if (!strcmp(argv[i], opts[k].lng) || (opts[k].shrt && !strcmp(argv[i], opts[k].shrt)))
                o = &opts[k];
            else if (!strncmp(argv[i], opts[k].lng, ln) && argv[i][ln] == '=' &&
                     (opts[k].kind & ARG_KIND_MASK) != ARG_FLAG)
                o = &opts[k], inline_val = 1;
        }
        if (!o) continue;
        if (!strcmp(o->lng, name)) return 1;
        if ((o->kind & ARG_KIND_MASK) != ARG_FLAG && !inline_val) i++;
    }
    return 0;
}

int quant_flags_check(const char *cmd, const quant_flags *q, const cli_opt *opts, int n_opts, int argc,
                      char **argv) {
    const char *qflag = q->mode == QF_QUANTIZE_CMD ? "--method" : "--quant";
    const char *m = q->method ? q->method : q->mode == QF_QUANTIZE_CMD ? "rtn" : NULL;
    if (m && strcmp(m, "rtn") && strcmp(m, "gptq") && strcmp(m, "awq") && strcmp(m, "none"))
        return cli_flag_error(cmd, "unknown %s method '%s' (rtn, gptq, awq; none with --rotate)", qflag, m);
    int none = m && !strcmp(m, "none"), rtn = m && !strcmp(m, "rtn"), gptq = m && !strcmp(m, "gptq");
    if (none && !q->rotate && q->mode != QF_QUANTIZE_CMD)   // quantize: --outtype makes none useful
        return cli_flag_error(cmd, "%s none does nothing without %s", qflag, "--rotate");
    // Weight-format flags need a method that quantizes.
    static const char *const fmt[] = {"--bits", "--group", "--sym", "--fake-quant", "--clip-search", "--act-order",
                                      "--format"};
    for (int i = 0; i < 7; i++) {
        if (!given(opts, n_opts, argc, argv, fmt[i])) continue;
        if (!m) return cli_flag_error(cmd, "%s needs %s METHOD (it has no effect without quantization)", fmt[i], qflag);
        if (none) return cli_flag_error(cmd, "%s has no effect with %s none", fmt[i], qflag);
    }
    if (q->format) {
        if (qgrid_ggml_type(q->format) < 0)
            return cli_flag_error(cmd, "unknown %s '%s' (q4_0, q4_1, q8_0, q4_k, q6_k)", "--format", q->format);
        for (int i = 0; i < 3; i++)
            if (given(opts, n_opts, argc, argv, fmt[i]))
                return cli_flag_error(cmd, "%s and %s exclude each other (the ggml type fixes bits and blocks)", fmt[i],
                                      "--format");
    }
    if (q->clip_search && !rtn) return cli_flag_error(cmd, "%s is an rtn option, not %s", "--clip-search", m);
    if (q->act_order && !gptq) return cli_flag_error(cmd, "%s is a gptq option, not %s", "--act-order", m);
    if (q->bits != 2 && q->bits != 3 && q->bits != 4 && q->bits != 8) {
        char b[16];
        snprintf(b, sizeof b, "%d", q->bits);
        return cli_flag_error(cmd, "%s is 2, 3, 4 or 8, not %s", "--bits", b);
    }
    if (q->group != 0 && q->group != 32 && q->group != 64 && q->group != 128) {
        char g[16];
        snprintf(g, sizeof g, "%d", q->group);
        return cli_flag_error(cmd, "%s is 32, 64 or 128, not %s", "--group", g);
    }
    // Calibration: only gptq and awq calibrate. `ikv calibrate` reads --calib itself, whatever the method.
    static const char *const cal[] = {"--calib", "--calib-samples", "--calib-len", "--quant-seed", "--calib-no-bos"};
    for (int i = q->mode == QF_CALIB_CMD ? 1 : 0; i < 5; i++) {
        if (!given(opts, n_opts, argc, argv, cal[i])) continue;
        if (!m) return cli_flag_error(cmd, "%s needs %s gptq|awq", cal[i], qflag);
        if (none || rtn) return cli_flag_error(cmd, "%s is only used by gptq and awq (%s does not calibrate)", cal[i], m);
    }
    if (m && !none && !rtn && !q->calib) return cli_flag_error(cmd, "%s %s needs calibration text (--calib FILE)", qflag, m);
    if (!q->rotate && given(opts, n_opts, argc, argv, "--rotate-seed"))
        return cli_flag_error(cmd, "%s needs %s", "--rotate-seed", "--rotate");
    // Activation quantization: 16 bits is off, so its options would be ignored.
    if (q->mode != QF_QUANTIZE_CMD && q->abits == 16) {
        if (given(opts, n_opts, argc, argv, "--a-clip")) return cli_flag_error(cmd, "%s needs %s 8 or 4", "--a-clip", "--abits");
        if (q->a_fake) return cli_flag_error(cmd, "%s needs %s 8 or 4", "--a-fake", "--abits");
    }
    if (q->exact_act && q->int8_act_all) return cli_flag_error(cmd, "%s conflicts with %s", "--exact-act", "--int8-act-all");
    if (q->abits != 16 && (q->exact_act || q->int8_act_all))
        return cli_flag_error(cmd, "%s has no effect with %s 8 or 4", q->exact_act ? "--exact-act" : "--int8-act-all", "--abits");
    return 0;
}

static void progress(void *user, int done, int total) {
    fprintf(stderr, "\r%s: layer %d/%d", (const char *)user, done, total);
    if (done == total) fputc('\n', stderr);
    fflush(stderr);
}

// Groups must divide a matrix's input width, else the matrix stays in its stored type. The default
// takes the largest of 128/64/32 that divides both dim (attention, gate/up inputs) and hidden_dim
// (down input), else the largest that divides dim: g128 on a model of widths 384/1024, g64 on
// stories260K (64/172: its ffn_down cannot be grouped at all and stays fp32).
int quant_flags_group(const quant_flags *q, const intact_model *m) {
    if (q->group) return q->group;
    intact_model_info in;
    intact_model_get_info(m, &in);
    for (int g = 128; g >= 32; g /= 2)
        if (in.dim % g == 0 && in.hidden_dim % g == 0) return g;
    for (int g = 128; g >= 32; g /= 2)
        if (in.dim % g == 0) return g;
    return 32;
}

int quant_flags_apply(const char *cmd, const quant_flags *q, intact_model *m, int n_threads, int quiet,
                      intact_quant_report *rep_out) {
    if (q->abits != 16 || q->a_fake || q->a_clip != 1.0f) {
        intact_act_quant a = {q->abits, q->a_clip, q->a_fake};
        intact_error e = {0, ""};
        if (intact_model_set_act_quant(m, &a, &e) != 0) {
            fprintf(stderr, "intact %s: %s\n", cmd, e.msg);
            return -1;
        }
    }
    if (q->exact_act || q->int8_act_all) {
        intact_error e = {0, ""};
        if (intact_model_set_decode_act(m, q->exact_act ? INTACT_DECODE_ACT_EXACT : INTACT_DECODE_ACT_INT8_ALL, &e) != 0) {
            fprintf(stderr, "intact %s: %s\n", cmd, e.msg);
            return -1;
        }
    }
    if (!q->method && !q->rotate) return 0;
    intact_quant_params p = intact_quant_default_params();
    p.method = q->method && strcmp(q->method, "none") != 0 ? q->method : NULL;  // NULL: rotate only
    if (!p.method && !q->rotate) {   // quant_flags_check reports it as a usage error first
        fprintf(stderr, "intact %s: --quant none does nothing without --rotate\n", cmd);
        return -1;
    }
    p.rotate = q->rotate;
    p.rotate_seed = q->rotate_seed;
    p.bits = q->bits;
    p.group = quant_flags_group(q, m);
    p.sym = q->sym;
    p.format = q->format;
    p.output_type = q->output_type;
    p.embd_type = q->embd_type;
    p.clip_search = q->clip_search;
    p.act_order = q->act_order;
    p.calib_samples = q->samples;
    p.calib_no_bos = q->calib_no_bos;
    p.calib_tokens = q->len;
    p.seed = q->seed;
    p.fake = q->fake;
    p.n_threads = n_threads;
    char label[64];
    if (p.method && q->format)
        snprintf(label, sizeof label, "%s%s %s", q->rotate ? "rotate + " : "", p.method, q->format);
    else if (p.method)
        snprintf(label, sizeof label, "%s%s w%d g%d", q->rotate ? "rotate + " : "", p.method, q->bits, p.group);
    else
        snprintf(label, sizeof label, "rotate");
    p.progress = quiet ? NULL : progress;
    p.progress_user = label;
    char *text = NULL;
    if (q->calib) {
        text = cli_read_file(cmd, q->calib, &p.calib_len);
        if (!text) return -1;
        p.calib_text = text;
    }
    intact_quant_report rep;
    intact_error err = {0, ""};
    int rc = intact_model_quantize(m, &p, &rep, &err);
    free(text);
    if (rc != 0) {
        fprintf(stderr, "intact %s: %s\n", cmd, err.msg);
        return -1;
    }
    // A format that fits no matrix would leave the model as it was and call it quantized.
    if (p.method && rep.n_quantized == 0) {
        intact_model_info in;
        intact_model_get_info(m, &in);
        if (q->format)
            fprintf(stderr, "intact %s: %s blocks divide none of the model's matrix widths (dim %d, hidden %d): "
                    "nothing was quantized\n", cmd, q->format, in.dim, in.hidden_dim);
        else
            fprintf(stderr, "intact %s: group %d divides none of the model's matrix widths (dim %d, hidden %d): "
                    "nothing was quantized; give --group 32 or 64\n", cmd, p.group, in.dim, in.hidden_dim);
        return -1;
    }
    if (!quiet && !p.method)
        fprintf(stderr, "rotate (seed %llu): fp32 weights, %.2f MiB -> %.2f MiB of tensors, %.1f s\n",
                (unsigned long long)p.rotate_seed, rep.bytes_before / 1048576.0, rep.bytes_after / 1048576.0,
                rep.seconds);
    else if (!quiet)
        fprintf(stderr, "%s: %d matrices quantized (%.3f bits/weight incl. scales)%s%s, %.1f s\n", label,
                rep.n_quantized, rep.bits_per_weight, rep.n_kept ? "; kept in their stored type: " : "",
                rep.n_kept ? rep.kept : "", rep.seconds);
    if (!quiet && rep.n_fallback)
        fprintf(stderr, "%s: %d of them in %s: their rows are not a multiple of 256 (llama-quantize's fallback)\n",
                label, rep.n_fallback, rep.fallback_type);
    if (rep_out) *rep_out = rep;
    return 0;
}

int quant_flags_rotate_base(const char *cmd, const quant_flags *q, intact_model *base, int n_threads, int quiet) {
    if (!q->rotate) return 0;
    quant_flags r;
    quant_flags_init(&r);
    r.method = "none";
    r.rotate = 1;
    r.rotate_seed = q->rotate_seed;
    return quant_flags_apply(cmd, &r, base, n_threads, quiet, NULL);
}

int quant_flags_rewrites(const quant_flags *q) { return q->rotate || (q->method && strcmp(q->method, "none") != 0); }
