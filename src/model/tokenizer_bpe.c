// GPT-2 byte-level BPE (GGUF tokenizer.ggml.model = "gpt2"): a regex-style pre-tokenizer cuts the
// text into words, each word's bytes become GPT-2 "byte characters" (bytes_to_unicode), and merges
// are applied lowest rank first (leftmost on ties) with the same lazy-invalidation heap as SPM.
//
// Pre-tokenizers are hand-written scanners equivalent to these regexes (tokenizer.ggml.pre):
//   gpt2 (default, also any unknown name):
//     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   llama3 ("llama3", "llama-bpe"):
//     (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//     \s*[\r\n]+|\s+(?!\S)|\s+
//   qwen2: as llama3 with \p{N} (one digit per word).
// \p{L}, \p{N} and \s come from tokenizer_unicode.h (all of Unicode 14, generated). Bytes that are
// not valid UTF-8 (overlong, surrogate, truncated, stray continuation) are one character each, of
// none of those classes. Special (control) tokens written in the text are NOT recognised: "<|eot_id|>"
// in the input is tokenized as ordinary text. With the llama3 pre-tokenizer a word that is a token
// as a whole is emitted directly (ignore_merges), as llama.cpp and HF tokenizers do for LLaMA-3.
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/tokenizer_impl.h"
#include "model/tokenizer_unicode.h"

// ------------------------------------------------------------------ characters and classes

enum { C_L = 1, C_N = 2, C_S = 4, C_O = 8, C_NL = 16 /* \r or \n, also C_S */ };

static int in_ranges(const uint32_t (*r)[2], size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid][0]) hi = mid;
        else if (cp > r[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

#define N_RANGES(t) (sizeof(t) / sizeof((t)[0]))

// Decodes one character at s[i] (i < len): its byte length, and its class.
static size_t char_at(const unsigned char *s, size_t len, size_t i, int *cls, uint32_t *out_cp) {
    unsigned c = s[i];
    uint32_t cp = 0;
    size_t n = 1;
    if (c < 0x80) {
        cp = c;
    } else {
        unsigned lo = 0x80, hi = 0xBF;   // allowed range of the second byte
        if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) {
            n = 3, cp = c & 0x0F;
            if (c == 0xE0) lo = 0xA0;          // overlong
            if (c == 0xED) hi = 0x9F;          // surrogates
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 4, cp = c & 0x07;
            if (c == 0xF0) lo = 0x90;          // overlong
            if (c == 0xF4) hi = 0x8F;          // above U+10FFFF
        } else {
            n = 0;
        }
        if (n && i + n <= len && s[i + 1] >= lo && s[i + 1] <= hi) {
            for (size_t k = 1; k < n; k++) {
                if ((s[i + k] & 0xC0) != 0x80) { n = 0; break; }
                cp = cp << 6 | (s[i + k] & 0x3F);
            }
        } else {
            n = 0;
        }
        if (!n) {
            *cls = C_O;
            if (out_cp) *out_cp = 0xFFFFFFFFu;
            return 1;
        }
    }
    if (out_cp) *out_cp = cp;
    if (cp < 0x80) {
        *cls = (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ? C_L
             : cp >= '0' && cp <= '9' ? C_N
             : cp == '\r' || cp == '\n' ? C_S | C_NL
             : cp == ' ' || (cp >= 0x09 && cp <= 0x0D) ? C_S : C_O;
    } else if (in_ranges(tok_uni_letter, N_RANGES(tok_uni_letter), cp)) {
        *cls = C_L;
    } else if (in_ranges(tok_uni_number, N_RANGES(tok_uni_number), cp)) {
        *cls = C_N;
    } else if (in_ranges(tok_uni_space, N_RANGES(tok_uni_space), cp)) {
        *cls = C_S;
    } else {
        *cls = C_O;
    }
    return n;
}

static int class_at(const unsigned char *s, size_t len, size_t i) {
    int cls;
    char_at(s, len, i, &cls, NULL);
    return cls;
}

// End of the run of characters of class mask starting at j, at most max characters; *last gets the
// start of the run's last character (j if the run is empty).
static size_t run_of(const unsigned char *s, size_t len, size_t j, int mask, size_t max, size_t *last) {
    size_t count = 0, lst = j;
    while (j < len && count < max) {
        int cls;
        size_t n = char_at(s, len, j, &cls, NULL);
        if (!(cls & mask)) break;
        lst = j;
        j += n;
        count++;
    }
    if (last) *last = lst;
    return j;
}

static int lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

// 's 't 're 've 'm 'll 'd at s[i] == '\'': their byte length, or 0.
static size_t contraction(const unsigned char *s, size_t len, size_t i, int fold) {
    if (i + 1 >= len) return 0;
    int a = fold ? lower(s[i + 1]) : s[i + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (i + 2 >= len) return 0;
    int b = fold ? lower(s[i + 2]) : s[i + 2];
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

// \s+(?!\S) then \s+, for a whitespace run starting at i: leave the last whitespace character to
// prefix the next word unless the run ends the text or is a single character.
static size_t trailing_space(const unsigned char *s, size_t len, size_t i) {
    size_t last, k = run_of(s, len, i, C_S, SIZE_MAX, &last);
    if (k == len || last == i) return k - i;
    return last - i;
}

static size_t pre_gpt2(const unsigned char *s, size_t len, size_t i) {
    if (s[i] == '\'') {
        size_t c = contraction(s, len, i, 0);
        if (c) return c;
    }
    // " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+": an optional space glued to the next run.
    size_t j = s[i] == ' ' && i + 1 < len ? i + 1 : i;
    int cls = class_at(s, len, j);
    for (int k = 0; k < 3; k++) {
        int want = k == 0 ? C_L : k == 1 ? C_N : C_O;
        if (cls & want) return run_of(s, len, j, want, SIZE_MAX, NULL) - i;
    }
    // Only whitespace is left: a space not followed by a run falls through to here too.
    return trailing_space(s, len, i);
}

static size_t pre_llama3(const unsigned char *s, size_t len, size_t i, size_t max_digits) {
    if (s[i] == '\'') {
        size_t c = contraction(s, len, i, 1);
        if (c) return c;
    }
    int cls0;
    size_t n0 = char_at(s, len, i, &cls0, NULL);
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (cls0 & C_L) return run_of(s, len, i, C_L, SIZE_MAX, NULL) - i;
    if (!(cls0 & (C_NL | C_N)) && i + n0 < len && (class_at(s, len, i + n0) & C_L))
        return run_of(s, len, i + n0, C_L, SIZE_MAX, NULL) - i;
    // \p{N}{1,3}  (qwen2: \p{N})
    if (cls0 & C_N) return run_of(s, len, i, C_N, max_digits, NULL) - i;
    // " ?[^\s\p{L}\p{N}]+[\r\n]*"
    size_t j = s[i] == ' ' && i + 1 < len ? i + 1 : i;
    if (class_at(s, len, j) & C_O) {
        size_t k = run_of(s, len, j, C_O, SIZE_MAX, NULL);
        return run_of(s, len, k, C_NL, SIZE_MAX, NULL) - i;
    }
    // \s*[\r\n]+ : whitespace up to and including the run's last line break.
    if (cls0 & C_S) {
        size_t k = run_of(s, len, i, C_S, SIZE_MAX, NULL);
        for (size_t p = k; p > i; p--)
            if (s[p - 1] == '\r' || s[p - 1] == '\n') return p - i;
    }
    return trailing_space(s, len, i);
}

size_t tok_pre_next(int pre, const unsigned char *text, size_t len, size_t i) {
    if (pre == TOK_PRE_LLAMA3) return pre_llama3(text, len, i, 3);
    if (pre == TOK_PRE_QWEN2) return pre_llama3(text, len, i, 1);
    return pre_gpt2(text, len, i);
}

// ------------------------------------------------------------------ vocabulary

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes map
// in order to U+0100 onwards, so every byte is a visible character of the vocabulary.
static void byte_map(tok_vocab *v) {
    int next = 256;
    for (int i = 0; i < 324; i++) v->u2b[i] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        v->b2u[b] = (uint16_t)(printable ? b : next++);
        v->u2b[v->b2u[b]] = (int16_t)b;
    }
}

static int utf8_put(char *out, unsigned cp) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    out[0] = (char)(0xC0 | cp >> 6);
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

int tok_bpe_finish(tok_vocab *v, const char *pre, intact_error *err) {
    (void)err;
    v->pre = TOK_PRE_GPT2;
    if (pre && (strcmp(pre, "llama3") == 0 || strcmp(pre, "llama-bpe") == 0)) v->pre = TOK_PRE_LLAMA3;
    else if (pre && strcmp(pre, "qwen2") == 0) v->pre = TOK_PRE_QWEN2;
    byte_map(v);
    for (int b = 0; b < 256; b++) {
        char u[2];
        int n = utf8_put(u, v->b2u[b]);
        v->byte_id[b] = tok_lookup(v, u, (size_t)n);
    }
    return 0;
}

static uint32_t merge_slot(const tok_vocab *v, uint64_t key) {
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    uint32_t i = (uint32_t)(h >> 32) & v->mmask;
    while (v->mkey[i] && v->mkey[i] != key) i = (i + 1) & v->mmask;
    return i;
}

static int merge_grow(tok_vocab *v) {
    uint32_t cap = v->mkey ? (v->mmask + 1) * 2 : 1024;
    uint64_t *ok = v->mkey;
    int32_t *orank = v->mrank, *ores = v->mres;
    uint32_t ocap = v->mkey ? v->mmask + 1 : 0;
    v->mkey = calloc(cap, sizeof *v->mkey);
    v->mrank = malloc(cap * sizeof *v->mrank);
    v->mres = malloc(cap * sizeof *v->mres);
    v->mmask = cap - 1;
    if (!v->mkey || !v->mrank || !v->mres) {
        free(ok); free(orank); free(ores);
        return -1;
    }
    for (uint32_t i = 0; i < ocap; i++) {
        if (!ok[i]) continue;
        uint32_t j = merge_slot(v, ok[i]);
        v->mkey[j] = ok[i];
        v->mrank[j] = orank[i];
        v->mres[j] = ores[i];
    }
    free(ok); free(orank); free(ores);
    return 0;
}

static uint64_t merge_key(int32_t a, int32_t b) {
    return ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
}

// "left right" (split at the first space after the first byte, as llama.cpp does). Merges whose
// parts or result are not in the vocabulary can never fire and are skipped; a repeated pair keeps
// its first (lowest) rank.
int tok_bpe_add_merge(tok_vocab *v, const char *s, size_t len, int rank, intact_error *err) {
    const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
    if (!sp) return it_fail(err, INTACT_E_FORMAT, "tokenizer: merge %d has no space", rank);
    size_t la = (size_t)(sp - s), lb = len - la - 1;
    int a = tok_lookup(v, s, la), b = tok_lookup(v, sp + 1, lb);
    if (a < 0 || b < 0 || la + lb > (size_t)v->max_piece) return 0;
    char buf[2 * 1024];
    if (la + lb > sizeof buf) return 0;   // no real vocabulary has kilobyte-long merged pieces
    memcpy(buf, s, la);
    memcpy(buf + la, sp + 1, lb);
    int r = tok_lookup(v, buf, la + lb);
    if (r < 0) return 0;
    if (!v->mkey && merge_grow(v)) goto nomem;
    uint64_t key = merge_key(a, b);
    uint32_t i = merge_slot(v, key);
    if (v->mkey[i]) return 0;
    v->mkey[i] = key;
    v->mrank[i] = rank;
    v->mres[i] = r;
    v->mcount++;
    if (v->mcount * 2 > v->mmask && merge_grow(v)) goto nomem;   // keep the load under 1/2
    return 0;
nomem:
    return it_fail(err, INTACT_E_NOMEM, "tokenizer: out of memory for merges");
}

tok_vocab *tok_build_gpt2(const char *const *tokens, int n, const char *const *merges, int n_merges,
                          const char *pre, int bos, int eos, const int *types, intact_error *err) {
    size_t blob = 0;
    if (!tokens || n <= 0 || n_merges < 0 || (n_merges && !merges)) {
        it_fail(err, INTACT_E_ARG, "tokenizer: bad gpt2 vocabulary arguments");
        return NULL;
    }
    for (int i = 0; i < n; i++) blob += strlen(tokens[i]);
    tok_vocab *v = tok_alloc(TOK_GPT2, n, blob, err);
    if (!v) return NULL;
    for (int i = 0; i < n; i++) {
        int t = types ? types[i] : TOK_T_NORMAL;
        tok_add_piece(v, i, tokens[i], strlen(tokens[i]), 0.0f, t >= 0 && t <= TOK_T_BYTE ? t : 1);
    }
    v->bos = bos >= 0 && bos < n ? bos : -1;
    v->eos = eos >= 0 && eos < n ? eos : -1;
    if (tok_finish(v, err) || tok_bpe_finish(v, pre, err)) goto fail;
    v->add_bos = v->pre == TOK_PRE_LLAMA3;
    for (int i = 0; i < n_merges; i++)
        if (tok_bpe_add_merge(v, merges[i], strlen(merges[i]), i, err)) goto fail;
    return v;
fail:
    tok_free(v);
    return NULL;
}

// ------------------------------------------------------------------ encoding

typedef struct bpe_state {
    const tok_vocab *v;
    tok_sym *sym;
    size_t cap;
    tok_heap heap;
    char *word;   // llama3: the word as byte characters, 2 * max_piece bytes
} bpe_state;

static int bpe_try_pair(bpe_state *st, int32_t l, int32_t r, int bulk) {
    if (l < 0 || r < 0 || !st->v->mkey) return 0;
    const tok_sym *a = &st->sym[l], *b = &st->sym[r];
    uint32_t i = merge_slot(st->v, merge_key(a->id, b->id));
    if (!st->v->mkey[i]) return 0;
    tok_cand c = { tok_cand_key(-(float)st->v->mrank[i], l), a->len + b->len, st->v->mres[i] };
    return bulk ? tok_heap_append(&st->heap, c) : tok_heap_push(&st->heap, c);
}

static int bpe_word(bpe_state *st, const unsigned char *w, size_t n, int32_t *out, int max,
                    int *count, intact_error *err) {
    const tok_vocab *v = st->v;
    if (n > st->cap) {
        tok_sym *s = realloc(st->sym, n * sizeof *s);
        if (!s) return it_fail(err, INTACT_E_NOMEM, "tokenize: out of memory");
        st->sym = s;
        st->cap = n;
    }
    tok_sym *sym = st->sym;
    if (v->pre == TOK_PRE_LLAMA3 && n <= (size_t)v->max_piece) {
        // LLaMA-3 sets ignore_merges: a word that is itself a token is emitted whole, even where the
        // merges would have split it differently (llama.cpp and HF tokenizers agree on this).
        size_t m = 0;
        for (size_t k = 0; k < n; k++) m += (size_t)utf8_put(st->word + m, v->b2u[w[k]]);
        int id = tok_lookup(v, st->word, m);
        if (id >= 0) {
            if (tok_emit(out, max, count, id))
                return it_fail(err, INTACT_E_LIMIT, "tokenize: more than %d tokens", INT32_MAX);
            return 0;
        }
    }
    for (size_t k = 0; k < n; k++) {
        int32_t id = v->byte_id[w[k]];
        if (id < 0)
            return it_fail(err, INTACT_E_FORMAT, "tokenize: byte 0x%02x has no token in the "
                           "vocabulary", w[k]);
        sym[k] = (tok_sym){ (int32_t)k, 1, (int32_t)k - 1, k + 1 < n ? (int32_t)k + 1 : -1, id, 1 };
    }
    st->heap.n = 0;
    for (size_t k = 0; k + 1 < n; k++)
        if (bpe_try_pair(st, (int32_t)k, (int32_t)k + 1, 1)) goto nomem;
    tok_heap_heapify(&st->heap);
    while (st->heap.n) {
        tok_cand c = tok_heap_pop(&st->heap);
        int32_t left = tok_cand_left(&c);
        tok_sym *a = &sym[left];
        if (a->len == 0 || a->next < 0) continue;
        tok_sym *b = &sym[a->next];
        if (b->len == 0 || a->len + b->len != c.total) continue;
        a->len = c.total;
        a->id = c.id;
        a->next = b->next;
        if (b->next >= 0) sym[b->next].prev = left;
        b->len = 0;
        if (bpe_try_pair(st, a->prev, left, 0) || bpe_try_pair(st, left, a->next, 0)) goto nomem;
    }
    for (int32_t k = 0; k >= 0; k = sym[k].next)
        if (tok_emit(out, max, count, sym[k].id))
            return it_fail(err, INTACT_E_LIMIT, "tokenize: more than %d tokens", INT32_MAX);
    return 0;
nomem:
    return it_fail(err, INTACT_E_NOMEM, "tokenize: out of memory for merge candidates");
}

int tok_bpe_encode(const tok_vocab *v, const char *text, size_t len, int add_bos,
                   int32_t *out, int max, intact_error *err) {
    int count = 0, rc = 0;
    if (add_bos && v->bos >= 0) tok_emit(out, max, &count, v->bos);
    bpe_state st = { v, NULL, 0, { NULL, 0, 0 }, NULL };
    if (v->pre == TOK_PRE_LLAMA3) {
        st.word = malloc(2 * (size_t)v->max_piece + 2);
        if (!st.word) return it_fail(err, INTACT_E_NOMEM, "tokenize: out of memory");
    }
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len && rc == 0;) {
        size_t w = tok_pre_next(v->pre, s, len, i);
        rc = bpe_word(&st, s + i, w, out, max, &count, err);
        i += w;
    }
    free(st.sym);
    free(st.heap.a);
    free(st.word);
    return rc ? -1 : count;
}
