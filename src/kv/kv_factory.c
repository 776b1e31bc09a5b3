// KV-cache factory (kv_factory.h): type names to storage types, MiKV/H2O parameters to a MiKV
// config, each checked before allocating so that a bad name or group and out of memory stay
// distinct errors.
#include <string.h>

#include "core/error.h"
#include "kv/kv_factory.h"
#include "kv/kv_mikv.h"
#include "kv/kv_quant.h"

static int kv_type_of(const char *name, int *out) {
    static const char *const names[] = {"f32", "f16", "int8", "int4", "int3", "int2"};
    static const int types[] = {KVQ_F32, KVQ_F16, KVQ_INT8, KVQ_INT4, KVQ_INT3, KVQ_INT2};
    if (!name) { *out = KVQ_F32; return 0; }
    for (int i = 0; i < 6; i++)
        if (!strcmp(name, names[i])) { *out = types[i]; return 0; }
    return -1;
}

static it_kv *mikv_from_params(const intact_kv_params *kp, const kv_shape *s, intact_error *err) {
    kv_mikv_config mc = kv_mikv_default_config();
    mc.evict = kp->h2o > 0;
    mc.hi_ratio = mc.evict ? kp->h2o : kp->mikv_hi;
    mc.group = kp->group;
    if (kp->recent != 0) mc.recent = kp->recent > 0 ? kp->recent : 0;   // < 0: none, 0: the default
    if (kp->sink > 0) mc.sink = kp->sink;
    if ((kp->mikv_hi_type && kv_type_of(kp->mikv_hi_type, &mc.hi_type)) ||
        (kp->mikv_lo_type && kv_type_of(kp->mikv_lo_type, &mc.lo_type))) {
        it_fail(err, INTACT_E_ARG, "unknown MiKV type (hi: f16, int8; lo: int2, int3, int4)");
        return NULL;
    }
    // Configuration errors and out of memory are different causes with different remedies: the
    // check names the first, so a NULL after it is the second.
    char why[256];
    if (kv_mikv_config_check(&mc, s->head_dim, why, sizeof why) != 0) {
        it_fail(err, INTACT_E_ARG, "%s", why);
        return NULL;
    }
    it_kv *kv = kv_mikv_new(s->n_layers, s->n_ctx, s->n_heads, s->n_kv_heads, s->head_dim, &mc);
    if (!kv)
        it_fail(err, INTACT_E_NOMEM, "out of memory for the %s KV cache of %d tokens", mc.evict ? "H2O" : "MiKV",
                s->n_ctx);
    return kv;
}

const char *kv_type_canonical(const char *name) {
    static const char *const names[] = {"f32", "f16", "int8", "int4", "int3", "int2"};
    int t;
    return !name || kv_type_of(name, &t) ? name : names[t];
}

it_kv *kv_from_params(const intact_kv_params *kp, const kv_shape *s, intact_error *err) {
    if (kp->mikv_hi > 0 || kp->h2o > 0) {
        if (kp->mikv_hi > 0 && kp->h2o > 0) {
            it_fail(err, INTACT_E_ARG, "choose MiKV or H2O, not both");
            return NULL;
        }
        return mikv_from_params(kp, s, err);
    }
    kvq_config cfg = {KVQ_F32, KVQ_F32, kp->group, kp->key_per_channel ? KVQ_PER_CHANNEL : KVQ_PER_TOKEN, 0,
                      kp->sink};
    if (kv_type_of(kp->k_type, &cfg.k_type) || kv_type_of(kp->v_type, &cfg.v_type)) {
        it_fail(err, INTACT_E_ARG, "unknown KV type '%s' (f32, f16, int8, int4, int3, int2)",
                kv_type_of(kp->k_type, &cfg.k_type) ? kp->k_type : kp->v_type);
        return NULL;
    }
    char why[256];
    if (kvq_config_check(&cfg, s->head_dim, why, sizeof why) != 0) {
        it_fail(err, INTACT_E_ARG, "%s", why);
        return NULL;
    }
    it_kv *kv = kv_quant_new(s->n_layers, s->n_ctx, s->n_heads, s->n_kv_heads, s->head_dim, &cfg);
    if (!kv) it_fail(err, INTACT_E_NOMEM, "out of memory for the KV cache of %d tokens", s->n_ctx);
    return kv;
}
