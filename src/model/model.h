// The loaded model: hyperparameters and weight tensors bound to their type traits, whatever file
// format they came from. Weights stay in the mapped file; only small norm vectors are converted.
#ifndef IT_MODEL_MODEL_H
#define IT_MODEL_MODEL_H

#include "intact.h"
#include "formats/formats.h"
#include "io/gguf.h"
#include "io/llama2c.h"
#include "model/tokenizer.h"

typedef struct it_hparams {
    int arch;            // enum intact_arch
    int n_vocab, dim, hidden_dim, n_layers, n_heads, n_kv_heads, head_dim, ctx_len;
    float rope_base, rope_scale, norm_eps;   // rope_scale: linear position scaling (1 = none)
    int rope_style;      // enum intact_rope
} it_hparams;

typedef struct it_layer {
    it_tensor wq, wk, wv, wo;          // (dim -> dim), (dim -> kv_dim) x2, (dim -> dim)
    it_tensor w_gate, w_up, w_down;    // (dim -> hidden) x2, (hidden -> dim)
    const float *attn_norm, *ffn_norm; // (dim)
    const float *bq, *bk, *bv;         // qwen2 biases (dim), (kv_dim), (kv_dim); NULL for llama
} it_layer;

// Activation quantization of the layer linears (intact_act_quant); bits 16 = off.
// dec: decode activations of integer-weight linears when bits == 16 (intact_decode_act mode).
typedef struct it_act_quant { int bits; float clip; int fake; int dec; } it_act_quant;

// The seven weight matrices of a layer in the one order used everywhere (quantization, rotation,
// calibration, bench): q, k, v, o, gate, up, down. IT_LAYER_MATRICES(ly) initializes an array of
// IT_LAYER_NMAT (const) it_tensor pointers in that order; it_layer_matrix_names[i] is matrix i's
// GGUF name (blk.N.<name>.weight).
enum { IT_LAYER_WQ, IT_LAYER_WK, IT_LAYER_WV, IT_LAYER_WO, IT_LAYER_WGATE, IT_LAYER_WUP, IT_LAYER_WDOWN,
       IT_LAYER_NMAT };
#define IT_LAYER_MATRICES(ly) \
    {&(ly)->wq, &(ly)->wk, &(ly)->wv, &(ly)->wo, &(ly)->w_gate, &(ly)->w_up, &(ly)->w_down}
extern const char *const it_layer_matrix_names[IT_LAYER_NMAT];

struct intact_model {
    it_hparams hp;
    it_tensor tok_embd;                // (vocab rows of dim)
    it_tensor output;                  // (vocab rows of dim); tok_embd when tied
    const float *output_norm;          // (dim)
    const float *rope_freqs;           // (head_dim/2) LLaMA-3.1 frequency factors, or NULL
    it_layer *layers;
    int tied;
    tok_vocab *vocab;                  // NULL: no tokenizer
    gguf_file *gguf;
    l2c_file l2c;
    int is_gguf;
    char *name;
    float *owned;                      // converted norm weights
    it_tensor *all;                    // every tensor, for `info`
    char (*names)[64];                 // storage for synthesized tensor names (llama2.c)
    int n_all;
    uint64_t weight_bytes;
    struct { char method[16]; int bits, group, sym; char format[8]; } quant;   // set by intact_model_quantize
    it_act_quant aq;   // activation quantization new contexts start with (intact_act_quant); bits 16 = off
    // Rotation (intact_quant_params.rotate): the down-projection input is multiplied by a
    // block-diagonal normalized Hadamard matrix with blocks of rot_down_block (0 = not rotated).
    int rotated, rot_down_block;
    void **bufs;                       // memory owned for replaced tensors (quantization)
    int n_bufs;
};

// Allocates memory freed with the model (for tensors that replace mmapped ones).
void *model_alloc(intact_model *m, size_t bytes);
// Rebuilds the tensor list (`all`) and weight_bytes from the bound tensors, after they changed.
int model_refresh_tensor_list(intact_model *m);

#endif
