#!/usr/bin/env python3
"""Writes small GGUF test models covering every tensor type and both architectures.

Pure Python 3 standard library (struct, random), deterministic:

    python3 tests/ref/make_variants.py --shared ../shared --out build/variants

Files written to --out:
  stories260K-f16.gguf, stories260K-bf16.gguf, stories260K-q8_0.gguf
      ../shared/models/stories260K.bin (llama2.c v0) as GGUF v3: every 2-D matrix (token_embd too)
      in that type, norm vectors in F32. Tied classifier (no output.weight), no tokenizer keys.
      In the q8_0 file ffn_down stays F16: its rows are hidden = 172 long, not a multiple of the
      32-weight Q8_0 block, which the engine (like ggml) requires of quantized rows.
  qwen2-tiny.gguf            random qwen2 (NeoX RoPE, q/k/v biases, untied output), all F32
  llama-tiny-untied-f16.gguf random llama (untied output.weight), matrices F16
  stories260K-{q4_0,q4_1,q5_0,q5_1}.gguf
                             the same in ggml's 32-blocks (ffn_down F16, as for q8_0)
  llama-tiny-256-kq.gguf     random llama, dim 256, hidden 512, 2 layers, GQA 4/2, vocab 512 (tok512),
                             untied; matrices in the k-quants Q2_K..Q8_K (KQ_TYPES), norms F32
  llama-tiny-256-f16.gguf    the same weights in F16 (the CLI test's `kld --base`)
  bad-q8_0-shape.gguf        stories260K-q8_0 but ffn_down claimed Q8_0 with 172-long rows
                             (6 blocks/row of data): the loader must reject it

Conversions: F16 with struct 'e' (round to nearest even); BF16 rounds the fp32 bits to nearest
even; Q8_0 per block of 32: d = max|w| / 127 stored as f16, q = round-half-away(w / d) using the
f16-rounded d (q = 0 when d == 0), dequantized w = d * q (ggml's block_q8_0: f16 d + 32 int8).
Random weights: matrices N(0, 1/sqrt(n_in)) so activations stay O(1), embeddings N(0, 1),
norm weights 1 + N(0, 0.1), biases N(0, 0.1).
"""
import argparse
import math
import os
import random
import struct

F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, BF16 = 0, 1, 2, 3, 6, 7, 8, 30
Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K = 10, 11, 12, 13, 14, 15
KV_U32, KV_F32, KV_STR = 4, 6, 8
ALIGN = 32


# ------------------------------------------------------------------ tensor encodings
def enc_f32(w):
    return struct.pack(f"<{len(w)}f", *w)


def enc_f16(w):
    return struct.pack(f"<{len(w)}e", *w)


def enc_bf16(w):
    bits = struct.unpack(f"<{len(w)}I", struct.pack(f"<{len(w)}f", *w))
    return struct.pack(f"<{len(w)}H", *(((b + 0x7FFF + ((b >> 16) & 1)) >> 16) & 0xFFFF for b in bits))


def enc_q8_0(w):
    out = bytearray()
    for i in range(0, len(w), 32):
        blk = w[i:i + 32]
        d = struct.unpack("<e", struct.pack("<e", max(abs(x) for x in blk) / 127.0))[0]
        q = [0] * 32
        if d != 0.0:
            q = [max(-127, min(127, int(math.copysign(math.floor(abs(x / d) + 0.5), x)))) for x in blk]
        out += struct.pack("<e32b", d, *q)
    return bytes(out)


# ---- ggml's other block formats. Plain round-to-nearest quantizers (not ggml's error-minimizing
# searches: any valid encoding serves, since the reference dequantizes the very bytes written).
# Every scale is rounded to f16 first and the codes are computed against the rounded value.
def f16r(v):
    return struct.unpack("<e", struct.pack("<e", v))[0]


def rnd(v, lo, hi):
    return max(lo, min(hi, int(math.floor(v + 0.5))))


def codes(blk, scale, lo, hi, offset=0.0):
    """round((x + offset) / scale) clamped to [lo, hi]; all lo when the scale is 0."""
    return [rnd((x + offset) / scale, lo, hi) if scale else max(lo, min(hi, 0)) for x in blk]


def nibbles(q):
    """32 codes -> 16 bytes: q[j] in the low nibble, q[j + 16] in the high one."""
    return bytes((q[j] & 15) | (q[j + 16] & 15) << 4 for j in range(16))


def fifth_bits(q):
    return struct.pack("<I", sum(((v >> 4) & 1) << i for i, v in enumerate(q)))


def enc_q4_0(w):   # d (f16); qs[16]: x = d * (q - 8)
    out = bytearray()
    for i in range(0, len(w), 32):
        blk = w[i:i + 32]
        d = f16r(max(abs(x) for x in blk) / 7.0)
        out += struct.pack("<e", d) + nibbles([c + 8 for c in codes(blk, d, -8, 7)])
    return bytes(out)


def enc_q4_1(w):   # d, m (f16); qs[16]: x = d * q + m
    out = bytearray()
    for i in range(0, len(w), 32):
        blk = w[i:i + 32]
        m = f16r(min(blk))
        d = f16r((max(blk) - m) / 15.0)
        out += struct.pack("<ee", d, m) + nibbles(codes(blk, d, 0, 15, -m))
    return bytes(out)


def enc_q5_0(w):   # d; qh (32 fifth bits, u32 LE); qs[16]: x = d * (q - 16)
    out = bytearray()
    for i in range(0, len(w), 32):
        blk = w[i:i + 32]
        d = f16r(max(abs(x) for x in blk) / 15.0)
        q = [c + 16 for c in codes(blk, d, -16, 15)]
        out += struct.pack("<e", d) + fifth_bits(q) + nibbles(q)
    return bytes(out)


def enc_q5_1(w):   # d, m; qh; qs[16]: x = d * q + m
    out = bytearray()
    for i in range(0, len(w), 32):
        blk = w[i:i + 32]
        m = f16r(min(blk))
        d = f16r((max(blk) - m) / 31.0)
        q = codes(blk, d, 0, 31, -m)
        out += struct.pack("<ee", d, m) + fifth_bits(q) + nibbles(q)
    return bytes(out)


def sub_affine(blk, n_sub, qmax):
    """Per sub-block (scale, min >= 0) with x ~ scale * q - min, q in [0, qmax]."""
    size = len(blk) // n_sub
    out = []
    for s in range(n_sub):
        sb = blk[s * size:(s + 1) * size]
        mn = min(0.0, min(sb))
        out.append(((max(sb) - mn) / qmax, -mn))
    return out


def super_scales(vals, top):
    """Super-block scale for non-negative sub-scales coded in [0, top]: (d, codes)."""
    d = f16r(max(vals) / top)
    return d, [rnd(v / d, 0, top) if d else 0 for v in vals]


def enc_q2_K(w):   # scales[16] (lo scale, hi min, 4 bits each); qs[64] (2 bits); d; dmin
    out = bytearray()
    for i in range(0, len(w), 256):
        blk = w[i:i + 256]
        sm = sub_affine(blk, 16, 3)
        d, sc = super_scales([a for a, _ in sm], 15)
        dmin, mc = super_scales([b for _, b in sm], 15)
        q = []
        for s in range(16):
            q += codes(blk[16 * s:16 * s + 16], d * sc[s], 0, 3, dmin * mc[s])
        qs = bytearray(64)
        for n in range(2):
            for j in range(4):
                for l in range(32):
                    qs[32 * n + l] |= q[128 * n + 32 * j + l] << (2 * j)
        out += bytes(sc[s] | mc[s] << 4 for s in range(16)) + qs + struct.pack("<ee", d, dmin)
    return bytes(out)


def enc_q3_K(w):   # hmask[32]; qs[64]; scales[12] (16 x 6 bits, +32); d.  x = d*(sc-32)*q, q in [-4, 3]
    out = bytearray()
    for i in range(0, len(w), 256):
        blk = w[i:i + 256]
        sub = [max(blk[16 * s:16 * s + 16], key=abs) / -4.0 for s in range(16)]   # signed scales
        d = f16r(max(abs(v) for v in sub) / 31.0)
        sc = [rnd(v / d, -32, 31) if d else 0 for v in sub]
        q = []
        for s in range(16):
            q += codes(blk[16 * s:16 * s + 16], d * sc[s], -4, 3)
        hmask, qs = bytearray(32), bytearray(64)
        for n in range(2):
            for j in range(4):
                for l in range(32):
                    u = q[128 * n + 32 * j + l] + 4          # 0..7: bit 2 -> hmask, 2 low bits -> qs
                    qs[32 * n + l] |= (u & 3) << (2 * j)
                    hmask[l] |= (u >> 2) << (4 * n + j)
        u6 = [v + 32 for v in sc]
        scales = bytearray(12)
        for s in range(16):
            scales[s % 8] |= (u6[s] & 15) << (4 * (s // 8))
            scales[8 + s % 4] |= (u6[s] >> 4) << (2 * (s // 4))
        out += hmask + qs + scales + struct.pack("<e", d)
    return bytes(out)


def pack_k4_scales(sc, mc):
    """8 scales + 8 mins of 6 bits into 12 bytes (Q4_K / Q5_K)."""
    b = bytearray(12)
    for s in range(8):
        if s < 4:
            b[s] |= sc[s]
            b[s + 4] |= mc[s]
        else:
            b[s + 4] |= (sc[s] & 15) | (mc[s] & 15) << 4
            b[s - 4] |= (sc[s] >> 4) << 6
            b[s] |= (mc[s] >> 4) << 6
    return bytes(b)


def enc_k45(w, five):   # d, dmin; scales[12]; [qh[32]]; qs[128]: x = d*sc*q - dmin*m per 32
    qmax = 31 if five else 15
    out = bytearray()
    for i in range(0, len(w), 256):
        blk = w[i:i + 256]
        sm = sub_affine(blk, 8, qmax)
        d, sc = super_scales([a for a, _ in sm], 63)
        dmin, mc = super_scales([b for _, b in sm], 63)
        q = []
        for s in range(8):
            q += codes(blk[32 * s:32 * s + 32], d * sc[s], 0, qmax, dmin * mc[s])
        qs, qh = bytearray(128), bytearray(32)
        for s in range(8):
            for l in range(32):
                v = q[32 * s + l]
                qs[32 * (s // 2) + l] |= (v & 15) << (4 * (s % 2))
                qh[l] |= (v >> 4) << s
        out += struct.pack("<ee", d, dmin) + pack_k4_scales(sc, mc) + (qh if five else b"") + qs
    return bytes(out)


def enc_q6_K(w):   # ql[128]; qh[64]; scales[16] (int8); d.  x = d*sc*q, q in [-32, 31]
    out = bytearray()
    for i in range(0, len(w), 256):
        blk = w[i:i + 256]
        sub = [max(blk[16 * s:16 * s + 16], key=abs) / -32.0 for s in range(16)]
        d = f16r(max(abs(v) for v in sub) / 127.0)
        sc = [rnd(v / d, -128, 127) if d else 0 for v in sub]
        q = []
        for s in range(16):
            q += codes(blk[16 * s:16 * s + 16], d * sc[s], -32, 31)
        ql, qh = bytearray(128), bytearray(64)
        for n in range(2):
            for k in range(4):
                for l in range(32):
                    u = q[128 * n + 32 * k + l] + 32
                    ql[64 * n + l + 32 * (k & 1)] |= (u & 15) << (4 * (k // 2))
                    qh[32 * n + l] |= (u >> 4) << (2 * k)
        out += ql + qh + struct.pack("<16b", *sc) + struct.pack("<e", d)
    return bytes(out)


def enc_q8_K(w):   # d (f32!); qs[256]; bsums[16]
    out = bytearray()
    for i in range(0, len(w), 256):
        blk = w[i:i + 256]
        d = struct.unpack("<f", struct.pack("<f", max(abs(x) for x in blk) / 127.0))[0]
        q = codes(blk, d, -127, 127)
        out += struct.pack("<f256b16h", d, *q, *(sum(q[16 * s:16 * s + 16]) for s in range(16)))
    return bytes(out)


ENCODE = {F32: enc_f32, F16: enc_f16, BF16: enc_bf16, Q8_0: enc_q8_0, Q4_0: enc_q4_0, Q4_1: enc_q4_1,
          Q5_0: enc_q5_0, Q5_1: enc_q5_1, Q2_K: enc_q2_K, Q3_K: enc_q3_K,
          Q4_K: lambda w: enc_k45(w, False), Q5_K: lambda w: enc_k45(w, True), Q6_K: enc_q6_K,
          Q8_K: enc_q8_K}


# ------------------------------------------------------------------ GGUF v3 writer
def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def write_gguf(path, kvs, tensors):
    """kvs: [(key, kv_type, value)]; tensors: [(name, ne, type, data_bytes)]."""
    kvs = [("general.alignment", KV_U32, ALIGN)] + kvs
    head = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)))
    for key, t, v in kvs:
        head += gstr(key) + struct.pack("<I", t)
        head += struct.pack("<I", v) if t == KV_U32 else struct.pack("<f", v) if t == KV_F32 else gstr(v)
    data = bytearray()
    for name, ne, t, blob in tensors:
        data += b"\0" * (-len(data) % ALIGN)
        head += gstr(name) + struct.pack(f"<I{len(ne)}QIQ", len(ne), *ne, t, len(data))
        data += blob
    head += b"\0" * (-len(head) % ALIGN)
    with open(path, "wb") as f:
        f.write(head + data)
    print(f"wrote {path} ({len(head) + len(data)} bytes, {len(tensors)} tensors)")


def hparams(arch, dim, hidden, n_layers, n_heads, n_kv, ctx, base, eps):
    return [("general.architecture", KV_STR, arch), ("general.name", KV_STR, "intact-variant"),
            (f"{arch}.embedding_length", KV_U32, dim), (f"{arch}.feed_forward_length", KV_U32, hidden),
            (f"{arch}.block_count", KV_U32, n_layers), (f"{arch}.attention.head_count", KV_U32, n_heads),
            (f"{arch}.attention.head_count_kv", KV_U32, n_kv), (f"{arch}.context_length", KV_U32, ctx),
            (f"{arch}.rope.freq_base", KV_F32, base),
            (f"{arch}.attention.layer_norm_rms_epsilon", KV_F32, eps)]


def model_tensors(w, mat_type, type_of=None):
    """w: {gguf name: (ne, flat list)}. 2-D tensors get mat_type (or type_of(name)), 1-D stay F32."""
    out = []
    for name, (ne, vals) in w.items():
        t = F32 if len(ne) == 1 else (type_of(name) if type_of else mat_type)
        out.append((name, ne, t, ENCODE[t](vals)))
    return out


# ------------------------------------------------------------------ stories260K (llama2.c v0)
def read_llama2c(path):
    with open(path, "rb") as f:
        raw = f.read()
    dim, hidden, L, nh, nkv, vocab, seq = struct.unpack("<7i", raw[:28])
    assert vocab > 0, "expects a shared classifier"
    kv = dim * nkv // nh
    fl = struct.unpack(f"<{(len(raw) - 28) // 4}f", raw[28:])
    pos = 0

    def take(*shape):
        nonlocal pos
        n = math.prod(shape)
        a = fl[pos:pos + n]
        pos += n
        per = n // shape[0]
        return [list(a[i * per:(i + 1) * per]) for i in range(shape[0])]

    emb = take(1, vocab * dim)[0]
    parts = {"attn_norm": take(L, dim), "attn_q": take(L, dim * dim), "attn_k": take(L, kv * dim),
             "attn_v": take(L, kv * dim), "attn_output": take(L, dim * dim), "ffn_norm": take(L, dim),
             "ffn_gate": take(L, hidden * dim), "ffn_down": take(L, dim * hidden),
             "ffn_up": take(L, hidden * dim)}
    final = take(1, dim)[0]
    shapes = {"attn_norm": [dim], "attn_q": [dim, dim], "attn_k": [dim, kv], "attn_v": [dim, kv],
              "attn_output": [dim, dim], "ffn_norm": [dim], "ffn_gate": [dim, hidden],
              "ffn_down": [hidden, dim], "ffn_up": [dim, hidden]}
    w = {"token_embd.weight": ([dim, vocab], emb)}
    for l in range(L):
        for k in parts:
            w[f"blk.{l}.{k}.weight"] = (shapes[k], parts[k][l])
    w["output_norm.weight"] = ([dim], final)
    kvs = hparams("llama", dim, hidden, L, nh, nkv, seq, 10000.0, 1e-5)
    return kvs, w


# ------------------------------------------------------------------ random models
def random_model(seed, arch, dim, hidden, L, nh, nkv, vocab, ctx, base, eps):
    rng = random.Random(seed)
    kv = dim * nkv // nh

    def mat(n_in, n_out):
        return ([n_in, n_out], [rng.gauss(0.0, 1.0 / math.sqrt(n_in)) for _ in range(n_in * n_out)])

    def vec(n, mean, sd):
        return ([n], [mean + rng.gauss(0.0, sd) for _ in range(n)])

    w = {"token_embd.weight": ([dim, vocab], [rng.gauss(0.0, 1.0) for _ in range(dim * vocab)])}
    for l in range(L):
        p = f"blk.{l}."
        w[p + "attn_norm.weight"] = vec(dim, 1.0, 0.1)
        w[p + "attn_q.weight"] = mat(dim, dim)
        w[p + "attn_k.weight"] = mat(dim, kv)
        w[p + "attn_v.weight"] = mat(dim, kv)
        if arch == "qwen2":
            w[p + "attn_q.bias"] = vec(dim, 0.0, 0.1)
            w[p + "attn_k.bias"] = vec(kv, 0.0, 0.1)
            w[p + "attn_v.bias"] = vec(kv, 0.0, 0.1)
        w[p + "attn_output.weight"] = mat(dim, dim)
        w[p + "ffn_norm.weight"] = vec(dim, 1.0, 0.1)
        w[p + "ffn_gate.weight"] = mat(dim, hidden)
        w[p + "ffn_up.weight"] = mat(dim, hidden)
        w[p + "ffn_down.weight"] = mat(hidden, dim)
    w["output_norm.weight"] = vec(dim, 1.0, 0.1)
    w["output.weight"] = mat(dim, vocab)
    return hparams(arch, dim, hidden, L, nh, nkv, ctx, base, eps), w


# llama-tiny-256-kq: which k-quant each matrix is stored in (each type used at least twice).
KQ_TYPES = {"token_embd": Q4_K, "output": Q6_K,
            "blk.0.attn_q": Q4_K, "blk.0.attn_k": Q6_K, "blk.0.attn_v": Q5_K, "blk.0.attn_output": Q3_K,
            "blk.0.ffn_gate": Q2_K, "blk.0.ffn_up": Q8_K, "blk.0.ffn_down": Q4_K,
            "blk.1.attn_q": Q6_K, "blk.1.attn_k": Q3_K, "blk.1.attn_v": Q2_K, "blk.1.attn_output": Q5_K,
            "blk.1.ffn_gate": Q8_K, "blk.1.ffn_up": Q4_K, "blk.1.ffn_down": Q6_K}


def kq_type(name):
    return KQ_TYPES[name[:-len(".weight")]]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--models", default=None, help="directory of stories260K.bin (default: SHARED/models)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    out = lambda name: os.path.join(a.out, name)

    kvs, w = read_llama2c(os.path.join(a.models or os.path.join(a.shared, "models"), "stories260K.bin"))
    write_gguf(out("stories260K-f16.gguf"), kvs, model_tensors(w, F16))
    write_gguf(out("stories260K-bf16.gguf"), kvs, model_tensors(w, BF16))
    down_f16 = lambda name: F16 if name.endswith("ffn_down.weight") else Q8_0
    q8 = model_tensors(w, Q8_0, down_f16)
    write_gguf(out("stories260K-q8_0.gguf"), kvs, q8)
    # The same with ffn_down claimed Q8_0 although its rows (172) are not whole blocks; the data is
    # 172 weights zero-padded to 6 blocks per row, the best a careless writer could do.
    bad = []
    for name, ne, t, blob in q8:
        if name.endswith("ffn_down.weight"):
            vals, n_in = w[name][1], ne[0]
            rows = [vals[r * n_in:(r + 1) * n_in] + [0.0] * (-n_in % 32) for r in range(ne[1])]
            t, blob = Q8_0, b"".join(enc_q8_0(r) for r in rows)
        bad.append((name, ne, t, blob))
    write_gguf(out("bad-q8_0-shape.gguf"), kvs, bad)
    for name, t in (("q4_0", Q4_0), ("q4_1", Q4_1), ("q5_0", Q5_0), ("q5_1", Q5_1)):
        write_gguf(out(f"stories260K-{name}.gguf"), kvs,
                   model_tensors(w, t, lambda n, t=t: F16 if n.endswith("ffn_down.weight") else t))

    kvs, w = random_model(1234, "qwen2", 64, 160, 2, 4, 2, 300, 128, 1e6, 1e-6)
    write_gguf(out("qwen2-tiny.gguf"), kvs, model_tensors(w, F32))
    kvs, w = random_model(5678, "llama", 64, 128, 2, 8, 8, 300, 128, 500000.0, 1e-5)
    write_gguf(out("llama-tiny-untied-f16.gguf"), kvs, model_tensors(w, F16))
    # k-quants need rows of 256: a random llama with widths 256 / 512, every k-quant type in use.
    kvs, w = random_model(4242, "llama", 256, 512, 2, 4, 2, 512, 128, 10000.0, 1e-5)
    write_gguf(out("llama-tiny-256-kq.gguf"), kvs, model_tensors(w, None, kq_type))
    write_gguf(out("llama-tiny-256-f16.gguf"), kvs, model_tensors(w, F16))   # kld base for the above


if __name__ == "__main__":
    main()
