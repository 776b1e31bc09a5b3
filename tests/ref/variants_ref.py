#!/usr/bin/env python3
"""Reference logits for the GGUF variants written by tests/ref/make_variants.py.

    python3 tests/ref/make_variants.py --shared ../shared --out build/variants
    /usr/bin/python3 tests/ref/variants_ref.py --dir build/variants --out tests/goldens/variants.gold

Reads each GGUF with its own small reader (header, key/values, tensor infos; F32/F16/BF16/Q8_0
dequantized with numpy), runs the forward pass in float64 from the math and writes
`<stem>.tokens` (i32) and `<stem>.logits` (f32 (n, vocab)) per model to one golden file
(format: tests/goldens/README.md). Shares nothing with the engine or with make_variants.py.
  rmsnorm(x) = x / sqrt(mean(x^2) + eps) * w
  llama: RoPE on adjacent pairs (x[2i], x[2i+1]); qwen2: NeoX halves (x[i], x[i + hd/2]) and
         q/k/v biases. Angle pos * base^(-2i/head_dim).
  GQA: query head h reads kv head h // (n_heads / n_kv_heads); FFN down(silu(gate h) * up h)
  logits = output_norm(x) @ output^T (token_embd when output.weight is absent)
"""
import argparse
import os
import struct
import sys

import numpy as np
import torch

MODELS = ["stories260K-f16", "stories260K-bf16", "stories260K-q8_0", "qwen2-tiny",
          "llama-tiny-untied-f16", "stories260K-q4_0", "stories260K-q4_1", "stories260K-q5_0",
          "stories260K-q5_1", "llama-tiny-256-kq"]
TOKENS = [1, 37, 201, 5, 299, 88, 150, 42, 7, 260, 111, 64]


# ------------------------------------------------------------------ GGUF reader
class Reader:
    SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
              11: "<q", 12: "<d"}

    def __init__(self, path):
        with open(path, "rb") as f:
            self.buf = f.read()
        self.pos = 0
        if self.buf[:4] != b"GGUF":
            raise ValueError(f"{path}: not GGUF")
        self.pos = 4
        version, n_t, n_kv = self.u("<I"), self.u("<Q"), self.u("<Q")
        if version not in (2, 3):
            raise ValueError(f"{path}: GGUF version {version}")
        self.kv = {}
        for _ in range(n_kv):
            key = self.s()
            self.kv[key] = self.value(self.u("<I"))
        infos = []
        for _ in range(n_t):
            name = self.s()
            nd = self.u("<I")
            ne = [self.u("<Q") for _ in range(nd)]
            infos.append((name, ne, self.u("<I"), self.u("<Q")))
        align = self.kv.get("general.alignment", 32)
        base = (self.pos + align - 1) // align * align
        self.t = {name: self.load(ne, typ, base + off) for name, ne, typ, off in infos}

    def u(self, fmt):
        v = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return v

    def s(self):
        n = self.u("<Q")
        self.pos += n
        return self.buf[self.pos - n:self.pos].decode()

    def value(self, t):
        if t == 8:
            return self.s()
        if t == 9:
            et, n = self.u("<I"), self.u("<Q")
            return [self.value(et) for _ in range(n)]
        return self.u(self.SCALAR[t])

    def load(self, ne, typ, off):
        n = int(np.prod(ne))
        if typ == 0:
            w = np.frombuffer(self.buf, "<f4", n, off).astype(np.float64)
        elif typ == 1:
            w = np.frombuffer(self.buf, "<f2", n, off).astype(np.float64)
        elif typ == 30:
            bits = np.frombuffer(self.buf, "<u2", n, off).astype(np.uint32) << 16
            w = bits.view(np.float32).astype(np.float64)
        elif typ == 8:
            blk = np.frombuffer(self.buf, np.dtype([("d", "<f2"), ("q", "i1", 32)]), n // 32, off)
            w = (blk["d"].astype(np.float64)[:, None] * blk["q"].astype(np.float64)).reshape(-1)
        elif typ in GGML:
            dt, qk, fn = GGML[typ]
            w = fn(np.frombuffer(self.buf, np.dtype(dt), n // qk, off)).reshape(-1)
        else:
            raise ValueError(f"tensor type {typ} not handled")
        return torch.from_numpy(w.reshape(list(reversed(ne))).copy())   # (n_out, n_in)


# ------------------------------------------------------------------ ggml block formats
# numpy dequantizers, one per type, from ggml's block layouts (fields in file order). Each takes the
# structured array of blocks and returns float64 (n_blocks, block size). ggml computes in float32
# (d * scale first, then * q, minus dmin * min); the small difference is far below the tolerance.
def _f(a):
    return a.astype(np.float64)


def _nib(qs):   # (nb, 16) bytes -> (nb, 32): low nibbles are weights 0..15, high ones 16..31
    return np.concatenate([qs & 15, qs >> 4], axis=1).astype(np.int64)


def _bits32(qh):   # (nb, 4) bytes, little-endian u32 -> (nb, 32) bits
    return np.unpackbits(qh, axis=1, bitorder="little").astype(np.int64)


def dq_q4_0(b):
    return _f(b["d"])[:, None] * (_nib(b["qs"]) - 8)


def dq_q4_1(b):
    return _f(b["d"])[:, None] * _nib(b["qs"]) + _f(b["m"])[:, None]


def dq_q5_0(b):
    return _f(b["d"])[:, None] * ((_nib(b["qs"]) | _bits32(b["qh"]) << 4) - 16)


def dq_q5_1(b):
    return _f(b["d"])[:, None] * (_nib(b["qs"]) | _bits32(b["qh"]) << 4) + _f(b["m"])[:, None]


def _crumbs(qs):   # (nb, 64) bytes -> (nb, 256): weight 128n + 32j + l = bits 2j of qs[32n + l]
    q = qs.reshape(-1, 2, 1, 32).astype(np.int64) >> (2 * np.arange(4))[None, None, :, None]
    return (q & 3).reshape(-1, 256)


def dq_q2_K(b):
    sc = b["scales"].astype(np.int64)                              # (nb, 16): sub-blocks of 16
    scale = _f(b["d"])[:, None] * (sc & 15)
    mn = _f(b["dmin"])[:, None] * (sc >> 4)
    q = _crumbs(b["qs"]).reshape(-1, 16, 16)
    return (scale[:, :, None] * q - mn[:, :, None]).reshape(-1, 256)


def dq_q3_K(b):
    s = b["scales"].astype(np.int64)                               # (nb, 12)
    lo = np.concatenate([s[:, :8] & 15, s[:, :8] >> 4], axis=1)    # scale i: nibble of byte i % 8
    hi = np.concatenate([(s[:, 8:12] >> (2 * k)) & 3 for k in range(4)], axis=1)  # byte 8 + i % 4
    sc = (lo | hi << 4) - 32
    hbits = np.unpackbits(b["hmask"], axis=1, bitorder="little").reshape(-1, 32, 8)  # [l, bit]
    h = hbits.transpose(0, 2, 1).reshape(-1, 256).astype(np.int64)  # bit 4n + j -> weights 128n+32j..
    q = _crumbs(b["qs"]) - 4 * (1 - h)
    return (_f(b["d"])[:, None, None] * sc[:, :, None] * q.reshape(-1, 16, 16)).reshape(-1, 256)


def _k4_scales(s):   # (nb, 12) -> scales (nb, 8), mins (nb, 8)
    s = s.astype(np.int64)
    sc = np.concatenate([s[:, 0:4] & 63, (s[:, 8:12] & 15) | (s[:, 0:4] >> 6) << 4], axis=1)
    mn = np.concatenate([s[:, 4:8] & 63, (s[:, 8:12] >> 4) | (s[:, 4:8] >> 6) << 4], axis=1)
    return sc, mn


def _k45(b, qh):
    sc, mn = _k4_scales(b["scales"])
    qs = b["qs"].reshape(-1, 4, 32).astype(np.int64)               # 4 chunks of 32 bytes
    q = np.stack([qs & 15, qs >> 4], axis=2).reshape(-1, 8, 32)    # sub-block 2c lo, 2c + 1 hi
    if qh is not None:
        q = q | (np.unpackbits(qh, axis=1, bitorder="little").reshape(-1, 32, 8)
                 .transpose(0, 2, 1).astype(np.int64) << 4)        # bit s of qh[l]
    y = _f(b["d"])[:, None, None] * sc[:, :, None] * q - _f(b["dmin"])[:, None, None] * mn[:, :, None]
    return y.reshape(-1, 256)


def dq_q4_K(b):
    return _k45(b, None)


def dq_q5_K(b):
    return _k45(b, b["qh"])


def dq_q6_K(b):
    ql = b["ql"].reshape(-1, 2, 2, 32).astype(np.int64)            # [n, half, l]
    low = np.stack([ql[:, :, 0] & 15, ql[:, :, 1] & 15, ql[:, :, 0] >> 4, ql[:, :, 1] >> 4], axis=2)
    qh = b["qh"].reshape(-1, 2, 1, 32).astype(np.int64)
    high = (qh >> (2 * np.arange(4))[None, None, :, None]) & 3     # [n, k, l]
    q = ((low | high << 4) - 32).reshape(-1, 16, 16)
    return (_f(b["d"])[:, None, None] * b["scales"].astype(np.float64)[:, :, None] * q).reshape(-1, 256)


def dq_q8_K(b):
    return _f(b["d"])[:, None] * b["qs"].astype(np.float64)


GGML = {  # id: (block dtype, weights per block, dequantizer)
    2: ([("d", "<f2"), ("qs", "u1", 16)], 32, dq_q4_0),
    3: ([("d", "<f2"), ("m", "<f2"), ("qs", "u1", 16)], 32, dq_q4_1),
    6: ([("d", "<f2"), ("qh", "u1", 4), ("qs", "u1", 16)], 32, dq_q5_0),
    7: ([("d", "<f2"), ("m", "<f2"), ("qh", "u1", 4), ("qs", "u1", 16)], 32, dq_q5_1),
    10: ([("scales", "u1", 16), ("qs", "u1", 64), ("d", "<f2"), ("dmin", "<f2")], 256, dq_q2_K),
    11: ([("hmask", "u1", 32), ("qs", "u1", 64), ("scales", "u1", 12), ("d", "<f2")], 256, dq_q3_K),
    12: ([("d", "<f2"), ("dmin", "<f2"), ("scales", "u1", 12), ("qs", "u1", 128)], 256, dq_q4_K),
    13: ([("d", "<f2"), ("dmin", "<f2"), ("scales", "u1", 12), ("qh", "u1", 32), ("qs", "u1", 128)], 256,
         dq_q5_K),
    14: ([("ql", "u1", 128), ("qh", "u1", 64), ("scales", "i1", 16), ("d", "<f2")], 256, dq_q6_K),
    15: ([("d", "<f4"), ("qs", "i1", 256), ("bsums", "<i2", 16)], 256, dq_q8_K),
}


# ------------------------------------------------------------------ forward (float64)
def rope(x, n_h, hd, base, neox):
    T = x.shape[0]
    theta = base ** (-2.0 * torch.arange(hd // 2, dtype=torch.float64) / hd)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * theta[None]
    cos, sin = torch.cos(ang).to(x.dtype)[:, None, :], torch.sin(ang).to(x.dtype)[:, None, :]
    xh = x.reshape(T, n_h, hd)
    if neox:
        a, b = xh[..., :hd // 2], xh[..., hd // 2:]
        out = torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)
    else:
        a, b = xh[..., 0::2], xh[..., 1::2]
        out = torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1)
    return out.reshape(T, n_h * hd)


def forward(g, tokens, dtype=torch.float64):
    arch = g.kv["general.architecture"]
    hp = lambda k, d=None: g.kv.get(f"{arch}.{k}", d)
    dim, L, nh = hp("embedding_length"), hp("block_count"), hp("attention.head_count")
    nkv, base, eps = hp("attention.head_count_kv", nh), hp("rope.freq_base"), hp("attention.layer_norm_rms_epsilon")
    hd, neox, W = dim // nh, arch == "qwen2", {k: v.to(dtype) for k, v in g.t.items()}
    norm = lambda x, w: x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w
    lin = lambda x, name, bias=None: x @ W[name].t() + (W[bias] if bias in W else 0)
    T = len(tokens)
    x = W["token_embd.weight"][torch.tensor(tokens)]
    mask = torch.full((T, T), float("-inf"), dtype=dtype).triu(1)
    for l in range(L):
        p = f"blk.{l}."
        h = norm(x, W[p + "attn_norm.weight"])
        q = rope(lin(h, p + "attn_q.weight", p + "attn_q.bias"), nh, hd, base, neox)
        k = rope(lin(h, p + "attn_k.weight", p + "attn_k.bias"), nkv, hd, base, neox)
        v = lin(h, p + "attn_v.weight", p + "attn_v.bias")
        qh = q.reshape(T, nh, hd).permute(1, 0, 2)
        kidx = torch.arange(nh) // (nh // nkv)
        kh = k.reshape(T, nkv, hd).permute(1, 0, 2)[kidx]
        vh = v.reshape(T, nkv, hd).permute(1, 0, 2)[kidx]
        att = torch.softmax(qh @ kh.transpose(1, 2) / hd ** 0.5 + mask, dim=-1)
        x = x + lin((att @ vh).permute(1, 0, 2).reshape(T, dim), p + "attn_output.weight")
        h = norm(x, W[p + "ffn_norm.weight"])
        a = lin(h, p + "ffn_gate.weight")
        x = x + lin(a * torch.sigmoid(a) * lin(h, p + "ffn_up.weight"), p + "ffn_down.weight")
    out = W.get("output.weight", W["token_embd.weight"])
    return norm(x, W["output_norm.weight"]) @ out.t()


# ------------------------------------------------------------------ golden writer
def write_gold(path, records):
    b = bytearray(b"ITGD" + struct.pack("<II", 1, len(records)))
    for name, arr in records:
        dtype = {np.dtype("<f4"): 0, np.dtype("<i4"): 1}[arr.dtype]
        nb = name.encode()
        b += struct.pack(f"<I{len(nb)}sII", len(nb), nb, dtype, arr.ndim)
        b += struct.pack(f"<{arr.ndim}I", *arr.shape) + arr.tobytes()
    with open(path, "wb") as f:
        f.write(b)
    print(f"wrote {path} ({len(b)} bytes, {len(records)} records)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default="build/variants")
    ap.add_argument("--out", default="tests/goldens/variants.gold")
    a = ap.parse_args()
    records = []
    for stem in MODELS:
        g = Reader(os.path.join(a.dir, stem + ".gguf"))
        logits = forward(g, TOKENS)
        d32 = (forward(g, TOKENS, torch.float32).double() - logits).abs().max().item()
        print(f"{stem}: {g.kv['general.architecture']}, logits {tuple(logits.shape)}, "
              f"|max| {logits.abs().max().item():.3f}, std {logits.std().item():.3f}, "
              f"float32-vs-float64 {d32:.2g}")
        records.append((stem + ".tokens", np.array(TOKENS, dtype="<i4")))
        records.append((stem + ".logits", logits.numpy().astype("<f4")))
    write_gold(a.out, records)


if __name__ == "__main__":
    sys.exit(main())
