#!/usr/bin/python3
"""Quantization error of a prefix's own K/V: compares .ikv files built by `intact ikv build` from a
quantized model (or calibrated by `ikv calibrate`) against the FP model's prefix file, per layer:
relative L2 error ||K - K_fp|| / ||K_fp|| and the same for V, over all prefix tokens.
Reads the .ikv v1 layout of src/ikv/prefix.c (f32 or f16 K/V). Standard library only.
Usage: bench/ikv_prefix_err.py FP.ikv OTHER.ikv [OTHER2.ikv ...]  -> one markdown row per file."""
import math
import struct
import sys


def load(path):
    b = open(path, "rb").read()
    if b[:4] != b"IKV1":
        sys.exit(f"{path}: not an IntactKV prefix file")
    ver, fp, nl, nkv, hd, nv, nt, dt, flags, _ = struct.unpack_from("<IQIIIIIIII", b, 4)
    off = 4 + struct.calcsize("<IQIIIIIIII") + 4 * nt + 4 * nv
    row = nt * nkv * hd
    fmt, size = ("<%df" % row, 4) if dt == 0 else ("<%de" % row, 2)
    layers = []
    for _ in range(nl):
        k = struct.unpack_from(fmt, b, off); off += row * size
        v = struct.unpack_from(fmt, b, off); off += row * size
        layers.append((k, v))
    return nt, layers


def rel(a, b):
    num = math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))
    den = math.sqrt(sum(y * y for y in b))
    return num / den if den else 0.0


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    nt, ref = load(sys.argv[1])
    print("| prefix | " + " | ".join(f"L{l} K / V" for l in range(len(ref))) + " | mean K / V |")
    print("|---|" + "---|" * (len(ref) + 1))
    for p in sys.argv[2:]:
        nt2, lay = load(p)
        if nt2 != nt or len(lay) != len(ref):
            sys.exit(f"{p}: different prefix shape than {sys.argv[1]}")
        ek = [rel(k, rk) for (k, _), (rk, _) in zip(lay, ref)]
        ev = [rel(v, rv) for (_, v), (_, rv) in zip(lay, ref)]
        cells = " | ".join(f"{a:.3f} / {b:.3f}" for a, b in zip(ek, ev))
        print(f"| {p.rsplit('/', 1)[-1]} | {cells} | {sum(ek)/len(ek):.3f} / {sum(ev)/len(ev):.3f} |")


main()
