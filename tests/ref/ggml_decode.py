#!/usr/bin/env python3
"""Independent decoder for ggml's block types, Python standard library only (no numpy).

Written from ggml's published block layouts (the GGUF spec's type table and ggml's block structs),
not from intact's C. Used by tests/test_ggml_write.c: the C writer stores each quantized tensor NAME
next to an F32 tensor NAME.intended holding the values its quantizer meant the blocks to decode to;
this script decodes NAME itself and requires bit-identical float32 values.

Arithmetic is rounded to float32 after every operation, in the order ggml's dequantizers use
(d*sc first, then *q, then - dmin*m), since that is what a float32 decoder computes.

Usage: ggml_decode.py FILE.gguf      prints one line per tensor pair; exit 1 on any mismatch.
"""
import struct
import sys

F32 = struct.Struct('<f')


def f32(x):
    return F32.unpack(F32.pack(x))[0]


def half(b, off):
    return struct.unpack_from('<e', b, off)[0]


def dec_q4_0(b, o):  # 18 bytes: fp16 d, qs[16]; x_j = d*(lo-8), x_{j+16} = d*(hi-8)
    d = half(b, o)
    y = [0.0] * 32
    for j in range(16):
        v = b[o + 2 + j]
        y[j] = f32(d * ((v & 15) - 8))
        y[j + 16] = f32(d * ((v >> 4) - 8))
    return y


def dec_q4_1(b, o):  # 20 bytes: fp16 d, fp16 m, qs[16]; x = d*q + m
    d, m = half(b, o), half(b, o + 2)
    y = [0.0] * 32
    for j in range(16):
        v = b[o + 4 + j]
        y[j] = f32(f32(d * (v & 15)) + m)
        y[j + 16] = f32(f32(d * (v >> 4)) + m)
    return y


def dec_q5_0(b, o):  # 22 bytes: fp16 d, qh (u32 LE: bit i = 5th bit of x_i), qs[16]; x = d*(q-16)
    d = half(b, o)
    qh = struct.unpack_from('<I', b, o + 2)[0]
    y = [0.0] * 32
    for j in range(16):
        v = b[o + 6 + j]
        y[j] = f32(d * (((v & 15) | ((qh >> j) & 1) << 4) - 16))
        y[j + 16] = f32(d * (((v >> 4) | ((qh >> (j + 16)) & 1) << 4) - 16))
    return y


def dec_q8_0(b, o):  # 34 bytes: fp16 d, int8 qs[32]; x = d*q
    d = half(b, o)
    return [f32(d * q) for q in struct.unpack_from('<32b', b, o + 2)]


def k4_scale_min(sc, j):  # the 12-byte packing of 8 six-bit scales and mins
    if j < 4:
        return sc[j] & 63, sc[j + 4] & 63
    return (sc[j + 4] & 15) | ((sc[j - 4] >> 6) << 4), (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4)


def dec_q4_K(b, o):  # 144 bytes: fp16 d, fp16 dmin, scales[12], qs[128]
    d, dmin = half(b, o), half(b, o + 2)
    sc = b[o + 4:o + 16]
    qs = b[o + 16:o + 144]
    y = [0.0] * 256
    # 4 chunks of 64 weights: the first 32 from the low nibbles of 32 bytes, the next 32 from the high
    for c in range(4):
        for h in range(2):
            s = 2 * c + h
            scale, mn = k4_scale_min(sc, s)
            d1, m1 = f32(d * scale), f32(dmin * mn)
            for l in range(32):
                v = qs[32 * c + l]
                q = (v >> 4) if h else (v & 15)
                y[64 * c + 32 * h + l] = f32(f32(d1 * q) - m1)
    return y


def dec_q6_K(b, o):  # 210 bytes: ql[128], qh[64], int8 scales[16], fp16 d
    ql = b[o:o + 128]
    qh = b[o + 128:o + 192]
    sc = struct.unpack_from('<16b', b, o + 192)
    d = half(b, o + 208)
    y = [0.0] * 256
    for n in range(2):  # two halves of 128 weights, each from 64 ql bytes and 32 qh bytes
        for l in range(32):
            a, c = ql[64 * n + l], ql[64 * n + 32 + l]
            h = qh[32 * n + l]
            q = [((a & 15) | ((h >> 0) & 3) << 4) - 32, ((c & 15) | ((h >> 2) & 3) << 4) - 32,
                 ((a >> 4) | ((h >> 4) & 3) << 4) - 32, ((c >> 4) | ((h >> 6) & 3) << 4) - 32]
            for k in range(4):
                i = 128 * n + 32 * k + l
                y[i] = f32(f32(d * sc[i // 16]) * q[k])
    return y


TYPES = {2: ('q4_0', 32, 18, dec_q4_0), 3: ('q4_1', 32, 20, dec_q4_1), 6: ('q5_0', 32, 22, dec_q5_0),
         8: ('q8_0', 32, 34, dec_q8_0), 12: ('q4_K', 256, 144, dec_q4_K), 14: ('q6_K', 256, 210, dec_q6_K)}


class Reader:
    def __init__(self, b):
        self.b, self.o = b, 0

    def u(self, fmt):
        v = struct.unpack_from('<' + fmt, self.b, self.o)
        self.o += struct.calcsize('<' + fmt)
        return v[0]

    def s(self):
        n = self.u('Q')
        v = self.b[self.o:self.o + n].decode('utf-8', 'replace')
        self.o += n
        return v

    SCALAR = {0: 'B', 1: 'b', 2: 'H', 3: 'h', 4: 'I', 5: 'i', 6: 'f', 7: '?', 10: 'Q', 11: 'q', 12: 'd'}

    def value(self, t):
        if t == 8:
            return self.s()
        if t == 9:
            et, n = self.u('I'), self.u('Q')
            return [self.value(et) for _ in range(n)]
        return self.u(self.SCALAR[t])


def read_gguf(path):
    b = open(path, 'rb').read()
    r = Reader(b)
    if b[:4] != b'GGUF':
        raise SystemExit('%s: not a GGUF file' % path)
    r.o = 4
    r.u('I')
    n_t, n_kv = r.u('Q'), r.u('Q')
    kv = {}
    for _ in range(n_kv):
        k = r.s()
        kv[k] = r.value(r.u('I'))
    infos = []
    for _ in range(n_t):
        name = r.s()
        nd = r.u('I')
        ne = [r.u('Q') for _ in range(nd)]
        infos.append((name, ne, r.u('I'), r.u('Q')))
    align = kv.get('general.alignment', 32)
    base = (r.o + align - 1) // align * align
    return b, base, kv, infos


def decode(b, base, info):
    name, ne, typ, off = info
    n = 1
    for x in ne:
        n *= x
    if typ == 0:
        return list(struct.unpack_from('<%df' % n, b, base + off))
    tname, qk, nbytes, dec = TYPES[typ]
    out = []
    for i in range(n // qk):
        out.extend(dec(b, base + off + i * nbytes))
    return out


def main():
    b, base, kv, infos = read_gguf(sys.argv[1])
    by_name = {i[0]: i for i in infos}
    bad = 0
    pairs = 0
    for name, info in by_name.items():
        twin = by_name.get(name + '.intended')
        if not twin:
            continue
        pairs += 1
        got, want = decode(b, base, info), decode(b, base, twin)
        diff = [i for i in range(len(want)) if F32.pack(got[i]) != F32.pack(want[i])]
        tname = TYPES.get(info[2], ('type %d' % info[2],))[0]
        if diff:
            bad += 1
            i = diff[0]
            print('%s (%s): %d of %d values differ; first at %d: decoded %r, intended %r'
                  % (name, tname, len(diff), len(want), i, got[i], want[i]))
        else:
            print('%s (%s): %d values identical' % (name, tname, len(want)))
    if not pairs:
        print('no NAME / NAME.intended tensor pairs')
        return 1
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
