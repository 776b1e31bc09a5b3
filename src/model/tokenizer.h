// Tokenizers: SentencePiece-style (llama2.c tokenizer.bin, GGUF tokenizer.ggml.model = "llama")
// and GPT-2 byte-level BPE (GGUF "gpt2": LLaMA-3 / Qwen2 pre-tokenizers).
#ifndef IT_MODEL_TOKENIZER_H
#define IT_MODEL_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include "intact.h"
#include "io/gguf.h"

enum tok_kind { TOK_SPM = 0, TOK_GPT2 = 1 };

typedef struct tok_vocab tok_vocab;

tok_vocab *tok_load_llama2c(const char *path, int n_vocab, intact_error *err);
tok_vocab *tok_parse_llama2c(const void *data, size_t size, int n_vocab, intact_error *err);
tok_vocab *tok_load_gguf(const gguf_file *f, intact_error *err);
void tok_free(tok_vocab *v);

int tok_kind(const tok_vocab *v);
int tok_n_vocab(const tok_vocab *v);
int tok_bos(const tok_vocab *v);   // -1 if none
int tok_eos(const tok_vocab *v);
// The token a document (a perplexity chunk, a prompt, a calibration window) starts after: BOS, or
// for models without one (Qwen2) their end-of-text token EOS; -1 if the vocab has neither.
int tok_start(const tok_vocab *v);
// Whether the file asks for a BOS at the start of a text (tokenizer.ggml.add_bos_token; llama2.c: 1;
// gpt2 without the key: 1 for the llama3 pre-tokenizer, else 0). tok_encode's add_bos is not
// filtered by it: callers that honour the file pass add_bos && tok_add_bos(v).
int tok_add_bos(const tok_vocab *v);
// The id of the piece spelling s[0..len) exactly, control tokens (<|eot_id|>) included, which the
// encoder's lookup map leaves out; -1 if none. A linear scan, for a few lookups per run.
int tok_find_piece(const tok_vocab *v, const char *s, size_t len);

// Same contract as intact_tokenize.
int tok_encode(const tok_vocab *v, const char *text, size_t len, int add_bos,
               int32_t *out, int max, intact_error *err);
// Same contract as intact_token_to_text.
int tok_decode(const tok_vocab *v, int32_t prev, int32_t id, char *buf, int cap);

// Adds tokenizer.ggml.* metadata for an SPM vocabulary (see tokenizer_export.c).
struct gguf_writer;
// Folds the vocabulary (kind, pieces, types) into an FNV-1a hash h.
uint64_t tok_fingerprint(const tok_vocab *v, uint64_t h);
int tok_export_gguf(const tok_vocab *v, struct gguf_writer *w, intact_error *err);

#endif
