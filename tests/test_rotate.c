// QuaRot-style rotation (quant/rotate.c, kernels/hadamard.c): the fast transforms against explicit
// Hadamard products, and rotated models against the originals: the same logits (batched and token
// by token) on the shared models and on generated F16 / Q8_0 / qwen2 / untied models, save -> load,
// rotate + quantize, the IntactKV training forward, and what must be refused.
#include <stdint.h>
#include <unistd.h>

#include "harness.h"
#include "intact.h"
#include "ikv/train.h"
#include "kernels/hadamard.h"
#include "model/model.h"
#include "quant/rotate.h"

#define TOL 1e-4   // max-abs logits, rotated vs original (fp32 rounding is ~1e-5 here)

static char g_dir[] = "/tmp/intact-rot-XXXXXX";
static int g_made;     // generated variants in g_dir

static uint64_t g_rng = 88172645463325252ull;
static double urand(void) {   // xorshift64 in [-1, 1)
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / 4503599627370496.0 - 1.0;
}

static int popcount(unsigned v) { int c = 0; for (; v; v &= v - 1) c++; return c; }

// Largest |fast - explicit| over rows x (rows, n): y = x blockdiag(H_b) / sqrt(b), explicit in double.
static double fwht_error(int rows, int n, int b) {
    float *x = malloc(sizeof(float) * rows * n);
    double *xd = malloc(sizeof(double) * rows * n), *xl = malloc(sizeof(double) * rows * n), worst = 0;
    for (int i = 0; i < rows * n; i++) x[i] = (float)urand(), xd[i] = x[i];
    for (int j = 0; j < n; j++)   // (n, lanes = rows) layout for the f64 kernel
        for (int r = 0; r < rows; r++) xl[(size_t)j * rows + r] = xd[(size_t)r * n + j];
    kern_hadamard_rows(x, rows, n, b);
    kern_fwht_f64(xl, n, b, rows);
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < n; i++) {
            int b0 = i / b * b;
            double y = 0;
            for (int j = b0; j < b0 + b; j++)   // H[i][j] = (-1)^popcount(i & j) within the block
                y += (popcount((unsigned)((i - b0) & (j - b0))) & 1 ? -1 : 1) * xd[(size_t)r * n + j];
            double e1 = fabs(x[(size_t)r * n + i] - y / sqrt(b));
            double e2 = fabs(xl[(size_t)i * rows + r] - y) / sqrt(b) * 1e5;
            worst = fmax(worst, fmax(e1, e2));   // f64 must be 1e5 times tighter than f32
        }
    free(x), free(xd), free(xl);
    return worst;
}

static intact_model *load(const char *path, const char *tok) {
    intact_error err = {0, ""};
    intact_model *m = intact_model_load(path, tok, &err);
    if (!m) printf("  load %s: %s\n", path, err.msg);
    return m;
}

static int rotate_t(intact_model *m, const char *method, int bits, int n_threads, intact_error *err) {
    intact_quant_params p = intact_quant_default_params();
    p.method = method, p.bits = bits, p.group = 32, p.rotate = 1, p.n_threads = n_threads;
    return intact_model_quantize(m, &p, NULL, err);
}
static int rotate(intact_model *m, const char *method, int bits, intact_error *err) {
    return rotate_t(m, method, bits, 2, err);
}

enum { N_TOK = 40 };
// Logits of N_TOK tokens, one batched eval (logits_all) or one at a time; malloc'd (N_TOK, vocab).
static float *logits(const intact_model *m, int one_by_one) {
    intact_model_info in;
    intact_model_get_info(m, &in);
    int32_t toks[N_TOK];
    for (int i = 0; i < N_TOK; i++)
        toks[i] = i == 0 && in.bos_id >= 0 ? in.bos_id : (int32_t)((i * 7919 + 13) % in.n_vocab);
    intact_ctx_params cp = {N_TOK, 2, !one_by_one};
    intact_error err = {0, ""};
    intact_ctx *c = intact_ctx_new(m, &cp, &err);
    float *out = malloc(sizeof(float) * N_TOK * in.n_vocab);
    int ok = c && out;
    for (int i = 0; ok && i < N_TOK; i += one_by_one ? 1 : N_TOK) {
        ok = intact_ctx_eval(c, toks + i, one_by_one ? 1 : N_TOK, &err) == 0;
        for (int j = 0; ok && j < (one_by_one ? 1 : N_TOK); j++)
            memcpy(out + (size_t)(i + j) * in.n_vocab, intact_ctx_logits(c, one_by_one ? -1 : j),
                   sizeof(float) * in.n_vocab);
    }
    if (!ok) printf("  eval: %s\n", err.msg), free(out), out = NULL;
    intact_ctx_free(c);
    return out;
}

static double max_abs(const float *a, const float *b, size_t n) {
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= w)) w = d;   // NaN fails
    }
    return w;
}

// Rotated (rotate only) vs original, batched and one by one; also checks the bookkeeping.
static void check_same_function(const char *path, const char *tok, int want_block) {
    intact_model *fp = load(path, tok), *rm = load(path, tok);
    intact_error err = {0, ""};
    if (!fp || !rm) { CHECK(0, "models missing"); goto done; }
    // Same function in exact arithmetic: float activations on both sides (a quantized original
    // would otherwise decode with int8 activations, the rotated F32 copy not).
    intact_model_set_decode_act(fp, INTACT_DECODE_ACT_EXACT, NULL);
    intact_model_set_decode_act(rm, INTACT_DECODE_ACT_EXACT, NULL);
    if (rotate(rm, NULL, 0, &err) != 0) { CHECK(0, "rotate: %s", err.msg); goto done; }
    CHECK(rm->rotated && rm->rot_down_block == want_block, "rotated %d block %d (want %d)", rm->rotated,
          rm->rot_down_block, want_block);
    CHECK(rm->layers[0].attn_norm[0] == 1.0f && rm->output_norm[rm->hp.dim - 1] == 1.0f, "norms not folded");
    CHECK(rm->tok_embd.type == IT_TYPE_F32 && rm->layers[0].w_down.type == IT_TYPE_F32, "not F32");
    intact_model_info in;
    intact_model_get_info(rm, &in);
    for (int obo = 0; obo < 2; obo++) {
        float *a = logits(fp, obo), *b = logits(rm, obo);
        double d = a && b ? max_abs(a, b, (size_t)N_TOK * in.n_vocab) : 1e9;
        printf("  %s: max |logit diff| %s %.3g (block %d, tied after: %d)\n", strrchr(path, '/') + 1,
               obo ? "token by token" : "batched", d, rm->rot_down_block, rm->tied);
        CHECK(d <= TOL, "max |diff| %.3g", d);
        free(a), free(b);
    }
done:
    intact_model_free(fp), intact_model_free(rm);
}

// Mean KL(fp || m) over the N_TOK positions.
static double mean_kl(const float *fp, const float *q, int n_vocab) {
    double kl = 0;
    for (int t = 0; t < N_TOK; t++) {
        const float *a = fp + (size_t)t * n_vocab, *b = q + (size_t)t * n_vocab;
        double ma = -1e30, mb = -1e30, za = 0, zb = 0;
        for (int i = 0; i < n_vocab; i++) ma = fmax(ma, a[i]), mb = fmax(mb, b[i]);
        for (int i = 0; i < n_vocab; i++) za += exp(a[i] - ma), zb += exp(b[i] - mb);
        for (int i = 0; i < n_vocab; i++) {
            double la = a[i] - ma - log(za), lb = b[i] - mb - log(zb);
            kl += exp(la) * (la - lb);
        }
    }
    return kl / N_TOK;
}

static void block_obs(void *user, int layer, const char *name, const float *x, int n, int width) {
    if (!strcmp(name, "block_out")) memcpy((float *)user + (size_t)layer * n * width, x, sizeof(float) * n * width);
}

int main(void) {
    if (th_skip_program("test_rotate", "models/english-1m.bin", "data/calib-en.txt", NULL)) return 0;
    char en[1024], st[1024], tok[1024], calib[1024], path[1200], cmd[2048];
    th_shared("models/english-1m.bin", en, sizeof en);
    th_shared("models/stories260K.bin", st, sizeof st);
    th_shared("models/tok512.bin", tok, sizeof tok);
    th_shared("data/calib-en.txt", calib, sizeof calib);
    intact_error err = {0, ""};

    TEST_CASE("FWHT equals explicit Hadamard products (n = 1..1024, every block; 352/32, 172/4, 5632/512)") {
        double worst = 0;
        for (int n = 1; n <= 1024; n *= 2)
            for (int b = 1; b <= n; b *= 2) worst = fmax(worst, fwht_error(3, n, b));
        worst = fmax(worst, fmax(fwht_error(2, 352, 32), fmax(fwht_error(2, 172, 4), fwht_error(1, 5632, 512))));
        printf("  worst |fast - explicit| %.3g\n", worst);
        CHECK(worst < 2e-6, "%.3g", worst);
    }
    TEST_CASE("H H = n I, H symmetric and +-1 (n = 1..256); block helpers; signs") {
        for (int n = 1; n <= 256; n *= 2) {
            double *h = calloc((size_t)n * n, sizeof *h);
            for (int i = 0; i < n; i++) h[(size_t)i * n + i] = 1;
            kern_fwht_f64(h, n, n, n);   // every column e_j -> H e_j
            int bad = 0;
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++) {
                    double s = 0;
                    for (int k = 0; k < n; k++) s += h[(size_t)i * n + k] * h[(size_t)k * n + j];
                    bad += s != (i == j ? n : 0) || h[(size_t)i * n + j] != h[(size_t)j * n + i] ||
                           fabs(h[(size_t)i * n + j]) != 1;
                }
            CHECK(!bad, "n = %d: %d bad entries", n, bad);
            free(h);
        }
        CHECK(kern_hadamard_block_of(5632) == 512 && kern_hadamard_block_of(352) == 32 &&
              kern_hadamard_block_of(4096) == 4096 && kern_hadamard_block_of(172) == 4, "block_of");
        CHECK(kern_hadamard_block_ok(352, 32) && !kern_hadamard_block_ok(352, 64) && !kern_hadamard_block_ok(352, 3) &&
              !kern_hadamard_block_ok(352, 0), "block_ok");
        double s1[130], s2[130], s3[130];
        rot_signs(7, s1, 130), rot_signs(7, s2, 130), rot_signs(8, s3, 130);
        int pos = 0, same = 1, differ = 0;
        for (int i = 0; i < 130; i++) pos += s1[i] > 0, same &= s1[i] == s2[i], differ |= s1[i] != s3[i];
        CHECK(same && differ && pos > 40 && pos < 90, "signs: %d positive, same %d, differ %d", pos, same, differ);
    }
    TEST_CASE("english-1m rotated: same logits (tied head untied; down block 32)") check_same_function(en, tok, 32);
    TEST_CASE("stories260K rotated: same logits (down block 4)") check_same_function(st, tok, 4);

    TEST_CASE("the rotated weights do not depend on the thread count (1 vs 3), nor on anything but the seed") {
        intact_model *a = load(en, tok), *b = load(en, tok), *c = load(en, tok);
        intact_quant_params p = intact_quant_default_params();
        p.method = NULL, p.rotate = 1, p.rotate_seed = 99;
        CHECK(a && b && c && rotate_t(a, NULL, 0, 1, &err) == 0 && rotate_t(b, NULL, 0, 3, &err) == 0 &&
              intact_model_quantize(c, &p, NULL, &err) == 0, "%s", err.msg);
        for (int l = 0; a && b && c && l < a->hp.n_layers; l++) {
            const it_layer *x = &a->layers[l], *y = &b->layers[l], *z = &c->layers[l];
            CHECK(!memcmp(x->w_down.data, y->w_down.data, x->w_down.nbytes) &&
                  !memcmp(x->wo.data, y->wo.data, x->wo.nbytes) && !memcmp(x->wq.data, y->wq.data, x->wq.nbytes),
                  "layer %d differs between 1 and 3 threads", l);
            CHECK(memcmp(x->wq.data, z->wq.data, x->wq.nbytes) != 0, "seed 99 gives the same wq as the default");
        }
        intact_model_free(a), intact_model_free(b), intact_model_free(c);
    }

    g_made = mkdtemp(g_dir) != NULL;
    if (g_made) {
        const char *models = getenv("INTACT_MODELS");
        snprintf(cmd, sizeof cmd, "python3 tests/ref/make_variants.py --models '%s' --out '%s' > /dev/null",
                 models && *models ? models : "models", g_dir);
        g_made = system(cmd) == 0;
    }
    static const char *const variants[3] = {"qwen2-tiny", "llama-tiny-untied-f16", "stories260K-q8_0"};
    static const int blocks[3] = {32, 128, 4};
    for (int v = 0; v < 3; v++) {
        char name[96];
        snprintf(name, sizeof name, "%s rotated: same logits", variants[v]);
        TEST_CASE(name) {
            CHECK(g_made, "`%s` failed (python3 missing?)", cmd);
            snprintf(path, sizeof path, "%s/%s.gguf", g_dir, variants[v]);
            if (g_made) check_same_function(path, NULL, blocks[v]);
        }
    }

    TEST_CASE("save -> load of a rotated model: same logits, block kept, output.weight written") do {
        intact_model *fp = load(en, tok), *rm = load(en, tok), *back = NULL, *again = NULL;
        snprintf(path, sizeof path, "%s/rot.gguf", g_dir);
        char path2[1300];
        snprintf(path2, sizeof path2, "%s/rot2.gguf", g_dir);
        if (!fp || !rm || rotate(rm, NULL, 0, &err) != 0 || intact_model_save(rm, path, &err) != 0 ||
            !(back = load(path, NULL)) || intact_model_save(back, path2, &err) != 0 || !(again = load(path2, NULL))) {
            CHECK(0, "%s", err.msg);
        } else {
            intact_model_info in;
            intact_model_get_info(back, &in);
            CHECK(back->rotated && back->rot_down_block == 32 && again->rot_down_block == 32, "block %d / %d",
                  back->rot_down_block, again->rot_down_block);
            CHECK(!in.tied_embeddings, "reloaded model is tied");
            float *a = logits(fp, 0), *b = logits(rm, 0), *c = logits(back, 0);
            double d1 = max_abs(b, c, (size_t)N_TOK * 512), d2 = max_abs(a, c, (size_t)N_TOK * 512);
            printf("  reloaded vs in-memory rotated %.3g, vs original %.3g\n", d1, d2);
            CHECK(d1 == 0 && d2 <= TOL, "%.3g %.3g", d1, d2);
            free(a), free(b), free(c);
        }
        intact_model_free(fp), intact_model_free(rm), intact_model_free(back), intact_model_free(again);
    } while (0);

    TEST_CASE("rotate + RTN / GPTQ / AWQ 4-bit g32 run on english-1m (KL vs FP printed)") {
        intact_model *fp = load(en, tok);
        float *ref = fp ? logits(fp, 0) : NULL;
        FILE *f = fopen(calib, "rb");
        static char text[60000];
        size_t len = f ? fread(text, 1, sizeof text, f) : 0;
        if (f) fclose(f);
        static const char *const methods[3] = {"rtn", "gptq", "awq"};
        for (int k = 0; ref && k < 3; k++)
            for (int rot = 0; rot < 2; rot++) {
                intact_model *m = load(en, tok);
                intact_quant_params p = intact_quant_default_params();
                p.method = methods[k], p.bits = 4, p.group = 32, p.rotate = rot, p.n_threads = 2;
                p.calib_text = text, p.calib_len = len, p.calib_samples = 8, p.calib_tokens = 64;
                float *q = NULL;
                if (m && intact_model_quantize(m, &p, NULL, &err) == 0) q = logits(m, 0);
                CHECK(q != NULL, "%s rotate=%d: %s", methods[k], rot, err.msg);
                double kl = q ? mean_kl(ref, q, 512) : 1e9;
                printf("  %s w4 g32 %s: KL vs FP %.5f\n", methods[k], rot ? "rotated  " : "unrotated", kl);
                CHECK(kl < 0.3, "KL %.3g", kl);   // a broken rotation gives KL >> 1
                free(q);
                intact_model_free(m);
            }
        free(ref);
        intact_model_free(fp);
    }

    TEST_CASE("IntactKV training forward of a rotated model equals the engine (online Hadamard in train.c)") do {
        intact_model *rm = load(st, tok);
        if (!rm || rotate(rm, NULL, 0, &err) != 0) { CHECK(0, "%s", err.msg); intact_model_free(rm); break; }
        enum { P = 1, T = 32 };
        int32_t pt[P] = {1}, ids[T];
        for (int i = 0; i < T; i++) ids[i] = (int32_t)(3 + i * 37 % 500);
        int L = rm->hp.n_layers, dim = rm->hp.dim;
        intact_prefix *p = intact_prefix_build(rm, pt, P, 0, &err);
        ikv_train *w = p ? ikv_train_new(rm, P, T, 1, &err) : NULL;
        intact_ctx_params cp = {P + T, 1, 0};
        intact_ctx *c = intact_ctx_new(rm, &cp, &err);
        float *eng = calloc((size_t)L * T * dim, sizeof *eng), *g = calloc((size_t)2 * L * P * 64, sizeof *g);
        // An explicit F32 cache: its per-query attention order is the one train.c mirrors bit for
        // bit (the default cache attends tiled, kv_flash.h, and rounds differently).
        intact_kv_params kvp = {0};
        if (p && w && c && eng && g && intact_ctx_set_kv(c, &kvp, &err) == 0 && intact_ctx_use_prefix(c, p, &err) == 0) {
            intact_ctx_set_observer(c, block_obs, eng);
            CHECK(intact_ctx_eval(c, ids, T, &err) == 0, "%s", err.msg);
            ikv_train_forward(w, p, ids, NULL);
            double d = max_abs(w->x + (size_t)T * dim, eng, (size_t)L * T * dim);
            printf("  training forward vs engine block_out: %.3g\n", d);
            CHECK(d == 0, "%.3g", d);
            // The backward's Hd^T: a loss against shifted targets, derivative along the gradient.
            float *tgt = malloc(sizeof(float) * L * T * dim);
            size_t np = (size_t)L * P * (size_t)(rm->hp.n_kv_heads * rm->hp.head_dim);
            for (size_t i = 0; tgt && i < (size_t)L * T * dim; i++) tgt[i] = eng[i] + 0.1f * (float)urand();
            double loss = tgt ? ikv_train_forward(w, p, ids, tgt) : 0, gn = 0, h = 1e-2;
            if (tgt) ikv_train_backward(w, tgt, g, g + np);
            for (size_t i = 0; i < 2 * np; i++) gn += (double)g[i] * g[i];
            gn = sqrt(gn);
            double lpm[2];
            for (int sg = 0; sg < 2; sg++) {   // central difference along g / |g|: +h, then -h
                double step = sg ? -2 * h : h;
                for (size_t i = 0; gn > 0 && i < np; i++)
                    p->k[i] += (float)(step * g[i] / gn), p->v[i] += (float)(step * g[np + i] / gn);
                lpm[sg] = tgt ? ikv_train_forward(w, p, ids, tgt) : 0;
            }
            double dd = (lpm[0] - lpm[1]) / (2 * h), rel = fabs(dd - gn) / fmax(gn, 1e-30);
            printf("  loss %.6g, |grad| %.4g, central difference %.4g (rel %.2g)\n", loss, gn, dd, rel);
            CHECK(gn > 0 && rel < 0.05, "gradient off by %.3g", rel);
            free(tgt);
        } else {
            CHECK(0, "%s", err.msg);
        }
        free(eng), free(g);
        intact_ctx_free(c), ikv_train_free(w), intact_prefix_free(p), intact_model_free(rm);
    } while (0);

    TEST_CASE("bad intact.rotate.down_block is rejected on load") {
        static const int bad[3] = {3, 64, 512};   // not a power of 2; does not divide 352; > 352
        for (int i = 0; i < 3; i++) {
            intact_model *rm = load(en, tok), *back = NULL;
            snprintf(path, sizeof path, "%s/bad%d.gguf", g_dir, i);
            if (rm && rotate(rm, NULL, 0, &err) == 0) {
                rm->rot_down_block = bad[i];
                CHECK(intact_model_save(rm, path, &err) == 0, "%s", err.msg);
                back = intact_model_load(path, NULL, &err);
                CHECK(back == NULL && strstr(err.msg, "intact.rotate.down_block"), "block %d: %s", bad[i],
                      back ? "loaded" : err.msg);
                if (i == 0) printf("  rejected: %s\n", err.msg);
            }
            intact_model_free(rm), intact_model_free(back);
        }
    }

    TEST_CASE("rotating a quantized or already rotated model is refused; rotate-only needs nothing else") {
        intact_model *m = load(en, tok), *back = NULL;
        snprintf(path, sizeof path, "%s/q.gguf", g_dir);
        intact_quant_params p = intact_quant_default_params();
        p.group = 32;
        CHECK(m && intact_model_quantize(m, &p, NULL, &err) == 0, "%s", err.msg);
        CHECK(m && rotate(m, NULL, 0, &err) != 0 && strstr(err.msg, "quantized"), "in memory: %s", err.msg);
        if (m && intact_model_save(m, path, &err) == 0 && (back = load(path, NULL))) {
            CHECK(rotate(back, NULL, 0, &err) != 0 && strstr(err.msg, "already quantized format"), "%s", err.msg);
            printf("  refused: %s\n", err.msg);
        } else {
            CHECK(0, "save/load: %s", err.msg);
        }
        intact_model_free(m), intact_model_free(back);
        m = load(st, tok);
        CHECK(m && rotate(m, NULL, 0, &err) == 0 && m->quant.method[0] == 0, "%s", err.msg);
        CHECK(m && rotate(m, NULL, 0, &err) != 0 && strstr(err.msg, "already rotated"), "%s", err.msg);
        intact_model_free(m);
    }

    if (g_made || access(g_dir, F_OK) == 0) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
        if (system(cmd) != 0) printf("  could not remove %s\n", g_dir);
    }
    return th_finish("test_rotate");
}
