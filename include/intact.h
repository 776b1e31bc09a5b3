// intact — accurate low-bit inference for LLaMA-family models.
// The one public header. Everything here is a stable contract; internals live under src/.
//
// Conventions: functions that can fail take an `intact_error *` (may be NULL) and return NULL or a
// negative value on failure with a one-line message in err->msg. The library never exits or prints.
#ifndef INTACT_H
#define INTACT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define INTACT_VERSION "0.1.0"

enum intact_status {
    INTACT_OK = 0,
    INTACT_E_IO = 1,       // file missing, unreadable, mmap failed
    INTACT_E_FORMAT = 2,   // malformed or hostile file content
    INTACT_E_UNSUPPORTED = 3, // valid file, but a type/architecture we don't implement
    INTACT_E_ARG = 4,      // bad argument from the caller
    INTACT_E_NOMEM = 5,
    INTACT_E_LIMIT = 6,    // exceeds a resource limit (context, vocab size, ...)
};

typedef struct intact_error {
    int code;       // enum intact_status
    char msg[512];
} intact_error;

// ---------------------------------------------------------------- models
typedef struct intact_model intact_model;

enum intact_arch { INTACT_ARCH_LLAMA = 0, INTACT_ARCH_QWEN2 = 1 };
enum intact_rope { INTACT_ROPE_NORM = 0 /* adjacent pairs */, INTACT_ROPE_NEOX = 1 /* halves */ };

typedef struct intact_model_info {
    const char *format;      // "gguf" or "llama2c"
    const char *arch;        // "llama" or "qwen2"
    const char *name;        // general.name or the file name
    int n_vocab, dim, hidden_dim, n_layers, n_heads, n_kv_heads, head_dim, ctx_len;
    float rope_base, norm_eps;
    int rope_style;          // enum intact_rope
    int tied_embeddings;     // output head shares the token embedding
    int has_qkv_bias;
    int64_t n_params;
    uint64_t weight_bytes;   // bytes of all tensors as stored
    const char *tokenizer;   // "spm", "gpt2" or "none"
    int bos_id, eos_id;      // -1 if absent
    int add_bos;             // the tokenizer's own preference for prepending BOS to a prompt
} intact_model_info;

// Loads a GGUF (v2/v3) or llama2.c v0 checkpoint. For llama2.c a tokenizer.bin path may be given
// (NULL: the model runs, but text functions fail). GGUF carries its own tokenizer; tokenizer_path
// overrides it when non-NULL. Weights are mmapped and used in place.
intact_model *intact_model_load(const char *path, const char *tokenizer_path, intact_error *err);
void intact_model_free(intact_model *m);
void intact_model_get_info(const intact_model *m, intact_model_info *out);

// Writes the model as it is in memory (e.g. after intact_model_quantize) as GGUF: standard
// llama/qwen2 metadata, the tokenizer, our integer tensor types. Written to a temporary name,
// fsynced and renamed, so an interrupted save never leaves a complete-looking file.
int intact_model_save(const intact_model *m, const char *path, intact_error *err);

// Per-tensor description for `intact info`. i in [0, intact_model_n_tensors).
int intact_model_n_tensors(const intact_model *m);
typedef struct intact_tensor_info {
    const char *name;
    const char *type;        // "f32", "f16", "bf16", "q8_0", ...
    int n_dims;
    int64_t ne[4];           // ne[0] is the row length (GGUF order)
    uint64_t nbytes;
} intact_tensor_info;
int intact_model_tensor(const intact_model *m, int i, intact_tensor_info *out);

// ---------------------------------------------------------------- tokenizer
// Encodes UTF-8 text. Writes at most max ids to out; returns the total count (which may exceed max:
// call again with a bigger buffer), or -1 on error.
int intact_tokenize(const intact_model *m, const char *text, size_t len, int add_bos,
                    int32_t *out, int max, intact_error *err);
// Bytes of one token as text, given the previous token (SentencePiece drops the leading space
// after BOS). Writes up to cap bytes, returns the length, or -1 for an invalid id.
int intact_token_to_text(const intact_model *m, int32_t prev, int32_t tok, char *buf, int cap);

// ---------------------------------------------------------------- inference contexts
typedef struct intact_ctx intact_ctx;

// Observer called at named points of the forward pass with a row-major (n_tokens, width) tensor.
// Names, in order: "attn_norm", "q", "k", "v" (q, k after RoPE), "wo_in" (attention output, the
// input of wo), "attn_out" (after wo), "ffn_norm", "down_in" (SwiGLU output, the input of
// ffn_down), "ffn_out", "block_out" (the residual stream after the layer), then "final_norm" and
// "logits" with layer = n_layers.
typedef void (*intact_observer)(void *user, int layer, const char *name,
                                const float *data, int n_tokens, int width);

typedef struct intact_ctx_params {
    int n_ctx;        // 0: the model's context length
    int n_threads;    // 0: 1
    int logits_all;   // keep logits for every evaluated token (perplexity), not only the last
} intact_ctx_params;

intact_ctx_params intact_ctx_default_params(void);
intact_ctx *intact_ctx_new(const intact_model *m, const intact_ctx_params *p, intact_error *err);
void intact_ctx_free(intact_ctx *c);
void intact_ctx_set_observer(intact_ctx *c, intact_observer fn, void *user);
// Forget the KV cache; the next eval starts at position 0.
void intact_ctx_reset(intact_ctx *c);
int intact_ctx_pos(const intact_ctx *c);
// Evaluates n tokens at the current position (one batched prefill when n > 1) and appends their K/V.
int intact_ctx_eval(intact_ctx *c, const int32_t *tokens, int n, intact_error *err);
// Logits of the i-th token of the last eval (logits_all) or, with i = -1, of its last token.
const float *intact_ctx_logits(const intact_ctx *c, int i);

// ---------------------------------------------------------------- sampling
typedef struct intact_sampler {
    float temp;       // <= 0: greedy
    float top_p;      // 1: off
    uint64_t rng;     // xorshift state; seed with intact_sampler_init
} intact_sampler;
void intact_sampler_init(intact_sampler *s, float temp, float top_p, uint64_t seed);
int32_t intact_sample(intact_sampler *s, const float *logits, int n_vocab);

// ---------------------------------------------------------------- evaluation
typedef void (*intact_progress)(void *user, int done, int total);

typedef struct intact_eval_params {
    int n_ctx;          // chunk length including BOS (tokens per chunk = n_ctx - 1 of text)
    int max_chunks;     // 0: all
    int n_threads;
    intact_progress progress;
    void *progress_user;
} intact_eval_params;

typedef struct intact_ppl_result {
    double ppl, nll;    // nll: mean negative log-likelihood in nats per scored token
    int64_t tokens;     // scored tokens
    int chunks;
} intact_ppl_result;
int intact_eval_ppl(const intact_model *m, const char *text, size_t len,
                    const intact_eval_params *p, intact_ppl_result *out, intact_error *err);

typedef struct intact_kld_result {
    double kld_mean, kld_p99, top1, ppl, ppl_base;
    int64_t tokens;
    int chunks;
} intact_kld_result;
// KL(base || model) per scored position over the same chunks as intact_eval_ppl.
int intact_eval_kld(const intact_model *m, const intact_model *base, const char *text, size_t len,
                    const intact_eval_params *p, intact_kld_result *out, intact_error *err);

// ---------------------------------------------------------------- weight quantization
typedef struct intact_quant_params {
    const char *method;      // "rtn", "gptq" or "awq"
    int bits;                // 2, 3, 4 or 8
    int group;               // 32, 64 or 128
    int sym;                 // symmetric (no zero point)
    int clip_search;         // rtn: per-group clip ratio minimizing the group's MSE (awq always clips)
    int act_order;           // gptq: columns in descending Hessian-diagonal order (static groups)
    const char *calib_text;  // gptq/awq: calibration text and its length
    size_t calib_len;
    int calib_samples;       // sequences (default 128)
    int calib_tokens;        // tokens per sequence incl. BOS (default 512, at most the model context)
    uint64_t seed;           // picks the calibration windows
    int fake;                // keep dequantized fp32 weights instead of packed ones (research)
    int n_threads;
    intact_progress progress;  // per layer
    void *progress_user;
} intact_quant_params;

typedef struct intact_quant_report {
    double seconds;
    uint64_t bytes_before, bytes_after;   // all tensors
    double bits_per_weight;               // quantized matrices, scales and zero points included
    int n_quantized, n_kept;              // matrices; kept = left in their stored type
    char kept[256];                       // names of kept matrices (n_in not a multiple of the group)
} intact_quant_report;

intact_quant_params intact_quant_default_params(void);
// Quantizes every layer matrix (q, k, v, o, gate, up, down) in memory; the embedding and output
// head stay in their stored type. Afterwards the model runs on the packed weights (or, with fake,
// on their exact dequantized values) and intact_model_save writes it.
int intact_model_quantize(intact_model *m, const intact_quant_params *p, intact_quant_report *report,
                          intact_error *err);

// ---------------------------------------------------------------- benchmark
typedef struct intact_bench_params {
    int n_prompt;      // prefill length (tokens, one batch)
    int n_gen;         // tokens decoded one at a time after the prefill
    int n_threads;
    uint64_t seed;     // the prompt is random token ids
    int measure_bandwidth; // interleave read-bandwidth probes with decode (see mem_bw_gb_s)
} intact_bench_params;

typedef struct intact_bench_result {
    double prefill_s, decode_s;
    double prefill_tok_s, decode_tok_s;
    double decode_bytes_per_token;   // weights + KV read per decoded token (mean over the run)
    double decode_gb_s;              // decode_bytes_per_token * decode_tok_s
    // With measure_bandwidth: decode runs in 16-token segments, each between two probes that just
    // stream the same weight pages. mem_bw_gb_s is the median probe; bw_fraction the median over
    // segments of (segment GB/s) / (mean of its two probes) — a ratio measured side by side.
    double mem_bw_gb_s, bw_fraction;
} intact_bench_result;
int intact_bench(const intact_model *m, const intact_bench_params *p, intact_bench_result *out,
                 intact_error *err);

#ifdef __cplusplus
}
#endif
#endif
