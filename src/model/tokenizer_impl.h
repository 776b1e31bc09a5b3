// Private to the tokenizer files: the vocabulary layout, the piece -> id map, the merge-candidate
// heap shared by the SentencePiece and BPE encoders, and the in-memory constructors used by tests.
#ifndef IT_MODEL_TOKENIZER_IMPL_H
#define IT_MODEL_TOKENIZER_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "model/tokenizer.h"

// GGUF tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum tok_type {
    TOK_T_UNDEFINED = 0, TOK_T_NORMAL = 1, TOK_T_UNKNOWN = 2, TOK_T_CONTROL = 3,
    TOK_T_USER = 4, TOK_T_UNUSED = 5, TOK_T_BYTE = 6,
};

enum tok_pre { TOK_PRE_GPT2 = 0, TOK_PRE_LLAMA3 = 1, TOK_PRE_QWEN2 = 2 };

#define TOK_MAX_VOCAB (1 << 22)
#define TOK_MAX_PIECE (1 << 16)
// Texts are indexed with int32 and the result count is an int; this keeps both comfortably in range.
#define TOK_MAX_TEXT ((size_t)1 << 30)

struct tok_vocab {
    int kind;                 // enum tok_kind
    int n;
    char *blob;               // every piece back to back (SPM: "▁" already replaced by ' ')
    uint32_t *off;            // n + 1 offsets into blob; piece i is blob[off[i] .. off[i+1])
    float *score;             // SPM merge priority (higher first)
    uint8_t *type;            // enum tok_type
    int32_t byte_id[256];     // SPM: byte-fallback token; GPT2: token of the byte's mapped char
    int bos, eos, unk;        // -1 if absent
    int add_bos;              // the file's preference (tokenizer.ggml.add_bos_token)
    int add_space_prefix;     // SPM dummy prefix
    int max_piece;            // longest piece in the map, bounds every lookup
    // Open-addressing piece -> id map (capacity a power of two, -1 = empty).
    int32_t *map;
    uint32_t map_mask;
    // GPT2 only: (left id, right id) -> rank and merged id, open addressing keyed on both ids.
    uint64_t *mkey;           // (left << 32 | right) + 1; 0 = empty
    int32_t *mrank, *mres;
    uint32_t mmask, mcount;
    int pre;                  // enum tok_pre
    uint16_t b2u[256];        // GPT-2 bytes_to_unicode: byte -> code point (< 324)
    int16_t u2b[324];         // its inverse, -1 where no byte maps
};

static inline const char *tok_piece(const tok_vocab *v, int id, int *len) {
    *len = (int)(v->off[id + 1] - v->off[id]);
    return v->blob + v->off[id];
}

// Construction: tok_alloc reserves n pieces and blob_cap bytes; pieces are appended in id order with
// tok_add_piece; tok_finish builds the lookup map (which tokens enter it depends on the kind).
tok_vocab *tok_alloc(int kind, int n, size_t blob_cap, intact_error *err);
void tok_add_piece(tok_vocab *v, int id, const char *s, size_t len, float score, int type);
int tok_finish(tok_vocab *v, intact_error *err);
int tok_lookup(const tok_vocab *v, const char *s, size_t len);   // -1 if absent
uint64_t tok_hash(const char *s, size_t len);

// GPT-2 vocabulary from memory (tests, fuzzing). merges are "left right" strings in rank order;
// pre is a tokenizer.ggml.pre name (NULL: "gpt2"). Token types default to normal when types is NULL.
tok_vocab *tok_build_gpt2(const char *const *tokens, int n, const char *const *merges, int n_merges,
                          const char *pre, int bos, int eos, const int *types, intact_error *err);
int tok_bpe_finish(tok_vocab *v, const char *pre, intact_error *err); // byte map + pre-tokenizer
int tok_bpe_add_merge(tok_vocab *v, const char *s, size_t len, int rank, intact_error *err);

int tok_spm_encode(const tok_vocab *v, const char *text, size_t len, int add_bos,
                   int32_t *out, int max, intact_error *err);
int tok_bpe_encode(const tok_vocab *v, const char *text, size_t len, int add_bos,
                   int32_t *out, int max, intact_error *err);

// Pre-tokenizer (exposed for tests): length in bytes of the word starting at text[i], i < len.
size_t tok_pre_next(int pre, const unsigned char *text, size_t len, size_t i);

// Merge candidates, popped by priority descending then left symbol ascending (SPM: priority =
// score; BPE: -rank, exact in a float below 2^24 merges). Both are packed into one integer key so
// the heap compares once. total is the pair's combined byte length when pushed: the right symbol is
// always left->next, and a candidate is stale exactly when that sum no longer matches (either side
// has grown, or the right one was absorbed).
typedef struct tok_cand {
    uint64_t key;
    int32_t total, id;
} tok_cand;

static inline uint64_t tok_cand_key(float prio, int32_t left) {
    if (prio == 0) prio = 0;   // -0.0 ties with 0.0, as a float comparison says
    uint32_t u;
    memcpy(&u, &prio, 4);
    u = (u & 0x80000000u) ? ~u : u | 0x80000000u;   // ascending with the float
    return (uint64_t)~u << 32 | (uint32_t)left;
}

static inline int32_t tok_cand_left(const tok_cand *c) { return (int32_t)(uint32_t)c->key; }

typedef struct tok_heap {
    tok_cand *a;
    size_t n, cap;
} tok_heap;

int tok_heap_push(tok_heap *h, tok_cand c);   // -1 on allocation failure
tok_cand tok_heap_pop(tok_heap *h);           // h->n > 0
// Bulk start: append without ordering, then order everything once in O(n).
int tok_heap_append(tok_heap *h, tok_cand c);
void tok_heap_heapify(tok_heap *h);

// A symbol of the encoders' working list: a span of the (prefixed) text and its token.
typedef struct tok_sym {
    int32_t start, len, prev, next, id;
    int32_t merge;            // may take part in merges (not a byte-fallback token)
} tok_sym;

// Appends id to out (bounded by max), counting every id; -1 once the count would overflow an int.
static inline int tok_emit(int32_t *out, int max, int *count, int32_t id) {
    if (*count == INT32_MAX) return -1;
    if (*count < max) out[*count] = id;
    (*count)++;
    return 0;
}

#endif
