// Helpers shared by the subcommands: model loading with error reporting, file reading, JSON.
#ifndef IT_CLI_COMMON_H
#define IT_CLI_COMMON_H

#include <stddef.h>
#include <stdio.h>
#include "intact.h"

intact_model *cli_load_model(const char *cmd, const char *path, const char *tokenizer);
// How the commands that load a model for speed (run, chat, serve, bench) bring its weights in:
// --no-mmap reads the file into anonymous huge-page memory (INTACT_LOAD_NO_MMAP), --mmap maps it;
// with neither, the file is read in when it is at most half of the memory available
// (MemAvailable), else mapped (run and bench also map it when they rewrite the weights in memory:
// quant_flags_rewrites). Why read by default: decode streams every weight once per token,
// and a mapping streams whatever physical pages the page cache holds. On the 2-vCPU Xeon VM of
// docs/speed.md an int4 file cached a day earlier decoded at 34.9-35.0 tok/s mapped and 40.5-40.8
// read in, a fresh copy of it 39.5-40.5 mapped. (llama.cpp on that CPU repacks its weights into
// its own buffer, so it never streams the page cache either.) Mapping keeps the page cache shared
// between processes and lets a model larger than memory run, slowly. CLI_OPT_LOAD_MODE (needs
// cli/args.h) is the two option entries; `copied` is set by cli_load_model_ex.
typedef struct cli_load_mode { int no_mmap, mmap, copied; } cli_load_mode;
intact_model *cli_load_model_ex(const char *cmd, const char *path, const char *tokenizer, cli_load_mode *lm);
#define CLI_OPT_LOAD_MODE(lm)                                                                             \
    {"--no-mmap", NULL, ARG_FLAG, &(lm)->no_mmap, NULL,                                                   \
     "read the model into memory (huge pages where the kernel allows) instead of mapping it (the "       \
     "default when it fits in half the available memory): decode does not depend on where the page "     \
     "cache put the file", 0, 0},                                                                       \
    {"--mmap", NULL, ARG_FLAG, &(lm)->mmap, NULL,                                                        \
     "map the model file instead of reading it in (llama.cpp's default): pages shared between "          \
     "processes, models larger than memory run; decode streams the page cache's pages", 0, 0}
// Reads a whole text file, or standard input when path is "-" (a file named "-" is "./-"), at
// most 1 GiB, NUL-terminated. Prints one line naming the cause and returns NULL when the path
// cannot be opened or read (strerror: missing, permission, a directory), when the input is empty
// or when it holds a NUL byte (not text). Standard input is read once; every "-" gets that text.
char *cli_read_file(const char *cmd, const char *path, size_t *len);
// "512 bytes", "4.85 MiB", "12.55 GiB": the largest binary unit that leaves a value >= 1.
const char *cli_human_bytes(char *buf, size_t cap, double bytes);
// -c beyond the model's training context is allowed (as in llama.cpp: RoPE runs on, quality past
// the trained length is the user's risk); this prints the one-line warning on stderr.
void cli_warn_ctx(const char *cmd, int n_ctx, int train_ctx);
// "intact CMD: " + msg formatted with a and b (both "%s"), one line on stderr; returns -1 so that
// flag checks can `return cli_flag_error(...)`.
int cli_flag_error(const char *cmd, const char *msg, const char *a, const char *b);
void cli_json_str(FILE *f, const char *s);
void cli_progress(void *user, int done, int total);   // "\r<what>: done/total" on stderr
double cli_peak_rss_mb(void);
// Online CPUs, capped at 16: what -t defaults to, as in llama.cpp.
int cli_default_threads(void);

// Loads and validates an IntactKV prefix for m; prints the error and returns NULL on failure.
intact_prefix *cli_load_prefix(const char *cmd, const char *path, const intact_model *m);
// The IntactKV prefix of a system prompt (chat, serve): `text` (already in the chat template's
// system form) tokenized as a prompt of m and run through the full-precision model at fp_path
// (NULL: m itself). Prints one line and returns NULL on failure.
intact_prefix *cli_system_prefix(const char *cmd, intact_model *m, const char *fp_path, const char *tokenizer,
                                 const char *text);

// The command table (src/cli/commands.c): `intact ARGS...` without the program name, i.e. argv[0]
// is the command. Returns the exit status (0 ok, 1 failure, 2 usage error).
int cli_main(int argc, char **argv);

int cmd_info(int argc, char **argv);
int cmd_ikv(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_ppl(int argc, char **argv);
int cmd_kld(int argc, char **argv);
int cmd_retrieval(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_analyze(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_chat(int argc, char **argv);

#endif
