// RTN with optional MSE clip search. See rtn.h.
#include "quant/rtn.h"

#include <stdlib.h>
#include <string.h>

double rtn_fake_quant_group(const qf_spec *s, const float *w, float clip, float *out) {
    float d;
    int z;
    qf_group_params(s, w, clip, &d, &z);
    double err = 0;
    for (int i = 0; i < s->group; i++) {
        out[i] = d * (float)(qf_quantize_value(w[i], d, z, s->bits) - z);
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
            qf_quantize_group(c->s, w, clip, prow + (size_t)g * bb);
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
