#!/usr/bin/env python3
"""english-1m with LLaMA-like key outlier channels, for the key-balancing rows of the MiKV table.

Real LLaMA keys have a few channels with huge magnitudes (the low-frequency RoPE pairs); our small
test models do not, so a per-token INT2 key group is not dominated by outliers and balancing has
little to fix. This writes the same function with such channels: per kv head, channels {0, 1,
hd/2, hd/2+1} (closed under both RoPE pairings) of W_k multiplied by S and of W_q divided by S, so
every q.k — and the model's output — is unchanged (S = 8 is a power of two: exact in float).

    python3 bench/key_outliers.py ../shared/models/english-1m.bin /tmp/english-1m-keyout.gguf [S]

Pure standard library; reuses the GGUF writer of tests/ref/make_variants.py. Run the result with
-z ../shared/models/tok512.bin.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import make_variants as mv  # noqa: E402


def main():
    src, out = sys.argv[1], sys.argv[2]
    s = float(sys.argv[3]) if len(sys.argv) > 3 else 8.0
    kvs, w = mv.read_llama2c(src)
    hp = {k: v for k, _, v in kvs}
    dim, nh, nkv = hp["llama.embedding_length"], hp["llama.attention.head_count"], hp["llama.attention.head_count_kv"]
    hd, rep = dim // nh, nh // nkv
    chans = [0, 1, hd // 2, hd // 2 + 1]
    for l in range(hp["llama.block_count"]):
        _, wq = w[f"blk.{l}.attn_q.weight"]
        _, wk = w[f"blk.{l}.attn_k.weight"]
        for h in range(nkv):
            for c in chans:
                r = h * hd + c
                wk[r * dim:(r + 1) * dim] = [x * s for x in wk[r * dim:(r + 1) * dim]]
                for g in range(rep):
                    r = (h * rep + g) * hd + c
                    wq[r * dim:(r + 1) * dim] = [x / s for x in wq[r * dim:(r + 1) * dim]]
    mv.write_gguf(out, kvs, mv.model_tensors(w, mv.F32))


if __name__ == "__main__":
    main()
