// Strict command-line parsing for the subcommands: each declares its flags in a table; anything
// not in the table, a missing value or a malformed number is an error with a one-line message.
#ifndef IT_CLI_ARGS_H
#define IT_CLI_ARGS_H

#include <stdint.h>

enum arg_kind { ARG_STR, ARG_INT, ARG_FLOAT, ARG_FLAG, ARG_U64, ARG_STRS };
// ARG_STRS: a repeatable string flag; dst is a cli_strs collecting every value in order.
enum { CLI_MAX_STRS = 16 };
typedef struct cli_strs { const char *v[CLI_MAX_STRS]; int n; } cli_strs;
// Or'ed into a kind: the option must be given (checked after parsing; a usage error, exit 2).
enum { ARG_KIND_MASK = 0xff, ARG_REQUIRED = 0x100 };

typedef struct cli_opt {
    const char *lng;     // "--temp"
    const char *shrt;    // "-t" or NULL
    int kind;            // enum arg_kind, optionally | ARG_REQUIRED (strings only)
    void *dst;           // const char **, int *, float *, int * (flag), uint64_t *, cli_strs *
    const char *meta;    // "N", "PATH", ... (NULL for flags)
    const char *help;
    double lo, hi;       // accepted range for numbers (inclusive)
} cli_opt;

// Returns 0 on success, 1 if --help was printed, -1 on error (message printed to stderr).
int cli_parse(const char *cmd, const char *synopsis, const cli_opt *opts, int n_opts, int argc, char **argv);

// Parse-only mode, for fuzz/fuzz_args.c: when set, a successful cli_parse calls it with the
// command's own table (so it can check what was stored) and then returns 1 as --help does, which
// makes every command return before it opens a file. NULL (the default) in the real program.
extern void (*cli_parse_only_hook)(const char *cmd, const cli_opt *opts, int n_opts, int argc, char **argv);
void cli_usage(const char *cmd, const char *synopsis, const cli_opt *opts, int n_opts, void *stream);

#endif
