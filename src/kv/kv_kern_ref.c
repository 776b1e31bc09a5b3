// Scalar reference attention kernels over stored KV rows (contract in kv_kern.h), and the run-time
// choice between them and the AVX2 ones. A row is decoded one span at a time (an INT group, or up
// to SPAN fp16 values) into a stack buffer and used for every query head before the next span.
#include "kv/kv_kern.h"

#include <math.h>
#include <string.h>

#include "core/cpu.h"
#include "core/fp16.h"
#include "kernels/matmul.h"
#include "kv/kv.h"
#include "kv/kv_quant.h"

enum { SPAN = 64 };   // fp16 values decoded at a time (INT rows: one group, ≤ KVQ_MAX_GROUP)
_Static_assert((int)SPAN <= (int)KVQ_MAX_GROUP, "a span fits the decode buffer");

static inline int span_len(const kvk_rows *r) { return r->bits == 16 ? SPAN : r->group; }

// Values [i0, i0 + len) of a row into out; i0 is a multiple of span_len (a group start for INT).
static void decode_span(const uint8_t *row, const kvk_rows *r, int i0, int len, float *out) {
    if (r->bits == 16) {
        for (int i = 0; i < len; i++) {
            uint16_t h;
            memcpy(&h, row + 2 * (size_t)(i0 + i), 2);
            out[i] = it_fp16_to_f32(h);
        }
        return;
    }
    int ng = r->hd / r->group, gi = i0 / r->group;
    uint16_t d, m;
    memcpy(&d, row + 4 * gi, 2);
    memcpy(&m, row + 4 * gi + 2, 2);
    kvq_dequant_group(row + 4 * (size_t)ng + (size_t)gi * r->group * r->bits / 8, r->group, r->bits, d, m, out);
}

static inline int row_pos(const kvk_rows *r, int i) { return r->pos ? r->pos[i] : r->p0 + i; }
// Where row i's score / weight lives (kv_kern.h: its position unless r->at).
static inline int row_at(const kvk_rows *r, int i) { return r->at ? r->at[i] : row_pos(r, i); }

void kvk_quant_q(const float *q, int hd, int group, int8_t *q8, float *sq, float *qsum) {
    for (int g = 0; g * group < hd; g++) {
        const float *x = q + (size_t)g * group;
        float mx = 0, sum = 0;
        for (int i = 0; i < group; i++) {
            float a = fabsf(x[i]);
            mx = a > mx ? a : mx;
            sum += x[i];
        }
        float inv = mx > 0 ? 127.0f / mx : 0.0f;
        for (int i = 0; i < group; i++) {
            long v = lrintf(x[i] * inv);
            q8[(size_t)g * group + i] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
        }
        sq[g] = mx / 127.0f;
        qsum[g] = sum;
    }
}

// INT4 and INT2 rows: the int8-query form (kv_kern.h). Heads and groups outside, rows inside, so one group
// of one head's query is quantized at a time into a stack buffer (group <= KVQ_MAX_GROUP); the
// per-row sums over groups run in the same order as the AVX2 kernel's.
static void scores_ref_int8q(const kvk_rows *r, const float *q, int rep, float scale, float *s, size_t ld) {
    int hd = r->hd, G = r->group, ng = hd / G, b = r->bits, per = 8 / b;   // codes per byte
    int8_t q8[KVQ_MAX_GROUP];
    for (int h = 0; h < rep; h++) {
        for (int i = 0; i < r->n; i++) s[h * ld + row_at(r, i)] = 0;
        for (int g = 0; g < ng; g++) {
            float sq, qs;
            kvk_quant_q(q + (size_t)h * hd + (size_t)g * G, G, G, q8, &sq, &qs);
            for (int i = 0; i < r->n; i++) {
                int p = row_pos(r, i);
                const uint8_t *row = r->base + (size_t)p * r->stride, *codes = row + 4 * (size_t)ng + (size_t)g * G / per;
                uint16_t d, m;
                memcpy(&d, row + 4 * g, 2);
                memcpy(&m, row + 4 * g + 2, 2);
                int32_t isum = 0;
                for (int k = 0; k < G; k++) isum += (int32_t)((codes[k / per] >> (b * (k % per))) & ((1 << b) - 1)) * q8[k];
                s[h * ld + row_at(r, i)] += it_fp16_to_f32(d) * sq * (float)isum + it_fp16_to_f32(m) * qs;
            }
        }
        for (int i = 0; i < r->n; i++) s[h * ld + row_at(r, i)] *= scale;
    }
}

static void scores_ref(const kvk_rows *r, const float *q, int rep, float scale, float *s, size_t ld) {
    if (r->bits == 4 || r->bits == 2) {
        scores_ref_int8q(r, q, rep, scale, s, ld);
        return;
    }
    float buf[KVQ_MAX_GROUP];
    int hd = r->hd, step = span_len(r);
    for (int i = 0; i < r->n; i++) {
        int p = row_pos(r, i), a = row_at(r, i);
        const uint8_t *row = r->base + (size_t)p * r->stride;
        for (int h = 0; h < rep; h++) s[h * ld + a] = 0;
        for (int i0 = 0; i0 < hd; i0 += step) {
            int len = hd - i0 < step ? hd - i0 : step;
            decode_span(row, r, i0, len, buf);
            for (int h = 0; h < rep; h++) s[h * ld + a] += kv_dot(q + (size_t)h * hd + i0, buf, len);
        }
        for (int h = 0; h < rep; h++) s[h * ld + a] *= scale;
    }
}

static void accum_ref(const kvk_rows *r, const float *w, size_t ld, int rep, float *o) {
    float buf[KVQ_MAX_GROUP];
    int hd = r->hd, step = span_len(r);
    for (int i = 0; i < r->n; i++) {
        int p = row_pos(r, i), a = row_at(r, i);
        const uint8_t *row = r->base + (size_t)p * r->stride;
        for (int i0 = 0; i0 < hd; i0 += step) {
            int len = hd - i0 < step ? hd - i0 : step;
            decode_span(row, r, i0, len, buf);
            for (int h = 0; h < rep; h++) {
                float wh = w[h * ld + a], *oh = o + (size_t)h * hd + i0;
                for (int k = 0; k < len; k++) oh[k] += wh * buf[k];
            }
        }
    }
}

static void chan_scores_ref(const uint8_t *blk, int bits, int hd, int group, int nt, const float *q, int rep,
                            float scale, float *s, size_t ld) {
    float col[KVQ_MAX_GROUP];
    size_t gb = (size_t)group * bits / 8;
    for (int h = 0; h < rep; h++)
        for (int j = 0; j < nt; j++) s[h * ld + j] = 0;
    for (int c = 0; c < hd; c++) {   // channel by channel: a channel's G tokens share d, m
        uint16_t d, m;
        memcpy(&d, blk + 4 * c, 2);
        memcpy(&m, blk + 4 * c + 2, 2);
        kvq_dequant_group(blk + 4 * (size_t)hd + c * gb, group, bits, d, m, col);
        for (int h = 0; h < rep; h++) {
            float qc = q[(size_t)h * hd + c];
            for (int j = 0; j < nt; j++) s[h * ld + j] += qc * col[j];
        }
    }
    for (int h = 0; h < rep; h++)
        for (int j = 0; j < nt; j++) s[h * ld + j] *= scale;
}

static void softmax_ref(float *s, int n) {
    float mx = -INFINITY;
    for (int p = 0; p < n; p++) mx = s[p] > mx ? s[p] : mx;
    double sum = 0;
    for (int p = 0; p < n; p++) {
        s[p] = expf(s[p] - mx);   // a -inf score (an evicted token) becomes exactly 0
        sum += s[p];
    }
    float inv = (float)(1.0 / sum);
    for (int p = 0; p < n; p++) s[p] *= inv;
}

static const kvk_ops ref_ops = {"ref", scores_ref, accum_ref, chan_scores_ref, softmax_ref};

const kvk_ops *kvk_ref(void) { return &ref_ops; }

const kvk_ops *kvk_get(const char *isa) {
    if (!isa) return NULL;
    if (!strcmp(isa, "ref")) return &ref_ops;
    if (!strcmp(isa, "avx2")) return it_cpu_has_avx2() ? kvk_avx2() : NULL;
    if (!strcmp(isa, "avx512")) return it_cpu_has_avx2() && it_cpu_has_avx512() ? kvk_avx512() : NULL;
    return NULL;
}

static const kvk_ops *g_forced;

void kvk_force(const kvk_ops *ops) { g_forced = ops; }

// Follows the matmul kernels' switch (core/cpu.h): if they are held to scalar (INTACT_ISA=ref,
// it_cpu_force_ref), so are we; INTACT_ISA=avx2 keeps the AVX2 table on an AVX-512 CPU. Cheap
// enough to ask on every attend call, so it_cpu_force_ref toggles take effect at once.
const kvk_ops *kvk_active(void) {
    if (g_forced) return g_forced;
    if (!it_cpu_has_avx2() || it_cpu_isa() == IT_ISA_REF) return &ref_ops;
    return it_cpu_isa() == IT_ISA_AVX512 && it_cpu_has_avx512() ? kvk_avx512() : kvk_avx2();
}
