// The KV-cache factory: public intact_kv_params (type names, MiKV/H2O ratios, groups, sinks) to a
// cache. It lives in kv/ so that the context only says which cache it wants, and a new cache kind
// (a server session over a shared prefix, say) is added here without touching forward/.
#ifndef IT_KV_KV_FACTORY_H
#define IT_KV_KV_FACTORY_H

#include "intact.h"
#include "kv/kv.h"

typedef struct kv_shape {
    int n_layers, n_ctx, n_heads, n_kv_heads, head_dim;
} kv_shape;

// The cache kp describes (uniform F32/F16/INTn, or MiKV / H2O when their ratios are > 0), or NULL
// with err set: INTACT_E_ARG for a type name, group or ratio that does not fit (the message names
// it), INTACT_E_NOMEM when the cache does not fit in memory. kp->sink is not range-checked here.
it_kv *kv_from_params(const intact_kv_params *kp, const kv_shape *shape, intact_error *err);

// The static canonical spelling of a known KV type name ("f16", ...), or name itself if unknown;
// NULL stays NULL. Lets a caller keep parameters without keeping the caller's strings alive.
const char *kv_type_canonical(const char *name);

#endif
