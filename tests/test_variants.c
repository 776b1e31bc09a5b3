// Every tensor type (F16, BF16, Q8_0, F32, ggml's Q4_0/Q4_1/Q5_0/Q5_1 and k-quants Q2_K..Q8_K) and the qwen2 architecture against the independent
// PyTorch reference (tests/ref/variants_ref.py -> tests/goldens/variants.gold). Public API only.
// The models are written at test time by tests/ref/make_variants.py (standard-library Python) into
// build/variants: stories260K converted to F16 / BF16 / Q8_0 / Q4_0 / Q4_1 / Q5_0 / Q5_1, a random
// llama of width 256 with its matrices in the k-quants, a random qwen2 (NeoX RoPE, q/k/v
// biases, untied output) and a random untied llama in F16. The reference dequantizes the very same
// weights and runs in float64, so every model must match its logits to 1e-4 max-abs (the float32
// rounding alone is ~1e-5 on stories260K's logits of magnitude ~17).
#include "harness.h"
#include "cli_harness.h"
#include "golden.h"
#include "intact.h"

#define TOL 1e-4
#define DIR "build/variants"

static double max_abs(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d;   // NaN propagates as a failure
    }
    return m;
}

static intact_ctx *new_ctx(const intact_model *m, int logits_all) {
    intact_error err = {0};
    intact_ctx_params p = intact_ctx_default_params();
    p.logits_all = logits_all;
    p.n_threads = 1;
    intact_ctx *c = intact_ctx_new(m, &p, &err);
    CHECK(c != NULL, "ctx: %s", err.msg);
    return c;
}

// Batched (one eval of all tokens, logits_all) or token-by-token logits into out (n, n_vocab).
static int eval_logits(const intact_model *m, const int32_t *toks, int n, int n_vocab, float *out,
                       int one_by_one) {
    intact_ctx *c = new_ctx(m, !one_by_one);
    if (!c) return -1;
    intact_error err = {0};
    int rc = 0;
    for (int i = 0; rc >= 0 && i < n; i += one_by_one ? 1 : n) {
        rc = intact_ctx_eval(c, toks + i, one_by_one ? 1 : n, &err);
        CHECK(rc >= 0, "eval at %d: %s", i, err.msg);
        for (int j = 0; rc >= 0 && j < (one_by_one ? 1 : n); j++) {
            const float *l = intact_ctx_logits(c, one_by_one ? -1 : j);
            CHECK(l != NULL, "no logits for token %d", i + j);
            if (!l) rc = -1;
            else memcpy(out + (size_t)(i + j) * (size_t)n_vocab, l, (size_t)n_vocab * sizeof(float));
        }
    }
    intact_ctx_free(c);
    return rc < 0 ? -1 : 0;
}

static const char *tensor_type(const intact_model *m, const char *name) {
    intact_tensor_info ti;
    for (int i = 0; i < intact_model_n_tensors(m); i++)
        if (intact_model_tensor(m, i, &ti) == 0 && strcmp(ti.name, name) == 0) return ti.type;
    return "(missing)";
}

typedef struct variant {
    const char *stem, *arch;
    int neox, bias, tied;
    const char *mat_type, *down_type;   // blk.0.attn_q.weight's and blk.0.ffn_down.weight's type
    int check_decode;
    const char *out_type;               // output.weight's type when untied (NULL: mat_type)
} variant;

static const variant VARIANTS[] = {
    {"stories260K-f16", "llama", 0, 0, 1, "f16", "f16", 1, NULL},
    {"stories260K-bf16", "llama", 0, 0, 1, "bf16", "bf16", 0, NULL},
    {"stories260K-q8_0", "llama", 0, 0, 1, "q8_0", "f16", 0, NULL},   // 172-long rows: not whole blocks
    {"qwen2-tiny", "qwen2", 1, 1, 0, "f32", "f32", 1, NULL},
    {"llama-tiny-untied-f16", "llama", 0, 0, 0, "f16", "f16", 0, NULL},
    {"stories260K-q4_0", "llama", 0, 0, 1, "q4_0", "f16", 1, NULL},
    {"stories260K-q4_1", "llama", 0, 0, 1, "q4_1", "f16", 0, NULL},
    {"stories260K-q5_0", "llama", 0, 0, 1, "q5_0", "f16", 0, NULL},
    {"stories260K-q5_1", "llama", 0, 0, 1, "q5_1", "f16", 0, NULL},
    // dim 256 / hidden 512, one k-quant per matrix (make_variants.py's KQ_TYPES; checked below).
    {"llama-tiny-256-kq", "llama", 0, 0, 0, "q4_K", "q4_K", 1, "q6_K"},
};

static void check_variant(const variant *v, const golden *g) {
    char path[256], rec[128];
    snprintf(path, sizeof path, DIR "/%s.gguf", v->stem);
    int nd = 0;
    int64_t dims[GOLDEN_MAX_DIMS];
    snprintf(rec, sizeof rec, "%s.tokens", v->stem);
    const int32_t *toks = golden_i32(g, rec, &nd, dims);
    int n = toks && nd == 1 ? (int)dims[0] : 0;
    snprintf(rec, sizeof rec, "%s.logits", v->stem);
    const float *ref = golden_f32(g, rec, &nd, dims);
    CHECK(n > 0 && ref && nd == 2 && dims[0] == n, "golden records for %s", v->stem);
    if (n <= 0 || !ref || nd != 2 || dims[0] != n) return;

    intact_error err = {0};
    intact_model *m = intact_model_load(path, NULL, &err);
    CHECK(m != NULL, "load %s: %s", path, err.msg);
    if (!m) return;
    // The references are float computations: decode's int8 activations (ggml types, kernels/ggdec.h,
    // tested against their own reference in test_ggml_dec) are switched off here.
    intact_model_set_decode_act(m, INTACT_DECODE_ACT_EXACT, NULL);
    intact_model_info info;
    intact_model_get_info(m, &info);
    CHECK(strcmp(info.format, "gguf") == 0 && strcmp(info.arch, v->arch) == 0, "format %s arch %s",
          info.format, info.arch);
    CHECK(info.rope_style == (v->neox ? INTACT_ROPE_NEOX : INTACT_ROPE_NORM), "rope_style %d",
          info.rope_style);
    CHECK(info.has_qkv_bias == v->bias, "has_qkv_bias %d", info.has_qkv_bias);
    CHECK(info.tied_embeddings == v->tied, "tied_embeddings %d", info.tied_embeddings);
    CHECK(info.n_vocab == dims[1], "n_vocab %d, golden %lld", info.n_vocab, (long long)dims[1]);
    const char *tq = tensor_type(m, "blk.0.attn_q.weight"), *td = tensor_type(m, "blk.0.ffn_down.weight");
    const char *te = tensor_type(m, "token_embd.weight"), *tn = tensor_type(m, "blk.0.attn_norm.weight");
    CHECK(strcmp(tq, v->mat_type) == 0 && strcmp(te, v->mat_type) == 0, "attn_q %s token_embd %s, want %s",
          tq, te, v->mat_type);
    CHECK(strcmp(td, v->down_type) == 0, "ffn_down %s, want %s", td, v->down_type);
    CHECK(strcmp(tn, "f32") == 0, "attn_norm %s, want f32", tn);
    if (!v->tied)
        CHECK(strcmp(tensor_type(m, "output.weight"), v->out_type ? v->out_type : v->mat_type) == 0,
              "output.weight type %s", tensor_type(m, "output.weight"));
    if (v->bias) CHECK(strcmp(tensor_type(m, "blk.1.attn_k.bias"), "f32") == 0, "attn_k.bias type");

    if (info.n_vocab == dims[1]) {
        size_t sz = (size_t)n * (size_t)info.n_vocab;
        float *batch = (float *)calloc(sz, sizeof(float)), *dec = (float *)calloc(sz, sizeof(float));
        if (eval_logits(m, toks, n, info.n_vocab, batch, 0) == 0) {
            double e = max_abs(batch, ref, sz);
            printf("  %-22s batch  vs reference max-abs %.3g\n", v->stem, e);
            CHECK(e <= TOL, "%s batch logits: max-abs %.3g > %g", v->stem, e, TOL);
        }
        if (v->check_decode && eval_logits(m, toks, n, info.n_vocab, dec, 1) == 0) {
            double e = max_abs(dec, ref, sz), eb = max_abs(dec, batch, sz);
            printf("  %-22s decode vs reference max-abs %.3g, vs batch %.3g\n", v->stem, e, eb);
            CHECK(e <= TOL && eb <= TOL, "%s decode logits: max-abs %.3g (ref) %.3g (batch) > %g",
                  v->stem, e, eb, TOL);
        }
        free(batch);
        free(dec);
    }
    intact_model_free(m);
}

int main(void) {
    if (th_skip_program("test_variants", "models/stories260K.bin", NULL)) return 0;
    const char *models = getenv("INTACT_MODELS");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "python3 tests/ref/make_variants.py --models '%s' --out " DIR " > /dev/null",
             models && *models ? models : "models");
    const char *gpath = getenv("INTACT_GOLDENS");
    char gp[1024];
    snprintf(gp, sizeof gp, "%s/variants.gold", gpath && *gpath ? gpath : "tests/goldens");
    golden *g = golden_load(gp);
    int made = 0;

    TEST_CASE("make_variants.py writes the models, golden loads") do {
        int rc = system(cmd);
        CHECK(rc == 0, "`%s` failed (status %d): python3 missing or the script failed", cmd, rc);
        made = rc == 0;
        CHECK(g != NULL, "missing or corrupt %s (regenerate: see tests/goldens/README.md)", gp);
    } while (0);

    for (size_t i = 0; i < sizeof VARIANTS / sizeof VARIANTS[0]; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s matches the reference", VARIANTS[i].stem);
        TEST_CASE(name) do {
            if (!made || !g) { CHECK(0, "skipped: models or golden missing"); break; }
            check_variant(&VARIANTS[i], g);
        } while (0);
    }

    TEST_CASE("llama-tiny-256-kq stores its matrices in every k-quant, as make_variants.py wrote them") do {
        if (!made) { CHECK(0, "skipped: models missing"); break; }
        static const char *const want[][2] = {
            {"blk.0.attn_k.weight", "q6_K"}, {"blk.0.attn_v.weight", "q5_K"},
            {"blk.0.attn_output.weight", "q3_K"}, {"blk.0.ffn_gate.weight", "q2_K"},
            {"blk.0.ffn_up.weight", "q8_K"}, {"blk.1.attn_k.weight", "q3_K"},
            {"blk.1.attn_v.weight", "q2_K"}, {"blk.1.attn_output.weight", "q5_K"},
            {"blk.1.ffn_gate.weight", "q8_K"}, {"blk.1.ffn_down.weight", "q6_K"}};
        intact_error err = {0};
        intact_model *m = intact_model_load(DIR "/llama-tiny-256-kq.gguf", NULL, &err);
        CHECK(m != NULL, "load: %s", err.msg);
        for (size_t i = 0; m && i < sizeof want / sizeof want[0]; i++)
            CHECK(strcmp(tensor_type(m, want[i][0]), want[i][1]) == 0, "%s is %s, want %s", want[i][0],
                  tensor_type(m, want[i][0]), want[i][1]);
        intact_model_free(m);
    } while (0);

    // The CLI on ggml-quantized files: info names the types, ppl and kld run (kld against the same
    // weights in F16: small but nonzero), quantize refuses them unless --allow-requantize.
    TEST_CASE("CLI: info, ppl, kld --base, quantize on q4_0 and k-quant files") do {
        if (!made || cli_harness_init() != 0) { CHECK(0, "skipped: models missing or no temp file"); break; }
        char tok[1024], txt[] = DIR "/ggml-text.txt", out[] = DIR "/requant.gguf";
        th_shared("models/tok512.bin", tok, sizeof tok);
        static const char text[] = "Once upon a time, there was a little girl named Lily. She loved to play "
                                   "outside in the park with her friends. One day she saw a big red ball.\n";
        CHECK(write_path(txt, text, sizeof text - 1) == 0, "write %s", txt);
        static const struct { const char *stem, *base, *types; } cases[] = {
            {"stories260K-q4_0", "stories260K-f16", "tensors      47: 31 q4_0 11 f32 5 f16"},
            {"llama-tiny-256-kq", "llama-tiny-256-f16",
             "tensors      21: 4 q4_K 5 f32 4 q6_K 2 q5_K 2 q3_K 2 q2_K 2 q8_K"}};
        for (int i = 0; i < 2; i++) {
            const char *st = cases[i].stem, *bs = cases[i].base;
            result r = run("info -m '" DIR "/%s.gguf'", st);
            CHECK_OK(r, "info");
            CHECK(strstr(r.out, cases[i].types) != NULL, "info %s: %s", st, r.out);
            rfree(&r);
            r = run("ppl -m '" DIR "/%s.gguf' -z '%s' -f '%s' -c 32 --json", st, tok, txt);
            CHECK_OK(r, "ppl");
            double ppl = json_num(r.out, "ppl");
            CHECK(ppl > 1 && ppl < 1e4, "ppl %s: %s", st, r.out);
            rfree(&r);
            r = run("kld -m '" DIR "/%s.gguf' --base '" DIR "/%s.gguf' -z '%s' -f '%s' -c 32 --json", st, bs, tok, txt);
            CHECK_OK(r, "kld");
            double kld = json_num(r.out, "kld_mean");
            CHECK(kld > 0 && kld < 0.5, "kld %s vs %s: %s", st, bs, r.out);
            printf("  %-18s ppl %.4f, kld vs %s %.5f\n", st, ppl, bs, kld);
            rfree(&r);
            remove(out);
            r = run("quantize -m '" DIR "/%s.gguf' -z '%s' -o '%s' --bits 4 --group 32", st, tok, out);
            CHECK_ERROR(r, 1, "already quantized", "quantize");
            CHECK(strstr(r.err, i ? "q4_K" : "q4_0") && strstr(r.err, "--allow-requantize") && access(out, F_OK) != 0,
                  "quantize %s: %s", st, r.err);
            rfree(&r);
            r = run("quantize -m '" DIR "/%s.gguf' -z '%s' -o '%s' --bits 4 --group 32 --allow-requantize", st, tok, out);
            CHECK_OK(r, "quantize --allow-requantize");
            CHECK(access(out, F_OK) == 0, "no output from --allow-requantize: %s", r.err);
            rfree(&r);
            remove(out);
        }
        cli_harness_done();
    } while (0);

    TEST_CASE("Q8_0 tensor with rows that are not whole blocks is rejected") do {
        if (!made) { CHECK(0, "skipped: models missing"); break; }
        intact_error err = {0};
        intact_model *m = intact_model_load(DIR "/bad-q8_0-shape.gguf", NULL, &err);
        CHECK(m == NULL, "bad-q8_0-shape.gguf loaded");
        CHECK(err.code == INTACT_E_FORMAT || err.code == INTACT_E_UNSUPPORTED, "code %d", err.code);
        CHECK(strstr(err.msg, "ffn_down") != NULL, "message does not name the tensor: %s", err.msg);
        printf("  rejected: %s\n", err.msg);
        intact_model_free(m);
    } while (0);

    golden_free(g);
    return th_finish("test_variants");
}
