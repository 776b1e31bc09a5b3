#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, generated from the test models (nothing committed).

  fuzz_seeds.py --shared ../shared --models ../shared/models --out build-fuzz/seeds

stories260K.bin and tok512.bin come from --models (the shared models/); the seeds cut from stories260K.gguf and
eval-en.txt need the shared directory and are left out, with a note on stderr, when it is absent
(the targets still have their synthetic seeds).
"""
import argparse, os, random, struct, subprocess, sys, tempfile

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

def fnv1a(b):
    h = 0xcbf29ce484222325
    for c in b:
        h = ((h ^ c) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h

def ikv_image(n_tokens, fp16, layers=5, kv_heads=4, head_dim=8, vocab=512, fingerprint=0):
    # Structurally valid .ikv for stories260K's shape; fuzz_ikv mode 1 repairs the fingerprint and
    # the checksum, so this is a starting point for the body, not a loadable file on its own.
    head = b"IKV1" + struct.pack("<IQ8I", 1, fingerprint, layers, kv_heads, head_dim, vocab, n_tokens, fp16, 0, 0)
    toks = struct.pack(f"<{n_tokens}i", *[(1 + 37 * i) % vocab for i in range(n_tokens)])
    logits = struct.pack(f"<{vocab}f", *[((i * 13) % 17 - 8) * 0.5 for i in range(vocab)])
    n_kv = layers * n_tokens * kv_heads * head_dim * 2
    vals = [((i * 7) % 23 - 11) * 0.05 for i in range(n_kv)]
    kv = struct.pack(f"<{n_kv}e", *vals) if fp16 else struct.pack(f"<{n_kv}f", *vals)
    body = head + toks + logits + kv
    return body + struct.pack("<Q", fnv1a(body))

def qformat_seeds(put):
    rng = random.Random(1)
    for f in range(24):
        bits, group, sym = (2, 3, 4, 8)[f // 6], (32, 64, 128)[(f // 2) % 3], f % 2
        bb = 2 + (0 if sym else 1) + group * bits // 8
        blocks = b""
        for g in range(2 * 2):  # 2 groups x 2 rows
            d = struct.pack("<e", rng.choice([0.01, 0.5, 3.0, 1e-6]))
            z = b"" if sym else bytes([rng.randrange(1 << bits)])
            blocks += d + z + bytes(rng.randrange(256) for _ in range(group * bits // 8))
            assert len(d + z) + group * bits // 8 == bb
        put("fuzz_qformat", f"dequant-{f:02d}", bytes([f, 1 | 1 << 2 | 1 << 4, 255]) + blocks)
        floats = [rng.gauss(0, 1) for _ in range(group)]
        put("fuzz_qformat", f"quant-{f:02d}", bytes([f, 1 << 6, 200]) + struct.pack(f"<{group}f", *floats))
    special = [float("nan"), float("inf"), -float("inf"), 3e38, -3e38, 1e-45, 0.0, -0.0]
    put("fuzz_qformat", "quant-special", bytes([4, 1 << 6, 255]) + struct.pack("<32f", *(special * 4)))
    put("fuzz_qformat", "dequant-nan-scale", bytes([5, 0, 0]) + b"\xff\x7f" + bytes(range(16)) * 2)

# fuzz_args: byte 0 indexes fuzz_args.c's COMMANDS (info, run, tokenize, ppl, kld, retrieval, bench,
# quantize, ikv build, ikv calibrate, ikv mse, analyze); 255: the input names the command itself.
ARGS_COMMANDS = ["info", "run", "tokenize", "ppl", "kld", "retrieval", "bench", "quantize", "ikv build",
                 "ikv calibrate", "ikv mse", "analyze"]

def args_seeds(put):
    kv = ["--kv-k", "int4", "--kv-v", "int8", "--kv-group", "16", "--kv-key-axis", "channel"]
    mikv = ["--mikv", "--mikv-hi", "0.2", "--mikv-lo-type", "int2", "--mikv-recent", "8"]
    quant = ["--quant", "gptq", "--bits", "3", "--group", "64", "--calib", "-", "--calib-samples", "4",
             "--calib-len", "64", "--rotate", "--abits", "8", "--a-clip", "0.9"]
    lines = [
        ("info", ["-m", "model.gguf", "--tensors", "--json"]),
        ("run", ["-m", "model.gguf", "-p", "Once upon a time", "-n", "200", "--temp", "0"]),
        ("run", ["--model=m.bin", "-z", "tok.bin", "-f", "-", "--top-p=0.9", "--seed", "18446744073709551615",
                 "--stats", "-c", "1024"] + kv),
        ("run", ["-m", "m", "-c", "1073741824", "-t", "0", "--temp", "nan", "--ikv", "p.ikv"]),
        ("run", ["-m", "m", "--ctx-size", "-5", "--n-predict", "1e3", "--help"]),
        ("tokenize", ["-m", "m", "-p", "hi", "--no-bos"]),
        ("ppl", ["-m", "m", "-f", "t.txt", "-c", "64", "--chunks", "2", "--json"] + quant),
        ("kld", ["-m", "m", "--base", "b", "-f", "-", "-c", "64", "--json"] + mikv),
        ("kld", ["-m", "m", "--base", "b", "-f", "t", "--h2o", "0.3", "--h2o-recent", "4", "--kv-balance"]),
        ("retrieval", ["-m", "m", "--lines", "3", "--trials", "2", "--template", "llama3", "-q", "--json"]),
        ("bench", ["-m", "m", "-p", "8", "-n", "4", "--no-bandwidth", "--json", "-c", "320"] + kv),
        ("quantize", ["-m", "in.gguf", "-o", "out.gguf", "--method", "awq", "--bits", "4", "--group", "128",
                      "--sym", "--clip-search", "--act-order", "--quant-seed", "3", "--fake-quant"]),
        ("ikv build", ["-m", "m", "--prompt-file", "-", "-o", "p.ikv", "--fp16"]),
        ("ikv calibrate", ["-m", "q", "--base", "fp", "--ikv", "p.ikv", "--calib", "c.txt", "-o", "p2.ikv",
                           "--samples", "2", "--len", "16", "--epochs", "3", "--lr", "1e-4", "--seed", "5"]),
        ("ikv mse", ["-m", "q", "--base", "fp", "-f", "t", "--max-prefix", "4", "-c", "64", "--chunks", "1"]),
        ("analyze", ["-m", "m", "-p", "text", "--svg", "d", "--layers", "0,2", "--heads", "1", "--first", "8",
                     "--pivot-ratio", "4", "--attn-ratio", "3", "--json"]),
    ]
    for i, (cmd, argv) in enumerate(lines):
        put("fuzz_args", f"argv-{i:02d}", bytes([ARGS_COMMANDS.index(cmd)]) + b"\0".join(a.encode() for a in argv))
    for i, argv in enumerate([["ikv", "calibrate", "--bogus"], ["run", "-m", "x"], ["--help"], ["nosuch"]]):
        put("fuzz_args", f"raw-{i}", bytes([255]) + b"\0".join(a.encode() for a in argv))

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--models", default="../shared/models", help="directory of stories260K.bin and tok512.bin")
    ap.add_argument("--out", default="build-fuzz/seeds")
    ap.add_argument("--intact", default="", help="an intact binary, to build a real .ikv seed")
    a = ap.parse_args()
    def put(target, name, data):
        d = os.path.join(a.out, target)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    put("fuzz_gguf", "tiny.gguf", tiny_gguf())
    def shared_head(rel, n):
        path = os.path.join(a.shared, rel)
        if not os.path.exists(path):
            print(f"fuzz_seeds: skipped the seeds from {path} (not found; set SHARED=...)", file=sys.stderr)
            return None
        with open(path, "rb") as f:
            return f.read(n)
    gguf = shared_head("models/stories260K.gguf", 16384)
    if gguf is not None:
        put("fuzz_gguf", "stories-metadata.gguf", gguf)  # header + metadata, data cut off
    put("fuzz_llama2c", "tiny-shared.bin", tiny_llama2c(True))
    put("fuzz_llama2c", "tiny-unshared.bin", tiny_llama2c(False))
    text = shared_head("data/eval-en.txt", 2000)
    with open(os.path.join(a.models, "tok512.bin"), "rb") as f:
        tok = f.read()
    for mode in range(4):  # fuzz_tokenizer: the first byte selects the mode
        if text is not None:
            put("fuzz_tokenizer", f"text-{mode}", bytes([mode]) + text[:500])
        put("fuzz_tokenizer", f"story-{mode}", bytes([mode]) + b"Once upon a time, there was a little girl named Lily.")
    put("fuzz_tokenizer", "tok512", bytes([0]) + tok[:4000])
    put("fuzz_ikv", "bos-f32", bytes([1]) + ikv_image(1, 0))
    put("fuzz_ikv", "prompt-f16", bytes([1]) + ikv_image(6, 1))
    put("fuzz_ikv", "prompt-f32-raw", bytes([0]) + ikv_image(3, 0))
    put("fuzz_ikv", "prompt-f32-nocheck", bytes([2]) + ikv_image(2, 0))
    if a.intact and os.path.exists(a.intact):
        model = os.path.join(a.models, "stories260K.bin")
        tokz = os.path.join(a.models, "tok512.bin")
        with tempfile.TemporaryDirectory() as td:
            for name, extra in (("real-bos", ["--bos"]), ("real-prompt-f16", ["--prompt", "Once upon a", "--fp16"])):
                out = os.path.join(td, name + ".ikv")
                r = subprocess.run([a.intact, "ikv", "build", "-m", model, "-z", tokz, "-o", out] + extra,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                if r.returncode == 0:
                    with open(out, "rb") as f:
                        put("fuzz_ikv", name, bytes([0]) + f.read())
    qformat_seeds(put)
    args_seeds(put)
    # fuzz_request: byte 0 = endpoint (bit 0: chat) and chat template (>> 1), then the JSON body
    put("fuzz_request", "completion", b"\x00" + b'{"prompt":"Once upon a time","max_tokens":8,"temperature":0,'
        b'"stop":["x","\\n"],"seed":3,"top_k":4,"min_p":0.1,"stream":true}')
    for t in range(7):
        put("fuzz_request", f"chat-{t}", bytes([1 | (t << 1)]) + b'{"messages":[{"role":"system","content":"Be brief."},'
            b'{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello"},{"role":"user","content":"\\u00e9"}],'
            b'"logprobs":true,"stop":"END"}')
    put("fuzz_tokenizer", "utf8", bytes([1]) + "café ☃ naïve — 日本語 \xff".encode("utf-8", "surrogatepass") + b"\xff\xc3")

if __name__ == "__main__":
    main()
