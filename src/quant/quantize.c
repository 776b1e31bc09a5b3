// Weight quantization driver: layer by layer, as the GPTQ and AWQ references do. For layer l the
// calibration sequences run through the model whose layers < l are already quantized (the forward
// stops after layer l), an observer collects what each linear layer of layer l sees as input, and
// the seven matrices of layer l are quantized and swapped in before moving on.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/fp16.h"
#include "formats/qformat.h"
#include "forward/forward.h"
#include "quant/gptq.h"
#include "quant/quant_internal.h"
#include "quant/rotate.h"
#include "quant/rtn.h"

intact_quant_params intact_quant_default_params(void) {
    intact_quant_params p;
    memset(&p, 0, sizeof p);
    p.method = "rtn";
    p.bits = 4;
    p.group = 128;
    p.calib_samples = 128;
    p.calib_tokens = 512;
    p.n_threads = 1;
    p.rotate_seed = 0x5eed;
    return p;
}

// The matrices of a layer in the order their inputs appear, with the input each one reads.
static int layer_matrices(it_layer *ly, it_tensor **t, int *input) {
    it_tensor *all[IT_LAYER_NMAT] = IT_LAYER_MATRICES(ly);
    static const int in[IT_LAYER_NMAT] = {QI_ATTN_NORM, QI_ATTN_NORM, QI_ATTN_NORM, QI_WO_IN, QI_FFN_NORM, QI_FFN_NORM,
                              QI_DOWN_IN};
    for (int i = 0; i < IT_LAYER_NMAT; i++) {
        t[i] = all[i];
        input[i] = in[i];
    }
    return IT_LAYER_NMAT;
}

// fp32 copy of a stored matrix (n_out rows of n_in).
static float *matrix_to_f32(const it_tensor *t) {
    int64_t n_in = t->ne[0], n_out = t->ne[1];
    float *w = malloc((size_t)(n_in * n_out) * sizeof *w);
    if (!w) return NULL;
    const fmt_traits *tr = fmt_get(t->type);
    size_t row = fmt_row_bytes(t->type, n_in);
    for (int64_t r = 0; r < n_out; r++) tr->to_float((const char *)t->data + (size_t)r * row, w + r * n_in, n_in);
    return w;
}

// Swaps the quantized result into the model: packed blocks, or their exact fp32 dequantization.
static int install(intact_model *m, it_tensor *t, const qgrid *g, void *packed, int fake) {
    int64_t n_in = t->ne[0], n_out = t->ne[1];
    size_t row = qgrid_row_bytes(g, n_in);
    if (fake) {
        float *w = model_alloc(m, (size_t)(n_in * n_out) * sizeof *w);
        if (!w) return -1;
        for (int64_t r = 0; r < n_out; r++) qgrid_dequantize_row(g, (char *)packed + (size_t)r * row, w + r * n_in, n_in);
        t->type = IT_TYPE_F32;
        t->data = w;
        t->nbytes = (size_t)(n_in * n_out) * sizeof *w;
    } else {
        t->type = g->type;
        t->data = packed;
        t->nbytes = row * (size_t)n_out;
    }
    return 0;
}

const qgrid *quant_grid_for(const quant_run *q, int64_t n_in) {
    if (n_in % q->grid.block == 0) return &q->grid;
    if (q->fallback.type && n_in % q->fallback.block == 0) return &q->fallback;
    return NULL;
}

static void note_name(char *list, size_t cap, int layer, const char *name) {
    char s[48];
    snprintf(s, sizeof s, "%sblk.%d.%s", list[0] ? "," : "", layer, name);
    if (strlen(list) + strlen(s) < cap) strcat(list, s);
}

static int quantize_layer(quant_run *q, int l) {
    intact_model *m = q->m;
    it_layer *ly = &m->layers[l];
    it_tensor *t[IT_LAYER_NMAT];
    int input[IT_LAYER_NMAT];
    int n = layer_matrices(ly, t, input);
    if (q->method == QM_AWQ && quant_awq_scale_layer(q, l) != 0) return -1;
    for (int i = 0; i < n; i++) {
        int64_t n_in = t[i]->ne[0], n_out = t[i]->ne[1];
        const qgrid *g = quant_grid_for(q, n_in);
        if (!g) {
            q->rep->n_kept++;
            note_name(q->rep->kept, sizeof q->rep->kept, l, it_layer_matrix_names[i]);
            continue;
        }
        if (g == &q->fallback) q->rep->n_fallback++;
        float *w = matrix_to_f32(t[i]);
        size_t row = qgrid_row_bytes(g, n_in);
        void *packed = model_alloc(m, row * (size_t)n_out);
        if (!w || !packed) {
            free(w);
            return it_fail(q->err, INTACT_E_NOMEM, "out of memory quantizing blk.%d.%s", l, it_layer_matrix_names[i]);
        }
        int rc = 0;
        if (q->method == QM_GPTQ) {
            gptq_opts o = gptq_default_opts();
            o.act_order = q->p->act_order;
            rc = gptq_quantize_grid(g, w, n_out, n_in, q->stats[input[i]].h.H, &o, packed, q->pool, q->err);
        } else if (q->method == QM_AWQ) {
            rc = quant_awq_matrix(q, input[i], w, n_out, n_in, packed);
        } else {
            rc = rtn_quantize_matrix_grid(g, w, n_out, n_in, q->p->clip_search, packed, NULL, q->pool, q->err);
        }
        free(w);
        if (rc != 0) return -1;
        if (install(m, t[i], g, packed, q->p->fake) != 0)
            return it_fail(q->err, INTACT_E_NOMEM, "out of memory");
        q->rep->n_quantized++;
        q->q_weights += (double)n_in * (double)n_out;
        q->q_bits += 8.0 * (double)row * (double)n_out;
    }
    return 0;
}

// llama-quantize's fallback for k-quant rows that are not whole super-blocks.
static int kquant_fallback(int type) {
    return type == IT_TYPE_Q4_K ? IT_TYPE_Q5_0 : type == IT_TYPE_Q6_K ? IT_TYPE_Q8_0 : 0;
}

// The output head or the embedding stored as `type`: float conversion, or RTN on the type's grid
// (its k-quant fallback when the rows are not whole super-blocks), as llama-quantize does.
static int quantize_head(quant_run *q, it_tensor *t, int type, const char *what) {
    int64_t n_in = t->ne[0], n_out = t->ne[1];
    qgrid g;
    int is_float = type == IT_TYPE_F32 || type == IT_TYPE_F16 || type == IT_TYPE_BF16;
    if (!is_float) {
        if (qgrid_init(&g, type) != 0) return it_fail(q->err, INTACT_E_ARG, "%s: type %d is not writable", what, type);
        if (n_in % g.block && kquant_fallback(type)) qgrid_init(&g, kquant_fallback(type));
        if (n_in % g.block)
            return it_fail(q->err, INTACT_E_ARG, "%s: rows of %lld are not whole %s blocks", what, (long long)n_in, g.name);
    }
    float *w = matrix_to_f32(t);
    size_t row = fmt_row_bytes(is_float ? type : g.type, n_in);
    void *dst = model_alloc(q->m, row * (size_t)n_out);
    if (!w || !dst) {
        free(w);
        return it_fail(q->err, INTACT_E_NOMEM, "out of memory quantizing %s", what);
    }
    int rc = 0;
    if (is_float) {
        for (int64_t i = 0; i < n_in * n_out; i++) {
            char *o = (char *)dst + (size_t)i * (type == IT_TYPE_F32 ? 4 : 2);
            uint16_t h = type == IT_TYPE_F16 ? it_f32_to_fp16(w[i]) : it_f32_to_bf16(w[i]);
            if (type == IT_TYPE_F32) memcpy(o, &w[i], 4);
            else memcpy(o, &h, 2);
        }
    } else {
        rc = rtn_quantize_matrix_grid(&g, w, n_out, n_in, 0, dst, NULL, q->pool, q->err);
    }
    free(w);
    if (rc) return -1;
    t->type = is_float ? type : g.type;
    t->data = dst;
    t->nbytes = row * (size_t)n_out;
    return 0;
}

static int quantize_heads(quant_run *q) {
    intact_model *m = q->m;
    const intact_quant_params *p = q->p;
    int ot = qgrid_head_type(p->output_type), et = qgrid_head_type(p->embd_type);
    if (p->embd_type && quantize_head(q, &m->tok_embd, et, "token_embd.weight") != 0) return -1;
    if (!p->output_type) {
        if (m->tied) m->output = m->tok_embd;   // still the embedding, now in its new type
        return 0;
    }
    if (m->tied && p->embd_type && et == ot) {
        m->output = m->tok_embd;               // same type: stays tied, one tensor in the file
        return 0;
    }
    if (m->tied) {
        // Untie: the head gets its own tensor (from the embedding's full-precision values when the
        // embedding was not re-typed, else from its source, which m->output still points at).
        m->tied = 0;
        m->output.name = "output.weight";
    }
    return quantize_head(q, &m->output, ot, "output.weight");
}

static int parse_method(const char *s, int *out, intact_error *err) {
    if (!s || !strcmp(s, "rtn")) *out = QM_RTN;
    else if (!strcmp(s, "gptq")) *out = QM_GPTQ;
    else if (!strcmp(s, "awq")) *out = QM_AWQ;
    else return it_fail(err, INTACT_E_ARG, "unknown quantization method '%s' (rtn, gptq, awq)", s);
    return 0;
}

int intact_model_quantize(intact_model *m, const intact_quant_params *p, intact_quant_report *rep,
                          intact_error *err) {
    quant_run q;
    memset(&q, 0, sizeof q);
    intact_quant_report local;
    q.m = m;
    q.p = p;
    q.err = err;
    q.rep = rep ? rep : &local;
    memset(q.rep, 0, sizeof *q.rep);
    q.spec.bits = p->bits;
    q.spec.group = p->group;
    q.spec.sym = p->sym;
    int type;
    // rotate with no method only rotates; a NULL method alone still means rtn, as it always did.
    int rotate_only = p->rotate && !p->method;
    if (!rotate_only && parse_method(p->method, &q.method, err) != 0) return -1;
    if (!rotate_only && p->format) {
        if ((type = qgrid_ggml_type(p->format)) < 0)
            return it_fail(err, INTACT_E_ARG, "unknown format '%s' (q4_0, q4_1, q8_0, q4_k, q6_k)", p->format);
        qgrid_init(&q.grid, type);
        if (kquant_fallback(type)) qgrid_init(&q.fallback, kquant_fallback(type));
    } else if (!rotate_only && (qf_type_of(&q.spec, &type) != 0 || qgrid_init(&q.grid, type) != 0)) {
        return it_fail(err, INTACT_E_ARG, "unsupported format: %d bits, group %d (bits 2/3/4/8, group 32/64/128)",
                       p->bits, p->group);
    }
    if ((p->output_type && qgrid_head_type(p->output_type) < 0) || (p->embd_type && qgrid_head_type(p->embd_type) < 0))
        return it_fail(err, INTACT_E_ARG, "unknown %s type '%s' (f32, f16, bf16, q4_0, q4_1, q8_0, q4_k, q6_k, int8_g32, int4_g128, ...)",
                       p->output_type && qgrid_head_type(p->output_type) < 0 ? "output" : "embedding",
                       p->output_type && qgrid_head_type(p->output_type) < 0 ? p->output_type : p->embd_type);
    if (m->quant.method[0])
        return it_fail(err, INTACT_E_ARG, "the model is already quantized (%s)", m->quant.method);
    // Quantizing quantized weights compounds two rounding errors; like llama-quantize, refuse
    // (`intact quantize --allow-requantize` dequantizes to f32 first, explicitly).
    for (int l = 0; !rotate_only && l < m->hp.n_layers; l++) {
        it_tensor *t[IT_LAYER_NMAT];
        int input[IT_LAYER_NMAT];
        for (int i = 0, n = layer_matrices(&m->layers[l], t, input); i < n; i++) {
            int ty = t[i]->type;
            if (ty != IT_TYPE_F32 && ty != IT_TYPE_F16 && ty != IT_TYPE_BF16)
                return it_fail(err, INTACT_E_ARG, "blk.%d.%s.weight is already quantized (%s); quantize the "
                               "full-precision model", l, it_layer_matrix_names[i], fmt_get(ty)->name);
        }
    }
    double t0 = it_now_s();
    q.rep->bytes_before = m->weight_bytes;
    // Rotation first: the quantizers (and GPTQ/AWQ calibration) see the rotated weights and inputs.
    if (p->rotate && rot_model(m, p->rotate_seed, p->n_threads, err) != 0) return -1;
    if (rotate_only) {
        q.rep->bytes_after = m->weight_bytes;
        q.rep->seconds = it_now_s() - t0;
        return 0;
    }
    int rc = quant_run_begin(&q);
    for (int l = 0; rc == 0 && l < m->hp.n_layers; l++) {
        if (q.method != QM_RTN) rc = quant_collect(&q, l);
        if (rc == 0) rc = quantize_layer(&q, l);
        quant_stats_clear(&q);
        if (rc == 0 && p->progress) p->progress(p->progress_user, l + 1, m->hp.n_layers);
    }
    if (rc == 0 && (p->output_type || p->embd_type)) rc = quantize_heads(&q);
    quant_run_end(&q);
    if (rc != 0) return -1;
    if (model_refresh_tensor_list(m) != 0) return it_fail(err, INTACT_E_NOMEM, "out of memory");
    if (q.rep->n_fallback) snprintf(q.rep->fallback_type, sizeof q.rep->fallback_type, "%s", q.fallback.name);
    snprintf(m->quant.format, sizeof m->quant.format, "%s", p->format ? q.grid.name : "");
    snprintf(m->quant.method, sizeof m->quant.method, "%s", p->method ? p->method : "rtn");
    m->quant.bits = p->bits;
    m->quant.group = p->group;
    m->quant.sym = p->sym;
    q.rep->bytes_after = m->weight_bytes;
    q.rep->bits_per_weight = q.q_weights > 0 ? q.q_bits / q.q_weights : 0;
    q.rep->seconds = it_now_s() - t0;
    return 0;
}
