#!/usr/bin/python3
"""How much of GPTQ's Hessian H = sum x x^T comes from [BOS] (docs/intactkv.md).

For each layer and each linear-layer input GPTQ collects (attn_norm -> q/k/v, wo_in -> o,
ffn_norm -> gate/up, down_in -> down), over N calibration windows of L tokens of calib-en.txt that
start with [BOS] (as `intact quantize` builds them), prints the share of trace(H) that position 0
([BOS]) contributes, and its share of the largest diagonal entry of H. Computed on the FP model
(GPTQ's later layers see a partially quantized model; the BOS activations barely change).
Uses the independent PyTorch reference tests/ref/llama_ref.py (Debian python3-torch).
Usage: bench/bos_hessian.py [MODEL.bin] [N] [L]   (default ../shared/models/english-12m.bin 8 512)"""
import os
import random
import sys

import torch

torch.set_num_threads(1)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
from llama_ref import BOS, Checkpoint, Tokenizer, rmsnorm, rope  # noqa: E402

shared = os.environ.get("INTACT_SHARED", "../shared")
path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(shared, "models", "english-12m.bin")
N = int(sys.argv[2]) if len(sys.argv) > 2 else 8
L = int(sys.argv[3]) if len(sys.argv) > 3 else 512
ck = Checkpoint(path)
tok = Tokenizer(os.path.join(shared, "models", "tok512.bin"), ck.vocab)
ids = tok.encode(open(os.path.join(shared, "data", "calib-en.txt"), encoding="utf-8").read()[:40000], bos=False)
random.seed(0)
W = {k: v.float() for k, v in ck.w.items()}
names = ["attn_norm", "wo_in", "ffn_norm", "down_in"]
H = {(l, n): 0 for l in range(ck.n_layers) for n in names}
Hb = {(l, n): 0 for l in range(ck.n_layers) for n in names}
hs, nh, nkv = ck.head_size, ck.n_heads, ck.n_kv_heads


def add(l, n, x):
    H[(l, n)] = H[(l, n)] + (x * x).sum(0).double()       # diagonal of sum x x^T
    Hb[(l, n)] = Hb[(l, n)] + (x[0] * x[0]).double()        # position 0's part of it


with torch.no_grad():
    for _ in range(N):
        s = random.randrange(0, len(ids) - L)
        t = [BOS] + ids[s:s + L - 1]
        T = len(t)
        x = W["token_embedding"][torch.tensor(t)]
        mask = torch.full((T, T), float("-inf")).triu(1)
        for l in range(ck.n_layers):
            h = rmsnorm(x, W["rms_att"][l]); add(l, "attn_norm", h)
            q = rope(h @ W["wq"][l].t(), nh, hs, torch.float32)
            k = rope(h @ W["wk"][l].t(), nkv, hs, torch.float32)
            v = h @ W["wv"][l].t()
            kidx = torch.arange(nh) // (nh // nkv)
            qh = q.reshape(T, nh, hs).permute(1, 0, 2)
            kh = k.reshape(T, nkv, hs).permute(1, 0, 2)[kidx]
            vh = v.reshape(T, nkv, hs).permute(1, 0, 2)[kidx]
            a = torch.softmax(qh @ kh.transpose(1, 2) / hs ** 0.5 + mask, -1)
            o = (a @ vh).permute(1, 0, 2).reshape(T, nh * hs); add(l, "wo_in", o)
            x = x + o @ W["wo"][l].t()
            h = rmsnorm(x, W["rms_ffn"][l]); add(l, "ffn_norm", h)
            g = h @ W["w1"][l].t()
            d = g * torch.sigmoid(g) * (h @ W["w3"][l].t()); add(l, "down_in", d)
            x = x + d @ W["w2"][l].t()
print(f"{os.path.basename(path)}: {N} windows x {L} tokens of calib-en.txt, [BOS] first "
      f"(position 0 is {100 / L:.2f}% of the tokens)")
print()
print("| layer | " + " | ".join(f"{n}: [BOS] share of tr(H) / of max diag (channel)" for n in names) + " |")
print("|---|" + "---|" * len(names))
for l in range(ck.n_layers):
    cells = []
    for n in names:
        d, b = H[(l, n)], Hb[(l, n)]
        j = int(torch.argmax(d))
        cells.append(f"{100 * float(b.sum() / d.sum()):.1f}% / {100 * float(b[j] / d[j]):.1f}% ({j})")
    print(f"| {l} | " + " | ".join(cells) + " |")
