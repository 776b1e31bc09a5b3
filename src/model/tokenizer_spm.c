// SentencePiece-style BPE encoding, producing exactly what llama2.c's encode() produces:
//   - optional BOS; for non-empty text a dummy-prefix " " symbol of its own;
//   - the text is cut into UTF-8 "characters" the way llama2.c does it: a byte plus the continuation
//     bytes (10xxxxxx) that follow it, at most 4 bytes in all. For valid UTF-8 that is one code
//     point; for invalid input it is llama2.c's grouping (a stray continuation byte sticks to the
//     character before it), which only changes which bytes fall back, never the round trip;
//   - a character found in the vocabulary is one symbol, otherwise each of its bytes becomes a
//     byte-fallback token <0xHH> that never merges;
//   - then, repeatedly, the adjacent pair whose concatenation is a piece with the highest score
//     (strictly above -1e10, as llama2.c's scan starts there; leftmost on ties) is merged.
// llama2.c rescans the whole sequence per merge (O(n^2)); here a heap of candidates keyed by
// (score desc, left position asc) with lazy invalidation finds the same pair in O(log n). It is the
// same choice because every adjacent mergeable pair always has a live heap entry, and merging never
// reorders symbols, so "leftmost" by original index is leftmost in the current sequence.
//
// Differences from llama2.c, none of which arise with tok512.bin (checked: no piece contains "<0x"
// or "<unk>"/"<s>" fragments beyond "<"): text is length-delimited rather than NUL-terminated; byte
// and control tokens are never the result of a lookup or merge; a missing " " piece falls back to
// the byte token instead of llama2.c's -1.
// llama.cpp's SPM tokenizer (used for GGUF "llama") uses the same queue, but groups invalid UTF-8 by
// the lead byte's declared length; for valid UTF-8 the two agree.
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/tokenizer_impl.h"

typedef struct spm_state {
    const tok_vocab *v;
    const char *buf;
    tok_sym *sym;
    tok_heap heap;
} spm_state;

static int spm_try_pair(spm_state *st, int32_t l, int32_t r, int bulk) {
    if (l < 0 || r < 0) return 0;
    const tok_sym *a = &st->sym[l], *b = &st->sym[r];
    if (!a->merge || !b->merge) return 0;
    int64_t total = (int64_t)a->len + b->len;
    if (total > st->v->max_piece) return 0;
    int id = tok_lookup(st->v, st->buf + a->start, (size_t)total);
    if (id < 0) return 0;
    float score = st->v->score[id];
    if (!(score > -1e10f)) return 0;   // also drops NaN, as llama2.c's comparison does
    tok_cand c = { tok_cand_key(score, l), (int32_t)total, id };
    return bulk ? tok_heap_append(&st->heap, c) : tok_heap_push(&st->heap, c);
}

int tok_spm_encode(const tok_vocab *v, const char *text, size_t len, int add_bos,
                   int32_t *out, int max, intact_error *err) {
    int count = 0;
    if (add_bos && v->bos >= 0) tok_emit(out, max, &count, v->bos);
    if (len == 0) return count;

    size_t pre = v->add_space_prefix ? 1 : 0, n = len + pre;
    char *buf = malloc(n);
    tok_sym *sym = malloc(n * sizeof *sym);
    spm_state st = { v, buf, sym, { NULL, 0, 0 } };
    int rc = -1;
    if (!buf || !sym) {
        it_fail(err, INTACT_E_NOMEM, "tokenize: out of memory for %zu bytes of text", len);
        goto done;
    }
    if (pre) buf[0] = ' ';
    memcpy(buf + pre, text, len);

    int32_t ns = 0;
    for (size_t i = 0; i < n;) {
        size_t g = 1;
        // The dummy prefix is a token of its own in llama2.c, so it never absorbs the text's bytes.
        if (!(pre && i == 0))
            while (i + g < n && g < 4 && ((unsigned char)buf[i + g] & 0xC0) == 0x80) g++;
        int id = tok_lookup(v, buf + i, g);
        if (id >= 0) {
            sym[ns++] = (tok_sym){ (int32_t)i, (int32_t)g, 0, 0, id, 1 };
        } else {
            for (size_t k = 0; k < g; k++) {
                int32_t bid = v->byte_id[(unsigned char)buf[i + k]];
                if (bid < 0) {
                    it_fail(err, INTACT_E_FORMAT, "tokenize: byte 0x%02x has no token and the "
                            "vocabulary has no <unk>", (unsigned char)buf[i + k]);
                    goto done;
                }
                sym[ns++] = (tok_sym){ (int32_t)(i + k), 1, 0, 0, bid, 0 };
            }
        }
        i += g;
    }
    for (int32_t k = 0; k < ns; k++) {
        sym[k].prev = k - 1;
        sym[k].next = k + 1 < ns ? k + 1 : -1;
    }
    for (int32_t k = 0; k + 1 < ns; k++)
        if (spm_try_pair(&st, k, k + 1, 1)) goto nomem;
    tok_heap_heapify(&st.heap);

    while (st.heap.n) {
        tok_cand c = tok_heap_pop(&st.heap);
        int32_t left = tok_cand_left(&c);
        tok_sym *a = &sym[left];
        if (a->len == 0 || a->next < 0) continue;
        tok_sym *b = &sym[a->next];
        // Stale if either side died or grew since the candidate was pushed.
        if (b->len == 0 || a->len + b->len != c.total) continue;
        a->len = c.total;
        a->id = c.id;
        a->next = b->next;
        if (b->next >= 0) sym[b->next].prev = left;
        b->len = 0;
        if (spm_try_pair(&st, a->prev, left, 0) || spm_try_pair(&st, left, a->next, 0)) goto nomem;
    }
    // Symbol 0 is never the right side of a merge, so it heads the list.
    for (int32_t k = 0; k >= 0; k = sym[k].next) {
        if (tok_emit(out, max, &count, sym[k].id)) {
            it_fail(err, INTACT_E_LIMIT, "tokenize: more than %d tokens", INT32_MAX);
            goto done;
        }
    }
    rc = count;
    goto done;
nomem:
    it_fail(err, INTACT_E_NOMEM, "tokenize: out of memory for merge candidates");
done:
    free(st.heap.a);
    free(sym);
    free(buf);
    return rc;
}
