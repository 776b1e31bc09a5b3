// AVX-512 (F/BW/VL/DQ) matmul kernels for the integer formats of formats/qformat.h, reading the
// packed blocks in place (fp32 activations, fp32 FMA accumulation).
//
// Unpacking. For 2, 3 and 4 bits a block's 2^b possible weights d * (q - z) fit in one zmm: the
// block's lookup table (LUT) costs a subtract and a multiply, and then vpermps turns 16 packed
// indices straight into 16 dequantized weights. vpermps only reads the low 4 bits of each index,
// so int4's nibbles need no mask (the high nibble is one shift away), and int2 / int3 use a table
// that repeats with period 4 / 8 so bits above theirs don't matter either. The LUT entries are
// computed as d * (float)(k - z), the exact value qf_dequantize_row produces, so these kernels
// compute the float matmul of the fake-quantized weights (up to summation order). int8 has no
// small table: its q - z is formed in int32 (exact), converted, and accumulated per block, and the
// block's sum is scaled by d with one FMA.
//
// Decode (nt == 1) is bandwidth bound: rows are streamed one after another (one sequential stream
// per thread) with 4 independent accumulators (pairs of groups for G = 32, whose blocks are only
// 32 weights) and a software prefetch ahead of the stream, as in matmul_avx512.c.
//
// Prefill (nt > 1) is compute bound: a strip of TILE_R rows x PF_KB inputs is dequantized once
// into an L1-resident fp32 buffer, then a TILE_R x TILE_T register tile (24 accumulators) sweeps
// the token chunk over it. Inputs are blocked by PF_KB and tokens chunked so X stays in L2; each
// weight is unpacked once per token chunk (<= 1 op per weight per 64 tokens), which keeps the FMAs
// the bottleneck.
#include <immintrin.h>
#include <string.h>

#include "formats/fmt_kernels.h"
#include "core/simd.h"


#ifndef KERN_PF_DIST
#define KERN_PF_DIST 4096
#endif

enum { TILE_R = 4, TILE_T = 6, PF_KB = 1024, X_CHUNK_BYTES = 256 * 1024 };

// ---- one block ----

KI size_t hdr_bytes(const int S) { return S ? 2 : 3; }
KI size_t blk_bytes(const int B, const int G, const int S) { return hdr_bytes(S) + (size_t)(G * B / 8); }
KI float blk_d(const uint8_t *b) {
    uint16_t h;
    memcpy(&h, b, 2);
    return _cvtsh_ss(h);
}
KI int blk_z(const int B, const int S, const uint8_t *b) { return S ? 1 << (B - 1) : b[2]; }

// Lane k = d * ((k mod 2^B) - z) for B = 2, 3, 4.
KI __m512 make_lut(const int B, const int S, const uint8_t *blk) {
    const __m512 iota = B == 2 ? _mm512_setr_ps(0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3)
                        : B == 3 ? _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7)
                                 : _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    // d broadcast as fp16 and converted in the vector unit (measured a little faster than a
    // scalar conversion + broadcast); (k - z) * d is exact, as in qf_dequantize_row.
    uint16_t h;
    memcpy(&h, blk, 2);
    __m512 d = _mm512_cvtph_ps(_mm256_set1_epi16((short)h));
    return _mm512_mul_ps(_mm512_sub_ps(iota, _mm512_set1_ps((float)blk_z(B, S, blk))), d);
}

// LUT indices of sub-block k's weights 0..15 (*i0) and 16..31 (*i1), B = 2, 3, 4. qs points at the
// block's packed bits. Only the low 4 bits of each lane are meaningful (the LUT's period covers
// the rest).
KI void lut_idx(const int B, const int G, const uint8_t *qs, int k, __m512i *i0, __m512i *i1) {
    if (B == 4) { // byte j: low nibble = weight j, high nibble = weight j + 16
        __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(qs + 16 * k)));
        *i0 = v;
        *i1 = _mm512_srli_epi32(v, 4);
        return;
    }
    // The 8 bytes of 2-bit fields, twice: lane m reads byte m % 8, and weight m of a half is field
    // (m / 8) (+2 for the second half) of it.
    uint64_t b8;
    memcpy(&b8, qs + 8 * k, 8);
    __m512i v = _mm512_cvtepu8_epi32(_mm_set1_epi64x((long long)b8));
    __m512i a = _mm512_srlv_epi32(v, _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2));
    __m512i b = _mm512_srlv_epi32(v, _mm512_setr_epi32(4, 4, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6));
    if (B == 3) { // clear the neighbours' bits, then OR in the high bits from their 32-bit word
        uint32_t hb;
        memcpy(&hb, qs + G / 4 + 4 * k, 4);
        const __m512i three = _mm512_set1_epi32(3), four = _mm512_set1_epi32(4);
        a = _mm512_and_si512(a, three);
        b = _mm512_and_si512(b, three);
        a = _mm512_mask_or_epi32(a, (__mmask16)hb, a, four);
        b = _mm512_mask_or_epi32(b, (__mmask16)(hb >> 16), b, four);
    }
    *i0 = a;
    *i1 = b;
}

// int8: weights 32k + 16h .. + 15 of a block as float (q - z), exact.
KI __m512 q8_minus_z(const uint8_t *qs, int k, int h, __m512i zv) {
    __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(qs + 32 * k + 16 * h)));
    return _mm512_cvtepi32_ps(_mm512_sub_epi32(v, zv));
}

// Writes the G dequantized weights of one block to out (64-byte aligned).
KI void deq_block(const int B, const int G, const int S, const uint8_t *blk, float *out) {
    const uint8_t *qs = blk + hdr_bytes(S);
    if (B == 8) {
        __m512i zv = _mm512_set1_epi32(blk_z(B, S, blk));
        __m512 d = _mm512_set1_ps(blk_d(blk));
        UNROLL for (int k = 0; k < G / 32; k++) {
            _mm512_store_ps(out + 32 * k, _mm512_mul_ps(q8_minus_z(qs, k, 0, zv), d));
            _mm512_store_ps(out + 32 * k + 16, _mm512_mul_ps(q8_minus_z(qs, k, 1, zv), d));
        }
        return;
    }
    __m512 lut = make_lut(B, S, blk);
    UNROLL for (int k = 0; k < G / 32; k++) {
        __m512i i0, i1;
        lut_idx(B, G, qs, k, &i0, &i1);
        _mm512_store_ps(out + 32 * k, _mm512_permutexvar_ps(i0, lut));
        _mm512_store_ps(out + 32 * k + 16, _mm512_permutexvar_ps(i1, lut));
    }
}

// ---- decode ----
//
// The unpacking above spends a cross-lane shuffle (vpmovzxbd) per 16 weights besides the LUT
// lookups, and decode of 4-bit weights was bound by the shuffle/shift ports (measured on Zen 5:
// vpermps and the shifts share two pipes; immediate shifts are cheaper than variable ones).
// Decode therefore unpacks without it, in a scrambled lane order, and x is permuted the same way
// once per call (xp, shared by all rows) instead of unscrambling every row:
//   int4, G = 128: the block's 64 bytes are one zmm; lane i (bytes 4i..4i+3) shifted right by 4s
//          has nibble s at bit 0: 8 immediate shifts give the 128 weights, and vpermps reads only
//          those 4 bits. Per 16 weights: 7/8 shift, 1 vpermps, 1 FMA.
//   int4, G = 32, 64, per 32-weight sub-block: its 16 bytes broadcast to every 128-bit lane by the
//          load, and a per-lane variable shift (vpsrlvd) takes a different nibble in each lane.
//   int2, int3: the same with the sub-block's 8 bytes of 2-bit fields.
//   int8 keeps vpmovzxbd and the natural order: at a byte per weight it is closer to bandwidth
//          bound than to shuffle bound.

// Where each lane's weight comes from, for the two vectors of a 32-weight sub-block: weight index
// within the sub-block (w0, w1) and the right shift that brings it to bit 0 (sh0, sh1).
//   B = 4: 16 bytes broadcast; lane i = 4L + m reads dword m (bytes 4m..4m+3) and takes nibble L
//          (second vector: 4 + L), i.e. byte 4m + L/2 (+2), its high nibble if L is odd.
//   B = 2, 3: 8 bytes broadcast; lane i = 2c + p reads dword p (bytes 4p..4p+3) and takes byte
//          4p + c%4, field c/4 (second vector: 2 + c/4), i.e. weight 4p + c%4 + 8 * field.
// B = 3 also rotates the broadcast high-bit word right by w - 2, bringing bit w to bit 2 (rot0/1).
typedef struct {
    __m512i w0, w1, sh0, sh1, rot0, rot1;
} lane_map;

KI lane_map make_map(const int B) {
    const __m512i i = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i one = _mm512_set1_epi32(1), three = _mm512_set1_epi32(3);
    lane_map m;
    if (B == 4) {
        __m512i L = _mm512_srli_epi32(i, 2), mm = _mm512_and_si512(i, three);
        m.w0 = _mm512_add_epi32(_mm512_add_epi32(_mm512_slli_epi32(mm, 2), _mm512_srli_epi32(L, 1)),
                                _mm512_slli_epi32(_mm512_and_si512(L, one), 4));
        m.w1 = _mm512_add_epi32(m.w0, _mm512_set1_epi32(2));
        m.sh0 = _mm512_slli_epi32(L, 2);
        m.sh1 = _mm512_add_epi32(m.sh0, _mm512_set1_epi32(16));
    } else {
        __m512i c = _mm512_srli_epi32(i, 1), p = _mm512_and_si512(i, one);
        __m512i c4 = _mm512_and_si512(c, three), field = _mm512_srli_epi32(c, 2);
        m.w0 = _mm512_add_epi32(_mm512_add_epi32(_mm512_slli_epi32(p, 2), c4), _mm512_slli_epi32(field, 3));
        m.w1 = _mm512_add_epi32(m.w0, _mm512_set1_epi32(16));
        m.sh0 = _mm512_add_epi32(_mm512_slli_epi32(c4, 3), _mm512_slli_epi32(field, 1));
        m.sh1 = _mm512_add_epi32(m.sh0, _mm512_set1_epi32(4));
    }
    const __m512i two = _mm512_set1_epi32(2), mask = _mm512_set1_epi32(31);
    m.rot0 = _mm512_and_si512(_mm512_sub_epi32(m.w0, two), mask);
    m.rot1 = _mm512_and_si512(_mm512_sub_epi32(m.w1, two), mask);
    return m;
}

// x permuted per 32-weight sub-block to the lane order above: xp[32k + 16v + i] = x[32k + wv[i]].
static void permute_x(const lane_map *m, const float *x, int64_t n, float *xp) {
    for (int64_t k = 0; k < n; k += 32) {
        __m512 a = _mm512_loadu_ps(x + k), b = _mm512_loadu_ps(x + k + 16);
        _mm512_store_ps(xp + k, _mm512_permutex2var_ps(a, m->w0, b));
        _mm512_store_ps(xp + k + 16, _mm512_permutex2var_ps(a, m->w1, b));
    }
}

// The raw layout of int4 G = 128: vector s, lane i holds weight 32(i/4) + 4(i%4) + s/2 + 16(s%2)
// (dword i is byte 4(i%4) of sub-block i/4, nibble s); xp[128g + 16s + i] = x[128g + that].
static void permute_x_raw4(const float *x, int64_t n, float *xp) {
    const __m512i i = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i base = _mm512_add_epi32(_mm512_slli_epi32(_mm512_srli_epi32(i, 2), 5),
                                          _mm512_slli_epi32(_mm512_and_si512(i, _mm512_set1_epi32(3)), 2));
    for (int64_t g = 0; g < n; g += 128)
        UNROLL for (int s = 0; s < 8; s++) {
            __m512i idx = _mm512_add_epi32(base, _mm512_set1_epi32(s / 2 + 16 * (s % 2)));
            _mm512_store_ps(xp + g + 16 * s, _mm512_i32gather_ps(idx, x + g, 4));
        }
}

// Adds one block's contribution (x already permuted) to acc[base .. base + 3] (mod 4).
KI void decode_block(const int B, const int G, const int S, const uint8_t *blk, const float *xp,
                     const lane_map *c, __m512 acc[4], const int base) {
    const size_t bb = blk_bytes(B, G, S);
    UNROLL for (size_t o = 0; o < bb; o += 64) _mm_prefetch((const char *)blk + KERN_PF_DIST + o, _MM_HINT_T0);
    const uint8_t *qs = blk + hdr_bytes(S);
    if (B == 8) {
        // No table: (q - z) in int32, unscaled per-block sums, then one FMA with the block scale.
        __m512i zv = _mm512_set1_epi32(blk_z(B, S, blk));
        __m512 s0 = _mm512_mul_ps(q8_minus_z(qs, 0, 0, zv), _mm512_loadu_ps(xp));
        __m512 s1 = _mm512_mul_ps(q8_minus_z(qs, 0, 1, zv), _mm512_loadu_ps(xp + 16));
        UNROLL for (int k = 1; k < G / 32; k++) {
            s0 = _mm512_fmadd_ps(q8_minus_z(qs, k, 0, zv), _mm512_loadu_ps(xp + 32 * k), s0);
            s1 = _mm512_fmadd_ps(q8_minus_z(qs, k, 1, zv), _mm512_loadu_ps(xp + 32 * k + 16), s1);
        }
        __m512 d = _mm512_set1_ps(blk_d(blk));
        acc[base] = _mm512_fmadd_ps(d, s0, acc[base]);
        acc[(base + 1) & 3] = _mm512_fmadd_ps(d, s1, acc[(base + 1) & 3]);
        return;
    }
    __m512 lut = make_lut(B, S, blk);
    if (B == 4 && G == 128) {
        __m512i v = _mm512_loadu_si512(qs);
        // Keep v in a register: GCC would otherwise fold the load into each of the 8 shifts, and
        // 8 extra 64-byte loads per block make the load ports the bottleneck.
        __asm__("" : "+v"(v));
        UNROLL for (int s = 0; s < 8; s++) {
            __m512i idx = s ? _mm512_srli_epi32(v, 4 * s) : v;
            int a = (base + s) & 3;
            acc[a] = _mm512_fmadd_ps(_mm512_permutexvar_ps(idx, lut), _mm512_load_ps(xp + 16 * s), acc[a]);
        }
        return;
    }
    UNROLL for (int k = 0; k < G / 32; k++) {
        __m512 w0, w1;
        if (B == 4) {
            __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(qs + 16 * k)));
            w0 = _mm512_permutexvar_ps(_mm512_srlv_epi32(v, c->sh0), lut);
            w1 = _mm512_permutexvar_ps(_mm512_srlv_epi32(v, c->sh1), lut);
        } else {
            uint64_t b8;
            memcpy(&b8, qs + 8 * k, 8);
            __m512i v = _mm512_set1_epi64((long long)b8);
            __m512i i0 = _mm512_srlv_epi32(v, c->sh0), i1 = _mm512_srlv_epi32(v, c->sh1);
            if (B == 2) { // a 4-entry table: the in-lane vpermilps, on the 2 index bits it reads
                w0 = _mm512_permutevar_ps(lut, i0);
                w1 = _mm512_permutevar_ps(lut, i1);
            } else { // bits 0-1 from the field, bit 2 from the high-bit word (table period 8)
                uint32_t hb;
                memcpy(&hb, qs + G / 4 + 4 * k, 4);
                __m512i h = _mm512_set1_epi32((int)hb), three = _mm512_set1_epi32(3);
                i0 = _mm512_ternarylogic_epi32(three, i0, _mm512_rorv_epi32(h, c->rot0), 0xca);
                i1 = _mm512_ternarylogic_epi32(three, i1, _mm512_rorv_epi32(h, c->rot1), 0xca);
                w0 = _mm512_permutexvar_ps(i0, lut);
                w1 = _mm512_permutexvar_ps(i1, lut);
            }
        }
        int a = (base + 2 * k) & 3, b = (base + 2 * k + 1) & 3;
        acc[a] = _mm512_fmadd_ps(w0, _mm512_load_ps(xp + 32 * k), acc[a]);
        acc[b] = _mm512_fmadd_ps(w1, _mm512_load_ps(xp + 32 * k + 16), acc[b]);
    }
}

// Inputs [0, n) of one row against xp (x permuted, or x itself for int8).
KI __m512 decode_row(const int B, const int G, const int S, const uint8_t *row, int64_t n,
                     const float *xp, const lane_map *c) {
    const size_t bb = blk_bytes(B, G, S);
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    const int64_t ng = n / G;
    int64_t g = 0;
    if (G == 32) // two blocks per step so all 4 accumulators are in flight
        for (; g + 2 <= ng; g += 2) {
            decode_block(B, G, S, row + (size_t)g * bb, xp + g * G, c, acc, 0);
            decode_block(B, G, S, row + (size_t)(g + 1) * bb, xp + (g + 1) * G, c, acc, 2);
        }
    for (; g < ng; g++) decode_block(B, G, S, row + (size_t)g * bb, xp + g * G, c, acc, 0);
    return _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
}

// Horizontal sums of four vectors: lane k of the result is the sum of vector k.
KI __m128 hsum4(__m512 a, __m512 b, __m512 c, __m512 d) {
#define HALF(v) _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1))
    __m256 ab = _mm256_hadd_ps(HALF(a), HALF(b)), cd = _mm256_hadd_ps(HALF(c), HALF(d));
#undef HALF
    __m256 s = _mm256_hadd_ps(ab, cd);
    return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}

// y[0..R) = (accumulate ? y : 0) + the sums of acc[0..R), R <= 4.
KI void store_sums(int R, const __m512 *acc, float *y, int accumulate) {
    __m512 z = _mm512_setzero_ps();
    __m128 s = hsum4(acc[0], R > 1 ? acc[1] : z, R > 2 ? acc[2] : z, R > 3 ? acc[3] : z);
    __mmask8 m = (__mmask8)((1u << R) - 1);
    if (accumulate) s = _mm_add_ps(s, _mm_maskz_loadu_ps(m, y));
    _mm_mask_storeu_ps(y, m, s);
}

// Inputs are taken in slices of at most DEC_KB (the permuted x lives on the stack: 32 KiB); a row
// longer than that is streamed in DEC_KB pieces, its partial sums accumulating in y.
enum { DEC_KB = 8192 };

KI void decode(const int B, const int G, const int S, const uint8_t *w, size_t rb, int64_t n,
               const float *x, float *y, int64_t r0, int64_t r1) {
    const lane_map map = make_map(B);
    _Alignas(64) float xp[DEC_KB];
    const size_t bb = blk_bytes(B, G, S);
    for (int64_t k0 = 0; k0 < n; k0 += DEC_KB) {
        int64_t kb = n - k0 < DEC_KB ? n - k0 : DEC_KB;
        const float *xk = x + k0;
        if (B == 4 && G == 128)
            permute_x_raw4(x + k0, kb, xp);
        else if (B != 8)
            permute_x(&map, x + k0, kb, xp);
        if (B != 8) xk = xp;
        const uint8_t *wk = w + (size_t)(k0 / G) * bb;
        for (int64_t r = r0; r < r1; r += 4) {
            // Rows go 4 at a time only to share the final horizontal sums.
            int R = r1 - r < 4 ? (int)(r1 - r) : 4;
            __m512 v[4];
            _Pragma("GCC unroll 1") for (int k = 0; k < R; k++)
                v[k] = decode_row(B, G, S, wk + (size_t)(r + k) * rb, kb, xk, &map);
            store_sums(R, v, y + r, k0 > 0);
        }
    }
}

// ---- prefill ----

// y[t*ldy + k] (+)= sum_{i<kb} buf[k*PF_KB + i] * x[t*ldx + i], k < R, t < T; kb % 16 == 0.
KI void tile(const int R, const int T, const float *buf, int64_t kb, const float *x, int64_t ldx,
             float *y, int64_t ldy, int accumulate) {
    __m512 acc[TILE_T][TILE_R];
    UNROLL for (int t = 0; t < T; t++) UNROLL for (int k = 0; k < R; k++) acc[t][k] = _mm512_setzero_ps();
    for (int64_t i = 0; i < kb; i += 16) {
        __m512 wv[TILE_R];
        UNROLL for (int k = 0; k < R; k++) wv[k] = _mm512_load_ps(buf + k * PF_KB + i);
        UNROLL for (int t = 0; t < T; t++) {
            __m512 xv = _mm512_loadu_ps(x + t * ldx + i);
            UNROLL for (int k = 0; k < R; k++) acc[t][k] = _mm512_fmadd_ps(wv[k], xv, acc[t][k]);
        }
    }
    UNROLL for (int t = 0; t < T; t++) store_sums(R, acc[t], y + t * ldy, accumulate);
}

#define TILE_CASE(R, T) case (R) * 8 + (T): tile(R, T, buf, kb, x, ldx, y, ldy, acc); break;
#define TILE_ROW(R) TILE_CASE(R, 6) TILE_CASE(R, 5) TILE_CASE(R, 4) TILE_CASE(R, 3) TILE_CASE(R, 2) TILE_CASE(R, 1)
static void tile_any(int R, int T, const float *buf, int64_t kb, const float *x, int64_t ldx,
                     float *y, int64_t ldy, int acc) {
    switch (R * 8 + T) {
        TILE_ROW(4) TILE_ROW(3) TILE_ROW(2) TILE_ROW(1)
    default: break;
    }
}

// Dequantizes inputs [k0, k0 + kb) of one row (k0, kb multiples of G) into out.
typedef void (*deq_span_fn)(const uint8_t *row, int64_t k0, int64_t kb, float *out);

KI void deq_span(const int B, const int G, const int S, const uint8_t *row, int64_t k0, int64_t kb,
                 float *out) {
    const size_t bb = blk_bytes(B, G, S);
    for (int64_t i = 0; i < kb; i += G) deq_block(B, G, S, row + (size_t)((k0 + i) / G) * bb, out + i);
}

static void prefill(deq_span_fn deq, const uint8_t *w, size_t rb, int64_t n, const float *x,
                    int64_t ldx, int64_t nt, float *y, int64_t ldy, int64_t r0, int64_t r1) {
    _Alignas(64) float buf[TILE_R * PF_KB];
    for (int64_t k0 = 0; k0 < n; k0 += PF_KB) {
        int64_t kb = n - k0 < PF_KB ? n - k0 : PF_KB;
        // Equal token chunks of at most X_CHUNK_BYTES of X, in whole tiles.
        int64_t cmax = X_CHUNK_BYTES / (kb * (int64_t)sizeof(float));
        cmax = cmax < TILE_T ? TILE_T : cmax;
        int64_t nchunks = (nt + cmax - 1) / cmax;
        int64_t chunk = ((nt + nchunks - 1) / nchunks + TILE_T - 1) / TILE_T * TILE_T;
        for (int64_t c0 = 0; c0 < nt; c0 += chunk) {
            int64_t c1 = c0 + chunk < nt ? c0 + chunk : nt;
            for (int64_t r = r0; r < r1; r += TILE_R) {
                int R = r1 - r < TILE_R ? (int)(r1 - r) : TILE_R;
                for (int k = 0; k < R; k++) deq(w + (size_t)(r + k) * rb, k0, kb, buf + k * PF_KB);
                // Tiles of nearly equal width (8 tokens: 4 + 4, not 6 + 2): a narrow tile
                // reloads the weights for few FMAs.
                int64_t ntiles = (c1 - c0 + TILE_T - 1) / TILE_T;
                for (int64_t j = 0, t = c0; j < ntiles; j++) {
                    int T = (int)((c1 - c0) / ntiles + (j < (c1 - c0) % ntiles));
                    tile_any(R, T, buf, kb, x + t * ldx + k0, ldx, y + t * ldy + r, ldy, k0 > 0);
                    t += T;
                }
            }
        }
    }
}

// ---- one kernel per format ----

#define QF_AVX512(B, G, S)                                                                       \
    static void deq_i##B##_g##G##_s##S(const uint8_t *row, int64_t k0, int64_t kb, float *out) { \
        deq_span(B, G, S, row, k0, kb, out);                                                     \
    }                                                                                            \
    void fmt_qmatmul_i##B##_g##G##_s##S##_avx512(const void *w, size_t rb, int64_t n, const float *x, \
                                        int64_t ldx, int64_t nt, float *y, int64_t ldy,          \
                                        int64_t r0, int64_t r1) {                                \
        if (nt == 1)                                                                             \
            decode(B, G, S, w, rb, n, x, y, r0, r1);                                             \
        else                                                                                     \
            prefill(deq_i##B##_g##G##_s##S, w, rb, n, x, ldx, nt, y, ldy, r0, r1);               \
    }
QF_FOR_EACH_FORMAT(QF_AVX512)
