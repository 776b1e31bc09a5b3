// The command table and dispatch of the intact program, apart from main() so that
// fuzz/fuzz_args.c drives exactly this dispatch and every command's own option table.
#include <stdio.h>
#include <string.h>

#include "cli/common.h"

static const struct { const char *name; int (*fn)(int, char **); const char *what; } commands[] = {
    {"info", cmd_info, "architecture, shapes, tensor types, tokenizer, parameter count"},
    {"run", cmd_run, "generate text from a prompt"},
    {"chat", cmd_chat, "interactive multi-turn chat (/reset, /save FILE, /load FILE)"},
    {"serve", cmd_serve, "OpenAI-compatible HTTP server; the system prompt is an IntactKV prefix"},
    {"tokenize", cmd_tokenize, "print the token ids of a text as a JSON array"},
    {"ppl", cmd_ppl, "perplexity of a text file"},
    {"kld", cmd_kld, "KL divergence of a model against a base model"},
    {"retrieval", cmd_retrieval, "LongEval line retrieval accuracy (for chat models)"},
    {"bench", cmd_bench, "prefill and decode speed, memory bandwidth, peak RSS"},
    {"quantize", cmd_quantize, "RTN / GPTQ / AWQ weight quantization to GGUF"},
    {"ikv", cmd_ikv, "IntactKV prefixes: build, calibrate, mse"},
    {"analyze", cmd_analyze, "pivot tokens and attention sinks of a text (report, JSON, SVG)"},
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

static void usage(FILE *f) {
    fprintf(f, "intact %s — accurate low-bit LLM inference\n\nusage: intact COMMAND [options]\n\ncommands:\n",
            INTACT_VERSION);
    for (int i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].what);
    fprintf(f, "\n'intact COMMAND --help' shows the options of a command; a FILE argument '-' is standard input.\n");
}

int cli_main(int argc, char **argv) {
    if (argc < 1) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[0], "--version") == 0) {
        printf("intact %s\n", INTACT_VERSION);
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(argv[0], commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "intact: unknown command '%s' (see 'intact --help')\n", argv[0]);
    return 2;
}
