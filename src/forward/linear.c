// The layer linears of the forward pass, with optional activation quantization (intact_act_quant):
// per-token symmetric INT8/INT4 inputs. Integer weights of 4 or 8 bits go through the integer
// kernels (kernels/iqmatmul.h: int32 dot products per weight group, one float rescale per group);
// any other weight type — or fake = 1, the research twin — multiplies the quantized-dequantized
// floats with the float kernels. Both paths see the same integer activations, so they agree within
// float rounding (a test holds them to it).
#include "forward/forward.h"

#include "core/error.h"
#include "formats/qformat.h"
#include "kernels/iqmatmul.h"
#include "kernels/matmul.h"

static int act_quant_parse(const intact_act_quant *a, it_act_quant *out, intact_error *err) {
    int bits = a ? a->bits : 16;
    float clip = a && a->clip != 0 ? a->clip : 1.0f;
    if (bits != 16 && bits != 8 && bits != 4)
        return it_fail(err, INTACT_E_ARG, "activation bits %d (8, 4, or 16 for none)", bits);
    if (!(clip > 0 && clip <= 1)) return it_fail(err, INTACT_E_ARG, "activation clip %g not in (0, 1]", (double)clip);
    out->bits = bits;
    out->clip = clip;
    out->fake = a ? a->fake != 0 : 0;
    return 0;
}

int intact_model_set_act_quant(intact_model *m, const intact_act_quant *a, intact_error *err) {
    return act_quant_parse(a, &m->aq, err);
}

int intact_ctx_set_act_quant(intact_ctx *c, const intact_act_quant *a, intact_error *err) {
    return act_quant_parse(a, &c->aq, err);
}

enum { FWD_INT_MIN_ROWS = 4 };

static int integer_path(const it_tensor *w) {
    qf_spec s;
    return qf_spec_of(w->type, &s) == 0 && (s.bits == 4 || s.bits == 8);
}

void fwd_linear_group(intact_ctx *c, int nw, const it_tensor *const *w, float *x, int n, float *const *y) {
    const it_act_quant *aq = &c->aq;
    if (aq->bits == 16) {
        if (nw == 1) kern_matmul(c->pool, w[0], x, n, y[0]);
        else kern_matmul_group(c->pool, nw, w, x, n, y);
        return;
    }
    int64_t n_in = w[0]->ne[0];
    // Decode (a few rows) is bandwidth-bound and the integer GEMV is slower than the float one there
    // (horizontal sums and scale gathers per row, see kernels/iqmatmul.h), so small batches take the
    // float kernel over the same quantized activations; prefill gets the integer GEMM.
    int ints = !aq->fake && n >= FWD_INT_MIN_ROWS;
    for (int i = 0; i < nw; i++) ints = ints && integer_path(w[i]);
    if (ints && kern_actq_quantize(&c->actq, x, n, n_in, aq->bits, aq->clip) == 0) {
        if (nw == 1) kern_matmul_iq(c->pool, w[0], &c->actq, y[0]);
        else kern_matmul_iq_group(c->pool, nw, w, &c->actq, y);
        return;
    }
    // x is the layer's scratch input and nothing reads it after this linear: quantize in place.
    kern_actq_fake(x, n, n_in, aq->bits, aq->clip, x);
    if (nw == 1) kern_matmul(c->pool, w[0], x, n, y[0]);
    else kern_matmul_group(c->pool, nw, w, x, n, y);
}
