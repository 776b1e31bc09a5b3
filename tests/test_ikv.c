// IntactKV prefixes: exactness with the full-precision model, the .ikv file format's validation,
// use with a quantized model of the same family, and the Fig. 2 measurement's shape.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "intact.h"

static char g_en[1024], g_st[1024], g_tok[1024], g_eval[1024];

static intact_model *load(const char *path) {
    intact_error err = {0, ""};
    intact_model *m = intact_model_load(path, g_tok, &err);
    if (!m) printf("  load %s: %s\n", path, err.msg);
    return m;
}

static const int32_t k_text[] = {291, 282, 276, 419, 292, 377, 336, 351, 265, 404, 424, 278, 412, 424};
enum { N_TEXT = sizeof k_text / sizeof k_text[0], NV = 512 };

// max-abs difference between the logits of plain [head + text] and [prefix(head) + text].
static double prefix_vs_plain(intact_model *m, const int32_t *head, int n_head, const intact_prefix *p) {
    intact_ctx_params cp = {64, 1, 1};
    intact_error err = {0, ""};
    intact_ctx *a = intact_ctx_new(m, &cp, &err), *b = intact_ctx_new(m, &cp, &err);
    int32_t seq[64];
    memcpy(seq, head, sizeof *seq * (size_t)n_head);
    memcpy(seq + n_head, k_text, sizeof k_text);
    double worst = 1e30;
    if (a && b && intact_ctx_eval(a, seq, n_head + N_TEXT, &err) == 0 && intact_ctx_use_prefix(b, p, &err) == 0) {
        worst = 0;
        // The prefix's own logits score the first text token.
        const float *la = intact_ctx_logits(a, n_head - 1), *lb = intact_ctx_logits(b, -1);
        for (int v = 0; v < NV; v++) worst = fmax(worst, fabs((double)la[v] - lb[v]));
        if (intact_ctx_pos(b) != n_head || intact_ctx_eval(b, k_text, N_TEXT, &err) != 0) worst = 1e30;
        for (int t = 0; t < N_TEXT && worst < 1e30; t++) {
            la = intact_ctx_logits(a, n_head + t);
            lb = intact_ctx_logits(b, t);
            for (int v = 0; v < NV; v++) worst = fmax(worst, fabs((double)la[v] - lb[v]));
        }
    } else {
        printf("  %s\n", err.msg);
    }
    intact_ctx_free(a);
    intact_ctx_free(b);
    return worst;
}

static int write_bytes(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(b, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

static unsigned char *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n);
    if (b && fread(b, 1, *n, f) != *n) { free(b); b = NULL; }
    fclose(f);
    return b;
}

static void expect_reject(const char *path, intact_model *m, const char *want) {
    intact_error err = {0, ""};
    intact_prefix *p = intact_prefix_load(path, m, &err);
    CHECK(!p && strstr(err.msg, want), "expected '%s', got %s", want, p ? "accepted" : err.msg);
    intact_prefix_free(p);
}

int main(void) {
    if (th_skip_program("test_ikv", "models/english-1m.bin", "data/eval-en.txt", NULL)) return 0;
    th_shared("models/english-1m.bin", g_en, sizeof g_en);
    th_shared("models/stories260K.bin", g_st, sizeof g_st);
    th_shared("models/tok512.bin", g_tok, sizeof g_tok);
    th_shared("data/eval-en.txt", g_eval, sizeof g_eval);
    intact_model *en = load(g_en);
    if (!en) return th_finish("test_ikv");
    intact_error err = {0, ""};
    const int32_t bos = 1;

    TEST_CASE("a [BOS] prefix from the FP model reproduces the FP model's logits") {
        intact_prefix *p = intact_prefix_build(en, &bos, 1, 1, &err);
        CHECK(p != NULL, "%s", err.msg);
        double d = p ? prefix_vs_plain(en, &bos, 1, p) : 1e30;
        printf("  [BOS] prefix vs plain, max-abs logits %.3g\n", d);
        CHECK(d <= 1e-5, "%g", d);
        intact_prefix_free(p);
    }

    TEST_CASE("a system-prompt prefix (BOS + 5 tokens) reproduces them too") {
        int32_t head[6] = {1, 400, 310, 267, 301, 290};
        intact_prefix *p = intact_prefix_build(en, head, 6, 0, &err);
        double d = p ? prefix_vs_plain(en, head, 6, p) : 1e30;
        printf("  6-token prefix vs plain, max-abs logits %.3g\n", d);
        CHECK(d <= 1e-5, "%g", d);
        CHECK(p && intact_prefix_n_tokens(p) == 6 && !intact_prefix_from_bos(p), "metadata");
        intact_prefix_free(p);
    }

    TEST_CASE("ppl with the FP prefix equals plain ppl; a --bos prefix must be exactly BOS") {
        size_t len = 0;
        unsigned char *text = read_bytes(g_eval, &len);
        if (text && len > 6000) len = 6000;
        intact_prefix *p = intact_prefix_build(en, &bos, 1, 1, &err);
        intact_eval_params ep = {64, 4, 1, NULL, NULL, NULL, NULL};
        intact_ppl_result a, b;
        int ok = text && p && intact_eval_ppl(en, (char *)text, len, &ep, &a, &err) == 0;
        ep.prefix = p;
        ok = ok && intact_eval_ppl(en, (char *)text, len, &ep, &b, &err) == 0;
        CHECK(ok, "%s", err.msg);
        CHECK(ok && fabs(a.ppl - b.ppl) <= 1e-6 * a.ppl && a.tokens == b.tokens, "%.9g vs %.9g", a.ppl, b.ppl);
        int32_t notbos = 5;
        intact_prefix *q = intact_prefix_build(en, &notbos, 1, 1, &err);
        CHECK(!q && strstr(err.msg, "BOS"), "%s", q ? "accepted" : err.msg);
        intact_prefix_free(q);
        intact_prefix_free(p);
        free(text);
    }

    TEST_CASE("save -> load round trip (fp32 exact, fp16 within half precision)") {
        intact_prefix *p = intact_prefix_build(en, &bos, 1, 1, &err);
        const char *f32 = "build/test_ikv_f32.ikv", *f16 = "build/test_ikv_f16.ikv";
        CHECK(p && intact_prefix_save(p, f32, 0, &err) == 0 && intact_prefix_save(p, f16, 1, &err) == 0, "%s", err.msg);
        intact_prefix *a = intact_prefix_load(f32, en, &err), *b = intact_prefix_load(f16, en, &err);
        CHECK(a && b, "%s", err.msg);
        double da = a ? prefix_vs_plain(en, &bos, 1, a) : 1e30, db = b ? prefix_vs_plain(en, &bos, 1, b) : 1e30;
        printf("  reloaded fp32 %.3g, fp16 %.3g (max-abs logits vs plain)\n", da, db);
        CHECK(da <= 1e-5, "fp32 %g", da);
        CHECK(db > 0 && db < 0.05, "fp16 %g", db);
        CHECK(a && intact_prefix_from_bos(a), "from_bos flag");
        intact_prefix_free(a);
        intact_prefix_free(b);
        intact_prefix_free(p);
        remove(f16);
    }

    TEST_CASE("hostile and mismatched prefix files are rejected with clear errors") {
        const char *good = "build/test_ikv_f32.ikv", *bad = "build/test_ikv_bad.ikv";
        size_t n = 0;
        unsigned char *b = read_bytes(good, &n), *c = b ? malloc(n) : NULL;
        CHECK(b && c && n > 64, "read");
        if (b && c) {
            memcpy(c, b, n); memcpy(c, "GGUF", 4);
            write_bytes(bad, c, n); expect_reject(bad, en, "bad magic");
            memcpy(c, b, n); c[4] = 2;
            write_bytes(bad, c, n); expect_reject(bad, en, "version 2");
            write_bytes(bad, b, n - 1); expect_reject(bad, en, "size");
            write_bytes(bad, b, 20); expect_reject(bad, en, "");
            memcpy(c, b, n); c[n / 2] ^= 0x40;
            write_bytes(bad, c, n); expect_reject(bad, en, "checksum");
            memcpy(c, b, n); c[32] = 0xff; c[33] = 0xff; c[34] = 0xff; c[35] = 0x7f; // 2^31-1 tokens
            write_bytes(bad, c, n); expect_reject(bad, en, "token count");
            memcpy(c, b, n); c[8] ^= 1; // fingerprint
            write_bytes(bad, c, n); expect_reject(bad, en, "fingerprint");
        }
        // Same vocabulary, different shapes: stories260K's prefix cannot go in front of english-1m.
        intact_model *st = load(g_st);
        intact_prefix *sp = st ? intact_prefix_build(st, &bos, 1, 1, &err) : NULL;
        CHECK(sp && intact_prefix_save(sp, bad, 0, &err) == 0, "%s", err.msg);
        expect_reject(bad, en, "built for a model with 5 layers");
        intact_ctx_params cp = {16, 1, 0};
        intact_ctx *c2 = intact_ctx_new(en, &cp, &err);
        CHECK(c2 && sp && intact_ctx_use_prefix(c2, sp, &err) != 0 && strstr(err.msg, "different model family"),
              "%s", err.msg);
        intact_ctx_free(c2);
        intact_prefix_free(sp);
        intact_model_free(st);
        expect_reject("build/no-such-prefix.ikv", en, "no-such-prefix");
        free(b);
        free(c);
        remove(bad);
    }

    TEST_CASE("a prefix of the FP model loads into a quantized model of the same family") {
        intact_model *q = load(g_en);
        intact_quant_params qp = intact_quant_default_params();
        qp.bits = 3;
        qp.group = 32;
        CHECK(q && intact_model_quantize(q, &qp, NULL, &err) == 0, "%s", err.msg);
        intact_prefix *p = q ? intact_prefix_load("build/test_ikv_f32.ikv", q, &err) : NULL;
        CHECK(p != NULL, "%s", err.msg);
        CHECK(intact_model_fingerprint(q) == intact_model_fingerprint(en), "fingerprint changed by quantization");
        intact_prefix_free(p);
        intact_model_free(q);
        remove("build/test_ikv_f32.ikv");
    }

    TEST_CASE("ikv mse: zero error for the FP model itself, and error falls as tokens stay intact") {
        size_t len = 0;
        unsigned char *text = read_bytes(g_eval, &len);
        if (text && len > 4000) len = 4000;
        intact_eval_params ep = {64, 2, 1, NULL, NULL, NULL, NULL};
        intact_ikv_mse_row rows[5];
        CHECK(text && intact_ikv_mse(en, en, (char *)text, len, &ep, 4, rows, &err) == 0, "%s", err.msg);
        for (int k = 0; k <= 4; k++) CHECK(rows[k].block_mse < 1e-10, "fp vs fp k=%d %g", k, rows[k].block_mse);
        intact_model *q = load(g_en);
        intact_quant_params qp = intact_quant_default_params();
        qp.bits = 3;
        qp.group = 32;
        CHECK(q && intact_model_quantize(q, &qp, NULL, &err) == 0, "%s", err.msg);
        CHECK(q && intact_ikv_mse(q, en, (char *)text, len, &ep, 4, rows, &err) == 0, "%s", err.msg);
        printf("  w3 rtn block_out MSE, 0..4 intact tokens: %.5g %.5g %.5g %.5g %.5g\n", rows[0].block_mse,
               rows[1].block_mse, rows[2].block_mse, rows[3].block_mse, rows[4].block_mse);
        CHECK(rows[0].block_mse > 0 && rows[1].block_mse < rows[0].block_mse, "intact BOS must help");
        intact_model_free(q);
        free(text);
    }

    intact_model_free(en);
    return th_finish("test_ikv");
}
