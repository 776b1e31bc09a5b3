// End to end: models quantized in memory to ggml's Q4_0 / Q8_0 / Q4_K / Q6_K (k-quant fallbacks
// and a quantized output head included) give the same logits when a prompt is evaluated as one
// prefill batch (int8 activations through kernels/ggdec.h's row-blocked prefill driver) as when it
// is fed one token at a time (the decode GEMV): exactly (the float-activation path, --exact-act,
// agrees with itself only within 1e-5, and with the int8 path only within the activation
// quantization error, which the test checks is large: it fails if prefill leaves the int8 kernels).
#include <math.h>
#include <stdint.h>

#include "harness.h"
#include "intact.h"

enum { NTOK = 11 };
static const int32_t k_toks[NTOK] = {1, 291, 282, 276, 419, 292, 377, 336, 351, 265, 404};
static intact_error err;

// Worst |difference| over every position's logits, prefill (mode_p) vs token by token (mode_d),
// relative to the largest |logit|; -1 on error.
static double compare(intact_model *m, int mode_p, int mode_d, int nv) {
    intact_ctx_params cp = {64, 2, 1};
    intact_ctx *a = intact_ctx_new(m, &cp, &err), *b = intact_ctx_new(m, &cp, &err);
    double worst = -1, scale = 0;
    if (a && b && !intact_ctx_set_decode_act(a, mode_p, &err) && !intact_ctx_set_decode_act(b, mode_d, &err) &&
        intact_ctx_eval(a, k_toks, NTOK, &err) == 0) {
        worst = 0;
        for (int t = 0; t < NTOK && worst >= 0; t++) {
            if (intact_ctx_eval(b, &k_toks[t], 1, &err)) {
                worst = -1;
                break;
            }
            const float *la = intact_ctx_logits(a, t), *lb = intact_ctx_logits(b, 0);
            for (int v = 0; v < nv; v++) {
                double d = fabs((double)la[v] - lb[v]);
                if (!isfinite(d)) d = INFINITY;
                worst = d > worst ? d : worst;
                scale = fabs(la[v]) > scale ? fabs(la[v]) : scale;
            }
        }
    }
    intact_ctx_free(a);
    intact_ctx_free(b);
    return worst < 0 ? -1 : worst / (scale > 1 ? scale : 1);
}

static void check_model(const char *path, const char *format, const char *head) {
    char name[256];
    snprintf(name, sizeof name, "%s as %s (head %s): prefill == token-by-token decode", path, format, head);
    TEST_CASE(name) {
        char full[1024], tok[1024];
        th_shared(path, full, sizeof full);
        th_shared("models/tok512.bin", tok, sizeof tok);
        intact_model *m = intact_model_load(full, tok, &err);
        CHECK(m, "load: %s", err.msg);
        if (!m) break;
        intact_quant_params qp = intact_quant_default_params();
        qp.format = format;
        qp.output_type = head;
        CHECK(intact_model_quantize(m, &qp, NULL, &err) == 0, "quantize: %s", err.msg);
        intact_model_info in;
        intact_model_get_info(m, &in);
        double same = compare(m, INTACT_DECODE_ACT_INT8, INTACT_DECODE_ACT_INT8, in.n_vocab);
        double exact = compare(m, INTACT_DECODE_ACT_EXACT, INTACT_DECODE_ACT_EXACT, in.n_vocab);
        double mixed = compare(m, INTACT_DECODE_ACT_EXACT, INTACT_DECODE_ACT_INT8, in.n_vocab);
        printf("  int8 prefill vs int8 decode %.3g, exact vs exact %.3g, exact prefill vs int8 decode %.3g\n", same,
               exact, mixed);
        // The int8 linears are bit-identical per (row, token) and attention computes each row as
        // decode does, so the logits are equal; the float path differs at float rounding (GEMM vs
        // GEMV summation order), as the exact pair shows.
        const double tol = 1e-5;
        CHECK(same == 0, "int8 prefill vs decode: %g", same);
        CHECK(exact >= 0 && exact <= tol, "exact prefill vs decode: %g", exact);
        CHECK(mixed > 10 * tol, "the float path is indistinguishable (%g): the test could not fail", mixed);
        intact_model_free(m);
    }
}

int main(void) {
    if (th_skip_program("test_ggml_prefill", "models/english-1m.bin", "models/english-12m.bin", "models/tok512.bin",
                        NULL))
        return 0;
    check_model("models/english-1m.bin", "q4_0", "q8_0");
    check_model("models/english-1m.bin", "q8_0", "q4_0");
    // dim 384: q, k, v, o, gate, up fall back (q4_k -> q5_0, float kernels; q6_k -> q8_0); the down
    // projection (n_in 1024) is Q4_K / Q6_K.
    check_model("models/english-12m.bin", "q4_k", "q8_0");
    check_model("models/english-12m.bin", "q6_k", "q4_0");
    return th_finish("test_ggml_prefill");
}
