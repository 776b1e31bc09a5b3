#include "cli/sample_flags.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int sample_flags_add(sample_flags *f, cli_opt *o, int n) {
    memset(f, 0, sizeof *f);
    f->p = intact_sampler_default_params();
    f->p.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    const cli_opt add[SAMPLE_N_OPTS] = {
        {"--temp", NULL, ARG_FLOAT, &f->p.temp, "T", "temperature; 0 = greedy (default 0.8)", 0, 100},
        {"--top-p", NULL, ARG_FLOAT, &f->p.top_p, "P", "nucleus sampling threshold (default 0.95; 1 = off)", 0, 1},
        {"--top-k", NULL, ARG_INT, &f->p.top_k, "K", "keep the K most probable tokens (default 0 = off)", 0, 1 << 24},
        {"--min-p", NULL, ARG_FLOAT, &f->p.min_p, "P", "drop tokens below P x the top probability (default 0 = off)", 0, 1},
        {"--repeat-penalty", NULL, ARG_FLOAT, &f->p.repeat_penalty, "R",
         "penalize repeated tokens: logit/R if positive, logit*R if not (default 1 = off)", 1e-3, 100},
        {"--repeat-last-n", NULL, ARG_INT, &f->p.repeat_last_n, "N", "tokens the penalty looks back (default 64)", 0,
         INTACT_SAMPLER_MAX_LAST_N},
        {"--seed", NULL, ARG_U64, &f->p.seed, "S", "random seed (default: from the clock)", 0, 0},
        {"--stop", NULL, ARG_STRS, &f->stops, "TEXT", "stop where the output contains TEXT (repeatable)", 0, 0},
    };
    memcpy(o + n, add, sizeof add);
    return n + SAMPLE_N_OPTS;
}

int sample_flags_init(const char *cmd, const sample_flags *f, intact_sampler *s) {
    intact_error err = {0, ""};
    if (intact_sampler_init_params(s, &f->p, &err) != 0) {
        fprintf(stderr, "intact %s: %s\n", cmd, err.msg);
        return -1;
    }
    for (int i = 0; i < f->stops.n; i++)
        if (!f->stops.v[i][0]) {
            fprintf(stderr, "intact %s: --stop needs a non-empty text\n", cmd);
            return -1;
        }
    return 0;
}
