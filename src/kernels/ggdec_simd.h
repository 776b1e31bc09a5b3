// The body of the ggml decode GEMV kernels (kernels/ggdec.h), included by ggdec_avx2.c (GG_VNNI 0:
// maddubs + madd) and ggdec_avx512vnni.c (GG_VNNI 1: 256-bit vpdpbusd), which differ only in the
// byte dot. Rows are streamed in groups of 8 32-blocks (one k-quant super-block, or 8 Q8_0 blocks): each block's codes are unpacked to 32 bytes in weight order, dotted with the token's 32
// int8 activations (8 int32 lanes), the 8 blocks' lanes are summed to one lane per block, and the
// float step of ggdec.h runs on the 8 blocks at once into lanes 8*(group % 2) .. of the 16
// accumulators. Blocks past the last whole group and the final reduction are ggdec.c's scalar code.
// With VNNI, every type takes 16 blocks at a time in 512-bit vectors instead (gg_chunk below,
// Q6_K's gg_chunk_q6k in ggdec_q6k512.h); only the rows' last group of 8 keeps the 256-bit step.
#include <immintrin.h>
#include <string.h>

#include "core/cpu.h"
#include "core/fp16.h"
#include "core/simd.h"
#include "kernels/ggdec.h"

enum { GG_MAX_T = 3 };

// Exact int32 dot of 32 unsigned bytes u (each < 128 here, or Q8_0's |w| <= 128) with 32 int8 q:
// 8 lanes of partial sums (maddubs pairs stay within int16: 2 * 128 * 127 < 2^15).
KI __m256i gg_dot(__m256i u, __m256i q) {
#if GG_VNNI
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, q);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, q), _mm256_set1_epi16(1));
#endif
}

// Lane j of the result = sum of the 8 lanes of v[j].
KI __m256i gg_reduce8(const __m256i v[8]) {
    __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}

// 8 fp16 scales at p, p + stride, ...
KI __m256 gg_d8(const uint8_t *p, size_t stride) {
    uint16_t h[8];
    UNROLL for (int j = 0; j < 8; j++) memcpy(&h[j], p + (size_t)j * stride, 2);
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)h));
}

KI __m256i gg_ld(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

// Q4_K's d * sc_j and dmin * mn_j (j < 8) of the super-block at k as float lanes j. The 8 6-bit
// scales and 8 mins packed in 12 bytes (formats.h; ggdec.c's k4_scale_min) are unpacked four at a
// time in 32-bit words: with a, b, c the words of bytes 0..3, 4..7, 8..11, the bytes of
//   sc_0..3 = a & 0x3f;  sc_4..7 = (c & 0x0f) | ((a >> 6) << 4);
//   mn_0..3 = b & 0x3f;  mn_4..7 = (c >> 4)  | ((b >> 6) << 4)
// (per byte; (a >> 2) & 0x30 is (a >> 6) << 4 within each byte, as no bit crosses into the mask).
// Why: byte-wise scalar unpacking into int arrays read back as vectors cost a store-forwarding
// stall per super-block and held Q4_K decode at ~30% of the bandwidth. d and dmin are adjacent
// fp16: one 32-bit load and one vcvtph2ps (exact, as it_fp16_to_f32).
KI void gg_k4_scales(const uint8_t *k, __m256 *dsc, __m256 *dmn) {
    uint32_t dd, a, b, c;
    memcpy(&dd, k, 4);
    memcpy(&a, k + 4, 4);
    memcpy(&b, k + 8, 4);
    memcpy(&c, k + 12, 4);
    const uint64_t sc = (uint64_t)(a & 0x3f3f3f3fu) | (uint64_t)((c & 0x0f0f0f0fu) | ((a >> 2) & 0x30303030u)) << 32;
    const uint64_t mn = (uint64_t)(b & 0x3f3f3f3fu) | (uint64_t)(((c >> 4) & 0x0f0f0f0fu) | ((b >> 2) & 0x30303030u)) << 32;
    const __m128 dm = _mm_cvtph_ps(_mm_cvtsi32_si128((int)dd));
    const __m256 d = _mm256_broadcastss_ps(dm), dmin = _mm256_broadcastss_ps(_mm_movehdup_ps(dm));
    *dsc = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)sc))));
    *dmn = _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)mn))));
}

// One group of 8 blocks at gb for T tokens (q, s, su at the group's first block): f[t] updated.
KI void gg_group(const int type, const int T, const uint8_t *gb, const int8_t *const *q,
                 const float *const *s, const int32_t *const *su, __m256 *f) {
    const __m256i m4 = _mm256_set1_epi8(15);
    __m256i v[GG_MAX_T][8], iv[GG_MAX_T];
    if (type == IT_TYPE_Q8_0) {
        const size_t bs = sizeof(it_block_q8_0);
        UNROLL for (int j = 0; j < 8; j++) {
            const __m256i c = gg_ld(gb + (size_t)j * bs + 2);
            UNROLL for (int t = 0; t < T; t++) {
                __m256i qt = gg_ld(q[t] + 32 * j);
#if GG_VNNI
                // w + 128 is unsigned; the 128 * sum_b it adds is taken off below.
                v[t][j] = gg_dot(_mm256_xor_si256(c, _mm256_set1_epi8((char)0x80)), qt);
#else
                v[t][j] = gg_dot(_mm256_abs_epi8(c), _mm256_sign_epi8(qt, c));
#endif
            }
        }
        const __m256 d = gg_d8(gb, bs);
        UNROLL for (int t = 0; t < T; t++) {
            iv[t] = gg_reduce8(v[t]);
            __m256i sum = _mm256_loadu_si256((const __m256i *)(const void *)su[t]);
            if (GG_VNNI) iv[t] = _mm256_sub_epi32(iv[t], _mm256_slli_epi32(sum, 7));
            f[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_loadu_ps(s[t])), _mm256_cvtepi32_ps(iv[t]), f[t]);
        }
    } else if (type == IT_TYPE_Q4_K) {
        const it_block_q4_K *k = (const void *)gb;
        UNROLL for (int p = 0; p < 4; p++) {
            __m256i x = gg_ld(k->qs + 32 * p);
            __m256i lo = _mm256_and_si256(x, m4), hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), m4);
            UNROLL for (int t = 0; t < T; t++) {
                v[t][2 * p] = gg_dot(lo, gg_ld(q[t] + 64 * p));
                v[t][2 * p + 1] = gg_dot(hi, gg_ld(q[t] + 64 * p + 32));
            }
        }
        __m256 dsc, dmn;
        gg_k4_scales(gb, &dsc, &dmn);
        UNROLL for (int t = 0; t < T; t++) {
            __m256 st = _mm256_loadu_ps(s[t]);
            __m256 sum = _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(const void *)su[t]));
            f[t] = _mm256_fmadd_ps(_mm256_mul_ps(dsc, st), _mm256_cvtepi32_ps(gg_reduce8(v[t])), f[t]);
            f[t] = _mm256_fnmadd_ps(_mm256_mul_ps(dmn, st), sum, f[t]);
        }
    } else {   // Q6_K
        const it_block_q6_K *k = (const void *)gb;
        const __m256i m2 = _mm256_set1_epi8(3), c32 = _mm256_set1_epi8(32);
        // The 16 int8 sub-scales in both 128-bit lanes; block j's pair (sc_2j in the low lane's int16s,
        // sc_2j+1 in the high lane's) is one byte shuffle that copies the scale byte into both bytes
        // of each int16 and an arithmetic shift that sign-extends it.
        const __m256i sb = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)k->scales));
        UNROLL for (int n = 0; n < 2; n++) {
            __m256i l0 = gg_ld(k->ql + 64 * n), l1 = gg_ld(k->ql + 64 * n + 32), h = gg_ld(k->qh + 32 * n);
            UNROLL for (int m = 0; m < 4; m++) {
                const int j = 4 * n + m;
                __m256i l = m & 1 ? l1 : l0;
                l = m < 2 ? _mm256_and_si256(l, m4) : _mm256_and_si256(_mm256_srli_epi16(l, 4), m4);
                __m256i hb = _mm256_and_si256(m ? _mm256_srli_epi16(h, 2 * m) : h, m2);
                __m256i c = _mm256_or_si256(l, _mm256_slli_epi16(hb, 4));
                __m256i scv = _mm256_srai_epi16(
                    _mm256_shuffle_epi8(sb, _mm256_set_m128i(_mm_set1_epi8((char)(2 * j + 1)), _mm_set1_epi8((char)(2 * j)))), 8);
                UNROLL for (int t = 0; t < T; t++) {
                    // (c - 32) q in int16 pairs: |.| <= 2 * 32 * 127; then times the 16-weight scale.
                    __m256i qt = gg_ld(q[t] + 32 * j);
                    __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(c, qt), _mm256_maddubs_epi16(c32, qt));
                    v[t][j] = _mm256_madd_epi16(p, scv);
                }
            }
        }
        const __m256 d = _mm256_broadcastss_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(k->d)));
        UNROLL for (int t = 0; t < T; t++)
            f[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_loadu_ps(s[t])), _mm256_cvtepi32_ps(gg_reduce8(v[t])), f[t]);
    }
}

KI size_t gg_group_bytes(const int type) {
    return type == IT_TYPE_Q8_0 ? 8 * sizeof(it_block_q8_0)
         : type == IT_TYPE_Q4_K ? sizeof(it_block_q4_K) : sizeof(it_block_q6_K);
}

// Software prefetch distances on AMD Zen 5 and Zen 4, as the intN decode kernels'
// (iqdec_avx512vnni.c); other CPUs get it_cpu_stream_prefetch's shorter one. Why: without it these
// kernels streamed Q4_K and Q6_K at 0.55-0.60 of the probed bandwidth from DRAM on an Intel Xeon,
// against 0.72-0.74 for Q4_0 and int4, whose kernels prefetch (docs/speed.md). On Zen 4, 4 KB
// decoded llama.cpp's Q4_0 / Q4_K_M / Q8_0 files 1.8% / 2.1% / 3.5% faster than 8 KB
// (`bench --prefetch-ab 8192,4096`).
#define GG_PF_ZEN5 8192
#define GG_PF_ZEN4 4096

// Rows r0..r1-1 for T tokens starting at token t0.
KI void gg_rows(const int type, const int T, const uint8_t *w, size_t rb, const kern_dq *a, int64_t t0,
                float *y, int64_t ldy, int64_t r0, int64_t r1, size_t pf) {
    const int64_t nb = a->n_in / 32, ng = nb / 8, np = a->nbp * 32;
    const size_t gbytes = gg_group_bytes(type);
    uintptr_t pl = 0;   // the next line to prefetch (simd_pf_row)
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * rb;
        simd_pf_row(&pl, row + pf);
        __m256 f[2][GG_MAX_T];
        UNROLL for (int t = 0; t < T; t++) f[0][t] = f[1][t] = _mm256_setzero_ps();
        for (int64_t g = 0; g < ng; g++) {
            const int8_t *q[GG_MAX_T];
            const float *s[GG_MAX_T];
            const int32_t *su[GG_MAX_T];
            UNROLL for (int t = 0; t < T; t++) {
                q[t] = a->q + (t0 + t) * np + 256 * g;
                s[t] = a->scale + (t0 + t) * a->nbp + 8 * g;
                su[t] = a->sum + (t0 + t) * a->nbp + 8 * g;
            }
            simd_pf_upto(&pl, row + (size_t)(g + 1) * gbytes + pf - 1);
            gg_group(type, T, row + (size_t)g * gbytes, q, s, su, f[g & 1]);
        }
        UNROLL for (int t = 0; t < T; t++) {
            float acc[16];
            _mm256_storeu_ps(acc, f[0][t]);
            _mm256_storeu_ps(acc + 8, f[1][t]);
            for (int64_t b = 8 * ng; b < nb; b++) ggdec_block(type, row, b, a, t0 + t, acc);
            y[(t0 + t) * ldy + r] = ggdec_reduce(acc);
        }
    }
}

#if GG_VNNI
// ---- AVX-512 VNNI: 16 blocks (a "chunk": 512 weights, two k-quant super-blocks) per step ----
// Q8_0 and Q4_K here, Q6_K in ggdec_q6k512.h (Q4_0 never reaches these kernels: ggdec.c hands it to
// intact's int4 g32 sym kernels). The byte dots leave fewer int32 lanes per block than the 256-bit
// path (4, as a block's two halves meet the kern_dq q4 copy of the activations in one lane) and the lanes are reduced to one per block by vpermt2d + add trees over 512-bit vectors instead of
// hadd trees: at prefill that reduction, not the byte dots, bounded the 256-bit kernel. The 16 block
// sums land in lane b % 16, i.e. f[b % 16] of ggdec.h, and the float step is the same per lane.

// Lane j = a[2j] + a[2j+1] (j < 8), b[2j-16] + b[2j-15] (j >= 8): halves the lanes per block and
// keeps their order.
KI __m512i gg_pair(__m512i a, __m512i b) {
    const __m512i e = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i o = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    return _mm512_add_epi32(_mm512_permutex2var_epi32(a, e, b), _mm512_permutex2var_epi32(a, o, b));
}

// 16 fp16 scales at p, p + stride, ... (4 bytes read at each: within the chunk's blocks).
KI __m512 gg_d16(const uint8_t *p, int stride) {
    const __m512i off = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32(stride));
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_i32gather_epi32(off, (const void *)p, 1)));
}

// One chunk at cb for T tokens (the q4 activation copy, s, su at the chunk's first block): f[t] updated.
KI void gg_chunk(const int type, const int T, const uint8_t *cb, const int8_t *const *q4,
                 const float *const *s, const int32_t *const *su, __m512 *f) {
    const __m512i zero = _mm512_setzero_si512(), m4 = _mm512_set1_epi8(15), h4 = simd_hi4_matrix();
    __m512i is[GG_MAX_T];
    __m512 ds;   // the per-block weight scale (Q4_K: d * sc_j)
    if (type == IT_TYPE_Q8_0) {
        const int bs = (int)sizeof(it_block_q8_0);
        // Weights 0..15 of four blocks side by side in U, 16..31 in W (one vpermt2q each, shared by
        // the tokens): they meet the q4 copy of the activations, a block's halves in the same 4 lanes.
        const __m512i iu = _mm512_setr_epi64(0, 1, 4, 5, 8, 9, 12, 13), iw = _mm512_setr_epi64(2, 3, 6, 7, 10, 11, 14, 15);
        const __m512i x80 = _mm512_set1_epi8((char)0x80);
        __m512i V[GG_MAX_T][4];
        UNROLL for (int v = 0; v < 4; v++) {
            const uint8_t *p = cb + (size_t)(4 * v) * bs + 2;
            __m512i A = _mm512_inserti64x4(_mm512_castsi256_si512(gg_ld(p)), gg_ld(p + bs), 1);
            __m512i B = _mm512_inserti64x4(_mm512_castsi256_si512(gg_ld(p + 2 * bs)), gg_ld(p + 3 * bs), 1);
            // w + 128: unsigned for vpdpbusd; the 128 sum_b it adds is taken off below.
            __m512i u = _mm512_xor_si512(_mm512_permutex2var_epi64(A, iu, B), x80);
            __m512i wv = _mm512_xor_si512(_mm512_permutex2var_epi64(A, iw, B), x80);
            UNROLL for (int t = 0; t < T; t++)
                V[t][v] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, u, _mm512_loadu_si512(q4[t] + 128 * v)), wv,
                                              _mm512_loadu_si512(q4[t] + 128 * v + 64));
        }
        UNROLL for (int t = 0; t < T; t++)
            is[t] = _mm512_sub_epi32(gg_pair(gg_pair(V[t][0], V[t][1]), gg_pair(V[t][2], V[t][3])),
                                     _mm512_slli_epi32(_mm512_loadu_si512(su[t]), 7));
        ds = gg_d16(cb, bs);
    } else {   // Q4_K: super-blocks S = 0, 1; 64 bytes of qs hold sub-blocks 4h..4h+3 (h < 2)
        // Bytes 0..31 of the 64 carry sub-block 4h in their low nibbles and 4h+1 in the high ones,
        // bytes 32..63 sub-blocks 4h+2 and 4h+3. One vpermt2q per half (shared by the tokens) puts
        // weights 0..15 of the four sub-blocks side by side in U and weights 16..31 in W: the
        // layout of Q4_0's nibbles, so they meet the q4 copy of the activations and a block's two
        // halves land in the same 4 lanes.
        const __m512i iu = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13), iw = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
        __m512i V[GG_MAX_T][4];
        __m256 dsc[2], dmn[2];
        UNROLL for (int S = 0; S < 2; S++) {
            const it_block_q4_K *k = (const void *)(cb + (size_t)S * sizeof(it_block_q4_K));
            gg_k4_scales((const uint8_t *)k, &dsc[S], &dmn[S]);
            UNROLL for (int h = 0; h < 2; h++) {
                __m512i x = _mm512_loadu_si512(k->qs + 64 * h);
                __m512i lo = _mm512_and_si512(x, m4), hi = simd_hi4(x, h4);
                __m512i u = _mm512_permutex2var_epi64(lo, iu, hi), wv = _mm512_permutex2var_epi64(lo, iw, hi);
                UNROLL for (int t = 0; t < T; t++) {
                    const int8_t *qa = q4[t] + 256 * S + 128 * h;
                    V[t][2 * S + h] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, u, _mm512_loadu_si512(qa)), wv,
                                                          _mm512_loadu_si512(qa + 64));
                }
            }
        }
        UNROLL for (int t = 0; t < T; t++) is[t] = gg_pair(gg_pair(V[t][0], V[t][1]), gg_pair(V[t][2], V[t][3]));
        ds = _mm512_insertf32x8(_mm512_castps256_ps512(dsc[0]), dsc[1], 1);
        const __m512 dm = _mm512_insertf32x8(_mm512_castps256_ps512(dmn[0]), dmn[1], 1);
        UNROLL for (int t = 0; t < T; t++) {
            __m512 st = _mm512_loadu_ps(s[t]);
            f[t] = _mm512_fmadd_ps(_mm512_mul_ps(ds, st), _mm512_cvtepi32_ps(is[t]), f[t]);
            f[t] = _mm512_fnmadd_ps(_mm512_mul_ps(dm, st), _mm512_cvtepi32_ps(_mm512_loadu_si512(su[t])), f[t]);
        }
        return;
    }
    UNROLL for (int t = 0; t < T; t++)
        f[t] = _mm512_fmadd_ps(_mm512_mul_ps(ds, _mm512_loadu_ps(s[t])), _mm512_cvtepi32_ps(is[t]), f[t]);
}

#include "kernels/ggdec_q6k512.h"

// Rows r0..r1-1 for T tokens starting at token t0: whole chunks, then a last group of 8 (the 256-bit
// step, into lanes 0..7 as its group index is even), then single blocks.
KI void gg_rows16(const int type, const int T, const uint8_t *w, size_t rb, const kern_dq *a, int64_t t0,
                  float *y, int64_t ldy, int64_t r0, int64_t r1, size_t pf) {
    const int64_t nb = a->n_in / 32, nc = nb / 16, np = a->nbp * 32;
    const size_t cbytes = 2 * gg_group_bytes(type);
    uintptr_t pl = 0;   // the next line to prefetch (simd_pf_row)
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * rb;
        simd_pf_row(&pl, row + pf);
        __m512 f[GG_MAX_T];
        UNROLL for (int t = 0; t < T; t++) f[t] = _mm512_setzero_ps();
        for (int64_t c = 0; c < nc; c++) {
            const int8_t *q4[GG_MAX_T];
            const float *s[GG_MAX_T];
            const int32_t *su[GG_MAX_T];
            UNROLL for (int t = 0; t < T; t++) {
                const int64_t tt = t0 + t;
                s[t] = a->scale + tt * a->nbp + 16 * c;
                if (type == IT_TYPE_Q6_K) {   // the q2 copy and the 16-input sums (ggdec_q6k512.h)
                    q4[t] = a->q2 + tt * np + 512 * c;
                    su[t] = a->hsum + tt * 2 * a->nbp + 32 * c;
                } else {
                    q4[t] = a->q4 + tt * np + 512 * c;
                    su[t] = a->sum + tt * a->nbp + 16 * c;
                }
            }
            simd_pf_upto(&pl, row + (size_t)(c + 1) * cbytes + pf - 1);
            if (type == IT_TYPE_Q6_K) gg_chunk_q6k(T, row + (size_t)c * cbytes, q4, s, su, f);
            else gg_chunk(type, T, row + (size_t)c * cbytes, q4, s, su, f);
        }
        UNROLL for (int t = 0; t < T; t++) {
            float acc[16];
            _mm512_storeu_ps(acc, f[t]);
            int64_t b = 16 * nc;
            if (nb - b >= 8) {
                const int8_t *q = a->q + (t0 + t) * np + 32 * b;
                const float *s = a->scale + (t0 + t) * a->nbp + b;
                const int32_t *su = a->sum + (t0 + t) * a->nbp + b;
                __m256 f8 = _mm256_loadu_ps(acc);
                gg_group(type, 1, row + (size_t)(b / 8) * gg_group_bytes(type), &q, &s, &su, &f8);
                _mm256_storeu_ps(acc, f8);
                b += 8;
            }
            for (; b < nb; b++) ggdec_block(type, row, b, a, t0 + t, acc);
            y[(t0 + t) * ldy + r] = ggdec_reduce(acc);
        }
    }
}
#define GG_ROWS(TYPE) gg_rows16
#else
#define GG_ROWS(TYPE) gg_rows
#endif

#define GG_TYPE_FN(NAME, TYPE)                                                                           \
    static void NAME(const uint8_t *w, size_t rb, const kern_dq *a, float *y, int64_t ldy, int64_t r0,  \
                     int64_t r1) {                                                                       \
        int64_t t0 = 0;                                                                                  \
        const size_t pf = (size_t)it_cpu_stream_prefetch(GG_PF_ZEN5, GG_PF_ZEN4);                                  \
        for (; t0 + 3 <= a->nt; t0 += 3) GG_ROWS(TYPE)(TYPE, 3, w, rb, a, t0, y, ldy, r0, r1, pf);       \
        if (a->nt - t0 == 2) GG_ROWS(TYPE)(TYPE, 2, w, rb, a, t0, y, ldy, r0, r1, pf);                   \
        if (a->nt - t0 == 1) GG_ROWS(TYPE)(TYPE, 1, w, rb, a, t0, y, ldy, r0, r1, pf);                   \
    }
GG_TYPE_FN(gg_q8_0, IT_TYPE_Q8_0)
GG_TYPE_FN(gg_q4_K, IT_TYPE_Q4_K)
GG_TYPE_FN(gg_q6_K, IT_TYPE_Q6_K)

static void gg_dispatch(int type, const void *w, size_t row_bytes, const kern_dq *a, float *y, int64_t ldy,
                        int64_t r0, int64_t r1) {
    switch (type) {
    case IT_TYPE_Q8_0: gg_q8_0(w, row_bytes, a, y, ldy, r0, r1); break;
    case IT_TYPE_Q4_K: gg_q4_K(w, row_bytes, a, y, ldy, r0, r1); break;
    case IT_TYPE_Q6_K: gg_q6_K(w, row_bytes, a, y, ldy, r0, r1); break;
    default: ggdec_ref(type, w, row_bytes, a, y, ldy, r0, r1); break;
    }
}
