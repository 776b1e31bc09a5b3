// Inference context: the scratch buffers, KV cache and thread pool of one running sequence.
#ifndef IT_FORWARD_FORWARD_H
#define IT_FORWARD_FORWARD_H

#include "intact.h"
#include "core/pool.h"
#include "kv/kv.h"
#include "model/model.h"

struct intact_ctx {
    const intact_model *model;
    it_pool *pool;
    it_kv *kv;
    int n_ctx, pos, ubatch, logits_all;
    double *rope_theta;          // (head_dim/2) per-pair angular frequency
    float *rope_cs;              // (ubatch, head_dim/2, 2)
    // Scratch for one micro-batch; row strides are the widths in the comments.
    float *x, *xb;               // (ubatch, dim)
    float *q, *att;              // (ubatch, dim)
    float *k, *v;                // (ubatch, kv_dim)
    float *gate, *up;            // (ubatch, hidden)
    float *logits;               // (logits_cap, n_vocab)
    int logits_cap, n_logits;
    float *probs;                // (n_heads, ubatch, n_ctx) attention probabilities, when recording
    int stop_after_layer;        // -1: run the whole model; else skip later layers and the head
    intact_observer observer;
    void *observer_user;
};

int ctx_reserve_logits(intact_ctx *c, int n);

#endif
