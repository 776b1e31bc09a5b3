// The engine against the independent PyTorch reference (tests/ref/llama_ref.py -> tests/goldens).
// Public API only. Every activation and logit must be within 1e-4 max-abs of the reference, batched
// and token by token; greedy decoding must reproduce the reference's 200 tokens exactly; the GGUF
// conversion of stories260K (an independent writer) must give the same logits as the llama2.c file.
// Goldens are read from tests/goldens (run from the repo root, as `make check` does) or
// $INTACT_GOLDENS. Case bodies are `do { } while (0)` so that `break` skips the rest of a case
// without skipping TEST_CASE's bookkeeping.
#include "harness.h"
#include "golden.h"
#include "intact.h"

#define TOL 1e-4
#define MAX_CAP 32

static const char *golden_path(const char *file, char *buf, size_t cap) {
    const char *root = getenv("INTACT_GOLDENS");
    snprintf(buf, cap, "%s/%s", root && *root ? root : "tests/goldens", file);
    return buf;
}

// ---------------------------------------------------------------- observer capture
// Appends the rows the engine reports for (name, layer) so that a batched eval and n single-token
// evals fill the same (n_tokens, width) buffer.
typedef struct cap_slot {
    char name[32];
    int layer, width, rows, cap_rows;
    int bad_width;
    float *data;
} cap_slot;

typedef struct capture {
    cap_slot slot[MAX_CAP];
    int n;
    int max_rows;
} capture;

static void cap_want(capture *c, const char *name, int layer, int width) {
    if (c->n >= MAX_CAP) return;
    cap_slot *s = &c->slot[c->n++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->layer = layer;
    s->width = width;
    s->cap_rows = c->max_rows;
    s->data = (float *)calloc((size_t)c->max_rows * (size_t)width, sizeof(float));
}

static void cap_reset(capture *c) {
    for (int i = 0; i < c->n; i++) { c->slot[i].rows = 0; c->slot[i].bad_width = 0; }
}

static void cap_free(capture *c) {
    for (int i = 0; i < c->n; i++) free(c->slot[i].data);
    c->n = 0;
}

static cap_slot *cap_get(capture *c, const char *name, int layer) {
    for (int i = 0; i < c->n; i++)
        if (c->slot[i].layer == layer && strcmp(c->slot[i].name, name) == 0) return &c->slot[i];
    return NULL;
}

static void observer(void *user, int layer, const char *name, const float *data, int n_tokens,
                     int width) {
    capture *c = (capture *)user;
    cap_slot *s = cap_get(c, name, layer);
    if (!s || !s->data) return;
    if (width != s->width) { s->bad_width = width; return; }
    for (int t = 0; t < n_tokens && s->rows < s->cap_rows; t++, s->rows++)
        memcpy(s->data + (size_t)s->rows * (size_t)width, data + (size_t)t * (size_t)width,
               (size_t)width * sizeof(float));
}

static double max_abs(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d;   // NaN propagates as a failure
    }
    return m;
}

// Compares a captured tensor against the golden record of the same shape.
static void check_slot(capture *c, const golden *g, const char *gname, const char *oname, int layer,
                       const char *tag) {
    int nd = 0;
    int64_t dims[GOLDEN_MAX_DIMS];
    const float *ref = golden_f32(g, gname, &nd, dims);
    CHECK(ref && nd == 2, "golden record %s missing", gname);
    if (!ref || nd != 2) return;
    cap_slot *s = cap_get(c, oname, layer);
    CHECK(s && s->bad_width == 0, "%s %s: observer width %d, want %d", tag, gname,
          s ? s->bad_width : -1, (int)dims[1]);
    CHECK(s && s->rows == (int)dims[0], "%s %s: observer gave %d rows, want %d", tag, gname,
          s ? s->rows : -1, (int)dims[0]);
    if (!s || s->rows != (int)dims[0] || s->bad_width) return;
    double e = max_abs(s->data, ref, (size_t)dims[0] * (size_t)dims[1]);
    printf("  %-6s %-13s max-abs %.3g\n", tag, gname, e);
    CHECK(e <= TOL, "%s %s: max-abs %.3g > %g", tag, gname, e, TOL);
}

// ---------------------------------------------------------------- helpers
static intact_model *load(const char *model_rel, const char *tok_rel) {
    char mp[1024], tp[1024];
    intact_error err = {0};
    intact_model *m = intact_model_load(th_shared(model_rel, mp, sizeof mp),
                                        tok_rel ? th_shared(tok_rel, tp, sizeof tp) : NULL, &err);
    CHECK(m != NULL, "load %s: %s", model_rel, err.msg);
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

static void check_tokens(const intact_model *m, const char *text, const int32_t *want, int n_want) {
    int32_t ids[256];
    intact_error err = {0};
    int n = intact_tokenize(m, text, strlen(text), 1, ids, 256, &err);
    CHECK(n == n_want, "tokenize \"%s\": %d tokens, want %d (%s)", text, n, n_want, err.msg);
    if (n != n_want) return;
    int first_bad = -1;
    for (int i = 0; i < n && first_bad < 0; i++) if (ids[i] != want[i]) first_bad = i;
    CHECK(first_bad < 0, "token %d: %d, want %d", first_bad, first_bad >= 0 ? ids[first_bad] : 0,
          first_bad >= 0 ? want[first_bad] : 0);
}

// Batched eval of toks with logits_all; copies all logits (n, n_vocab) into out (may be NULL).
static int eval_logits(const intact_model *m, const int32_t *toks, int n, int n_vocab, float *out,
                       capture *cap) {
    intact_ctx *c = new_ctx(m, 1);
    if (!c) return -1;
    if (cap) { cap_reset(cap); intact_ctx_set_observer(c, observer, cap); }
    intact_error err = {0};
    int rc = intact_ctx_eval(c, toks, n, &err);
    CHECK(rc >= 0, "eval: %s", err.msg);
    for (int i = 0; rc >= 0 && i < n; i++) {
        const float *l = intact_ctx_logits(c, i);
        CHECK(l != NULL, "no logits for token %d", i);
        if (!l) { rc = -1; break; }
        if (out) memcpy(out + (size_t)i * (size_t)n_vocab, l, (size_t)n_vocab * sizeof(float));
    }
    intact_ctx_free(c);
    return rc < 0 ? -1 : 0;
}

static void check_logits(const float *got, const golden *g, int n, int n_vocab, const char *tag) {
    int nd = 0;
    int64_t dims[GOLDEN_MAX_DIMS];
    const float *ref = golden_f32(g, "logits", &nd, dims);
    CHECK(ref && nd == 2 && dims[0] == n && dims[1] == n_vocab, "golden logits shape");
    if (!ref || nd != 2 || dims[0] != n || dims[1] != n_vocab) return;
    double e = max_abs(got, ref, (size_t)n * (size_t)n_vocab);
    printf("  %-6s %-13s max-abs %.3g\n", tag, "logits", e);
    CHECK(e <= TOL, "%s logits: max-abs %.3g > %g", tag, e, TOL);
}

// ---------------------------------------------------------------- main
int main(void) {
    if (th_skip_program("test_reference", "models/stories260K.bin", "models/tok512.bin", NULL)) return 0;
    char gguf_path[1024];
    char gp[1024];
    golden *gf = golden_load(golden_path("stories260K_fwd.gold", gp, sizeof gp));
    golden *gg = golden_load(golden_path("stories260K_greedy.gold", gp, sizeof gp));
    golden *ge = golden_load(golden_path("english1m_fwd.gold", gp, sizeof gp));

    int nd = 0;
    int64_t dims[GOLDEN_MAX_DIMS];
    const int32_t *gtok = golden_i32(gf, "tokens", &nd, dims);
    int n_tok = gtok && nd == 1 ? (int)dims[0] : 0;
    const char *prompt = "Once upon a time, there was a little robot who";

    TEST_CASE("golden files load") do {
        CHECK(gf && gg && ge, "missing or corrupt goldens (fwd %p greedy %p english %p); "
              "regenerate with `make goldens`", (void *)gf, (void *)gg, (void *)ge);
        CHECK(n_tok > 1, "golden tokens");
    } while (0);

    intact_model *m = NULL;
    intact_model_info info;
    memset(&info, 0, sizeof info);
    TEST_CASE("stories260K.bin loads") do {
        m = load("models/stories260K.bin", "models/tok512.bin");
        if (m) {
            intact_model_get_info(m, &info);
            CHECK(info.n_layers == 5 && info.dim == 64 && info.n_vocab == 512, "info %d %d %d",
                  info.n_layers, info.dim, info.n_vocab);
        }
    } while (0);
    int ok = m && gf && gg && n_tok > 1 && info.n_layers == 5;
    int kv_dim = ok ? info.head_dim * info.n_kv_heads : 0;
    float *logits_bin = ok ? (float *)calloc((size_t)n_tok * (size_t)info.n_vocab, sizeof(float))
                           : NULL;

    TEST_CASE("tokenize matches the reference (stories260K)") do {
        if (ok) check_tokens(m, prompt, gtok, n_tok);
        else CHECK(0, "skipped: model or goldens missing");
    } while (0);

    capture cap;
    memset(&cap, 0, sizeof cap);
    cap.max_rows = n_tok;
    if (ok) {
        for (int l = 0; l < info.n_layers; l++) cap_want(&cap, "block_out", l, info.dim);
        cap_want(&cap, "k", 0, kv_dim);
        cap_want(&cap, "final_norm", info.n_layers, info.dim);
    }

    TEST_CASE("batched prefill matches the reference per layer") do {
        if (!ok) { CHECK(0, "skipped"); break; }
        int rc = eval_logits(m, gtok, n_tok, info.n_vocab, logits_bin, &cap);
        if (rc == 0) {
            char gname[64];
            for (int l = 0; l < info.n_layers; l++) {
                snprintf(gname, sizeof gname, "block_out.%d", l);
                check_slot(&cap, gf, gname, "block_out", l, "batch");
            }
            check_slot(&cap, gf, "k.0", "k", 0, "batch");
            check_slot(&cap, gf, "final_norm", "final_norm", info.n_layers, "batch");
            check_logits(logits_bin, gf, n_tok, info.n_vocab, "batch");
        }
    } while (0);

    TEST_CASE("token-by-token decode matches the reference per layer") do {
        if (!ok) { CHECK(0, "skipped"); break; }
        intact_ctx *c = new_ctx(m, 0);
        if (!c) break;
        cap_reset(&cap);
        intact_ctx_set_observer(c, observer, &cap);
        float *lg = (float *)calloc((size_t)n_tok * (size_t)info.n_vocab, sizeof(float));
        int rc = 0;
        for (int i = 0; i < n_tok && rc >= 0; i++) {
            intact_error err = {0};
            rc = intact_ctx_eval(c, &gtok[i], 1, &err);
            CHECK(rc >= 0, "eval token %d: %s", i, err.msg);
            CHECK(intact_ctx_pos(c) == i + 1, "pos %d after %d tokens", intact_ctx_pos(c), i + 1);
            const float *l = rc >= 0 ? intact_ctx_logits(c, -1) : NULL;
            if (rc >= 0) CHECK(l != NULL, "no logits at %d", i);
            if (!l) rc = -1;
            else memcpy(lg + (size_t)i * (size_t)info.n_vocab, l, (size_t)info.n_vocab * sizeof(float));
        }
        if (rc >= 0) {
            char gname[64];
            for (int l = 0; l < info.n_layers; l++) {
                snprintf(gname, sizeof gname, "block_out.%d", l);
                check_slot(&cap, gf, gname, "block_out", l, "decode");
            }
            check_slot(&cap, gf, "k.0", "k", 0, "decode");
            check_slot(&cap, gf, "final_norm", "final_norm", info.n_layers, "decode");
            check_logits(lg, gf, n_tok, info.n_vocab, "decode");
        }
        free(lg);
        intact_ctx_free(c);
    } while (0);
    cap_free(&cap);

    TEST_CASE("greedy 200 tokens equal the reference") do {
        if (!ok) { CHECK(0, "skipped"); break; }
        int np = 0, ng = 0, nt = 0;
        const int32_t *gp_ids = golden_i32(gg, "prompt", &nd, dims);
        if (gp_ids) np = (int)dims[0];
        const int32_t *gg_ids = golden_i32(gg, "greedy", &nd, dims);
        if (gg_ids) ng = (int)dims[0];
        const uint8_t *gtext = golden_u8(gg, "text", &nd, dims);
        if (gtext) nt = (int)dims[0];
        CHECK(gp_ids && gg_ids && gtext && np > 0 && ng > 0, "greedy golden records");
        if (!gp_ids || !gg_ids || !gtext || np <= 0 || ng <= 0) break;
        check_tokens(m, "Once upon a time", gp_ids, np);

        intact_ctx *c = new_ctx(m, 0);
        if (!c) break;
        intact_sampler s;
        intact_sampler_init(&s, 0.0f, 1.0f, 42);
        intact_error err = {0};
        int rc = intact_ctx_eval(c, gp_ids, np, &err);
        CHECK(rc >= 0, "prompt eval: %s", err.msg);
        int32_t out[256];
        int n_out = 0;
        size_t tcap = 8192, tlen = 0;
        char *text = (char *)calloc(tcap, 1);
        int32_t prev = gp_ids[np - 1];
        while (rc >= 0 && n_out < 200) {
            const float *l = intact_ctx_logits(c, -1);
            if (!l) { CHECK(0, "no logits after %d tokens", n_out); break; }
            int32_t t = intact_sample(&s, l, info.n_vocab);
            if (t == 1) break;   // BOS ends the sequence, as in llama2.c
            out[n_out++] = t;
            char piece[64];
            int k = intact_token_to_text(m, prev, t, piece, (int)sizeof piece);
            CHECK(k >= 0, "token_to_text(%d, %d)", prev, t);
            if (k > 0 && tlen + (size_t)k < tcap) { memcpy(text + tlen, piece, (size_t)k); tlen += (size_t)k; }
            prev = t;
            rc = intact_ctx_eval(c, &t, 1, &err);
            CHECK(rc >= 0, "eval at step %d: %s", n_out, err.msg);
        }
        int first_bad = -1;
        for (int i = 0; i < n_out && i < ng && first_bad < 0; i++) if (out[i] != gg_ids[i]) first_bad = i;
        CHECK(n_out == ng, "generated %d tokens, want %d", n_out, ng);
        CHECK(first_bad < 0, "greedy token %d: %d, want %d", first_bad,
              first_bad >= 0 ? out[first_bad] : 0, first_bad >= 0 ? gg_ids[first_bad] : 0);
        CHECK(tlen == (size_t)nt && memcmp(text, gtext, tlen) == 0,
              "text differs (%zu vs %d bytes):\n  got:  %.*s\n  want: %.*s", tlen, nt, (int)tlen,
              text, nt, (const char *)gtext);
        free(text);
        intact_ctx_free(c);
    } while (0);

    TEST_CASE("stories260K.gguf (llama.cpp's converter) gives the .bin's logits") do {
        if (!ok) { CHECK(0, "skipped"); break; }
        SKIP_UNLESS(th_shared("models/stories260K.gguf", gguf_path, sizeof gguf_path));
        intact_model *mg = load("models/stories260K.gguf", NULL);
        if (!mg) break;
        intact_model_info gi;
        intact_model_get_info(mg, &gi);
        CHECK(gi.n_vocab == info.n_vocab && gi.n_layers == info.n_layers && gi.dim == info.dim,
              "gguf info vocab %d layers %d dim %d", gi.n_vocab, gi.n_layers, gi.dim);
        if (gi.n_vocab == info.n_vocab) {
            float *lg = (float *)calloc((size_t)n_tok * (size_t)gi.n_vocab, sizeof(float));
            if (eval_logits(mg, gtok, n_tok, gi.n_vocab, lg, NULL) == 0) {
                double e = max_abs(lg, logits_bin, (size_t)n_tok * (size_t)gi.n_vocab);
                printf("  gguf   logits vs .bin  max-abs %.3g\n", e);
                CHECK(e <= TOL, "gguf vs bin logits: max-abs %.3g > %g", e, TOL);
                check_logits(lg, gf, n_tok, gi.n_vocab, "gguf");
            }
            free(lg);
        }
        intact_model_free(mg);
    } while (0);

    TEST_CASE("stories260K.gguf tokenizer (from GGUF metadata) matches the reference") do {
        if (!ok) { CHECK(0, "skipped"); break; }
        SKIP_UNLESS(th_shared("models/stories260K.gguf", gguf_path, sizeof gguf_path));
        intact_model *mg = load("models/stories260K.gguf", NULL);
        if (!mg) break;
        check_tokens(mg, prompt, gtok, n_tok);
        intact_model_free(mg);
    } while (0);

    TEST_CASE("english-1m matches the reference") do {
        const int32_t *etok = golden_i32(ge, "tokens", &nd, dims);
        int ne = etok && nd == 1 ? (int)dims[0] : 0;
        CHECK(ne > 1, "english golden tokens");
        if (ne <= 1) break;
        char en_path[1024];
        SKIP_UNLESS(th_shared("models/english-1m.bin", en_path, sizeof en_path));
        intact_model *me = load("models/english-1m.bin", "models/tok512.bin");
        if (!me) break;
        intact_model_info ei;
        intact_model_get_info(me, &ei);
        CHECK(ei.n_layers == 6 && ei.dim == 128 && ei.tied_embeddings, "info layers %d dim %d tied %d",
              ei.n_layers, ei.dim, ei.tied_embeddings);
        check_tokens(me, "The president said that the new law", etok, ne);
        capture ec;
        memset(&ec, 0, sizeof ec);
        ec.max_rows = ne;
        cap_want(&ec, "block_out", ei.n_layers - 1, ei.dim);
        float *lg = (float *)calloc((size_t)ne * (size_t)ei.n_vocab, sizeof(float));
        if (eval_logits(me, etok, ne, ei.n_vocab, lg, &ec) == 0) {
            char gname[64];
            snprintf(gname, sizeof gname, "block_out.%d", ei.n_layers - 1);
            check_slot(&ec, ge, gname, "block_out", ei.n_layers - 1, "en1m");
            check_logits(lg, ge, ne, ei.n_vocab, "en1m");
        }
        free(lg);
        cap_free(&ec);
        intact_model_free(me);
    } while (0);

    free(logits_bin);
    intact_model_free(m);
    golden_free(gf);
    golden_free(gg);
    golden_free(ge);
    return th_finish("test_reference");
}
