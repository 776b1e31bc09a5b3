// Float-type conversion of the weight matrices; see convert.h.
#include "quant/convert.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fp16.h"
#include "formats/formats.h"
#include "model/model.h"

int quant_outtype_parse(const char *s) {
    if (!s) return -1;
    if (!strcmp(s, "f32")) return IT_TYPE_F32;
    if (!strcmp(s, "f16")) return IT_TYPE_F16;
    if (!strcmp(s, "bf16")) return IT_TYPE_BF16;
    return -1;
}

static int is_float_type(int t) { return t == IT_TYPE_F32 || t == IT_TYPE_F16 || t == IT_TYPE_BF16; }

// One matrix, row by row through fp32 (exact for every float source type and every dequantization).
static int convert_one(intact_model *m, it_tensor *t, int type, int deq, const char *what, intact_error *err) {
    if (t->type == type || (!deq && !is_float_type(t->type))) return 0;
    int64_t n_in = t->ne[0], n_out = t->ne[1];
    size_t row_in = fmt_row_bytes(t->type, n_in), row_out = fmt_row_bytes(type, n_in);
    void *dst = model_alloc(m, row_out * (size_t)n_out);
    float *buf = malloc((size_t)n_in * sizeof *buf);
    if (!dst || !buf) {
        free(buf);
        return it_fail(err, INTACT_E_NOMEM, "out of memory converting %s", what);
    }
    const fmt_traits *tr = fmt_get(t->type);
    for (int64_t r = 0; r < n_out; r++) {
        tr->to_float((const char *)t->data + (size_t)r * row_in, buf, n_in);
        char *o = (char *)dst + (size_t)r * row_out;
        for (int64_t i = 0; i < n_in; i++) {
            if (type == IT_TYPE_F32) {
                memcpy(o + 4 * i, &buf[i], 4);
                continue;
            }
            uint16_t h;
            if (type == IT_TYPE_F16) {
                // F16 tops out at 65504: a larger weight would silently become infinity.
                if (isfinite(buf[i]) && fabsf(buf[i]) > 65504.0f) {
                    double big = buf[i];
                    free(buf);
                    return it_fail(err, INTACT_E_ARG, "%s has a weight %g beyond f16's range (use bf16 or f32)",
                                   what, big);
                }
                h = it_f32_to_fp16(buf[i]);
            } else {
                h = it_f32_to_bf16(buf[i]);
            }
            memcpy(o + 2 * i, &h, 2);
        }
    }
    free(buf);
    t->type = type;
    t->data = dst;
    t->nbytes = row_out * (size_t)n_out;
    return 1;
}

int quant_convert_model(intact_model *m, int type, int dequantize, int *n_converted, intact_error *err) {
    if (!is_float_type(type)) return it_fail(err, INTACT_E_ARG, "output type %d is not f32, f16 or bf16", type);
    int count = 0, rc;
    if ((rc = convert_one(m, &m->tok_embd, type, dequantize, "token_embd.weight", err)) < 0) return -1;
    count += rc;
    if (m->tied) {
        m->output.type = m->tok_embd.type;   // the head is the embedding: same bytes, its own name
        m->output.data = m->tok_embd.data;
        m->output.nbytes = m->tok_embd.nbytes;
    } else {
        if ((rc = convert_one(m, &m->output, type, dequantize, "output.weight", err)) < 0) return -1;
        count += rc;
    }
    static const char *const names[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up",
                                         "ffn_down"};
    for (int l = 0; l < m->hp.n_layers; l++) {
        it_layer *ly = &m->layers[l];
        it_tensor *t[7] = {&ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->w_gate, &ly->w_up, &ly->w_down};
        for (int i = 0; i < 7; i++) {
            char what[64];
            snprintf(what, sizeof what, "blk.%d.%s.weight", l, names[i]);
            if ((rc = convert_one(m, t[i], type, dequantize, what, err)) < 0) return -1;
            count += rc;
        }
    }
    if (model_refresh_tensor_list(m) != 0) return it_fail(err, INTACT_E_NOMEM, "out of memory");
    if (n_converted) *n_converted = count;
    return 0;
}
