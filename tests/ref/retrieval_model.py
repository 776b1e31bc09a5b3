#!/usr/bin/env python3
"""A hand-built llama2.c model whose greedy answer is known: it always writes DIGITS, then EOS.

Used by the retrieval tests as a "scripted" model with a known accuracy (tests/test_retrieval.c,
the retrieval case of tests/test_cli.c). Standard library only.

How it works: every attention and FFN weight is 0, so both blocks add exactly 0 to the residual
stream and the logits depend on the current token alone (a bigram table). Token embeddings are
one-hot in dim 8: the k digits of the answer get e_1..e_k, every other token e_0; the classifier
maps e_0 -> first digit, e_i -> digit i+1, e_k -> EOS. So after any prompt the greedy continuation
is the answer, whatever the prompt says. A chain keyed on tokens cannot repeat a digit, hence the
distinct-digits rule.

usage: retrieval_model.py --tok tok512.bin --answer 4093 --out model.bin
"""
import argparse
import os
import struct
import sys

DIM, HIDDEN, SEQ = 8, 8, 512
EOS = 2  # llama2.c tokenizers: 0 <unk>, 1 <s>, 2 </s>


def read_vocab(path):
    with open(path, "rb") as f:
        b = f.read()
    o, pieces = 4, []
    while o < len(b):
        _score, n = struct.unpack_from("<fi", b, o)
        o += 8
        pieces.append(b[o:o + n])
        o += n
    return pieces


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tok", required=True)
    ap.add_argument("--answer", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if not a.answer.isdigit() or len(set(a.answer)) != len(a.answer) or len(a.answer) > DIM - 1:
        print("retrieval_model.py: --answer must be 1 to %d distinct digits, got '%s'" % (DIM - 1, a.answer),
              file=sys.stderr)
        return 2
    pieces = read_vocab(a.tok)
    ids = []
    for ch in a.answer:
        if ch.encode() not in pieces:
            print("retrieval_model.py: the tokenizer has no piece '%s'" % ch, file=sys.stderr)
            return 1
        ids.append(pieces.index(ch.encode()))
    vocab = len(pieces)
    k = len(ids)
    emb = [0.0] * (vocab * DIM)
    for t in range(vocab):
        emb[t * DIM + (ids.index(t) + 1 if t in ids else 0)] = 1.0
    # wcls[token][d]: logit of token = wcls[token] . rmsnorm(x); slot s leads to nxt[s].
    nxt = ids + [EOS]  # slot 0 (any other token) -> digit 1, slot i -> digit i+1, slot k -> EOS
    wcls = [0.0] * (vocab * DIM)
    for s in range(k + 1):
        wcls[nxt[s] * DIM + s] = 10.0
    L, head = 1, DIM
    w = []
    w += emb
    w += [1.0] * (L * DIM)                 # rms_att
    w += [0.0] * (4 * L * DIM * DIM)       # wq, wk, wv, wo
    w += [1.0] * (L * DIM)                 # rms_ffn
    w += [0.0] * (3 * L * DIM * HIDDEN)    # w1, w2, w3
    w += [1.0] * DIM                       # rms_final
    w += [0.0] * (2 * SEQ * head // 2)     # freq_cis real / imag (unused by the loader)
    w += wcls
    hdr = struct.pack("<7i", DIM, HIDDEN, L, 1, 1, -vocab, SEQ)  # negative vocab: separate classifier
    tmp = a.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(hdr)
        f.write(struct.pack("<%df" % len(w), *w))
    os.replace(tmp, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
