// english-12m, the model with a true pivot token ([BOS]: max|h| ~540 on channel 216 in every layer),
// as the proof of the project's claims (issue 16):
//  - its logits and pivot against the independent PyTorch reference (tests/goldens/english12m_fwd.gold);
//  - intact's own GGUF writer: F32 gives the .bin's logits bit for bit, F16/BF16 store exactly the
//    round-to-nearest-even weights and differ from F32 by that rounding only;
//  - IntactKV: W3 g128 RTN with the FP [BOS] prefix lowers KL vs FP by >= 10% on 2 chunks, and a
//    calibrated prefix lowers it further.
// Budget: ~25-40 s at -O2 on 2 threads. Under AddressSanitizer (everything ~3-10x slower) the KL
// cases use chunks of 256 instead of 512 tokens (the effect is the same size there: -16% vs -17%),
// calibration is halved, and the GGUF case writes only the F32 and BF16 files.
#include <stdarg.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "golden.h"
#include "intact.h"
#include "model/model.h"   // the stored weights of converted files (F16/BF16 rounding check)

#if defined(__SANITIZE_ADDRESS__)
#define E12_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define E12_SANITIZED 1
#endif
#endif
#ifndef E12_SANITIZED
#define E12_SANITIZED 0
#endif

enum { NV = 512, N_THREADS = 2, TEXT_BYTES = 6000 };

static char g_model[1024], g_tok[1024], g_eval[1024], g_calib[1024], g_bin[1024];

static intact_model *load(const char *path) {
    intact_error err = {0, ""};
    intact_model *m = intact_model_load(path, g_tok, &err);
    if (!m) printf("  load %s: %s\n", path, err.msg);
    return m;
}

static char *read_text(const char *path, size_t max, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = malloc(max + 1);
    *len = b ? fread(b, 1, max, f) : 0;
    fclose(f);
    if (b) b[*len] = 0;
    return b;
}

// ------------------------------------------------------------------ logits and the BOS residual
typedef struct bos_rows {
    float h[16][384];   // block_out row of position 0, per layer
    int seen;
} bos_rows;

static void observe_bos(void *user, int layer, const char *name, const float *data, int n_tokens, int width) {
    bos_rows *b = user;
    if (strcmp(name, "block_out") || layer >= 16 || width != 384 || n_tokens < 1 || (b->seen >> layer & 1)) return;
    memcpy(b->h[layer], data, sizeof b->h[layer]);   // the first eval's first row is position 0
    b->seen |= 1 << layer;
}

// Logits of every position of toks (n of them) into out (n x NV); optionally BOS block outputs.
static int all_logits(const intact_model *m, const int32_t *toks, int n, float *out, bos_rows *bos) {
    intact_ctx_params cp = {64, N_THREADS, 1};
    intact_error err = {0, ""};
    intact_ctx *c = intact_ctx_new(m, &cp, &err);
    if (c && bos) intact_ctx_set_observer(c, observe_bos, bos);
    int rc = c ? intact_ctx_eval(c, toks, n, &err) : -1;
    for (int t = 0; rc == 0 && t < n; t++) memcpy(out + (size_t)t * NV, intact_ctx_logits(c, t), NV * sizeof *out);
    if (rc) printf("  eval: %s\n", err.msg);
    intact_ctx_free(c);
    return rc;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d;   // NaN fails
    }
    return m;
}

// ------------------------------------------------------------------ the CLI (GGUF writer)
static int run_quiet(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run_quiet(const char *fmt, ...) {
    char args[4096], cmd[6000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "'%s' %s >/dev/null 2>&1 </dev/null", g_bin, args);
    int st = system(cmd);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// Independent round-to-nearest-even references (the engine's are in src/core/fp16.h).
static uint16_t ref_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);   // finite inputs only, as weights are
}
static uint16_t ref_f16(float f) {
    _Float16 h = (_Float16)f;   // the compiler's conversion: round to nearest even
    uint16_t u;
    memcpy(&u, &h, 2);
    return u;
}

// Every stored element of converted matrix c equals the rounding of the original fp32 matrix o.
static long count_misrounded(const it_tensor *o, const it_tensor *c, int type) {
    if (o->type != 0 || c->type != type || o->ne[0] != c->ne[0] || o->ne[1] != c->ne[1]) return -1;
    size_t n = (size_t)(o->ne[0] * o->ne[1]);
    const float *src = o->data;
    const uint16_t *dst = c->data;
    long bad = 0;
    for (size_t i = 0; i < n; i++) bad += dst[i] != (type == 1 ? ref_f16(src[i]) : ref_bf16(src[i]));
    return bad;
}

static long check_rounding(const intact_model *fp, const intact_model *cv, int type) {
    long bad = count_misrounded(&fp->tok_embd, &cv->tok_embd, type);
    for (int l = 0; l < fp->hp.n_layers && bad == 0; l++) {
        const it_layer *a = &fp->layers[l], *b = &cv->layers[l];
        const it_tensor *ta[7] = {&a->wq, &a->wk, &a->wv, &a->wo, &a->w_gate, &a->w_up, &a->w_down};
        const it_tensor *tb[7] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down};
        for (int i = 0; i < 7 && bad == 0; i++) bad = count_misrounded(ta[i], tb[i], type);
    }
    // norms stay f32 and equal
    for (int l = 0; l < fp->hp.n_layers && bad == 0; l++)
        if (memcmp(fp->layers[l].attn_norm, cv->layers[l].attn_norm, 384 * sizeof(float)) ||
            memcmp(fp->layers[l].ffn_norm, cv->layers[l].ffn_norm, 384 * sizeof(float)))
            bad = -2;
    return bad;
}

// ------------------------------------------------------------------ KL
static double kld(const intact_model *m, const intact_model *base, const char *text, size_t len, int n_ctx,
                  const intact_prefix *p) {
    intact_eval_params ep = {n_ctx, 2, N_THREADS, NULL, NULL, p, NULL};
    intact_kld_result r;
    intact_error err = {0, ""};
    if (intact_eval_kld(m, base, text, len, &ep, &r, &err) != 0) {
        printf("  kld: %s\n", err.msg);
        return NAN;
    }
    return r.chunks == 2 ? r.kld_mean : NAN;
}

int main(void) {
    if (th_skip_program("test_english12m", "models/english-12m.bin", "data/eval-en.txt", "data/calib-en.txt", NULL)) return 0;
    th_shared("models/english-12m.bin", g_model, sizeof g_model);
    th_shared("models/tok512.bin", g_tok, sizeof g_tok);
    th_shared("data/eval-en.txt", g_eval, sizeof g_eval);
    th_shared("data/calib-en.txt", g_calib, sizeof g_calib);
    const char *b = getenv("INTACT_BIN");
    snprintf(g_bin, sizeof g_bin, "%s", b && *b ? b : "build/intact");
    const char *groot = getenv("INTACT_GOLDENS");
    char gpath[1024];
    snprintf(gpath, sizeof gpath, "%s/english12m_fwd.gold", groot && *groot ? groot : "tests/goldens");
    golden *g = golden_load(gpath);
    intact_model *fp = load(g_model);
    if (!fp || !g) {
        printf("  missing english-12m (%p) or %s (%p)\n", (void *)fp, gpath, (void *)g);
        TEST_CASE("english-12m and its golden load") CHECK(0, "skipped");
        intact_model_free(fp);
        golden_free(g);
        return th_finish("test_english12m");
    }
    int nd = 0;
    int64_t dims[GOLDEN_MAX_DIMS];
    const int32_t *gtok = golden_i32(g, "tokens", &nd, dims);
    int n_tok = gtok && nd == 1 && dims[0] <= 64 ? (int)dims[0] : 0;
    const float *glog = golden_f32(g, "logits", NULL, NULL), *gmax = golden_f32(g, "bos_maxabs", NULL, NULL);
    const int32_t *gch = golden_i32(g, "bos_channel", NULL, NULL);
    float *logits = calloc((size_t)64 * NV, sizeof *logits);
    bos_rows *bos = calloc(1, sizeof *bos);

    TEST_CASE("logits and the [BOS] pivot equal the PyTorch reference's") do {
        if (!n_tok || !glog || !gmax || !gch || !logits || !bos) { CHECK(0, "golden incomplete"); break; }
        int32_t mine[64];
        intact_error err = {0, ""};
        const char *prompt = "The president said that the new law would";
        int n = intact_tokenize(fp, prompt, strlen(prompt), 1, mine, 64, &err);
        CHECK(n == n_tok && !memcmp(mine, gtok, (size_t)n_tok * sizeof *mine), "tokens differ (%d vs %d)", n, n_tok);
        if (all_logits(fp, gtok, n_tok, logits, bos) != 0) { CHECK(0, "eval"); break; }
        double d = max_abs_diff(logits, glog, (size_t)n_tok * NV);
        // Tolerance: the reference's own float32-vs-float64 logits differ by 1.6e-5 (printed by
        // llama_ref.py) and the engine, summing in another order (SIMD, threads), measures 1.6e-5
        // from it; 1e-4 (the other goldens' bound) leaves room for other CPUs' kernels while any
        // real error (a norm eps of 1e-6 instead of 1e-5, a wrong RoPE pair) moves logits by more.
        printf("  %d tokens, max-abs logits vs PyTorch %.3g\n", n_tok, d);
        CHECK(d <= 1e-4, "logits differ by %g", d);
        for (int l = 0; l < 8; l++) {
            double mx = 0;
            int ch = -1;
            for (int i = 0; i < 384; i++)
                if (fabs(bos->h[l][i]) > mx) { mx = fabs(bos->h[l][i]); ch = i; }
            // the pivot itself: max|h| > 500 on channel 216 in every layer, as the reference finds
            CHECK(ch == gch[l] && fabs(mx - gmax[l]) <= 1e-5 * gmax[l] && mx > 500, "layer %d: %g at %d vs %g at %d", l,
                  mx, ch, (double)gmax[l], gch[l]);
        }
    } while (0);

    TEST_CASE("GGUF from intact's writer: F32 bit for bit, F16/BF16 exactly rounded, differing by that only") do {
        char dir[] = "/tmp/intact_test_e12_XXXXXX";
        if (!mkdtemp(dir) || !n_tok) { CHECK(0, "mkdtemp / golden"); break; }
        // Reference logits of the .bin on the golden tokens.
        float *ref = calloc((size_t)n_tok * NV, sizeof *ref), *got = calloc((size_t)n_tok * NV, sizeof *got);
        if (!ref || !got || all_logits(fp, gtok, n_tok, ref, NULL) != 0) { CHECK(0, "eval"); free(ref); free(got); break; }
        const char *types[3] = {"f32", "f16", "bf16"};
        double diff[3] = {0, 0, 0};
        for (int k = 0; k < 3; k++) {
            if (E12_SANITIZED && k == 1) continue;   // under ASan: F32 and BF16 only (time)
            char path[128];
            snprintf(path, sizeof path, "%s/e12-%s.gguf", dir, types[k]);
            int rc = run_quiet("quantize -m '%s' -z '%s' -o '%s' --method none --outtype %s", g_model, g_tok, path,
                               types[k]);
            intact_model *m = rc == 0 ? load(path) : NULL;
            CHECK(m != NULL, "%s: quantize rc %d", types[k], rc);
            if (!m) continue;
            if (all_logits(m, gtok, n_tok, got, NULL) == 0) {
                diff[k] = max_abs_diff(ref, got, (size_t)n_tok * NV);
                if (k == 0) CHECK(!memcmp(ref, got, (size_t)n_tok * NV * sizeof *ref), "f32 not bit-identical: %g", diff[k]);
            } else {
                CHECK(0, "%s eval", types[k]);
            }
            if (k > 0) {
                long bad = check_rounding(fp, m, k == 1 ? 1 : 30);
                CHECK(bad == 0, "%s: %ld weights not round-to-nearest-even of the .bin's (or types/norms wrong)",
                      types[k], bad);
            }
            intact_model_free(m);
            remove(path);
        }
        // Rounding only: BF16 keeps 8 significand bits (relative error <= 2^-9), F16 11 (2^-12). The
        // weights were checked element by element above; the logits then move by the measured 3.1e-2
        // (bf16) and 4.7e-3 (f16) max-abs: bounded here at ~3-4x that, and f16 must beat bf16.
        printf("  max-abs logits vs the .bin: f32 %.3g, f16 %.3g%s, bf16 %.3g\n", diff[0], diff[1],
               E12_SANITIZED ? " (skipped)" : "", diff[2]);
        CHECK(diff[2] > 0 && diff[2] < 0.1, "bf16 %g", diff[2]);
        if (!E12_SANITIZED) CHECK(diff[1] > 0 && diff[1] < diff[2] && diff[1] < 0.02, "f16 %g vs bf16 %g", diff[1], diff[2]);

        // A quantized file (W4 g128 RTN) reloads to the in-memory quantization's logits, bit for bit.
        char qpath[128];
        snprintf(qpath, sizeof qpath, "%s/e12-w4.gguf", dir);
        int rc = run_quiet("quantize -m '%s' -z '%s' -o '%s' --bits 4 --group 128", g_model, g_tok, qpath);
        intact_model *qf = rc == 0 ? load(qpath) : NULL, *qm = load(g_model);
        intact_quant_params qp = intact_quant_default_params();
        qp.n_threads = N_THREADS;
        intact_error err = {0, ""};
        int ok = qf && qm && intact_model_quantize(qm, &qp, NULL, &err) == 0;
        CHECK(ok, "quantize rc %d: %s", rc, err.msg);
        if (ok && all_logits(qf, gtok, n_tok, got, NULL) == 0 && all_logits(qm, gtok, n_tok, ref, NULL) == 0)
            CHECK(!memcmp(ref, got, (size_t)n_tok * NV * sizeof *ref), "W4 g128 file vs in memory: %g",
                  max_abs_diff(ref, got, (size_t)n_tok * NV));
        intact_model_free(qf);
        intact_model_free(qm);
        remove(qpath);
        rmdir(dir);
        free(ref);
        free(got);
    } while (0);

    // IntactKV on the quantized model. Chunks of 512 (256 under ASan), 2 of them, of eval-en.txt.
    int n_ctx = E12_SANITIZED ? 256 : 512;
    size_t tlen = 0, clen = 0;
    char *text = read_text(g_eval, TEXT_BYTES, &tlen), *calib = read_text(g_calib, 200000, &clen);
    intact_model *qm = load(g_model);
    intact_quant_params qp = intact_quant_default_params();
    qp.bits = 3;
    qp.group = 128;
    qp.n_threads = N_THREADS;
    intact_error err = {0, ""};
    int q_ok = text && calib && qm && intact_model_quantize(qm, &qp, NULL, &err) == 0;
    const int32_t bos_id = 1;
    intact_prefix *pfx = q_ok ? intact_prefix_build(fp, &bos_id, 1, 1, &err) : NULL;
    double kl_plain = NAN, kl_fp = NAN;

    TEST_CASE("IntactKV: W3 g128 RTN + the FP [BOS] prefix lowers KL vs FP by >= 10% (2 chunks)") {
        CHECK(q_ok && pfx, "setup: %s", err.msg);
        if (q_ok && pfx) {
            kl_plain = kld(qm, fp, text, tlen, n_ctx, NULL);
            kl_fp = kld(qm, fp, text, tlen, n_ctx, pfx);
            printf("  n_ctx %d: KL %.5f -> %.5f with the FP [BOS] prefix (%.1f%% lower)\n", n_ctx, kl_plain, kl_fp,
                   100 * (1 - kl_fp / kl_plain));
            CHECK(kl_fp <= 0.9 * kl_plain, "%g vs %g", kl_fp, kl_plain);
        }
    }

    TEST_CASE("a calibrated [BOS] prefix lowers KL further") {
        intact_ikv_calib_params cp = intact_ikv_calib_default_params();
        // Small and fast (~10 s): 16 windows of 64 tokens of calib-en.txt (disjoint from eval-en.txt),
        // 3 epochs at lr 2e-3 (a few steps need a larger rate than the paper's 2e-4 over 20 epochs).
        // Measured: KL 0.1563 -> 0.1463 (6.4% below the FP prefix's); 16 x 128 x 4 at 1e-3 gave 5.7%.
        cp.samples = E12_SANITIZED ? 8 : 16;
        cp.len = 64;
        cp.epochs = E12_SANITIZED ? 2 : 3;
        cp.lr = 2e-3f;
        cp.n_threads = N_THREADS;
        intact_ikv_calib_report rep = {0, 0, 0};
        int ok = pfx && !isnan(kl_fp) &&
                 intact_prefix_calibrate(qm, fp, pfx, calib, clen, &cp, &rep, &err) == 0;
        CHECK(ok, "%s", err.msg);
        if (ok) {
            double kl_cal = kld(qm, fp, text, tlen, n_ctx, pfx);
            printf("  calibration loss %.4g -> %.4g in %.1f s; KL %.5f -> %.5f (%.1f%% of the FP-prefix KL)\n",
                   rep.loss_before, rep.loss_after, rep.seconds, kl_fp, kl_cal, 100 * kl_cal / kl_fp);
            CHECK(rep.loss_after < rep.loss_before, "loss %g -> %g", rep.loss_before, rep.loss_after);
            CHECK(kl_cal < 0.98 * kl_fp, "%g vs %g", kl_cal, kl_fp);
        }
    }

    intact_prefix_free(pfx);
    intact_model_free(qm);
    free(text);
    free(calib);
    free(logits);
    free(bos);
    golden_free(g);
    intact_model_free(fp);
    return th_finish("test_english12m");
}
