// The exp polynomial of the AVX-512 KV kernels; include only from files compiled with the AVX-512
// flags (kv_kern_avx512.c: the softmax; kv_flash_avx512.c: flash attention). They differ only in how
// 2^n is applied, so the reduction and polynomial live here once.
#ifndef IT_KV_KV_EXP512_H
#define IT_KV_KV_EXP512_H

#include <immintrin.h>

#include "core/simd.h"

// exp(x) = p · 2^n for x <= 0 (-inf allowed): x clamped at -88, Cephes expf's range reduction
// (x = n·ln2 + r, |r| ≤ ln2/2, ln2 split in two for exactness) and degree-6 polynomial, ≤ 2 ulp.
// Returns p; n in *n.
KI __m512 kv_exp512_poly(__m512 x, __m512 *n) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-88.0f));
    *n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(*n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(*n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    return _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
}

#endif
