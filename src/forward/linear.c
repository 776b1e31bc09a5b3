// The layer linears of the forward pass. Decode of integer weights takes the int8-activation GEMV
// (kernels/iqdec.h; intact_decode_act). Optional activation quantization (intact_act_quant):
// per-token symmetric INT8/INT4 inputs. Integer weights of 4 or 8 bits go through the integer
// kernels (kernels/iqmatmul.h: int32 dot products per weight group, one float rescale per group);
// any other weight type — or fake = 1, the research twin — multiplies the quantized-dequantized
// floats with the float kernels. Both paths see the same integer activations, so they agree within
// float rounding (a test holds them to it).
#include "forward/forward.h"

#include "core/error.h"
#include "formats/qformat.h"
#include "kernels/ggdec.h"
#include "kernels/iqdec.h"
#include "kernels/iqgemm.h"
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

static int decode_act_check(int mode, intact_error *err) {
    if (mode != INTACT_DECODE_ACT_INT8 && mode != INTACT_DECODE_ACT_EXACT && mode != INTACT_DECODE_ACT_INT8_ALL)
        return it_fail(err, INTACT_E_ARG, "decode activation mode %d (0 int8, 1 exact, 2 int8 at every batch size)", mode);
    return 0;
}

int intact_model_set_decode_act(intact_model *m, int mode, intact_error *err) {
    if (!m) return it_fail(err, INTACT_E_ARG, "no model");
    if (decode_act_check(mode, err)) return -1;
    m->aq.dec = mode;
    return 0;
}

int intact_ctx_set_decode_act(intact_ctx *c, int mode, intact_error *err) {
    if (!c) return it_fail(err, INTACT_E_ARG, "no context");
    if (decode_act_check(mode, err)) return -1;
    c->aq.dec = mode;
    return 0;
}

enum { FWD_INT_MIN_ROWS = 4, FWD_DQ_MAX_ROWS = 3 };

static int all_ours(int nw, const it_tensor *const *w) {
    qf_spec s;
    for (int i = 0; i < nw; i++)
        if (qf_spec_of(w[i]->type, &s)) return 0;
    return 1;
}

static void float_linear(intact_ctx *c, int nw, const it_tensor *const *w, float *x, int n, float *const *y) {
    if (nw == 1) kern_matmul(c->pool, w[0], x, n, y[0]);
    else kern_matmul_group(c->pool, nw, w, x, n, y);
}

// ggml's Q4_0 / Q8_0 / Q4_K / Q6_K: the same int8 activations through the ggml decode GEMV
// (kernels/ggdec.h) at 1..3 tokens and through its row-blocked prefill driver above, bit-identical
// per output, so prefill computes what decode does. --exact-act keeps the float kernels.
static int ggml_int8(intact_ctx *c, int nw, const it_tensor *const *w, float *x, int n, float *const *y) {
    if (c->aq.dec == INTACT_DECODE_ACT_EXACT || !kern_dq_fast()) return 0;
    for (int i = 0; i < nw; i++)
        if (!ggdec_supported(w[i]->type)) return 0;
    if (kern_dq_quantize(&c->dq, x, n, w[0]->ne[0])) return 0;
    if (n <= FWD_DQ_MAX_ROWS) kern_matmul_ggdec_group(c->pool, nw, w, &c->dq, y);
    else kern_matmul_ggdg_group(c->pool, nw, w, &c->dq, y);
    return 1;
}

// Without activation quantization: our integer weights take int8 activations at every batch size
// (INT8, the default; INT8_ALL is the same): 1..3 tokens through the decode GEMV, more through its
// cache-blocked prefill driver (kernels/iqgemm.h), bit-identical per output, so prefill sees what
// decode computes (and llama.cpp's Q8 activations likewise). --exact-act (EXACT) and a CPU without
// AVX2 keep the float kernels.
static void plain_linear(intact_ctx *c, int nw, const it_tensor *const *w, float *x, int n, float *const *y) {
    const int dec = c->aq.dec;
    if (ggml_int8(c, nw, w, x, n, y)) return;
    if (dec != INTACT_DECODE_ACT_EXACT && kern_dq_fast() && all_ours(nw, w) && kern_dq_quantize(&c->dq, x, n, w[0]->ne[0]) == 0) {
        if (n <= FWD_DQ_MAX_ROWS) kern_matmul_dq_group(c->pool, nw, w, &c->dq, y);
        else kern_matmul_dqg_group(c->pool, nw, w, &c->dq, y);
        return;
    }
    float_linear(c, nw, w, x, n, y);
}

static int integer_path(const it_tensor *w) {
    qf_spec s;
    return qf_spec_of(w->type, &s) == 0 && (s.bits == 4 || s.bits == 8);
}

void fwd_linear_group(intact_ctx *c, int nw, const it_tensor *const *w, float *x, int n, float *const *y) {
    const it_act_quant *aq = &c->aq;
    if (aq->bits == 16) {
        plain_linear(c, nw, w, x, n, y);
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

void fwd_linear_head(intact_ctx *c, const it_tensor *w, float *x, int n, float *y) {
    plain_linear(c, 1, &w, x, n, &y);
}
