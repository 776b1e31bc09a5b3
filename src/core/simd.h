// Shared helpers of the SIMD kernel sources (formats/, kernels/, kv/ *_avx2.c, *_avx512*.c).
// KI forces inlining of the small per-block helpers, whose call overhead would dominate the kernel.
// UNROLL asks gcc to unroll a fixed-trip loop; at -O0 (the sanitizer and fuzz builds compile some
// kernels unoptimized) gcc ignores the hint and warns, so it is empty there.
#ifndef IT_CORE_SIMD_H
#define IT_CORE_SIMD_H

#define KI static inline __attribute__((always_inline))
#ifdef __OPTIMIZE__
#define UNROLL _Pragma("GCC unroll 16")
#else
#define UNROLL
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <stdint.h>
// A row stream's software prefetch, one prefetcht0 per cache line. The decode kernels step through
// a row in chunks that straddle lines (int4 g128: 268 bytes), and a prefetch per 64 bytes of each
// chunk asked for 5 lines where 4.2 were new. Why bother: on the Intel Xeon the decode kernels'
// samples pile up on those prefetch instructions (they wait for a fill buffer), so none should be
// wasted; measured, it is worth 0-4% (docs/speed.md), never a loss.
// simd_pf_row at each row: p = the row start + the distance; it restarts the stream unless it
// already runs there (the rows a thread takes are not always contiguous). simd_pf_upto: every
// line not yet asked for up to the one holding byte last.
KI void simd_pf_row(uintptr_t *next, const void *p) {
    const uintptr_t a = (uintptr_t)p & ~(uintptr_t)63;
    if (*next < a || *next > a + 128) *next = a;
}
KI void simd_pf_upto(uintptr_t *next, const void *last) {
    for (; *next <= (uintptr_t)last; *next += 64) _mm_prefetch((const char *)*next, _MM_HINT_T0);
}
#endif

#if defined(__AVX2__) && defined(__FMA__)
// exp(x) for x <= 0 (-inf allowed): Cephes expf's range reduction (x = n·ln2 + r, |r| ≤ ln2/2) and
// degree-6 polynomial, ≤ 2 ulp; 2^n is built in the exponent field. x is clamped at -88, where n
// reaches -127 and 2^n's field is 0: the result is exactly 0 (so -inf gives 0, as expf does; true
// values below ~2^-126 flush to 0, which a softmax weight or a sigmoid cannot tell from ~1e-38).
// Lane-wise: a value's result does not depend on its lane or its neighbours. Shared by the AVX2
// softmax (kv/kv_kern_avx2.c) and SwiGLU (kernels/ops_avx2.c).
KI __m256 simd_exp8(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-88.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}
#endif

#ifdef __AVX512F__
// In-register 16x16 transpose: in-lane unpack/shuffle stages leave, in 128-bit lane j of u[4g+c],
// column 4j+c of rows 4g..4g+3; two rounds of 128-bit lane shuffles then gather each column's
// four pieces. (Cheaper than 4 rounds of vpermt2ps: in-lane ops have more ports, no index regs.)
KI void simd_transpose16(__m512 r[16]) {
    __m512 t[16], u[16], v[16];
    UNROLL for (int k = 0; k < 16; k += 2) {
        t[k] = _mm512_unpacklo_ps(r[k], r[k + 1]);
        t[k + 1] = _mm512_unpackhi_ps(r[k], r[k + 1]);
    }
    UNROLL for (int k = 0; k < 16; k += 4) {
        u[k] = _mm512_shuffle_ps(t[k], t[k + 2], 0x44);
        u[k + 1] = _mm512_shuffle_ps(t[k], t[k + 2], 0xee);
        u[k + 2] = _mm512_shuffle_ps(t[k + 1], t[k + 3], 0x44);
        u[k + 3] = _mm512_shuffle_ps(t[k + 1], t[k + 3], 0xee);
    }
    // v[c] (c < 4): lanes = column c and c+8 of rows 0-3, 4-7; v[c+4]: columns c+4, c+12;
    // v[8..15] the same for rows 8-15.
    UNROLL for (int h = 0; h < 16; h += 8) {
        UNROLL for (int c = 0; c < 4; c++) {
            v[h + c] = _mm512_shuffle_f32x4(u[h + c], u[h + c + 4], 0x88);
            v[h + c + 4] = _mm512_shuffle_f32x4(u[h + c], u[h + c + 4], 0xdd);
        }
    }
    UNROLL for (int c = 0; c < 8; c++) {
        r[c] = _mm512_shuffle_f32x4(v[c], v[c + 8], 0x88);
        r[c + 8] = _mm512_shuffle_f32x4(v[c], v[c + 8], 0xdd);
    }
}
#endif

#if defined(__AVX512F__) && defined(__GFNI__)
// The high nibble of every byte moved to its low four bits, zeros above, by one GF(2) affine step
// (GFNI) instead of a shift and a mask. Result bit r of a byte is the parity of the byte AND matrix
// row r, row r being byte 7 - r of the matrix: rows 0..3 pick bits 4..7, rows 4..7 nothing. Why:
// one op less per 64 bytes on ports 0/5, where the int4 kernels are bound (the int4 g128 decode
// kernel ran 7% more chunks per second from L2). simd_hi4_matrix() is hoisted by the callers.
KI __m512i simd_hi4_matrix(void) { return _mm512_set1_epi64((long long)0x1020408000000000ULL); }
KI __m512i simd_hi4(__m512i x, __m512i matrix) { return _mm512_gf2p8affine_epi64_epi8(x, matrix, 0); }
#endif

#endif
