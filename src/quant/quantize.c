// Weight quantization driver: layer by layer, as the GPTQ and AWQ references do. For layer l the
// calibration sequences run through the model whose layers < l are already quantized (the forward
// stops after layer l), an observer collects what each linear layer of layer l sees as input, and
// the seven matrices of layer l are quantized and swapped in before moving on.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
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
static int install(intact_model *m, it_tensor *t, const qf_spec *s, void *packed, int fake) {
    int type;
    qf_type_of(s, &type);
    int64_t n_in = t->ne[0], n_out = t->ne[1];
    size_t row = (size_t)(n_in / s->group) * qf_block_bytes(s);
    if (fake) {
        float *w = model_alloc(m, (size_t)(n_in * n_out) * sizeof *w);
        if (!w) return -1;
        for (int64_t r = 0; r < n_out; r++) qf_dequantize_row(s, (char *)packed + (size_t)r * row, w + r * n_in, n_in);
        t->type = IT_TYPE_F32;
        t->data = w;
        t->nbytes = (size_t)(n_in * n_out) * sizeof *w;
    } else {
        t->type = type;
        t->data = packed;
        t->nbytes = row * (size_t)n_out;
    }
    return 0;
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
        if (n_in % q->spec.group) {
            q->rep->n_kept++;
            char name[48];
            snprintf(name, sizeof name, "%sblk.%d.%s", q->rep->kept[0] ? "," : "", l, it_layer_matrix_names[i]);
            if (strlen(q->rep->kept) + strlen(name) < sizeof q->rep->kept) strcat(q->rep->kept, name);
            continue;
        }
        float *w = matrix_to_f32(t[i]);
        size_t row = (size_t)(n_in / q->spec.group) * qf_block_bytes(&q->spec);
        void *packed = model_alloc(m, row * (size_t)n_out);
        if (!w || !packed) {
            free(w);
            return it_fail(q->err, INTACT_E_NOMEM, "out of memory quantizing blk.%d.%s", l, it_layer_matrix_names[i]);
        }
        int rc = 0;
        if (q->method == QM_GPTQ) {
            gptq_opts o = gptq_default_opts();
            o.act_order = q->p->act_order;
            rc = gptq_quantize(&q->spec, w, n_out, n_in, q->stats[input[i]].h.H, &o, packed, q->pool, q->err);
        } else if (q->method == QM_AWQ) {
            rc = quant_awq_matrix(q, input[i], w, n_out, n_in, packed);
        } else {
            rc = rtn_quantize_matrix(&q->spec, w, n_out, n_in, q->p->clip_search, packed, NULL, q->pool, q->err);
        }
        free(w);
        if (rc != 0) return -1;
        if (install(m, t[i], &q->spec, packed, q->p->fake) != 0)
            return it_fail(q->err, INTACT_E_NOMEM, "out of memory");
        q->rep->n_quantized++;
        q->q_weights += (double)n_in * (double)n_out;
        q->q_bits += 8.0 * (double)row * (double)n_out;
    }
    return 0;
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
    if (!rotate_only && qf_type_of(&q.spec, &type) != 0)
        return it_fail(err, INTACT_E_ARG, "unsupported format: %d bits, group %d (bits 2/3/4/8, group 32/64/128)",
                       p->bits, p->group);
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
    quant_run_end(&q);
    if (rc != 0) return -1;
    if (model_refresh_tensor_list(m) != 0) return it_fail(err, INTACT_E_NOMEM, "out of memory");
    snprintf(m->quant.method, sizeof m->quant.method, "%s", p->method ? p->method : "rtn");
    m->quant.bits = p->bits;
    m->quant.group = p->group;
    m->quant.sym = p->sym;
    q.rep->bytes_after = m->weight_bytes;
    q.rep->bits_per_weight = q.q_weights > 0 ? q.q_bits / q.q_weights : 0;
    q.rep->seconds = it_now_s() - t0;
    return 0;
}
