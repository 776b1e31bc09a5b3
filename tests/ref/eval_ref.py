#!/usr/bin/env python3
"""Independent PyTorch reference for perplexity and KL divergence (intact_eval_ppl / intact_eval_kld).

Writes tests/goldens/eval.gold, which tests/test_eval.c and tests/test_cli.c compare against.
Run with Debian's interpreter (it has python3-torch and python3-numpy):

    /usr/bin/python3 tests/ref/eval_ref.py --shared ../shared --out tests/goldens

Semantics (written from the specification, not from the engine's code):
  * the text is tokenized once WITHOUT BOS (llama2.c encode: dummy-prefix " ", per-codepoint lookup
    with byte fallback, greedy merging of the highest-scoring adjacent pair, leftmost on ties);
  * it is cut into consecutive chunks of n_ctx - 1 tokens (complete chunks only; a text shorter than
    n_ctx - 1 tokens is one chunk of all of them), at most max_chunks (0: all);
  * each chunk is evaluated as [BOS] + chunk from an empty cache; the logits at position i
    (0 = BOS) score chunk token i; ppl = exp(mean NLL over all scored tokens);
  * KLD: per scored position KL(base || model) = sum_v p_base(v) (log p_base(v) - log p_model(v))
    over the softmax of the logits; mean, p99 = sorted ascending list at index ceil(0.99 N) - 1,
    top1 = fraction of positions whose argmax agrees, ppl of the model and of the base.
The forward runs in float32 (tests/ref/llama_ref.py); log-softmax and statistics in float64.
"""
import argparse
import heapq
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llama_ref import BOS, Checkpoint, Tokenizer, forward, read_golden, write_golden  # noqa: E402

PREFIX_BYTES = 4000


def text_prefix(raw, n):
    """Largest prefix of raw of at most n bytes that does not cut a UTF-8 sequence."""
    n = min(n, len(raw))
    while n > 0 and n < len(raw) and (raw[n] & 0xC0) == 0x80:
        n -= 1
    return raw[:n]


def encode_fast(tok, data):
    """llama2.c encode without BOS, same result as Tokenizer.encode(bos=False) but O(n log n):
    a heap of candidate merges keyed by (-score, position of the left token) picks the
    highest-scoring adjacent pair, leftmost on ties, exactly like the quadratic rescan."""
    ids = []
    if len(data) > 0:
        ids.append(tok.lookup[b" "])
    i = 0
    while i < len(data):
        j = i + 1
        while j < len(data) and (data[j] & 0xC0) == 0x80 and j - i < 4:
            j += 1
        cp = data[i:j]
        if cp in tok.lookup:
            ids.append(tok.lookup[cp])
        else:
            ids.extend(b + 3 for b in cp)
        i = j
    n = len(ids)
    nxt = list(range(1, n + 1))
    prv = list(range(-1, n - 1))
    alive = [True] * n
    heap = []

    def push(a):
        b = nxt[a]
        if b < n:
            tid = tok.lookup.get(tok.pieces[ids[a]] + tok.pieces[ids[b]])
            if tid is not None:
                heapq.heappush(heap, (-tok.scores[tid], a, ids[a], ids[b], tid))

    for a in range(n - 1):
        push(a)
    while heap:
        _, a, ida, idb, tid = heapq.heappop(heap)
        b = nxt[a] if alive[a] else n
        if not alive[a] or b >= n or ids[a] != ida or ids[b] != idb:
            continue  # stale entry
        ids[a] = tid
        alive[b] = False
        nxt[a] = nxt[b]
        if nxt[b] < n:
            prv[nxt[b]] = a
        if prv[a] >= 0:
            push(prv[a])
        push(a)
    out, k = [], 0
    while k < n:
        out.append(ids[k])
        k = nxt[k]
    return out


def chunks_of(tokens, n_ctx, max_chunks):
    per = n_ctx - 1
    if len(tokens) < per:
        ch = [tokens] if tokens else []
    else:
        ch = [tokens[i * per:(i + 1) * per] for i in range(len(tokens) // per)]
    if max_chunks > 0:
        ch = ch[:max_chunks]
    return ch


def chunk_logprobs(ck, chunk):
    """float64 log-softmax of the logits at positions 0..len(chunk)-1 of [BOS] + chunk."""
    logits = forward(ck, [BOS] + list(chunk), torch.float32)[:len(chunk)]
    return torch.log_softmax(logits.double(), dim=-1)


def eval_ppl(ck, tokens, n_ctx, max_chunks):
    ch = chunks_of(tokens, n_ctx, max_chunks)
    nll_sum, count = 0.0, 0
    for c in ch:
        lp = chunk_logprobs(ck, c)
        nll_sum += -float(lp[torch.arange(len(c)), torch.tensor(c)].sum())
        count += len(c)
    nll = nll_sum / count
    return math.exp(nll), nll, count, len(ch)


def eval_kld(model, base, tokens, n_ctx, max_chunks):
    ch = chunks_of(tokens, n_ctx, max_chunks)
    kls, agree, nll_m, nll_b, count = [], 0, 0.0, 0.0, 0
    for c in ch:
        lm = chunk_logprobs(model, c)
        lb = chunk_logprobs(base, c)
        kls.extend((lb.exp() * (lb - lm)).sum(-1).tolist())
        agree += int((lm.argmax(-1) == lb.argmax(-1)).sum())
        idx, tt = torch.arange(len(c)), torch.tensor(c)
        nll_m += -float(lm[idx, tt].sum())
        nll_b += -float(lb[idx, tt].sum())
        count += len(c)
    s = sorted(kls)
    p99 = s[math.ceil(0.99 * len(s)) - 1]
    return dict(kld_mean=sum(kls) / len(kls), kld_p99=p99, top1=agree / count,
                ppl=math.exp(nll_m / count), ppl_base=math.exp(nll_b / count),
                tokens=count, chunks=len(ch))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--out", default="tests/goldens")
    ap.add_argument("--no-check", action="store_true", help="skip the 9.558 whole-file check")
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    m = os.path.join(args.shared, "models")
    en = Checkpoint(os.path.join(m, "english-1m.bin"))
    st = Checkpoint(os.path.join(m, "stories260K.bin"))
    tok = Tokenizer(os.path.join(m, "tok512.bin"), en.vocab)
    with open(os.path.join(args.shared, "data", "eval-en.txt"), "rb") as f:
        raw = f.read()
    data = text_prefix(raw, PREFIX_BYTES)

    tokens = encode_fast(tok, data)
    slow = tok.encode(data.decode("utf-8"), bos=False)
    if tokens != slow:
        print("fast and reference tokenizers disagree", file=sys.stderr)
        return 1
    print(f"prefix: {len(data)} bytes -> {len(tokens)} tokens (fast == reference encode)")

    ppl, nll, count, nch = eval_ppl(en, tokens, 64, 0)
    print(f"en1m.ppl: ppl {ppl:.9g} nll {nll:.9g} tokens {count} chunks {nch}")
    k = eval_kld(st, en, tokens, 64, 4)
    print("kld.en1m_vs_stories: " + " ".join(f"{a} {b:.9g}" for a, b in k.items()))

    recs = [("en1m.ppl", np.array([ppl, nll, count], dtype=np.float32)),
            ("kld.en1m_vs_stories", np.array([k["kld_mean"], k["kld_p99"], k["top1"], k["ppl"],
                                              k["ppl_base"]], dtype=np.float32))]
    path = os.path.join(args.out, "eval.gold")
    size = write_golden(path, recs)
    read_golden(path)
    print(f"eval.gold: {size} bytes")

    if not args.no_check:
        all_tokens = encode_fast(tok, raw)
        ppl8, nll8, count8, nch8 = eval_ppl(en, all_tokens, 256, 8)
        print(f"check: whole file {len(raw)} bytes -> {len(all_tokens)} tokens; english-1m "
              f"n_ctx 256, 8 chunks: ppl {ppl8:.4f} (nll {nll8:.6f}, {count8} tokens, {nch8} chunks); "
              f"models README says 9.558")
    return 0


if __name__ == "__main__":
    sys.exit(main())
