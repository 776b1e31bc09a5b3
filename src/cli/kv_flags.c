#include "cli/kv_flags.h"

#include <stdio.h>
#include <string.h>

#include "cli/common.h"

int kv_flags_add(kv_flags *f, cli_opt *o, int n) {
    memset(f, 0, sizeof *f);
    f->mikv_recent = f->h2o_recent = -1;   // -1: not given (0 is a valid value: no recent window)
    const cli_opt add[KV_N_OPTS] = {
        {"--kv-k", NULL, ARG_STR, &f->p.k_type, "TYPE", "key cache: f32 (default), f16, int8, int4, int3, int2", 0, 0},
        {"--kv-v", NULL, ARG_STR, &f->p.v_type, "TYPE", "value cache: same types", 0, 0},
        {"--kv-group", NULL, ARG_INT, &f->p.group, "G",
         "KV quantization group (default: the largest multiple of 8 <= 32 dividing head_dim)", 8, 256},
        {"--kv-key-axis", NULL, ARG_STR, &f->axis, "token|channel", "quantize keys per token or per channel", 0, 0},
        {"--mikv", NULL, ARG_FLAG, &f->mikv, NULL, "MiKV: important tokens high precision, the rest low", 0, 0},
        {"--mikv-hi", NULL, ARG_FLOAT, &f->mikv_hi, "RATIO", "MiKV: share of tokens kept high (0..1]", 1e-6, 1},
        {"--mikv-hi-type", NULL, ARG_STR, &f->p.mikv_hi_type, "f16|int8", "MiKV/H2O high precision (default f16)", 0, 0},
        {"--mikv-lo-type", NULL, ARG_STR, &f->p.mikv_lo_type, "int2|int3|int4", "MiKV low precision (default int4)", 0, 0},
        {"--mikv-recent", NULL, ARG_INT, &f->mikv_recent, "R", "MiKV: newest tokens kept high (default 32)", 0, 1 << 20},
        {"--h2o", NULL, ARG_FLOAT, &f->h2o, "RATIO", "H2O baseline: evict instead of demote, same budget", 1e-6, 1},
        {"--h2o-recent", NULL, ARG_INT, &f->h2o_recent, "R", "H2O: newest tokens kept (default 32)", 0, 1 << 20},
        {"--kv-balance", NULL, ARG_FLAG, &f->p.balance, NULL, "outlier-aware keys: cache k*b, attend with q/b", 0, 0},
    };
    memcpy(o + n, add, sizeof add);
    return n + KV_N_OPTS;
}

// Bits of a cache type name: 32, 16, 8, 4, 3, 2; 0 if unknown.
static int type_bits(const char *name) {
    static const char *const names[] = {"f32", "f16", "int8", "int4", "int3", "int2"};
    static const int bits[] = {32, 16, 8, 4, 3, 2};
    for (int i = 0; i < 6; i++)
        if (!strcmp(name, names[i])) return bits[i];
    return 0;
}

// The rules are in kv_flags.h. Which flags were given: strings and ratios are NULL / 0 unless given,
// --kv-group 0 is out of its range, the recent windows start at -1.
int kv_flags_check(const char *cmd, const kv_flags *f) {
    const intact_kv_params *p = &f->p;
    int h2o = f->h2o > 0, mikv = f->mikv, kb = p->k_type ? type_bits(p->k_type) : 32;
    int vb = p->v_type ? type_bits(p->v_type) : 32;
    const char *scheme = mikv ? "--mikv (it stores tokens in --mikv-hi-type / --mikv-lo-type, keys per token)"
                              : "--h2o (it stores tokens in --mikv-hi-type, keys per token)";
    if (!kb || !vb)
        return cli_flag_error(cmd, "unknown KV type '%s' (f32, f16, int8, int4, int3, int2)", kb ? p->v_type : p->k_type, "");
    if (f->axis && strcmp(f->axis, "token") && strcmp(f->axis, "channel"))
        return cli_flag_error(cmd, "--kv-key-axis is 'token' or 'channel', not '%s'%s", f->axis, "");
    if (p->mikv_hi_type && strcmp(p->mikv_hi_type, "f16") && strcmp(p->mikv_hi_type, "int8"))
        return cli_flag_error(cmd, "unknown MiKV type '%s' for --mikv-hi-type (f16, int8)%s", p->mikv_hi_type, "");
    if (p->mikv_lo_type && strcmp(p->mikv_lo_type, "int4") && strcmp(p->mikv_lo_type, "int3") &&
        strcmp(p->mikv_lo_type, "int2"))
        return cli_flag_error(cmd, "unknown MiKV type '%s' for --mikv-lo-type (int4, int3, int2)%s", p->mikv_lo_type,
                     "");
    if (mikv && h2o)
        return cli_flag_error(cmd, "%s and %s exclude each other (MiKV demotes the tokens H2O evicts)", "--mikv", "--h2o");
    if (mikv && !(f->mikv_hi > 0)) return cli_flag_error(cmd, "%s needs %s RATIO", "--mikv", "--mikv-hi");
    if (!mikv && f->mikv_hi > 0) return cli_flag_error(cmd, "%s needs %s", "--mikv-hi", "--mikv");
    static const char *const no_effect = "%s has no effect with %s";
    if (h2o && p->mikv_lo_type) return cli_flag_error(cmd, no_effect, "--mikv-lo-type", "--h2o (H2O evicts, never demotes)");
    if (h2o && f->mikv_recent >= 0) return cli_flag_error(cmd, no_effect, "--mikv-recent", "--h2o (use --h2o-recent)");
    if (mikv && f->h2o_recent >= 0) return cli_flag_error(cmd, no_effect, "--h2o-recent", "--mikv (use --mikv-recent)");
    if (!mikv && !h2o && p->mikv_hi_type) return cli_flag_error(cmd, "%s needs %s or --h2o", "--mikv-hi-type", "--mikv");
    if (!mikv && p->mikv_lo_type) return cli_flag_error(cmd, "%s needs %s", "--mikv-lo-type", "--mikv");
    if (!mikv && f->mikv_recent >= 0) return cli_flag_error(cmd, "%s needs %s", "--mikv-recent", "--mikv");
    if (!h2o && f->h2o_recent >= 0) return cli_flag_error(cmd, "%s needs %s", "--h2o-recent", "--h2o");
    // MiKV / H2O store every token in --mikv-hi-type / --mikv-lo-type, keys per token.
    if ((mikv || h2o) && p->k_type) return cli_flag_error(cmd, no_effect, "--kv-k", scheme);
    if ((mikv || h2o) && p->v_type) return cli_flag_error(cmd, no_effect, "--kv-v", scheme);
    if ((mikv || h2o) && f->axis) return cli_flag_error(cmd, no_effect, "--kv-key-axis", scheme);
    if (f->axis && kb > 8)
        return cli_flag_error(cmd, "%s needs an integer key cache (%s int8|int4|int3|int2)", "--kv-key-axis", "--kv-k");
    // Something must be stored in an integer type for a group to mean anything.
    int grouped = kb <= 8 || vb <= 8 || mikv || (h2o && p->mikv_hi_type && !strcmp(p->mikv_hi_type, "int8"));
    if (p->group && !grouped)
        return cli_flag_error(cmd, "%s has no effect without an integer KV type (%s/--kv-v int8|int4|int3|int2, --mikv, "
                     "or --h2o with --mikv-hi-type int8)", "--kv-group", "--kv-k");
    // Balancing rescales keys for their quantizer: fp32 keys store k·b exactly, so it changes nothing.
    if (p->balance && kb == 32 && !mikv && !h2o)
        return cli_flag_error(cmd, "%s has no effect on fp32 keys (give %s f16|intN, --mikv or --h2o)", "--kv-balance",
                     "--kv-k");
    return 0;
}

const intact_kv_params *kv_flags_get(const char *cmd, kv_flags *f, int sink, int *bad) {
    *bad = 0;
    if (kv_flags_check(cmd, f) != 0) {
        *bad = 1;
        return NULL;
    }
    f->p.mikv_hi = f->mikv ? f->mikv_hi : 0;
    f->p.h2o = f->h2o;
    int recent = f->mikv ? f->mikv_recent : f->h2o_recent;
    f->p.recent = recent < 0 ? 0 : recent == 0 ? -1 : recent;   // library: 0 default, < 0 none
    f->p.sink = (f->mikv || f->h2o > 0) && sink < 1 ? 1 : sink;   // [BOS] is a MiKV/H2O sink
    f->p.key_per_channel = f->axis && !strcmp(f->axis, "channel");
    if (!f->p.k_type && !f->p.v_type && !f->mikv && !(f->h2o > 0)) return NULL;
    return &f->p;
}
