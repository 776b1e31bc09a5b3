// `intact quantize`: RTN / GPTQ / AWQ weight quantization to a GGUF file.
#include <stdio.h>
#include <sys/stat.h>

#include "cli/args.h"
#include "cli/common.h"
#include "cli/quant_flags.h"

int cmd_quantize(int argc, char **argv) {
    const char *model = NULL, *tok = NULL, *out = NULL;
    int threads = cli_default_threads(), json = 0;
    quant_flags qf;
    quant_flags_init(&qf);
    cli_opt opts[5 + QUANT_N_OPTS] = {
        {"--model", "-m", ARG_STR, &model, "PATH", "full-precision model (GGUF or llama2.c .bin)", 0, 0},
        {"--tokenizer", "-z", ARG_STR, &tok, "PATH", "llama2.c tokenizer.bin (written into the output)", 0, 0},
        {"--output", "-o", ARG_STR, &out, "PATH", "output GGUF file", 0, 0},
        {"--threads", "-t", ARG_INT, &threads, "N", "threads (default: online CPUs, at most 16)", 1, 256},
        {"--json", NULL, ARG_FLAG, &json, NULL, "print a JSON summary", 0, 0},
    };
    int n_opts = quant_flags_add(&qf, opts, 5, 1);
    int rc = cli_parse("quantize", "-m IN -o OUT.gguf --method rtn|gptq|awq --bits B --group G [--sym] [--calib FILE]",
                       opts, n_opts, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    if (!out) {
        fprintf(stderr, "intact quantize: no output given (-o OUT.gguf)\n");
        return 2;
    }
    if (!qf.method) qf.method = "rtn";
    intact_model *m = cli_load_model("quantize", model, tok);
    if (!m) return 1;
    intact_quant_report rep;
    if (quant_flags_apply("quantize", &qf, m, threads, 0, &rep) != 0) {
        intact_model_free(m);
        return 1;
    }
    intact_error err = {0, ""};
    if (intact_model_save(m, out, &err) != 0) {
        fprintf(stderr, "intact quantize: %s\n", err.msg);
        intact_model_free(m);
        return 1;
    }
    struct stat st;
    long long file_bytes = stat(out, &st) == 0 ? (long long)st.st_size : -1;
    if (json) {
        printf("{\"method\":\"%s\",\"bits\":%d,\"group\":%d,\"sym\":%s,\"seconds\":%.3f,\"bytes_in\":%llu,"
               "\"bytes_out\":%llu,\"file_bytes\":%lld,\"bits_per_weight\":%.4f,\"quantized\":%d,\"kept\":",
               qf.method, qf.bits, qf.group, qf.sym ? "true" : "false", rep.seconds,
               (unsigned long long)rep.bytes_before, (unsigned long long)rep.bytes_after, file_bytes,
               rep.bits_per_weight, rep.n_quantized);
        cli_json_str(stdout, rep.kept);
        printf("}\n");
    } else {
        printf("wrote %s: %.2f MiB -> %.2f MiB of tensors (%.3f bits/weight in quantized matrices)\n", out,
               rep.bytes_before / 1048576.0, rep.bytes_after / 1048576.0, rep.bits_per_weight);
    }
    intact_model_free(m);
    return 0;
}
