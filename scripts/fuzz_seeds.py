#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, generated from the shared test models (nothing committed).

  fuzz_seeds.py --shared ../shared --out build-fuzz/seeds
"""
import argparse, os, struct

def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b

def tiny_gguf():
    # One key of each common kind and two small tensors: the shapes every parser path starts from.
    kv = [gguf_string("general.architecture") + struct.pack("<I", 8) + gguf_string("llama"),
          gguf_string("llama.block_count") + struct.pack("<II", 4, 1),
          gguf_string("llama.rope.freq_base") + struct.pack("<If", 6, 10000.0),
          gguf_string("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 2) + gguf_string("a") + gguf_string("b"),
          gguf_string("flag") + struct.pack("<IB", 7, 1)]
    tinfo = (gguf_string("w") + struct.pack("<IQQIQ", 2, 8, 2, 0, 0) +
             gguf_string("q") + struct.pack("<IQIQ", 1, 32, 8, 64))
    head = b"GGUF" + struct.pack("<IQQ", 3, 2, len(kv)) + b"".join(kv) + tinfo
    head += b"\0" * (-len(head) % 32)
    data = struct.pack("<16f", *range(16)) + b"\0" * 0 + b"\x00\x3c" + bytes(range(32))
    return head + data

def tiny_llama2c(shared_classifier=True):
    dim, hid, L, H, KV, V, S = 8, 16, 1, 2, 1, 4, 4
    hs, kvd = dim // H, dim * KV // H
    n = V * dim + L * dim + L * dim * dim + 2 * L * kvd * dim + L * dim * dim + L * dim
    n += 3 * L * hid * dim + dim + 2 * S * (hs // 2) + (0 if shared_classifier else V * dim)
    head = struct.pack("<7i", dim, hid, L, H, KV, V if shared_classifier else -V, S)
    return head + struct.pack(f"<{n}f", *[(i % 7) * 0.1 for i in range(n)])

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--out", default="build-fuzz/seeds")
    a = ap.parse_args()
    def put(target, name, data):
        d = os.path.join(a.out, target)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    put("fuzz_gguf", "tiny.gguf", tiny_gguf())
    with open(os.path.join(a.shared, "models/stories260K.gguf"), "rb") as f:
        put("fuzz_gguf", "stories-metadata.gguf", f.read(16384))  # header + metadata, data cut off
    put("fuzz_llama2c", "tiny-shared.bin", tiny_llama2c(True))
    put("fuzz_llama2c", "tiny-unshared.bin", tiny_llama2c(False))
    with open(os.path.join(a.shared, "data/eval-en.txt"), "rb") as f:
        text = f.read(2000)
    with open(os.path.join(a.shared, "models/tok512.bin"), "rb") as f:
        tok = f.read()
    for mode in range(4):  # fuzz_tokenizer: the first byte selects the mode
        put("fuzz_tokenizer", f"text-{mode}", bytes([mode]) + text[:500])
    put("fuzz_tokenizer", "tok512", bytes([0]) + tok[:4000])
    put("fuzz_tokenizer", "utf8", bytes([1]) + "café ☃ naïve — 日本語 \xff".encode("utf-8", "surrogatepass") + b"\xff\xc3")

if __name__ == "__main__":
    main()
