// Writes a SentencePiece-style vocabulary as GGUF tokenizer metadata (what llama.cpp's converters
// write), so a model quantized from a llama2.c checkpoint carries its tokenizer.
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/gguf_write.h"
#include "model/tokenizer_impl.h"

int tok_export_gguf(const tok_vocab *v, gguf_writer *w, intact_error *err) {
    if (v->kind != TOK_SPM)
        return it_fail(err, INTACT_E_UNSUPPORTED, "only SentencePiece vocabularies can be exported");
    size_t blob = v->off[v->n];
    // Each ' ' becomes "▁" (3 bytes): at most 3x the blob.
    char *text = malloc(3 * blob + 1), **strs = malloc((size_t)v->n * sizeof *strs);
    size_t *lens = malloc((size_t)v->n * sizeof *lens);
    int32_t *types = malloc((size_t)v->n * sizeof *types);
    if (!text || !strs || !lens || !types) {
        free(text); free(strs); free(lens); free(types);
        return it_fail(err, INTACT_E_NOMEM, "out of memory");
    }
    size_t k = 0;
    for (int i = 0; i < v->n; i++) {
        int len;
        const char *p = tok_piece(v, i, &len);
        strs[i] = text + k;
        for (int j = 0; j < len; j++) {
            if (p[j] == ' ' && v->type[i] != TOK_T_BYTE) { memcpy(text + k, "\xe2\x96\x81", 3); k += 3; }
            else text[k++] = p[j];
        }
        lens[i] = (size_t)(text + k - strs[i]);
        types[i] = v->type[i];
    }
    gguf_writer_add_str(w, "tokenizer.ggml.model", "llama", 5);
    gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)strs, lens, (uint64_t)v->n);
    gguf_writer_add_arr_f32(w, "tokenizer.ggml.scores", v->score, (uint64_t)v->n);
    gguf_writer_add_arr_i32(w, "tokenizer.ggml.token_type", types, (uint64_t)v->n);
    if (v->bos >= 0) gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos);
    if (v->eos >= 0) gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos);
    if (v->unk >= 0) gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)v->unk);
    int rc = gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos);
    free(text); free(strs); free(lens); free(types);
    return rc ? it_fail(err, INTACT_E_NOMEM, "cannot add the tokenizer metadata") : 0;
}

uint64_t tok_fingerprint(const tok_vocab *v, uint64_t h) {
    // FNV-1a over the kind, every piece with its length and type: a prefix file names the vocabulary
    // it was built with, so it cannot be put in front of a model that tokenizes differently.
    int32_t head[2] = {v->kind, v->n};
    const unsigned char *p = (const unsigned char *)head;
    for (size_t i = 0; i < sizeof head; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    for (int id = 0; id < v->n; id++) {
        int len;
        const char *s = tok_piece(v, id, &len);
        h = (h ^ (uint64_t)(uint32_t)len) * 0x100000001b3ULL;
        h = (h ^ v->type[id]) * 0x100000001b3ULL;
        for (int i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    }
    return h;
}
