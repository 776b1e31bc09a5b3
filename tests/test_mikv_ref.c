// MiKV, H2O and KIVI per-channel keys against an independent reference: tests/ref/mikv_ref.py, a plain
// python3 model of the documented policy (importance, demotion, eviction, byte accounting, fp16 /
// INTn rounding, the int8 query of INT4 key scores) run live. It prints the inputs of a hand-sized
// case (1 layer, 4 query heads over 2 kv heads, head_dim 8, 20 tokens: a 6-token prefill, then one by
// one) and, after every attend, what the cache must hold for MiKV F16/INT2, H2O, MiKV INT8/INT4 and a
// uniform cache with KIVI INT2 keys; here the C caches run the same schedule and must agree:
//   - the hi / lo / evicted state of every token and kv_bytes (at n_tok and at n_ctx): exactly;
//   - per-channel keys: the quantized count and bytes exactly, keys read back within 1e-6;
//   - attention outputs within 1e-5 and importance within 1e-4 (double there, float and SIMD order here).
// The reference picks its input seed so that every demotion decision has an importance gap above
// 1e-3, so rounding cannot flip one. Needs python3 (standard library only); run from the repo root.
#include <stdint.h>
#include <unistd.h>

#include "core/pool.h"
#include "harness.h"
#include "kv/kv.h"
#include "kv/kv_mikv.h"
#include "kv/kv_quant.h"

#define REF_SCRIPT "tests/ref/mikv_ref.py"
#define TOL_OUT 1e-5   // outputs: observed ~1e-7 (same rounding, other summation order)
#define TOL_IMP 1e-4   // importance: float sums of many probabilities vs double

typedef struct {
    int n_ctx, n_heads, n_kv, hd, sink, recent, group, prefill, residual, seed;
    float ratio;
    double margin;
    float *k, *v, *q;   // (n_ctx, kv_dim), (n_ctx, kv_dim), (n_ctx, q_dim)
} ref_case;

static int expect_word(FILE *f, const char *want) {
    char w[32];
    if (fscanf(f, "%31s", w) != 1 || strcmp(w, want) != 0) {
        printf("  reference stream: expected '%s', got '%s'\n", want, w);
        return -1;
    }
    return 0;
}

static int read_floats(FILE *f, float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (fscanf(f, "%f", &x[i]) != 1) return -1;
    return 0;
}

static int read_inputs(FILE *f, ref_case *c) {
    if (expect_word(f, "CFG") ||
        fscanf(f, "%d %d %d %d %d %d %f %d %d %d %d %lf", &c->n_ctx, &c->n_heads, &c->n_kv, &c->hd, &c->sink,
               &c->recent, &c->ratio, &c->group, &c->prefill, &c->residual, &c->seed, &c->margin) != 12)
        return -1;
    size_t kvd = (size_t)c->n_kv * c->hd, qd = (size_t)c->n_heads * c->hd;
    c->k = malloc((size_t)c->n_ctx * kvd * sizeof(float));
    c->v = malloc((size_t)c->n_ctx * kvd * sizeof(float));
    c->q = malloc((size_t)c->n_ctx * qd * sizeof(float));
    if (!c->k || !c->v || !c->q) return -1;
    static const char *const names[3] = {"K", "V", "Q"};
    for (int w = 0; w < 3; w++)
        for (int p = 0; p < c->n_ctx; p++) {
            int pp;
            size_t d = w == 2 ? qd : kvd;
            float *dst = (w == 0 ? c->k : w == 1 ? c->v : c->q) + (size_t)p * d;
            if (expect_word(f, names[w]) || fscanf(f, "%d", &pp) != 1 || pp != p || read_floats(f, dst, d)) return -1;
        }
    return 0;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double e = 0;
    for (size_t i = 0; i < n; i++) e = fmax(e, fabs((double)a[i] - b[i]));
    return e;
}

// Runs one cache through the schedule (prefill, then one token at a time), checking each step against
// the reference's records. mode: "mikv", "h2o" or "kivi".
static void run_mode(FILE *f, const ref_case *c, it_kv *kv, const char *mode, it_pool *pool) {
    size_t kvd = (size_t)c->n_kv * c->hd, qd = (size_t)c->n_heads * c->hd;
    int kivi = strcmp(mode, "kivi") == 0;
    float *out = malloc((size_t)c->n_ctx * qd * sizeof(float)), *want = malloc((size_t)c->n_ctx * qd * sizeof(float));
    float *rows = malloc((size_t)c->n_ctx * kvd * sizeof(float)), *row = malloc(kvd * sizeof(float));
    char states[256], got[256], m[16];
    int bad_states = 0, bad_bytes = 0, bad_stream = 0;
    double worst_out = 0, worst_imp = 0, worst_row = 0;
    for (int pos = 0; pos < c->n_ctx && !bad_stream;) {
        int n = pos == 0 ? c->prefill : 1, n_tok = pos + n, rn, rpos, rcount;
        unsigned long long b_tok, b_ctx = 0;
        kv->ops->store(kv, 0, pos, n, c->k + (size_t)pos * kvd, c->v + (size_t)pos * kvd);
        kv->ops->attend(kv, pool, 0, pos, n, c->q + (size_t)pos * qd, out);
        if (expect_word(f, "STEP") || fscanf(f, "%15s %d", m, &rn) != 2 || strcmp(m, mode) || rn != n_tok) {
            bad_stream = 1;
            break;
        }
        if (!kivi) {
            if (fscanf(f, "%255s %llu %llu", states, &b_tok, &b_ctx) != 3) { bad_stream = 1; break; }
            for (int p = 0; p < n_tok; p++) {
                int s = kv_mikv_state(kv, 0, p);
                got[p] = s == KV_MIKV_HI ? 'H' : s == KV_MIKV_LO ? 'L' : s == KV_MIKV_EVICTED ? 'E' : '?';
            }
            got[n_tok] = '\0';
            if (strcmp(got, states) != 0 && bad_states++ < 3)
                printf("  %s n_tok %d: states %s, reference %s\n", mode, n_tok, got, states);
            if (expect_word(f, "IMP") || read_floats(f, want, (size_t)n_tok)) { bad_stream = 1; break; }
            for (int p = 0; p < n_tok; p++) worst_imp = fmax(worst_imp, fabs(kv_mikv_importance(kv, 0, p) - want[p]));
        } else {
            if (fscanf(f, "%d %llu", &rcount, &b_tok) != 2) { bad_stream = 1; break; }
            if (kvq_n_quantized(kv, 0) != rcount && bad_states++ < 3)
                printf("  kivi n_tok %d: %d keys quantized, reference %d\n", n_tok, kvq_n_quantized(kv, 0), rcount);
            if (expect_word(f, "ROWK") || read_floats(f, rows, (size_t)n_tok * kvd)) { bad_stream = 1; break; }
            for (int p = 0; p < n_tok; p++) {
                if (kvq_dequant_row(kv, 0, p, 0, row) != 0) { worst_row = INFINITY; break; }
                worst_row = fmax(worst_row, max_abs_diff(row, rows + (size_t)p * kvd, kvd));
            }
        }
        size_t bt = kv->ops->bytes(kv, n_tok), bc = kivi ? 0 : kv->ops->bytes(kv, c->n_ctx);
        if ((bt != b_tok || bc != b_ctx) && bad_bytes++ < 3)
            printf("  %s n_tok %d: bytes %zu / %zu at n_ctx, reference %llu / %llu\n", mode, n_tok, bt, bc, b_tok,
                   b_ctx);
        if (expect_word(f, "OUT") || fscanf(f, "%d %d", &rpos, &rn) != 2 || rpos != pos || rn != n ||
            read_floats(f, want, (size_t)n * qd)) {
            bad_stream = 1;
            break;
        }
        worst_out = fmax(worst_out, max_abs_diff(out, want, (size_t)n * qd));
        pos = n_tok;
    }
    printf("  %s: worst |out - ref| %.3g, |importance - ref| %.3g, |key row - ref| %.3g\n", mode, worst_out,
           worst_imp, worst_row);
    CHECK(!bad_stream, "%s: the reference stream is out of step", mode);
    CHECK(bad_states == 0, "%s: %d steps with other %s than the reference", mode, bad_states,
          kivi ? "quantized-key counts" : "token states");
    CHECK(bad_bytes == 0, "%s: %d steps with other kv_bytes than the reference", mode, bad_bytes);
    CHECK(worst_out <= TOL_OUT, "%s: attention outputs differ by %g", mode, worst_out);
    CHECK(worst_imp <= TOL_IMP, "%s: importance differs by %g", mode, worst_imp);
    CHECK(worst_row <= 1e-6, "%s: stored keys differ by %g", mode, worst_row);
    free(out);
    free(want);
    free(rows);
    free(row);
}

int main(void) {
    const char *py = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
    FILE *f = NULL;
    ref_case c;
    memset(&c, 0, sizeof c);
    it_pool *pool = it_pool_new(2);
    TEST_CASE("run the python reference (" REF_SCRIPT ")") {
        CHECK(access(REF_SCRIPT, R_OK) == 0, "%s not found: run the tests from the repository root", REF_SCRIPT);
        char cmd[256];
        snprintf(cmd, sizeof cmd, "%s %s", py, REF_SCRIPT);
        f = access(REF_SCRIPT, R_OK) == 0 ? popen(cmd, "r") : NULL;
        CHECK(f && read_inputs(f, &c) == 0, "could not read the inputs from '%s'", cmd);
        if (f && c.k) printf("  seed %d, smallest importance gap at a demotion %.3g\n", c.seed, c.margin);
    }
    for (int mode = 0; mode < 4 && f && c.k; mode++) {   // the reference's order
        static const char *const names[4] = {"mikv", "h2o", "mikv8", "kivi"};
        static const char *const titles[4] = {
            "MiKV (F16 hi, INT2 lo): states, bytes, importance, outputs == reference",
            "H2O (F16, evict at the same budget): states, bytes, importance, outputs == reference",
            "MiKV (INT8 hi, INT4 lo): states, bytes, importance, outputs == reference",
            "KIVI per-channel INT2 keys (fp32 residual), INT4 values: bytes, keys, outputs == reference"};
        TEST_CASE(titles[mode]) do {   // do/while: `break` must not skip TEST_CASE's bookkeeping
            it_kv *kv;
            if (mode < 3) {
                kv_mikv_config cfg = {c.ratio, mode == 2 ? KVQ_INT8 : KVQ_F16, mode == 2 ? KVQ_INT4 : KVQ_INT2,
                                      c.recent, c.sink, c.group, mode == 1};
                kv = kv_mikv_new(1, c.n_ctx, c.n_heads, c.n_kv, c.hd, &cfg);
            } else {
                kvq_config qc = {KVQ_INT2, KVQ_INT4, c.group, KVQ_PER_CHANNEL, c.residual, c.sink};
                kv = kv_quant_new(1, c.n_ctx, c.n_heads, c.n_kv, c.hd, &qc);
            }
            CHECK(kv != NULL, "new");
            if (!kv) break;
            run_mode(f, &c, kv, names[mode], pool);
            kv->ops->free(kv);
        } while (0);
    }
    if (f) {
        TEST_CASE("the reference ends cleanly") {
            CHECK(expect_word(f, "END") == 0, "trailing records");
            int st = pclose(f);
            CHECK(st == 0, "%s %s exited with status %d", py, REF_SCRIPT, st);
        }
    }
    free(c.k);
    free(c.v);
    free(c.q);
    it_pool_free(pool);
    return th_finish("test_mikv_ref");
}
