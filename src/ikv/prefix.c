// IntactKV prefixes: build from the FP model, save/load (.ikv), and install into a context.
//
// File format (little-endian), version 1:
//   "IKV1" | u32 version | u64 fingerprint | u32 n_layers, n_kv_heads, head_dim, n_vocab, n_tokens
//   | u32 dtype (0 = f32, 1 = f16) | u32 flags (bit 0: built from [BOS] alone) | u32 reserved (0)
//   | i32 tokens[n_tokens] | f32 logits[n_vocab] (after the last prefix token)
//   | per layer: K (n_tokens, n_kv_heads*head_dim) then V, in dtype; K is after RoPE
//   | u64 FNV-1a checksum of every byte before it
// The loader checks the magic, version, exact size, checksum, that every count matches the model
// the prefix is used with (and its fingerprint: hyperparameters + tokenizer), and token ranges.
#include "ikv/prefix.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fp16.h"
#include "forward/forward.h"
#include "io/mmapfile.h"
#include "model/model.h"

enum { IKV_VERSION = 1, IKV_HEADER = 48, IKV_MAX_TOKENS = 1 << 16 };

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}
#define FNV_INIT 0xcbf29ce484222325ULL

uint64_t intact_model_fingerprint(const intact_model *m) {
    const it_hparams *hp = &m->hp;
    int32_t f[10] = {hp->arch, hp->n_vocab, hp->dim, hp->hidden_dim, hp->n_layers, hp->n_heads,
                     hp->n_kv_heads, hp->head_dim, hp->rope_style, 0};
    uint64_t h = fnv1a(FNV_INIT, f, sizeof f);
    h = fnv1a(h, &hp->rope_base, sizeof hp->rope_base);
    return m->vocab ? tok_fingerprint(m->vocab, h) : h;
}

intact_prefix *ikv_prefix_alloc(const intact_model *m, int n, intact_error *err) {
    const it_hparams *hp = &m->hp;
    if (n < 1 || n > IKV_MAX_TOKENS) {
        it_fail(err, INTACT_E_ARG, "prefix of %d tokens (1..%d)", n, IKV_MAX_TOKENS);
        return NULL;
    }
    intact_prefix *p = calloc(1, sizeof *p);
    size_t kv = (size_t)hp->n_layers * (size_t)n * (size_t)hp->n_kv_heads * (size_t)hp->head_dim;
    if (p) {
        p->fingerprint = intact_model_fingerprint(m);
        p->n_layers = hp->n_layers;
        p->n_kv_heads = hp->n_kv_heads;
        p->head_dim = hp->head_dim;
        p->n_vocab = hp->n_vocab;
        p->n = n;
        p->tokens = calloc((size_t)n, sizeof *p->tokens);
        p->logits = calloc((size_t)hp->n_vocab, sizeof *p->logits);
        p->k = calloc(kv, sizeof *p->k);
        p->v = calloc(kv, sizeof *p->v);
    }
    if (!p || !p->tokens || !p->logits || !p->k || !p->v) {
        intact_prefix_free(p);
        it_fail(err, INTACT_E_NOMEM, "out of memory for a prefix of %d tokens", n);
        return NULL;
    }
    return p;
}

void intact_prefix_free(intact_prefix *p) {
    if (!p) return;
    free(p->tokens); free(p->logits); free(p->k); free(p->v);
    free(p);
}

int intact_prefix_n_tokens(const intact_prefix *p) { return p->n; }
const int32_t *intact_prefix_tokens(const intact_prefix *p) { return p->tokens; }
int intact_prefix_from_bos(const intact_prefix *p) { return p->from_bos; }

typedef struct { intact_prefix *p; int rows[1024]; } build_obs;

static void build_observer(void *user, int layer, const char *name, const float *x, int n, int width) {
    build_obs *b = user;
    int is_k = !strcmp(name, "k"), is_v = !strcmp(name, "v");
    if (!(is_k || is_v) || layer >= b->p->n_layers) return;
    float *dst = is_k ? ikv_layer_k(b->p, layer) : ikv_layer_v(b->p, layer);
    // Micro-batches arrive in order; "v" is the last of the pair, so it advances the row count.
    int row = b->rows[layer];
    memcpy(dst + (size_t)row * width, x, (size_t)n * width * sizeof *x);
    if (is_v) b->rows[layer] += n;
}

intact_prefix *intact_prefix_build(const intact_model *m, const int32_t *tokens, int n, int from_bos,
                                   intact_error *err) {
    if (m->hp.n_layers > 1024) { it_fail(err, INTACT_E_LIMIT, "too many layers"); return NULL; }
    if (from_bos && (n != 1 || !m->vocab || tokens[0] != tok_bos(m->vocab))) {
        it_fail(err, INTACT_E_ARG, "a --bos prefix is exactly the model's BOS token");
        return NULL;
    }
    intact_prefix *p = ikv_prefix_alloc(m, n, err);
    if (!p) return NULL;
    p->from_bos = from_bos;
    memcpy(p->tokens, tokens, (size_t)n * sizeof *tokens);
    intact_ctx_params cp = {n, 1, 0};
    intact_ctx *c = intact_ctx_new(m, &cp, err);
    build_obs *b = calloc(1, sizeof *b);
    int rc = c && b ? 0 : -1;
    if (c && !b) it_fail(err, INTACT_E_NOMEM, "out of memory");
    if (rc == 0) {
        b->p = p;
        intact_ctx_set_observer(c, build_observer, b);
        rc = intact_ctx_eval(c, tokens, n, err);
    }
    if (rc == 0) memcpy(p->logits, intact_ctx_logits(c, -1), (size_t)p->n_vocab * sizeof *p->logits);
    intact_ctx_free(c);
    free(b);
    if (rc != 0) { intact_prefix_free(p); return NULL; }
    return p;
}

uint64_t intact_prefix_kv_bytes(const intact_prefix *p) {
    return 2ull * (uint64_t)p->n_layers * (uint64_t)p->n * (uint64_t)p->n_kv_heads * (uint64_t)p->head_dim * sizeof(float);
}

// The checks both ways of installing a prefix make: same model family, room left in the context.
static int prefix_fits(const intact_ctx *c, const intact_prefix *p, intact_error *err) {
    const intact_model *m = c->model;
    if (p->fingerprint != intact_model_fingerprint(m) || p->n_layers != m->hp.n_layers ||
        p->n_kv_heads != m->hp.n_kv_heads || p->head_dim != m->hp.head_dim || p->n_vocab != m->hp.n_vocab)
        return it_fail(err, INTACT_E_ARG, "the prefix was built for a different model family");
    if (p->n >= c->n_ctx)
        return it_fail(err, INTACT_E_LIMIT, "prefix of %d tokens leaves no room in a context of %d", p->n, c->n_ctx);
    return 0;
}

int intact_ctx_share_prefix(intact_ctx *c, const intact_prefix *p, intact_error *err) {
    if (prefix_fits(c, p, err) != 0) return -1;
    return ctx_share_prefix(c, p->n, p->k, p->v, p->logits, err);
}

int intact_ctx_use_prefix(intact_ctx *c, const intact_prefix *p, intact_error *err) {
    if (prefix_fits(c, p, err) != 0) return -1;
    const float **kv = malloc(2 * (size_t)p->n_layers * sizeof *kv);
    if (!kv) return it_fail(err, INTACT_E_NOMEM, "out of memory");
    for (int l = 0; l < p->n_layers; l++) {
        kv[l] = ikv_layer_k(p, l);
        kv[p->n_layers + l] = ikv_layer_v(p, l);
    }
    int rc = ctx_install_prefix(c, p->n, kv, kv + p->n_layers, p->logits, err);
    free(kv);
    return rc;
}

// ---------------------------------------------------------------- file I/O

static void put32(unsigned char *b, uint32_t v) { for (int i = 0; i < 4; i++) b[i] = (unsigned char)(v >> (8 * i)); }
static void put64(unsigned char *b, uint64_t v) { for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i)); }
static uint32_t get32(const unsigned char *b) { return b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24; }
static uint64_t get64(const unsigned char *b) { return get32(b) | (uint64_t)get32(b + 4) << 32; }

static size_t file_size(const intact_prefix *p, int fp16) {
    size_t kv = (size_t)p->n_layers * (size_t)p->n * (size_t)p->n_kv_heads * (size_t)p->head_dim * 2;
    return IKV_HEADER + (size_t)p->n * 4 + (size_t)p->n_vocab * 4 + kv * (fp16 ? 2 : 4) + 8;
}

int intact_prefix_save(const intact_prefix *p, const char *path, int fp16, intact_error *err) {
    size_t size = file_size(p, fp16), kv = (size_t)p->n_layers * (size_t)p->n * p->n_kv_heads * p->head_dim;
    unsigned char *buf = malloc(size), *w = buf;
    if (!buf) return it_fail(err, INTACT_E_NOMEM, "out of memory");
    memcpy(w, "IKV1", 4);
    uint32_t hdr[9] = {IKV_VERSION, 0, 0, (uint32_t)p->n_layers, (uint32_t)p->n_kv_heads, (uint32_t)p->head_dim,
                       (uint32_t)p->n_vocab, (uint32_t)p->n, (uint32_t)fp16};
    put32(w + 4, hdr[0]);
    put64(w + 8, p->fingerprint);
    for (int i = 3; i < 9; i++) put32(w + 16 + 4 * (i - 3), hdr[i]);
    put32(w + 40, (uint32_t)(p->from_bos ? 1 : 0));
    put32(w + 44, 0);
    w += IKV_HEADER;
    for (int i = 0; i < p->n; i++, w += 4) put32(w, (uint32_t)p->tokens[i]);
    memcpy(w, p->logits, (size_t)p->n_vocab * 4);
    w += (size_t)p->n_vocab * 4;
    for (int l = 0; l < p->n_layers; l++)
        for (int which = 0; which < 2; which++) {
            const float *src = which ? ikv_layer_v(p, l) : ikv_layer_k(p, l);
            size_t per = kv / (size_t)p->n_layers;
            if (fp16) {
                for (size_t i = 0; i < per; i++, w += 2) {
                    uint16_t h = it_f32_to_fp16(src[i]);
                    memcpy(w, &h, 2);
                }
            } else {
                memcpy(w, src, per * 4);
                w += per * 4;
            }
        }
    put64(w, fnv1a(FNV_INIT, buf, (size_t)(w - buf)));
    // Temporary name + fsync + rename: an interrupted save never leaves a valid-looking file.
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 12);
    int fd = -1, rc = 0;
    if (tmp) {
        memcpy(tmp, path, plen);
        memcpy(tmp + plen, ".tmp.XXXXXX", 12);
        fd = mkstemp(tmp);
    }
    int ok = fd >= 0 && write(fd, buf, size) == (ssize_t)size && fchmod(fd, 0644) == 0 && fsync(fd) == 0;
    int e = errno;
    if (fd >= 0 && close(fd) != 0 && ok) { ok = 0; e = errno; }
    if (ok && rename(tmp, path) != 0) { ok = 0; e = errno; }
    if (!ok) {
        rc = it_fail(err, INTACT_E_IO, "%s: cannot write (%s)", path, strerror(e));
        if (fd >= 0) unlink(tmp);
    }
    free(tmp);
    free(buf);
    return rc;
}

// Expected file size for the counts in a header, with overflow-checked arithmetic; 0 on overflow.
static size_t expected_size(uint64_t n_layers, uint64_t n_kv_heads, uint64_t head_dim, uint64_t n_vocab,
                            uint64_t n, int fp16) {
    size_t kv, total;
    if (__builtin_mul_overflow(n_layers, n, &kv) || __builtin_mul_overflow(kv, n_kv_heads, &kv) ||
        __builtin_mul_overflow(kv, head_dim, &kv) || __builtin_mul_overflow(kv, (size_t)(fp16 ? 4 : 8), &kv))
        return 0;
    size_t fixed = IKV_HEADER + (size_t)n * 4 + (size_t)n_vocab * 4 + 8;  // n < 2^16, n_vocab < 2^32
    if (__builtin_add_overflow(fixed, kv, &total)) return 0;
    return total;
}

// Parses a whole .ikv image (name is only for messages). Every count is checked against the model
// and the exact file size is checked BEFORE anything is allocated, so a hostile header cannot make
// the loader allocate more than the file could fill.
static intact_prefix *prefix_parse(const char *name, const unsigned char *b, size_t size, const intact_model *m,
                                   intact_error *err) {
    intact_prefix *p = NULL;
    const it_hparams *hp = &m->hp;
    if (size < IKV_HEADER + 8 || memcmp(b, "IKV1", 4) != 0) {
        it_fail(err, INTACT_E_FORMAT, "%s: not an IntactKV prefix file (bad magic or too short)", name);
        return NULL;
    }
    if (get32(b + 4) != IKV_VERSION) {
        it_fail(err, INTACT_E_UNSUPPORTED, "%s: prefix format version %u (this build reads %d)", name, get32(b + 4),
                IKV_VERSION);
        return NULL;
    }
    if (get32(b + 16) != (uint32_t)hp->n_layers || get32(b + 20) != (uint32_t)hp->n_kv_heads ||
        get32(b + 24) != (uint32_t)hp->head_dim || get32(b + 28) != (uint32_t)hp->n_vocab) {
        it_fail(err, INTACT_E_ARG, "%s: built for a model with %u layers, %u kv heads of %u, vocab %u; this one "
                "has %d, %d of %d, %d", name, get32(b + 16), get32(b + 20), get32(b + 24), get32(b + 28),
                hp->n_layers, hp->n_kv_heads, hp->head_dim, hp->n_vocab);
        return NULL;
    }
    if (get64(b + 8) != intact_model_fingerprint(m)) {
        it_fail(err, INTACT_E_ARG, "%s: built for a different model family (fingerprint mismatch: shapes or "
                "tokenizer differ)", name);
        return NULL;
    }
    uint32_t n = get32(b + 32), dtype = get32(b + 36), flags = get32(b + 40);
    if (n < 1 || n > IKV_MAX_TOKENS) {
        it_fail(err, INTACT_E_LIMIT, "%s: prefix token count %u exceeds the limit of 1..%d tokens", name, n,
                IKV_MAX_TOKENS);
        return NULL;
    }
    if (dtype > 1 || flags > 1) {
        it_fail(err, INTACT_E_FORMAT, "%s: bad dtype (%u) or flags (%u)", name, dtype, flags);
        return NULL;
    }
    int fp16 = (int)dtype;
    size_t want = expected_size((uint64_t)hp->n_layers, (uint64_t)hp->n_kv_heads, (uint64_t)hp->head_dim,
                                (uint64_t)hp->n_vocab, n, fp16);
    if (want == 0 || size != want) {
        it_fail(err, INTACT_E_FORMAT, "%s: size %zu, expected %zu (truncated or padded)", name, size, want);
        return NULL;
    }
    if (get64(b + want - 8) != fnv1a(FNV_INIT, b, want - 8)) {
        it_fail(err, INTACT_E_FORMAT, "%s: checksum mismatch (corrupted)", name);
        return NULL;
    }
    const unsigned char *r = b + IKV_HEADER;
    for (uint32_t i = 0; i < n; i++) {
        int32_t t = (int32_t)get32(r + 4 * (size_t)i);
        if (t < 0 || t >= hp->n_vocab) {
            it_fail(err, INTACT_E_FORMAT, "%s: token id %d at position %u out of range (vocab %d)", name, t, i,
                    hp->n_vocab);
            return NULL;
        }
    }
    if (!(p = ikv_prefix_alloc(m, (int)n, err))) return NULL;
    for (int i = 0; i < p->n; i++, r += 4) p->tokens[i] = (int32_t)get32(r);
    memcpy(p->logits, r, (size_t)p->n_vocab * 4);
    r += (size_t)p->n_vocab * 4;
    size_t per = (size_t)p->n * p->n_kv_heads * p->head_dim;
    for (int l = 0; l < p->n_layers; l++)
        for (int which = 0; which < 2; which++) {
            float *dst = which ? ikv_layer_v(p, l) : ikv_layer_k(p, l);
            for (size_t i = 0; i < per; i++) {
                uint16_t h;
                if (fp16) { memcpy(&h, r, 2); dst[i] = it_fp16_to_f32(h); r += 2; }
                else { memcpy(&dst[i], r, 4); r += 4; }
            }
        }
    p->from_bos = (int)flags;
    return p;
}

intact_prefix *ikv_prefix_parse(const void *data, size_t size, const intact_model *m, intact_error *err) {
    return prefix_parse("prefix", data, size, m, err);
}

intact_prefix *intact_prefix_load(const char *path, const intact_model *m, intact_error *err) {
    it_mmap map;
    if (it_mmap_open(path, &map, err) != 0) return NULL;
    intact_prefix *p = prefix_parse(path, map.data, map.size, m, err);
    it_mmap_close(&map);
    return p;
}
