// AVX2 twins of kernels/ops.c's RMSNorm and SwiGLU (kernels/ops.h).
//
// SwiGLU on 8 lanes. silu(x) = x * sigmoid(x) with sigmoid from e = exp(-|x|), which
// never overflows: sigmoid(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0 (the same value
// as 1 / (1 + exp(-x)) in exact arithmetic). The last n % 8 elements go through masked loads and
// stores, so every element takes the same operations wherever it sits.
#include "kernels/ops.h"

#include <math.h>

#include "core/simd.h"

KI __m256 swiglu8(__m256 x, __m256 u) {
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 e = simd_exp8(_mm256_or_ps(x, _mm256_set1_ps(-0.0f)));   // exp(-|x|)
    __m256 s = _mm256_div_ps(_mm256_blendv_ps(one, e, x), _mm256_add_ps(one, e));   // x's sign bit picks e
    return _mm256_mul_ps(_mm256_mul_ps(x, s), u);
}

void kern_swiglu_avx2(float *g, const float *u, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(g + i, swiglu8(_mm256_loadu_ps(g + i), _mm256_loadu_ps(u + i)));
    if (i < n) {
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n - i)), lane);
        __m256 y = swiglu8(_mm256_maskload_ps(g + i, m), _mm256_maskload_ps(u + i, m));
        _mm256_maskstore_ps(g + i, m, y);
    }
}

// The sum of squares in double as the reference (4 lanes x 4 accumulators, then one fixed order),
// the scaling in float: x * inv * w, the reference's two products in its order.
void kern_rmsnorm_avx2(const float *x, const float *w, int n, int dim, float eps, float *out) {
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * dim;
        float *ot = out + (size_t)t * dim;
        __m256d s0 = _mm256_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
        int i = 0;
        for (; i + 16 <= dim; i += 16) {
            __m256d a = _mm256_cvtps_pd(_mm_loadu_ps(xt + i)), b = _mm256_cvtps_pd(_mm_loadu_ps(xt + i + 4));
            __m256d c = _mm256_cvtps_pd(_mm_loadu_ps(xt + i + 8)), d = _mm256_cvtps_pd(_mm_loadu_ps(xt + i + 12));
            s0 = _mm256_fmadd_pd(a, a, s0);
            s1 = _mm256_fmadd_pd(b, b, s1);
            s2 = _mm256_fmadd_pd(c, c, s2);
            s3 = _mm256_fmadd_pd(d, d, s3);
        }
        __m256d s = _mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3));
        double lanes[4];
        _mm256_storeu_pd(lanes, s);
        double ss = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
        for (; i < dim; i++) ss += (double)xt[i] * xt[i];
        const float inv = (float)(1.0 / sqrt(ss / dim + eps));
        const __m256 vi = _mm256_set1_ps(inv);
        i = 0;
        for (; i + 8 <= dim; i += 8)
            _mm256_storeu_ps(ot + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(xt + i), vi), _mm256_loadu_ps(w + i)));
        for (; i < dim; i++) ot[i] = xt[i] * inv * w[i];
    }
}
