// Differentiable forward/backward of a (quantized) model over one sample that follows an IntactKV
// prefix, for calibrating the prefix K/V (ikv_calibrate). Weights are frozen: the backward computes
// gradients w.r.t. activations and the prefix K/V only.
//
// The forward is the engine's own (a context evaluates the sample after the prefix; an observer
// keeps every intermediate the backward needs, for all layers of one sample at once), so block
// outputs equal the engine's by construction, activation quantization included (the backward treats
// the activation quantizer as the identity: a straight-through estimator).
#ifndef IT_IKV_TRAIN_H
#define IT_IKV_TRAIN_H

#include "core/pool.h"
#include "ikv/prefix.h"
#include "model/model.h"

// Saved activations of one layer for one sample of T tokens after P prefix tokens (nk = P + T keys).
typedef struct ikv_acts {
    float *xn1, *r1;        // attention RMSNorm output (T, dim) and its 1/rms (T)
    float *q;               // (T, dim) after RoPE
    float *kall, *vall;     // (nk, kv_dim): the prefix rows, then the sample's (k after RoPE)
    float *probs;           // (n_heads, T, nk) softmax, zero past the causal limit
    float *att;             // (T, dim) attention output = input of wo
    float *xmid;            // (T, dim) residual after attention
    float *xn2, *r2;        // FFN RMSNorm output (T, dim) and 1/rms (T)
    float *g, *u, *s;       // (T, hidden): gate before SiLU, up, SwiGLU output
} ikv_acts;

typedef struct ikv_train {
    const intact_model *m;
    intact_ctx *ctx;        // runs the forward: n_ctx = P + T, attention recorded, stops after the last layer
    it_pool *pool;          // ctx's threads
    int *rows;              // (n_layers) rows received from the observer for the current sample
    int obs_bad;            // an observed tensor did not have the expected shape
    int P, T, nk, dim, hid, kv_dim, n_layers, n_heads, n_kv, hd;
    double *theta;          // (hd/2) RoPE angular frequencies, as in ctx.c
    float *cs;              // (T, hd/2, 2) cos/sin for positions P .. P+T-1
    // Transposed fp32 copies of the 7 layer matrices (wq wk wv wo gate up down): as f32 tensors of
    // n_in rows of n_out, kern_matmul(wt, dY) computes dX = dY * W for any stored weight type.
    it_tensor *wt;          // (n_layers * IT_LAYER_NMAT), in model.h's order (IT_LAYER_MATRICES)
    float **wt_data;
    float *x;               // (n_layers + 1, T, dim): embeddings, then each block_out
    ikv_acts *acts;         // (n_layers)
    // Backward scratch.
    float *dx, *dy, *dtmp;  // (T, dim)
    float *dh1, *dh2;       // (T, hidden)
    float *dq;              // (T, dim)
    float *dkall, *dvall;   // (nk, kv_dim)
    float *dscore;          // (n_heads, T, nk)
} ikv_train;

// Memory: ~4 * 7 * (layer matrix sizes) for the transposed weights plus per layer
// T*(8*dim + 3*hidden) + 2*nk*kv_dim + n_heads*T*nk floats. n_threads <= 0 means 1.
ikv_train *ikv_train_new(const intact_model *m, int P, int T, int n_threads, intact_error *err);
void ikv_train_free(ikv_train *w);

// Runs the model on tokens (T ids) at positions P.. with prefix p's K/V (p->n == P) in front.
// Returns the loss sum_l 1/2 mean_{t,i} (block_out_l - target_l)^2 when target (n_layers, T, dim)
// is given, else 0; NaN when the engine could not run it (out of memory). Block outputs stay in
// w->x + (l + 1) * T * dim.
double ikv_train_forward(ikv_train *w, const intact_prefix *p, const int32_t *tokens, const float *target);

// After ikv_train_forward with the same target: adds d loss / d (prefix K, V) to gk and gv, both
// shaped like p->k (n_layers, P, kv_dim).
void ikv_train_backward(ikv_train *w, const float *target, float *gk, float *gv);

#endif
