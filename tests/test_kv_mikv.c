// MiKV mixed-precision cache and the H2O baseline (kv_mikv): exactness with everything kept hi,
// demotion bookkeeping, sink and recent windows, MiKV vs H2O attention error, byte accounting.
#include <stdint.h>

#include "core/pool.h"
#include "harness.h"
#include "kv/kv.h"
#include "kv/kv_balance.h"
#include "kv/kv_mikv.h"
#include "kv/kv_quant.h"

enum { NL = 2, NCTX = 96, NH = 4, NKV = 2, HD = 64, KVD = NKV * HD, QD = NH * HD };

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static float frand(void) {   // roughly N(0, 1): sum of 4 uniforms, centered and scaled
    float s = 0;
    for (int i = 0; i < 4; i++) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        s += (float)(rng_state >> 40) / (float)(1u << 24);
    }
    return (s - 2.0f) * 1.7320508f;
}

// Random K/V/Q for all layers; every 11th position's key points along the queries' common
// direction (a heavy hitter), so the attention mass concentrates on a few tokens.
static void fill(float *k, float *v, float *q) {
    float dir[HD];
    for (int i = 0; i < HD; i++) dir[i] = frand();
    for (int t = 0; t < NL * NCTX; t++) {
        int heavy = (t % NCTX) % 11 == 3;
        for (int i = 0; i < KVD; i++) {
            k[(size_t)t * KVD + i] = frand() + (heavy ? 1.5f * dir[i % HD] : 0.0f);
            v[(size_t)t * KVD + i] = frand();
        }
        for (int i = 0; i < QD; i++) q[(size_t)t * QD + i] = 0.5f * frand() + 0.6f * dir[i % HD];
    }
}

// Stores and attends every position of every layer: a prefill block of `pre` tokens, then one by one.
// check(kv, layer, n) runs after each attend when non-NULL.
static void run(it_kv *kv, it_pool *pool, const float *k, const float *v, const float *q, float *out, int pre,
                void (*check)(it_kv *, int, int)) {
    for (int l = 0; l < NL; l++)
        for (int p = 0; p < NCTX;) {
            int n = p == 0 ? pre : 1;
            size_t o = (size_t)l * NCTX + p;
            CHECK(kv->ops->store(kv, l, p, n, k + o * KVD, v + o * KVD) == 0, "store L%d p%d", l, p);
            kv->ops->attend(kv, pool, l, p, n, q + o * QD, out + o * QD);
            p += n;
            if (check) check(kv, l, p);
        }
}

static double rel_err(const float *a, const float *ref, size_t n) {
    double e = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        e += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        r += (double)ref[i] * ref[i];
    }
    return sqrt(e / r);
}

static kv_mikv_config cfg_of(float ratio, int hi, int lo, int recent, int sink, int evict) {
    kv_mikv_config c = {ratio, hi, lo, recent, sink, 32, evict};
    return c;
}

// Bookkeeping invariants after each attend (b, c, d).
static int g_recent, g_sink, g_bad;
static void check_books(it_kv *kv, int l, int n) {
    int hi = kv_mikv_count(kv, l, KV_MIKV_HI), lo = kv_mikv_count(kv, l, KV_MIKV_LO);
    int ev = kv_mikv_count(kv, l, KV_MIKV_EVICTED), budget = kv_mikv_budget(kv, n);
    int ok = kv_mikv_n_tokens(kv, l) == n && hi + lo + ev == n && hi == budget;
    for (int p = 0; p < n; p++)
        if ((p < g_sink || p >= n - g_recent) && kv_mikv_state(kv, l, p) != KV_MIKV_HI) ok = 0;
    if (!ok && !g_bad++) CHECK(0, "L%d n %d: hi %d lo %d ev %d budget %d", l, n, hi, lo, ev, budget);
}

int main(void) {
    it_pool *pool = it_pool_new(3);
    size_t nkv = (size_t)NL * NCTX * KVD, nq = (size_t)NL * NCTX * QD;
    float *k = malloc(nkv * sizeof(float)), *v = malloc(nkv * sizeof(float)), *q = malloc(nq * sizeof(float));
    float *ref = malloc(nq * sizeof(float)), *out = malloc(nq * sizeof(float));
    fill(k, v, q);
    it_kv *full = kv_full_new(NL, NCTX, NH, NKV, HD);
    kv_full_set_tiled(full, 0);   // the per-query order F32 rows of other caches reproduce
    run(full, pool, k, v, q, ref, 20, NULL);
    full->ops->free(full);

    TEST_CASE("hi_ratio 1, F32 hi == kv_full bit for bit (and probs too)") {
        kv_mikv_config cfg = cfg_of(1.0f, KVQ_F32, KVQ_INT2, 4, 1, 0);
        it_kv *kv = kv_mikv_new(NL, NCTX, NH, NKV, HD, &cfg);
        CHECK(kv != NULL, "new");
        if (!kv) break;
        run(kv, pool, k, v, q, out, 20, NULL);
        CHECK(memcmp(out, ref, nq * sizeof(float)) == 0, "rel err %g", rel_err(out, ref, nq));
        CHECK(kv_mikv_count(kv, 1, KV_MIKV_HI) == NCTX, "all hi");
        // probs recording matches kv_full's on a fresh block attend
        it_kv *f = kv_full_new(1, NCTX, NH, NKV, HD), *m = kv_mikv_new(1, NCTX, NH, NKV, HD, &cfg);
        kv_full_set_tiled(f, 0);   // the per-query order F32 rows of other caches reproduce
        float *pf = calloc((size_t)NH * 10 * 10, sizeof(float)), *pm = calloc((size_t)NH * 10 * 10, sizeof(float));
        f->probs = pf;
        m->probs = pm;
        f->ops->store(f, 0, 0, 10, k, v);
        m->ops->store(m, 0, 0, 10, k, v);
        f->ops->attend(f, pool, 0, 0, 10, q, out);
        m->ops->attend(m, pool, 0, 0, 10, q, out);
        CHECK(memcmp(pf, pm, (size_t)NH * 100 * sizeof(float)) == 0, "probs differ");
        // importance = column sums of the recorded probabilities
        double worst = 0;
        for (int p = 0; p < 10; p++) {
            double s = 0;
            for (int r = 0; r < NH * 10; r++) s += pf[r * 10 + p];
            double e = fabs(s - kv_mikv_importance(m, 0, p));
            worst = e > worst ? e : worst;
        }
        CHECK(worst < 1e-5, "importance vs probs column sums: %g", worst);
        free(pf);
        free(pm);
        f->ops->free(f);
        m->ops->free(m);
        kv->ops->free(kv);
    }

    TEST_CASE("hi_ratio 1, F16 hi == uniform F16 kv_quant bit for bit") {
        kv_mikv_config cfg = cfg_of(1.0f, KVQ_F16, KVQ_INT4, 0, 0, 0);
        it_kv *kv = kv_mikv_new(NL, NCTX, NH, NKV, HD, &cfg);
        kvq_config qc = {KVQ_F16, KVQ_F16, 32, KVQ_PER_TOKEN, 0, 0};
        it_kv *u = kv_quant_new(NL, NCTX, NH, NKV, HD, &qc);
        CHECK(kv && u, "new");
        if (!kv || !u) break;
        kv_quant_set_tiled(u, 0);   // the per-query order MiKV's F16 rows reproduce
        run(u, pool, k, v, q, ref + 0, 20, NULL);   // ref is refilled below
        run(kv, pool, k, v, q, out, 20, NULL);
        CHECK(memcmp(out, ref, nq * sizeof(float)) == 0, "rel err %g", rel_err(out, ref, nq));
        kv->ops->free(kv);
        u->ops->free(u);
        full = kv_full_new(NL, NCTX, NH, NKV, HD);
        kv_full_set_tiled(full, 0);   // the per-query order F32 rows of other caches reproduce
        run(full, pool, k, v, q, ref, 20, NULL);
        full->ops->free(full);
    }

    double err[2] = {0, 0};
    for (int evict = 0; evict < 2; evict++) {
        char name[128];
        snprintf(name, sizeof name, "%s bookkeeping: hi == budget, %s, sinks and recent hi",
                 evict ? "H2O" : "MiKV", evict ? "hi + lo + evicted == cached, lo == 0" : "hi + lo == cached, none evicted");
        TEST_CASE(name) {
            kv_mikv_config cfg = cfg_of(0.1f, KVQ_INT8, KVQ_INT2, 8, 2, evict);
            it_kv *kv = kv_mikv_new(NL, NCTX, NH, NKV, HD, &cfg);
            CHECK(kv != NULL, "new");
            if (!kv) break;
            g_recent = 8, g_sink = 2, g_bad = 0;
            run(kv, pool, k, v, q, out, 20, check_books);
            err[evict] = rel_err(out, ref, nq);
            for (int l = 0; l < NL; l++) {
                int lo = kv_mikv_count(kv, l, KV_MIKV_LO), ev = kv_mikv_count(kv, l, KV_MIKV_EVICTED);
                CHECK(evict ? lo == 0 && ev > 0 : ev == 0 && lo > 0, "L%d lo %d ev %d", l, lo, ev);
                printf("  L%d: hi %d lo %d evicted %d of %d (budget %d)\n", l, kv_mikv_count(kv, l, KV_MIKV_HI),
                       lo, ev, NCTX, kv_mikv_budget(kv, NCTX));
            }
            // The heavy hitters (positions ≡ 3 mod 11) are what the importance keeps.
            int kept = 0, total = 0;
            for (int p = 2; p < NCTX - 8; p++)
                if (p % 11 == 3) total++, kept += kv_mikv_state(kv, 0, p) == KV_MIKV_HI;
            printf("  heavy hitters kept hi: %d of %d\n", kept, total);
            CHECK(kept * 4 >= total * 3, "kept %d of %d", kept, total);
            kv->ops->free(kv);
        }
    }

    TEST_CASE("MiKV attention error < H2O's at the same budget") {
        printf("  rel err vs kv_full: MiKV (INT8 hi / INT2 lo) %.4g, H2O %.4g\n", err[0], err[1]);
        CHECK(err[0] > 0 && err[0] < err[1], "MiKV %g H2O %g", err[0], err[1]);
        kv_mikv_config cfg = cfg_of(0.1f, KVQ_F16, KVQ_INT4, 8, 2, 0);
        it_kv *kv = kv_mikv_new(NL, NCTX, NH, NKV, HD, &cfg);
        run(kv, pool, k, v, q, out, 20, NULL);
        double e4 = rel_err(out, ref, nq);
        printf("  MiKV F16 hi / INT4 lo: %.4g\n", e4);
        CHECK(e4 < err[0], "INT4 lo %g not better than INT2 lo %g", e4, err[0]);
        kv->ops->free(kv);
    }

    TEST_CASE("sink tokens are stored exactly (fp32) and stay hi; demoted rows read back quantized") {
        kv_mikv_config cfg = cfg_of(0.05f, KVQ_F16, KVQ_INT2, 4, 3, 0);
        it_kv *kv = kv_mikv_new(NL, NCTX, NH, NKV, HD, &cfg);
        run(kv, pool, k, v, q, out, 1, NULL);
        float row[KVD];
        for (int l = 0; l < NL; l++)
            for (int p = 0; p < 3; p++)
                for (int which = 0; which < 2; which++) {
                    const float *x = (which ? v : k) + ((size_t)l * NCTX + p) * KVD;
                    CHECK(kv_mikv_read_row(kv, l, p, which, row) == 0 && memcmp(row, x, sizeof row) == 0,
                          "L%d p%d %c not exact", l, p, which ? 'V' : 'K');
                    CHECK(kv_mikv_state(kv, l, p) == KV_MIKV_HI, "sink L%d p%d demoted", l, p);
                }
        int p_lo = -1;
        for (int p = 3; p < NCTX && p_lo < 0; p++)
            if (kv_mikv_state(kv, 0, p) == KV_MIKV_LO) p_lo = p;
        CHECK(p_lo > 0, "no lo token");
        if (p_lo > 0) {
            kv_mikv_read_row(kv, 0, p_lo, 0, row);
            double e = 0;
            for (int i = 0; i < KVD; i++) e = fmax(e, fabs(row[i] - k[(size_t)p_lo * KVD + i]));
            CHECK(e > 1e-3 && e < 4.0, "INT2 row err %g", e);
        }
        kv->ops->free(kv);
    }

    TEST_CASE("bytes: hand-computed small case (MiKV and H2O)") {
        // Per layer: head_dim 32, 1 kv head, group 32, F16 hi, INT2 lo, sink 1,
        // recent 2, ratio 0.25. After 8 tokens one by one: budget = 1 + 2 + ceil(0.25*8) = 5 hi
        // (sink fp32 + 4 F16), 3 lo. Per token K+V: sink 2·32·4 = 256, F16 2·32·2 = 128,
        // INT2 2·(4 + 32·2/8) = 24 -> 256 + 4·128 + 3·24 = 840 per layer; H2O: 768.
        for (int evict = 0; evict < 2; evict++) {
            kv_mikv_config cfg = cfg_of(0.25f, KVQ_F16, KVQ_INT2, 2, 1, evict);
            it_kv *kv = kv_mikv_new(NL, 16, 2, 1, 32, &cfg);
            CHECK(kv != NULL, "new");
            if (!kv) break;
            CHECK(kv->ops->bytes(kv, 8) == (size_t)NL * (256 + 7 * 128), "fresh %zu", kv->ops->bytes(kv, 8));
            float kk[32], vv[32], qq[64], oo[64];
            for (int l = 0; l < NL; l++)
                for (int p = 0; p < 8; p++) {
                    for (int i = 0; i < 32; i++) kk[i] = frand(), vv[i] = frand(), qq[i] = frand(), qq[32 + i] = frand();
                    kv->ops->store(kv, l, p, 1, kk, vv);
                    kv->ops->attend(kv, pool, l, p, 1, qq, oo);
                }
            CHECK(kv_mikv_count(kv, 0, KV_MIKV_HI) == 5, "hi %d", kv_mikv_count(kv, 0, KV_MIKV_HI));
            size_t want = (size_t)NL * (evict ? 768 : 840);
            CHECK(kv->ops->bytes(kv, 8) == want, "%s: %zu vs %zu", evict ? "H2O" : "MiKV", kv->ops->bytes(kv, 8), want);
            kv->ops->free(kv);
        }
    }

    TEST_CASE("bad configs are refused") {
        kv_mikv_config bad[] = {cfg_of(0.0f, KVQ_F16, KVQ_INT4, 4, 1, 0), cfg_of(1.5f, KVQ_F16, KVQ_INT4, 4, 1, 0),
                                cfg_of(0.2f, KVQ_INT4, KVQ_INT4, 4, 1, 0), cfg_of(0.2f, KVQ_F16, KVQ_INT8, 4, 1, 0),
                                cfg_of(0.2f, KVQ_F16, KVQ_INT4, -1, 1, 0), cfg_of(0.2f, KVQ_F16, KVQ_INT4, 4, 1, 2)};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            it_kv *kv = kv_mikv_new(NL, NCTX, NH, NKV, HD, &bad[i]);
            CHECK(kv == NULL, "cfg %zu accepted", i);
            if (kv) kv->ops->free(kv);
        }
        kv_mikv_config d = kv_mikv_default_config();
        it_kv *kv = kv_mikv_new(NL, NCTX, NH, NKV, HD, &d);
        CHECK(kv != NULL, "defaults refused");
        if (kv) kv->ops->free(kv);
    }

    TEST_CASE("key balancing: fp32 scores unchanged; low-bit keys with outlier channels improve") {
        // Keys with outlier channels, as real keys have; b from the 20-token prefill of each layer,
        // applied as the forward pass does (kv_balance.h): the cache sees k·b and q/b.
        for (size_t i = 0; i < nkv; i++) k[i] *= (i % HD) % 13 == 0 ? 8.0f : 1.0f;
        full = kv_full_new(NL, NCTX, NH, NKV, HD);
        kv_full_set_tiled(full, 0);   // the per-query order F32 rows of other caches reproduce
        run(full, pool, k, v, q, ref, 20, NULL);
        full->ops->free(full);
        float b[NL][KVD];
        float *kb = malloc(nkv * sizeof *kb), *qb = malloc(nq * sizeof *qb);
        memcpy(kb, k, nkv * sizeof *kb);
        memcpy(qb, q, nq * sizeof *qb);
        for (int l = 0; l < NL; l++) {
            CHECK(kv_balance_channels(q + (size_t)l * NCTX * QD, 20, k + (size_t)l * NCTX * KVD, 20, NULL, 0, NH, NKV,
                                      HD, b[l]) == 0, "compute");
            kv_balance_scale_keys(kb + (size_t)l * NCTX * KVD, NCTX, KVD, b[l]);
            kv_balance_scale_queries(qb + (size_t)l * NCTX * QD, NCTX, NH, NKV, HD, b[l]);
        }
        CHECK(b[0][0] < 0.6f && b[0][1] > 0.6f, "outlier channel b %g, plain %g", b[0][0], b[0][1]);
        kv_mikv_config cfgs[2] = {cfg_of(1.0f, KVQ_F32, KVQ_INT4, 4, 1, 0), cfg_of(0.1f, KVQ_INT8, KVQ_INT2, 8, 1, 0)};
        double e[2][2];
        for (int ci = 0; ci < 2; ci++)
            for (int on = 0; on < 2; on++) {
                it_kv *kv = kv_mikv_new(NL, NCTX, NH, NKV, HD, &cfgs[ci]);
                run(kv, pool, on ? kb : k, v, on ? qb : q, out, 20, NULL);
                e[ci][on] = rel_err(out, ref, nq);
                kv->ops->free(kv);
            }
        printf("  rel err vs kv_full: F32 off %.3g on %.3g; INT8/INT2 MiKV off %.4g on %.4g\n", e[0][0], e[0][1],
               e[1][0], e[1][1]);
        CHECK(e[0][0] == 0 && e[0][1] < 1e-5, "fp32 balanced %g", e[0][1]);
        CHECK(e[1][1] < e[1][0], "balancing did not help: %g vs %g", e[1][1], e[1][0]);
        free(kb);
        free(qb);
    }

    free(k); free(v); free(q); free(ref); free(out);
    it_pool_free(pool);
    return th_finish("test_kv_mikv");
}
