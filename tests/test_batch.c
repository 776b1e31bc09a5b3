// Batched decode (intact_ctx_eval_batch): n sessions at different positions, one token each per
// step, against the same steps run one context at a time with intact_ctx_eval. The reference is
// the per-context eval (itself held to the python reference by test_reference.c). Both sides are
// fed the same tokens (the reference's greedy choice), so they stay on one trajectory.
#include <stdint.h>

#include "harness.h"
#include "intact.h"

enum { NS = 5, STEPS = 12, NV = 512, NCTX = 64 };

static char g_st[1024], g_tok[1024];
static intact_error err;

// Prompts of different lengths: the sessions sit at different positions.
static const int32_t k_prompt[] = {1, 291, 282, 276, 419, 292, 377, 336, 351, 265, 404};
static const int k_plen[NS] = {1, 3, 7, 11, 5};

static intact_model *load(void) {
    intact_model *m = intact_model_load(g_st, g_tok, &err);
    if (!m) printf("  load: %s\n", err.msg);
    return m;
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++) b = x[i] > x[b] ? i : b;
    return b;
}

// Makes twin contexts ref[i], bat[i] (same params and cache), prefilled with prompt i.
static int make_pairs(intact_model *m, const intact_kv_params *kv, intact_ctx **ref, intact_ctx **bat, int n) {
    intact_ctx_params cp = {NCTX, 1, 0};
    for (int i = 0; i < n; i++) {
        ref[i] = intact_ctx_new(m, &cp, &err);
        bat[i] = intact_ctx_new(m, &cp, &err);
        if (!ref[i] || !bat[i]) return -1;
        if (kv && (intact_ctx_set_kv(ref[i], kv, &err) || intact_ctx_set_kv(bat[i], kv, &err))) return -1;
        int len = k_plen[i % NS];
        if (intact_ctx_eval(ref[i], k_prompt, len, &err) || intact_ctx_eval(bat[i], k_prompt, len, &err)) return -1;
    }
    return 0;
}

static void free_pairs(intact_ctx **ref, intact_ctx **bat, int n) {
    for (int i = 0; i < n; i++) { intact_ctx_free(ref[i]); intact_ctx_free(bat[i]); }
}

// Runs STEPS batched steps against per-context evals; returns the worst |logit difference| relative
// to the largest |logit| of the step (0 when bit-identical), or -1 on an error / argmax mismatch.
static double run_steps(intact_ctx **ref, intact_ctx **bat, int n) {
    double worst = 0;
    int32_t tok[NS * 2];
    for (int i = 0; i < n; i++) tok[i] = argmax(intact_ctx_logits(ref[i], -1), NV);
    for (int s = 0; s < STEPS; s++) {
        for (int i = 0; i < n; i++)
            if (intact_ctx_eval(ref[i], &tok[i], 1, &err)) { printf("  ref eval: %s\n", err.msg); return -1; }
        if (intact_ctx_eval_batch(bat, tok, n, &err)) { printf("  batch: %s\n", err.msg); return -1; }
        for (int i = 0; i < n; i++) {
            const float *a = intact_ctx_logits(ref[i], -1), *b = intact_ctx_logits(bat[i], -1);
            if (intact_ctx_pos(ref[i]) != intact_ctx_pos(bat[i])) { printf("  pos %d\n", i); return -1; }
            double mx = 0, d = 0;
            for (int j = 0; j < NV; j++) {
                mx = fabs(a[j]) > mx ? fabs(a[j]) : mx;
                d = fabs((double)a[j] - b[j]) > d ? fabs((double)a[j] - b[j]) : d;
            }
            worst = d / mx > worst ? d / mx : worst;
            int ta = argmax(a, NV), tb = argmax(b, NV);
            if (ta != tb) { printf("  step %d ctx %d: argmax %d vs %d (rel diff %g)\n", s, i, ta, tb, d / mx); return -1; }
            tok[i] = ta;
        }
    }
    return worst;
}

// Float kernels of n rows sum in another order than the 1-row GEMV: logits agree to float rounding.
// 1e-5 of the logit scale is ~100 float ulps at dim 64 — a wrong position, cache or row mix-up
// moves logits by whole percents.
#define TOL 1e-5

static void cases_for(intact_model *m, const char *label, const intact_kv_params *kv, double tol) {
    int ns[] = {1, 2, 3, NS};
    for (int k = 0; k < 4; k++) {
        char name[128];
        snprintf(name, sizeof name, "%s: %d sessions decode as one at a time", label, ns[k]);
        TEST_CASE(name) {
            intact_ctx *ref[NS] = {0}, *bat[NS] = {0};
            CHECK(make_pairs(m, kv, ref, bat, ns[k]) == 0, "%s", err.msg);
            double w = run_steps(ref, bat, ns[k]);
            // One row runs the very same kernels as intact_ctx_eval: bit-identical.
            double lim = ns[k] == 1 ? 0 : tol;
            CHECK(w >= 0 && w <= lim, "worst relative logit difference %g (limit %g)", w, lim);
            printf("  %s n=%d: worst relative difference %.3g\n", label, ns[k], w);
            free_pairs(ref, bat, ns[k]);
        }
    }
}

int main(void) {
    th_shared("models/stories260K.bin", g_st, sizeof g_st);
    th_shared("models/tok512.bin", g_tok, sizeof g_tok);
    if (th_skip_program("test_batch", "models/stories260K.bin", "models/tok512.bin", NULL)) return 0;
    intact_model *m = load();
    if (!m) return th_finish("test_batch");

    cases_for(m, "f32 cache", NULL, TOL);
    // A low-bit cache turns a rounding-level difference of K/V into a whole quantization step when a
    // value sits at a code boundary (and MiKV's importance ranking may then swap two tokens), so the
    // INT4 and MiKV caches agree to 1e-3 of the logit scale, not to rounding: INT4 1.1-2.1e-6 until
    // the AVX2 SwiGLU moved every value by an ulp or two and one K or V of the 5-session run landed on
    // the other side of a boundary (1.35e-4); MiKV with int2 demotion 1.3e-6 to 2.8e-5. A wrong
    // position, cache or row mix-up still moves logits by whole percents.
    intact_kv_params q4 = {.k_type = "int4", .v_type = "int4"};
    cases_for(m, "int4 cache", &q4, 1e-3);
    intact_kv_params mikv = {.mikv_hi = 0.25f, .mikv_hi_type = "int8", .mikv_lo_type = "int2", .sink = 1,
                             .recent = 2, .balance = 1};
    cases_for(m, "MiKV + balance", &mikv, 1e-3);

    TEST_CASE("more sessions than the lead's scratch holds run in chunks") {
        // The lead's n_ctx of 4 gives it a 4-row scratch: 6 sessions are two chunks, the second
        // writing logits past the lead's own row.
        intact_ctx_params small = {4, 1, 0};
        intact_ctx *ref[6] = {0}, *bat[6] = {0};
        CHECK(make_pairs(m, NULL, ref + 1, bat + 1, 5) == 0, "%s", err.msg);
        ref[0] = intact_ctx_new(m, &small, &err);
        bat[0] = intact_ctx_new(m, &small, &err);
        CHECK(ref[0] && bat[0] && !intact_ctx_eval(ref[0], k_prompt, 1, &err) &&
              !intact_ctx_eval(bat[0], k_prompt, 1, &err), "%s", err.msg);
        int32_t tok[6];
        for (int s = 0; s < 3; s++) {   // the lead fills its 4 positions
            for (int i = 0; i < 6; i++) {
                tok[i] = argmax(intact_ctx_logits(ref[i], -1), NV);
                CHECK(!intact_ctx_eval(ref[i], &tok[i], 1, &err), "%s", err.msg);
            }
            CHECK(!intact_ctx_eval_batch(bat, tok, 6, &err), "%s", err.msg);
            for (int i = 0; i < 6; i++) {
                const float *a = intact_ctx_logits(ref[i], -1), *b = intact_ctx_logits(bat[i], -1);
                double d = 0;
                for (int j = 0; j < NV; j++) d = fmax(d, fabs((double)a[j] - b[j]));
                CHECK(d < 1e-3, "step %d ctx %d: max diff %g", s, i, d);
            }
        }
        tok[0] = 1;
        CHECK(intact_ctx_eval_batch(bat, tok, 6, &err) == -1 && err.code == INTACT_E_LIMIT, "full lead: %d", err.code);
        CHECK(intact_ctx_pos(bat[1]) == intact_ctx_pos(ref[1]), "a refused batch moved context 1");
        free_pairs(ref, bat, 6);
    }

    TEST_CASE("quantized weights (int8 decode GEMV up to 3 rows; float GEMM beyond)") {
        intact_model *q = load();
        intact_quant_params qp = intact_quant_default_params();
        qp.bits = 4;
        qp.group = 32;
        CHECK(q && intact_model_quantize(q, &qp, NULL, &err) == 0, "%s", err.msg);
        for (int n = 2; q && n <= NS; n += 3) {
            intact_ctx *ref[NS] = {0}, *bat[NS] = {0};
            CHECK(make_pairs(q, NULL, ref, bat, n) == 0, "%s", err.msg);
            // Beyond 3 rows the batch leaves the int8-activation GEMV for the float GEMM (exact
            // activations), as a prefill would: compare with exact decode activations then.
            for (int i = 0; n > 3 && i < n; i++)
                CHECK(!intact_ctx_set_decode_act(ref[i], INTACT_DECODE_ACT_EXACT, &err) &&
                      !intact_ctx_set_decode_act(bat[i], INTACT_DECODE_ACT_EXACT, &err), "%s", err.msg);
            double w = run_steps(ref, bat, n);
            CHECK(w >= 0 && w <= TOL, "n=%d worst relative difference %g", n, w);
            printf("  int4 weights n=%d: worst relative difference %.3g\n", n, w);
            free_pairs(ref, bat, n);
        }
        intact_model_free(q);
    }

    TEST_CASE("refused batches: INTACT_E_ARG / E_LIMIT, no context moves") {
        intact_model *m2 = load();
        intact_ctx *ref[3] = {0}, *bat[3] = {0};
        CHECK(m2 && make_pairs(m, NULL, ref, bat, 3) == 0, "%s", err.msg);
        intact_ctx_params cp = {NCTX, 1, 0};
        intact_ctx *other = m2 ? intact_ctx_new(m2, &cp, &err) : NULL;
        int32_t tok[3] = {5, 6, 7};
        intact_ctx *dup[3] = {bat[0], bat[1], bat[0]}, *nul[3] = {bat[0], NULL, bat[2]};
        intact_ctx *mix[3] = {bat[0], other, bat[2]};
        int pos0 = intact_ctx_pos(bat[0]);
        CHECK(intact_ctx_eval_batch(NULL, tok, 3, &err) == -1 && err.code == INTACT_E_ARG, "NULL array");
        CHECK(intact_ctx_eval_batch(bat, NULL, 3, &err) == -1 && err.code == INTACT_E_ARG, "NULL tokens");
        CHECK(intact_ctx_eval_batch(bat, tok, 0, &err) == -1 && err.code == INTACT_E_ARG, "n = 0");
        CHECK(intact_ctx_eval_batch(nul, tok, 3, &err) == -1 && err.code == INTACT_E_ARG, "NULL context");
        CHECK(intact_ctx_eval_batch(dup, tok, 3, &err) == -1 && err.code == INTACT_E_ARG, "duplicate");
        CHECK(intact_ctx_eval_batch(mix, tok, 3, &err) == -1 && err.code == INTACT_E_ARG && strstr(err.msg, "model"),
              "other model: %s", err.msg);
        tok[2] = NV;
        CHECK(intact_ctx_eval_batch(bat, tok, 3, &err) == -1 && err.code == INTACT_E_ARG, "token out of range");
        tok[2] = 7;
        CHECK(!intact_ctx_set_decode_act(bat[1], INTACT_DECODE_ACT_EXACT, &err), "%s", err.msg);
        CHECK(intact_ctx_eval_batch(bat, tok, 3, &err) == -1 && err.code == INTACT_E_ARG, "activation settings");
        CHECK(intact_ctx_pos(bat[0]) == pos0, "a refused batch moved context 0");
        intact_ctx_free(other);
        free_pairs(ref, bat, 3);
        intact_model_free(m2);
    }

    intact_model_free(m);
    return th_finish("test_batch");
}
