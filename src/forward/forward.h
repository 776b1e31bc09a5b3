// Inference context: the scratch buffers, KV cache and thread pool of one running sequence.
#ifndef IT_FORWARD_FORWARD_H
#define IT_FORWARD_FORWARD_H

#include "intact.h"
#include "core/pool.h"
#include "kernels/iqdec.h"
#include "kernels/iqmatmul.h"
#include "kv/kv.h"
#include "model/model.h"

struct intact_ctx {
    const intact_model *model;
    it_pool *pool;
    it_kv *kv;
    int n_ctx, pos, ubatch, logits_all;
    int ubatch_max;              // tokens the scratch buffers hold; ubatch <= ubatch_max
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
    // Key balancing (intact_kv_params.balance; NULL when off): per layer b, computed from the first
    // block of each sequence. The prefix K/V are kept so they can be re-stored as k·b then.
    float *bal;                  // (n_layers, kv_dim)
    unsigned char *bal_set;      // (n_layers) b computed for the current sequence
    float *bal_pre;              // (n_layers, 2, bal_pre_n, kv_dim) prefix K then V per layer
    float *bal_tmp;              // (bal_pre_n, kv_dim)
    int bal_pre_n;
    it_act_quant aq;             // activation quantization of the layer linears (from the model at creation)
    kern_actq actq;              // quantized activations of the current linear's input
    kern_dq dq;                  // the same for the int8 decode GEMV (kernels/iqdec.h)
    intact_kv_params kvp;        // the cache's configuration (has_kvp: set by intact_ctx_set_kv)
    int has_kvp;
};

int ctx_reserve_logits(intact_ctx *c, int n);

// The IntactKV prefix is never quantized: when a cache set by intact_ctx_set_kv keeps fewer than n
// leading tokens exact, it is rebuilt keeping n (which resets the context). 0 or -1.
int ctx_kv_keep_exact(intact_ctx *c, int n, intact_error *err);
// Installs n exact prefix tokens at positions 0..n-1 — k[l], v[l]: layer l's (n, kv_dim) rows, K
// after RoPE — and the logits of the last one, after which evaluation continues at position n.
// The IntactKV prefix (ikv/prefix.c) is its one user; only forward/ writes the context. 0 or -1.
int ctx_install_prefix(intact_ctx *c, int n, const float *const *k, const float *const *v, const float *logits,
                       intact_error *err);
// Like ctx_install_prefix, but nothing is copied: k, v ((n_layers, n, kv_dim) each, the
// intact_prefix layout) are read in place by the cache (kv_share) until the next reset, and must
// stay alive and unchanged until then. Refused with key balancing. 0 or -1.
int ctx_share_prefix(intact_ctx *c, int n, const float *k, const float *v, const float *logits,
                     intact_error *err);
// Evaluation stops after this layer (no final norm or logits); -1 runs every layer. Calibration of
// layer l (GPTQ/AWQ, ikv calibrate) needs nothing above it.
void ctx_stop_after_layer(intact_ctx *c, int layer);

// Layer linears y[i] = x w[i]^T with the model's activation quantization (forward/linear.c); x is
// scratch (the fake-quant path quantizes it in place).
void fwd_linear_group(intact_ctx *c, int nw, const it_tensor *const *w, float *x, int n, float *const *y);
// The output head: never activation-quantized by --abits (that is a research knob for the layer
// linears), but a head stored in one of our integer formats decodes through the int8 GEMV as the
// layers do (--output-type int8_g32). x is scratch.
void fwd_linear_head(intact_ctx *c, const it_tensor *w, float *x, int n, float *y);
static inline void fwd_linear(intact_ctx *c, const it_tensor *w, float *x, int n, float *y) {
    fwd_linear_group(c, 1, &w, x, n, &y);
}

// Key balancing (forward/balance.c). ctx_balance_enable(c, 0) frees the state.
int ctx_balance_enable(intact_ctx *c, int on);
void ctx_balance_reset(intact_ctx *c);
// Keeps layer l's prefix K/V (n rows) to re-store them balanced; n must be the same for all layers.
int ctx_balance_keep_prefix(intact_ctx *c, int l, int n, const float *k, const float *v);
// Before store/attend of layer l for a block of n rows: computes b on the sequence's first block,
// re-stores a kept prefix balanced, then scales k by b and q by 1/b in place. 0, or -1 when the cache
// refused the prefix rows.
int ctx_balance_layer(intact_ctx *c, int l, int n, float *q, float *k);

#endif
