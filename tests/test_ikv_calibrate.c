// IntactKV calibration on stories260K (W3 g32 RTN vs its FP model): the training forward equals
// the engine's, the analytic prefix K/V gradient matches central differences, a few epochs of
// AdamW lower the loss and leave a prefix that saves and loads, and activation quantization (A8)
// is modelled.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "intact.h"
#include "ikv/calibrate.h"
#include "ikv/train.h"

static intact_model *load(const char *bin, const char *tok, int quantize) {
    intact_error err = {0, ""};
    intact_model *m = intact_model_load(bin, tok, &err);
    // The training forward (ikv/train.c) models float activations; the engine it is checked against
    // runs them exactly too (its default int8 activations have their own tests).
    if (m) intact_model_set_decode_act(m, INTACT_DECODE_ACT_EXACT, NULL);
    if (m && quantize) {
        intact_quant_params q = intact_quant_default_params();
        q.method = "rtn", q.bits = 3, q.group = 32, q.n_threads = 2;
        if (intact_model_quantize(m, &q, NULL, &err) != 0) {
            intact_model_free(m);
            m = NULL;
        }
    }
    if (!m) printf("  load: %s\n", err.msg);
    return m;
}

// Calibration text as ids (no BOS), or NULL.
static int32_t *calib_tokens(const intact_model *m, int *n) {
    char path[1024];
    FILE *f = fopen(th_shared("data/calib-en.txt", path, sizeof path), "rb");
    if (!f) return NULL;
    static char text[200000];
    size_t len = fread(text, 1, sizeof text, f);
    fclose(f);
    int cap = (int)len + 16;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    *n = ids ? intact_tokenize(m, text, len, 0, ids, cap, NULL) : -1;
    if (*n < 0) { free(ids); return NULL; }
    return ids;
}

typedef struct { float *dst; int len, dim, rows[64]; } obs;
static void block_obs(void *user, int layer, const char *name, const float *x, int n, int width) {
    obs *o = user;
    if (strcmp(name, "block_out") || layer >= 64) return;
    memcpy(o->dst + ((size_t)layer * o->len + o->rows[layer]) * width, x, (size_t)n * width * sizeof *x);
    o->rows[layer] += n;
}

static void on_epoch(void *user, int epoch, int epochs, double loss) {
    double *losses = user;
    losses[epoch - 1] = loss;
    printf("  epoch %d/%d loss %.6g\n", epoch, epochs, loss);
}
// Training forward vs the engine (intact_ctx_use_prefix + eval, observer "block_out"). Returns
// the largest absolute difference relative to max(1, max |block_out|), or -1 on error.
// f32_cache: an explicit F32 cache (kv_quant), whose per-query attention order the training
// forward mirrors; else the default cache, whose tiled attention (kv_flash.h) rounds differently.
static double forward_vs_engine(const intact_model *fp, const intact_model *qm, const int32_t *pt, int P,
                                const int32_t *ids, int T, int f32_cache) {
    intact_model_info in;
    intact_model_get_info(qm, &in);
    int L = in.n_layers, dim = in.dim;
    intact_error err = {0, ""};
    intact_prefix *p = intact_prefix_build(fp, pt, P, 0, &err);
    ikv_train *w = p ? ikv_train_new(qm, P, T, 1, &err) : NULL;
    float *eng = malloc(sizeof(float) * L * T * dim);
    intact_ctx_params cp = {P + T, 1, 0};
    intact_ctx *c = intact_ctx_new(qm, &cp, &err);
    intact_kv_params kvp = {0};
    if (c && f32_cache && intact_ctx_set_kv(c, &kvp, &err) != 0) {
        intact_ctx_free(c);
        c = NULL;
    }
    obs o = {eng, T, dim, {0}};
    double worst = -1, scale = 1;
    if (p && w && c && eng) {
        intact_ctx_set_observer(c, block_obs, &o);
        if (intact_ctx_use_prefix(c, p, &err) == 0 && intact_ctx_eval(c, ids, T, &err) == 0) {
            ikv_train_forward(w, p, ids, NULL);
            worst = 0;
            for (size_t i = 0; i < (size_t)L * T * dim; i++) {
                double d = fabs((double)w->x[(size_t)T * dim + i] - eng[i]);
                worst = d > worst ? d : worst;
                scale = fabs(eng[i]) > scale ? fabs(eng[i]) : scale;
            }
            printf("  max |block_out| %.3g, training vs engine max-abs %.3g\n", scale, worst);
            worst /= scale;
        }
    }
    if (worst < 0) printf("  %s\n", err.msg);
    intact_ctx_free(c);
    free(eng);
    ikv_train_free(w);
    intact_prefix_free(p);
    return worst;
}

// Analytic d loss / d prefix K, V against central differences: in every layer, for K and for V,
// the largest-gradient entry of kv head (l % n_kv) (so the difference stands far above fp32
// rounding noise), then the derivative along the whole normalized gradient. Also checks that two
// threads give the same bits. Returns the worst relative error, or -1 on error.
static double grad_check(const intact_model *fp, const intact_model *qm, const int32_t *pt, int P,
                         const int32_t *ids, int T) {
    intact_model_info in;
    intact_model_get_info(qm, &in);
    int L = in.n_layers, dim = in.dim, kvd = in.n_kv_heads * in.head_dim;
    intact_error err = {0, ""};
    intact_prefix *p = intact_prefix_build(fp, pt, P, 0, &err);
    ikv_train *wf = p ? ikv_train_new(fp, P, T, 1, &err) : NULL;
    ikv_train *w = p ? ikv_train_new(qm, P, T, 1, &err) : NULL;
    ikv_train *w2 = p ? ikv_train_new(qm, P, T, 2, &err) : NULL;
    size_t np = (size_t)L * P * kvd;
    float *tgt = malloc(sizeof(float) * L * T * dim), *g = calloc(2 * np, sizeof(float));
    float *g2 = calloc(2 * np, sizeof(float)), *save = malloc(sizeof(float) * 2 * np);
    double worst = -1;
    if (!p || !wf || !w || !w2 || !tgt || !g || !g2 || !save) {
        printf("  %s\n", err.msg);
        goto done;
    }
    // Targets: the FP model with the FP prefix (the training forward equals the engine's).
    ikv_train_forward(wf, p, ids, NULL);
    memcpy(tgt, wf->x + (size_t)T * dim, sizeof(float) * L * T * dim);
    double loss = ikv_train_forward(w, p, ids, tgt);
    ikv_train_backward(w, tgt, g, g + np);
    printf("  loss %.6g\n", loss);
    worst = 0;
    for (int l = 0; l < L; l++)
        for (int kv = 0; kv < 2; kv++) {
            float *par = kv ? p->v : p->k, *gr = g + (kv ? np : 0);
            size_t best = 0;
            double gbest = -1;
            for (int r = 0; r < P; r++)
                for (int d = 0; d < in.head_dim; d++) {
                    size_t i = ((size_t)l * P + r) * kvd + (size_t)(l % in.n_kv_heads) * in.head_dim + d;
                    if (fabs(gr[i]) > gbest) gbest = fabs(gr[i]), best = i;
                }
            // h = 1e-2: the loss is smooth (truncation error ~h^2 times its third derivative), and
            // the fp32 forward's rounding noise (~1e-7 relative per activation, the loss summed in
            // double) stays ~1e-4 of the difference 2*h*grad; 1e-2 relative covers both with margin.
            float x0 = par[best], h = 1e-2f;
            par[best] = x0 + h;
            double lp = ikv_train_forward(w, p, ids, tgt);
            par[best] = x0 - h;
            double lm = ikv_train_forward(w, p, ids, tgt);
            par[best] = x0;
            double fd = (lp - lm) / ((double)(x0 + h) - (double)(x0 - h));
            double an = gr[best], rel = fabs(fd - an) / fmax(fabs(an), 1e-30);
            printf("  layer %d %s[%zu]: analytic %.6e  numeric %.6e  rel %.2e\n", l, kv ? "V" : "K",
                   best % ((size_t)P * kvd), an, fd, rel);
            worst = rel > worst ? rel : worst;
        }
    // The whole gradient at once: the derivative along u = g/|g| must be |g|.
    double gn = 0, eps = 1e-2, lpm[2];
    for (size_t i = 0; i < 2 * np; i++) gn += (double)g[i] * g[i];
    gn = sqrt(gn);
    memcpy(save, p->k, sizeof(float) * np), memcpy(save + np, p->v, sizeof(float) * np);
    for (int sgn = 0; sgn < 2; sgn++) {
        for (size_t i = 0; i < np; i++) {
            p->k[i] = save[i] + (float)((sgn ? -eps : eps) * g[i] / gn);
            p->v[i] = save[np + i] + (float)((sgn ? -eps : eps) * g[np + i] / gn);
        }
        lpm[sgn] = ikv_train_forward(w, p, ids, tgt);
    }
    memcpy(p->k, save, sizeof(float) * np), memcpy(p->v, save + np, sizeof(float) * np);
    double dd = (lpm[0] - lpm[1]) / (2 * eps), rel = fabs(dd - gn) / gn;
    printf("  directional: |g| %.6e  numeric %.6e  rel %.2e\n", gn, dd, rel);
    worst = rel > worst ? rel : worst;
    // Threads split rows and (token, head) items only, never one sum: the same gradient bits.
    if (ikv_train_forward(w2, p, ids, tgt) != loss) worst = 1, printf("  2-thread loss differs\n");
    ikv_train_backward(w2, tgt, g2, g2 + np);
    if (memcmp(g, g2, sizeof(float) * 2 * np)) worst = 1, printf("  2-thread gradient differs\n");
done:
    free(tgt); free(g); free(g2); free(save);
    ikv_train_free(w); ikv_train_free(w2); ikv_train_free(wf);
    intact_prefix_free(p);
    return worst;
}

int main(void) {
    if (th_skip_program("test_ikv_calibrate", "data/calib-en.txt", NULL)) return 0;
    char bin[1024], tok[1024];
    th_shared("models/stories260K.bin", bin, sizeof bin);
    th_shared("models/tok512.bin", tok, sizeof tok);
    intact_model *fp = load(bin, tok, 0), *qm = load(bin, tok, 1);
    int n_ids = 0;
    int32_t *ids = fp ? calib_tokens(fp, &n_ids) : NULL;
    if (!fp || !qm || !ids || n_ids < 8 * 64 + 200) {
        printf("  cannot load stories260K (models/) / calib-en.txt ($INTACT_SHARED)\n");
        return 1;
    }
    intact_model_info in;
    intact_model_get_info(fp, &in);
    int L = in.n_layers, kvd = in.n_kv_heads * in.head_dim;
    intact_error err = {0, ""};
    int32_t pt[2] = {in.bos_id, ids[500]};

    // One micro-batch (64 tokens) with an explicit F32 cache runs the very same kernels as the
    // engine: bit-identical. The default cache attends tiled (kv_flash.h) and in micro-batches of
    // up to 512 (70 tokens: one 70-row batch, 64 + 6 with an explicit cache, and the matmul kernels
    // round those differently), so there only agreement to 1e-5 (relative to the largest
    // activation) is expected.
    TEST_CASE("stories260K W3: training forward equals the engine's block_out bit for bit (64 tokens, F32 cache)") {
        double d = forward_vs_engine(fp, qm, pt, 2, ids, 64, 1);
        CHECK(d == 0, "differ by %g", d);
        d = forward_vs_engine(fp, qm, pt, 2, ids, 64, 0);
        CHECK(d >= 0 && d <= 1e-5, "default (tiled) cache: differ by %g (relative)", d);
    }
    TEST_CASE("stories260K W3: training forward equals the engine's across micro-batches (70 tokens)") {
        double d = forward_vs_engine(fp, qm, pt, 2, ids, 70, 0);
        CHECK(d >= 0 && d <= 1e-5, "differ by %g (relative)", d);
    }
    TEST_CASE("stories260K W3: prefix K/V gradient matches central differences in every layer") {
        double r = grad_check(fp, qm, pt, 2, ids + 100, 24);
        CHECK(r >= 0 && r <= 1e-2, "worst relative error %g", r);
    }
    // qwen2 covers what stories260K lacks: NeoX RoPE (pairs i, i+half) and q/k/v biases. Written
    // to its own folder so it never races test_variants over build/variants.
    char cmd[1400];
    const char *models = getenv("INTACT_MODELS");
    snprintf(cmd, sizeof cmd, "python3 tests/ref/make_variants.py --models '%s' --out build/ikv-variants > /dev/null",
             models && *models ? models : "models");
    intact_model *qfp = NULL, *qq = NULL;
    TEST_CASE("qwen2-tiny W3 (NeoX RoPE, biases): forward equals the engine's, gradient matches") {
        CHECK(system(cmd) == 0, "%s failed", cmd);
        qfp = load("build/ikv-variants/qwen2-tiny.gguf", NULL, 0);
        qq = load("build/ikv-variants/qwen2-tiny.gguf", NULL, 1);
        CHECK(qfp && qq, "qwen2-tiny did not load");
        if (qfp && qq) {
            int32_t qids[64], qpt[3] = {1, 17, 250};
            for (int i = 0; i < 64; i++) qids[i] = ids[i] % 300;
            double d = forward_vs_engine(qfp, qq, qpt, 3, qids, 40, 1);
            CHECK(d == 0, "differ by %g", d);
            d = forward_vs_engine(qfp, qq, qpt, 3, qids, 40, 0);
            CHECK(d >= 0 && d <= 1e-5, "default (tiled) cache: differ by %g (relative)", d);
            double r = grad_check(qfp, qq, qpt, 3, qids, 20);
            CHECK(r >= 0 && r <= 1e-2, "worst relative error %g", r);
        }
    }
    intact_model_free(qfp);
    intact_model_free(qq);

    TEST_CASE("calibration (8 x 64 tokens, 5 epochs) lowers the loss; the prefix saves and loads") {
        enum { NS = 8, LEN = 64, EPOCHS = 5 };
        int32_t bos = in.bos_id;
        intact_prefix *p = intact_prefix_build(fp, &bos, 1, 1, &err);
        CHECK(p, "%s", err.msg);
        int32_t *samples = malloc(sizeof(int32_t) * NS * LEN);
        for (int s = 0; s < NS; s++) memcpy(samples + s * LEN, ids + (size_t)s * (n_ids - LEN) / NS, sizeof(int32_t) * LEN);
        ikv_calib_opts o = ikv_calib_default_opts();
        double losses[EPOCHS] = {0};
        o.epochs = EPOCHS, o.n_threads = 1, o.seed = 7, o.progress = on_epoch, o.progress_user = losses;
        ikv_calib_report rep;
        int rc = p ? ikv_calibrate(qm, fp, p, samples, NS, LEN, &o, &rep, &err) : -1;
        CHECK(rc == 0, "%s", err.msg);
        if (rc == 0) {
            printf("  loss before %.6g, epochs %.6g -> %.6g, after %.6g (%d steps, %.2f s)\n", rep.loss_init,
                   rep.loss_first, rep.loss_last, rep.loss_final, rep.steps, rep.seconds);
            for (int e = 1; e < EPOCHS; e++) CHECK(losses[e] < losses[e - 1], "epoch %d: %g >= %g", e + 1, losses[e], losses[e - 1]);
            CHECK(rep.loss_last < rep.loss_first && rep.loss_final < rep.loss_init, "loss did not decrease");
            CHECK(rep.steps == NS * EPOCHS, "steps %d", rep.steps);
            CHECK(p->n == 1 && p->n_layers == L && p->n_kv_heads == in.n_kv_heads && p->head_dim == in.head_dim, "shape");
            const char *path = "build/test_ikv_calibrate.ikv";
            CHECK(intact_prefix_save(p, path, 0, &err) == 0, "%s", err.msg);
            intact_prefix *r = intact_prefix_load(path, qm, &err);
            CHECK(r, "%s", err.msg);
            size_t np = (size_t)L * kvd;
            if (r) CHECK(r->n == 1 && !memcmp(r->k, p->k, np * sizeof(float)) && !memcmp(r->v, p->v, np * sizeof(float)),
                         "round trip changed the prefix");
            intact_prefix_free(r);
            remove(path);
        }
        ikv_calib_opts bad = o;
        bad.lr = 0;
        CHECK(p && ikv_calibrate(qm, fp, p, samples, NS, LEN, &bad, NULL, &err) != 0, "lr 0 accepted");
        free(samples);
        intact_prefix_free(p);
    }
    // Issue 14: the training forward is the engine's, so calibration also sees activation
    // quantization. W3 + A8: calibration is no longer refused, the training loss is the A8 model's
    // (not the A16 one's), and AdamW lowers it (the backward treats the quantizer as the identity).
    TEST_CASE("calibration models activation quantization (W3 A8)") {
        enum { NS = 4, LEN = 64, EPOCHS = 3 };
        intact_model *qa = load(bin, tok, 1);
        intact_act_quant a8 = {8, 1.0f, 0};
        CHECK(qa && intact_model_set_act_quant(qa, &a8, &err) == 0, "A8 model");
        int32_t bos = in.bos_id;
        intact_prefix *p = intact_prefix_build(fp, &bos, 1, 1, &err);
        int32_t *samples = malloc(sizeof(int32_t) * NS * LEN);
        for (int s = 0; s < NS; s++) memcpy(samples + s * LEN, ids + (size_t)s * (n_ids - LEN) / NS, sizeof(int32_t) * LEN);
        ikv_train *w16 = p && qa ? ikv_train_new(qm, 1, LEN, 1, &err) : NULL;
        ikv_train *w8 = p && qa ? ikv_train_new(qa, 1, LEN, 1, &err) : NULL;
        CHECK(w16 && w8, "train: %s", err.msg);
        if (w16 && w8) {
            double l16 = ikv_train_forward(w16, p, samples, NULL), l8 = ikv_train_forward(w8, p, samples, NULL);
            CHECK(l16 == 0 && l8 == 0, "losses without target %g %g", l16, l8);
            size_t td = (size_t)LEN * in.dim;
            double d = 0;
            for (int l = 1; l <= L; l++)
                for (size_t i = 0; i < td; i++) d = fmax(d, fabs((double)w8->x[l * td + i] - w16->x[l * td + i]));
            printf("  A8 vs A16 training forward, max |block_out diff| %.3g\n", d);
            CHECK(d > 1e-4, "A8 changed nothing in the training forward (%g)", d);
        }
        ikv_train_free(w16);
        ikv_train_free(w8);
        ikv_calib_opts o = ikv_calib_default_opts();
        o.epochs = EPOCHS, o.n_threads = 1, o.seed = 7;
        ikv_calib_report rep;
        int rc = p && qa ? ikv_calibrate(qa, fp, p, samples, NS, LEN, &o, &rep, &err) : -1;
        CHECK(rc == 0, "%s", err.msg);
        if (rc == 0) {
            printf("  A8: loss before %.6g, after %.6g\n", rep.loss_init, rep.loss_final);
            CHECK(rep.loss_final < rep.loss_init, "loss did not decrease");
        }
        free(samples);
        intact_prefix_free(p);
        intact_model_free(qa);
    }
    free(ids);
    intact_model_free(qm);
    intact_model_free(fp);
    return th_finish("test_ikv_calibrate");
}
