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

// The 16 header words (d in the low 16 bits, z in bits 16..23 when asymmetric) of the groups
// holding blocks 0..15 of a chunk at cb, lane b = block b's group.
KI __m512i dq_chunk_dz(const int B, const int G, const int S, const uint8_t *cb) {
    const int kpg = G / 32;
    const int bb = (int)dq_blkb(B, G, S);
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i off = _mm512_mullo_epi32(iota, _mm512_set1_epi32(bb));
    __m512i dz;
    if (kpg == 1) {
        dz = _mm512_i32gather_epi32(off, (const void *)cb, 1);
    } else {   // 4 or 8 groups: scalar loads and a broadcast (a 16-lane gather is slow on Zen 4)
        int v[8];
        UNROLL for (int g = 0; g < 16 / kpg; g++) memcpy(&v[g], cb + (size_t)g * (size_t)bb, 4);
        __m512i gv = kpg == 4 ? _mm512_castsi128_si512(_mm_setr_epi32(v[0], v[1], v[2], v[3]))
                              : _mm512_castsi256_si512(_mm256_setr_epi32(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]));
        dz = _mm512_permutexvar_epi32(_mm512_srli_epi32(iota, kpg == 2 ? 1 : 2), gv);
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
