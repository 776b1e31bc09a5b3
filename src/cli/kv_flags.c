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
        {"--mikv", NULL, ARG_FLAG, &f->mikv, NULL, "MiKV: important tokens high precision, the rest low", 0, 0},
        {"--mikv-hi", NULL, ARG_FLOAT, &f->mikv_hi, "RATIO", "MiKV: share of tokens kept high (0..1]", 1e-6, 1},
        {"--mikv-hi-type", NULL, ARG_STR, &f->p.mikv_hi_type, "f16|int8", "MiKV high precision (default f16)", 0, 0},
        {"--mikv-lo-type", NULL, ARG_STR, &f->p.mikv_lo_type, "int2|int3|int4", "MiKV low precision (default int4)", 0, 0},
        {"--mikv-recent", NULL, ARG_INT, &f->mikv_recent, "R", "MiKV: newest tokens kept high (default 32)", 0, 1 << 20},
        {"--h2o", NULL, ARG_FLOAT, &f->h2o, "RATIO", "H2O baseline: evict instead of demote, same budget", 1e-6, 1},
        {"--h2o-recent", NULL, ARG_INT, &f->h2o_recent, "R", "H2O: newest tokens kept (default 32)", 0, 1 << 20},
        {"--kv-balance", NULL, ARG_FLAG, &f->p.balance, NULL, "outlier-aware keys: cache k*b, attend with q/b", 0, 0},
    };
    memcpy(o + n, add, sizeof add);
    return n + KV_N_OPTS;
}

const intact_kv_params *kv_flags_get(const char *cmd, kv_flags *f, int sink, int *bad) {
    *bad = 0;
    if (f->mikv != (f->mikv_hi > 0) || (f->mikv && f->h2o > 0)) {
        fprintf(stderr, "intact %s: MiKV needs --mikv with --mikv-hi RATIO; H2O is --h2o RATIO alone\n", cmd);
        *bad = 1;
        return NULL;
    }
    f->p.mikv_hi = f->mikv ? f->mikv_hi : 0;
    f->p.h2o = f->h2o;
    f->p.recent = f->mikv ? f->mikv_recent : f->h2o_recent;
    f->p.sink = (f->mikv || f->h2o > 0) && sink < 1 ? 1 : sink;   // [BOS] is a MiKV/H2O sink
    if (f->axis && strcmp(f->axis, "token") && strcmp(f->axis, "channel")) {
        fprintf(stderr, "intact %s: --kv-key-axis is 'token' or 'channel', not '%s'\n", cmd, f->axis);
        *bad = 1;
        return NULL;
    }
    f->p.key_per_channel = f->axis && !strcmp(f->axis, "channel");
    if (!f->p.k_type && !f->p.v_type && !f->p.group && !f->axis && !f->mikv && !(f->h2o > 0) && !f->p.balance)
        return NULL;
    return &f->p;
}
