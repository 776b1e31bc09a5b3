// Decode GEMV with int8 activations for ggml's Q4_0 / Q8_0 / Q4_K / Q6_K (kernels/ggdec.h): the
// scalar reference that defines the result, kernel choice and the threaded wrapper. The block
// layouts are the ones written out at their structs in formats/formats.h.
#include "kernels/ggdec.h"

#include <math.h>
#include <string.h>

#include "core/cpu.h"
#include "core/fp16.h"
#include "formats/qformat.h"
#include "kernels/iqgemm.h"
#include "kernels/iqmatmul.h"

void ggdec_k4_scale_min(const uint8_t *k, int j, int *sc, int *mn) {
    if (j < 4) {
        *sc = k[j] & 63;
        *mn = k[j + 4] & 63;
    } else {
        *sc = (k[j + 4] & 15) | (k[j - 4] >> 6) << 4;
        *mn = (k[j + 4] >> 4) | (k[j] >> 6) << 4;
    }
}

void ggdec_block(int type, const uint8_t *row, int64_t b, const kern_dq *a, int64_t t, float f[16]) {
    const int8_t *q = a->q + t * a->nbp * 32 + 32 * b;
    const float s = a->scale[t * a->nbp + b];
    const int32_t sum = a->sum[t * a->nbp + b];
    float *acc = &f[b % 16];
    int32_t iv = 0;
    if (type == IT_TYPE_Q4_0) {
        const it_block_q4_0 *k = (const void *)(row + (size_t)b * sizeof *k);
        for (int i = 0; i < 16; i++) iv += (k->qs[i] & 15) * q[i] + (k->qs[i] >> 4) * q[i + 16];
        *acc = fmaf(it_fp16_to_f32(k->d) * s, (float)(iv - 8 * sum), *acc);
    } else if (type == IT_TYPE_Q8_0) {
        const it_block_q8_0 *k = (const void *)(row + (size_t)b * sizeof *k);
        for (int i = 0; i < 32; i++) iv += k->qs[i] * q[i];
        *acc = fmaf(it_fp16_to_f32(k->d) * s, (float)iv, *acc);
    } else if (type == IT_TYPE_Q4_K) {
        const it_block_q4_K *k = (const void *)(row + (size_t)(b / 8) * sizeof *k);
        const int j = (int)(b % 8);
        int sc, mn;
        ggdec_k4_scale_min(k->scales, j, &sc, &mn);
        for (int i = 0; i < 32; i++) {
            uint8_t v = k->qs[32 * (j / 2) + i];
            iv += (j % 2 ? v >> 4 : v & 15) * q[i];
        }
        *acc = fmaf(it_fp16_to_f32(k->d) * (float)sc * s, (float)iv, *acc);
        *acc = fmaf(-(it_fp16_to_f32(k->dmin) * (float)mn * s), (float)sum, *acc);
    } else if (type == IT_TYPE_Q6_K) {
        const it_block_q6_K *k = (const void *)(row + (size_t)(b / 8) * sizeof *k);
        const int j = (int)(b % 8), n = j / 4, m = j % 4;
        int32_t h[2] = {0, 0};
        for (int i = 0; i < 32; i++) {
            uint8_t lb = k->ql[64 * n + i + 32 * (m & 1)];
            int c = (m < 2 ? lb & 15 : lb >> 4) | ((k->qh[32 * n + i] >> (2 * m)) & 3) << 4;
            h[i / 16] += (c - 32) * q[i];
        }
        iv = k->scales[2 * j] * h[0] + k->scales[2 * j + 1] * h[1];
        *acc = fmaf(it_fp16_to_f32(k->d) * s, (float)iv, *acc);
    }
}

float ggdec_reduce(float f[16]) {
    for (int i = 0; i < 8; i++) f[i] = f[i] + f[i + 8];
    for (int i = 0; i < 4; i++) f[i] = f[i] + f[i + 4];
    for (int i = 0; i < 2; i++) f[i] = f[i] + f[i + 2];
    return f[0] + f[1];
}

void ggdec_ref(int type, const void *w, size_t row_bytes, const kern_dq *a, float *y, int64_t ldy,
               int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + (size_t)r * row_bytes;
        for (int64_t t = 0; t < a->nt; t++) {
            float f[16] = {0};
            for (int64_t b = 0; b < a->n_in / 32; b++) ggdec_block(type, row, b, a, t, f);
            y[t * ldy + r] = ggdec_reduce(f);
        }
    }
}

// ---- kernel choice ----

int ggdec_supported(int type) {
    return type == IT_TYPE_Q4_0 || type == IT_TYPE_Q8_0 || type == IT_TYPE_Q4_K || type == IT_TYPE_Q6_K;
}

// Q4_0 is byte for byte intact's int4 g32 symmetric block ({fp16 d; 16 bytes, low nibble weight j,
// high nibble weight j + 16}, w = d (c - 8); formats/qformat.h) and the two int8-activation
// definitions agree term for term (ggdec.h: fma(d s_b, (float)(sum c q - 8 sum_b), f) into f[b % 16],
// the same final tree as iqdec.h with z = 8). So Q4_0's SIMD kernels are intact's int4 kernels:
// the decode GEMV (kernels/iqdec.h) and at prefill the register-blocked GEMM (kernels/iqgemm.h);
// ggdec_ref stays the independent definition the tests hold them to (memcmp).
static const qf_spec gg_q4_0_as_int4 = {4, 32, 1};

static int gg_q4_0_int4_type(void) {
    int t = -1;
    qf_type_of(&gg_q4_0_as_int4, &t);
    return t;
}

static void gg_q4_0_avx2(int type, const void *w, size_t rb, const kern_dq *a, float *y, int64_t ldy, int64_t r0,
                         int64_t r1) {
    (void)type;
    kern_dq_avx2(&gg_q4_0_as_int4, w, rb, a, y, ldy, r0, r1);
}

static void gg_q4_0_avx512(int type, const void *w, size_t rb, const kern_dq *a, float *y, int64_t ldy, int64_t r0,
                           int64_t r1) {
    (void)type;
    kern_dq_avx512vnni(&gg_q4_0_as_int4, w, rb, a, y, ldy, r0, r1);
}

// The ggdec_fn wrapping int4 kernel k (NULL: none).
static ggdec_fn gg_q4_0_wrap(kern_dq_fn k) {
    return k == kern_dq_avx512vnni ? gg_q4_0_avx512 : k == kern_dq_avx2 ? gg_q4_0_avx2 : k ? ggdec_ref : NULL;
}

// Q8_0, Q4_K and Q6_K prefill on AMX tiles where the process may use them, else NULL.
static ggdec_fn gg_amx(int type) {
    return (type == IT_TYPE_Q8_0 || type == IT_TYPE_Q4_K || type == IT_TYPE_Q6_K) && kern_dqa_usable() ? ggdec_amx : NULL;
}

static kern_dq_fn gg_q4_0_gemm(int type) {
    return type == IT_TYPE_Q4_0 ? kern_dqg_best(gg_q4_0_int4_type()) : NULL;
}

// The VNNI kernel uses 256-bit vpdpbusd (AVX-512 VL + VNNI): Cascade Lake, Ice Lake, Zen 4.
static int has_vnni(void) { return it_cpu_has_avx512() && kern_iq_cpu_has_vnni(); }

ggdec_fn ggdec_kernel(int type, const char *isa) {
    if (!isa || !ggdec_supported(type)) return NULL;
    if (!strcmp(isa, "ref")) return ggdec_ref;
    if (type == IT_TYPE_Q4_0) return gg_q4_0_wrap(kern_dq_kernel(gg_q4_0_int4_type(), isa));
    if (!strcmp(isa, "avx2")) return it_cpu_has_avx2() ? ggdec_avx2 : NULL;
    if (!strcmp(isa, "avx512")) return has_vnni() ? ggdec_avx512vnni : NULL;
    if (!strcmp(isa, "amx")) return gg_amx(type);
    return NULL;
}

ggdec_fn ggdec_best(int type) {
    if (!ggdec_supported(type)) return NULL;
    if (type == IT_TYPE_Q4_0) return gg_q4_0_wrap(kern_dq_best(gg_q4_0_int4_type()));
    const int isa = it_cpu_isa();
    if (isa == IT_ISA_AVX512 && has_vnni()) return ggdec_avx512vnni;
    if (isa >= IT_ISA_AVX2 && it_cpu_has_avx2()) return ggdec_avx2;
    return ggdec_ref;
}

// ---- threaded wrappers ----

enum { GG_MAX_GROUP = 4 };

typedef struct {
    int n;
    kern_dq_fn gemm[GG_MAX_GROUP];   // prefill: Q4_0 through the int4 g32 sym GEMM, when set
    ggdec_fn ggemm[GG_MAX_GROUP];    // prefill: Q8_0 / Q4_K / Q6_K on AMX tiles, when set
    ggdec_fn fn[GG_MAX_GROUP];
    const it_tensor *w[GG_MAX_GROUP];
    float *y[GG_MAX_GROUP];
    const kern_dq *a;
    int blocked;   // prefill: walk the thread's rows in L1-sized blocks (ggdec_block_rows)
    long off[GG_MAX_GROUP + 1];   // decode: matrix m's rows are [off[m], off[m+1]) of the group
    it_steal *steal;              // decode: rows shared out with stealing (core/pool.h); else NULL
} gg_job;

int64_t ggdec_block_rows(size_t row_bytes) {
    int64_t r = (int64_t)(GGDEC_BLOCK_BYTES / (row_bytes ? row_bytes : 1));
    return r < 4 ? 4 : r > 16 ? 16 : r;
}

// The shape of iqdec.c's threaded wrapper (kern_matmul_dq_group / kern_matmul_dqg_group): rows split
// across threads in multiples of 16; at prefill every token runs over one block of rows before the
// next block, so the block's packed weights stay in L1 while all token tiles pass.
static void gg_worker(void *arg, int ith, int nth) {
    const gg_job *j = arg;
    if (j->steal) {   // decode
        long b, e, r0, r1;
        while (it_steal_next(j->steal, ith, 16, &b, &e))
            for (int m = 0; m < j->n; m++)
                if (it_seg_rows(j->off, m, b, e, &r0, &r1)) {
                    const it_tensor *w = j->w[m];
                    j->fn[m](w->type, w->data, fmt_row_bytes(w->type, w->ne[0]), j->a, j->y[m], w->ne[1], r0, r1);
                }
        return;
    }
    for (int m = 0; m < j->n; m++) {
        const it_tensor *w = j->w[m];
        int64_t n_in = w->ne[0], n_out = w->ne[1];
        size_t rb = fmt_row_bytes(w->type, n_in);
        long r0, r1;
        it_split_range((long)n_out, ith, nth, 16, &r0, &r1);
        if (j->gemm[m]) {   // blocks its rows itself
            if (r0 < r1) j->gemm[m](&gg_q4_0_as_int4, w->data, rb, j->a, j->y[m], n_out, r0, r1);
            continue;
        }
        if (j->ggemm[m]) {
            if (r0 < r1) j->ggemm[m](w->type, w->data, rb, j->a, j->y[m], n_out, r0, r1);
            continue;
        }
        long step = j->blocked ? (long)ggdec_block_rows(rb) : r1 - r0;
        for (long r = r0; r < r1; r += step) {
            long re = r + step < r1 ? r + step : r1;
            j->fn[m](w->type, w->data, rb, j->a, j->y[m], n_out, r, re);
        }
    }
}

static void gg_run(it_pool *pool, int n, const it_tensor *const *w, const kern_dq *a, float *const *y, int blocked) {
    for (int done = 0; done < n; done += GG_MAX_GROUP) {
        gg_job j;
        memset(&j, 0, sizeof j);
        j.n = n - done < GG_MAX_GROUP ? n - done : GG_MAX_GROUP;
        j.a = a;
        j.blocked = blocked;
        for (int m = 0; m < j.n; m++) {
            j.w[m] = w[done + m];
            j.y[m] = y[done + m];
            j.fn[m] = ggdec_best(j.w[m]->type);
            j.gemm[m] = blocked ? gg_q4_0_gemm(j.w[m]->type) : NULL;
            j.ggemm[m] = blocked && a->qa ? gg_amx(j.w[m]->type) : NULL;
            if (!j.fn[m] || j.w[m]->ne[0] != a->n_in) return;
            j.off[m + 1] = j.off[m] + (long)j.w[m]->ne[1];
        }
        it_steal steal;
        if (!blocked && it_pool_size(pool) <= IT_STEAL_MAX_PARTS && j.off[j.n] < (1L << 31)) {
            it_steal_init(&steal, j.off[j.n], it_pool_size(pool), 16);
            j.steal = &steal;
        }
        it_pool_run(pool, gg_worker, &j);
    }
}

void kern_matmul_ggdec_group(it_pool *pool, int n, const it_tensor *const *w, const kern_dq *a, float *const *y) {
    gg_run(pool, n, w, a, y, 0);
}

void kern_matmul_ggdg_group(it_pool *pool, int n, const it_tensor *const *w, const kern_dq *a, float *const *y) {
    gg_run(pool, n, w, a, y, 1);
}
