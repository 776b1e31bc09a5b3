// RTN with optional MSE clip search. See rtn.h.
#include "quant/rtn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fp16.h"
#include "quant/qgrid.h"

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
    const qgrid *g;
    const float *W;
    float *out;
    uint8_t *packed;
    int64_t n_out, n_in;
    int clip_search;
} rtn_ctx;

static void rtn_worker(void *arg, int ith, int nth) {
    const rtn_ctx *c = arg;
    const qgrid *g = c->g;
    const int64_t B = g->block, nb = c->n_in / B;
    long b, e;
    it_split_range((long)c->n_out, ith, nth, 1, &b, &e);
    for (int64_t r = b; r < e; r++) {
        uint8_t *prow = c->packed + (size_t)r * (size_t)nb * g->block_bytes;
        for (int64_t k = 0; k < nb; k++) {
            const float *w = c->W + r * c->n_in + k * B;
            float clips[16];
            if (c->clip_search) {
                qg_super s;
                qgrid_super(g, w, &s);
                for (int j = 0; j < B / g->group; j++) clips[j] = qgrid_search_clip(g, &s, w + j * g->group, RTN_CLIP_GRID);
            }
            qgrid_quantize_block(g, w, c->clip_search ? clips : NULL, prow + (size_t)k * g->block_bytes, NULL);
        }
        if (c->out) qgrid_dequantize_row(g, prow, c->out + r * c->n_in, c->n_in);
    }
}

int rtn_quantize_matrix_grid(const qgrid *g, const float *W, int64_t n_out, int64_t n_in, int clip_search,
                             void *packed, float *W_dequant_out, it_pool *pool, intact_error *err) {
    if (n_out <= 0 || n_in <= 0 || n_in % g->block)
        return it_fail(err, INTACT_E_ARG, "rtn: bad shape %lld × %lld for %s blocks of %d", (long long)n_out,
                       (long long)n_in, g->name, g->block);
    rtn_ctx c = {g, W, W_dequant_out, packed, n_out, n_in, clip_search};
    it_pool_run(pool, rtn_worker, &c);
    return 0;
}

int rtn_quantize_matrix(const qf_spec *s, const float *W, int64_t n_out, int64_t n_in, int clip_search,
                        void *packed, float *W_dequant_out, it_pool *pool, intact_error *err) {
    qgrid g;
    if (qgrid_from_spec(&g, s)) return it_fail(err, INTACT_E_ARG, "rtn: unsupported format spec");
    return rtn_quantize_matrix_grid(&g, W, n_out, n_in, clip_search, packed, W_dequant_out, pool, err);
}
