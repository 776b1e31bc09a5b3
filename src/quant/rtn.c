// RTN with optional MSE clip search. See rtn.h.
#include "quant/rtn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fp16.h"

void rtn_group_params(const qf_spec *s, const float *w, float clip, float *d, int *z) {
    const int G = s->group, maxq = (1 << s->bits) - 1;
    float dd, lo = 0;
    if (s->sym) {
        float a = 0;
        for (int i = 0; i < G; i++) a = fabsf(w[i]) > a ? fabsf(w[i]) : a;
        dd = 2.0f * (clip * a) / (float)maxq;
    } else {
        float mn = w[0], mx = w[0];
        for (int i = 1; i < G; i++) {
            mn = w[i] < mn ? w[i] : mn;
            mx = w[i] > mx ? w[i] : mx;
        }
        // The range always contains 0 (as GPTQ's quantizer): a one-sided group then keeps its zero
        // point inside [0, maxq] instead of collapsing every weight onto one level.
        lo = clip * mn < 0 ? clip * mn : 0;
        float hi = clip * mx > 0 ? clip * mx : 0;
        dd = (hi - lo) / (float)maxq;
    }
    // The stored scale is fp16: round first so q is computed against the value the kernels use.
    // A zero range (or one that underflows fp16) takes d = 1 so every division below is finite;
    // a range beyond fp16 saturates at its largest finite value.
    dd = it_fp16_to_f32(it_f32_to_fp16(dd));
    if (!(dd > 0)) dd = 1.0f;
    if (dd > 65504.0f) dd = 65504.0f;
    *d = dd;
    if (s->sym) {
        *z = 1 << (s->bits - 1);
    } else {
        float r = nearbyintf(-lo / dd);
        *z = r < 0 ? 0 : r > (float)maxq ? maxq : (int)r;
    }
}

void rtn_quantize_group(const qf_spec *s, const float *w, float clip, void *block) {
    uint8_t q[128];
    float d;
    int z;
    rtn_group_params(s, w, clip, &d, &z);
    for (int i = 0; i < s->group; i++) q[i] = (uint8_t)rtn_quantize_value(w[i], d, z, s->bits);
    qf_pack_group(s, d, z, q, block);
}

void rtn_quantize_row(const qf_spec *s, const float *w, int64_t n, float clip, void *blocks) {
    const size_t bb = qf_block_bytes(s);
    for (int64_t g = 0; g < n / s->group; g++)
        rtn_quantize_group(s, w + g * s->group, clip, (uint8_t *)blocks + (size_t)g * bb);
}

double rtn_fake_quant_group(const qf_spec *s, const float *w, float clip, float *out) {
    float d;
    int z;
    rtn_group_params(s, w, clip, &d, &z);
    double err = 0;
    for (int i = 0; i < s->group; i++) {
        out[i] = d * (float)(rtn_quantize_value(w[i], d, z, s->bits) - z);
        double e = (double)w[i] - (double)out[i];
        err += e * e;
    }
    return err;
}

float rtn_search_clip_group(const qf_spec *s, const float *w, int n_grid) {
    if (n_grid < 1) n_grid = 1;
    if (n_grid > 20) n_grid = 20;
    float tmp[128];   // G <= 128
    float best_c = 1.0f;
    double best = rtn_fake_quant_group(s, w, 1.0f, tmp);
    for (int i = 1; i < n_grid; i++) {
        float c = 1.0f - 0.05f * (float)i;
        double e = rtn_fake_quant_group(s, w, c, tmp);
        if (e < best) best = e, best_c = c;
    }
    return best_c;
}

typedef struct {
    const qf_spec *s;
    const float *W;
    float *out;
    uint8_t *packed;
    int64_t n_out, n_in;
    int clip_search;
} rtn_ctx;

static void rtn_worker(void *arg, int ith, int nth) {
    const rtn_ctx *c = arg;
    const int64_t G = c->s->group, ng = c->n_in / G;
    const size_t bb = qf_block_bytes(c->s);
    long b, e;
    it_split_range((long)c->n_out, ith, nth, 1, &b, &e);
    for (int64_t r = b; r < e; r++) {
        uint8_t *prow = c->packed + (size_t)r * (size_t)ng * bb;
        for (int64_t g = 0; g < ng; g++) {
            const float *w = c->W + r * c->n_in + g * G;
            float clip = c->clip_search ? rtn_search_clip_group(c->s, w, RTN_CLIP_GRID) : 1.0f;
            rtn_quantize_group(c->s, w, clip, prow + (size_t)g * bb);
        }
        if (c->out) qf_dequantize_row(c->s, prow, c->out + r * c->n_in, c->n_in);
    }
}

int rtn_quantize_matrix(const qf_spec *s, const float *W, int64_t n_out, int64_t n_in, int clip_search,
                        void *packed, float *W_dequant_out, it_pool *pool, intact_error *err) {
    int type;
    if (qf_type_of(s, &type)) return it_fail(err, INTACT_E_ARG, "rtn: unsupported format spec");
    if (n_out <= 0 || n_in <= 0 || n_in % s->group)
        return it_fail(err, INTACT_E_ARG, "rtn: bad shape %lld × %lld for group %d", (long long)n_out,
                       (long long)n_in, s->group);
    rtn_ctx c = {s, W, W_dequant_out, packed, n_out, n_in, clip_search};
    it_pool_run(pool, rtn_worker, &c);
    return 0;
}
