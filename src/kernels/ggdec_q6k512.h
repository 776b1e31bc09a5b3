// ggml's Q6_K in 512-bit chunks (two super-blocks, 16 32-blocks) for the AVX-512 VNNI decode GEMV
// (kernels/ggdec.h); included by kernels/ggdec_simd.h after gg_pair. Bit-identical to ggdec_ref.
//
// Why: the 256-bit step (gg_group) left 8 int32 lanes per 32-block, as its two 16-weight halves
// carry different sub-scales, and reduced them with hadd trees: Q6_K decoded at 0.57 of the
// bandwidth where Q4_0 / Q8_0 / Q4_K reach 0.75-0.78. Here:
//  - Codes in the byte domain: 64 bytes of ql hold blocks 4n, 4n+1 whole in their low nibbles and
//    4n+2, 4n+3 in their high ones (weight order); the 2-bit qh fields (bits 2m of qh[32n + i] for
//    block 4n+m) reach bits 4..5 by one vprolvd per vector (count per 256-bit half) and a mask.
//  - Those 4 vectors (blocks in stored order, 2 per vector) are transposed by qwords (4 vpermt2q +
//    4 vshufi64x2 per super-block, shared by the tokens) into the order of kern_dq's q2 copy:
//    vector i holds weights 8i..8i+7 of each of the 8 blocks. So in vpdpbusd (codes 0..63 unsigned,
//    activations signed) lane l of vectors 0 and 1 holds 4 weights of block l / 2's first half, of
//    vectors 2 and 3 of its second half: two vpdpbusd into one accumulator per half, 2 lanes per
//    (block, half), and one vpermt2d + add level (gg_pair over the two super-blocks) leaves lane b
//    = sum over block b's half of c q for the 16 blocks of the chunk.
//  - The -32 offset: minus 32 times the half's activation sum (kern_dq.hsum, de-interleaved by one
//    vpermt2d per half); then vpmulld by the sub-scales sc_2b / sc_2b+1 (one vpmovsxwd of the 32
//    scale bytes and shifts split each int16 pair into the even and odd scale) and one add.
// Against the natural copy q (no transpose, but 4 lanes per half and three gg_pair levels per
// token) decode was as fast and the 3-token prefill tiles ~10% slower (docs/ggml.md).
// All integer, so the order of the adds is free: the block value is exactly ggdec.h's
// sc_2j sum (c-32) q + sc_2j+1 sum (c-32) q. Bounds: |sum c q| <= 16 * 63 * 127, 32 |hsum| <=
// 32 * 16 * 127, their difference is sum (c-32) q (<= 16 * 32 * 127), times |sc| <= 128 below 2^23
// per half and 2^24 per block (ggdec.h): no int32 overflow anywhere. The float step per lane is then
// ggdec.h's fma(d * s_b, (float)iv, f).

// One chunk at cb for T tokens (the q2 copy, s at the chunk's first block, hs at its first 16-input
// sum): f[t] updated.
KI void gg_chunk_q6k(const int T, const uint8_t *cb, const int8_t *const *q2, const float *const *s,
                     const int32_t *const *hs, __m512 *f) {
    const __m512i zero = _mm512_setzero_si512(), m4 = _mm512_set1_epi8(15), m30 = _mm512_set1_epi8(0x30);
    // Left rotations of each dword bringing qh's field m to bits 4..5 of every byte (the bits that
    // cross into a neighbouring byte fall outside the 0x30 mask): the low half of the low-nibble
    // vector is block 4n (field 0: by 4), its high half block 4n+1 (field 1: by 2); the high-nibble
    // vector's halves are blocks 4n+2 (field 2: none) and 4n+3 (field 3: by 30, i.e. right by 2).
    const __m512i rlo = _mm512_setr_epi32(4, 4, 4, 4, 4, 4, 4, 4, 2, 2, 2, 2, 2, 2, 2, 2);
    const __m512i rhi = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 30, 30, 30, 30, 30, 30, 30, 30);
    // Qword k of N[v] is weights 8 (k % 4) .. of block 2v + k / 4: ia gathers weights 0..15 of
    // blocks 2v, 2v+1 (from N[v]) and 2v+2, 2v+3 (from N[v+1]) as (i = 0: 4 qwords, i = 1: 4 qwords),
    // ib weights 16..31 (i = 2, 3).
    const __m512i ia = _mm512_setr_epi64(0, 4, 8, 12, 1, 5, 9, 13), ib = _mm512_setr_epi64(2, 6, 10, 14, 3, 7, 11, 15);
    __m512i A[GG_MAX_T][2][2];   // [token][super-block][half]: lane l = 4 weights of block l / 2
    UNROLL for (int S = 0; S < 2; S++) {
        const it_block_q6_K *k = (const void *)(cb + (size_t)S * sizeof(it_block_q6_K));
        __m512i N[4];   // codes of blocks 2v, 2v+1 in weight order
        UNROLL for (int n = 0; n < 2; n++) {
            const __m512i x = _mm512_loadu_si512(k->ql + 64 * n);
            const __m512i h = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(const void *)(k->qh + 32 * n)));
            // nibble | (rotated qh & 0x30): ternary-logic table 0xf8 = A | (B & C).
            N[2 * n] = _mm512_ternarylogic_epi32(_mm512_and_si512(x, m4), _mm512_rolv_epi32(h, rlo), m30, 0xf8);
            N[2 * n + 1] = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(x, 4), m4),
                                                     _mm512_rolv_epi32(h, rhi), m30, 0xf8);
        }
        const __m512i a0 = _mm512_permutex2var_epi64(N[0], ia, N[1]), b0 = _mm512_permutex2var_epi64(N[0], ib, N[1]);
        const __m512i a1 = _mm512_permutex2var_epi64(N[2], ia, N[3]), b1 = _mm512_permutex2var_epi64(N[2], ib, N[3]);
        // C_i = q2's vector i: the low (0x44) or high (0xee) 256 bits of blocks 0..3's, then 4..7's.
        const __m512i c0 = _mm512_shuffle_i64x2(a0, a1, 0x44), c1 = _mm512_shuffle_i64x2(a0, a1, 0xee);
        const __m512i c2 = _mm512_shuffle_i64x2(b0, b1, 0x44), c3 = _mm512_shuffle_i64x2(b0, b1, 0xee);
        UNROLL for (int t = 0; t < T; t++) {
            const int8_t *qa = q2[t] + 256 * S;
            A[t][S][0] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, c0, _mm512_loadu_si512(qa)), c1,
                                             _mm512_loadu_si512(qa + 64));
            A[t][S][1] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, c2, _mm512_loadu_si512(qa + 128)), c3,
                                             _mm512_loadu_si512(qa + 192));
        }
    }
    const it_block_q6_K *k0 = (const void *)cb, *k1 = (const void *)(cb + sizeof(it_block_q6_K));
    // Lane b: the int16 (sc_2b+1 << 8) + (uint8)sc_2b sign-extended; sc_2b by shifting its byte to
    // the top and back, sc_2b+1 = that int16 >> 8 (floor: the low byte is 0..255).
    const __m512i sw = _mm512_cvtepi16_epi32(_mm256_set_m128i(_mm_loadu_si128((const __m128i *)(const void *)k1->scales),
                                                              _mm_loadu_si128((const __m128i *)(const void *)k0->scales)));
    const __m512i sce = _mm512_srai_epi32(_mm512_slli_epi32(sw, 24), 24), sco = _mm512_srai_epi32(sw, 8);
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512 d = _mm512_cvtph_ps(_mm256_set_m128i(_mm_set1_epi16((short)k1->d), _mm_set1_epi16((short)k0->d)));
    UNROLL for (int t = 0; t < T; t++) {
        const __m512i h0 = _mm512_loadu_si512(hs[t]), h1 = _mm512_loadu_si512(hs[t] + 16);
        __m512i p0 = _mm512_sub_epi32(gg_pair(A[t][0][0], A[t][1][0]), _mm512_slli_epi32(_mm512_permutex2var_epi32(h0, ev, h1), 5));
        __m512i p1 = _mm512_sub_epi32(gg_pair(A[t][0][1], A[t][1][1]), _mm512_slli_epi32(_mm512_permutex2var_epi32(h0, od, h1), 5));
        __m512i is = _mm512_add_epi32(_mm512_mullo_epi32(p0, sce), _mm512_mullo_epi32(p1, sco));
        f[t] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_loadu_ps(s[t])), _mm512_cvtepi32_ps(is), f[t]);
    }
}
