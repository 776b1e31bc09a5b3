// The quantization pipeline end to end: packed kernels against the fake-quantized (dequantized
// fp32) model, save -> load round trips, formats the shapes don't allow, bad parameters, and
// hostile quantized files.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "intact.h"
#include "formats/formats.h"
#include "formats/qformat.h"
#include "io/gguf.h"
#include "io/gguf_write.h"
#include "model/model.h"

static char g_bin[1024], g_tok[1024], g_calib[1024];

static intact_model *load(void) {
    intact_error err = {0, ""};
    intact_model *m = intact_model_load(g_bin, g_tok, &err);
    if (!m) printf("  load: %s\n", err.msg);
    return m;
}

static const int32_t k_tokens[] = {1, 291, 282, 276, 419, 292, 377, 336, 351, 265, 404, 424, 278, 412, 424, 300};
enum { N_TOK = sizeof k_tokens / sizeof k_tokens[0], N_VOCAB = 512 };

// Logits of every position; returns a malloc'd (N_TOK, vocab) array.
static float *logits_of(intact_model *m) {
    intact_ctx_params p = {64, 2, 1};
    intact_error err = {0, ""};
    intact_ctx *c = intact_ctx_new(m, &p, &err);
    float *out = malloc(sizeof(float) * N_TOK * N_VOCAB);
    if (!c || !out || intact_ctx_eval(c, k_tokens, N_TOK, &err) != 0) {
        printf("  eval: %s\n", err.msg);
        intact_ctx_free(c);
        free(out);
        return NULL;
    }
    for (int t = 0; t < N_TOK; t++) memcpy(out + t * N_VOCAB, intact_ctx_logits(c, t), sizeof(float) * N_VOCAB);
    intact_ctx_free(c);
    return out;
}

// max |a-b| / max(1, max|b|)
static double rel_diff(const float *a, const float *b) {
    double worst = 0, scale = 1;
    for (int i = 0; i < N_TOK * N_VOCAB; i++) {
        double d = fabs((double)a[i] - b[i]);
        worst = d > worst ? d : worst;
        scale = fabs(b[i]) > scale ? fabs(b[i]) : scale;
    }
    return worst / scale;
}

static float *quantized_logits(const intact_quant_params *p, intact_quant_report *rep) {
    intact_model *m = load();
    intact_error err = {0, ""};
    float *l = NULL;
    // Exact float activations: the packed kernels must equal the fake-quantized model's float ones
    // (the int8 activation path has its own tests: test_iqdec, test_iqgemm, the head case below).
    if (m) intact_model_set_decode_act(m, INTACT_DECODE_ACT_EXACT, NULL);
    if (m && intact_model_quantize(m, p, rep, &err) == 0) l = logits_of(m);
    else if (m) printf("  quantize: %s\n", err.msg);
    intact_model_free(m);
    return l;
}

// The observer keeps the last "final_norm" row: the head's input.
static void keep_final_norm(void *user, int layer, const char *name, const float *x, int n, int width) {
    (void)layer;
    if (!strcmp(name, "final_norm")) memcpy(user, x + (size_t)(n - 1) * width, sizeof(float) * (size_t)width);
}

int main(void) {
    if (th_skip_program("test_quant", "models/english-1m.bin", "data/eval-en.txt", "data/calib-en.txt", NULL)) return 0;
    th_shared("models/english-1m.bin", g_bin, sizeof g_bin);
    th_shared("models/tok512.bin", g_tok, sizeof g_tok);
    th_shared("data/calib-en.txt", g_calib, sizeof g_calib);

    TEST_CASE("packed kernels equal the fake-quantized model (1e-5 relative), every format") {
        static const int bits[] = {2, 3, 4, 8};
        for (int b = 0; b < 4; b++)
            for (int sym = 0; sym < 2; sym++) {
                intact_quant_params p = intact_quant_default_params();
                p.bits = bits[b];
                p.group = 32;
                p.sym = sym;
                intact_quant_report rep;
                float *packed = quantized_logits(&p, &rep);
                p.fake = 1;
                float *fake = quantized_logits(&p, NULL);
                CHECK(packed && fake, "bits %d sym %d", bits[b], sym);
                if (packed && fake) {
                    double d = rel_diff(packed, fake);
                    printf("  int%d_g32%s: packed vs fake %.2e, %.3f bits/weight\n", bits[b], sym ? "_sym" : "", d,
                           rep.bits_per_weight);
                    CHECK(d <= 1e-5, "bits %d sym %d: %g", bits[b], sym, d);
                    // header (fp16 d + u8 z for asym) + packed bits over 32 weights
                    double bpw = (8.0 * (2 + !sym) + 32.0 * bits[b]) / 32.0;
                    CHECK(fabs(rep.bits_per_weight - bpw) < 1e-9, "bpw %g vs %g", rep.bits_per_weight, bpw);
                    CHECK(rep.n_quantized == 42 && rep.n_kept == 0, "%d quantized", rep.n_quantized);
                }
                free(packed);
                free(fake);
            }
    }

    TEST_CASE("quantization error shrinks with bits (logits vs FP)") {
        intact_model *m = load();
        float *fp = m ? logits_of(m) : NULL;
        intact_model_free(m);
        double prev = 1e30;
        for (int b = 2; b <= 8; b = b == 4 ? 8 : b + 1) {
            intact_quant_params p = intact_quant_default_params();
            p.bits = b;
            p.group = 32;
            float *q = quantized_logits(&p, NULL);
            double d = q && fp ? rel_diff(q, fp) : 1e30;
            printf("  int%d_g32 logits vs fp: %.3e\n", b, d);
            CHECK(d < prev, "bits %d: %g not below %g", b, d, prev);
            prev = d;
            free(q);
        }
        CHECK(prev < 2e-2, "int8 should be close to FP: %g", prev);
        free(fp);
    }

    TEST_CASE("save -> load gives the same logits, types and tokenizer") {
        intact_model *m = load();
        intact_quant_params p = intact_quant_default_params();
        p.bits = 3;
        p.group = 64;
        intact_error err = {0, ""};
        const char *path = "build/test_quant_w3.gguf";
        int ok = m && intact_model_quantize(m, &p, NULL, &err) == 0 && intact_model_save(m, path, &err) == 0;
        CHECK(ok, "%s", err.msg);
        float *a = ok ? logits_of(m) : NULL;
        intact_model *r = ok ? intact_model_load(path, NULL, &err) : NULL;
        CHECK(r != NULL, "%s", err.msg);
        float *b = r ? logits_of(r) : NULL;
        CHECK(a && b && rel_diff(b, a) == 0, "reloaded logits differ");
        if (r) {
            int n_q = 0;
            for (int i = 0; i < intact_model_n_tensors(r); i++) {
                intact_tensor_info ti;
                intact_model_tensor(r, i, &ti);
                n_q += strcmp(ti.type, "int3_g64") == 0;
            }
            // dim 128 is a multiple of 64, hidden 352 is not: ffn_down (n_in 352) stays f32
            CHECK(n_q == 36, "%d int3_g64 tensors", n_q);
            int32_t x[32], y[32];
            int nx = intact_tokenize(m, "The president said", 18, 1, x, 32, &err);
            int ny = intact_tokenize(r, "The president said", 18, 1, y, 32, &err);
            CHECK(nx == ny && nx > 0 && memcmp(x, y, sizeof(int32_t) * (size_t)nx) == 0, "tokenizer differs");
            // A reloaded quantized file does not remember being quantized in memory, but its tensor types
            // say it: quantizing it again (e.g. `run -m Q.gguf --quant rtn`) is refused, naming the type.
            intact_quant_params p4 = intact_quant_default_params();
            p4.group = 32;
            CHECK(intact_model_quantize(r, &p4, NULL, &err) != 0 && strstr(err.msg, "already quantized (int3_g64)"),
                  "re-quantizing a quantized file: '%s'", err.msg);
        }
        free(a);
        free(b);
        intact_model_free(m);
        intact_model_free(r);
        remove(path);
    }

    TEST_CASE("a dimension not divisible by the group is kept in its stored type and reported") {
        intact_model *m = load();
        intact_quant_params p = intact_quant_default_params();
        p.bits = 4;
        p.group = 128;
        intact_quant_report rep;
        intact_error err = {0, ""};
        CHECK(m && intact_model_quantize(m, &p, &rep, &err) == 0, "%s", err.msg);
        CHECK(rep.n_kept == 6 && rep.n_quantized == 36, "kept %d quantized %d", rep.n_kept, rep.n_quantized);
        CHECK(strstr(rep.kept, "blk.0.ffn_down") != NULL, "kept list '%s'", rep.kept);
        CHECK(m && intact_model_quantize(m, &p, &rep, &err) != 0 && strstr(err.msg, "already quantized"),
              "quantizing twice must fail");
        intact_model_free(m);
    }

    TEST_CASE("hostile quantized files are rejected with a clear message") {
        // A truncated quantized model.
        intact_model *m = load();
        intact_quant_params p = intact_quant_default_params();
        p.group = 32;
        intact_error err = {0, ""};
        const char *path = "build/test_quant_trunc.gguf";
        CHECK(m && intact_model_quantize(m, &p, NULL, &err) == 0 && intact_model_save(m, path, &err) == 0, "%s",
              err.msg);
        intact_model_free(m);
        FILE *f = fopen(path, "rb+");
        long size = 0;
        if (f) { fseek(f, 0, SEEK_END); size = ftell(f); fclose(f); }
        CHECK(size > 0 && truncate(path, size / 2) == 0, "truncate");
        m = intact_model_load(path, NULL, &err);
        CHECK(!m && strstr(err.msg, "past the end"), "truncated: %s", err.msg);
        intact_model_free(m);
        remove(path);
        // Our integer types with shapes they cannot have, and ids that are not formats.
        unsigned char blob[4096] = {0};
        struct { int type; int64_t ne0; const char *want; } cases[] = {
            {IT_QTYPE(4, 2, 0), 96, "not a multiple"},     // int4_g128 with 96-wide rows
            {IT_QTYPE(3, 0, 1), 48, "not a multiple"},     // int3_g32_sym with 48-wide rows
            {IT_QTYPE(5, 0, 0), 32, "unknown type"},       // 5 bits: not a format
            {IT_QTYPE_BASE + 1, 32, "unknown type"},
        };
        for (int i = 0; i < 4; i++) {
            gguf_writer *w = gguf_writer_new();
            int64_t ne[2] = {cases[i].ne0, 2};
            // nbytes cannot match a bad shape, so write the tensor as f32 and patch its type id after.
            gguf_writer_add_tensor(w, "t", IT_TYPE_F32, 2, ne, blob, (size_t)(cases[i].ne0 * 2 * 4));
            void *mem = NULL;
            size_t n = 0;
            CHECK(gguf_writer_write_mem(w, &mem, &n, &err) == 0, "%s", err.msg);
            gguf_writer_free(w);
            // the type id follows name, n_dims and the dims in the tensor info: find it by value 0
            unsigned char *b = mem;
            size_t at = 4 + 4 + 8 + 8 + 8 + 1 + 4 + 16; // header, name "t", n_dims, two dims
            uint32_t t = (uint32_t)cases[i].type;
            memcpy(b + at, &t, 4);
            gguf_file *g = gguf_open_buffer(mem, n, &err);
            CHECK(!g && strstr(err.msg, cases[i].want), "case %d: %s", i, g ? "accepted" : err.msg);
            gguf_close(g);
            free(mem);
        }
    }

    TEST_CASE("bad parameters fail with a clear message") {
        intact_model *m = load();
        intact_error err = {0, ""};
        intact_quant_params p = intact_quant_default_params();
        p.bits = 5;
        CHECK(intact_model_quantize(m, &p, NULL, &err) != 0 && strstr(err.msg, "5 bits"), "%s", err.msg);
        p = intact_quant_default_params();
        p.group = 48;
        CHECK(intact_model_quantize(m, &p, NULL, &err) != 0 && strstr(err.msg, "group 48"), "%s", err.msg);
        p = intact_quant_default_params();
        p.method = "hqq";
        CHECK(intact_model_quantize(m, &p, NULL, &err) != 0 && strstr(err.msg, "hqq"), "%s", err.msg);
        p = intact_quant_default_params();
        p.method = "gptq";
        CHECK(intact_model_quantize(m, &p, NULL, &err) != 0 && strstr(err.msg, "calibration"), "%s", err.msg);
        p.calib_text = "too short";
        p.calib_len = 9;
        CHECK(intact_model_quantize(m, &p, NULL, &err) != 0 && strstr(err.msg, "fewer than"), "%s", err.msg);
        intact_model_free(m);
    }

    TEST_CASE("--output-type int8_g32: decode reads the head through the int8 GEMV, within the int8 bound") {
        // Reference: the head's dequantized rows times the exact final_norm row, in double. The int8
        // decode path rounds that row per 32-block to s*q with |x - s*q| <= s/2, s = max|x|/127, so
        // |logit - ref| <= sum_j |w_ij| * s_block(j) / 2 (plus float rounding). --exact-act must be
        // within float rounding of the reference, and the default path must actually differ from it.
        intact_quant_params p = intact_quant_default_params();
        p.bits = 4;
        p.group = 32;
        p.output_type = "int8_g32";
        intact_model *m = load();
        intact_error err = {0, ""};
        int ok = m && intact_model_quantize(m, &p, NULL, &err) == 0;
        CHECK(ok, "quantize: %s", err.msg);
        const it_tensor *h = ok ? &m->output : NULL;
        CHECK(!h || !strcmp(fmt_get(h->type)->name, "int8_g32"), "head type %s", h ? fmt_get(h->type)->name : "?");
        int dim = h ? (int)h->ne[0] : 0;
        float *x = calloc((size_t)dim + 1, sizeof(float)), *w = malloc(sizeof(float) * ((size_t)dim + 1));
        double worst_int8 = 0, worst_exact = 0, moved = 0;
        for (int mode = 0; ok && mode < 2; mode++) {
            intact_ctx_params cp = {64, 1, 0};
            intact_ctx *c = intact_ctx_new(m, &cp, &err);
            ok = c && intact_ctx_set_decode_act(c, mode ? INTACT_DECODE_ACT_EXACT : INTACT_DECODE_ACT_INT8, &err) == 0;
            if (c) intact_ctx_set_observer(c, keep_final_norm, x);
            for (int t = 0; ok && t < 6; t++) {
                ok = intact_ctx_eval(c, &k_tokens[t], 1, &err) == 0;
                const float *lg = ok ? intact_ctx_logits(c, 0) : NULL;
                size_t rb = fmt_row_bytes(h->type, dim);
                for (int i = 0; lg && i < N_VOCAB; i++) {
                    fmt_get(h->type)->to_float((const char *)h->data + (size_t)i * rb, w, dim);
                    double ref = 0, bound = 1e-5;
                    for (int j = 0; j < dim; j++) ref += (double)w[j] * x[j];
                    for (int b = 0; b < dim; b += 32) {
                        double mx = 0, sw = 0;
                        for (int j = b; j < b + 32 && j < dim; j++) {
                            mx = fabs(x[j]) > mx ? fabs(x[j]) : mx;
                            sw += fabs(w[j]);
                        }
                        bound += sw * mx / 127.0 * 0.5 * 1.0001;
                    }
                    double e = fabs(lg[i] - ref);
                    if (mode == 0) {
                        worst_int8 = e / bound > worst_int8 ? e / bound : worst_int8;
                        moved = e > moved ? e : moved;
                    } else {
                        worst_exact = e > worst_exact ? e : worst_exact;
                    }
                }
            }
            CHECK(ok, "eval: %s", err.msg);
            intact_ctx_free(c);
        }
        printf("  int8 head: worst error / bound %.3f, largest int8 deviation %.2e, exact path %.2e\n", worst_int8,
               moved, worst_exact);
        CHECK(worst_int8 <= 1.0, "int8 decode head error %.3f x its bound", worst_int8);
        CHECK(moved > 1e-5, "the default decode path did not use int8 activations for the head (%.2e)", moved);
        CHECK(worst_exact < 1e-3, "--exact-act head differs from the reference by %.2e", worst_exact);
        free(x);
        free(w);
        intact_model_free(m);
    }

    TEST_CASE("GPTQ and AWQ beat RTN at 3 bits on the real model (KL vs FP on 1000 tokens)") {
        size_t len = 0, elen = 0;
        char eval_path[1024];
        th_shared("data/eval-en.txt", eval_path, sizeof eval_path);
        char *text = malloc(200000), *etext = malloc(8000);
        FILE *f = fopen(g_calib, "rb");
        if (f && text) len = fread(text, 1, 200000, f);
        if (f) fclose(f);
        f = fopen(eval_path, "rb");
        if (f && etext) elen = fread(etext, 1, 8000, f);
        if (f) fclose(f);
        intact_model *base = load();
        static const char *const methods[3] = {"rtn", "gptq", "awq"};
        double kl[3] = {0};
        for (int k = 0; k < 3 && base; k++) {
            intact_quant_params p = intact_quant_default_params();
            p.method = methods[k];
            p.bits = 3;
            p.group = 32;
            p.n_threads = 2;
            p.calib_text = text;
            p.calib_len = len;
            p.calib_samples = 16;
            p.calib_tokens = 128;
            intact_model *m = load();
            intact_error err = {0, ""};
            intact_eval_params ep = {128, 8, 2, NULL, NULL, NULL, NULL};
            intact_kld_result r;
            int ok = m && intact_model_quantize(m, &p, NULL, &err) == 0 &&
                     intact_eval_kld(m, base, etext, elen, &ep, &r, &err) == 0;
            CHECK(ok, "%s: %s", methods[k], err.msg);
            kl[k] = ok ? r.kld_mean : 1e9;
            intact_model_free(m);
        }
        printf("  w3 g32 mean KL vs fp: rtn %.5f, gptq %.5f, awq %.5f\n", kl[0], kl[1], kl[2]);
        CHECK(kl[1] < kl[0], "gptq %g not below rtn %g", kl[1], kl[0]);
        CHECK(kl[2] < kl[0], "awq %g not below rtn %g", kl[2], kl[0]);
        intact_model_free(base);
        free(text);
        free(etext);
    }
    return th_finish("test_quant");
}
