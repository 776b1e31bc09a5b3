#include "kernels/ops.h"

#include <math.h>

#include "core/cpu.h"

void kern_rmsnorm_ref(const float *x, const float *w, int n, int dim, float eps, float *out) {
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * dim;
        float *ot = out + (size_t)t * dim;
        double ss = 0; // double: the sum of squares of 4096 large activations must not lose bits
        for (int i = 0; i < dim; i++) ss += (double)xt[i] * xt[i];
        float inv = (float)(1.0 / sqrt(ss / dim + eps));
        for (int i = 0; i < dim; i++) ot[i] = xt[i] * inv * w[i];
    }
}

void kern_rmsnorm(const float *x, const float *w, int n, int dim, float eps, float *out) {
    if (it_cpu_isa() >= IT_ISA_AVX2) kern_rmsnorm_avx2(x, w, n, dim, eps, out);
    else kern_rmsnorm_ref(x, w, n, dim, eps, out);
}

void kern_rope_table(int pos0, int n, const double *theta, int half, float scale, float *cs) {
    for (int t = 0; t < n; t++) {
        double p = (double)(pos0 + t) * scale;
        for (int i = 0; i < half; i++) {
            double a = p * theta[i];
            cs[((size_t)t * half + i) * 2] = (float)cos(a);
            cs[((size_t)t * half + i) * 2 + 1] = (float)sin(a);
        }
    }
}

void kern_rope(float *x, int n, int n_heads, int head_dim, const float *cs, int style) {
    int half = head_dim / 2;
    for (int t = 0; t < n; t++) {
        const float *c = cs + (size_t)t * half * 2;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)t * n_heads + h) * head_dim;
            for (int i = 0; i < half; i++) {
                int a = style ? i : 2 * i, b = style ? i + half : 2 * i + 1;
                float x0 = v[a], x1 = v[b], co = c[2 * i], si = c[2 * i + 1];
                v[a] = x0 * co - x1 * si;
                v[b] = x0 * si + x1 * co;
            }
        }
    }
}

void kern_add(float *restrict x, const float *restrict y, size_t n) {
    // Blocks of a fixed 16: GCC 12 at -O2 vectorizes only loops whose trip count it knows (its
    // "very cheap" model adds no epilogue), and the plain loop compiled to one addss per element.
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (size_t k = 0; k < 16; k++) x[i + k] += y[i + k];
    for (; i < n; i++) x[i] += y[i];
}

void kern_swiglu_ref(float *g, const float *u, size_t n) {
    for (size_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void kern_swiglu(float *g, const float *u, size_t n) {
    if (it_cpu_isa() >= IT_ISA_AVX2) kern_swiglu_avx2(g, u, n);
    else kern_swiglu_ref(g, u, n);
}
