// AVX-512 VNNI decode GEMV (kernels/iqdec.h), bit-identical to kern_dq_ref. Compiled with the
// AVX-512 flags plus VNNI, BITALG, VBMI and GFNI (Makefile rule for *_avx512vnni.c); chosen only
// when cpuid reports all four (kern_dq_kernel).
//
// A row is streamed in chunks of 16 32-blocks (512 weights). The packed codes of a chunk are loaded
// 64 bytes at a time and unpacked in the byte domain, in the order they are stored — the activation
// copies q4 / q2 are arranged to match (kernels/iqdec.h) — and vpdpbusd multiplies the unsigned codes
// by the int8 activations, 4 products per int32 lane:
//   int4: 64 bytes = 4 blocks; low nibbles (and) and high nibbles (simd_hi4): 2 vpdpbusd.
//   int8: 64 bytes = 2 blocks; 1 vpdpbusd.
//   int2: 64 bytes = 8 blocks; fields i = (v >> 2i) & 3 (one GF(2) affine step each): 4 vpdpbusd.
//   int3: int2's low bits, plus the high bit of each weight added as 4 under a mask; one vpermb
//         lays out the four fields' masks from the blocks' high-bit words: 4 masked adds (on AMD,
//         kern_dq_avx512vnni_amd, four vpshufbitqmb make them in mask registers instead).
// The int32 lanes of a chunk are reduced to one lane per block, in block order, by pairwise
// vpermt2d + add; then one vector of float work per chunk: d_g * s_b, (isum - z sum) and an FMA.
#include <immintrin.h>
#include <string.h>

#include "kernels/iqdec.h"
#include "core/cpu.h"
#include "core/simd.h"
#include "kernels/iqdec_avx512.h"

// Software prefetch distance in bytes of the row stream on AMD Zen 5. At 2 KB (about two rows of a
// 2048-wide int4 g128 matrix) a stream running at ~20 GB/s per core had too little in flight to
// cover DRAM latency: 8 KB decoded int4 g128 TinyLlama 8-16% faster (5 alternating rounds,
// docs/speed.md); 1 KB was slower, 16 KB no better than 2 KB. Intel cores want 2 KB
// (it_cpu_stream_prefetch). On Zen 4 whole runs could not tell 1, 2, 4 and 8 KB apart (the
// bandwidth swings by 2x from minute to minute there); steps alternated within one run (`bench
// --prefetch-ab 8192,4096`) put 4 KB ahead of 8 KB for every format: int4 g128 +1.7-4.3%, int3
// +1.5%, int8 +4.5%, int4 g32 +1.6%; 2.5-5 KB alike, 16 KB 4% behind.
#define DQ_PF_ZEN5 8192
#define DQ_PF_ZEN4 4096

enum { MAX_T = 3 };

// int3 g32 / g64: the 8 high-bit words (one per block) of blocks k0 .. k0+7, in block order.
KI __m256i load_hwords(const int G, const int S, const uint8_t *cb, int k0) {
    const int kpg = G / 32;
    const size_t bb = dq_blkb(3, G, S), off = dq_hdr(S) + (size_t)(G / 4);
    // A group's words are contiguous: g64 holds 2 (four 8-byte loads; g128 takes hbit_masks' own
    // two-source permute). Word by word (8 scalar loads and inserts) these were the kernel's hottest
    // instructions.
    if (kpg == 2) {
        const uint8_t *p = cb + (size_t)(k0 / 2) * bb + off;
        long long g[4];
        UNROLL for (int i = 0; i < 4; i++) memcpy(&g[i], p + (size_t)i * bb, 8);
        return _mm256_setr_epi64x(g[0], g[1], g[2], g[3]);
    }
    uint32_t wd[8];
    UNROLL for (int k = 0; k < 8; k++)
        memcpy(&wd[k], cb + (size_t)((k0 + k) / kpg) * bb + off + (size_t)(4 * ((k0 + k) % kpg)), 4);
    return _mm256_loadu_si256((const __m256i *)wd);
}

// int3 on AMD (kern_dq_avx512vnni_amd): the same masks straight into mask registers. Qword lane k
// of the result holds block k's high-bit word; vpshufbitqmb with bit indices 8i .. 8i+7 in every
// lane (dq_consts.ctl[i]) then gives m[i]. Why a second way: on Zen 4 this made the int3 kernel 3.5%
// faster (bench_qkernels hot) and its decode stream 3% closer to the bandwidth (docs/speed.md); on
// the Intel Xeon vpshufbitqmb runs on the shuffle port only and the permute-and-store way won.
KI __m512i hbit_qwords(const int G, const int S, const uint8_t *cb, int k0) {
    if (G == 128) {   // the two groups' 16-byte word runs, words to even dword lanes
        const uint8_t *p = cb + (size_t)(k0 / 4) * dq_blkb(3, G, S) + dq_hdr(S) + (size_t)(G / 4);
        const __m512i a = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)p));
        const __m512i b = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(p + dq_blkb(3, G, S))));
        return _mm512_permutex2var_epi32(a, _mm512_setr_epi32(0, 0, 1, 0, 2, 0, 3, 0, 16, 0, 17, 0, 18, 0, 19, 0), b);
    }
    return _mm512_cvtepu32_epi64(load_hwords(G, S, cb, k0));
}

// kmovq k, m64. With _load_mask64 GCC forwards the stored vector through general registers
// instead (vmovq / vpextrq / valignq, then kmovq k, r64: three shuffle-port ops per mask).
KI __mmask64 kload64(const __mmask64 *p) {
    __mmask64 k;
    __asm__("kmovq %1, %0" : "=k"(k) : "m"(*p));
    return k;
}

// int3: m[i] = the high bits of field i of blocks k0 .. k0+7 (see chunk_isum): bit 8k + j is bit
// 8i + j of block k's word, i.e. byte k of m[i] is byte i of word k. One vpermb gathers the four
// masks; the caller reads them back with kload64 (a load). Why: one vpshufbitqmb per field, after
// widening the words, was 5 shuffle-port ops per 256 weights; this is 1 (int3 decode about +4%).
KI void hbit_masks(const int G, const int S, const uint8_t *cb, int k0, __mmask64 *m) {
    const __m256i idx = _mm256_setr_epi8(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29,
                                         2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31);
    if (G == 128) {   // the two groups' 16-byte word runs: one two-source permute, no insert
        const uint8_t *p = cb + (size_t)(k0 / 4) * dq_blkb(3, G, S) + dq_hdr(S) + (size_t)(G / 4);
        const __m256i a = _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)p));
        const __m256i b = _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(p + dq_blkb(3, G, S))));
        const __m256i idx2 = _mm256_setr_epi8(0, 4, 8, 12, 32, 36, 40, 44, 1, 5, 9, 13, 33, 37, 41, 45,
                                              2, 6, 10, 14, 34, 38, 42, 46, 3, 7, 11, 15, 35, 39, 43, 47);
        _mm256_store_si256((__m256i *)(void *)m, _mm256_permutex2var_epi8(a, idx2, b));
        return;
    }
    _mm256_store_si256((__m256i *)(void *)m, _mm256_permutexvar_epi8(idx, load_hwords(G, S, cb, k0)));
}

// Bits 2i and 2i+1 of every byte of c in bits 0 and 1, zeros above: one GF(2) affine step (GFNI)
// instead of a shift and a mask. Result bit r of a byte is the parity of the byte AND matrix row r,
// and row r is byte 7 - r of the 64-bit matrix: row 0 picks bit 2i, row 1 bit 2i+1, the rest none.
KI __m512i field2(__m512i c, int i) {
    const uint64_t m = ((uint64_t)1 << (2 * i)) << 56 | ((uint64_t)1 << (2 * i + 1)) << 48;
    return _mm512_gf2p8affine_epi64_epi8(c, _mm512_set1_epi64((long long)m), 0);
}

// Lane j = a[2j] + a[2j+1] (j < 8), b[2j-16] + b[2j-15] (j >= 8): halves the lanes per block and
// keeps the block order.
KI __m512i pair_reduce(__m512i a, __m512i b) {
    const __m512i e = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i o = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    return _mm512_add_epi32(_mm512_permutex2var_epi32(a, e, b), _mm512_permutex2var_epi32(a, o, b));
}

// The chunk loop's constants, made once per call (dq_keep: not rebuilt inside the loop).
typedef struct {
    __m512i m3, four, m4, ff, hi4, ctl[4];   // ctl: int3's vpshufbitqmb bit indices (hbit_qwords)
    __mmask16 km[3], all;
    dq_hperm hp;
} dq_consts;

// SB: int3 with hbit_qwords (kern_dq_avx512vnni_amd), the only user of ctl; elsewhere ctl is not
// kept in registers.
KI void dq_consts_init(const int B, const int G, const int S, const int SB, dq_consts *k) {
    k->m3 = dq_keep(_mm512_set1_epi8(3)), k->four = dq_keep(_mm512_set1_epi8(4));
    k->m4 = dq_keep(_mm512_set1_epi8(0x0f)), k->ff = dq_keep(_mm512_set1_epi32(0xff));
    k->hi4 = dq_keep(simd_hi4_matrix());
    for (int i = 0; i < 4; i++) {   // bits 8i .. 8i+7 of every qword lane: byte i of block k's word
        unsigned long long c = 0;
        for (int j = 0; j < 8; j++) c |= (unsigned long long)(8 * i + j) << (8 * j);
        k->ctl[i] = B == 3 && SB ? dq_keep(_mm512_set1_epi64((long long)c)) : _mm512_setzero_si512();
    }
    dq_dz_masks(k->km);
    k->all = dq_keepk(0xffff);
    dq_hperm_init(B, G, S, &k->hp);
}

#define DP(acc, u, s) _mm512_dpbusd_epi32(acc, u, s)
#define LD(p) _mm512_loadu_si512((const void *)(p))

// isum of the chunk's 16 blocks, lane b = block b, for T tokens (activation pointers at the chunk).
// SB: int3's high-bit masks by vpshufbitqmb (hbit_qwords) instead of hbit_masks.
KI void chunk_isum(const int B, const int G, const int S, const int T, const int SB, const uint8_t *cb,
                   const dq_consts *K, const int8_t *const *qn, const int8_t *const *q4, const int8_t *const *q2, __m512i *out) {
    const __m512i zero = _mm512_setzero_si512();
    if (B == 4) {
        const __m512i m4 = K->m4;
        __m512i V[MAX_T][4];
        UNROLL for (int v = 0; v < 4; v++) {
            __m512i c = dq_load_plane(B, G, S, cb, 4 * v);
            __m512i lo = _mm512_and_si512(c, m4), hi = simd_hi4(c, K->hi4);
            UNROLL for (int t = 0; t < T; t++) V[t][v] = DP(DP(zero, lo, LD(q4[t] + 128 * v)), hi, LD(q4[t] + 128 * v + 64));
        }
        UNROLL for (int t = 0; t < T; t++)
            out[t] = pair_reduce(pair_reduce(V[t][0], V[t][1]), pair_reduce(V[t][2], V[t][3]));
    } else if (B == 8) {
        __m512i P[MAX_T][8];
        UNROLL for (int p = 0; p < 8; p++) {
            __m512i c = dq_load_plane(B, G, S, cb, 2 * p);
            UNROLL for (int t = 0; t < T; t++) P[t][p] = DP(zero, c, LD(qn[t] + 64 * p));
        }
        UNROLL for (int t = 0; t < T; t++) {
            __m512i v0 = pair_reduce(P[t][0], P[t][1]), v1 = pair_reduce(P[t][2], P[t][3]);
            __m512i v2 = pair_reduce(P[t][4], P[t][5]), v3 = pair_reduce(P[t][6], P[t][7]);
            out[t] = pair_reduce(pair_reduce(v0, v1), pair_reduce(v2, v3));
        }
    } else {
        const __m512i m3 = K->m3, four = K->four;
        __m512i X[MAX_T][2];
        UNROLL for (int h = 0; h < 2; h++) {
            __m512i c = dq_load_plane(B, G, S, cb, 8 * h);
            _Alignas(32) __mmask64 hm[4];
            __m512i hq = zero;
            if (B == 3 && SB) hq = hbit_qwords(G, S, cb, 8 * h);
            else if (B == 3) hbit_masks(G, S, cb, 8 * h, hm);
            UNROLL for (int t = 0; t < T; t++) X[t][h] = zero;
            UNROLL for (int i = 0; i < 4; i++) {
                __m512i f = i ? field2(c, i) : _mm512_and_si512(c, m3);
                // Byte 8k + j of field i is weight 32k + 8i + j: its high bit is bit 8k + j of hm[i].
                if (B == 3) {
                    const __mmask64 k = SB ? _mm512_bitshuffle_epi64_mask(hq, K->ctl[i]) : kload64(&hm[i]);
                    f = _mm512_mask_add_epi8(f, k, f, four);
                }
                UNROLL for (int t = 0; t < T; t++) X[t][h] = DP(X[t][h], f, LD(q2[t] + 256 * h + 64 * i));
            }
        }
        UNROLL for (int t = 0; t < T; t++) out[t] = pair_reduce(X[t][0], X[t][1]);
    }
}

// The float step of one chunk: f += (d * s) * (isum - z * sum) on the lanes of lm.
KI void chunk_float(const int B, const int G, const int S, const int T, const uint8_t *cb, const dq_consts *K, const __m512i *is,
                    const float *const *sc, const int32_t *const *su, __m512 *f, __mmask16 lm) {
    __m512i dz = dq_chunk_dz(B, G, S, cb, K->km, &K->hp);
    __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dz));
    __m512i z = S ? _mm512_set1_epi32(1 << (B - 1)) : _mm512_and_si512(_mm512_srli_epi32(dz, 16), K->ff);
    // z * su by vpmaddwd (one op; vpmulld is two): z < 256 and |su| <= 32 * 128 both fit 16 bits,
    // and z's high half is zero, so the pair sum is z * su.
    UNROLL for (int t = 0; t < T; t++) {
        __m512i su_t = _mm512_loadu_si512(su[t]);
        __m512i iv = _mm512_sub_epi32(is[t], S ? _mm512_slli_epi32(su_t, B - 1) : _mm512_madd_epi16(z, su_t));
        __m512 ds = _mm512_mul_ps(d, _mm512_loadu_ps(sc[t]));
        f[t] = _mm512_mask3_fmadd_ps(ds, _mm512_cvtepi32_ps(iv), f[t], lm);
    }
}

// Rows r0..r1-1 for T tokens starting at token t0.
KI void rows(const int B, const int G, const int S, const int T, const int SB, const uint8_t *w, size_t rb,
             const kern_dq *a, int64_t t0, float *y, int64_t ldy, int64_t r0, int64_t r1, size_t pf) {
    const int kpg = G / 32, gpc = 16 / kpg;   // groups per chunk
    const size_t bb = dq_blkb(B, G, S), cbytes = (size_t)gpc * bb;
    const int64_t nb = a->n_in / 32, nfull = nb / 16, np = a->nbp * 32;
    const int tail = (int)(nb % 16);
    _Alignas(64) uint8_t pad[16 * 131 + 64];   // one chunk of the largest block (int8 g32: 16 * 35)
    dq_consts K;
    dq_consts_init(B, G, S, SB, &K);
    uintptr_t pl = 0;   // the next line to prefetch (simd_pf_row)
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * rb;
        __m512 f[MAX_T];
        UNROLL for (int t = 0; t < T; t++) f[t] = _mm512_setzero_ps();
        simd_pf_row(&pl, row + pf);
        for (int64_t c = 0; c <= nfull; c++) {
            const uint8_t *cb = row + (size_t)c * cbytes;
            __mmask16 lm = K.all;
            if (c == nfull) {   // the last, partial chunk: from a zero-padded copy
                if (!tail) break;
                memset(pad, 0, cbytes + 64);
                memcpy(pad, cb, (size_t)(tail / kpg) * bb);
                cb = pad;
                lm = (__mmask16)((1u << tail) - 1);
            } else {
                simd_pf_upto(&pl, cb + pf + cbytes - 1);
            }
            const int8_t *qn[MAX_T], *q4[MAX_T], *q2[MAX_T];
            const float *sc[MAX_T];
            const int32_t *su[MAX_T];
            UNROLL for (int t = 0; t < T; t++) {
                qn[t] = a->q + (t0 + t) * np + 512 * c;
                q4[t] = a->q4 + (t0 + t) * np + 512 * c;
                q2[t] = a->q2 + (t0 + t) * np + 512 * c;
                sc[t] = a->scale + (t0 + t) * a->nbp + 16 * c;
                su[t] = a->sum + (t0 + t) * a->nbp + 16 * c;
            }
            __m512i is[MAX_T];
            chunk_isum(B, G, S, T, SB, cb, &K, qn, q4, q2, is);
            chunk_float(B, G, S, T, cb, &K, is, sc, su, f, lm);
        }
        UNROLL for (int t = 0; t < T; t++) y[(t0 + t) * ldy + r] = dq_hsum16(f[t]);
    }
}

// int3 formats get two functions, _m0 (permute masks) and _m1 (mask registers); the others' _m1 is
// never referenced (DQ_CASE) and not emitted. One body holding both variants behind a runtime flag
// ran the int3 loop 3% slower than a body with one.
#define DQ_ROWS(B, G, S, SB)                                                                             \
    do {                                                                                                 \
        int64_t t0 = 0;                                                                                  \
        for (; t0 + 3 <= a->nt; t0 += 3) rows(B, G, S, 3, SB, w, rb, a, t0, y, ldy, r0, r1, pf);         \
        if (a->nt - t0 == 2) rows(B, G, S, 2, SB, w, rb, a, t0, y, ldy, r0, r1, pf);                     \
        if (a->nt - t0 == 1) rows(B, G, S, 1, SB, w, rb, a, t0, y, ldy, r0, r1, pf);                     \
    } while (0)
#define DQ_FN(B, G, S)                                                                                   \
    static void dq_i##B##_g##G##_s##S##_m0(const uint8_t *w, size_t rb, const kern_dq *a, float *y,     \
                                           int64_t ldy, int64_t r0, int64_t r1, size_t pf) {            \
        DQ_ROWS(B, G, S, 0);                                                                             \
    }                                                                                                    \
    static void dq_i##B##_g##G##_s##S##_m1(const uint8_t *w, size_t rb, const kern_dq *a, float *y,     \
                                           int64_t ldy, int64_t r0, int64_t r1, size_t pf) {            \
        DQ_ROWS(B, G, S, B == 3);                                                                        \
    }
QF_FOR_EACH_FORMAT(DQ_FN)

static void dq_dispatch(const qf_spec *s, const void *w, size_t row_bytes, const kern_dq *a, float *y,
                        int64_t ldy, int64_t r0, int64_t r1, int sb) {
    const size_t pf = (size_t)it_cpu_stream_prefetch(DQ_PF_ZEN5, DQ_PF_ZEN4);
#define DQ_CASE(B, G, S) \
    if (s->bits == B && s->group == G && s->sym == S)                                                    \
        return (B == 3 && sb ? dq_i##B##_g##G##_s##S##_m1 : dq_i##B##_g##G##_s##S##_m0)(w, row_bytes, a, y, ldy, r0, r1, pf);
    QF_FOR_EACH_FORMAT(DQ_CASE)
#undef DQ_CASE
}

void kern_dq_avx512vnni(const qf_spec *s, const void *w, size_t row_bytes, const kern_dq *a, float *y,
                        int64_t ldy, int64_t r0, int64_t r1) {
    dq_dispatch(s, w, row_bytes, a, y, ldy, r0, r1, 0);
}

void kern_dq_avx512vnni_amd(const qf_spec *s, const void *w, size_t row_bytes, const kern_dq *a, float *y,
                            int64_t ldy, int64_t r0, int64_t r1) {
    dq_dispatch(s, w, row_bytes, a, y, ldy, r0, r1, 1);
}
