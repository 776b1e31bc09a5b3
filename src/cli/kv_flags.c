#include "cli/kv_flags.h"

#include <stdio.h>
#include <string.h>

int kv_flags_add(kv_flags *f, cli_opt *o, int n) {
    memset(f, 0, sizeof *f);
    const cli_opt add[KV_N_OPTS] = {
        {"--kv-k", NULL, ARG_STR, &f->p.k_type, "TYPE", "key cache: f32 (default), f16, int8, int4, int3, int2", 0, 0},
        {"--kv-v", NULL, ARG_STR, &f->p.v_type, "TYPE", "value cache: same types", 0, 0},
        {"--kv-group", NULL, ARG_INT, &f->p.group, "G", "KV quantization group (default 32)", 8, 256},
        {"--kv-key-axis", NULL, ARG_STR, &f->axis, "token|channel", "quantize keys per token or per channel", 0, 0},
    };
    memcpy(o + n, add, sizeof add);
    return n + KV_N_OPTS;
}

const intact_kv_params *kv_flags_get(const char *cmd, kv_flags *f, int *bad) {
    *bad = 0;
    if (f->axis && strcmp(f->axis, "token") && strcmp(f->axis, "channel")) {
        fprintf(stderr, "intact %s: --kv-key-axis is 'token' or 'channel', not '%s'\n", cmd, f->axis);
        *bad = 1;
        return NULL;
    }
    f->p.key_per_channel = f->axis && !strcmp(f->axis, "channel");
    if (!f->p.k_type && !f->p.v_type && !f->p.group && !f->axis) return NULL;
    return &f->p;
}
