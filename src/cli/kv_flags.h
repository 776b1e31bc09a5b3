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

// Usage errors, checked right after parsing (commands exit 2): unknown type names, and every flag
// combination where a flag would be silently ignored or contradicts another. One stderr line naming
// both flags; -1, or 0 when the flags make sense. The rules:
//   --mikv and --h2o exclude each other; --mikv needs --mikv-hi and --mikv-hi needs --mikv;
//   --mikv-lo-type and --mikv-recent need --mikv (with --h2o: no effect), --h2o-recent needs --h2o,
//   --mikv-hi-type needs --mikv or --h2o (H2O keeps its tokens in it);
//   --kv-k, --kv-v and --kv-key-axis have no effect with --mikv / --h2o;
//   --kv-key-axis needs an integer --kv-k; --kv-group needs an integer type somewhere (--kv-k/--kv-v
//   intN, --mikv, --h2o with --mikv-hi-type int8); --kv-balance needs keys that are not fp32.
int kv_flags_check(const char *cmd, const kv_flags *f);

// NULL when no cache flag was given (fp32 cache); *bad = 1 (message printed) when kv_flags_check
// fails.
// sink: the IntactKV prefix length (0: none), kept exact by every cache; MiKV/H2O keep at least
// [BOS] exact as a sink.
const intact_kv_params *kv_flags_get(const char *cmd, kv_flags *f, int sink, int *bad);

#endif
