// Helpers shared by the subcommands: model loading with error reporting, file reading, JSON.
#ifndef IT_CLI_COMMON_H
#define IT_CLI_COMMON_H

#include <stddef.h>
#include <stdio.h>
#include "intact.h"

intact_model *cli_load_model(const char *cmd, const char *path, const char *tokenizer);
// Reads a whole file (at most 1 GiB); prints an error and returns NULL on failure.
char *cli_read_file(const char *cmd, const char *path, size_t *len);
void cli_json_str(FILE *f, const char *s);
void cli_progress(void *user, int done, int total);   // "\r<what>: done/total" on stderr
double cli_peak_rss_mb(void);
// Online CPUs, capped at 16: what -t defaults to, as in llama.cpp.
int cli_default_threads(void);

// Loads and validates an IntactKV prefix for m; prints the error and returns NULL on failure.
intact_prefix *cli_load_prefix(const char *cmd, const char *path, const intact_model *m);

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

#endif
