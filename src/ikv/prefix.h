// IntactKV prefix: the full-precision K/V of the first tokens, kept lossless.
#ifndef IT_IKV_PREFIX_H
#define IT_IKV_PREFIX_H

#include <stddef.h>
#include <stdint.h>
#include "intact.h"

struct intact_prefix {
    uint64_t fingerprint;    // intact_model_fingerprint of the model family it was built for
    int n_layers, n_kv_heads, head_dim, n_vocab;
    int n;                   // prefix tokens
    int from_bos;            // built with --bos: a prompt's own BOS is simply replaced by it
    int32_t *tokens;         // (n)
    float *logits;           // (n_vocab): logits after the last prefix token
    float *k, *v;            // (n_layers, n, n_kv_heads*head_dim) each; k after RoPE
};

// Allocates an empty prefix for m with n tokens (zeroed K/V).
intact_prefix *ikv_prefix_alloc(const intact_model *m, int n, intact_error *err);
// Parses a whole .ikv image in memory (what intact_prefix_load does after mapping the file); the
// image is fully validated against m before anything is allocated. NULL with err set on failure.
intact_prefix *ikv_prefix_parse(const void *data, size_t size, const intact_model *m, intact_error *err);
// K or V rows of one layer: (n, kv_dim).
static inline float *ikv_layer_k(const intact_prefix *p, int l) {
    return p->k + (size_t)l * p->n * p->n_kv_heads * p->head_dim;
}
static inline float *ikv_layer_v(const intact_prefix *p, int l) {
    return p->v + (size_t)l * p->n * p->n_kv_heads * p->head_dim;
}

#endif
