#!/usr/bin/env python3
"""Independent reference for tests/test_tokenizer.c: a direct, unoptimised port of llama2.c's
encode() (karpathy/llama2.c run.c) over tok512.bin. Prints the C arrays the test hard-codes.

  tokenize_ref.py [--shared ../shared]
"""
import argparse, struct


def load(path):
    d = open(path, "rb").read()
    o = 4
    pieces, scores = [], []
    while o < len(d):
        sc, n = struct.unpack_from("<fi", d, o)
        o += 8
        pieces.append(d[o:o + n])
        scores.append(sc)
        o += n
    return pieces, scores


def encode(text, pieces, scores, bos):
    """text: bytes. llama2.c: BOS, dummy " ", llama2.c's UTF-8 grouping, byte fallback (+3),
    then greedy best-score merges with a full rescan each time (leftmost on ties)."""
    lookup = {}
    for i, p in enumerate(pieces):
        lookup.setdefault(p, i)
    toks = [1] if bos else []
    if text:
        toks.append(lookup[b" "])
    i = 0
    while i < len(text):
        j = i + 1
        while j < len(text) and (text[j] & 0xC0) == 0x80 and j - i < 4:
            j += 1
        g = text[i:j]
        if g in lookup:
            toks.append(lookup[g])
        else:
            toks.extend(b + 3 for b in g)
        i = j
    while True:
        best, best_i, best_id = -1e10, -1, -1
        for k in range(len(toks) - 1):
            s = pieces[toks[k]] + pieces[toks[k + 1]]
            t = lookup.get(s)
            if t is not None and scores[t] > best:
                best, best_i, best_id = scores[t], k, t
        if best_i < 0:
            break
        toks[best_i:best_i + 2] = [best_id]
    return toks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="../shared")
    a = ap.parse_args()
    pieces, scores = load(a.shared + "/models/tok512.bin")
    eval300 = open(a.shared + "/data/eval-en.txt", "rb").read()[:300]
    cases = [
        ("once", b"Once upon a time", True),
        ("empty", b"", True),
        ("empty_nobos", b"", False),
        ("hello", b"Hello world", False),
        ("nl", b"One day.\n\nThe end.", True),
        ("cafe", "caf\u00e9 \u2603".encode(), True),
        ("eval300", eval300, True),
    ]
    for name, text, bos in cases:
        t = encode(text, pieces, scores, bos)
        body = ", ".join(map(str, t))
        print(f"static const int32_t exp_{name}[] = {{ {body} }};  // {len(t)} tokens, bos={int(bos)}")


if __name__ == "__main__":
    main()
