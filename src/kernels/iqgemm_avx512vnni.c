// AVX-512 VNNI prefill GEMM for our int2 / int3 / int4 / int8 formats (kernels/iqgemm.h), bit-identical to
// kern_dq_ref. Compiled with the *_avx512vnni.c flags; chosen only when cpuid reports VNNI + BITALG.
//
// Why a separate kernel: the decode GEMV (iqdec_avx512vnni.c) unpacks a row's chunk (16 blocks of
// 32 weights) for at most 3 tokens, and its vpdpbusd lanes mix 4 blocks per vector, so every token
// pays 6 vpermt2d + 3 adds per chunk to reduce them to one lane per block. Here the unpack
// arranges the weights so that dword lane b of each of the 8 unpacked vectors holds 4 codes of
// block b (a 4x4 dword transpose of the packed bytes, 8 shuffles per chunk); the activations come
// in the same order (kern_dq.qg), so 8 vpdpbusd into ONE accumulator leave isum_b in lane b, no
// reduction, and the unpack is shared by a tile of up to GM_T tokens.
//
// Per (row, chunk): load + transpose + mask (int4: 4 loads, 8 shuffles, 12 and/shift; int2/3: 2
// loads, 2 shuffles, 8 and/shift (+ int3: 8 vpshufbitqmb + 8 masked adds)), the 16 group headers.
// Per (row, token, chunk): 8 vpdpbusd (activation operand from L1), then the float step
//     x = isum_b - z sum_b   as fnmadd(z, sumf, cvt(isum))   (all integers < 2^24: exact, equals
//                                                            the reference's (float)(isum - z sum))
//     f = fma(d * s_b, x, f)                                 (the reference's order and rounding)
// so each output's float operations are exactly those of kern_dq_ref; only the tiling differs.
//
// Tiles: GM_T = 8 tokens per unpack (f[8] + W[8] + d, z and temporaries fit in 32 zmm without
// spills). Rows in blocks of GM_ROWS = 16 (the thread split's unit); the k dimension in blocks of
// GM_KB = 4 chunks (2048 inputs: 8 tokens x 2 KB of qg = 16 KB plus a 16-row block of int4 g128
// weights, 17 KB, stay in the 48 KB L1 while they are reused); the 16-lane accumulators of a row
// block's tile are parked in a small stack buffer between k blocks (the lane order of every FMA
// chain is unchanged, so this is invisible in the result).
#include <immintrin.h>
#include <string.h>

#include "core/simd.h"
#include "kernels/iqdec_avx512.h"
#include "kernels/iqgemm.h"

enum { GM_T = KERN_DQ_GT, GM_KB = 4, GM_ROWS = 16 };

// int3: dword b = the high-bit word of block b of the chunk at cb.
KI __m512i gm_hbits(const int G, const int S, const uint8_t *cb) {
    const int kpg = G / 32;
    const size_t bb = dq_blkb(3, G, S), off = dq_hdr(S) + (size_t)(G / 4);
    if (kpg == 4) {
        __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(cb + off)));
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(cb + bb + off)), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(cb + 2 * bb + off)), 2);
        return _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(cb + 3 * bb + off)), 3);
    }
    if (kpg == 2) {
        long long x[8];
        UNROLL for (int g = 0; g < 8; g++) memcpy(&x[g], cb + (size_t)g * bb + off, 8);
        return _mm512_set_epi64(x[7], x[6], x[5], x[4], x[3], x[2], x[1], x[0]);
    }
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i idx = _mm512_add_epi32(_mm512_mullo_epi32(iota, _mm512_set1_epi32((int)bb)), _mm512_set1_epi32((int)off));
    return _mm512_i32gather_epi32(idx, (const void *)cb, 1);
}

// int8: W[m] dword b = dword m of block b. The 8 loads hold 2 blocks each (s[v] dword 8x + m =
// block 2v + x's dword m): a transpose of 16 x 8 dwords, as three stages of 8 two-source dword
// permutes, each trading one bit of the vector index for one bit of the lane index:
//   stage 1: v0 <-> m0, stage 2: v1 <-> m1, stage 3: v2 <-> m2 and the lanes put in block order.
KI void gm_unpack8(const int G, const int S, const uint8_t *cb, __m512i W[8]) {
    __m512i s[8], u[8];
    UNROLL for (int v = 0; v < 8; v++) s[v] = dq_load_plane(8, G, S, cb, 2 * v);
    int i1[2][16], i2[2][16], i3[2][16];
    UNROLL for (int k = 0; k < 2; k++) {
        UNROLL for (int L = 0; L < 16; L++) {
            i1[k][L] = (L & 1 ? 16 : 0) + (L & 14) + k;
            i2[k][L] = ((L >> 1) & 1 ? 16 : 0) + (L & 13) + 2 * k;
            // Output lane L = block 2 v + x: v2 = L >> 3, v1, v0 = bits 2, 1; x = bit 0, which after
            // the first two stages sits at lane bit 3, with m2 (= k) at bit 2 and v1 v0 at bits 1, 0.
            i3[k][L] = (L >> 3 ? 16 : 0) + (L & 1) * 8 + 4 * k + ((L >> 2) & 1) * 2 + ((L >> 1) & 1);
        }
    }
#define GM_IDX(a) _mm512_loadu_si512((const void *)(a))
    UNROLL for (int v = 0; v < 8; v += 2)
        UNROLL for (int k = 0; k < 2; k++) u[v + k] = _mm512_permutex2var_epi32(s[v], GM_IDX(i1[k]), s[v + 1]);
    UNROLL for (int p = 0; p < 8; p += (p & 1) ? 3 : 1)   // p = 0, 1, 4, 5: pairs (p, p + 2)
        UNROLL for (int k = 0; k < 2; k++) s[p + 2 * k] = _mm512_permutex2var_epi32(u[p], GM_IDX(i2[k]), u[p + 2]);
    UNROLL for (int p = 0; p < 4; p++)   // pairs (p, p + 4)
        UNROLL for (int k = 0; k < 2; k++) W[p + 4 * k] = _mm512_permutex2var_epi32(s[p], GM_IDX(i3[k]), s[p + 4]);
#undef GM_IDX
}

// The chunk's 8 weight vectors: byte 4b + j of W[m] = code of weight 32b + 4m + j (b < 16, j < 4).
KI void gm_unpack(const int B, const int G, const int S, const uint8_t *cb, __m512i W[8]) {
    if (B == 8) {
        gm_unpack8(G, S, cb, W);
    } else if (B == 4) {
        // Packed block b = 4 dwords; dword i holds weights 4i+j (low nibbles) and 16+4i+j (high).
        // s[v] dword 4k+i = block 4v+k's dword i; p[i] dword b = block b's dword i.
        const __m512i m4 = _mm512_set1_epi8(0x0f), h4 = simd_hi4_matrix();
        const __m512i ia = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
        const __m512i ib = _mm512_add_epi32(ia, _mm512_set1_epi32(2));
        __m512i s[4], p[4];
        UNROLL for (int v = 0; v < 4; v++) s[v] = dq_load_plane(4, G, S, cb, 4 * v);
        // t0: dword 0 of blocks 0..7, then dword 1; t1: dwords 2, 3; t2, t3: blocks 8..15.
        __m512i t0 = _mm512_permutex2var_epi32(s[0], ia, s[1]), t1 = _mm512_permutex2var_epi32(s[0], ib, s[1]);
        __m512i t2 = _mm512_permutex2var_epi32(s[2], ia, s[3]), t3 = _mm512_permutex2var_epi32(s[2], ib, s[3]);
        p[0] = _mm512_shuffle_i64x2(t0, t2, 0x44), p[1] = _mm512_shuffle_i64x2(t0, t2, 0xee);
        p[2] = _mm512_shuffle_i64x2(t1, t3, 0x44), p[3] = _mm512_shuffle_i64x2(t1, t3, 0xee);
        UNROLL for (int i = 0; i < 4; i++) {
            W[i] = _mm512_and_si512(p[i], m4);
            W[4 + i] = simd_hi4(p[i], h4);
        }
    } else {
        // Packed block b = 2 dwords (the 2-bit plane); byte 4h+j bits 2f.. = weight 8f + 4h + j,
        // i.e. W[2f + h]. s[h] covers blocks 8h..8h+7 (dword 2k+i = block 8h+k's dword i).
        const __m512i m3 = _mm512_set1_epi8(3), four = _mm512_set1_epi8(4);
        const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        __m512i s0 = dq_load_plane(B, G, S, cb, 0), s1 = dq_load_plane(B, G, S, cb, 8);
        __m512i p[2] = {_mm512_permutex2var_epi32(s0, ie, s1),
                        _mm512_permutex2var_epi32(s0, _mm512_add_epi32(ie, _mm512_set1_epi32(1)), s1)};
        __m512i hb = B == 3 ? gm_hbits(G, S, cb) : _mm512_setzero_si512();
        UNROLL for (int f = 0; f < 4; f++) {
            UNROLL for (int h = 0; h < 2; h++) {
                const int m = 2 * f + h;
                __m512i v = _mm512_and_si512(f ? _mm512_srli_epi16(p[h], 2 * f) : p[h], m3);
                if (B == 3) {
                    // Byte 8k + j of v is weight 4m + (j & 3) of block 2k + (j >> 2): bit 4m + (j & 3)
                    // of the low or high dword of hb's 64-bit lane k.
                    long long sel = 0;
                    UNROLL for (int j = 0; j < 8; j++) sel |= (long long)((j >> 2) * 32 + 4 * m + (j & 3)) << (8 * j);
                    __mmask64 mk = _mm512_bitshuffle_epi64_mask(hb, _mm512_set1_epi64(sel));
                    v = _mm512_mask_add_epi8(v, mk, v, four);
                }
                W[m] = v;
            }
        }
    }
}

// Rows r0..r1-1 (at most GM_ROWS) for tokens t0..t0+T-1; st parks the accumulators between k blocks.
KI void gm_tile(const int B, const int G, const int S, const int T, const uint8_t *w, size_t rb, const kern_dq *a,
                int64_t t0, float *y, int64_t ldy, int64_t r0, int64_t r1, __m512 *st) {
    const int kpg = G / 32, gpc = 16 / kpg;
    const size_t bb = dq_blkb(B, G, S), cbytes = (size_t)gpc * bb;
    const int64_t nb = a->n_in / 32, nfull = nb / 16, nchp = a->nbp / 16;
    const int tail = (int)(nb % 16);
    const int64_t nch = nfull + (tail > 0);
    __mmask16 km[3];
    dq_dz_masks(km);
    dq_hperm hp;
    dq_hperm_init(B, G, S, &hp);
    _Alignas(64) uint8_t pad[16 * 35 + 64];   // one chunk of the largest block here (int4 g32: 16 * 19)
    for (int64_t c0 = 0; c0 < nch; c0 += GM_KB) {
        const int64_t c1 = c0 + GM_KB < nch ? c0 + GM_KB : nch;
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *row = w + (size_t)r * rb;
            __m512 f[GM_T], *sr = st + (r - r0) * GM_T;
            UNROLL for (int t = 0; t < T; t++) f[t] = c0 ? sr[t] : _mm512_setzero_ps();
            for (int64_t c = c0; c < c1; c++) {
                const uint8_t *cb = row + (size_t)c * cbytes;
                __mmask16 lm = 0xffff;
                if (c == nfull) {   // the last, partial chunk: from a zero-padded copy
                    memset(pad, 0, sizeof pad);
                    memcpy(pad, cb, (size_t)(tail / kpg) * bb);
                    cb = pad;
                    lm = (__mmask16)((1u << tail) - 1);
                }
                __m512i W[8];
                gm_unpack(B, G, S, cb, W);
                const __m512i dz = dq_chunk_dz(B, G, S, cb, km, &hp);
                const __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dz));
                const __m512 z = S ? _mm512_set1_ps((float)(1 << (B - 1)))
                                   : _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(dz, 16), _mm512_set1_epi32(0xff)));
                // The tile's activations of chunk c: token t at fixed offsets from one slot.
                const int64_t slot = (t0 / GM_T * nchp + c) * GM_T + t0 % GM_T;
                const int8_t *qg = a->qg + 512 * slot;
                const float *scg = a->scg + 16 * slot, *sug = a->sumg + 16 * slot;
                UNROLL for (int t = 0; t < T; t++) {
                    __m512i acc = _mm512_setzero_si512();
                    UNROLL for (int m = 0; m < 8; m++)
                        acc = _mm512_dpbusd_epi32(acc, W[m], _mm512_loadu_si512(qg + 512 * t + 64 * m));
                    __m512 x = _mm512_fnmadd_ps(z, _mm512_loadu_ps(sug + 16 * t), _mm512_cvtepi32_ps(acc));
                    __m512 ds = _mm512_mul_ps(d, _mm512_loadu_ps(scg + 16 * t));
                    f[t] = _mm512_mask3_fmadd_ps(ds, x, f[t], lm);
                }
            }
            if (c1 == nch) {
                UNROLL for (int t = 0; t < T; t++) y[(t0 + t) * ldy + r] = dq_hsum16(f[t]);
            } else {
                UNROLL for (int t = 0; t < T; t++) sr[t] = f[t];
            }
        }
    }
}

#define GM_FN(B, G, S)                                                                                     \
    static void gm_i##B##_g##G##_s##S(const uint8_t *w, size_t rb, const kern_dq *a, float *y, int64_t ldy, \
                                      int64_t r0, int64_t r1) {                                           \
        __m512 st[GM_ROWS * GM_T];                                                                         \
        for (int64_t rr = r0; rr < r1; rr += GM_ROWS) {                                                    \
            const int64_t re = rr + GM_ROWS < r1 ? rr + GM_ROWS : r1;                                      \
            int64_t t0 = 0;                                                                                \
            for (; t0 + GM_T <= a->nt; t0 += GM_T) gm_tile(B, G, S, GM_T, w, rb, a, t0, y, ldy, rr, re, st); \
            if (a->nt - t0 >= 4) gm_tile(B, G, S, 4, w, rb, a, t0, y, ldy, rr, re, st), t0 += 4;          \
            if (a->nt - t0 >= 2) gm_tile(B, G, S, 2, w, rb, a, t0, y, ldy, rr, re, st), t0 += 2;          \
            if (a->nt - t0 >= 1) gm_tile(B, G, S, 1, w, rb, a, t0, y, ldy, rr, re, st);                   \
        }                                                                                                  \
    }
#define GM_FORMATS(X) QF_FOR_EACH_SYM(X, 2) QF_FOR_EACH_SYM(X, 3) QF_FOR_EACH_SYM(X, 4) QF_FOR_EACH_SYM(X, 8)
GM_FORMATS(GM_FN)

void kern_dqg_avx512vnni(const qf_spec *s, const void *w, size_t row_bytes, const kern_dq *a, float *y,
                         int64_t ldy, int64_t r0, int64_t r1) {
#define GM_CASE(B, G, S) \
    if (s->bits == B && s->group == G && s->sym == S) return gm_i##B##_g##G##_s##S(w, row_bytes, a, y, ldy, r0, r1);
    GM_FORMATS(GM_CASE)
#undef GM_CASE
}
