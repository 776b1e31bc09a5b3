// Shared read-only IntactKV prefixes (intact_ctx_share_prefix, kv_share): a context over a shared
// prefix must give the very same logits, bit for bit, as one that copied the prefix into its cache
// (intact_ctx_use_prefix), for every cache type; its own KV bytes must leave the prefix out; the
// rows must really be read in place (not copied); and the bad cases must fail cleanly.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "intact.h"
#include "forward/forward.h"
#include "ikv/prefix.h"
#include "kv/kv.h"
#include "kv/kv_quant.h"

static char g_en[1024], g_st[1024], g_tok[1024];

enum { N_CTX = 256, N_TEXT = 48, N_DECODE = 6 };

static intact_model *load(const char *path) {
    intact_error err = {0, ""};
    intact_model *m = intact_model_load(path, g_tok, &err);
    if (!m) printf("  load %s: %s\n", path, err.msg);
    return m;
}

// A prefix of n tokens: BOS then a deterministic token walk over the 512-token vocabulary.
static intact_prefix *make_prefix(intact_model *m, int n) {
    int32_t t[128];
    t[0] = 1;
    for (int i = 1; i < n; i++) t[i] = 3 + (i * 37 + 11) % 500;
    intact_error err = {0, ""};
    intact_prefix *p = intact_prefix_build(m, t, n, 0, &err);
    if (!p) printf("  build: %s\n", err.msg);
    return p;
}

static void text(int32_t *t, int n) {
    for (int i = 0; i < n; i++) t[i] = 3 + (i * 53 + 7) % 500;
}

typedef struct {
    const char *name;
    intact_kv_params kp;   // k_type NULL and mikv_hi 0: the default fp32 cache (no set_kv)
    int untiled;           // fp32: the per-query attention path instead of the tiled one
} kv_case;

// Runs prefix + a prefill block + decode steps on a fresh context; every step's last-token logits
// (N_DECODE + 2 rows of n_vocab) into out. share: intact_ctx_share_prefix, else _use_prefix.
static int run(intact_model *m, const kv_case *kc, const intact_prefix *p, int share, float *out, uint64_t *kvb,
               intact_ctx **keep) {
    intact_ctx_params cp = {N_CTX, 2, 0};
    intact_error err = {0, ""};
    intact_ctx *c = intact_ctx_new(m, &cp, &err);
    int nv = 512, rc = c ? 0 : -1;
    int32_t t[N_TEXT + N_DECODE];
    text(t, N_TEXT + N_DECODE);
    if (rc == 0 && (kc->kp.k_type || kc->kp.mikv_hi > 0 || kc->kp.h2o > 0)) rc = intact_ctx_set_kv(c, &kc->kp, &err);
    if (rc == 0 && kc->untiled) kv_full_set_tiled(c->kv, 0);
    if (rc == 0) rc = share ? intact_ctx_share_prefix(c, p, &err) : intact_ctx_use_prefix(c, p, &err);
    if (rc == 0) memcpy(out, intact_ctx_logits(c, -1), (size_t)nv * sizeof *out);
    if (rc == 0) rc = intact_ctx_eval(c, t, N_TEXT, &err);
    if (rc == 0) memcpy(out + nv, intact_ctx_logits(c, -1), (size_t)nv * sizeof *out);
    for (int i = 0; i < N_DECODE && rc == 0; i++) {
        rc = intact_ctx_eval(c, t + N_TEXT + i, 1, &err);
        if (rc == 0) memcpy(out + (size_t)(2 + i) * nv, intact_ctx_logits(c, -1), (size_t)nv * sizeof *out);
    }
    if (rc != 0) printf("  %s (%s): %s\n", kc->name, share ? "share" : "copy", err.msg);
    if (kvb) *kvb = c ? intact_ctx_kv_bytes(c) : 0;
    if (keep && rc == 0) *keep = c;
    else intact_ctx_free(c);
    return rc;
}

int main(void) {
    if (th_skip_program("test_kv_share", "models/english-12m.bin", NULL)) return 0;
    th_shared("models/english-12m.bin", g_en, sizeof g_en);
    th_shared("models/stories260K.bin", g_st, sizeof g_st);
    th_shared("models/tok512.bin", g_tok, sizeof g_tok);
    intact_model *en = load(g_en);
    if (!en) return th_finish("test_kv_share");
    intact_error err = {0, ""};
    const int nv = 512, rows = N_DECODE + 2;
    float *a = malloc((size_t)rows * nv * sizeof *a), *b = malloc((size_t)rows * nv * sizeof *b);

    static const kv_case cases[] = {
        {"f32 (tiled where AVX-512)", {0}, 0},
        {"f32 untiled", {0}, 1},
        {"f16", {.k_type = "f16", .v_type = "f16"}, 0},
        {"int4", {.k_type = "int4", .v_type = "int4"}, 0},
        {"int2 per-channel keys", {.k_type = "int2", .v_type = "int4", .key_per_channel = 1}, 0},
        {"MiKV int4/f16", {.mikv_hi = 0.2f, .recent = 4, .sink = 1}, 0},
        {"H2O", {.h2o = 0.3f, .recent = 4, .sink = 1}, 0},
    };
    // 10 tokens: the prefix ends inside the first 64-key block of the tiled kernel; 70: inside the
    // second, after a block made only of prefix rows.
    static const int plens[] = {10, 70};
    for (int pi = 0; pi < 2; pi++) {
        intact_prefix *p = make_prefix(en, plens[pi]);
        if (!p) { TEST_CASE("build prefix") CHECK(0, "no prefix"); break; }
        uint64_t pb = intact_prefix_kv_bytes(p);
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
            char name[160];
            snprintf(name, sizeof name, "%s, %d-token prefix: shared = copied, bit for bit; own bytes exclude it",
                     cases[ci].name, plens[pi]);
            TEST_CASE(name) {
                uint64_t ka = 0, kb = 0;
                int ra = run(en, &cases[ci], p, 0, a, &ka, NULL), rb = run(en, &cases[ci], p, 1, b, &kb, NULL);
                CHECK(ra == 0 && rb == 0, "runs");
                if (ra || rb) break;
                int bad = -1;
                for (int i = 0; i < rows * nv && bad < 0; i++)
                    if (memcmp(&a[i], &b[i], sizeof *a)) bad = i;
                CHECK(bad < 0, "first difference at step %d vocab %d: %.9g vs %.9g", bad / nv, bad % nv,
                      bad >= 0 ? a[bad] : 0.0, bad >= 0 ? b[bad] : 0.0);
                // The copy holds the prefix as fp32 rows in every cache type; the share holds none.
                CHECK(ka == kb + pb, "copy %llu, share %llu, prefix %llu", (unsigned long long)ka,
                      (unsigned long long)kb, (unsigned long long)pb);
            }
        }
        intact_prefix_free(p);
    }

    intact_prefix *p = make_prefix(en, 12);
    TEST_CASE("the prefix bytes: P x layers x 2 x kv_dim x 4, counted by the prefix only") {
        CHECK(p != NULL, "prefix");
        if (!p) break;
        uint64_t want = 12ull * 8 * 2 * (2 * 64) * 4;   // english-12m: 8 layers, 2 kv heads of 64
        CHECK(intact_prefix_kv_bytes(p) == want, "%llu vs %llu", (unsigned long long)intact_prefix_kv_bytes(p),
              (unsigned long long)want);
        intact_ctx_params cp = {N_CTX, 1, 0};
        intact_ctx *c = intact_ctx_new(en, &cp, &err);
        CHECK(c && intact_ctx_share_prefix(c, p, &err) == 0, "%s", err.msg);
        if (!c) break;
        CHECK(intact_ctx_pos(c) == 12 && intact_ctx_kv_bytes(c) == 0, "pos %d, own bytes %llu", intact_ctx_pos(c),
              (unsigned long long)intact_ctx_kv_bytes(c));
        int32_t t = 42;
        CHECK(intact_ctx_eval(c, &t, 1, &err) == 0, "%s", err.msg);
        CHECK(intact_ctx_kv_bytes(c) == 8ull * 2 * 128 * 4, "one own token: %llu",
              (unsigned long long)intact_ctx_kv_bytes(c));
        intact_ctx_free(c);
    }

    TEST_CASE("the rows are read in place, not copied: the cache points at the prefix object") {
        intact_ctx_params cp = {N_CTX, 1, 0};
        intact_ctx *c = intact_ctx_new(en, &cp, &err);
        intact_prefix *q = make_prefix(en, 12);
        CHECK(c && q && intact_ctx_share_prefix(c, q, &err) == 0, "%s", err.msg);
        if (!c || !q) { intact_ctx_free(c); intact_prefix_free(q); break; }
        CHECK(c->kv->shared_k == q->k && c->kv->shared_v == q->v && c->kv->n_shared == 12, "not shared");
        // Changing the prefix's V rows changes what the context computes: they are read, not held.
        int32_t t = 42;
        float before[512];
        int ok = intact_ctx_eval(c, &t, 1, &err) == 0;
        CHECK(ok, "%s", err.msg);
        if (ok) memcpy(before, intact_ctx_logits(c, -1), sizeof before);
        CHECK(intact_ctx_share_prefix(c, q, &err) == 0, "%s", err.msg);
        for (size_t i = 0; i < (size_t)8 * 12 * 128; i++) q->v[i] *= 2.0f;
        ok = ok && intact_ctx_eval(c, &t, 1, &err) == 0;
        CHECK(ok, "%s", err.msg);
        CHECK(ok && memcmp(before, intact_ctx_logits(c, -1), sizeof before) != 0, "the prefix was copied");
        intact_ctx_free(c);
        intact_prefix_free(q);
    }

    TEST_CASE("several contexts share one prefix, interleaved, each as if it had its own copy") {
        intact_ctx *cs[3] = {0};
        intact_ctx_params cp = {N_CTX, 1, 0};
        intact_ctx *ref = intact_ctx_new(en, &cp, &err);
        CHECK(ref && intact_ctx_use_prefix(ref, p, &err) == 0, "%s", err.msg);
        for (int i = 0; i < 3; i++) {
            cs[i] = intact_ctx_new(en, &cp, &err);
            CHECK(cs[i] && intact_ctx_share_prefix(cs[i], p, &err) == 0, "%s", err.msg);
        }
        int32_t t[8];
        text(t, 8);
        for (int s = 0; s < 8 && ref && cs[0] && cs[1] && cs[2]; s++) {
            int ok = intact_ctx_eval(ref, &t[s], 1, &err) == 0;
            CHECK(ok, "%s", err.msg);
            for (int i = 0; i < 3; i++) {
                int oki = ok && intact_ctx_eval(cs[i], &t[s], 1, &err) == 0;
                CHECK(oki, "%s", err.msg);
                CHECK(oki && !memcmp(intact_ctx_logits(ref, -1), intact_ctx_logits(cs[i], -1), (size_t)nv * sizeof(float)),
                      "context %d step %d differs", i, s);
            }
        }
        for (int i = 0; i < 3; i++) intact_ctx_free(cs[i]);
        intact_ctx_free(ref);
    }

    TEST_CASE("reset detaches the prefix: a fresh sequence from position 0 writes its own rows") {
        intact_ctx_params cp = {N_CTX, 1, 0};
        intact_ctx *c = intact_ctx_new(en, &cp, &err), *d = intact_ctx_new(en, &cp, &err);
        CHECK(c && d && intact_ctx_share_prefix(c, p, &err) == 0, "%s", err.msg);
        if (!c || !d) { intact_ctx_free(c); intact_ctx_free(d); break; }
        intact_ctx_reset(c);
        CHECK(c->kv->n_shared == 0 && c->kv->shared_k == NULL, "still shared after reset");
        int32_t t[20];
        text(t, 20);
        int ok = intact_ctx_eval(c, t, 20, &err) == 0 && intact_ctx_eval(d, t, 20, &err) == 0;
        CHECK(ok, "%s", err.msg);
        CHECK(ok && !memcmp(intact_ctx_logits(c, -1), intact_ctx_logits(d, -1), (size_t)nv * sizeof(float)),
              "reset context differs from a fresh one");
        // And the copy path after a share works too (use_prefix resets first).
        CHECK(intact_ctx_share_prefix(c, p, &err) == 0 && intact_ctx_use_prefix(c, p, &err) == 0, "%s", err.msg);
        CHECK(c->kv->n_shared == 0 && intact_ctx_kv_bytes(c) == intact_prefix_kv_bytes(p), "copy after share");
        intact_ctx_free(c);
        intact_ctx_free(d);
    }

    TEST_CASE("store refuses the shared positions; a cache keeping too few exact sinks cannot share") {
        int kv_dim = 128;
        float *rows = calloc((size_t)8 * 12 * kv_dim, sizeof *rows);
        it_kv *f = kv_full_new(8, 64, 6, 2, 64);
        CHECK(f && kv_share(f, 12, rows, rows) == KV_OK, "full share");
        CHECK(f && f->ops->store(f, 0, 11, 1, rows, rows) != KV_OK, "store into a shared row accepted");
        CHECK(f && f->ops->store(f, 0, 12, 1, rows, rows) == KV_OK, "store after the prefix refused");
        CHECK(f && kv_share(f, 64, rows, rows) != KV_OK, "a prefix filling the context accepted");
        kvq_config qc = {KVQ_INT4, KVQ_INT4, 0, KVQ_PER_TOKEN, 0, 4};
        it_kv *qk = kv_quant_new(8, 64, 6, 2, 64, &qc);
        CHECK(qk && kv_share(qk, 12, rows, rows) != KV_OK && qk->n_shared == 0, "int4 with 4 sinks shared 12");
        CHECK(qk && kv_share(qk, 4, rows, rows) == KV_OK && qk->n_shared == 4, "int4 with 4 sinks refused 4");
        if (f) f->ops->free(f);
        if (qk) qk->ops->free(qk);
        free(rows);
    }

    TEST_CASE("key balancing refuses a shared prefix (each sequence rescales its prefix keys)") {
        intact_ctx_params cp = {N_CTX, 1, 0};
        intact_ctx *c = intact_ctx_new(en, &cp, &err);
        intact_kv_params kp = {.k_type = "int4", .v_type = "int4", .balance = 1};
        CHECK(c && intact_ctx_set_kv(c, &kp, &err) == 0, "%s", err.msg);
        err.msg[0] = 0;
        CHECK(c && intact_ctx_share_prefix(c, p, &err) != 0 && strstr(err.msg, "balancing"), "got '%s'", err.msg);
        CHECK(c && intact_ctx_use_prefix(c, p, &err) == 0, "copy with balancing: %s", err.msg);
        intact_ctx_free(c);
    }

    TEST_CASE("a prefix of another model family is refused cleanly (fingerprint)") {
        intact_model *st = load(g_st);
        CHECK(st != NULL, "stories260K");
        int32_t bos = 1;
        intact_prefix *o = st ? intact_prefix_build(st, &bos, 1, 0, &err) : NULL;
        intact_ctx_params cp = {N_CTX, 1, 0};
        intact_ctx *c = intact_ctx_new(en, &cp, &err);
        err.msg[0] = 0;
        CHECK(c && o && intact_ctx_share_prefix(c, o, &err) != 0 && strstr(err.msg, "different model family"),
              "got '%s'", err.msg);
        CHECK(c && c->kv->n_shared == 0 && intact_ctx_pos(c) == 0, "context changed by a refused share");
        // Same shapes, another family (tokenizer or hyperparameters): only the fingerprint tells.
        intact_prefix *q = make_prefix(en, 4);
        if (q) q->fingerprint ^= 1;
        err.msg[0] = 0;
        CHECK(c && q && intact_ctx_share_prefix(c, q, &err) != 0 && strstr(err.msg, "different model family"),
              "got '%s'", err.msg);
        intact_prefix_free(q);
        intact_ctx_free(c);
        intact_prefix_free(o);
        intact_model_free(st);
    }

    intact_prefix_free(p);
    free(a);
    free(b);
    intact_model_free(en);
    return th_finish("test_kv_share");
}
