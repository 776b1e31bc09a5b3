// Decode GEMV with int8 activations (kernels/iqdec.h): the activation quantizer, the scalar
// reference that defines the result, kernel choice and the threaded wrapper. Baseline x86-64: the
// SIMD kernels live in iqdec_avx2.c / iqdec_avx512vnni.c and run only after the CPU checks here.
#include "kernels/iqdec.h"
#include "kernels/iqgemm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "kernels/iqmatmul.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#include <pthread.h>

// ---- activation quantization ----

void kern_dq_free(kern_dq *a) {
    if (!a) return;
    free(a->mem);
    memset(a, 0, sizeof *a);
}

static inline float dq_clamp(float v) {
    v = v < 127.0f ? v : 127.0f;   // a NaN v gives 127, as _mm256_min_ps(v, 127) does
    return v > -127.0f ? v : -127.0f;
}
// Round half to even of |v| <= 127: v + 1.5*2^23 lands where the float spacing is 1.
static inline int dq_rne(float v) {
    float r = v + 12582912.0f;
    return (int)(r - 12582912.0f);
}

// One token: q[0..n), scale[0..n/32), sum[0..n/32).
static void quant_row_scalar(const float *x, int64_t n, int8_t *q, float *scale, int32_t *sum) {
    for (int64_t b = 0; b < n / 32; b++) {
        const float *xb = x + 32 * b;
        float amax = 0.0f;
        for (int i = 0; i < 32; i++) {
            float v = fabsf(xb[i]);
            if (v > amax) amax = v;
        }
        float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        scale[b] = amax / 127.0f;
        int32_t s = 0;
        for (int i = 0; i < 32; i++) {
            int v = dq_rne(dq_clamp(xb[i] * inv));
            q[32 * b + i] = (int8_t)v;
            s += v;
        }
        sum[b] = s;
    }
}

int kern_dq_quantize(kern_dq *a, const float *x, int64_t nt, int64_t n_in) {
    if (!a || !x || nt < 1 || n_in < 32 || n_in % 32 || nt > (int64_t)1 << 30 || n_in > (int64_t)1 << 40)
        return -1;
    const int64_t nbp = (n_in / 32 + 15) / 16 * 16, np = nbp * 32;
    if ((uint64_t)nt > SIZE_MAX / 8 / (uint64_t)np) return -1;
    const int64_t ntg = (nt + KERN_DQ_GT - 1) / KERN_DQ_GT * KERN_DQ_GT, nch = nbp / 16;
    // The AMX copy only for a GEMM's worth of tokens: decode (1..3) runs the GEMV and would pay for
    // zeroing a 16-token tile per matmul.
    const int amx = nt >= KERN_DQ_AMX_MIN_T && kern_dqa_usable();
    const int64_t nta = amx ? (nt + 15) / 16 * 16 : 0;   // tokens of the AMX copy (0: none)
    size_t need = (size_t)(nt * np) * 3 + (size_t)(ntg * np) + (size_t)(nt * nbp) * 16 + (size_t)(ntg * nbp) * 8 +
                  (size_t)(nta * np) + (size_t)(nta * nbp) * 8 + 64;
    if (need > a->cap) {
        need = (need + 63) / 64 * 64;
        void *m = aligned_alloc(64, need);   // every array below then starts on a cache line
        if (!m) return -1;
        free(a->mem);
        a->mem = m;
        a->cap = need;
    }
    // Floats and int32s first (aligned by malloc), then the three byte arrays.
    a->scale = a->mem;
    a->sum = (int32_t *)(a->scale + nt * nbp);
    a->hsum = a->sum + nt * nbp;
    a->scg = (float *)(a->hsum + 2 * nt * nbp);
    a->sumg = a->scg + ntg * nbp;
    a->sca = amx ? a->sumg + ntg * nbp : NULL;
    a->suma = amx ? a->sca + nta * nbp : NULL;
    a->q = (int8_t *)(a->sumg + ntg * nbp + 2 * nta * nbp);
    a->q4 = a->q + nt * np;
    a->q2 = a->q4 + nt * np;
    a->qg = a->q2 + nt * np;
    a->qa = amx ? a->qg + ntg * np : NULL;
    a->nt = nt, a->n_in = n_in, a->nbp = nbp;
    if (amx) {   // tokens past nt stay 0 in the AMX copy (the GEMM multiplies whole 16-token tiles)
        memset(a->qa + (nt / 16) * 16 * np, 0, (size_t)((nta - nt / 16 * 16) * np));
        memset(a->sca + (nt / 16) * 16 * nbp, 0, (size_t)((nta - nt / 16 * 16) * nbp) * sizeof(float));
        memset(a->suma + (nt / 16) * 16 * nbp, 0, (size_t)((nta - nt / 16 * 16) * nbp) * sizeof(float));
    }
    const int simd = it_cpu_has_avx2() && it_cpu_isa() > IT_ISA_REF;
    for (int64_t t = 0; t < nt; t++) {
        int8_t *q = a->q + t * np, *q4 = a->q4 + t * np, *q2 = a->q2 + t * np;
        float *sc = a->scale + t * nbp;
        int32_t *su = a->sum + t * nbp;
        if (simd)
            kern_dq_quant_row_avx2(x + t * n_in, n_in, q, sc, su);
        else
            quant_row_scalar(x + t * n_in, n_in, q, sc, su);
        memset(q + n_in, 0, (size_t)(np - n_in));
        for (int64_t b = n_in / 32; b < nbp; b++) sc[b] = 0.0f, su[b] = 0;
        int32_t *hs = a->hsum + 2 * t * nbp;
        for (int64_t h = 0; h < 2 * nbp; h++) {
            int32_t v = 0;
            for (int i = 0; i < 16; i++) v += q[16 * h + i];
            hs[h] = v;
        }
        for (int64_t u = 0; u < np; u += 128)
            for (int k = 0; k < 4; k++) {
                memcpy(q4 + u + 16 * k, q + u + 32 * k, 16);
                memcpy(q4 + u + 64 + 16 * k, q + u + 32 * k + 16, 16);
            }
        for (int64_t u = 0; u < np; u += 256)
            for (int i = 0; i < 4; i++)
                for (int k = 0; k < 8; k++) memcpy(q2 + u + 64 * i + 8 * k, q + u + 32 * k + 8 * i, 8);
        for (int64_t c = 0; c < nch; c++) {
            const int64_t slot = (t / KERN_DQ_GT * nch + c) * KERN_DQ_GT + t % KERN_DQ_GT;
            int8_t *qg = a->qg + 512 * slot;
            for (int m = 0; m < 8; m++)
                for (int b = 0; b < 16; b++) memcpy(qg + 64 * m + 4 * b, q + 512 * c + 32 * b + 4 * m, 4);
            for (int b = 0; b < 16; b++) {
                a->scg[16 * slot + b] = sc[16 * c + b];
                a->sumg[16 * slot + b] = (float)su[16 * c + b];
            }
        }
        if (amx) {
            const int64_t u = t / 16, tt = t % 16;
            for (int64_t b = 0; b < nbp; b++) {
                int8_t *qa = a->qa + 512 * (u * nbp + b);
                for (int m = 0; m < 8; m++) memcpy(qa + 64 * m + 4 * tt, q + 32 * b + 4 * m, 4);
                a->sca[16 * (u * nbp + b) + tt] = sc[b];
                a->suma[16 * (u * nbp + b) + tt] = (float)su[b];
            }
        }
    }
    return 0;
}

void kern_dq_fake(const float *x, int64_t nt, int64_t n_in, float *out) {
    if (!x || !out || nt < 1 || n_in < 32 || n_in % 32) return;
    int8_t q[32];
    float s;
    int32_t sum;
    for (int64_t b = 0; b < nt * n_in / 32; b++) {
        quant_row_scalar(x + 32 * b, 32, q, &s, &sum);   // reads the block before writing it
        for (int i = 0; i < 32; i++) out[32 * b + i] = s * (float)q[i];
    }
}

// ---- the reference ----

void kern_dq_ref(const qf_spec *s, const void *w, size_t row_bytes, const kern_dq *a, float *y,
                 int64_t ldy, int64_t r0, int64_t r1) {
    const int G = s->group;
    const size_t bb = qf_block_bytes(s);
    const int64_t n = a->n_in, np = a->nbp * 32;
    uint8_t qw[128];
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + (size_t)r * row_bytes;
        for (int64_t t = 0; t < a->nt; t++) {
            const int8_t *q = a->q + t * np;
            const float *sc = a->scale + t * a->nbp;
            const int32_t *su = a->sum + t * a->nbp;
            float f[16] = {0};
            for (int64_t g = 0; g < n / G; g++) {
                float d;
                int z;
                qf_unpack_group(s, row + (size_t)g * bb, &d, &z, qw);
                for (int k = 0; k < G / 32; k++) {
                    int64_t b = g * (G / 32) + k;
                    int32_t isum = 0;
                    for (int i = 0; i < 32; i++) isum += (int32_t)qw[32 * k + i] * q[32 * b + i];
                    float ds = d * sc[b];
                    f[b % 16] = fmaf(ds, (float)(isum - z * su[b]), f[b % 16]);
                }
            }
            for (int i = 0; i < 8; i++) f[i] = f[i] + f[i + 8];
            for (int i = 0; i < 4; i++) f[i] = f[i] + f[i + 4];
            for (int i = 0; i < 2; i++) f[i] = f[i] + f[i + 2];
            y[t * ldy + r] = f[0] + f[1];
        }
    }
}

// ---- kernel choice ----

// The AVX-512 kernels need VNNI (vpdpbusd), BITALG (vpshufbitqmb, int3's high bits in prefill),
// VBMI (vpermb, int3's high bits in decode) and GFNI (gf2p8affineqb, the 2-bit fields): Ice Lake,
// Zen 4 and later; a Cascade Lake (VNNI only) takes the AVX2 kernel. Detected once: kern_dq_best
// runs per matmul, and under a hypervisor every cpuid is a VM exit (it was 1% of decode time).
static int g_vnni_bitalg;
static pthread_once_t g_vnni_bitalg_once = PTHREAD_ONCE_INIT;

static void detect_vnni_bitalg(void) {
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    g_vnni_bitalg = kern_iq_cpu_has_vnni() && __get_cpuid_count(7, 0, &a, &b, &c, &d) && ((c >> 12) & 1) &&
                    ((c >> 8) & 1) && ((c >> 1) & 1);   // BITALG, GFNI, VBMI
#endif
}

static int has_vnni_bitalg(void) {
    pthread_once(&g_vnni_bitalg_once, detect_vnni_bitalg);
    return g_vnni_bitalg;
}

// int3 on AMD takes the mask-register variant; every other format one entry point (ggdec.c
// recognizes kern_dq_avx512vnni by address for Q4_0).
static kern_dq_fn avx512_for(const qf_spec *s) {
    return s->bits == 3 && it_cpu_amd() ? kern_dq_avx512vnni_amd : kern_dq_avx512vnni;
}

kern_dq_fn kern_dq_kernel(int type, const char *isa) {
    qf_spec s;
    if (!isa || qf_spec_of(type, &s)) return NULL;
    if (!strcmp(isa, "ref")) return kern_dq_ref;
    if (!strcmp(isa, "avx2")) return it_cpu_has_avx2() ? kern_dq_avx2 : NULL;
    if (!has_vnni_bitalg()) return NULL;
    if (!strcmp(isa, "avx512")) return avx512_for(&s);
    if (!strcmp(isa, "avx512-intel")) return kern_dq_avx512vnni;
    if (!strcmp(isa, "avx512-amd")) return kern_dq_avx512vnni_amd;
    return NULL;
}

kern_dq_fn kern_dq_best(int type) {
    qf_spec s;
    if (qf_spec_of(type, &s)) return NULL;
    const int isa = it_cpu_isa();
    if (isa == IT_ISA_AVX512 && has_vnni_bitalg()) return avx512_for(&s);
    if (isa >= IT_ISA_AVX2 && it_cpu_has_avx2()) return kern_dq_avx2;
    return kern_dq_ref;
}

// AMX: cpuid.7.0 EDX bit 24 (AMX-TILE) and 25 (AMX-INT8); Linux hands a process the 8 KB tile
// data state only after it asks (arch_prctl ARCH_REQ_XCOMP_PERM = 0x1023, XTILEDATA = 18).
static int g_amx;
static pthread_once_t g_amx_once = PTHREAD_ONCE_INIT;

static void detect_amx(void) {
#if defined(__linux__) && defined(__x86_64__)
    const char *env = getenv("INTACT_AMX");
    if (env && !strcmp(env, "0")) return;
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !((d >> 24) & 1) || !((d >> 25) & 1)) return;
    g_amx = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
#endif
}

int kern_dqa_usable(void) {
    pthread_once(&g_amx_once, detect_amx);
    return g_amx && it_cpu_isa() == IT_ISA_AVX512 && has_vnni_bitalg();
}

// The prefill GEMM (kernels/iqgemm.h) covers every one of our formats: int2, int3, int4 and int8.
static int dqg_covered(int type) {
    qf_spec s;
    return !qf_spec_of(type, &s);
}

kern_dq_fn kern_dqg_kernel(int type, const char *isa) {
    if (!isa || !dqg_covered(type)) return NULL;
    if (!strcmp(isa, "ref")) return kern_dq_ref;
    if (!strcmp(isa, "avx512")) return has_vnni_bitalg() ? kern_dqg_avx512vnni : NULL;
    if (!strcmp(isa, "amx")) return kern_dqa_usable() ? kern_dqg_amx : NULL;
    return NULL;
}

kern_dq_fn kern_dqg_best(int type) {
    if (!dqg_covered(type) || it_cpu_isa() != IT_ISA_AVX512 || !has_vnni_bitalg()) return NULL;
    return kern_dqa_usable() ? kern_dqg_amx : kern_dqg_avx512vnni;
}

int kern_dq_fast(void) { return it_cpu_isa() >= IT_ISA_AVX2 && it_cpu_has_avx2(); }

// ---- threaded wrapper ----

// DQ_STEAL_ROWS: the block a finished thread takes from another's share (16 rows: one output cache
// line, ~16-64 KB of weights, so a steal is worth its compare-exchange).
enum { DQ_MAX_GROUP = 4, DQ_STEAL_ROWS = 16 };

typedef struct {
    int n;
    kern_dq_fn fn[DQ_MAX_GROUP];
    qf_spec spec[DQ_MAX_GROUP];
    const it_tensor *w[DQ_MAX_GROUP];
    float *y[DQ_MAX_GROUP];
    const kern_dq *a;
    long block[DQ_MAX_GROUP];   // rows per kernel call (0: the thread's whole range)
    long off[DQ_MAX_GROUP + 1]; // decode: matrix m's rows are [off[m], off[m+1]) of the group's rows
    it_steal *steal;            // decode: the group's rows shared out with stealing; NULL at prefill
} dq_job;

// Rows [b, e) of the group's concatenated rows (matrix m's rows start at off[m]) through the kernels.
static void dq_rows(const dq_job *j, long b, long e) {
    long r0, r1;
    for (int m = 0; m < j->n; m++) {
        if (!it_seg_rows(j->off, m, b, e, &r0, &r1)) continue;
        const it_tensor *w = j->w[m];
        j->fn[m](&j->spec[m], w->data, fmt_row_bytes(w->type, w->ne[0]), j->a, j->y[m], w->ne[1], r0, r1);
    }
}

static void dq_worker(void *arg, int ith, int nth) {
    const dq_job *j = arg;
    if (j->steal) {   // decode: contiguous shares with stealing (core/pool.h)
        long b, e;
        while (it_steal_next(j->steal, ith, DQ_STEAL_ROWS, &b, &e)) dq_rows(j, b, e);
        return;
    }
    for (int m = 0; m < j->n; m++) {
        const it_tensor *w = j->w[m];
        int64_t n_in = w->ne[0], n_out = w->ne[1];
        size_t rb = fmt_row_bytes(w->type, n_in);
        long r0, r1;
        it_split_range((long)n_out, ith, nth, 16, &r0, &r1);
        // Prefill (block > 0): every token over one block of rows before the next, so the block's
        // packed weights stay in L1 instead of being re-read for every 3-token tile.
        long step = j->block[m] > 0 ? j->block[m] : r1 - r0;
        for (long r = r0; r < r1; r += step) {
            long re = r + step < r1 ? r + step : r1;
            j->fn[m](&j->spec[m], w->data, rb, j->a, j->y[m], n_out, r, re);
        }
    }
}

static void dq_run(it_pool *pool, int n, const it_tensor *const *w, const kern_dq *a, float *const *y, long block) {
    for (int done = 0; done < n; done += DQ_MAX_GROUP) {
        dq_job j;
        memset(&j, 0, sizeof j);
        j.n = n - done < DQ_MAX_GROUP ? n - done : DQ_MAX_GROUP;
        j.a = a;
        for (int m = 0; m < j.n; m++) {
            j.w[m] = w[done + m];
            j.y[m] = y[done + m];
            // Prefill: the GEMM kernel where one exists (it blocks rows itself), else the decode
            // kernel over row blocks.
            j.fn[m] = block > 0 ? kern_dqg_best(j.w[m]->type) : NULL;
            j.block[m] = j.fn[m] ? 0 : block;
            if (!j.fn[m]) j.fn[m] = kern_dq_best(j.w[m]->type);
            if (!j.fn[m] || qf_spec_of(j.w[m]->type, &j.spec[m]) || j.w[m]->ne[0] != a->n_in) return;
            j.off[m + 1] = j.off[m] + (long)j.w[m]->ne[1];
        }
        it_steal steal;
        if (block == 0 && it_pool_size(pool) <= IT_STEAL_MAX_PARTS && j.off[j.n] < (1L << 31)) {
            it_steal_init(&steal, j.off[j.n], it_pool_size(pool), 16);
            j.steal = &steal;
        }
        it_pool_run(pool, dq_worker, &j);
    }
}

void kern_matmul_dq_group(it_pool *pool, int n, const it_tensor *const *w, const kern_dq *a, float *const *y) {
    dq_run(pool, n, w, a, y, 0);
}

void kern_matmul_dqg_group(it_pool *pool, int n, const it_tensor *const *w, const kern_dq *a, float *const *y) {
    dq_run(pool, n, w, a, y, KERN_DQG_ROWS);
}
