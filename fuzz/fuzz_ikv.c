// libFuzzer target for the IntactKV prefix format (.ikv, src/ikv/prefix.c), parsed with
// ikv_prefix_parse against a small real model (stories260K.bin + tok512.bin from $INTACT_MODELS,
// default ../shared/models, loaded once). Byte 0 picks what the rest is:
//   0: a raw .ikv image (magic, version, model shape, fingerprint, size and checksum gates);
//   1: an image whose header is repaired to match the model (version, shape, fingerprint), resized
//      to the exact size its token count (1..256) and dtype imply (input bytes repeated), and
//      re-checksummed, so every input reaches the token-range checks and the K/V decoding; a
//      prefix that loads is installed into a context and one token is evaluated on top of it
//      (hostile K/V floats: NaN, inf, fp16 subnormals);
//   2: as 1 but with the checksum left as the input has it (the checksum gate itself).
// A failed parse must leave a message; a parse that succeeds must have in-range tokens.
// Build and run: `make fuzz FUZZ_SECONDS=N` (scripts/fuzz.sh).
// (The entropic schedule's per-feature bookkeeping dominates this target's time; off, it runs ~10x faster.)
// fuzz-flags: -entropic=0
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ikv/prefix.h"
#include "intact.h"
#include "model/model.h"

static intact_model *g_model;
static intact_ctx *g_ctx;
static volatile float g_sink;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char mp[1024], tp[1024];
    const char *root = getenv("INTACT_MODELS");
    root = root && *root ? root : "../shared/models";
    snprintf(mp, sizeof mp, "%s/stories260K.bin", root);
    snprintf(tp, sizeof tp, "%s/tok512.bin", root);
    intact_error e = {0, ""};
    g_model = intact_model_load(mp, tp, &e);
    if (!g_model) {
        fprintf(stderr, "fuzz_ikv: cannot load %s: %s\n", mp, e.msg);
        exit(1);
    }
    intact_ctx_params cp = {512, 1, 0};
    g_ctx = intact_ctx_new(g_model, &cp, &e);
    if (!g_ctx) {
        fprintf(stderr, "fuzz_ikv: %s\n", e.msg);
        exit(1);
    }
    return 0;
}

static void put32(unsigned char *b, uint32_t v) { for (int i = 0; i < 4; i++) b[i] = (unsigned char)(v >> (8 * i)); }
static void put64(unsigned char *b, uint64_t v) { for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i)); }
static uint32_t get32(const unsigned char *b) { return b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24; }

static uint64_t fnv1a(const unsigned char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0] % 3;
    data++;
    size--;
    unsigned char *img;
    size_t n_img;
    const it_hparams *hp = &g_model->hp;
    if (mode == 0) {
        n_img = size;
        img = malloc(n_img ? n_img : 1);
        if (!img) return 0;
        memcpy(img, data, size);
    } else {
        unsigned char head[48] = {0};
        memcpy(head, data, size < 48 ? size : 48);
        uint32_t n = 1 + get32(head + 32) % 256, fp16 = get32(head + 36) & 1, flags = get32(head + 40) & 1;
        size_t kv = (size_t)hp->n_layers * n * (size_t)hp->n_kv_heads * (size_t)hp->head_dim * 2;
        n_img = 48 + (size_t)n * 4 + (size_t)hp->n_vocab * 4 + kv * (fp16 ? 2 : 4) + 8;
        img = malloc(n_img);
        if (!img) return 0;
        // Body: the input after its header, repeated (zeros when there is none).
        size_t body = size > 48 ? size - 48 : 0;
        for (size_t i = 48; i < n_img; i++) img[i] = body ? data[48 + (i - 48) % body] : 0;
        memcpy(img, "IKV1", 4);
        put32(img + 4, 1);
        put64(img + 8, intact_model_fingerprint(g_model));
        put32(img + 16, (uint32_t)hp->n_layers);
        put32(img + 20, (uint32_t)hp->n_kv_heads);
        put32(img + 24, (uint32_t)hp->head_dim);
        put32(img + 28, (uint32_t)hp->n_vocab);
        put32(img + 32, n);
        put32(img + 36, fp16);
        put32(img + 40, flags);
        put32(img + 44, 0);
        // Tokens: reduced into the vocabulary unless the word's top bit is set (then kept as is: a
        // negative id), so most inputs reach the K/V decoding and out-of-range ids still occur.
        for (uint32_t i = 0; i < n; i++) {
            uint32_t t = get32(img + 48 + 4 * (size_t)i);
            if (!(t & 0x80000000u)) put32(img + 48 + 4 * (size_t)i, t % (uint32_t)hp->n_vocab);
        }
        if (mode == 1) put64(img + n_img - 8, fnv1a(img, n_img - 8));
    }
    intact_error err = {0, ""};
    intact_prefix *p = ikv_prefix_parse(img, n_img, g_model, &err);
    if (p) {
        for (int i = 0; i < p->n; i++)
            if (p->tokens[i] < 0 || p->tokens[i] >= hp->n_vocab) __builtin_trap();
        if (intact_ctx_use_prefix(g_ctx, p, &err) == 0) {
            int32_t t = p->tokens[p->n - 1];
            if (intact_ctx_eval(g_ctx, &t, 1, &err) == 0) g_sink += intact_ctx_logits(g_ctx, -1)[0];
        } else if (!err.msg[0]) {
            __builtin_trap();
        }
        intact_prefix_free(p);
    } else if (!err.msg[0]) {
        __builtin_trap();
    }
    free(img);
    return 0;
}
