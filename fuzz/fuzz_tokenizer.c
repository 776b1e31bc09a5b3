// libFuzzer target for the tokenizers. The first byte picks what the rest is:
//   0: a llama2.c tokenizer.bin image (parsed with tok_parse_llama2c; if it loads, encode and decode
//      with the hostile vocabulary);
//   1: text for the real tok512.bin vocabulary ($INTACT_MODELS or ../shared/models): decode(encode(x)) == x;
//   2: text for a small hand-built GPT-2 vocabulary, under each pre-tokenizer: same round trip;
//   3: a tokenizer description turned into a structurally valid GGUF (pieces, types, merges, ids)
//      and loaded with tok_load_gguf, so the loader sees hostile vocabularies, not just bad headers.
// Build and run (from the repo root; the library is built with clang into build-fuzz/):
//   make CC=clang BUILD=build-fuzz OPT=-O1 \
//     SANFLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer" build-fuzz/libintact.a
//   clang -g -O1 -std=c11 -D_DEFAULT_SOURCE -fsanitize=fuzzer,address,undefined -Iinclude -Isrc \
//     fuzz/fuzz_tokenizer.c build-fuzz/libintact.a -lm -pthread -o build-fuzz/fuzz_tokenizer
//   INTACT_MODELS=../shared/models ./build-fuzz/fuzz_tokenizer -max_total_time=60 -max_len=8192
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/gguf.h"
#include "io/gguf_write.h"
#include "model/tokenizer.h"
#include "model/tokenizer_impl.h"

// Loaded once per process; a fuzzer may keep state across inputs.
static tok_vocab *g_spm, *g_bpe[3];
static char g_chars[256][3];

static void gpt2_char(int b, char out[3]) {
    static const int printable_lo[] = { 33, 161, 174 }, printable_hi[] = { 126, 172, 255 };
    int cp = -1, extra = 0;
    for (int k = 0; k < b; k++) {
        int pr = 0;
        for (int r = 0; r < 3; r++) pr |= k >= printable_lo[r] && k <= printable_hi[r];
        extra += !pr;
    }
    for (int r = 0; r < 3; r++)
        if (b >= printable_lo[r] && b <= printable_hi[r]) cp = b;
    if (cp < 0) cp = 256 + extra;
    if (cp < 0x80) { out[0] = (char)cp; out[1] = 0; }
    else { out[0] = (char)(0xC0 | cp >> 6); out[1] = (char)(0x80 | (cp & 0x3F)); out[2] = 0; }
}

static const char *const k_extra[] = {
    "\xc4\xa0t", "he", "\xc4\xa0the", "in", "er", "\xc4\xa0\x61", "on", "re", "\xc4\xa0\xc4\xa0", "11",
    "111", "\xc4\x8a\xc4\x8a", "<|end|>",
};
static const char *const k_merges[] = {
    "\xc4\xa0 t", "h e", "\xc4\xa0t he", "i n", "e r", "\xc4\xa0 a", "o n", "r e",
    "\xc4\xa0 \xc4\xa0", "1 1", "11 1", "\xc4\x8a \xc4\x8a",
};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char path[1024];
    const char *root = getenv("INTACT_MODELS");
    snprintf(path, sizeof path, "%s/tok512.bin", root && *root ? root : "../shared/models");
    intact_error e;
    g_spm = tok_load_llama2c(path, 512, &e);
    if (!g_spm) fprintf(stderr, "fuzz_tokenizer: %s (mode 1 disabled)\n", e.msg);
    const char *toks[256 + sizeof k_extra / sizeof *k_extra];
    int types[256 + sizeof k_extra / sizeof *k_extra];
    int n = 0;
    for (int b = 0; b < 256; b++, n++) {
        gpt2_char(b, g_chars[b]);
        toks[n] = g_chars[b];
        types[n] = TOK_T_NORMAL;
    }
    for (size_t i = 0; i < sizeof k_extra / sizeof *k_extra; i++, n++) {
        toks[n] = k_extra[i];
        types[n] = i + 1 == sizeof k_extra / sizeof *k_extra ? TOK_T_CONTROL : TOK_T_NORMAL;
    }
    const char *pres[3] = { "gpt2", "llama3", "qwen2" };
    for (int p = 0; p < 3; p++) {
        g_bpe[p] = tok_build_gpt2(toks, n, k_merges, (int)(sizeof k_merges / sizeof *k_merges),
                                  pres[p], n - 1, n - 1, types, &e);
        if (!g_bpe[p]) {
            fprintf(stderr, "fuzz_tokenizer: %s\n", e.msg);
            abort();
        }
    }
    return 0;
}

// Encodes (twice: counting, then filling, which must agree) and decodes every id. With check set
// the decoded bytes must equal the text.
static void exercise(const tok_vocab *v, const uint8_t *text, size_t len, int check) {
    intact_error e;
    int n = tok_encode(v, (const char *)text, len, 1, NULL, 0, &e);
    if (n < 0) {
        if (check) abort();
        return;
    }
    int32_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
    if (!ids) return;
    if (tok_encode(v, (const char *)text, len, 1, ids, n, &e) != n) abort();
    char *out = malloc(len + 1);
    size_t o = 0;
    int ok = out != NULL;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= tok_n_vocab(v)) abort();
        char piece[256];
        int k = tok_decode(v, i ? ids[i - 1] : -1, ids[i], piece, sizeof piece);
        if (k < 0) abort();
        if (!ok) continue;
        if (k > (int)sizeof piece || o + (size_t)k > len) { ok = 0; continue; }
        memcpy(out + o, piece, (size_t)k);
        o += (size_t)k;
    }
    if (check && (!ok || o != len || memcmp(out, text, len) != 0)) {
        fprintf(stderr, "round trip failed: %zu bytes in, %zu out\n", len, o);
        abort();
    }
    free(out);
    free(ids);
}

static const uint8_t k_sample[] = "Once upon a time, \xc3\xa9t\xc3\xa9 \xe2\x98\x83 \xff 123 <s>\n\n";

// Mode 3: [model selector][bos][eos][flags] then '\n'-separated items: the first half become
// tokens (each token's first byte, mod 7, is also its type), the rest merges.
static void fuzz_gguf(const uint8_t *d, size_t n) {
    if (n < 4) return;
    static const char *const models[] = { "llama", "gpt2", "bert" };
    const char *model = models[d[0] % 3];
    const char *items[512];
    size_t lens[512];
    int32_t types[512];
    float scores[512];
    int ni = 0;
    for (size_t i = 4, start = 4; i <= n && ni < 512; i++) {
        if (i == n || d[i] == '\n') {
            items[ni] = (const char *)d + start;
            lens[ni] = i - start;
            ni++;
            start = i + 1;
        }
    }
    int nt = (ni + 1) / 2, nm = ni - nt;
    for (int i = 0; i < nt; i++) {
        types[i] = lens[i] ? (unsigned char)items[i][0] % 7 : 1;
        scores[i] = (float)((int)(lens[i] ? (unsigned char)items[i][lens[i] - 1] : 0) - 128);
    }
    if (nt == 0) return;
    gguf_writer *w = gguf_writer_new();
    if (!w) return;
    gguf_writer_add_str(w, "tokenizer.ggml.model", model, strlen(model));
    gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", items, lens, (uint64_t)nt);
    if (d[3] & 1) gguf_writer_add_arr_i32(w, "tokenizer.ggml.token_type", types, (uint64_t)nt);
    if (d[3] & 2) gguf_writer_add_arr_f32(w, "tokenizer.ggml.scores", scores, (uint64_t)nt);
    if (nm) gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", items + nt, lens + nt, (uint64_t)nm);
    if (d[3] & 4) gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", d[1]);
    if (d[3] & 8) gguf_writer_add_i32(w, "tokenizer.ggml.eos_token_id", (int8_t)d[2]);
    if (d[3] & 16) gguf_writer_add_bool(w, "tokenizer.ggml.add_space_prefix", d[3] & 32);
    if (d[3] & 64) gguf_writer_add_str(w, "tokenizer.ggml.pre", d[1] & 1 ? "llama-bpe" : "qwen2", d[1] & 1 ? 9 : 5);
    void *mem = NULL;
    size_t size = 0;
    intact_error e;
    if (gguf_writer_write_mem(w, &mem, &size, &e) == 0) {
        gguf_file *f = gguf_open_buffer(mem, size, &e);
        if (f) {
            tok_vocab *v = tok_load_gguf(f, &e);
            if (v) {
                exercise(v, k_sample, sizeof k_sample - 1, 0);
                exercise(v, d, n, 0);
                tok_free(v);
            }
            gguf_close(f);
        }
    }
    free(mem);
    gguf_writer_free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    intact_error e = { 0, "" };
    switch (data[0] % 4) {
    case 0: {
        // Vocabulary size from the first two bytes, so small and large counts both get tried.
        if (n < 2) return 0;
        int nv = 1 + (d[0] | d[1] << 8);
        tok_vocab *v = tok_parse_llama2c(d + 2, n - 2, nv, &e);
        if (v) {
            exercise(v, k_sample, sizeof k_sample - 1, 0);
            tok_free(v);
        } else if (!e.msg[0]) {
            abort();   // every failure must say why
        }
        break;
    }
    case 1:
        if (g_spm) exercise(g_spm, d, n, 1);
        break;
    case 2:
        exercise(g_bpe[n ? d[0] % 3 : 0], d, n, 1);
        break;
    default:
        fuzz_gguf(d, n);
        break;
    }
    return 0;
}
