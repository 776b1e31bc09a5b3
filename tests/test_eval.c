// Perplexity and KL divergence against the independent PyTorch reference (tests/ref/eval_ref.py ->
// tests/goldens/eval.gold), plus the argument checks of intact_eval_ppl / intact_eval_kld.
// Public API only. The text is the first 4000 bytes of eval-en.txt (shortened to the largest prefix
// that does not cut a UTF-8 sequence, the same rule as eval_ref.py). Goldens are read from
// tests/goldens (run from the repo root) or $INTACT_GOLDENS. Case bodies are `do { } while (0)` so
// that `break` skips the rest of a case without skipping TEST_CASE's bookkeeping.
#include <stdint.h>
#include <unistd.h>

#include "harness.h"
#include "golden.h"
#include "intact.h"

#define PREFIX_BYTES 4000
#define REL 1e-4

static const char *golden_path(const char *file, char *buf, size_t cap) {
    const char *root = getenv("INTACT_GOLDENS");
    snprintf(buf, cap, "%s/%s", root && *root ? root : "tests/goldens", file);
    return buf;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long sz = ftell(f);
        if (sz >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = (char *)malloc((size_t)sz + 1))) {
            if (fread(buf, 1, (size_t)sz, f) != (size_t)sz) { free(buf); buf = NULL; }
            else { buf[sz] = '\0'; *len = (size_t)sz; }
        }
    }
    fclose(f);
    return buf;
}

// Largest prefix length <= n that does not end inside a UTF-8 sequence.
static size_t utf8_prefix(const char *s, size_t len, size_t n) {
    if (n > len) n = len;
    while (n > 0 && n < len && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    return n;
}

static intact_model *load(const char *model_rel, const char *tok_rel) {
    char mp[1024], tp[1024];
    intact_error err = {0};
    intact_model *m = intact_model_load(th_shared(model_rel, mp, sizeof mp),
                                        tok_rel ? th_shared(tok_rel, tp, sizeof tp) : NULL, &err);
    CHECK(m != NULL, "load %s: %s", model_rel, err.msg);
    return m;
}

static int near_rel(double a, double b, double rel, double abs_tol) {
    return fabs(a - b) <= rel * fabs(b) + abs_tol;
}

static intact_eval_params eparams(int n_ctx, int max_chunks) {
    intact_eval_params p;
    memset(&p, 0, sizeof p);
    p.n_ctx = n_ctx;
    p.max_chunks = max_chunks;
    p.n_threads = 2;
    return p;
}

// A tiny llama2.c checkpoint with vocab `vocab` (shared classifier), all weights small and
// deterministic, written to a temp file. Returns 0 on success.
static int write_tiny_model(const char *path, int vocab) {
    const int dim = 8, hidden = 16, layers = 1, heads = 2, kv = 2, seq = 64, hs = dim / heads;
    int32_t hdr[7] = {dim, hidden, layers, heads, kv, vocab, seq};
    size_t n = (size_t)vocab * dim + (size_t)layers * (dim + 4 * dim * dim + dim + 3 * dim * hidden) +
               dim + 2 * (size_t)seq * (hs / 2);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(hdr, sizeof hdr, 1, f) == 1;
    uint32_t st = 12345;
    for (size_t i = 0; i < n && ok; i++) {
        st = st * 1103515245u + 12345u;
        float v = ((float)(st >> 8) / 16777216.0f - 0.5f) * 0.2f + 0.5f * (i % 7 == 0);
        ok = fwrite(&v, sizeof v, 1, f) == 1;
    }
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

int main(void) {
    if (th_skip_program("test_eval", "models/english-1m.bin", "data/eval-en.txt", NULL)) return 0;
    char gp[1024], tp[1024];
    golden *g = golden_load(golden_path("eval.gold", gp, sizeof gp));
    size_t file_len = 0;
    char *file = read_file(th_shared("data/eval-en.txt", tp, sizeof tp), &file_len);
    size_t len = file ? utf8_prefix(file, file_len, PREFIX_BYTES) : 0;
    const float *gppl = g ? golden_f32(g, "en1m.ppl", NULL, NULL) : NULL;
    const float *gkld = g ? golden_f32(g, "kld.en1m_vs_stories", NULL, NULL) : NULL;
    intact_model *en = NULL, *st = NULL;

    TEST_CASE("golden file and text load") do {
        CHECK(g != NULL, "cannot read %s (run from the repo root or set INTACT_GOLDENS)", gp);
        CHECK(gppl && golden_count(g, "en1m.ppl") == 3, "record en1m.ppl missing or wrong size");
        CHECK(gkld && golden_count(g, "kld.en1m_vs_stories") == 5,
              "record kld.en1m_vs_stories missing or wrong size");
        CHECK(file != NULL && len > 0, "cannot read %s", tp);
        en = load("models/english-1m.bin", "models/tok512.bin");
        st = load("models/stories260K.bin", "models/tok512.bin");
    } while (0);

    TEST_CASE("ppl english-1m, n_ctx 64, all chunks equals the reference") do {
        if (!en || !gppl || !file) { CHECK(0, "prerequisites missing"); break; }
        intact_eval_params p = eparams(64, 0);
        intact_ppl_result r;
        intact_error err = {0};
        memset(&r, 0, sizeof r);
        int rc = intact_eval_ppl(en, file, len, &p, &r, &err);
        CHECK(rc == 0, "intact_eval_ppl: %s", err.msg);
        if (rc != 0) break;
        printf("  ppl %.7g (ref %.7g) nll %.7g (ref %.7g) tokens %lld (ref %.0f) chunks %d\n", r.ppl,
               gppl[0], r.nll, gppl[1], (long long)r.tokens, gppl[2], r.chunks);
        CHECK(near_rel(r.ppl, gppl[0], REL, 0), "ppl %.9g vs ref %.9g", r.ppl, (double)gppl[0]);
        CHECK(near_rel(r.nll, gppl[1], REL, 0), "nll %.9g vs ref %.9g", r.nll, (double)gppl[1]);
        CHECK(r.tokens == (int64_t)gppl[2], "tokens %lld vs ref %.0f", (long long)r.tokens,
              (double)gppl[2]);
        CHECK(r.chunks * 63 == r.tokens, "chunks %d x 63 != tokens %lld", r.chunks,
              (long long)r.tokens);
        CHECK(fabs(exp(r.nll) - r.ppl) <= 1e-9 * r.ppl, "ppl != exp(nll)");
    } while (0);

    TEST_CASE("kld stories260K vs english-1m, n_ctx 64, 4 chunks equals the reference") do {
        if (!en || !st || !gkld || !file) { CHECK(0, "prerequisites missing"); break; }
        intact_eval_params p = eparams(64, 4);
        intact_kld_result r;
        intact_error err = {0};
        memset(&r, 0, sizeof r);
        int rc = intact_eval_kld(st, en, file, len, &p, &r, &err);
        CHECK(rc == 0, "intact_eval_kld: %s", err.msg);
        if (rc != 0) break;
        printf("  kld_mean %.7g (ref %.7g) p99 %.7g (ref %.7g) top1 %.7g (ref %.7g) ppl %.7g (ref "
               "%.7g) ppl_base %.7g (ref %.7g) tokens %lld chunks %d\n", r.kld_mean, gkld[0],
               r.kld_p99, gkld[1], r.top1, gkld[2], r.ppl, gkld[3], r.ppl_base, gkld[4],
               (long long)r.tokens, r.chunks);
        CHECK(r.chunks == 4 && r.tokens == 4 * 63, "chunks %d tokens %lld, want 4 and 252", r.chunks,
              (long long)r.tokens);
        CHECK(near_rel(r.kld_mean, gkld[0], REL, 1e-6), "kld_mean %.9g vs %.9g", r.kld_mean,
              (double)gkld[0]);
        CHECK(near_rel(r.kld_p99, gkld[1], REL, 1e-6), "kld_p99 %.9g vs %.9g", r.kld_p99,
              (double)gkld[1]);
        double n = r.tokens > 0 ? (double)r.tokens : 1;
        CHECK(fabs(r.top1 - gkld[2]) <= 1.0 / n + 1e-6, "top1 %.9g vs %.9g (allowed: 1 position)",
              r.top1, (double)gkld[2]);
        CHECK(near_rel(r.ppl, gkld[3], REL, 0), "ppl %.9g vs %.9g", r.ppl, (double)gkld[3]);
        CHECK(near_rel(r.ppl_base, gkld[4], REL, 0), "ppl_base %.9g vs %.9g", r.ppl_base,
              (double)gkld[4]);
        // the base's ppl over the same chunks is what intact_eval_ppl gives for it
        intact_ppl_result pr;
        memset(&pr, 0, sizeof pr);
        rc = intact_eval_ppl(en, file, len, &p, &pr, &err);
        CHECK(rc == 0 && pr.tokens == r.tokens && fabs(pr.ppl - r.ppl_base) <= 1e-9 * pr.ppl,
              "eval_ppl(base) %.12g (%lld tokens) vs kld ppl_base %.12g: %s", pr.ppl,
              (long long)pr.tokens, r.ppl_base, rc ? err.msg : "");
    } while (0);

    TEST_CASE("kld of a model against itself is 0, top1 1") do {
        if (!en || !st || !file) { CHECK(0, "prerequisites missing"); break; }
        intact_eval_params p = eparams(64, 3);
        intact_error err = {0};
        intact_kld_result r;
        memset(&r, 0, sizeof r);
        int rc = intact_eval_kld(en, en, file, len, &p, &r, &err);
        CHECK(rc == 0, "kld(en, en): %s", err.msg);
        if (rc == 0) {
            CHECK(fabs(r.kld_mean) <= 1e-9 && fabs(r.kld_p99) <= 1e-9, "kld_mean %.3g p99 %.3g",
                  r.kld_mean, r.kld_p99);
            CHECK(r.top1 == 1.0, "top1 %.9g", r.top1);
            CHECK(r.ppl == r.ppl_base, "ppl %.12g vs ppl_base %.12g", r.ppl, r.ppl_base);
        }
        // a second, separately loaded copy of the same file
        intact_model *st2 = load("models/stories260K.bin", "models/tok512.bin");
        if (!st2) break;
        memset(&r, 0, sizeof r);
        rc = intact_eval_kld(st, st2, file, len, &p, &r, &err);
        CHECK(rc == 0, "kld(st, st copy): %s", err.msg);
        if (rc == 0) {
            CHECK(fabs(r.kld_mean) <= 1e-9 && fabs(r.kld_p99) <= 1e-9, "kld_mean %.3g p99 %.3g",
                  r.kld_mean, r.kld_p99);
            CHECK(r.top1 == 1.0, "top1 %.9g", r.top1);
        }
        intact_model_free(st2);
    } while (0);

    TEST_CASE("short text: one chunk of all its tokens") do {
        if (!en || !file) { CHECK(0, "prerequisites missing"); break; }
        size_t n = utf8_prefix(file, file_len, 200);
        int32_t ids[512];
        intact_error err = {0};
        int nt = intact_tokenize(en, file, n, 0, ids, 512, &err);
        CHECK(nt > 1 && nt < 255, "tokenize: %d %s", nt, err.msg);
        intact_eval_params p = eparams(256, 0);
        intact_ppl_result r;
        memset(&r, 0, sizeof r);
        int rc = intact_eval_ppl(en, file, n, &p, &r, &err);
        CHECK(rc == 0, "intact_eval_ppl: %s", err.msg);
        CHECK(rc != 0 || (r.chunks == 1 && r.tokens == nt), "chunks %d tokens %lld, want 1 and %d",
              r.chunks, (long long)r.tokens, nt);
        CHECK(rc != 0 || (isfinite(r.ppl) && r.ppl > 1), "ppl %g", r.ppl);
    } while (0);

    TEST_CASE("bad arguments fail cleanly") do {
        if (!en || !st || !file) { CHECK(0, "prerequisites missing"); break; }
        intact_ppl_result r;
        intact_kld_result k;
        intact_error err;
        intact_eval_params p;
        int rc;
#define EXPECT_FAIL(call, what) do { memset(&err, 0, sizeof err); rc = (call); \
        CHECK(rc != 0, "%s: succeeded", what); \
        CHECK(rc == 0 || err.msg[0] != '\0', "%s: failed without a message", what); \
        if (rc != 0) printf("  %-34s -> %s\n", what, err.msg); } while (0)
        p = eparams(1, 0);
        EXPECT_FAIL(intact_eval_ppl(en, file, len, &p, &r, &err), "ppl n_ctx 1");
        EXPECT_FAIL(intact_eval_kld(st, en, file, len, &p, &k, &err), "kld n_ctx 1");
        // n_ctx beyond the training context is allowed, as llama.cpp's -c (the CLI warns): one
        // chunk of 300 scores 299 positions, whichever model has the 256-token context.
        p = eparams(300, 1);
        memset(&err, 0, sizeof err);
        CHECK(intact_eval_ppl(en, file, len, &p, &r, &err) == 0 && r.tokens == 299, "ppl n_ctx 300 > ctx 256: %s",
              err.msg);
        CHECK(intact_eval_kld(st, en, file, len, &p, &k, &err) == 0 && k.tokens == 299, "kld n_ctx 300 > base ctx "
              "256: %s", err.msg);
        CHECK(intact_eval_kld(en, st, file, len, &p, &k, &err) == 0 && k.tokens == 299, "kld n_ctx 300 > model ctx "
              "256: %s", err.msg);
        p = eparams(64, 0);
        EXPECT_FAIL(intact_eval_ppl(en, file, 0, &p, &r, &err), "ppl empty text");
        EXPECT_FAIL(intact_eval_kld(st, en, file, 0, &p, &k, &err), "kld empty text");
        EXPECT_FAIL(intact_eval_ppl(en, "", 0, &p, &r, &err), "ppl \"\"");

        // model without a tokenizer
        char mp[1024];
        intact_error lerr = {0};
        intact_model *nt = intact_model_load(th_shared("models/stories260K.bin", mp, sizeof mp),
                                             NULL, &lerr);
        CHECK(nt != NULL, "load without tokenizer: %s", lerr.msg);
        if (nt) {
            EXPECT_FAIL(intact_eval_ppl(nt, file, len, &p, &r, &err), "ppl without tokenizer");
            CHECK(rc == 0 || strstr(err.msg, "tokenizer") != NULL,
                  "message does not mention the tokenizer: %s", err.msg);
            intact_model_free(nt);
        }

        // a base model with a different vocabulary size (every shared model has 512: write one
        // with 300 and read the first 300 pieces of tok512.bin as its vocabulary)
        char tmp[] = "/tmp/intact_test_eval_XXXXXX";
        int fd = mkstemp(tmp);
        CHECK(fd >= 0, "mkstemp");
        if (fd < 0) break;
        close(fd);
        intact_model *odd = NULL;
        if (write_tiny_model(tmp, 300) == 0) {
            odd = intact_model_load(tmp, th_shared("models/tok512.bin", mp, sizeof mp), &lerr);
            if (!odd) odd = intact_model_load(tmp, NULL, &lerr);
        }
        CHECK(odd != NULL, "tiny vocab-300 model: %s", lerr.msg);
        if (odd) {
            EXPECT_FAIL(intact_eval_kld(en, odd, file, len, &p, &k, &err),
                        "kld base vocab 300 vs model 512");
            EXPECT_FAIL(intact_eval_kld(odd, en, file, len, &p, &k, &err),
                        "kld model vocab 300 vs base 512");
            intact_model_free(odd);
        }
        unlink(tmp);
#undef EXPECT_FAIL
    } while (0);

    intact_model_free(en);
    intact_model_free(st);
    free(file);
    golden_free(g);
    return th_finish("test_eval");
}
