// `intact quantize`: RTN / GPTQ / AWQ weight quantization, and float-type conversion (--outtype), to
// a GGUF file. Everything that can be checked before the work is checked first (flag conflicts, the
// output's directory, the calibration text, the tokenizer, an already-quantized input), so a mistake
// costs a second, not a whole quantization.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/common.h"
#include "cli/quant_flags.h"
#include "quant/convert.h"
#include "quant/qgrid.h"

// Whether flag `name` is on the command line (as "--name" or "--name=value"): flags whose default is
// a valid value (--bits 4) can only be judged "given" this way.
static int given(int argc, char **argv, const char *name) {
    size_t n = strlen(name);
    for (int i = 1; i < argc; i++)
        if (!strncmp(argv[i], name, n) && (argv[i][n] == 0 || argv[i][n] == '=')) return 1;
    return 0;
}

// Flags that the chosen method ignores are usage errors, not silent no-ops. Returns the message or NULL.
static const char *flag_conflict(int argc, char **argv, const quant_flags *qf, const char *outtype,
                                 const char *output_type, const char *embd_type, char *buf, size_t cap) {
    const char *m = qf->method;
    int none = !strcmp(m, "none"), rtn = !strcmp(m, "rtn"), gptq = !strcmp(m, "gptq");
    static const char *const calib_flags[] = {"--calib", "--calib-samples", "--calib-len", "--quant-seed"};
    static const char *const fmt_flags[] = {"--bits", "--group", "--sym", "--fake-quant", "--clip-search",
                                            "--act-order", "--format", "--output-type", "--embd-type"};
    if (!none && !rtn && !gptq && strcmp(m, "awq"))
        return snprintf(buf, cap, "unknown method '%s' (rtn, gptq, awq, none)", m), buf;
    if (none && !qf->rotate && !outtype)
        return "--method none does nothing without --rotate or --outtype f32|f16|bf16";
    for (int i = 0; i < 4; i++)
        if ((none || rtn) && given(argc, argv, calib_flags[i]))
            return snprintf(buf, cap, "%s is only used by gptq and awq (method %s does not calibrate)", calib_flags[i],
                            m), buf;
    if (!none && !rtn && !qf->calib) return snprintf(buf, cap, "%s needs calibration text (--calib FILE)", m), buf;
    for (int i = 0; i < 9; i++)
        if (none && given(argc, argv, fmt_flags[i]))
            return snprintf(buf, cap, "%s has no effect with --method none", fmt_flags[i]), buf;
    if (qf->format && qgrid_ggml_type(qf->format) < 0)
        return snprintf(buf, cap, "unknown --format '%s' (q4_0, q4_1, q5_0, q8_0, q4_k, q6_k)", qf->format), buf;
    for (int i = 0; qf->format && i < 3; i++)
        if (given(argc, argv, fmt_flags[i]))
            return snprintf(buf, cap, "%s and --format exclude each other (the ggml type fixes bits and blocks)",
                            fmt_flags[i]), buf;
    const char *heads[2] = {output_type, embd_type}, *head_flag[2] = {"--output-type", "--embd-type"};
    for (int i = 0; i < 2; i++)
        if (heads[i] && qgrid_head_type(heads[i]) < 0)
            return snprintf(buf, cap, "unknown %s '%s' (f32, f16, bf16, q4_0, q4_1, q5_0, q8_0, q4_k, q6_k, "
                            "int8_g32, int4_g128, ...)",
                            head_flag[i], heads[i]), buf;
    if ((output_type || embd_type) && qf->fake)
        return snprintf(buf, cap, "%s stores a type; --fake-quant keeps fp32 weights", output_type ? "--output-type"
                                                                                                   : "--embd-type"), buf;
    if (qf->clip_search && !rtn) return snprintf(buf, cap, "--clip-search is an rtn option, not %s", m), buf;
    if (qf->act_order && !gptq) return snprintf(buf, cap, "--act-order is a gptq option, not %s", m), buf;
    if (given(argc, argv, "--rotate-seed") && !qf->rotate) return "--rotate-seed needs --rotate";
    if (outtype && quant_outtype_parse(outtype) < 0)
        return snprintf(buf, cap, "unknown --outtype '%s' (f32, f16, bf16)", outtype), buf;
    if (outtype && qf->fake)
        return "--fake-quant keeps exact fp32 dequantized weights; --outtype would round them";
    return NULL;
}

// Creates and removes a temporary file next to the output, exactly as the final write will, so an
// unwritable directory is reported before the work. 0 or -1 (message printed).
static int check_output(const char *out) {
    struct stat st;
    if (stat(out, &st) == 0 && S_ISDIR(st.st_mode)) {
        fprintf(stderr, "intact quantize: output '%s' is a directory\n", out);
        return -1;
    }
    size_t n = strlen(out);
    char *tmp = malloc(n + 12);
    if (!tmp) return -1;
    memcpy(tmp, out, n);
    memcpy(tmp + n, ".tmp.XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        fprintf(stderr, "intact quantize: cannot write '%s': %s\n", out, strerror(errno));
        free(tmp);
        return -1;
    }
    close(fd);
    unlink(tmp);
    free(tmp);
    return 0;
}

// The first layer matrix stored in a quantized (not f32/f16/bf16) type, or -1.
static int first_quantized(const intact_model *m, intact_tensor_info *ti) {
    for (int i = 0; i < intact_model_n_tensors(m); i++) {
        if (intact_model_tensor(m, i, ti) != 0 || ti->n_dims < 2) continue;
        if (strcmp(ti->type, "f32") && strcmp(ti->type, "f16") && strcmp(ti->type, "bf16")) return i;
    }
    return -1;
}

// Checks the model against the request before any work: tokenizer present, not already quantized,
// enough calibration text. 0, or the exit code.
static int check_model(const intact_model *m, const char *path, const quant_flags *qf, int allow_requantize,
                       const char *calib, size_t calib_len) {
    intact_model_info info;
    intact_model_get_info(m, &info);
    if (!strcmp(info.tokenizer, "none")) {
        // Without one the file loads but no text command can run it.
        if (!strcmp(info.format, "llama2c"))
            fprintf(stderr, "intact quantize: llama2.c input needs its tokenizer: -z tokenizer.bin\n");
        else
            fprintf(stderr, "intact quantize: '%s' has no tokenizer: pass one with -z tokenizer.bin\n", path);
        return 2;
    }
    // A k-quant needs rows that are whole super-blocks of 256; with none, every matrix would be a fallback.
    qgrid g;
    if (qf->format && qgrid_init(&g, qgrid_ggml_type(qf->format)) == 0 && info.dim % g.block &&
        info.hidden_dim % g.block) {
        fprintf(stderr, "intact quantize: --format %s needs rows that are a multiple of %d, and none of this "
                        "model's are (dim %d, hidden %d); use q4_0, q4_1, q5_0 or q8_0\n", qf->format, g.block, info.dim,
                info.hidden_dim);
        return 2;
    }
    intact_tensor_info ti;
    if (!allow_requantize && first_quantized(m, &ti) >= 0) {
        // As llama-quantize: quantizing quantized weights compounds two rounding errors.
        fprintf(stderr, "intact quantize: '%s' is already quantized (%s is %s); pass --allow-requantize to "
                        "quantize its dequantized weights anyway\n", path, ti.name, ti.type);
        return 1;
    }
    if (calib) {
        intact_error err = {0, ""};
        int n = intact_tokenize(m, calib, calib_len, 0, NULL, 0, &err);
        int need = qf->len < info.ctx_len ? qf->len : info.ctx_len;   // one window, as quant/calib.c cuts them
        if (n < 0) {
            fprintf(stderr, "intact quantize: calibration file '%s': %s\n", qf->calib, err.msg);
            return 1;
        }
        if (n < need) {
            fprintf(stderr, "intact quantize: calibration file '%s' has only %d tokens, need at least %d "
                            "(--calib-len %d, at most the model's context %d)\n", qf->calib, n, need, qf->len,
                    info.ctx_len);
            return 1;
        }
    }
    return 0;
}

// The output head's type when --output-type is not given. llama-quantize quantizes a separate head
// too (Q6_K; Q8_0 for a Q8_0 file), and so does intact: at TinyLlama's shape an F16 head is a fifth
// of what an int4 token reads, and int8_g32 costs KL 0.00003 on english-12m (docs/ggml.md). intN
// files take int8_g32, which intact's int8 GEMV reads faster than Q6_K (int4 TinyLlama decode
// 36 -> 39 tok/s, Q6_K 38); ggml-format files take llama-quantize's own choice so llama.cpp users
// get the file they expect. A tied head (the embedding) is left alone, as are --fake-quant, --method
// none and heads whose rows are not whole int8 groups. NULL: leave the head as stored.
static const char *default_output_type(const quant_flags *qf, const intact_model_info *info) {
    if (!strcmp(qf->method, "none") || qf->fake || info->tied_embeddings || info->dim % 32) return NULL;
    if (qf->format) return !strcmp(qf->format, "q8_0") ? "q8_0" : "q6_k";
    return "int8_g32";
}

// The stored type of the output head: output.weight's, or the embedding's when tied.
static const char *head_type(const intact_model *m) {
    intact_tensor_info ti;
    const char *embd = "?";
    for (int i = 0; i < intact_model_n_tensors(m); i++) {
        if (intact_model_tensor(m, i, &ti) != 0) continue;
        if (!strcmp(ti.name, "output.weight")) return ti.type;
        if (!strcmp(ti.name, "token_embd.weight")) embd = ti.type;
    }
    return embd;
}

int cmd_quantize(int argc, char **argv) {
    const char *model = NULL, *tok = NULL, *out = NULL, *outtype = NULL, *output_type = NULL, *embd_type = NULL;
    int threads = cli_default_threads(), json = 0, allow_requantize = 0;
    quant_flags qf;
    quant_flags_init(&qf);
    cli_opt opts[9 + QUANT_N_OPTS] = {
        {"--model", "-m", ARG_STR | ARG_REQUIRED, &model, "PATH", "full-precision model (GGUF or llama2.c .bin)", 0, 0},
        {"--tokenizer", "-z", ARG_STR, &tok, "PATH", "llama2.c tokenizer.bin (written into the output)", 0, 0},
        {"--output", "-o", ARG_STR, &out, "PATH", "output GGUF file", 0, 0},
        {"--outtype", NULL, ARG_STR, &outtype, "f32|f16|bf16",
         "type of the matrices left in float (all of them with --method none; default: as stored)", 0, 0},
        {"--output-type", NULL, ARG_STR, &output_type, "TYPE",
         "store the output head as f16|q8_0|q6_k|int8_g32|int4_g128|... (RTN, as llama-quantize; a tied head is untied; "
         "default: int8_g32, q6_k with --format (q8_0 for q8_0), a tied head stays tied; f16 keeps it)", 0, 0},
        {"--embd-type", NULL, ARG_STR, &embd_type, "TYPE", "store the token embedding as f16|q8_0|q4_0|int8_g32|... (RTN)", 0, 0},
        {"--allow-requantize", NULL, ARG_FLAG, &allow_requantize, NULL,
         "quantize an already-quantized input (its dequantized weights)", 0, 0},
        {"--threads", "-t", ARG_INT, &threads, "N", "threads (default: online CPUs, at most 16)", 1, 256},
        {"--json", NULL, ARG_FLAG, &json, NULL, "print a JSON summary", 0, 0},
    };
    int n_opts = quant_flags_add(&qf, opts, 9, 1);
    int rc = cli_parse("quantize",
                       "-m IN -o OUT.gguf --method rtn|gptq|awq|none (--bits B --group G [--sym] | --format q4_0|q4_1|"
                       "q8_0|q4_k|q6_k) [--calib FILE] [--outtype f32|f16|bf16] [--output-type T] [--embd-type T]",
                       opts, n_opts, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    if (!model) {
        fprintf(stderr, "intact quantize: no model given (-m MODEL)\n");
        return 2;
    }
    if (!out) {
        fprintf(stderr, "intact quantize: no output given (-o OUT.gguf)\n");
        return 2;
    }
    if (!qf.method) qf.method = "rtn";
    char msg[160];
    const char *conflict = flag_conflict(argc, argv, &qf, outtype, output_type, embd_type, msg, sizeof msg);
    if (conflict) {
        fprintf(stderr, "intact quantize: %s\n", conflict);
        return 2;
    }
    int none = !strcmp(qf.method, "none");
    if (check_output(out) != 0) return 1;
    size_t calib_len = 0;
    char *calib = NULL;
    if (qf.calib) {
        if (!(calib = cli_read_file("quantize", qf.calib, &calib_len))) return 1;
        if (!calib_len) {
            fprintf(stderr, "intact quantize: calibration file '%s' is empty\n", qf.calib);
            free(calib);
            return 1;
        }
    }
    intact_model *m = cli_load_model("quantize", model, tok);
    if (!m) {
        free(calib);
        return 1;
    }
    rc = check_model(m, model, &qf, allow_requantize, calib, calib_len);
    free(calib);
    if (rc) {
        intact_model_free(m);
        return rc;
    }
    intact_quant_report rep;
    memset(&rep, 0, sizeof rep);
    intact_model_info info;
    intact_model_get_info(m, &info);
    rep.bytes_before = rep.bytes_after = info.weight_bytes;
    intact_error err = {0, ""};
    intact_tensor_info ti;
    if (allow_requantize && first_quantized(m, &ti) >= 0 &&
        quant_convert_model(m, quant_outtype_parse("f32"), 1, NULL, &err) != 0) {
        fprintf(stderr, "intact quantize: %s\n", err.msg);
        intact_model_free(m);
        return 1;
    }
    const char *head_default = output_type ? NULL : default_output_type(&qf, &info);
    if (head_default) output_type = head_default;
    // --method none without --rotate converts only; quant_flags_apply would refuse it.
    qf.output_type = output_type;
    qf.embd_type = embd_type;
    if ((!none || qf.rotate) && quant_flags_apply("quantize", &qf, m, threads, 0, &rep) != 0) {
        intact_model_free(m);
        return 1;
    }
    // A head whose rows are not whole super-blocks took llama-quantize's fallback: say so.
    const char *asked[2] = {head_default ? NULL : output_type, embd_type}, *tname[2] = {"output.weight", "token_embd.weight"};
    for (int h = 0; h < 2; h++)
        for (int i = 0; asked[h] && i < intact_model_n_tensors(m); i++)
            if (intact_model_tensor(m, i, &ti) == 0 && !strcmp(ti.name, tname[h]) && strcasecmp(ti.type, asked[h]))
                fprintf(stderr, "intact quantize: %s is stored as %s: its rows of %lld are not a multiple of 256\n",
                        tname[h], ti.type, (long long)ti.ne[0]);
    int n_converted = 0;
    if (outtype && quant_convert_model(m, quant_outtype_parse(outtype), 0, &n_converted, &err) != 0) {
        fprintf(stderr, "intact quantize: %s\n", err.msg);
        intact_model_free(m);
        return 1;
    }
    intact_model_get_info(m, &info);
    rep.bytes_after = info.weight_bytes;
    if (intact_model_save(m, out, &err) != 0) {
        fprintf(stderr, "intact quantize: %s\n", err.msg);
        intact_model_free(m);
        return 1;
    }
    struct stat st;
    long long file_bytes = stat(out, &st) == 0 ? (long long)st.st_size : -1;
    if (json) {
        printf("{\"method\":\"%s\",\"format\":", qf.method);
        if (qf.format) cli_json_str(stdout, qf.format);
        else printf("null");
        printf(",\"bits\":%d,\"group\":%d,\"sym\":%s,\"outtype\":", qf.bits, quant_flags_group(&qf, m),
               qf.sym ? "true" : "false");
        if (outtype) cli_json_str(stdout, outtype);
        else printf("null");
        printf(",\"converted\":%d,\"seconds\":%.3f,\"bytes_in\":%llu,\"bytes_out\":%llu,\"file_bytes\":%lld,"
               "\"bits_per_weight\":%.4f,\"quantized\":%d,\"fallback\":%d,\"kept\":",
               n_converted, rep.seconds, (unsigned long long)rep.bytes_before, (unsigned long long)rep.bytes_after,
               file_bytes, rep.bits_per_weight, rep.n_quantized, rep.n_fallback);
        cli_json_str(stdout, rep.kept);
        printf(",\"output_type\":");
        cli_json_str(stdout, head_type(m));
        printf("}\n");
    } else if (none) {
        printf("wrote %s: %.2f MiB -> %.2f MiB of tensors (%d matrices converted to %s)\n", out,
               rep.bytes_before / 1048576.0, rep.bytes_after / 1048576.0, n_converted, outtype ? outtype : "-");
    } else {
        printf("wrote %s: %.2f MiB -> %.2f MiB of tensors (%.3f bits/weight in quantized matrices; output head %s)\n",
               out, rep.bytes_before / 1048576.0, rep.bytes_after / 1048576.0, rep.bits_per_weight, head_type(m));
    }
    intact_model_free(m);
    return 0;
}
