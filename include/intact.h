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

// INTACT_API marks the exported functions: the shared library (libintact.so, built with
// -fvisibility=hidden) exports exactly these; for the static library and the CLI it changes nothing.
#if defined(__GNUC__) || defined(__clang__)
#define INTACT_API __attribute__((visibility("default")))
#else
#define INTACT_API
#endif

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
    double huge_page_fraction; // share of the file's bytes mapped with 2 MiB pages; -1 not measured
} intact_model_info;

// Loads a GGUF (v2/v3) or llama2.c v0 checkpoint. For llama2.c a tokenizer.bin path may be given
// (NULL: the model runs, but text functions fail). GGUF carries its own tokenizer; tokenizer_path
// overrides it when non-NULL. Weights are mmapped and used in place.
INTACT_API intact_model *intact_model_load(const char *path, const char *tokenizer_path, intact_error *err);
// intact_model_load with flags. INTACT_LOAD_NO_MMAP (llama.cpp's --no-mmap): the file is read into
// anonymous memory advised for transparent huge pages instead of being mapped. Costs the read at
// load and the sharing of the page cache between processes; decode streams fresh, huge-page memory
// instead of whatever pages the page cache holds (int4 TinyLlama decode 31 -> 44 tok/s on a
// 2-vCPU Xeon VM where the file's cached pages were slow, docs/speed.md).
enum { INTACT_LOAD_NO_MMAP = 1 };
INTACT_API intact_model *intact_model_load_ex(const char *path, const char *tokenizer_path, unsigned flags,
                                              intact_error *err);
INTACT_API void intact_model_free(intact_model *m);
INTACT_API void intact_model_get_info(const intact_model *m, intact_model_info *out);
// A string metadata value of a GGUF model, e.g. "tokenizer.chat_template"; NULL when the key is
// absent, not a string, or the model is not GGUF. Owned by the model.
INTACT_API const char *intact_model_meta_str(const intact_model *m, const char *key);

// Writes the model as it is in memory (e.g. after intact_model_quantize) as GGUF: standard
// llama/qwen2 metadata, the tokenizer, our integer tensor types. Written to a temporary name,
// fsynced and renamed, so an interrupted save never leaves a complete-looking file.
INTACT_API int intact_model_save(const intact_model *m, const char *path, intact_error *err);

// Per-tensor description for `intact info`. i in [0, intact_model_n_tensors).
INTACT_API int intact_model_n_tensors(const intact_model *m);
typedef struct intact_tensor_info {
    const char *name;
    const char *type;        // "f32", "f16", "bf16", "q8_0", ...
    int n_dims;
    int64_t ne[4];           // ne[0] is the row length (GGUF order)
    uint64_t nbytes;
} intact_tensor_info;
INTACT_API int intact_model_tensor(const intact_model *m, int i, intact_tensor_info *out);

// ---------------------------------------------------------------- tokenizer
// Encodes UTF-8 text. Writes at most max ids to out; returns the total count (which may exceed max:
// call again with a bigger buffer), or -1 on error.
INTACT_API int intact_tokenize(const intact_model *m, const char *text, size_t len, int add_bos,
                    int32_t *out, int max, intact_error *err);
// Bytes of one token as text, given the previous token (SentencePiece drops the leading space
// after BOS). Writes up to cap bytes, returns the length, or -1 for an invalid id.
INTACT_API int intact_token_to_text(const intact_model *m, int32_t prev, int32_t tok, char *buf, int cap);

// ---------------------------------------------------------------- inference contexts
typedef struct intact_ctx intact_ctx;

// Observer called at named points of the forward pass with a row-major (n_tokens, width) tensor.
// Names, in order: "embd" (layer 0 only: the token embeddings), "attn_norm", "q", "k", "v" (q, k
// after RoPE), "wo_in" (attention output, the input of wo), "attn_out" (after wo), "attn_resid"
// (the residual stream after attention), "ffn_norm", "ffn_gate", "ffn_up" (before SwiGLU),
// "down_in" (SwiGLU output, the input of ffn_down), "ffn_out", "block_out" (the residual stream
// after the layer), then "final_norm" and "logits" with layer = n_layers.
typedef void (*intact_observer)(void *user, int layer, const char *name,
                                const float *data, int n_tokens, int width);

typedef struct intact_ctx_params {
    int n_ctx;        // 0: the model's context length
    int n_threads;    // 0: 1
    int logits_all;   // keep logits for every evaluated token (perplexity), not only the last
} intact_ctx_params;

INTACT_API intact_ctx_params intact_ctx_default_params(void);
INTACT_API intact_ctx *intact_ctx_new(const intact_model *m, const intact_ctx_params *p, intact_error *err);
INTACT_API void intact_ctx_free(intact_ctx *c);
INTACT_API void intact_ctx_set_observer(intact_ctx *c, intact_observer fn, void *user);
// With on = 1 the observer also receives "attn_probs" per layer: (n_heads * n, pos + n) rows — row
// h*n + t is query t's softmax over the keys (the eval's n tokens at positions pos..pos+n-1; evals
// longer than 64 tokens arrive in micro-batches of 64). Costs n_heads*64*n_ctx floats. 0 or -1.
INTACT_API int intact_ctx_record_attention(intact_ctx *c, int on);
// Forget the KV cache; the next eval starts at position 0.
INTACT_API void intact_ctx_reset(intact_ctx *c);
INTACT_API int intact_ctx_pos(const intact_ctx *c);
// Evaluates n tokens at the current position (one batched prefill when n > 1) and appends their K/V.
INTACT_API int intact_ctx_eval(intact_ctx *c, const int32_t *tokens, int n, intact_error *err);
// One decode step for n sessions of the same model: token tokens[i] is evaluated by ctxs[i] at that
// context's own position, as intact_ctx_eval(ctxs[i], &tokens[i], 1) would, and its logits land in
// ctxs[i] (intact_ctx_logits(ctxs[i], -1)). The layer linears and the output head run as one n-row
// product, so each weight is read once for all n sessions (decode is bandwidth bound: throughput
// grows with n); RoPE, the KV cache (any type) and key balancing stay per context. ctxs[0] lends
// its scratch, thread pool and activation settings (every context must have the same ones).
// Results equal the per-context evals up to float summation order: the n-row kernels accumulate in
// another order than the 1-row GEMV, so logits differ by float rounding (tests/test_batch.c bounds
// it); with integer weights and more than 3 rows the int8 decode activations (intact_decode_act)
// give way to the float GEMM of prefill, as for a prefill of as many tokens. Observers and attention
// recording see nothing of a batched step. 0, or -1 with nothing evaluated: INTACT_E_ARG for a NULL
// array or context, n <= 0, contexts of different models or activation settings, a context twice,
// a token out of range; INTACT_E_LIMIT when a context is full (as intact_ctx_eval). Each context
// must be used by one thread at a time, the call included.
INTACT_API int intact_ctx_eval_batch(intact_ctx *const *ctxs, const int32_t *tokens, int n, intact_error *err);
// Logits of the i-th token of the last eval (logits_all) or, with i = -1, of its last token.
INTACT_API const float *intact_ctx_logits(const intact_ctx *c, int i);

// ---------------------------------------------------------------- IntactKV prefixes
// The K/V of the first tokens ([BOS], or BOS + a system prompt) computed by the full-precision
// model, kept lossless and put in front of any (quantized) model of the same family.
typedef struct intact_prefix intact_prefix;

// Runs m on tokens (which must start with BOS when from_bos) and keeps every layer's K (after
// RoPE) and V in fp32, plus the logits of the last prefix token (they score the first text token).
INTACT_API intact_prefix *intact_prefix_build(const intact_model *m, const int32_t *tokens, int n, int from_bos,
                                   intact_error *err);
// File format: see src/ikv/prefix.c. fp16 = 1 stores K/V as fp16 (half the size, not lossless).
INTACT_API int intact_prefix_save(const intact_prefix *p, const char *path, int fp16, intact_error *err);
// Loads and validates a prefix file against the model it will be used with (same family: shapes,
// vocabulary and tokenizer must match the fingerprint).
INTACT_API intact_prefix *intact_prefix_load(const char *path, const intact_model *m, intact_error *err);
INTACT_API void intact_prefix_free(intact_prefix *p);
INTACT_API int intact_prefix_n_tokens(const intact_prefix *p);
INTACT_API const int32_t *intact_prefix_tokens(const intact_prefix *p);
INTACT_API int intact_prefix_from_bos(const intact_prefix *p);
// Bytes of the prefix's K/V as held by the prefix object (fp32, every layer):
// 2 · n_layers · n_tokens · n_kv_heads · head_dim · 4. Contexts that share the prefix
// (intact_ctx_share_prefix) read these rows in place, so this is their prefix memory, once for all
// of them; intact_ctx_use_prefix instead copies the rows into each context's own cache.
INTACT_API uint64_t intact_prefix_kv_bytes(const intact_prefix *p);
// KV-cache storage (see src/kv/kv_quant.h): per layer, K and V as "f32" (default), "f16", "int8",
// "int4", "int3" or "int2" — group-wise asymmetric with fp16 scale and minimum, groups of `group`
// along head_dim per token, or for keys with key_per_channel along tokens per channel (KIVI; the
// newest < group tokens stay fp32 until their group fills). group 0: the largest multiple of 8 that
// divides head_dim and is at most 32 (head_dim 8 -> 8, 48 -> 24, 64 -> 32); a given group must be a
// multiple of 8 dividing head_dim, else intact_ctx_set_kv fails with INTACT_E_ARG naming both.
typedef struct intact_kv_params {
    const char *k_type, *v_type;   // NULL: "f32"
    int group;
    int key_per_channel;
    // sink: leading tokens stored exactly in fp32 by every cache type. intact_ctx_use_prefix (and _share_prefix) raises
    // it to the prefix length by itself (the IntactKV prefix is never quantized); MiKV/H2O want at
    // least 1 ([BOS]). A uniform cache with sink 0 quantizes every token.
    // MiKV (mikv_hi > 0) or H2O (h2o > 0) instead of a uniform cache: the sink tokens, the `recent` newest tokens and
    // the top ratio of the others by accumulated attention stay in high precision (hi_type "f16" or
    // "int8"); the rest are demoted in place to lo_type ("int2", "int3", "int4") — or, for H2O, evicted.
    // recent: newest tokens kept high; 0 -> 32, negative -> none.
    float mikv_hi, h2o;
    const char *mikv_hi_type, *mikv_lo_type;
    int recent, sink;
    // Outlier-aware key balancing (MiKV): per layer, kv head and channel b = sqrt(max|q| / max|k|)
    // from the first prefill block (and any prefix already cached); keys are cached as k·b and
    // queries attend as q/b, so scores are unchanged in exact arithmetic. Any cache type.
    int balance;
} intact_kv_params;
// Replaces the context's cache (and resets it). 0 or -1: INTACT_E_ARG for a bad configuration (bad
// type, group not fitting head_dim, ...; the message names it), INTACT_E_NOMEM when it does not fit
// in memory.
INTACT_API int intact_ctx_set_kv(intact_ctx *c, const intact_kv_params *kv, intact_error *err);
// Bytes the cache uses for the tokens it holds now, scales and zero points included, and the same
// for an fp16 cache of those tokens (the usual baseline). A shared prefix (intact_ctx_share_prefix)
// is not the context's own: intact_ctx_kv_bytes leaves its rows out (intact_prefix_kv_bytes counts
// them once); the fp16 baseline counts every position.
INTACT_API uint64_t intact_ctx_kv_bytes(const intact_ctx *c);
INTACT_API uint64_t intact_ctx_kv_bytes_f16(const intact_ctx *c);
// What intact_ctx_kv_bytes would return once the context holds n_tokens positions (its cache type,
// its shared prefix), without evaluating them: a server reserves a request's worst case with it
// before admitting it under a KV memory budget.
INTACT_API uint64_t intact_ctx_kv_bytes_at(const intact_ctx *c, int n_tokens);

// Resets the context, writes the prefix K/V at positions 0..n-1 and makes the prefix's stored
// last-token logits the current logits. Later evals continue at position n.
INTACT_API int intact_ctx_use_prefix(intact_ctx *c, const intact_prefix *p, intact_error *err);
// The same without copying: the cache reads positions 0..n-1 straight from p's fp32 K/V, read-only,
// so any number of contexts share one prefix (a server's system prompt) and hold only their own
// tokens. Logits are bit-identical to intact_ctx_use_prefix with every cache type (f32, f16/INTn,
// per-channel keys, MiKV/H2O; their sink is raised to the prefix length as there). p must outlive
// the sharing and stay unchanged (no intact_prefix_calibrate on it meanwhile): the context reads it
// until intact_ctx_reset, intact_ctx_set_kv, another use/share_prefix or intact_ctx_free. Fails
// (INTACT_E_ARG, context unchanged unless its cache had to be rebuilt with more sinks) for a prefix
// of another model family, and with key balancing (intact_kv_params.balance), which stores each
// sequence's prefix keys rescaled by its own b — use intact_ctx_use_prefix there.
INTACT_API int intact_ctx_share_prefix(intact_ctx *c, const intact_prefix *p, intact_error *err);
// Calibrated IntactKV: trains the prefix K/V (weights frozen) with AdamW so that qm's layer outputs
// match fp's, loss = sum over layers of 1/2 MSE(block_out), on n_samples random windows of len
// text tokens of the calibration text (each preceded by the prefix). Deterministic with seed.
typedef struct intact_ikv_calib_params {
    int samples, len, epochs;      // defaults 8, 128 (capped by the context), 4
    float lr;                      // default 1e-2 (tuned on english-12m; the paper: 2e-4, 20 epochs)
    uint64_t seed;
    int n_threads;
    void (*progress)(void *user, int epoch, int epochs, double loss);
    void *progress_user;
} intact_ikv_calib_params;
typedef struct intact_ikv_calib_report {
    double loss_before, loss_after, seconds;
} intact_ikv_calib_report;
INTACT_API intact_ikv_calib_params intact_ikv_calib_default_params(void);
INTACT_API int intact_prefix_calibrate(const intact_model *qm, const intact_model *fp, intact_prefix *p, const char *text,
                            size_t len, const intact_ikv_calib_params *params, intact_ikv_calib_report *report,
                            intact_error *err);

// The model's family fingerprint (hyperparameters + tokenizer), as stored in prefix files.
INTACT_API uint64_t intact_model_fingerprint(const intact_model *m);

// ---------------------------------------------------------------- sampling
// The sampler chain, in order (llama.cpp's samplers, with the temperature applied before the
// filters as intact always did):
//  1. repetition penalty: each distinct token among the last repeat_last_n accepted ones
//     (intact_sampler_accept) has its logit divided by repeat_penalty when positive, multiplied when
//     negative (llama.cpp's definition; 1 = off). Applies to greedy decoding too.
//  2. temp <= 0: greedy (argmax). Else softmax of logits / temp, then
//  3. top_k (0 = off): the k most probable tokens;  4. top_p (1 = off): the smallest set of the most
//     probable tokens whose mass reaches top_p;  5. min_p (0 = off): tokens with p >= min_p * p_max;
//  6. a draw from what is left, renormalized. Deterministic for a given seed.
enum { INTACT_SAMPLER_MAX_LAST_N = 1024 };
typedef struct intact_sampler {
    float temp;       // <= 0: greedy
    float top_p;      // 1: off
    uint64_t rng;     // xorshift state; seed with intact_sampler_init
    int top_k;        // 0: off
    float min_p;      // 0: off
    float repeat_penalty;   // 1: off
    int repeat_last_n;      // 0..INTACT_SAMPLER_MAX_LAST_N
    int n_hist;             // accepted tokens so far (the ring holds the last repeat_last_n)
    int32_t hist[INTACT_SAMPLER_MAX_LAST_N];
} intact_sampler;
typedef struct intact_sampler_params {
    float temp, top_p, min_p, repeat_penalty;
    int top_k, repeat_last_n;
    uint64_t seed;
} intact_sampler_params;
// temp 0.8, top_p 0.95, top_k 0, min_p 0, repeat_penalty 1, repeat_last_n 64, seed 0.
INTACT_API intact_sampler_params intact_sampler_default_params(void);
// Checks the ranges (temp >= 0, top_p in (0, 1], min_p in [0, 1], top_k >= 0, repeat_penalty > 0,
// repeat_last_n in 0..INTACT_SAMPLER_MAX_LAST_N; INTACT_E_ARG naming the field) and seeds s.
INTACT_API int intact_sampler_init_params(intact_sampler *s, const intact_sampler_params *p, intact_error *err);
// The old initializer: the given temp/top_p/seed, every other filter off.
INTACT_API void intact_sampler_init(intact_sampler *s, float temp, float top_p, uint64_t seed);
// Records a token of the sequence (prompt or generated) for the repetition penalty.
INTACT_API void intact_sampler_accept(intact_sampler *s, int32_t tok);
INTACT_API int32_t intact_sample(intact_sampler *s, const float *logits, int n_vocab);
// The distribution step 6 draws from, written to probs[n_vocab] (zeros for filtered tokens; one-hot
// for greedy). Does not advance the random state. 0, or -1 when out of memory.
INTACT_API int intact_sampler_probs(const intact_sampler *s, const float *logits, int n_vocab, float *probs);

// ---------------------------------------------------------------- evaluation
typedef void (*intact_progress)(void *user, int done, int total);

typedef struct intact_eval_params {
    int n_ctx;          // chunk length including BOS (tokens per chunk = n_ctx - 1 of text)
    int max_chunks;     // 0: all
    int n_threads;
    intact_progress progress;
    void *progress_user;
    // IntactKV: each chunk starts with this prefix (for the evaluated model, never for a base
    // model) instead of a computed [BOS]; text tokens per chunk = n_ctx - prefix length.
    const intact_prefix *prefix;
    const intact_kv_params *kv;   // KV-cache storage of the evaluated model (NULL: fp32)
} intact_eval_params;

typedef struct intact_ppl_result {
    double ppl, nll;    // nll: mean negative log-likelihood in nats per scored token
    int64_t tokens;     // scored tokens
    int chunks;
    uint64_t kv_bytes;  // the whole cache at the end of the run (the last chunk)
    double kv_bytes_vs_f16;
} intact_ppl_result;
INTACT_API int intact_eval_ppl(const intact_model *m, const char *text, size_t len,
                    const intact_eval_params *p, intact_ppl_result *out, intact_error *err);

typedef struct intact_kld_result {
    double kld_mean, kld_p99, top1, ppl, ppl_base;
    int64_t tokens;
    int chunks;
    uint64_t kv_bytes;  // the evaluated model's cache at the end of the run
    double kv_bytes_vs_f16;
} intact_kld_result;
// KL(base || model) per scored position over the same chunks as intact_eval_ppl.
INTACT_API int intact_eval_kld(const intact_model *m, const intact_model *base, const char *text, size_t len,
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
    int calib_no_bos;        // windows are plain text slices (the GPTQ/AWQ references'), not BOS + text
    uint64_t seed;           // picks the calibration windows
    int fake;                // keep dequantized fp32 weights instead of packed ones (research)
    int n_threads;
    intact_progress progress;  // per layer
    void *progress_user;
    // QuaRot-style rotation before quantizing (also alone, with method NULL): RMSNorm weights folded
    // into the next linear layers, the residual stream multiplied by a randomized Hadamard matrix
    // (seeded by rotate_seed) and the down-projection input by an online Hadamard transform. The
    // rotated FP model computes the same function.
    int rotate;
    uint64_t rotate_seed;
    // ggml storage instead of intact's intN_gG (bits/group/sym then unused): "q4_0", "q4_1", "q8_0",
    // "q4_k" or "q6_k" (NULL: ours). The method quantizes onto that format's grid. A k-quant matrix
    // whose rows are not a multiple of 256 falls back as llama-quantize does (q4_k -> q5_0,
    // q6_k -> q8_0); the report counts them.
    const char *format;
    // The output head and the token embedding (NULL: left as stored): "f32", "f16", "q8_0", "q6_k",
    // "q4_0", ... quantized round-to-nearest, as llama-quantize does. A tied head stored in another
    // type than the embedding is untied (the file then has its own output.weight).
    const char *output_type, *embd_type;
} intact_quant_params;

typedef struct intact_quant_report {
    double seconds;
    uint64_t bytes_before, bytes_after;   // all tensors
    double bits_per_weight;               // quantized matrices, scales and zero points included
    int n_quantized, n_kept;              // matrices; kept = left in their stored type
    char kept[256];                       // names of kept matrices (n_in not a multiple of the group)
    int n_fallback;                       // k-quant format: matrices stored in fallback_type instead
    char fallback_type[8];
} intact_quant_report;

INTACT_API intact_quant_params intact_quant_default_params(void);
// Quantizes every layer matrix (q, k, v, o, gate, up, down) in memory; the embedding and output
// head stay in their stored type. Afterwards the model runs on the packed weights (or, with fake,
// on their exact dequantized values) and intact_model_save writes it.
INTACT_API int intact_model_quantize(intact_model *m, const intact_quant_params *p, intact_quant_report *report,
                          intact_error *err);

// The paper's Fig. 2 measurement: for k = 0..max_prefix intact initial tokens (their K/V from fp,
// the rest computed by qm), the MSE against fp of every layer's attention output ("attn_out") and
// block output ("block_out"), averaged over layers, dims and the text positions after max_prefix
// (the same positions for every k). Chunks as in perplexity ([BOS] + n_ctx-1 text tokens).
typedef struct intact_ikv_mse_row {
    int n_intact;
    double attn_mse, block_mse;
} intact_ikv_mse_row;
INTACT_API int intact_ikv_mse(const intact_model *qm, const intact_model *fp, const char *text, size_t len,
                   const intact_eval_params *p, int max_prefix, intact_ikv_mse_row *rows /* max_prefix+1 */,
                   intact_error *err);

// ---------------------------------------------------------------- activation quantization
// The inputs of every layer linear (q/k/v, o, gate/up, down; not the output head) quantized per
// token, symmetric and dynamic: s = clip·max|x| / (2^(bits-1) - 1), x ≈ s·clamp(round(x/s)).
// bits 8 or 4 (16 = off), clip in (0, 1] (1 = no clipping). With 4- or 8-bit integer weights the
// products run in integer kernels (int32 accumulation per group); with other weights, or fake = 1,
// the quantized-dequantized floats go through the float kernels (the research twin).
typedef struct intact_act_quant {
    int bits;     // 16 (off), 8 or 4
    float clip;   // 0 -> 1
    int fake;
} intact_act_quant;
// On a model: the setting of every context created from it afterwards. On a context: that context's
// own (contexts sharing one model can differ, e.g. server sessions). INTACT_E_ARG for other bits or a
// clip outside (0, 1].
INTACT_API int intact_model_set_act_quant(intact_model *m, const intact_act_quant *a, intact_error *err);
INTACT_API int intact_ctx_set_act_quant(intact_ctx *c, const intact_act_quant *a, intact_error *err);

// Decode activations. With integer weights (our intN_gG formats) and no activation quantization
// above (bits 16), INT8 (the default) quantizes each layer linear's input to int8 per 32 inputs
// (scale max|x|/127) at every batch size, decode and prefill alike (bit-identical products), and
// multiplies in integers: decode streams the weights at close to memory bandwidth, prefill skips
// unpacking them to float, and perplexity / KL runs measure what decode computes. INT8_ALL is the
// same (kept for compatibility). EXACT keeps float activations everywhere. ggml's Q4_0/Q8_0/Q4_K/Q6_K
// weights take them the same way (decode and prefill bit-identical per output).
// On a model: the default of contexts created afterwards; on a context: its own. INTACT_E_ARG for
// another mode.
enum { INTACT_DECODE_ACT_INT8 = 0, INTACT_DECODE_ACT_EXACT = 1, INTACT_DECODE_ACT_INT8_ALL = 2 };
INTACT_API int intact_model_set_decode_act(intact_model *m, int mode, intact_error *err);
INTACT_API int intact_ctx_set_decode_act(intact_ctx *c, int mode, intact_error *err);

// ---------------------------------------------------------------- line retrieval (LongEval)
// Prompts of n_lines lines "line <id>: REGISTER_CONTENT is <n>" then "What is the REGISTER_CONTENT in
// line <id>?"; the model answers greedily and is right when the first number it writes is <n>.
// Made for the chat models users bring: the small test models score near zero.
typedef struct intact_retrieval_params {
    int n_lines;                   // default 20
    int trials;                    // default 10
    uint64_t seed;
    int n_threads;
    int max_answer_tokens;         // default 16
    const intact_prefix *prefix;   // IntactKV prefix installed before each prompt (NULL: [BOS])
    const intact_kv_params *kv;    // KV cache (NULL: fp32)
    intact_progress progress;
    void *progress_user;
    // "none" (NULL), "llama2", "llama3" or "chatml": the prompt as one user turn; header tokens
    // written as text map to their ids when the vocabulary has them.
    const char *chat_template;
} intact_retrieval_params;
typedef struct intact_retrieval_result {
    int trials, correct;
    double accuracy;
    double prompt_tokens;          // mean prompt length in tokens
    uint64_t kv_bytes;             // cache after the last trial
    double kv_bytes_vs_f16;
} intact_retrieval_result;
INTACT_API intact_retrieval_params intact_retrieval_default_params(void);
INTACT_API int intact_eval_retrieval(const intact_model *m, const intact_retrieval_params *p, intact_retrieval_result *out,
                          intact_error *err);

// ---------------------------------------------------------------- benchmark
typedef struct intact_bench_params {
    int n_prompt;      // prefill length (tokens, one batch)
    int n_gen;         // tokens decoded one at a time after the prefill
    int n_threads;
    uint64_t seed;     // the prompt is random token ids
    int measure_bandwidth; // interleave read-bandwidth probes with decode (see mem_bw_gb_s)
    const intact_prefix *prefix;  // IntactKV prefix installed before the prompt (NULL: none)
    const intact_kv_params *kv;   // KV-cache storage (NULL: fp32)
    // Context size: 0 = prefix + prompt + generated, which must fit the model's training context;
    // an explicit n_ctx may exceed it (as llama.cpp's -c does; RoPE just continues), for speed at
    // long contexts.
    int n_ctx;
    // Prefetch A/B (`bench --prefetch-ab A,B`): with prefetch_ab_on, decode steps alternate in pairs
    // (A A B B A A ...) between the software prefetch distances prefetch_ab[0] and [1] (bytes,
    // 0..65536) for every kernel, and each step is timed. Memory bandwidth on a shared machine swings
    // from one minute to the next; steps milliseconds apart see the same phase, so the ratio holds
    // where run-against-run comparisons drown in the swings.
    int prefetch_ab_on;
    int prefetch_ab[2];
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
    uint64_t kv_bytes;               // cache at the end of the run
    double kv_bytes_vs_f16;
    // With prefetch_ab_on: mean step time at each distance, and the median over A A B B blocks of
    // (time of the two A steps) / (time of the two B steps): above 1, distance B decodes faster.
    double ab_step_ms[2], ab_speed;
    int ab_blocks;                   // A A B B blocks behind ab_speed
} intact_bench_result;
INTACT_API int intact_bench(const intact_model *m, const intact_bench_params *p, intact_bench_result *out,
                 intact_error *err);

// ---- analysis
// Pivot tokens (IntactKV, Liu et al. 2024): a few early tokens ([BOS], a system prompt) carry
// massive activations in a few channels of the residual stream and draw a large share of the
// attention ("attention sinks"). intact_analyze runs the model once over tokens (normally BOS +
// text) with an observer and measures both, per layer.
//
// Criteria (a token may meet either or both; each is judged per layer):
//  - activation: max|h| of the token's residual stream after the layer ("block_out") is
//    >= pivot_ratio x the median, over the OTHER tokens, of their max|h| in that layer;
//  - attention (a sink draws attention from far away): sink_ratio >= attn_ratio, where sink_ratio
//    is the attention the key receives from queries at least `local` positions later (mean over
//    heads and those queries) divided by what they would give it if each attended uniformly to its
//    visible keys (1/(t+1) for query t). Nearby queries are left out because previous-token heads
//    give every key a burst of local attention; only keys that at least half of the queries see
//    from that far are judged. local = min(8, n/4).
// The reported share (the paper's measure) is the mean over all queries t >= key of prob(t, key);
// it shrinks as n grows (about H(n)/n for key 0 under uniform attention): compare runs of the same
// length, or use sink_ratio.
typedef struct intact_analyze_params {
    int n_threads;       // 0: 1
    float pivot_ratio;   // activation criterion (default 4)
    float attn_ratio;    // attention criterion (default 3)
    int keep_maps;       // keep every layer's and head's full (n x n) attention map (plots)
} intact_analyze_params;

enum intact_pivot_why { INTACT_PIVOT_ACT = 1, INTACT_PIVOT_ATTN = 2 };

// K and V (K after RoPE) of one layer: element absmax and standard deviation over the pivot tokens'
// rows ([0]; NaN when there are none) and over the other tokens' rows ([1]).
typedef struct intact_kv_stats {
    float k_absmax[2], k_std[2], v_absmax[2], v_std[2];
} intact_kv_stats;

// Read-only result; arrays indexed [layer * n_tokens + token] unless said otherwise.
typedef struct intact_analysis {
    int n_tokens, n_layers, n_heads, dim;
    int32_t *tokens;          // [n_tokens]
    float *max_abs;           // max |h| after the layer
    int *channel, *channel2;  // channels of the largest and second largest |h|
    float *median_other;      // median of max_abs over the other tokens of the layer
    float *share;             // attention share received as a key, mean over heads
    float *head_share;        // [(layer * n_heads + head) * n_tokens + token]
    float *uniform;           // [n_tokens] share under uniform attention
    float *sink_ratio;        // the attention criterion's ratio; NaN for keys it does not judge
    int local;                // queries closer than this to a key are left out of sink_ratio
    unsigned char *why;       // enum intact_pivot_why bits: the criteria the token meets there
    int n_pivots;
    int *pivots;              // tokens meeting a criterion in at least one layer, ascending
    intact_kv_stats *kv;      // [n_layers]
    float *maps;              // keep_maps: [((layer * n_heads + head) * n_tokens + query) * n_tokens
                              //  + key], zero above the diagonal; else NULL
} intact_analysis;

INTACT_API intact_analyze_params intact_analyze_default_params(void);
// Needs 2 <= n <= the model's context length. Returns NULL on failure (err filled).
INTACT_API intact_analysis *intact_analyze(const intact_model *m, const int32_t *tokens, int n,
                                const intact_analyze_params *p, intact_error *err);
INTACT_API void intact_analysis_free(intact_analysis *a);

#ifdef __cplusplus
}
#endif
#endif
