// Sampling flags shared by run, chat and serve: --temp --top-p --top-k --min-p --repeat-penalty
// --repeat-last-n --seed --stop (repeatable).
#ifndef IT_CLI_SAMPLE_FLAGS_H
#define IT_CLI_SAMPLE_FLAGS_H

#include "cli/args.h"
#include "intact.h"

enum { SAMPLE_N_OPTS = 8 };

typedef struct sample_flags {
    intact_sampler_params p;   // seed defaults to the clock
    cli_strs stops;
} sample_flags;

int sample_flags_add(sample_flags *f, cli_opt *opts, int n);
// After parsing: the values the flag ranges let through but the sampler refuses (top-p 0). One
// stderr line and -1 (a usage error), else 0 with s initialized.
int sample_flags_init(const char *cmd, const sample_flags *f, intact_sampler *s);

#endif
