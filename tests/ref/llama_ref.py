#!/usr/bin/env python3
"""Independent PyTorch reference for the LLaMA forward pass (llama2.c v0 checkpoints).

Writes the golden files that tests/test_reference.c compares the C engine against.
Run with Debian's interpreter (it has python3-torch and python3-numpy):

    /usr/bin/python3 tests/ref/llama_ref.py --shared ../shared --out tests/goldens

Everything here is written from the math, not from the engine's code:
  rmsnorm(x) = x / sqrt(mean(x^2) + 1e-5) * w
  RoPE on adjacent pairs (x[2i], x[2i+1]) by angle pos * 10000^(-2i/head_size)
  GQA: query head h reads kv head h // (n_heads / n_kv_heads)
  FFN: w2(silu(w1 h) * w3 h)
The golden file format is described in tests/goldens/README.md.
"""
import argparse
import os
import struct
import sys

import numpy as np
import torch

EPS = 1e-5
ROPE_BASE = 10000.0
BOS = 1


# ------------------------------------------------------------------ checkpoint
class Checkpoint:
    def __init__(self, path):
        with open(path, "rb") as f:
            raw = f.read()
        if len(raw) < 28:
            raise ValueError(f"{path}: too short for a llama2.c header")
        (self.dim, self.hidden_dim, self.n_layers, self.n_heads, self.n_kv_heads,
         vocab, self.seq_len) = struct.unpack("<7i", raw[:28])
        self.shared = vocab > 0
        self.vocab = abs(vocab)
        if self.dim % self.n_heads or self.n_heads % self.n_kv_heads:
            raise ValueError(f"{path}: bad head configuration")
        self.head_size = self.dim // self.n_heads
        self.kv_dim = self.dim * self.n_kv_heads // self.n_heads
        d, hd, L, V, S, kv = (self.dim, self.hidden_dim, self.n_layers, self.vocab,
                              self.seq_len, self.kv_dim)
        layout = [
            ("token_embedding", (V, d)),
            ("rms_att", (L, d)),
            ("wq", (L, d, d)),
            ("wk", (L, kv, d)),
            ("wv", (L, kv, d)),
            ("wo", (L, d, d)),
            ("rms_ffn", (L, d)),
            ("w1", (L, hd, d)),
            ("w2", (L, d, hd)),
            ("w3", (L, hd, d)),
            ("rms_final", (d,)),
            ("freq_cis_real", (S, self.head_size // 2)),
            ("freq_cis_imag", (S, self.head_size // 2)),
        ]
        if not self.shared:
            layout.append(("wcls", (V, d)))
        n_floats = sum(int(np.prod(s)) for _, s in layout)
        expect = 28 + 4 * n_floats
        if len(raw) != expect:
            raise ValueError(f"{path}: size {len(raw)} != expected {expect} from the header")
        data = np.frombuffer(raw, dtype="<f4", offset=28)
        self.w = {}
        off = 0
        for name, shape in layout:
            n = int(np.prod(shape))
            self.w[name] = torch.from_numpy(data[off:off + n].reshape(shape).copy())
            off += n
        if self.shared:
            self.w["wcls"] = self.w["token_embedding"]

    def describe(self):
        return (f"dim {self.dim} hidden {self.hidden_dim} layers {self.n_layers} heads "
                f"{self.n_heads} kv_heads {self.n_kv_heads} vocab {self.vocab} seq_len "
                f"{self.seq_len} shared_classifier {int(self.shared)}")


# ------------------------------------------------------------------ forward
def rmsnorm(x, w):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + EPS) * w


def rope(x, n_heads_x, head_size, dtype):
    """x: (T, n_heads_x*head_size). Rotates adjacent pairs per head."""
    T = x.shape[0]
    i = torch.arange(0, head_size // 2, dtype=torch.float64)
    theta = ROPE_BASE ** (-2.0 * i / head_size)                       # (hs/2,)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * theta[None]  # (T, hs/2)
    cos = torch.cos(ang).to(dtype)[:, None, :]
    sin = torch.sin(ang).to(dtype)[:, None, :]
    xr = x.reshape(T, n_heads_x, head_size // 2, 2)
    a, b = xr[..., 0], xr[..., 1]
    out = torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1)
    return out.reshape(T, n_heads_x * head_size)


def forward(ck, tokens, dtype=torch.float32, capture=None):
    """Full causal forward over `tokens`. Returns logits (T, vocab) in `dtype`.
    capture (dict) receives 'block_out.<l>', 'k.<l>', 'final_norm'."""
    W = {k: v.to(dtype) for k, v in ck.w.items()}
    T = len(tokens)
    hs, nh, nkv = ck.head_size, ck.n_heads, ck.n_kv_heads
    group = nh // nkv
    x = W["token_embedding"][torch.tensor(tokens, dtype=torch.long)]
    mask = torch.full((T, T), float("-inf"), dtype=dtype).triu(1)
    for l in range(ck.n_layers):
        h = rmsnorm(x, W["rms_att"][l])
        q = h @ W["wq"][l].t()
        k = h @ W["wk"][l].t()
        v = h @ W["wv"][l].t()
        q = rope(q, nh, hs, dtype)
        k = rope(k, nkv, hs, dtype)
        if capture is not None:
            capture[f"k.{l}"] = k.clone()
        qh = q.reshape(T, nh, hs).permute(1, 0, 2)                   # (nh, T, hs)
        kh = k.reshape(T, nkv, hs).permute(1, 0, 2)                  # (nkv, T, hs)
        vh = v.reshape(T, nkv, hs).permute(1, 0, 2)
        kidx = torch.arange(nh) // group
        kh, vh = kh[kidx], vh[kidx]                                  # (nh, T, hs)
        att = qh @ kh.transpose(1, 2) / (hs ** 0.5) + mask
        att = torch.softmax(att, dim=-1)
        o = (att @ vh).permute(1, 0, 2).reshape(T, nh * hs)
        x = x + o @ W["wo"][l].t()
        h = rmsnorm(x, W["rms_ffn"][l])
        a = h @ W["w1"][l].t()
        g = a * torch.sigmoid(a)
        x = x + (g * (h @ W["w3"][l].t())) @ W["w2"][l].t()
        if capture is not None:
            capture[f"block_out.{l}"] = x.clone()
    xf = rmsnorm(x, W["rms_final"])
    if capture is not None:
        capture["final_norm"] = xf.clone()
    return xf @ W["wcls"].t()


def check_freq_cis(ck):
    """The file's stored RoPE tables vs the computed ones (informational)."""
    hs = ck.head_size
    i = np.arange(hs // 2, dtype=np.float64)
    theta = ROPE_BASE ** (-2.0 * i / hs)
    ang = np.arange(ck.seq_len, dtype=np.float64)[:, None] * theta[None]
    dr = np.abs(ck.w["freq_cis_real"].numpy() - np.cos(ang)).max()
    di = np.abs(ck.w["freq_cis_imag"].numpy() - np.sin(ang)).max()
    return max(dr, di)


# ------------------------------------------------------------------ tokenizer
class Tokenizer:
    def __init__(self, path, vocab_size):
        with open(path, "rb") as f:
            raw = f.read()
        (self.max_len,) = struct.unpack_from("<i", raw, 0)
        off = 4
        self.pieces, self.scores = [], []
        for _ in range(vocab_size):
            score, n = struct.unpack_from("<fi", raw, off)
            off += 8
            if n < 0 or off + n > len(raw):
                raise ValueError(f"{path}: truncated piece")
            self.pieces.append(raw[off:off + n])
            self.scores.append(score)
            off += n
        self.trailing = len(raw) - off
        # llama2.c looks pieces up by binary search over a sorted copy; with duplicates
        # the hit is unspecified. Record duplicates so we can report them; map to the first.
        self.lookup = {}
        self.duplicates = []
        for i, p in enumerate(self.pieces):
            if p in self.lookup:
                self.duplicates.append((p, self.lookup[p], i))
            else:
                self.lookup[p] = i

    def encode(self, text, bos=True, eos=False):
        data = text.encode("utf-8")
        ids = []
        if bos:
            ids.append(BOS)
        if len(data) > 0:
            ids.append(self.lookup[b" "])  # dummy prefix
        # split into UTF-8 codepoints (at most 4 bytes each), look each up, byte fallback
        i = 0
        while i < len(data):
            j = i + 1
            while j < len(data) and (data[j] & 0xC0) == 0x80 and j - i < 4:
                j += 1
            cp = data[i:j]
            if cp in self.lookup:
                ids.append(self.lookup[cp])
            else:
                ids.extend(b + 3 for b in cp)
            i = j
        # greedy merges: repeatedly merge the adjacent pair with the highest-scoring
        # merged piece (leftmost on ties), until no adjacent pair forms a piece.
        # BOS is part of the list as in llama2.c ("<s>" + x never forms a piece).
        while True:
            best, best_i, best_id = None, -1, -1
            for k in range(len(ids) - 1):
                m = self.pieces[ids[k]] + self.pieces[ids[k + 1]]
                tid = self.lookup.get(m)
                if tid is not None and (best is None or self.scores[tid] > best):
                    best, best_i, best_id = self.scores[tid], k, tid
            if best_i < 0:
                break
            ids[best_i:best_i + 2] = [best_id]
        if eos:
            ids.append(2)
        return ids

    def decode_piece(self, prev, tok):
        p = self.pieces[tok]
        if prev == BOS and p[:1] == b" ":
            p = p[1:]
        if len(p) == 6 and p[:3] == b"<0x" and p[5:] == b">":
            try:
                return bytes([int(p[3:5], 16)])
            except ValueError:
                pass
        return p


# ------------------------------------------------------------------ golden files
DT_F32, DT_I32, DT_U8 = 0, 1, 2


def write_golden(path, records):
    """records: list of (name, numpy array). dtype from the array: float32/int32/uint8."""
    out = bytearray(b"ITGD")
    out += struct.pack("<II", 1, len(records))
    for name, arr in records:
        arr = np.ascontiguousarray(arr)
        if arr.dtype == np.float32:
            dt, le = DT_F32, arr.astype("<f4")
        elif arr.dtype == np.int32:
            dt, le = DT_I32, arr.astype("<i4")
        elif arr.dtype == np.uint8:
            dt, le = DT_U8, arr
        else:
            raise TypeError(f"{name}: unsupported dtype {arr.dtype}")
        nb = name.encode()
        out += struct.pack("<I", len(nb)) + nb
        out += struct.pack("<II", dt, arr.ndim)
        out += struct.pack(f"<{arr.ndim}I", *arr.shape)
        out += le.tobytes()
    with open(path, "wb") as f:
        f.write(out)
    return len(out)


def read_golden(path):
    with open(path, "rb") as f:
        raw = f.read()
    assert raw[:4] == b"ITGD"
    ver, n = struct.unpack_from("<II", raw, 4)
    off, recs = 12, {}
    for _ in range(n):
        (nl,) = struct.unpack_from("<I", raw, off); off += 4
        name = raw[off:off + nl].decode(); off += nl
        dt, nd = struct.unpack_from("<II", raw, off); off += 8
        dims = struct.unpack_from(f"<{nd}I", raw, off); off += 4 * nd
        npdt = {DT_F32: "<f4", DT_I32: "<i4", DT_U8: "u1"}[dt]
        cnt = int(np.prod(dims)) if nd else 1
        a = np.frombuffer(raw, dtype=npdt, count=cnt, offset=off).reshape(dims)
        off += a.nbytes
        recs[name] = a
    assert off == len(raw)
    return recs


# ------------------------------------------------------------------ driver
def fwd_golden(ck, tok, prompt, path, full=True):
    tokens = tok.encode(prompt, bos=True)
    cap = {}
    logits = forward(ck, tokens, torch.float32, cap)
    logits64 = forward(ck, tokens, torch.float64)
    d64 = (logits.double() - logits64).abs().max().item()
    cap64 = {}
    forward(ck, tokens, torch.float64, cap64)
    recs = [("tokens", np.array(tokens, dtype=np.int32))]
    L = ck.n_layers
    layers = range(L) if full else [L - 1]
    for l in layers:
        recs.append((f"block_out.{l}", cap[f"block_out.{l}"].numpy().astype(np.float32)))
    if full:
        recs.append(("k.0", cap["k.0"].numpy().astype(np.float32)))
        recs.append(("final_norm", cap["final_norm"].numpy().astype(np.float32)))
    recs.append(("logits", logits.numpy().astype(np.float32)))
    size = write_golden(path, recs)
    print(f"{os.path.basename(path)}: {len(tokens)} tokens {tokens}")
    print(f"  {size} bytes; records: " + ", ".join(f"{n}{list(a.shape)}" for n, a in recs))
    print(f"  fp32 vs fp64 max-abs: logits {d64:.3g}; block_out.{L-1} "
          f"{(cap[f'block_out.{L-1}'].double() - cap64[f'block_out.{L-1}']).abs().max().item():.3g}"
          f"; final_norm {(cap['final_norm'].double() - cap64['final_norm']).abs().max().item():.3g}")
    return d64


def english12m_golden(ck, tok, prompt, path):
    """english-12m: logits at every position, and the pivot at [BOS]: per layer, max |h| of the
    residual stream after the layer at position 0 and the channel where it sits, with the median
    over the other positions of their own max |h| (the ratio the models README quotes)."""
    tokens = tok.encode(prompt, bos=True)
    cap, cap64 = {}, {}
    logits = forward(ck, tokens, torch.float32, cap)
    logits64 = forward(ck, tokens, torch.float64, cap64)
    L = ck.n_layers
    bos_max = np.array([cap[f"block_out.{l}"][0].abs().max().item() for l in range(L)], dtype=np.float32)
    bos_ch = np.array([int(cap[f"block_out.{l}"][0].abs().argmax()) for l in range(L)], dtype=np.int32)
    others = np.array([cap[f"block_out.{l}"][1:].abs().max(dim=1).values.median().item() for l in range(L)],
                      dtype=np.float32)
    recs = [("tokens", np.array(tokens, dtype=np.int32)),
            ("bos_maxabs", bos_max), ("bos_channel", bos_ch), ("others_median_maxabs", others),
            ("logits", logits.numpy().astype(np.float32))]
    size = write_golden(path, recs)
    d64 = (logits.double() - logits64).abs().max().item()
    h64 = max((cap[f"block_out.{l}"][0].double() - cap64[f"block_out.{l}"][0]).abs().max().item()
              for l in range(L))
    print(f"{os.path.basename(path)}: {len(tokens)} tokens {tokens}, {size} bytes")
    print(f"  max|h| at BOS per layer {np.round(bos_max, 1).tolist()}, channels {bos_ch.tolist()}")
    print(f"  ratio to the other tokens' median max|h| {np.round(bos_max / others, 1).tolist()}")
    print(f"  max |logit| {logits.abs().max().item():.3g}; fp32 vs fp64 max-abs: logits {d64:.3g}, "
          f"BOS residual {h64:.3g}")
    return d64


def greedy(ck, tok, prompt, n_new, path):
    ptoks = tok.encode(prompt, bos=True)
    seq = list(ptoks)
    gen, min_margin = [], float("inf")
    for _ in range(n_new):
        if len(seq) >= ck.seq_len:
            break
        logits = forward(ck, seq, torch.float32)[-1].numpy()
        nxt = int(np.argmax(logits))  # first maximum, like llama2.c argmax
        top2 = np.sort(logits)[-2:]
        min_margin = min(min_margin, float(top2[1] - top2[0]))
        if nxt == BOS:
            break
        gen.append(nxt)
        seq.append(nxt)
    text = b""
    prev = ptoks[-1]
    for t in gen:
        text += tok.decode_piece(prev, t)
        prev = t
    recs = [("prompt", np.array(ptoks, dtype=np.int32)),
            ("greedy", np.array(gen, dtype=np.int32)),
            ("text", np.frombuffer(text, dtype=np.uint8))]
    size = write_golden(path, recs)
    print(f"{os.path.basename(path)}: prompt {ptoks}, {len(gen)} generated, {size} bytes, "
          f"min top1-top2 logit margin {min_margin:.3g}")
    print("  text: " + repr(text.decode("utf-8", errors="replace")))
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--out", default="tests/goldens")
    args = ap.parse_args()
    torch.set_num_threads(1)  # deterministic reductions
    os.makedirs(args.out, exist_ok=True)
    m = os.path.join(args.shared, "models")

    ck = Checkpoint(os.path.join(m, "stories260K.bin"))
    tok = Tokenizer(os.path.join(m, "tok512.bin"), ck.vocab)
    print("stories260K:", ck.describe())
    print(f"  stored freq_cis vs computed: max-abs {check_freq_cis(ck):.3g}")
    print(f"  tok512: max_len {tok.max_len}, {tok.trailing} trailing bytes, "
          f"{len(tok.duplicates)} duplicate pieces {tok.duplicates[:5]}")
    fwd_golden(ck, tok, "Once upon a time, there was a little robot who",
               os.path.join(args.out, "stories260K_fwd.gold"))
    text = greedy(ck, tok, "Once upon a time", 200, os.path.join(args.out, "stories260K_greedy.gold"))
    expect = (b", there was a little girl named Lily. She loved to play outside in the park. "
              b"One day, she saw a big, red ball.")
    print("  matches the model README's greedy text:", text.startswith(expect))

    ck2 = Checkpoint(os.path.join(m, "english-1m.bin"))
    print("english-1m:", ck2.describe())
    print(f"  stored freq_cis vs computed: max-abs {check_freq_cis(ck2):.3g}")
    fwd_golden(ck2, tok, "The president said that the new law",
               os.path.join(args.out, "english1m_fwd.gold"), full=False)

    ck3 = Checkpoint(os.path.join(m, "english-12m.bin"))
    print("english-12m:", ck3.describe())
    print(f"  stored freq_cis vs computed: max-abs {check_freq_cis(ck3):.3g}")
    english12m_golden(ck3, tok, "The president said that the new law would",
                      os.path.join(args.out, "english12m_fwd.gold"))

    # self-check: the files read back
    for f in ("stories260K_fwd.gold", "stories260K_greedy.gold", "english1m_fwd.gold", "english12m_fwd.gold"):
        read_golden(os.path.join(args.out, f))
    return 0 if text.startswith(expect) else 1


if __name__ == "__main__":
    sys.exit(main())
