// Quantization grids of the writable formats; see qgrid.h for the rules.
#include "quant/qgrid.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

#include "core/fp16.h"
#include "formats/formats.h"
#include "formats/ggml_pack.h"
#include "formats/qformat.h"
#include "quant/rtn.h"

// fp16 rounding of a scale, saturating at fp16's largest finite value instead of overflowing to inf.
static uint16_t to_h(float v) {
    if (v > 65504.0f) v = 65504.0f;
    if (v < -65504.0f) v = -65504.0f;
    return it_f32_to_fp16(v);
}
static float h2f(uint16_t h) { return it_fp16_to_f32(h); }

static int clampi(float r, int lo, int hi) {
    if (r != r) return lo;
    return r < (float)lo ? lo : r > (float)hi ? hi : (int)r;
}

// The weight of largest magnitude, with its sign (ggml's "max" for its symmetric types).
static float signed_extreme(const float *w, int n) {
    float v = 0, a = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(w[i]) > a) a = fabsf(w[i]), v = w[i];
    return v;
}

static void min_max(const float *w, int n, float *mn, float *mx) {
    *mn = *mx = w[0];
    for (int i = 1; i < n; i++) {
        *mn = w[i] < *mn ? w[i] : *mn;
        *mx = w[i] > *mx ? w[i] : *mx;
    }
}

int qgrid_init(qgrid *g, int type) {
    memset(g, 0, sizeof *g);
    const fmt_traits *t = fmt_get(type);
    if (!t) return -1;
    g->type = type;
    g->name = t->name;
    g->block = t->block_size;
    g->block_bytes = t->block_bytes;
    g->group = t->block_size;
    switch (type) {
    case IT_TYPE_Q4_0: g->qmax = 15; break;
    case IT_TYPE_Q4_1: g->qmax = 15; break;
    case IT_TYPE_Q5_0: g->qmax = 31; break;
    case IT_TYPE_Q8_0: g->qmin = 1, g->qmax = 255; break;
    case IT_TYPE_Q4_K: g->group = 32, g->qmax = 15; break;
    case IT_TYPE_Q6_K: g->group = 16, g->qmax = 63; break;
    default:
        if (qf_spec_of(type, &g->spec) != 0) return -1;
        g->qmax = (1 << g->spec.bits) - 1;
        break;
    }
    return 0;
}

int qgrid_from_spec(qgrid *g, const qf_spec *s) {
    int type;
    if (qf_type_of(s, &type)) return -1;
    return qgrid_init(g, type);
}

int qgrid_ggml_type(const char *name) {
    static const struct { const char *n; int t; } k[] = {
        {"q4_0", IT_TYPE_Q4_0}, {"q4_1", IT_TYPE_Q4_1}, {"q5_0", IT_TYPE_Q5_0},
        {"q8_0", IT_TYPE_Q8_0}, {"q4_k", IT_TYPE_Q4_K}, {"q6_k", IT_TYPE_Q6_K},
    };
    if (!name) return -1;
    char low[8];
    size_t n = strlen(name);
    if (n >= sizeof low) return -1;
    for (size_t i = 0; i <= n; i++) low[i] = (char)tolower((unsigned char)name[i]);
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (!strcmp(low, k[i].n)) return k[i].t;
    return -1;
}

void qgrid_super(const qgrid *g, const float *w, qg_super *s) {
    s->d = s->dmin = 0;
    if (g->type == IT_TYPE_Q4_K) {
        float msc = 0, mmn = 0;
        for (int k = 0; k < 8; k++) {
            float mn, mx;
            min_max(w + 32 * k, 32, &mn, &mx);
            if (mn > 0) mn = 0;
            float sc = (mx - mn) / 15.0f;
            msc = sc > msc ? sc : msc;
            mmn = -mn > mmn ? -mn : mmn;
        }
        s->d = h2f(to_h(msc / 63.0f));
        s->dmin = h2f(to_h(mmn / 63.0f));
    } else if (g->type == IT_TYPE_Q6_K) {
        float m = 0;
        for (int k = 0; k < 16; k++) {
            float sc = fabsf(signed_extreme(w + 16 * k, 16)) / 32.0f;
            m = sc > m ? sc : m;
        }
        s->d = h2f(to_h(m / 127.0f));
    }
}

void qgrid_group(const qgrid *g, const qg_super *s, const float *w, float clip, qg_group *p) {
    memset(p, 0, sizeof *p);
    const int n = g->group;
    switch (g->type) {
    case IT_TYPE_Q4_0:
    case IT_TYPE_Q5_0: {
        int half = g->type == IT_TYPE_Q4_0 ? 8 : 16;
        p->dh = to_h(clip * signed_extreme(w, n) / (float)-half);
        p->a = h2f(p->dh);
        p->z = half;
        break;
    }
    case IT_TYPE_Q8_0: {
        float v = fabsf(signed_extreme(w, n));
        p->dh = to_h(clip * v / 127.0f);
        p->a = h2f(p->dh);
        p->z = 128;
        break;
    }
    case IT_TYPE_Q4_1: {
        float mn, mx;
        min_max(w, n, &mn, &mx);
        p->mh = to_h(clip * mn);
        float m = h2f(p->mh);
        p->dh = to_h((clip * mx - m) / 15.0f);
        if (!(h2f(p->dh) >= 0)) p->dh = 0;   // every weight below the rounded min: all code 0
        p->a = h2f(p->dh);
        p->b = -m;
        break;
    }
    case IT_TYPE_Q4_K: {
        float mn, mx;
        min_max(w, n, &mn, &mx);
        float lo = clip * mn < 0 ? clip * mn : 0, hi = clip * mx;
        p->mn = s->dmin > 0 ? clampi(nearbyintf(-lo / s->dmin), 0, 63) : 0;
        p->b = s->dmin * (float)p->mn;
        p->sc = s->d > 0 ? clampi(nearbyintf((hi + p->b) / 15.0f / s->d), 1, 63) : 0;
        p->a = s->d * (float)p->sc;
        break;
    }
    case IT_TYPE_Q6_K: {
        float v = clip * signed_extreme(w, n) / -32.0f;
        p->sc = s->d > 0 ? clampi(nearbyintf(v / s->d), -128, 127) : 0;
        p->a = s->d * (float)p->sc;
        p->z = 32;
        break;
    }
    default: {
        float d;
        rtn_group_params(&g->spec, w, clip, &d, &p->z);
        p->a = d;
        break;
    }
    }
}

void qgrid_pack(const qgrid *g, const qg_super *s, const qg_group *p, const uint8_t *q, void *blk) {
    switch (g->type) {
    case IT_TYPE_Q4_0: fmt_pack_q4_0(p->dh, q, blk); break;
    case IT_TYPE_Q4_1: fmt_pack_q4_1(p->dh, p->mh, q, blk); break;
    case IT_TYPE_Q5_0: fmt_pack_q5_0(p->dh, q, blk); break;
    case IT_TYPE_Q8_0: fmt_pack_q8_0(p->dh, q, blk); break;
    case IT_TYPE_Q4_K: {
        uint8_t sc[8], mn[8];
        for (int k = 0; k < 8; k++) sc[k] = (uint8_t)p[k].sc, mn[k] = (uint8_t)p[k].mn;
        fmt_pack_q4_K(to_h(s->d), to_h(s->dmin), sc, mn, q, blk);
        break;
    }
    case IT_TYPE_Q6_K: {
        int8_t sc[16];
        for (int k = 0; k < 16; k++) sc[k] = (int8_t)p[k].sc;
        fmt_pack_q6_K(to_h(s->d), sc, q, blk);
        break;
    }
    default: qf_pack_group(&g->spec, p->a, p->z, q, blk); break;
    }
}

double qgrid_quantize_block(const qgrid *g, const float *w, const float *clips, void *blk, float *out) {
    qg_super s;
    qg_group p[16];   // at most 16 groups per block (q6_K); ours have one
    uint8_t q[256];
    double err = 0;
    qgrid_super(g, w, &s);
    for (int k = 0; k < g->block / g->group; k++) {
        const float *wk = w + k * g->group;
        qgrid_group(g, &s, wk, clips ? clips[k] : 1.0f, &p[k]);
        for (int i = 0; i < g->group; i++) {
            int c = qgrid_code(g, &p[k], wk[i]);
            q[k * g->group + i] = (uint8_t)c;
            float x = qgrid_value(&p[k], c);
            if (out) out[k * g->group + i] = x;
            double e = (double)wk[i] - (double)x;
            err += e * e;
        }
    }
    if (blk) qgrid_pack(g, &s, p, q, blk);
    return err;
}

float qgrid_search_clip(const qgrid *g, const qg_super *s, const float *w, int n_grid) {
    if (n_grid < 1) n_grid = 1;
    if (n_grid > 20) n_grid = 20;
    float best_c = 1.0f;
    double best = INFINITY;
    for (int k = 0; k < n_grid; k++) {
        float c = 1.0f - 0.05f * (float)k;
        qg_group p;
        qgrid_group(g, s, w, c, &p);
        double e = 0;
        for (int i = 0; i < g->group; i++) {
            double d = (double)w[i] - (double)qgrid_value(&p, qgrid_code(g, &p, w[i]));
            e += d * d;
        }
        if (e < best) best = e, best_c = c;
    }
    return best_c;
}

void qgrid_dequantize_row(const qgrid *g, const void *blocks, float *w, int64_t n) {
    fmt_get(g->type)->to_float(blocks, w, n);
}

// "f32"/"f16"/"bf16", a writable ggml type name, or one of our integer formats by the name `info`
// prints (int8_g32, int4_g128_sym, ...: decode reads them through the int8 GEMV); -1 otherwise.
int qgrid_head_type(const char *s) {
    if (!s) return -1;
    if (!strcmp(s, "f32")) return IT_TYPE_F32;
    if (!strcmp(s, "f16")) return IT_TYPE_F16;
    if (!strcmp(s, "bf16")) return IT_TYPE_BF16;
    static const int bits[] = {2, 3, 4, 8}, groups[] = {32, 64, 128};
    for (int b = 0; b < 4; b++)
        for (int g = 0; g < 3; g++)
            for (int sym = 0; sym < 2; sym++) {
                qf_spec sp = {.bits = bits[b], .group = groups[g], .sym = sym};
                int type;
                if (qf_type_of(&sp, &type) == 0 && fmt_get(type) && !strcmp(fmt_get(type)->name, s)) return type;
            }
    return qgrid_ggml_type(s);
}
