// Helpers shared by the AVX-512 VNNI kernels over our integer formats (iqdec_avx512vnni.c decode,
// iqgemm_avx512vnni.c prefill): include only from files compiled with the *_avx512vnni.c flags.
#ifndef IT_KERNELS_IQDEC_AVX512_H
#define IT_KERNELS_IQDEC_AVX512_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "core/simd.h"

KI size_t dq_hdr(const int S) { return S ? 2 : 3; }
KI size_t dq_blkb(const int B, const int G, const int S) { return dq_hdr(S) + (size_t)(G * B / 8); }

// 64 bytes of the packed low bits (B = 3: the 2-bit plane) of blocks k0.. of a chunk at cb (its
// first group); k0 is a multiple of the blocks per 64 bytes.
KI __m512i dq_load_plane(const int B, const int G, const int S, const uint8_t *cb, int k0) {
    const int Bp = B == 3 ? 2 : B, bps = 4 * Bp, gbytes = G * Bp / 8, kpg = G / 32;
    const size_t bb = dq_blkb(B, G, S);
    if (gbytes >= 64) return _mm512_loadu_si512(cb + (size_t)(k0 / kpg) * bb + dq_hdr(S) + (size_t)((k0 % kpg) * bps));
    const uint8_t *p = cb + (size_t)(k0 / kpg) * bb + dq_hdr(S);
    if (gbytes == 32)
        return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p)),
                                  _mm256_loadu_si256((const __m256i *)(p + bb)), 1);
    if (gbytes == 16) {
        __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)p));
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + bb)), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + 2 * bb)), 2);
        return _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + 3 * bb)), 3);
    }
    long long x[8];
    UNROLL for (int i = 0; i < 8; i++) memcpy(&x[i], p + (size_t)i * bb, 8);
    return _mm512_set_epi64(x[7], x[6], x[5], x[4], x[3], x[2], x[1], x[0]);
}

// Values GCC must keep (in a register or on the stack) instead of rebuilding them inside the chunk
// loop: it rematerialized each vector constant and mask there by a GPR move and vpbroadcast or
// kmovw, one port-5 op each, 6-7 per chunk (about a seventh of the decode kernel's port-5 work).
KI __m512i dq_keep(__m512i v) {
    __asm__("" : "+v"(v));
    return v;
}
KI __mmask16 dq_keepk(__mmask16 k) {
    __asm__("" : "+k"(k));
    return k;
}
KI void dq_dz_masks(__mmask16 km[3]) {
    km[0] = dq_keepk(0xfff0), km[1] = dq_keepk(0xff00), km[2] = dq_keepk(0xf000);
}

KI int dq_ld32(const uint8_t *p) {
    int v;
    memcpy(&v, p, 4);
    return v;
}

// The 16 header words of a 32-block chunk (one group per block, bb bytes apart) by byte permutes
// over the chunk's bytes when 16 * bb <= 320 (int2 / int3 / int4 g32, Q4_0; dq_hperm_fits): bytes
// 0..127 and 128..255 by two-source vpermt2b, the rest by vpermb, merged by byte masks. Bytes from
// 128 on are loaded under masks, so nothing past the chunk is read (the last chunk may end a
// mapping). Lane b byte j is chunk byte b * bb + j for j below the header size (above it, byte
// b * bb again: callers read the header's bytes only). Why not one vpgatherdd: on Zen 4 the 16-lane
// gather made int4 g32 / Q4_0 decode cost 15.2 ns per 512 weights against int4 g128's 9.2
// (bench_qkernels hot). The index and masks are made once per call.
KI int dq_hperm_fits(const int B, const int G, const int S) { return G == 32 && 16 * (int)dq_blkb(B, G, S) <= 320; }

typedef struct {
    __m512i ix;
    __mmask64 kb, kc, m[3];   // m: the bytes of 128..191, 192..255, 256..319 inside the chunk
} dq_hperm;

KI void dq_hperm_init(const int B, const int G, const int S, dq_hperm *h) {
    const int bb = (int)dq_blkb(B, G, S);
    if (!dq_hperm_fits(B, G, S)) return;   // int8 g32: too long for the permutes, gathered
    _Alignas(64) uint8_t idx[64];
    uint64_t kb = 0, kc = 0;
    for (int b = 0; b < 16; b++)
        for (int j = 0; j < 4; j++) {
            const int src = b * bb + (j < (int)dq_hdr(S) ? j : 0);
            idx[4 * b + j] = (uint8_t)(src & 127);
            if (src >= 128 && src < 256) kb |= (uint64_t)1 << (4 * b + j);
            if (src >= 256) kc |= (uint64_t)1 << (4 * b + j);
        }
    h->ix = _mm512_load_si512(idx);
    h->kb = kb, h->kc = kc;
    for (int w = 0; w < 3; w++) {
        const int n = 16 * bb - 128 - 64 * w;   // bytes of the chunk in window w
        h->m[w] = n >= 64 ? ~(uint64_t)0 : n <= 0 ? 0 : ((uint64_t)1 << n) - 1;
    }
}

KI __m512i dq_g32_headers(const uint8_t *cb, const dq_hperm *h) {
    const __m512i a = _mm512_permutex2var_epi8(_mm512_loadu_si512(cb), h->ix, _mm512_loadu_si512(cb + 64));
    const __m512i b = _mm512_permutex2var_epi8(_mm512_maskz_loadu_epi8(h->m[0], cb + 128), h->ix,
                                               _mm512_maskz_loadu_epi8(h->m[1], cb + 192));
    const __m512i c = _mm512_permutexvar_epi8(h->ix, _mm512_maskz_loadu_epi8(h->m[2], cb + 256));
    return _mm512_mask_blend_epi8(h->kc, _mm512_mask_blend_epi8(h->kb, a, b), c);
}

// The 16 header words (d in the low 16 bits, z in bits 16..23 when asymmetric) of the groups
// holding blocks 0..15 of a chunk at cb, lane b = block b's group.
// km: the lane masks 0xfff0, 0xff00, 0xf000 (dq_dz_masks), hp: dq_hperm_init's; both made once
// outside the caller's loops.
KI __m512i dq_chunk_dz(const int B, const int G, const int S, const uint8_t *cb, const __mmask16 *km,
                       const dq_hperm *hp) {
    const int kpg = G / 32;
    const int bb = (int)dq_blkb(B, G, S);
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512i dz;
    if (kpg == 1) {
        dz = dq_hperm_fits(B, G, S) ? dq_g32_headers(cb, hp)
                    : _mm512_i32gather_epi32(_mm512_mullo_epi32(iota, _mm512_set1_epi32(bb)), (const void *)cb, 1);
    } else if (kpg == 4) {
        // Group g's word broadcast into lanes 4g.. by masked load-broadcasts (vpbroadcastd zmm{k},
        // m32: a load and one p0/p5 op each). Why: scalar inserts and a vpermd were 4 port-5 ops
        // per chunk, and port 5 is where the kernels are bound.
        dz = _mm512_set1_epi32(dq_ld32(cb));
        dz = _mm512_mask_set1_epi32(dz, km[0], dq_ld32(cb + bb));
        dz = _mm512_mask_set1_epi32(dz, km[1], dq_ld32(cb + 2 * bb));
        dz = _mm512_mask_set1_epi32(dz, km[2], dq_ld32(cb + 3 * bb));
    } else {   // 8 groups (g64): scalar loads and a broadcast (a 16-lane gather is slow on Zen 4)
        int v[8];
        UNROLL for (int g = 0; g < 16 / kpg; g++) memcpy(&v[g], cb + (size_t)g * (size_t)bb, 4);
        __m512i gv = _mm512_castsi256_si512(_mm256_setr_epi32(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]));
        dz = _mm512_permutexvar_epi32(_mm512_srli_epi32(iota, 1), gv);
    }
    return dz;
}

// The sum of 16 lanes in the order kernels/iqdec.h defines: (i, i+8), then +4, +2, +1.
KI float dq_hsum16(__m512 f) {
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(f), _mm512_extractf32x8_ps(f, 1));
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    __m128 p = _mm_add_ps(q, _mm_movehl_ps(q, q));
    return _mm_cvtss_f32(_mm_add_ss(p, _mm_shuffle_ps(p, p, 1)));
}

#endif
