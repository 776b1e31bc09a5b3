// Outlier-aware key balancing (--kv-balance): the channel factors on a hand-computed example, q·k
// unchanged by the k·b / q/b rescale, the whole model unchanged with an fp32 cache (with and without
// an IntactKV prefix), and on a model with key outlier channels the INT2 per-token key error halved.
#include <stdint.h>

#include "harness.h"
#include "intact.h"
#include "kv/kv_balance.h"
#include "model/model.h"

static void test_channels_by_hand(void) {
    TEST_CASE("balance factors by hand") {
        // 2 query heads sharing 1 kv head, head_dim 2, two tokens of q and one of k plus one
        // prefix key. Channel 0: max|q| = max(1, 3, 2, 0.5) = 3, max|k| = max(0.75, 3) = 3
        // (the prefix key) -> b = 1. Channel 1: max|q| = 8, max|k| = 2 -> b = sqrt(4) = 2.
        // A channel with k == 0 everywhere keeps b = 1.
        const float q[2 * 4] = {1, -8, 3, 1, /* token 1 */ 2, 0.5f, 0.5f, 4};
        const float k[2] = {0.75f, -2}, k2[2] = {-3, 1};
        float b[2];
        CHECK(kv_balance_channels(q, 2, k, 1, k2, 1, 2, 1, 2, b) == 0, "rc");
        CHECK_NEAR(b[0], 1.0, 1e-7);
        CHECK_NEAR(b[1], 2.0, 1e-7);
        const float kz[2] = {0, 1};
        CHECK(kv_balance_channels(q, 2, kz, 1, NULL, 0, 2, 1, 2, b) == 0, "rc");
        CHECK_NEAR(b[0], 1.0, 0);
        CHECK(kv_balance_channels(q, 2, k, 1, NULL, 0, 3, 2, 2, b) == -1, "3 heads over 2 kv heads");
    }
}

static void test_scores_unchanged(void) {
    TEST_CASE("q/b . k*b == q . k") {
        enum { NH = 4, NKV = 2, HD = 16, N = 8 };
        float q[N * NH * HD], k[N * NKV * HD], q2[N * NH * HD], k2[N * NKV * HD], b[NKV * HD];
        uint64_t s = 88172645463325252ull;
        for (int i = 0; i < N * NH * HD; i++) {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            q[i] = (float)((int)(s % 2001) - 1000) / 250.0f;
        }
        for (int i = 0; i < N * NKV * HD; i++) {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            k[i] = (float)((int)(s % 2001) - 1000) / 250.0f * (i % HD == 3 ? 40.0f : 1.0f);   // outlier channel
        }
        memcpy(q2, q, sizeof q);
        memcpy(k2, k, sizeof k);
        CHECK(kv_balance_channels(q, N, k, N, NULL, 0, NH, NKV, HD, b) == 0, "rc");
        kv_balance_scale_keys(k2, N, NKV * HD, b);
        kv_balance_scale_queries(q2, N, NH, NKV, HD, b);
        double worst = 0, kmax0 = 0, kmax1 = 0;
        for (int t = 0; t < N; t++)
            for (int u = 0; u < N; u++)
                for (int h = 0; h < NH; h++) {
                    const float *qa = q + (t * NH + h) * HD, *qb = q2 + (t * NH + h) * HD;
                    const float *ka = k + (u * NKV + h / 2) * HD, *kb = k2 + (u * NKV + h / 2) * HD;
                    double s0 = 0, s1 = 0, mag = 0;
                    for (int d = 0; d < HD; d++) {
                        s0 += (double)qa[d] * ka[d];
                        s1 += (double)qb[d] * kb[d];
                        mag += fabs((double)qa[d] * ka[d]);
                    }
                    double e = fabs(s0 - s1) / (mag + 1e-30);
                    worst = e > worst ? e : worst;
                }
        for (int i = 0; i < N * NKV * HD; i++) {
            if (i % HD == 3) kmax0 = fmax(kmax0, fabs(k[i])), kmax1 = fmax(kmax1, fabs(k2[i]));
        }
        CHECK(worst < 1e-6, "relative score change %g", worst);
        CHECK(kmax1 < kmax0 / 3, "outlier channel not flattened: %g -> %g", kmax0, kmax1);
    }
}

static char *read_text(size_t *len) {
    char path[512];
    FILE *f = fopen(th_shared("data/eval-en.txt", path, sizeof path), "rb");
    if (!f) return NULL;
    char *t = malloc(1 << 16);
    *len = t ? fread(t, 1, (1 << 16) - 1, f) : 0;
    fclose(f);
    return t;
}

// Function-preserving key outliers, as real LLaMA keys have: per kv head, channels {0, 1, hd/2,
// hd/2+1} (closed under both RoPE pairings) of W_k scaled by s and of W_q by 1/s.
static int inject_key_outliers(intact_model *m, float s) {
    const it_hparams *hp = &m->hp;
    int hd = hp->head_dim, rep = hp->n_heads / hp->n_kv_heads;
    int chans[4] = {0, 1, hd / 2, hd / 2 + 1};
    for (int l = 0; l < hp->n_layers; l++) {
        it_tensor *wq = &m->layers[l].wq, *wk = &m->layers[l].wk;
        if (wq->type != IT_TYPE_F32 || wk->type != IT_TYPE_F32) return -1;
        float *nq = model_alloc(m, wq->nbytes), *nk = model_alloc(m, wk->nbytes);
        if (!nq || !nk) return -1;
        memcpy(nq, wq->data, wq->nbytes);
        memcpy(nk, wk->data, wk->nbytes);
        int64_t n_in = wq->ne[0];
        for (int h = 0; h < hp->n_kv_heads; h++)
            for (int ci = 0; ci < 4; ci++) {
                int c = chans[ci];
                for (int64_t i = 0; i < n_in; i++) nk[(int64_t)(h * hd + c) * n_in + i] *= s;
                for (int g = 0; g < rep; g++)
                    for (int64_t i = 0; i < n_in; i++) nq[(int64_t)((h * rep + g) * hd + c) * n_in + i] /= s;
            }
        wq->data = nq;
        wk->data = nk;
    }
    return 0;
}

static double kld_of(const intact_model *m, const intact_model *base, const char *text, size_t len,
                     const intact_kv_params *kv, const intact_prefix *pre) {
    intact_eval_params p = {128, 4, 2, NULL, NULL, pre, kv};
    intact_kld_result r;
    intact_error err;
    if (intact_eval_kld(m, base, text, len, &p, &r, &err) != 0) {
        printf("  kld failed: %s\n", err.msg);
        return -1;
    }
    return r.kld_mean;
}

static void test_models(void) {
    char mp[512], tp[512];
    th_shared("models/english-1m.bin", mp, sizeof mp);
    th_shared("models/tok512.bin", tp, sizeof tp);
    intact_error err;
    intact_model *base = intact_model_load(mp, tp, &err), *m = intact_model_load(mp, tp, &err);
    size_t len = 0;
    char *text = read_text(&len);
    if (!base || !m || !text) {
        TEST_CASE("english-1m loads") CHECK(0, "model or text missing");
        free(text);
        intact_model_free(base);
        intact_model_free(m);
        return;
    }
    int32_t bos = 1;
    intact_prefix *pre = intact_prefix_build(base, &bos, 1, 1, &err);
    TEST_CASE("fp32 cache: balancing changes nothing (with and without IntactKV)") {
        intact_kv_params kv = {0};
        kv.balance = 1;
        double a = kld_of(m, base, text, len, &kv, NULL), b = kld_of(m, base, text, len, &kv, pre);
        CHECK(a >= 0 && a < 1e-9, "KL %g", a);
        CHECK(pre && b >= 0 && b < 1e-9, "KL with prefix %g", b);
    }
    TEST_CASE("key outliers: balancing at least halves INT2 per-token key KL") {
        CHECK(inject_key_outliers(m, 8.0f) == 0, "inject");
        intact_kv_params kv = {0};
        kv.k_type = "int2";
        kv.v_type = "f16";
        double fp = kld_of(m, base, text, len, NULL, NULL);
        double plain = kld_of(m, base, text, len, &kv, NULL);
        kv.balance = 1;
        double bal = kld_of(m, base, text, len, &kv, NULL), bal_pre = kld_of(m, base, text, len, &kv, pre);
        printf("  outlier model: fp KL %.3g, int2 keys %.4f, balanced %.4f, balanced + IntactKV %.4f\n", fp, plain,
               bal, bal_pre);
        CHECK(fp >= 0 && fp < 1e-6, "injection must preserve the function: KL %g", fp);
        CHECK(bal >= 0 && bal <= 0.5 * plain, "balanced %g vs plain %g", bal, plain);
        CHECK(bal_pre >= 0 && bal_pre <= 0.5 * plain, "balanced with prefix %g vs plain %g", bal_pre, plain);
    }
    intact_prefix_free(pre);
    free(text);
    intact_model_free(base);
    intact_model_free(m);
}

int main(void) {
    if (th_skip_program("test_kv_balance", "models/english-1m.bin", "data/eval-en.txt", NULL)) return 0;
    test_channels_by_hand();
    test_scores_unchanged();
    test_models();
    return th_finish("test_kv_balance");
}
