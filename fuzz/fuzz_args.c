// libFuzzer target for the command line with the real option tables: the input is split at NUL
// bytes into argv and handed to cli_main (src/cli/commands.c), the program's own dispatch, so each
// command parses it with its own table (and the shared quantization / KV-cache flags) through the
// real cli_parse. cli_parse_only_hook stops a command right after a successful parse, before it
// opens anything, and checks what the parse stored: every number inside its declared range (floats
// finite), every flag 0 or 1, every required option set, every string given on the command line
// pointing into argv. Byte 0 picks the command; past the list, the input names the command itself
// (the dispatch and `ikv` subcommand parsing are fuzzed too). The CLI prints usage and errors for
// most inputs: -close_fd_mask=3 keeps them out of the log (libFuzzer and sanitizer reports keep a
// copy of stderr).
// fuzz-extra-src: src/cli/args.c src/cli/commands.c src/cli/common.c src/cli/cmd_*.c src/cli/kv_flags.c src/cli/quant_flags.c src/cli/sample_flags.c src/serve/*.c
// fuzz-libs: -lmicrohttpd -lcjson
// fuzz-flags: -close_fd_mask=3
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/common.h"

enum { MAX_ARGS = 64 };

// Command words byte 0 selects (the option tables themselves are the commands' own).
static const char *const COMMANDS[][2] = {
    {"info", NULL}, {"run", NULL}, {"tokenize", NULL}, {"ppl", NULL}, {"kld", NULL}, {"retrieval", NULL},
    {"bench", NULL}, {"quantize", NULL}, {"ikv", "build"}, {"ikv", "calibrate"}, {"ikv", "mse"}, {"analyze", NULL},
};
enum { N_COMMANDS = sizeof COMMANDS / sizeof COMMANDS[0] };

static const char *g_buf;   // the argv strings of the current input
static size_t g_size;
static int g_parsed;        // the hook ran for this input

// Option k was given on the command line: argv walked as a parser would (first matching table
// entry; a value-taking option consumes the next element unless it came as --long=value), so a
// value that looks like an option ("-p -n") is not taken for one.
static int given(const cli_opt *opts, int n_opts, int k, int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        int j = 0, inline_val = 0;
        for (; j < n_opts; j++) {
            size_t ln = strlen(opts[j].lng);
            if (!strcmp(argv[i], opts[j].lng) || (opts[j].shrt && !strcmp(argv[i], opts[j].shrt))) break;
            if (!strncmp(argv[i], opts[j].lng, ln) && argv[i][ln] == '=' &&
                (opts[j].kind & ARG_KIND_MASK) != ARG_FLAG) {
                inline_val = 1;
                break;
            }
        }
        if (j == k) return 1;
        if (j < n_opts && (opts[j].kind & ARG_KIND_MASK) != ARG_FLAG && !inline_val) i++;
    }
    return 0;
}

static void check_parse(const char *cmd, const cli_opt *opts, int n_opts, int argc, char **argv) {
    (void)cmd;
    g_parsed++;
    for (int k = 0; k < n_opts; k++) {
        const cli_opt *o = &opts[k];
        int kind = o->kind & ARG_KIND_MASK;
        if (kind == ARG_INT) {
            int v = *(int *)o->dst;
            // Defaults may sit outside the range (0 = "the model's"), values given may not.
            if (given(opts, n_opts, k, argc, argv) && (v < o->lo || v > o->hi)) __builtin_trap();
        } else if (kind == ARG_FLOAT) {
            float v = *(float *)o->dst;
            if (given(opts, n_opts, k, argc, argv) &&
                (!isfinite(v) || (double)v < o->lo * (1 - 1e-6) || (double)v > o->hi * (1 + 1e-6)))
                __builtin_trap();
        } else if (kind == ARG_FLAG) {
            int v = *(int *)o->dst;
            if (v != 0 && v != 1) __builtin_trap();
        } else if (kind == ARG_STR) {
            const char *s = *(const char **)o->dst;
            if ((o->kind & ARG_REQUIRED) && (!s || !*s)) __builtin_trap();
            if (s && given(opts, n_opts, k, argc, argv) && (s < g_buf || s > g_buf + g_size)) __builtin_trap();
        } else if (kind == ARG_STRS) {
            const cli_strs *l = o->dst;
            if (l->n < 0 || l->n > CLI_MAX_STRS) __builtin_trap();
            for (int i = 0; i < l->n; i++)
                if (l->v[i] < g_buf || l->v[i] > g_buf + g_size) __builtin_trap();
        } else if (kind != ARG_U64) {
            __builtin_trap();
        }
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    cli_parse_only_hook = check_parse;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    unsigned pick = data[0];
    data++;
    size--;
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    g_buf = buf;
    g_size = size;
    char *argv[MAX_ARGS + 3];
    int argc = 0;
    if (pick < N_COMMANDS) {
        argv[argc++] = (char *)COMMANDS[pick][0];
        if (COMMANDS[pick][1]) argv[argc++] = (char *)COMMANDS[pick][1];
    }
    for (size_t i = 0; size > 0 && i <= size && argc < MAX_ARGS;) {
        argv[argc++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    argv[argc] = NULL;
    g_parsed = 0;
    int rc = cli_main(argc, argv);
    if (rc < 0 || rc > 2) __builtin_trap();
    if (g_parsed && rc != 0) __builtin_trap();   // a parsed command must stop at the hook
    free(buf);
    return 0;
}
