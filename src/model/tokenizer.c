// Vocabulary storage shared by both tokenizer families: loading (llama2.c tokenizer.bin, GGUF),
// the piece -> id map, decoding and the merge-candidate heap. Encoders live in tokenizer_spm.c and
// tokenizer_bpe.c.
#include "model/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/mmapfile.h"
#include "model/tokenizer_impl.h"

// ------------------------------------------------------------------ construction and lookup

tok_vocab *tok_alloc(int kind, int n, size_t blob_cap, intact_error *err) {
    if (n <= 0 || n > TOK_MAX_VOCAB) {
        it_fail(err, INTACT_E_LIMIT, "tokenizer: vocabulary size %d outside 1..%d", n, TOK_MAX_VOCAB);
        return NULL;
    }
    if (blob_cap > UINT32_MAX) {
        it_fail(err, INTACT_E_LIMIT, "tokenizer: %zu bytes of pieces is too many", blob_cap);
        return NULL;
    }
    tok_vocab *v = calloc(1, sizeof *v);
    if (!v) goto nomem;
    v->kind = kind;
    v->n = n;
    v->bos = v->eos = v->unk = -1;
    v->blob = malloc(blob_cap ? blob_cap : 1);
    v->off = calloc((size_t)n + 1, sizeof *v->off);
    v->score = calloc((size_t)n, sizeof *v->score);
    v->type = calloc((size_t)n, sizeof *v->type);
    if (!v->blob || !v->off || !v->score || !v->type) goto nomem;
    for (int b = 0; b < 256; b++) v->byte_id[b] = -1;
    return v;
nomem:
    tok_free(v);
    it_fail(err, INTACT_E_NOMEM, "tokenizer: out of memory for %d pieces", n);
    return NULL;
}

// Pieces must be added in id order; the caller sized the blob for all of them.
void tok_add_piece(tok_vocab *v, int id, const char *s, size_t len, float score, int type) {
    uint32_t at = v->off[id];
    if (len) memcpy(v->blob + at, s, len);
    v->off[id + 1] = at + (uint32_t)len;
    v->score[id] = score;
    v->type[id] = (uint8_t)type;
}

uint64_t tok_hash(const char *s, size_t len) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ len;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001B3ull;
    return h ^ (h >> 29);
}

// Which tokens may be found from text. Control/unknown/unused tokens never are, so no text can
// merge into "<s>" or "<unk>"; SPM byte tokens are only a fallback for unknown characters, never
// the result of a lookup (the string "<0x41>" in text is just six characters).
static int tok_in_map(const tok_vocab *v, int id) {
    int t = v->type[id];
    if (t == TOK_T_CONTROL || t == TOK_T_UNKNOWN || t == TOK_T_UNUSED) return 0;
    if (t == TOK_T_BYTE && v->kind == TOK_SPM) return 0;
    return 1;
}

int tok_finish(tok_vocab *v, intact_error *err) {
    uint32_t cap = 16;
    while (cap < (uint32_t)v->n * 2u) cap <<= 1;
    v->map = malloc((size_t)cap * sizeof *v->map);
    if (!v->map) return it_fail(err, INTACT_E_NOMEM, "tokenizer: out of memory for the piece map");
    memset(v->map, 0xff, (size_t)cap * sizeof *v->map);
    v->map_mask = cap - 1;
    v->max_piece = 0;
    for (int id = 0; id < v->n; id++) {
        if (!tok_in_map(v, id)) continue;
        int len;
        const char *s = tok_piece(v, id, &len);
        // Duplicated pieces resolve to the lowest id, so the result never depends on hash order.
        if (tok_lookup(v, s, (size_t)len) >= 0) continue;
        uint32_t h = (uint32_t)tok_hash(s, (size_t)len) & v->map_mask;
        while (v->map[h] >= 0) h = (h + 1) & v->map_mask;
        v->map[h] = id;
        if (len > v->max_piece) v->max_piece = len;
    }
    return 0;
}

int tok_lookup(const tok_vocab *v, const char *s, size_t len) {
    if (len > (size_t)v->max_piece) return -1;
    uint32_t h = (uint32_t)tok_hash(s, len) & v->map_mask;
    for (int32_t id; (id = v->map[h]) >= 0; h = (h + 1) & v->map_mask) {
        if (v->off[id + 1] - v->off[id] == len && memcmp(v->blob + v->off[id], s, len) == 0)
            return id;
    }
    return -1;
}

void tok_free(tok_vocab *v) {
    if (!v) return;
    free(v->blob);
    free(v->off);
    free(v->score);
    free(v->type);
    free(v->map);
    free(v->mkey);
    free(v->mrank);
    free(v->mres);
    free(v);
}

// "<0xHH>" -> HH, else -1.
static int tok_byte_piece(const char *s, int len) {
    if (len != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return -1;
    int val = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
              : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        val = val * 16 + d;
    }
    return val;
}

// Byte-fallback ids: the first byte token for each value, else <unk>.
static void tok_spm_bytes(tok_vocab *v) {
    for (int id = v->n - 1; id >= 0; id--) {
        if (v->type[id] != TOK_T_BYTE) continue;
        int len;
        const char *s = tok_piece(v, id, &len);
        int b = tok_byte_piece(s, len);
        if (b >= 0) v->byte_id[b] = id;
    }
    for (int b = 0; b < 256; b++)
        if (v->byte_id[b] < 0) v->byte_id[b] = v->unk;
}

// ------------------------------------------------------------------ llama2.c tokenizer.bin

static int32_t tok_rd_i32(const unsigned char *p) {
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t i;
    memcpy(&i, &u, 4);
    return i;
}

static float tok_rd_f32(const unsigned char *p) {
    int32_t i = tok_rd_i32(p);
    float f;
    memcpy(&f, &i, 4);
    return f;
}

static int tok_l2c_type(const char *s, int len) {
    if (len == 5 && memcmp(s, "<unk>", 5) == 0) return TOK_T_UNKNOWN;
    if ((len == 5 && memcmp(s, "\n<s>\n", 5) == 0) || (len == 6 && memcmp(s, "\n</s>\n", 6) == 0) ||
        (len == 3 && memcmp(s, "<s>", 3) == 0) || (len == 4 && memcmp(s, "</s>", 4) == 0))
        return TOK_T_CONTROL;
    if (tok_byte_piece(s, len) >= 0) return TOK_T_BYTE;
    return TOK_T_NORMAL;
}

// Layout: int32 max_token_length, then n_vocab x (f32 score, int32 len, len bytes). The piece count
// is not in the file, it comes from the model. Trailing bytes are tolerated (a tokenizer exported
// for a larger vocabulary), running short is not.
tok_vocab *tok_parse_llama2c(const void *data, size_t size, int n_vocab, intact_error *err) {
    const unsigned char *p = data;
    if (n_vocab <= 0 || n_vocab > TOK_MAX_VOCAB) {
        it_fail(err, INTACT_E_FORMAT, "tokenizer.bin: vocabulary size %d outside 1..%d", n_vocab,
                TOK_MAX_VOCAB);
        return NULL;
    }
    if (!p || size < 4) {
        it_fail(err, INTACT_E_FORMAT, "tokenizer.bin: %zu bytes is too short for the header", size);
        return NULL;
    }
    int32_t max_len = tok_rd_i32(p);
    if (max_len < 0 || max_len > TOK_MAX_PIECE) {
        it_fail(err, INTACT_E_FORMAT, "tokenizer.bin: max_token_length %d outside 0..%d", max_len,
                TOK_MAX_PIECE);
        return NULL;
    }
    // First pass validates every record and sizes the piece blob.
    size_t at = 4, blob = 0;
    for (int i = 0; i < n_vocab; i++) {
        if (size - at < 8) {
            it_fail(err, INTACT_E_FORMAT, "tokenizer.bin: truncated at piece %d of %d (offset %zu)",
                    i, n_vocab, at);
            return NULL;
        }
        int32_t len = tok_rd_i32(p + at + 4);
        if (len < 0 || len > TOK_MAX_PIECE) {
            it_fail(err, INTACT_E_FORMAT, "tokenizer.bin: piece %d has length %d (allowed 0..%d)", i,
                    len, TOK_MAX_PIECE);
            return NULL;
        }
        at += 8;
        if (size - at < (size_t)len) {
            it_fail(err, INTACT_E_FORMAT, "tokenizer.bin: piece %d (%d bytes) runs past the end of "
                    "the file (%zu bytes)", i, len, size);
            return NULL;
        }
        at += (size_t)len;
        blob += (size_t)len;
    }
    tok_vocab *v = tok_alloc(TOK_SPM, n_vocab, blob, err);
    if (!v) return NULL;
    at = 4;
    for (int i = 0; i < n_vocab; i++) {
        float score = tok_rd_f32(p + at);
        int32_t len = tok_rd_i32(p + at + 4);
        const char *s = (const char *)p + at + 8;
        tok_add_piece(v, i, s, (size_t)len, score, tok_l2c_type(s, len));
        at += 8 + (size_t)len;
    }
    // llama2.c hard-codes these ids; the exporter writes pieces with plain spaces already.
    v->unk = 0;
    v->bos = n_vocab > 1 ? 1 : -1;
    v->eos = n_vocab > 2 ? 2 : -1;
    v->add_bos = 1;
    v->add_space_prefix = 1;
    tok_spm_bytes(v);
    if (tok_finish(v, err)) {
        tok_free(v);
        return NULL;
    }
    return v;
}

tok_vocab *tok_load_llama2c(const char *path, int n_vocab, intact_error *err) {
    it_mmap m;
    if (it_mmap_open(path, &m, err)) return NULL;
    tok_vocab *v = tok_parse_llama2c(m.data, m.size, n_vocab, err);
    it_mmap_close(&m);
    if (!v && err) {
        // Name the file: the parser's messages only say "tokenizer.bin".
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%.300s (%.200s)", err->msg, path);
        memcpy(err->msg, msg, sizeof msg);
    }
    return v;
}

// ------------------------------------------------------------------ GGUF

// Optional integer key: *out keeps its default when absent; an id outside the vocabulary (llama.cpp
// writes 0xFFFFFFFF for "none") means absent.
static void tok_gguf_id(const gguf_file *f, const char *key, int n, int *out) {
    if (gguf_find_key(f, key) < 0) return;
    int64_t i;
    if (gguf_get_i64(f, key, &i, NULL) == 0) *out = i >= 0 && i < n ? (int)i : -1;
    else *out = -1;   // u64 beyond INT64_MAX, or not an integer
}

static void tok_gguf_bool(const gguf_file *f, const char *key, int *out) {
    if (gguf_find_key(f, key) < 0) return;
    int b;
    uint64_t u;
    if (gguf_get_bool(f, key, &b, NULL) == 0) *out = b != 0;
    else if (gguf_get_u64(f, key, &u, NULL) == 0) *out = u != 0;   // some writers use an integer
}

// Copies piece i, replacing SentencePiece's "▁" (U+2581) by a space; returns the new length.
static size_t tok_unspace(char *dst, const char *s, size_t len) {
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (i + 2 < len && (unsigned char)s[i] == 0xE2 && (unsigned char)s[i + 1] == 0x96 &&
            (unsigned char)s[i + 2] == 0x81) {
            dst[o++] = ' ';
            i += 2;
        } else {
            dst[o++] = s[i];
        }
    }
    return o;
}

tok_vocab *tok_load_gguf(const gguf_file *f, intact_error *err) {
    const char *model = gguf_get_str(f, "tokenizer.ggml.model", NULL, err);
    if (!model) return NULL;
    int kind;
    if (strcmp(model, "llama") == 0) kind = TOK_SPM;
    else if (strcmp(model, "gpt2") == 0) kind = TOK_GPT2;
    else {
        it_fail(err, INTACT_E_UNSUPPORTED, "tokenizer: tokenizer.ggml.model \"%.64s\" is not "
                "supported (llama, gpt2)", model);
        return NULL;
    }
    int et;
    uint64_t n64;
    if (gguf_get_arr(f, "tokenizer.ggml.tokens", &et, &n64, err)) return NULL;
    if (et != GGUF_T_STRING || n64 == 0 || n64 > TOK_MAX_VOCAB) {
        it_fail(err, INTACT_E_FORMAT, "tokenizer: tokenizer.ggml.tokens must be 1..%d strings "
                "(got %llu of type %d)", TOK_MAX_VOCAB, (unsigned long long)n64, et);
        return NULL;
    }
    int n = (int)n64;
    int has_scores = 0, has_types = 0;
    uint64_t m64;
    if (gguf_find_key(f, "tokenizer.ggml.scores") >= 0) {
        if (gguf_get_arr(f, "tokenizer.ggml.scores", &et, &m64, err)) return NULL;
        if (m64 != n64 || et == GGUF_T_STRING || et == GGUF_T_ARRAY) {
            it_fail(err, INTACT_E_FORMAT, "tokenizer: tokenizer.ggml.scores must be %d numbers", n);
            return NULL;
        }
        has_scores = 1;
    }
    if (gguf_find_key(f, "tokenizer.ggml.token_type") >= 0) {
        if (gguf_get_arr(f, "tokenizer.ggml.token_type", &et, &m64, err)) return NULL;
        if (m64 != n64 || et == GGUF_T_STRING || et == GGUF_T_ARRAY || et == GGUF_T_F32 ||
            et == GGUF_T_F64) {
            it_fail(err, INTACT_E_FORMAT, "tokenizer: tokenizer.ggml.token_type must be %d integers", n);
            return NULL;
        }
        has_types = 1;
    }
    size_t blob = 0;
    for (int i = 0; i < n; i++) {
        size_t len;
        if (!gguf_arr_str(f, "tokenizer.ggml.tokens", (uint64_t)i, &len) || len > TOK_MAX_PIECE) {
            it_fail(err, INTACT_E_FORMAT, "tokenizer: token %d is unreadable or longer than %d bytes",
                    i, TOK_MAX_PIECE);
            return NULL;
        }
        blob += len;
    }
    tok_vocab *v = tok_alloc(kind, n, blob, err);
    if (!v) return NULL;
    char *tmp = malloc(TOK_MAX_PIECE);
    if (!tmp) {
        tok_free(v);
        it_fail(err, INTACT_E_NOMEM, "tokenizer: out of memory");
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        size_t len;
        const char *s = gguf_arr_str(f, "tokenizer.ggml.tokens", (uint64_t)i, &len);
        float score = 0;
        int64_t type = TOK_T_NORMAL;
        if (has_scores) gguf_arr_f32(f, "tokenizer.ggml.scores", (uint64_t)i, &score);
        if (has_types) gguf_arr_i64(f, "tokenizer.ggml.token_type", (uint64_t)i, &type);
        if (type < 0 || type > TOK_T_BYTE) type = TOK_T_NORMAL;
        if (kind == TOK_SPM) {
            if (!has_types && tok_byte_piece(s, (int)len) >= 0) type = TOK_T_BYTE;
            len = tok_unspace(tmp, s, len);
            s = tmp;
        }
        tok_add_piece(v, i, s, len, score, (int)type);
    }
    free(tmp);
    if (kind == TOK_SPM) {
        v->bos = n > 1 ? 1 : -1;
        v->eos = n > 2 ? 2 : -1;
        v->unk = 0;
        v->add_bos = 1;
        v->add_space_prefix = 1;
    } else {
        v->add_bos = -1;   // decided by the pre-tokenizer below unless the file says
    }
    tok_gguf_id(f, "tokenizer.ggml.bos_token_id", n, &v->bos);
    tok_gguf_id(f, "tokenizer.ggml.eos_token_id", n, &v->eos);
    tok_gguf_id(f, "tokenizer.ggml.unknown_token_id", n, &v->unk);
    tok_gguf_bool(f, "tokenizer.ggml.add_bos_token", &v->add_bos);
    tok_gguf_bool(f, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix);
    if (kind == TOK_SPM) {
        tok_spm_bytes(v);
        if (tok_finish(v, err)) goto fail;
        return v;
    }
    if (tok_finish(v, err)) goto fail;
    const char *pre = NULL;
    if (gguf_find_key(f, "tokenizer.ggml.pre") >= 0)
        pre = gguf_get_str(f, "tokenizer.ggml.pre", NULL, NULL);
    if (tok_bpe_finish(v, pre, err)) goto fail;
    if (v->add_bos < 0) v->add_bos = v->pre == TOK_PRE_LLAMA3;   // llama.cpp's default for llama3
    if (gguf_find_key(f, "tokenizer.ggml.merges") >= 0) {
        if (gguf_get_arr(f, "tokenizer.ggml.merges", &et, &m64, err)) goto fail;
        if (et != GGUF_T_STRING || m64 > (uint64_t)INT32_MAX) {
            it_fail(err, INTACT_E_FORMAT, "tokenizer: tokenizer.ggml.merges must be strings");
            goto fail;
        }
        for (uint64_t i = 0; i < m64; i++) {
            size_t len;
            const char *s = gguf_arr_str(f, "tokenizer.ggml.merges", i, &len);
            if (!s) {
                it_fail(err, INTACT_E_FORMAT, "tokenizer: merge %llu is unreadable",
                        (unsigned long long)i);
                goto fail;
            }
            if (tok_bpe_add_merge(v, s, len, (int)i, err)) goto fail;
        }
    }
    return v;
fail:
    tok_free(v);
    return NULL;
}

// ------------------------------------------------------------------ accessors, encode, decode

int tok_kind(const tok_vocab *v) { return v->kind; }
int tok_n_vocab(const tok_vocab *v) { return v->n; }
int tok_bos(const tok_vocab *v) { return v->bos; }
int tok_eos(const tok_vocab *v) { return v->eos; }
int tok_start(const tok_vocab *v) { return v->bos >= 0 ? v->bos : v->eos; }
int tok_add_bos(const tok_vocab *v) { return v->add_bos; }

int tok_find_piece(const tok_vocab *v, const char *s, size_t len) {
    for (int id = 0; v && id < v->n; id++) {
        int n;
        const char *p = tok_piece(v, id, &n);
        if ((size_t)n == len && memcmp(p, s, len) == 0) return id;
    }
    return -1;
}

int tok_encode(const tok_vocab *v, const char *text, size_t len, int add_bos,
               int32_t *out, int max, intact_error *err) {
    if (!v || (!text && len) || max < 0 || (!out && max > 0))
        return it_fail(err, INTACT_E_ARG, "tokenize: bad arguments");
    if (len > TOK_MAX_TEXT)
        return it_fail(err, INTACT_E_LIMIT, "tokenize: %zu bytes of text exceeds the limit of %zu",
                       len, TOK_MAX_TEXT);
    if (v->kind == TOK_SPM) return tok_spm_encode(v, text, len, add_bos, out, max, err);
    return tok_bpe_encode(v, text, len, add_bos, out, max, err);
}

static int tok_put(char *buf, int cap, const char *s, int len) {
    if (cap > 0 && buf) {
        int k = len < cap ? len : cap;
        memcpy(buf, s, (size_t)k);
        if (len < cap) buf[len] = '\0';
    }
    return len;
}

// Control tokens (BOS, EOS, ...) render as nothing, so decode(encode(text)) gives the text back.
// Returns the full length even when it exceeds cap (only cap bytes are written then), like snprintf;
// a NUL follows when there is room.
int tok_decode(const tok_vocab *v, int32_t prev, int32_t id, char *buf, int cap) {
    if (!v || id < 0 || id >= v->n) return -1;
    if (v->type[id] == TOK_T_CONTROL) return tok_put(buf, cap, "", 0);
    int len;
    const char *s = tok_piece(v, id, &len);
    if (v->kind == TOK_SPM) {
        if (v->type[id] == TOK_T_BYTE) {
            int b = tok_byte_piece(s, len);
            if (b >= 0) {
                char c = (char)b;
                return tok_put(buf, cap, &c, 1);
            }
        }
        // SentencePiece drops the dummy-prefix space of the first word (llama2.c: after BOS).
        if (prev >= 0 && prev == v->bos && v->add_space_prefix && len > 0 && s[0] == ' ') {
            s++;
            len--;
        }
        return tok_put(buf, cap, s, len);
    }
    // GPT-2: every char of the piece is one byte through the bytes_to_unicode inverse; chars outside
    // that alphabet (user-defined tokens) are copied as UTF-8.
    int o = 0;
    for (int i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        int cp = -1, n = 1;
        if (c < 0x80) cp = c;
        else if ((c & 0xE0) == 0xC0 && i + 1 < len) cp = (c & 0x1F) << 6 | (s[i + 1] & 0x3F), n = 2;
        int byte = cp >= 0 && cp < 324 ? v->u2b[cp] : -1;
        if (byte < 0) {
            // Copy the whole UTF-8 sequence untouched.
            n = 1;
            while (i + n < len && ((unsigned char)s[i + n] & 0xC0) == 0x80) n++;
            for (int k = 0; k < n; k++, o++)
                if (o < cap && buf) buf[o] = s[i + k];
        } else {
            if (o < cap && buf) buf[o] = (char)byte;
            o++;
        }
        i += n;
    }
    if (o < cap && buf) buf[o] = '\0';
    return o;
}

// ------------------------------------------------------------------ candidate heap

// A 4-ary min-heap on the packed key: half the depth of a binary heap, and the four children of a
// node share a cache line.
static int tok_heap_reserve(tok_heap *h) {
    if (h->n < h->cap) return 0;
    size_t cap = h->cap ? h->cap * 2 : 64;
    tok_cand *a = realloc(h->a, cap * sizeof *a);
    if (!a) return -1;
    h->a = a;
    h->cap = cap;
    return 0;
}

int tok_heap_append(tok_heap *h, tok_cand c) {
    if (tok_heap_reserve(h)) return -1;
    h->a[h->n++] = c;
    return 0;
}

static void tok_heap_down(tok_heap *h, size_t i, tok_cand c) {
    tok_cand *a = h->a;
    size_t n = h->n;
    for (;;) {
        size_t first = 4 * i + 1, best = i;
        uint64_t bk = c.key;
        size_t end = first + 4 < n ? first + 4 : n;
        for (size_t k = first; k < end; k++)
            if (a[k].key < bk) best = k, bk = a[k].key;
        if (best == i) break;
        a[i] = a[best];
        i = best;
    }
    a[i] = c;
}

void tok_heap_heapify(tok_heap *h) {
    for (size_t i = h->n / 4 + 1; i-- > 0;)
        if (i < h->n) tok_heap_down(h, i, h->a[i]);
}

int tok_heap_push(tok_heap *h, tok_cand c) {
    if (tok_heap_reserve(h)) return -1;
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 4;
        if (h->a[p].key <= c.key) break;
        h->a[i] = h->a[p];
        i = p;
    }
    h->a[i] = c;
    return 0;
}

tok_cand tok_heap_pop(tok_heap *h) {
    tok_cand top = h->a[0], last = h->a[--h->n];
    if (h->n) tok_heap_down(h, 0, last);
    return top;
}
