// Activation quantizer, kernel choice and threaded wrapper of the integer-activation kernels
// (kernels/iqmatmul.h). Compiled for baseline x86-64: the SIMD kernels live in iqmatmul_avx2.c and
// iqmatmul_avx512vnni.c and are only called after the CPU checks here.
#include "kernels/iqmatmul.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "kernels/matmul.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define IQ_X86 1
#else
#define IQ_X86 0
#endif

// ---- activation quantization ----

void kern_actq_free(kern_actq *a) {
    if (!a) return;
    free(a->q);
    free(a->qt);
    free(a->scale);
    free(a->sum32);
    free(a->nsum);
    memset(a, 0, sizeof *a);
}

// Grows a pair of buffers that share one capacity (q/qt, sum32/nsum): both or neither.
static int grow2(void **p1, void **p2, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap && *p1 && (!p2 || *p2)) return 0;
    void *n1 = malloc(need * elem), *n2 = p2 ? malloc(need * elem) : NULL;
    if (!n1 || (p2 && !n2)) {
        free(n1);
        free(n2);
        return -1;
    }
    free(*p1);
    *p1 = n1;
    if (p2) {
        free(*p2);
        *p2 = n2;
    }
    *cap = need;
    return 0;
}

// Scales of a row, exactly as documented: (clip * amax) / qmax in float. NaN inputs are skipped by
// the max (fabsf(NaN) > amax is false).
static float row_scale(const float *x, int64_t n, int qmax, float clip) {
    float amax = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        float v = fabsf(x[i]);
        if (v > amax) amax = v;
    }
    return clip * amax / (float)qmax;
}

// clamp(nearbyintf(x / s), -qmax, qmax) under the default rounding mode (ties to even), without
// the libm call (baseline x86-64 has no roundss): v is first clamped to [-256, 256] (the clamp to
// qmax <= 127 after rounding gives the same result), then v + 1.5*2^23 lies in [2^23, 2^24) where
// the float spacing is 1, so the addition rounds v to the nearest integer, ties to even (1.5*2^23
// is even), and the subtraction is exact.
static inline int qval(float x, float s, int qmax) {
    if (s == 0.0f) return 0;
    float v = x / s;
    if (v != v) return 0;
    v = v > 256.0f ? 256.0f : v < -256.0f ? -256.0f : v;
    float r = v + 12582912.0f;
    r = r - 12582912.0f;
    if (r > (float)qmax) return qmax;
    if (r < (float)-qmax) return -qmax;
    return (int)r;
}

static int bad_args(int64_t nt, int64_t n_in, int bits, float clip) {
    return nt < 1 || n_in < 32 || n_in % 32 || (bits != 4 && bits != 8) || !(clip > 0.0f && clip <= 1.0f) ||
           nt > (int64_t)1 << 40 || n_in > (int64_t)1 << 40;
}

int kern_actq_quantize(kern_actq *a, const float *x, int64_t nt, int64_t n_in, int bits, float clip) {
    if (!a || !x || bad_args(nt, n_in, bits, clip)) return -1;
    const int64_t ntp = (nt + 15) / 16 * 16, nb = n_in / 32;
    if ((uint64_t)ntp > SIZE_MAX / (uint64_t)n_in) return -1;
    void *q = a->q, *qt = a->qt, *sc = a->scale, *s32 = a->sum32, *ns = a->nsum;
    int rc = grow2(&q, &qt, &a->cap_q, (size_t)(ntp * n_in), 1);
    if (!rc) rc = grow2(&sc, NULL, &a->cap_t, (size_t)ntp, sizeof(float));
    if (!rc) rc = grow2(&s32, &ns, &a->cap_sum, (size_t)(ntp * nb), sizeof(int32_t));
    a->q = q, a->qt = qt, a->scale = sc, a->sum32 = s32, a->nsum = ns;
    if (rc) return -1;
    a->bits = bits;
    a->nt = nt;
    a->ntp = ntp;
    a->n_in = n_in;
    const int qmax = (1 << (bits - 1)) - 1;
    // Same results either way; the SIMD loop follows the kernels' ISA cap (INTACT_ISA=ref keeps it
    // scalar).
    const int simd = it_cpu_has_avx2() && it_cpu_isa() > IT_ISA_REF;
    for (int64_t t = 0; t < nt; t++) {
        const float *xt = x + t * n_in;
        if (simd) {
            kern_iq_quant_row_avx2(xt, n_in, qmax, clip, a->q + t * n_in, a->sum32 + t * nb, &a->scale[t]);
            continue;
        }
        float s = row_scale(xt, n_in, qmax, clip);
        a->scale[t] = s;
        int8_t *qt = a->q + t * n_in;
        for (int64_t b = 0; b < nb; b++) {
            int32_t sum = 0;
            for (int i = 0; i < 32; i++) {
                int v = qval(xt[b * 32 + i], s, qmax);
                qt[b * 32 + i] = (int8_t)v;
                sum += v;
            }
            a->sum32[t * nb + b] = sum;
        }
    }
    for (int64_t t = nt; t < ntp; t++) a->scale[t] = 0.0f;
    // Token-interleaved copies for the SIMD kernels (zeros for the padding tokens).
    for (int64_t k4 = 0; k4 < n_in / 4; k4++) {
        int8_t *dst = a->qt + k4 * ntp * 4;
        for (int64_t t = 0; t < nt; t++) memcpy(dst + t * 4, a->q + t * n_in + k4 * 4, 4);
        memset(dst + nt * 4, 0, (size_t)(ntp - nt) * 4);
    }
    for (int64_t b = 0; b < nb; b++)
        for (int64_t t = 0; t < ntp; t++) a->nsum[b * ntp + t] = t < nt ? -a->sum32[t * nb + b] : 0;
    return 0;
}

void kern_actq_fake(const float *x, int64_t nt, int64_t n_in, int bits, float clip, float *out) {
    if (!x || !out || (bits != 4 && bits != 8) || nt < 1 || n_in < 1 || !(clip > 0.0f && clip <= 1.0f)) return;
    const int qmax = (1 << (bits - 1)) - 1;
    for (int64_t t = 0; t < nt; t++) {
        const float *xt = x + t * n_in;
        float *ot = out + t * n_in;
        float s = row_scale(xt, n_in, qmax, clip);   // before any write: out may alias x
        for (int64_t i = 0; i < n_in; i++) ot[i] = s * (float)qval(xt[i], s, qmax);
    }
}

// ---- kernel choice ----

static int g_has_vnni;
static pthread_once_t g_vnni_once = PTHREAD_ONCE_INIT;

static void detect_vnni(void) {
#if IQ_X86
    unsigned a, b, c, d;
    if (!it_cpu_has_avx512()) return;   // also checks the OS saves the zmm/opmask state
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) g_has_vnni = (c >> 11) & 1;
#endif
}

int kern_iq_cpu_has_vnni(void) {
    pthread_once(&g_vnni_once, detect_vnni);
    return g_has_vnni;
}

int kern_iq_supported(int type) {
    qf_spec s;
    return qf_spec_of(type, &s) == 0;
}

kern_iq_fn kern_iq_kernel(int type, const char *isa) {
    qf_spec s;
    if (!isa || qf_spec_of(type, &s)) return NULL;
    if (!strcmp(isa, "ref")) return kern_iq_ref;
    if (!strcmp(isa, "avx2")) return it_cpu_has_avx2() ? kern_iq_avx2_get(s.bits, s.group, s.sym) : NULL;
    if (!strcmp(isa, "avx512"))
        return kern_iq_cpu_has_vnni() ? kern_iq_avx512vnni_get(s.bits, s.group, s.sym) : NULL;
    return NULL;
}

// Same cap as the float kernels: it_cpu_isa() (the CPU's ISA, capped by INTACT_ISA, scalar under
// it_cpu_force_ref) bounds ours. AVX-512 without VNNI falls to AVX2.
kern_iq_fn kern_iq_best(int type) {
    if (!kern_iq_supported(type)) return NULL;
    const int isa = it_cpu_isa();
    if (isa > IT_ISA_REF) {
        kern_iq_fn fn = NULL;
        if (isa == IT_ISA_AVX512) fn = kern_iq_kernel(type, "avx512");
        if (!fn) fn = kern_iq_kernel(type, "avx2");
        if (fn) return fn;
    }
    return kern_iq_ref;
}

// ---- threaded wrapper ----

enum { IQ_MAX_GROUP = 4 };

typedef struct {
    int n;
    kern_iq_fn fn[IQ_MAX_GROUP];
    qf_spec spec[IQ_MAX_GROUP];
    const it_tensor *w[IQ_MAX_GROUP];
    float *y[IQ_MAX_GROUP];
    const kern_actq *a;
} iq_job;

static void iq_worker(void *arg, int ith, int nth) {
    const iq_job *j = arg;
    for (int m = 0; m < j->n; m++) {
        const it_tensor *w = j->w[m];
        int64_t n_in = w->ne[0], n_out = w->ne[1];
        long r0, r1;
        it_split_range((long)n_out, ith, nth, 16, &r0, &r1);
        if (r0 < r1)
            j->fn[m](&j->spec[m], w->data, fmt_row_bytes(w->type, n_in), j->a, j->y[m], n_out, r0, r1);
    }
}

void kern_matmul_iq_group(it_pool *pool, int n, const it_tensor *const *w, const kern_actq *a,
                          float *const *y) {
    for (int done = 0; done < n; done += IQ_MAX_GROUP) {
        iq_job j;
        memset(&j, 0, sizeof j);
        j.n = n - done < IQ_MAX_GROUP ? n - done : IQ_MAX_GROUP;
        j.a = a;
        for (int m = 0; m < j.n; m++) {
            j.w[m] = w[done + m];
            j.y[m] = y[done + m];
            j.fn[m] = kern_iq_best(j.w[m]->type);
            if (!j.fn[m] || qf_spec_of(j.w[m]->type, &j.spec[m]) || j.w[m]->ne[0] != a->n_in) return;
        }
        it_pool_run(pool, iq_worker, &j);
    }
}

void kern_matmul_iq(it_pool *pool, const it_tensor *w, const kern_actq *a, float *y) {
    kern_matmul_iq_group(pool, 1, &w, a, &y);
}
