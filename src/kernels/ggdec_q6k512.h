// ggml's Q6_K in 512-bit chunks (two super-blocks, 16 32-blocks) for the AVX-512 VNNI decode GEMV
// (kernels/ggdec.h); included by kernels/ggdec_simd.h after gg_pair. Bit-identical to ggdec_ref.
//
// Why: the 256-bit step (gg_group) left 8 int32 lanes per 32-block, as its two 16-weight halves
// carry different sub-scales, and reduced them with hadd trees: Q6_K decoded at 0.57 of the
// bandwidth where Q4_0 / Q8_0 / Q4_K reach 0.75-0.78. Here:
//  - Codes in the byte domain, in stored order, no shuffles: 64 bytes of ql hold blocks 4n, 4n+1
//    in their low nibbles and 4n+2, 4n+3 in their high ones, each 32 weights in weight order, which
//    is the natural activation copy kern_dq.q; the 2-bit qh fields (bits 2m of qh[32n + i] for block
//    4n+m) reach bits 4..5 by one vprolvd per vector with a per-256-bit-half count and a mask.
//  - The codes c (0..63, unsigned) meet q in vpdpbusd: every int32 lane holds 4 weights of one
//    16-weight sub-block, 4 lanes per sub-block, the 16 sub-blocks of a super-block in order over 4
//    vectors. Two vpermt2d + add levels (gg_pair) leave lane j = sum_{sub-block j} c q.
//  - The -32 offset: minus 32 times the sub-block's activation sum (kern_dq.hsum, in the same order);
//    then one vpmulld by the 16 int8 sub-scales (sign-extended, already in lane order); a last
//    gg_pair adds each block's two halves, the 16 blocks of the chunk landing in lanes 0..15.
// All integer, so the order of the adds is free: the block value is exactly ggdec.h's
// sc_2j sum (c-32) q + sc_2j+1 sum (c-32) q. Bounds: |sum c q| <= 16 * 63 * 127, 32 |hsum| <=
// 32 * 16 * 127, their difference is sum (c-32) q (<= 16 * 32 * 127), times |sc| <= 128 below 2^23
// per half and 2^24 per block (ggdec.h): no int32 overflow anywhere. The float step per lane is then ggdec.h's fma(d * s_b, (float)iv, f).

// One chunk at cb for T tokens (q, s, hs at the chunk's first block / sub-block): f[t] updated.
KI void gg_chunk_q6k(const int T, const uint8_t *cb, const int8_t *const *q, const float *const *s,
                     const int32_t *const *hs, __m512 *f) {
    const __m512i zero = _mm512_setzero_si512(), m4 = _mm512_set1_epi8(15), m30 = _mm512_set1_epi8(0x30);
    // Left rotations of each dword bringing qh's field m to bits 4..5 of every byte (the bits that
    // cross into a neighbouring byte fall outside the 0x30 mask): the low half of the low-nibble
    // vector is block 4n (field 0: by 4), its high half block 4n+1 (field 1: by 2); the high-nibble
    // vector's halves are blocks 4n+2 (field 2: none) and 4n+3 (field 3: by 30, i.e. right by 2).
    const __m512i rlo = _mm512_setr_epi32(4, 4, 4, 4, 4, 4, 4, 4, 2, 2, 2, 2, 2, 2, 2, 2);
    const __m512i rhi = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 30, 30, 30, 30, 30, 30, 30, 30);
    __m512i P[GG_MAX_T][2];   // per super-block S: lane j = its sub-block j's sc_j * sum (c - 32) q
    UNROLL for (int S = 0; S < 2; S++) {
        const it_block_q6_K *k = (const void *)(cb + (size_t)S * sizeof(it_block_q6_K));
        __m512i V[GG_MAX_T][4];
        UNROLL for (int n = 0; n < 2; n++) {
            const __m512i x = _mm512_loadu_si512(k->ql + 64 * n);
            const __m512i h = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(const void *)(k->qh + 32 * n)));
            // lo | (rot & 0x30): ternary-logic table 0xf8 = A | (B & C).
            const __m512i clo = _mm512_ternarylogic_epi32(_mm512_and_si512(x, m4), _mm512_rolv_epi32(h, rlo), m30, 0xf8);
            const __m512i chi = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(x, 4), m4),
                                                          _mm512_rolv_epi32(h, rhi), m30, 0xf8);
            UNROLL for (int t = 0; t < T; t++) {
                const int8_t *qa = q[t] + 256 * S + 128 * n;
                V[t][2 * n] = _mm512_dpbusd_epi32(zero, clo, _mm512_loadu_si512(qa));
                V[t][2 * n + 1] = _mm512_dpbusd_epi32(zero, chi, _mm512_loadu_si512(qa + 64));
            }
        }
        const __m512i sc = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)k->scales));
        UNROLL for (int t = 0; t < T; t++) {
            __m512i cq = gg_pair(gg_pair(V[t][0], V[t][1]), gg_pair(V[t][2], V[t][3]));
            __m512i off = _mm512_slli_epi32(_mm512_loadu_si512(hs[t] + 16 * S), 5);
            P[t][S] = _mm512_mullo_epi32(_mm512_sub_epi32(cq, off), sc);
        }
    }
    const it_block_q6_K *k0 = (const void *)cb, *k1 = (const void *)(cb + sizeof(it_block_q6_K));
    const __m512 d = _mm512_cvtph_ps(_mm256_set_m128i(_mm_set1_epi16((short)k1->d), _mm_set1_epi16((short)k0->d)));
    UNROLL for (int t = 0; t < T; t++)
        f[t] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_loadu_ps(s[t])), _mm512_cvtepi32_ps(gg_pair(P[t][0], P[t][1])), f[t]);
}
