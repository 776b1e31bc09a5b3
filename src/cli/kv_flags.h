// KV-cache flags shared by run, ppl, kld and bench: --kv-k TYPE --kv-v TYPE [--kv-group G]
// [--kv-key-axis token|channel] [--kv-balance], MiKV (--mikv ...) and H2O (--h2o ...).
#ifndef IT_CLI_KV_FLAGS_H
#define IT_CLI_KV_FLAGS_H

#include "cli/args.h"
#include "intact.h"

enum { KV_N_OPTS = 12 };

typedef struct kv_flags {
    const char *axis;
    int mikv, mikv_recent, h2o_recent;
    float mikv_hi, h2o;
    intact_kv_params p;
} kv_flags;

int kv_flags_add(kv_flags *f, cli_opt *opts, int n);
// NULL when no KV flag was given (fp32 cache); *bad = 1 (message printed) for bad combinations.
// sink: the IntactKV prefix length (0: none), kept exact by every cache; MiKV/H2O keep at least
// [BOS] exact as a sink.
const intact_kv_params *kv_flags_get(const char *cmd, kv_flags *f, int sink, int *bad);

#endif
