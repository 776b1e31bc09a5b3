#!/usr/bin/env python3
"""Independent NumPy reference for GPTQ (gptq_quantize in src/quant/gptq.c), written from the GPTQ
paper / IST-DASLab reference algorithm, not from the C code.

Prints C arrays that tests/test_gptq_awq.c hard-codes. Run with Debian's interpreter:

    /usr/bin/python3 tests/ref/gptq_ref.py

The straightforward O(n^3) form, float64 throughout:
  * H = 2/N X^T X; dead columns (H_ii == 0) get H_ii = 1 and W[:, i] = 0;
  * act_order: columns in descending diag(H) order (stable), with *static* groups: d, z of every
    natural group of G consecutive columns from the original W;
  * H += damp * mean(diag H) * I; U = upper Cholesky factor of H^-1 (H^-1 = U^T U);
  * for each column i in processing order: (no act_order) at a group's first column, d, z from the
    current, fully error-updated weights of the group; q = clamp(round(w/d) + z, 0, 2^b - 1),
    deq = d (q - z); err = (w - deq) / U_ii; W[:, i:] -= err U[i, i:]  (no lazy batching: the C code's
    block size must not change the result).
Group parameters follow src/formats/qformat.h: lo = min, hi = max (asym) or a = max|w| (sym);
d = fp16((hi - lo) / (2^b - 1)) (sym: 2a / (2^b - 1)), z = clamp(round(-lo / d)) or 2^(b-1),
computed in float32 like the C code; round half to even.
The inputs come from a 32-bit LCG shared with the C test, with values exact in float32 so both
sides see bit-identical W and H.
"""
import numpy as np

MARGIN = [1.0]   # smallest distance of any w/d from a rounding boundary (how robust the golden is)


class Lcg:
    def __init__(self, seed):
        self.s = seed & 0xFFFFFFFF

    def next(self, m):
        self.s = (self.s * 1664525 + 1013904223) & 0xFFFFFFFF
        return (self.s >> 8) % m


def make_inputs(n_out, n_in, nt, seed):
    g = Lcg(seed)
    W = np.array([[(g.next(2001) - 1000) / 1024.0 for _ in range(n_in)] for _ in range(n_out)])
    Z = np.array([[float(g.next(17)) - 8.0 for _ in range(n_in)] for _ in range(nt)])
    A = np.array([[(float(g.next(9)) - 4.0) / 16.0 for _ in range(n_in)] for _ in range(n_in)])
    X = Z @ A
    X[:, 5] *= 8.0     # an outlier channel
    X[:, 7] = 0.0      # a dead channel
    return W, X


def group_params(w, bits, sym):
    maxq = (1 << bits) - 1
    w = w.astype(np.float32)
    if sym:
        a = np.max(np.abs(w))
        d = np.float32(np.float32(2.0) * a) / np.float32(maxq)
        lo = np.float32(0)
    else:
        lo, hi = np.min(w), np.max(w)
        d = np.float32(hi - lo) / np.float32(maxq)
    d = np.float32(np.float16(d))
    if not d > 0:
        d = np.float32(1)
    if sym:
        z = 1 << (bits - 1)
    else:
        z = int(min(max(np.round(np.float32(-lo) / d), 0), maxq))
    return float(d), z


def gptq(W, H, bits, sym, G, damp, act_order):
    W = W.copy()
    H = H.copy()
    n_out, n = W.shape
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    perm = np.arange(n)
    params = {}
    if act_order:
        for r in range(n_out):
            for g in range(n // G):
                params[r, g] = group_params(W[r, g * G:(g + 1) * G], bits, sym)
        perm = np.argsort(-np.diag(H), kind="stable")
    Wp = W[:, perm]
    Hp = H[perm][:, perm]
    Hp = Hp + damp * np.mean(np.diag(Hp)) * np.eye(n)
    U = np.linalg.cholesky(np.linalg.inv(Hp)).T
    maxq = (1 << bits) - 1
    Q = np.zeros_like(W)
    for i in range(n):
        c = perm[i]
        for r in range(n_out):
            if not act_order and c % G == 0:
                params[r, c // G] = group_params(Wp[r, i:i + G], bits, sym)
            d, z = params[r, c // G]
            w = np.float32(Wp[r, i])
            frac = abs(float(w) / d - np.floor(float(w) / d) - 0.5)
            MARGIN[0] = min(MARGIN[0], frac)
            q = int(min(max(np.round(w / np.float32(d)) + z, 0), maxq))
            deq = float(np.float32(d) * np.float32(q - z))
            Q[r, c] = deq
            err = (Wp[r, i] - deq) / U[i, i]
            Wp[r, i:] -= err * U[i, i:]
    return Q


def c_float(v):
    s = "%.9g" % v
    if not any(ch in s for ch in ".en"):
        s += ".0"
    return s + "f"


def main():
    n_out, n_in, nt = 2, 128, 256
    W, X = make_inputs(n_out, n_in, nt, 12345)
    H = 2.0 / nt * (X.T @ X)
    configs = [("gptq_ref_asym3_g32", 3, 0, 32, 0), ("gptq_ref_sym4_g32_act", 4, 1, 32, 1)]
    for name, bits, sym, G, act in configs:
        Q = gptq(W, H, bits, sym, G, 0.01, act)
        print("// %s: bits %d sym %d G %d act_order %d" % (name, bits, sym, G, act))
        print("static const float %s[%d] = {" % (name, n_out * n_in))
        vals = [c_float(v) for v in Q.flatten()]
        for k in range(0, len(vals), 8):
            print("    " + ", ".join(vals[k:k + 8]) + ",")
        print("};")
        print("// smallest |w/d - k - 0.5| seen: %.3g" % MARGIN[0])
        MARGIN[0] = 1.0


if __name__ == "__main__":
    main()
