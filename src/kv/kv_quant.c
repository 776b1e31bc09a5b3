// Uniform low-bit KV cache: construction, group quantizer, store and byte accounting. The attention
// kernel over the stored form is in kv_quant_attn.c; formats are documented in kv_quant.h.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv_quant_impl.h"

int kvq_bits(int type) {
    switch (type) {
    case KVQ_F32: return 32;
    case KVQ_F16: return 16;
    case KVQ_INT8: return 8;
    case KVQ_INT4: return 4;
    case KVQ_INT3: return 3;
    case KVQ_INT2: return 2;
    default: return 0;
    }
}

// Largest fp16 <= x, so the stored offset m never exceeds the group minimum.
static uint16_t f16_down(float x) {
    uint16_t h = it_f32_to_fp16(x);
    if (it_fp16_to_f32(h) > x) {
        if ((h & 0x7fff) == 0) h = 0x8001;          // ±0 -> smallest negative subnormal
        else h = (h & 0x8000) ? (uint16_t)(h + 1) : (uint16_t)(h - 1);
    }
    return h;
}

// Smallest fp16 >= x for x >= 0, so the stored scale's range still reaches the group maximum.
static uint16_t f16_up(float x) {
    uint16_t h = it_f32_to_fp16(x);
    if (it_fp16_to_f32(h) < x) h++;
    return h;
}

static void kvq_pack(const uint8_t *codes, int n, int bits, uint8_t *dst) {
    memset(dst, 0, (size_t)n * bits / 8);
    for (int i = 0; i < n; i++) {
        unsigned bit = (unsigned)i * (unsigned)bits, sh = bit & 7;
        unsigned v = (unsigned)codes[i] << sh;
        dst[bit >> 3] |= (uint8_t)v;
        if (sh + (unsigned)bits > 8) dst[(bit >> 3) + 1] |= (uint8_t)(v >> 8);
    }
}

void kvq_unpack(const uint8_t *src, int n, int bits, float *out) {
    switch (bits) {
    case 8:
        for (int i = 0; i < n; i++) out[i] = (float)src[i];
        break;
    case 4:
        for (int i = 0; i < n; i++) out[i] = (float)((src[i >> 1] >> ((i & 1) * 4)) & 15);
        break;
    case 2:
        for (int i = 0; i < n; i++) out[i] = (float)((src[i >> 2] >> ((i & 3) * 2)) & 3);
        break;
    default: { // 3 bits: a code may straddle two bytes
        unsigned mask = (1u << bits) - 1;
        for (int i = 0; i < n; i++) {
            unsigned bit = (unsigned)i * (unsigned)bits, sh = bit & 7;
            unsigned v = (unsigned)src[bit >> 3] >> sh;
            if (sh + (unsigned)bits > 8) v |= (unsigned)src[(bit >> 3) + 1] << (8 - sh);
            out[i] = (float)(v & mask);
        }
    }
    }
}

void kvq_quant_group(const float *x, int n, int bits, uint8_t *packed, uint16_t *d, uint16_t *m) {
    float lo = x[0], hi = x[0];
    for (int i = 1; i < n; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    int qmax = (1 << bits) - 1;
    uint16_t mh = f16_down(lo);
    float mf = it_fp16_to_f32(mh);
    uint16_t dh = f16_up((hi - mf) / (float)qmax);
    float df = it_fp16_to_f32(dh), inv = df > 0 ? 1.0f / df : 0.0f;
    uint8_t codes[KVQ_MAX_GROUP];
    for (int i = 0; i < n; i++) {
        int q = (int)((x[i] - mf) * inv + 0.5f);   // x - m >= 0, so truncation rounds half up
        codes[i] = (uint8_t)(q < 0 ? 0 : q > qmax ? qmax : q);
    }
    kvq_pack(codes, n, bits, packed);
    *d = dh;
    *m = mh;
}

void kvq_dequant_group(const uint8_t *packed, int n, int bits, uint16_t d, uint16_t m, float *out) {
    float df = it_fp16_to_f32(d), mf = it_fp16_to_f32(m);
    kvq_unpack(packed, n, bits, out);
    for (int i = 0; i < n; i++) out[i] = df * out[i] + mf;
}

size_t kvq_row_bytes(int bits, int hd, int g) {
    if (bits == 32) return (size_t)hd * 4;
    if (bits == 16) return (size_t)hd * 2;
    return (size_t)(hd / g) * (4 + (size_t)g * bits / 8);
}

// One (token, kv head) row of head_dim values in the per-token format of `bits`.
void kvq_store_row(const float *x, int hd, int g, int bits, uint8_t *dst) {
    if (bits == 32) {
        memcpy(dst, x, (size_t)hd * sizeof(float));
    } else if (bits == 16) {
        for (int i = 0; i < hd; i++) {
            uint16_t h = it_f32_to_fp16(x[i]);
            memcpy(dst + 2 * i, &h, 2);
        }
    } else {
        int ng = hd / g;
        size_t gb = (size_t)g * bits / 8;
        for (int gi = 0; gi < ng; gi++) {
            uint16_t d, m;
            kvq_quant_group(x + gi * g, g, bits, dst + 4 * (size_t)ng + gi * gb, &d, &m);
            memcpy(dst + 4 * gi, &d, 2);
            memcpy(dst + 4 * gi + 2, &m, 2);
        }
    }
}

void kvq_load_row(const uint8_t *src, int hd, int g, int bits, float *out) {
    if (bits == 32) {
        memcpy(out, src, (size_t)hd * sizeof(float));
    } else if (bits == 16) {
        for (int i = 0; i < hd; i++) out[i] = kvq_rd16(src + 2 * i);
    } else {
        int ng = hd / g;
        size_t gb = (size_t)g * bits / 8;
        for (int gi = 0; gi < ng; gi++) {
            uint16_t d, m;
            memcpy(&d, src + 4 * gi, 2);
            memcpy(&m, src + 4 * gi + 2, 2);
            kvq_dequant_group(src + 4 * (size_t)ng + gi * gb, g, bits, d, m, out + gi * g);
        }
    }
}

// Quantizes the residual window's `residual` tokens starting at token cs (sink + a multiple of
// residual) into residual/group blocks, channel by channel.
static void quantize_chunk(kvq_cache *c, int layer, int cs) {
    const it_kv *kv = &c->base;
    int g = c->cfg.group, hd = kv->head_dim, sink = c->cfg.sink;
    size_t gb = (size_t)g * c->kbits / 8;
    float col[KVQ_MAX_GROUP];
    for (int b = (cs - sink) / g; b < (cs - sink + c->cfg.residual) / g; b++)
        for (int h = 0; h < kv->n_kv_heads; h++) {
            uint8_t *blk = (uint8_t *)kvq_k_blk(c, layer, b, h);
            for (int ch = 0; ch < hd; ch++) {
                for (int j = 0; j < g; j++) col[j] = kvq_res_row(c, layer, sink + b * g + j)[h * hd + ch];
                uint16_t d, m;
                kvq_quant_group(col, g, c->kbits, blk + 4 * (size_t)hd + ch * gb, &d, &m);
                memcpy(blk + 4 * ch, &d, 2);
                memcpy(blk + 4 * ch + 2, &m, 2);
            }
        }
}

static int is_kvq(const it_kv *kv);

int kvq_dequant_row(const it_kv *kv, int layer, int pos, int which, float *out) {
    if (!kv || !is_kvq(kv) || layer < 0 || layer >= kv->n_layers || pos < 0 || pos >= kv->n_ctx)
        return -1;
    const kvq_cache *c = (const kvq_cache *)kv;
    int hd = kv->head_dim, g = c->cfg.group, sink = c->cfg.sink;
    if (pos < sink) {
        memcpy(out, kvq_sink_row(c, layer, pos, which == 1), (size_t)kv->n_kv_heads * hd * sizeof(float));
        return 0;
    }
    if (which == 1 || !c->k_chan) {
        for (int h = 0; h < kv->n_kv_heads; h++) {
            const uint8_t *r = which == 1 ? kvq_v_row(c, layer, pos, h) : kvq_k_row(c, layer, pos, h);
            kvq_load_row(r, hd, g, which == 1 ? c->vbits : c->kbits, out + h * hd);
        }
        return 0;
    }
    if (pos >= c->n_tok[layer]) return -1;
    if (pos >= c->n_quant[layer]) {
        memcpy(out, kvq_res_row(c, layer, pos), (size_t)kv->n_kv_heads * hd * sizeof(float));
        return 0;
    }
    size_t gb = (size_t)g * c->kbits / 8;
    float col[KVQ_MAX_GROUP];
    for (int h = 0; h < kv->n_kv_heads; h++) {
        const uint8_t *blk = kvq_k_blk(c, layer, (pos - sink) / g, h);
        for (int ch = 0; ch < hd; ch++) {
            uint16_t d, m;
            memcpy(&d, blk + 4 * ch, 2);
            memcpy(&m, blk + 4 * ch + 2, 2);
            kvq_dequant_group(blk + 4 * (size_t)hd + ch * gb, g, c->kbits, d, m, col);
            out[h * hd + ch] = col[(pos - sink) % g];
        }
    }
    return 0;
}

int kvq_n_quantized(const it_kv *kv, int layer) {
    if (!kv || !is_kvq(kv) || layer < 0 || layer >= kv->n_layers) return -1;
    const kvq_cache *c = (const kvq_cache *)kv;
    int nq = c->n_quant[layer];
    return nq - (nq < c->cfg.sink ? nq : c->cfg.sink);
}

int kvq_n_residual(const it_kv *kv, int layer) {
    if (!kv || !is_kvq(kv) || layer < 0 || layer >= kv->n_layers) return -1;
    const kvq_cache *c = (const kvq_cache *)kv;
    return c->n_tok[layer] - c->n_quant[layer];
}

// Positions are written in order; storing at pos < cached length truncates first (a rewind). For
// per-channel keys a rewind into a quantized chunk moves that chunk's kept tokens back into the
// residual window dequantized (lossy), so they get quantized again with the new tokens; a rewind
// into the sinks drops every quantized chunk.
static int kvq_store(it_kv *kv, int layer, int pos, int n, const float *k, const float *v) {
    kvq_cache *c = (kvq_cache *)kv;
    if (layer < 0 || layer >= kv->n_layers || pos < kv->n_shared || n < 0 || pos + n > kv->n_ctx) return -1;
    int hd = kv->head_dim, g = c->cfg.group, r = c->cfg.residual, sink = c->cfg.sink;
    size_t kv_dim = (size_t)kv->n_kv_heads * hd;
    if (c->k_chan) {
        if (pos > c->n_tok[layer]) return -1;   // a gap would leave the window inconsistent
        if (pos < c->n_quant[layer] && pos <= sink) {
            c->n_quant[layer] = pos;
        } else if (pos < c->n_quant[layer]) {
            int cs = sink + (pos - sink) / r * r;
            float *row = kv_realloc(NULL, kv_dim * sizeof(float));
            if (!row) return KV_E_NOMEM;
            for (int p = cs; p < pos; p++) {
                kvq_dequant_row(kv, layer, p, 0, row);
                memcpy((float *)kvq_res_row(c, layer, p), row, kv_dim * sizeof(float));
            }
            free(row);
            c->n_quant[layer] = cs;
        }
    }
    for (int t = 0; t < n; t++) {
        int p = pos + t;
        if (p < sink) {   // exact, whatever the types; settled at once
            memcpy((float *)kvq_sink_row(c, layer, p, 0), k + t * kv_dim, kv_dim * sizeof(float));
            memcpy((float *)kvq_sink_row(c, layer, p, 1), v + t * kv_dim, kv_dim * sizeof(float));
            if (c->k_chan) c->n_quant[layer] = p + 1;
            continue;
        }
        for (int h = 0; h < kv->n_kv_heads; h++) {
            kvq_store_row(v + t * kv_dim + (size_t)h * hd, hd, g, c->vbits,
                      (uint8_t *)kvq_v_row(c, layer, p, h));
            if (!c->k_chan)
                kvq_store_row(k + t * kv_dim + (size_t)h * hd, hd, g, c->kbits,
                          (uint8_t *)kvq_k_row(c, layer, p, h));
        }
        if (c->k_chan) {
            memcpy((float *)kvq_res_row(c, layer, p), k + t * kv_dim, kv_dim * sizeof(float));
            if ((p + 1 - sink) % r == 0) {
                quantize_chunk(c, layer, p + 1 - r);
                c->n_quant[layer] = p + 1;
            }
        }
    }
    c->n_tok[layer] = pos + n;
    if (!c->k_chan) c->n_quant[layer] = pos + n;
    return 0;
}

static size_t kvq_bytes(const it_kv *kv, int n_tokens) {
    const kvq_cache *c = (const kvq_cache *)kv;
    size_t n = n_tokens > 0 ? (size_t)n_tokens : 0, nkv = (size_t)kv->n_kv_heads;
    size_t ns = n < (size_t)c->cfg.sink ? n : (size_t)c->cfg.sink;
    size_t shared = n < (size_t)kv->n_shared ? n : (size_t)kv->n_shared;   // not ours (sink >= n_shared)
    size_t per_layer = (ns - shared) * 2 * nkv * (size_t)kv->head_dim * sizeof(float);
    n -= ns;
    per_layer += n * nkv * c->v_row;
    if (c->k_chan) {
        size_t r = (size_t)c->cfg.residual, nq = n / r * r;
        per_layer += nq / (size_t)c->cfg.group * nkv * c->k_blk
                   + (n - nq) * nkv * (size_t)kv->head_dim * sizeof(float);
    } else {
        per_layer += n * nkv * c->k_row;
    }
    return per_layer * (size_t)kv->n_layers;
}

static void kvq_free(it_kv *kv) {
    kvq_cache *c = (kvq_cache *)kv;
    if (!c) return;
    free(c->k);
    free(c->v);
    free(c->res);
    free(c->sink_k);
    free(c->sink_v);
    free(c->n_tok);
    free(c->n_quant);
    free(c->scratch);
    free(c->deq);
    free(c);
}

// The shared rows are read as sinks (kvq_sink_row), so they must all be sinks; then positions
// 0..n-1 are cached and settled, as if stored. Detaching (n 0) empties the cache.
static int kvq_share(it_kv *kv, int n) {
    kvq_cache *c = (kvq_cache *)kv;
    if (n > c->cfg.sink) return KV_E_ARG;
    for (int l = 0; l < kv->n_layers; l++) c->n_tok[l] = c->n_quant[l] = n;
    return KV_OK;
}

static const it_kv_ops kvq_ops = {kvq_store, kvq_attend, kvq_bytes, kvq_free, kvq_share};

static int is_kvq(const it_kv *kv) { return kv->ops == &kvq_ops; }

int kvq_default_group(int head_dim) {
    for (int g = 32; g >= 8; g -= 8)
        if (head_dim > 0 && head_dim % g == 0) return g;
    return 0;
}

int kvq_group_error(int group, int given, int head_dim, char *why, size_t cap) {
    if (group >= 8 && group <= KVQ_MAX_GROUP && group % 8 == 0 && head_dim % group == 0) return 0;
    if (!given)
        snprintf(why, cap, "head dimension %d has no KV quantization group (a multiple of 8 that divides it)",
                 head_dim);
    else if (kvq_default_group(head_dim))
        snprintf(why, cap, "KV group %d does not fit head dimension %d (a group is a multiple of 8 up to %d "
                 "that divides it; the default for this model is %d)", group, head_dim, KVQ_MAX_GROUP,
                 kvq_default_group(head_dim));
    else
        snprintf(why, cap, "KV group %d does not fit head dimension %d (a group is a multiple of 8 that divides "
                 "it, and this head dimension has none)", group, head_dim);
    return -1;
}

// Applies defaults and validates; 0 if the config is usable for this head_dim, else -1 with the
// reason in why (when non-NULL).
static int resolve_config(const kvq_config *in, int head_dim, kvq_config *out, char *why, size_t cap) {
    char dummy[8];
    if (!why) why = dummy, cap = sizeof dummy;
    if (!in || head_dim <= 0) return snprintf(why, cap, "no configuration / head dimension %d", head_dim), -1;
    kvq_config c = *in;
    int kb = kvq_bits(c.k_type), vb = kvq_bits(c.v_type);
    if (!kb || !vb) return snprintf(why, cap, "unknown KV type %d", kb ? c.v_type : c.k_type), -1;
    if (c.key_axis != KVQ_PER_TOKEN && c.key_axis != KVQ_PER_CHANNEL)
        return snprintf(why, cap, "unknown key axis %d", c.key_axis), -1;
    if (c.sink < 0) return snprintf(why, cap, "negative sink %d", c.sink), -1;
    int k_chan = kb <= 8 && c.key_axis == KVQ_PER_CHANNEL;
    int along_hd = vb <= 8 || (kb <= 8 && !k_chan);   // some rows are grouped along head_dim
    int given = c.group != 0;
    if (!given) c.group = kvq_default_group(head_dim);
    if (!given && !c.group && !along_hd) c.group = 32;   // only a per-channel token block: any multiple of 8
    if (along_hd && kvq_group_error(c.group, given, head_dim, why, cap)) return -1;
    if (c.group < 8 || c.group > KVQ_MAX_GROUP || c.group % 8)
        return snprintf(why, cap, "KV group %d is not a multiple of 8 in [8, %d]", c.group, KVQ_MAX_GROUP), -1;
    if (c.residual == 0) c.residual = c.group;
    if (c.residual < c.group || c.residual % c.group)
        return snprintf(why, cap, "residual window %d is not a multiple of the group %d", c.residual, c.group), -1;
    *out = c;
    return 0;
}

int kvq_config_check(const kvq_config *cfg, int head_dim, char *why, size_t cap) {
    kvq_config c;
    return resolve_config(cfg, head_dim, &c, why, cap);
}

size_t kvq_bytes_per_token(const kvq_config *cfg, int n_kv_heads, int head_dim) {
    kvq_config c;
    if (n_kv_heads <= 0 || resolve_config(cfg, head_dim, &c, NULL, 0)) return 0;
    int kb = kvq_bits(c.k_type), vb = kvq_bits(c.v_type);
    size_t per_head = kvq_row_bytes(vb, head_dim, c.group);
    if (kb <= 8 && c.key_axis == KVQ_PER_CHANNEL) {
        size_t blk = (size_t)head_dim * (4 + (size_t)c.group * kb / 8);
        per_head += (blk + (size_t)c.group - 1) / (size_t)c.group;
    } else {
        per_head += kvq_row_bytes(kb, head_dim, c.group);
    }
    return per_head * (size_t)n_kv_heads;
}

it_kv *kv_quant_new(int n_layers, int n_ctx, int n_heads, int n_kv_heads, int head_dim,
                    const kvq_config *cfg) {
    kvq_config rc;
    if (n_layers <= 0 || n_ctx <= 0 || n_heads <= 0 || n_kv_heads <= 0 || n_heads % n_kv_heads ||
        resolve_config(cfg, head_dim, &rc, NULL, 0) || rc.sink > n_ctx)
        return NULL;
    kvq_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    it_kv b = {&kvq_ops, n_layers, n_ctx, n_heads, n_kv_heads, head_dim, NULL, NULL, NULL, 0};
    c->base = b;
    c->cfg = rc;
    c->kbits = kvq_bits(rc.k_type);
    c->vbits = kvq_bits(rc.v_type);
    c->k_chan = c->kbits <= 8 && rc.key_axis == KVQ_PER_CHANNEL;
    c->v_row = kvq_row_bytes(c->vbits, head_dim, rc.group);
    size_t rows = (size_t)n_layers * n_ctx * n_kv_heads;
    c->v = malloc(rows * c->v_row);
    if (c->k_chan) {
        c->n_blk = (n_ctx - rc.sink) / rc.group;
        c->k_blk = (size_t)head_dim * (4 + (size_t)rc.group * c->kbits / 8);
        c->k = malloc((size_t)n_layers * c->n_blk * n_kv_heads * c->k_blk + 1);
        c->res = malloc((size_t)n_layers * rc.residual * n_kv_heads * head_dim * sizeof(float));
    } else {
        c->k_row = kvq_row_bytes(c->kbits, head_dim, rc.group);
        c->k = malloc(rows * c->k_row);
    }
    size_t sink_f = (size_t)n_layers * rc.sink * n_kv_heads * head_dim + 1;
    c->sink_k = malloc(sink_f * sizeof(float));
    c->sink_v = malloc(sink_f * sizeof(float));
    c->n_tok = calloc((size_t)n_layers, sizeof(int));
    c->n_quant = calloc((size_t)n_layers, sizeof(int));
    if (!c->k || !c->v || (c->k_chan && !c->res) || !c->sink_k || !c->sink_v || !c->n_tok || !c->n_quant) {
        kvq_free(&c->base);
        return NULL;
    }
    return &c->base;
}
