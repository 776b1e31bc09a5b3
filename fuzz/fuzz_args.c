// libFuzzer target for the command-line parser (src/cli/args.c, compiled into this target; it is
// not part of libintact.a). The input is split at NUL bytes into argv (at most 64 arguments) and
// parsed against a table shaped like the real commands' (every kind: strings, bounded ints and
// floats, flags, u64; short and long names; `--flag=value`). Byte 0 picks one of two tables.
// Invariants: cli_parse returns -1, 0 or 1; on 0 every number it stored is inside its declared range
// (floats finite) and every string points into argv.
// args.c is included below with stdout/stderr pointing at /dev/null, so the usage text and error
// messages it prints for every input stay out of the fuzzer's log (libFuzzer keeps the real stderr).
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static FILE *g_devnull;
#undef stdout
#undef stderr
#define stdout g_devnull
#define stderr g_devnull
#include "../src/cli/args.c"
#undef stdout
#undef stderr

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    g_devnull = fopen("/dev/null", "w");
    if (!g_devnull) abort();
    return 0;
}

enum { MAX_ARGS = 64 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int table = data[0] & 1;
    data++;
    size--;
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *argv[MAX_ARGS + 1];
    int argc = 0;
    for (size_t i = 0; i <= size && argc < MAX_ARGS;) {
        argv[argc++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    if (size == 0) argc = 0;
    argv[argc] = NULL;

    const char *model = NULL, *tok = NULL, *prompt = NULL, *out = NULL;
    int n_gen = 128, threads = 4, n_ctx = 0, stats = 0, bits = 4, group = 128, bos = 0;
    float temp = 0.8f, top_p = 0.95f, lr = 1e-3f;
    uint64_t seed = 7;
    const cli_opt run_opts[] = {
        {"--model", "-m", ARG_STR, &model, "PATH", "model", 0, 0},
        {"--tokenizer", "-z", ARG_STR, &tok, "PATH", "tokenizer", 0, 0},
        {"--prompt", "-p", ARG_STR, &prompt, "TEXT", "prompt", 0, 0},
        {"--n-predict", "-n", ARG_INT, &n_gen, "N", "tokens", 0, 1 << 24},
        {"--temp", NULL, ARG_FLOAT, &temp, "T", "temperature", 0, 100},
        {"--top-p", NULL, ARG_FLOAT, &top_p, "P", "nucleus", 0, 1},
        {"--seed", NULL, ARG_U64, &seed, "S", "seed", 0, 0},
        {"--threads", "-t", ARG_INT, &threads, "N", "threads", 1, 256},
        {"--ctx-size", "-c", ARG_INT, &n_ctx, "N", "context", 0, 1 << 20},
        {"--stats", NULL, ARG_FLAG, &stats, NULL, "stats", 0, 0},
    };
    const cli_opt quant_opts[] = {
        {"--model", "-m", ARG_STR, &model, "PATH", "model", 0, 0},
        {"--output", "-o", ARG_STR, &out, "PATH", "output", 0, 0},
        {"--bits", NULL, ARG_INT, &bits, "B", "bits", 2, 8},
        {"--group", NULL, ARG_INT, &group, "G", "group", 32, 128},
        {"--lr", NULL, ARG_FLOAT, &lr, "LR", "learning rate", 1e-8, 1},
        {"--bos", NULL, ARG_FLAG, &bos, NULL, "bos", 0, 0},
        {"--seed", NULL, ARG_U64, &seed, "S", "seed", 0, 0},
        {"--threads", "-t", ARG_INT, &threads, "N", "threads", 1, 256},
    };
    const cli_opt *opts = table ? quant_opts : run_opts;
    int n_opts = table ? (int)(sizeof quant_opts / sizeof *quant_opts) : (int)(sizeof run_opts / sizeof *run_opts);
    int rc = cli_parse(table ? "quantize" : "run", "[options]", opts, n_opts, argc, argv);
    if (rc < -1 || rc > 1) __builtin_trap();
    if (rc == 0) {
        for (int k = 0; k < n_opts; k++) {
            const cli_opt *o = &opts[k];
            if (o->kind == ARG_INT) {
                int v = *(int *)o->dst;
                if (v < o->lo || v > o->hi) __builtin_trap();
            } else if (o->kind == ARG_FLOAT) {
                float v = *(float *)o->dst;
                if (!isfinite(v) || (double)v < o->lo * (1 - 1e-6) || (double)v > o->hi * (1 + 1e-6)) __builtin_trap();
            } else if (o->kind == ARG_STR) {
                const char *s = *(const char **)o->dst;
                if (s && (s < buf || s > buf + size)) __builtin_trap();
            }
        }
    }
    free(buf);
    return 0;
}
