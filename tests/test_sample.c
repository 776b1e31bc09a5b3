// The sampler chain (include/intact.h) against hand-computed distributions, stop strings, and the
// run command's sampling flags (bad values are usage errors, --stop cuts the output).
#include <math.h>

#include "cli_harness.h"
#include "intact.h"
#include "sample/stop.h"

static int probs_of(intact_sampler *s, const float *l, int n, float *p) { return intact_sampler_probs(s, l, n, p); }

int main(void) {
    const float l4[4] = {logf(4), logf(3), logf(2), logf(1)};   // softmax at temp 1: .4 .3 .2 .1
    float p[4];
    intact_sampler s;
    intact_sampler_params sp = intact_sampler_default_params();
    intact_error err = {0, ""};
    TEST_CASE("temperature only: softmax(l / T)") {
        sp.temp = 1; sp.top_p = 1;
        CHECK(intact_sampler_init_params(&s, &sp, &err) == 0, "%s", err.msg);
        probs_of(&s, l4, 4, p);
        CHECK_NEAR(p[0], 0.4, 1e-6); CHECK_NEAR(p[3], 0.1, 1e-6);
        const float l2[2] = {logf(4), 0};
        sp.temp = 2;
        intact_sampler_init_params(&s, &sp, &err);
        probs_of(&s, l2, 2, p);
        CHECK_NEAR(p[0], 2.0 / 3, 1e-6); CHECK_NEAR(p[1], 1.0 / 3, 1e-6);
    }
    TEST_CASE("top-k 2 keeps the two best, renormalized") {
        sp = intact_sampler_default_params(); sp.temp = 1; sp.top_p = 1; sp.top_k = 2;
        intact_sampler_init_params(&s, &sp, &err);
        probs_of(&s, l4, 4, p);
        CHECK_NEAR(p[0], 4.0 / 7, 1e-6); CHECK_NEAR(p[1], 3.0 / 7, 1e-6);
        CHECK(p[2] == 0 && p[3] == 0, "%g %g", p[2], p[3]);
        // and the draws follow it: 20000 samples
        int cnt[4] = {0};
        for (int i = 0; i < 20000; i++) cnt[intact_sample(&s, l4, 4)]++;
        CHECK(cnt[2] == 0 && cnt[3] == 0, "filtered tokens drawn: %d %d", cnt[2], cnt[3]);
        CHECK_NEAR(cnt[0] / 20000.0, 4.0 / 7, 0.02);
    }
    TEST_CASE("min-p 0.5 keeps p >= 0.5 * p_max") {
        sp = intact_sampler_default_params(); sp.temp = 1; sp.top_p = 1; sp.min_p = 0.5f;
        intact_sampler_init_params(&s, &sp, &err);
        probs_of(&s, l4, 4, p);
        CHECK_NEAR(p[0], 0.4 / 0.9, 1e-6); CHECK_NEAR(p[2], 0.2 / 0.9, 1e-6); CHECK(p[3] == 0, "%g", p[3]);
    }
    TEST_CASE("top-p 0.6: the smallest head reaching 0.6") {
        sp = intact_sampler_default_params(); sp.temp = 1; sp.top_p = 0.6f;
        intact_sampler_init_params(&s, &sp, &err);
        probs_of(&s, l4, 4, p);
        CHECK_NEAR(p[0], 4.0 / 7, 1e-6); CHECK_NEAR(p[1], 3.0 / 7, 1e-6); CHECK(p[2] == 0, "%g", p[2]);
    }
    TEST_CASE("repeat penalty divides positive logits, multiplies negative ones (llama.cpp)") {
        sp = intact_sampler_default_params(); sp.temp = 0; sp.repeat_penalty = 2; sp.repeat_last_n = 64;
        intact_sampler_init_params(&s, &sp, &err);
        const float a[3] = {2, 1.5f, -1};
        CHECK(intact_sample(&s, a, 3) == 0, "no history: argmax");
        intact_sampler_accept(&s, 0);
        CHECK(intact_sample(&s, a, 3) == 1, "2/2 = 1 < 1.5");
        const float b[2] = {-1, -1.5f};
        CHECK(intact_sample(&s, b, 2) == 1, "-1*2 = -2 < -1.5");
        // at temp 1: {2,1.5,-1} with token 0 seen twice (penalized once) -> softmax {1, 1.5, -1}
        sp.temp = 1; sp.top_p = 1;
        intact_sampler_init_params(&s, &sp, &err);
        intact_sampler_accept(&s, 0); intact_sampler_accept(&s, 0);
        probs_of(&s, a, 3, p);
        double z = exp(1) + exp(1.5) + exp(-1);
        CHECK_NEAR(p[0], exp(1) / z, 1e-6); CHECK_NEAR(p[1], exp(1.5) / z, 1e-6);
    }
    TEST_CASE("repeat-last-n bounds the window") {
        sp = intact_sampler_default_params(); sp.temp = 0; sp.repeat_penalty = 10; sp.repeat_last_n = 2;
        intact_sampler_init_params(&s, &sp, &err);
        const float a[3] = {3, 2, 1};
        intact_sampler_accept(&s, 0); intact_sampler_accept(&s, 2); intact_sampler_accept(&s, 2);
        CHECK(intact_sample(&s, a, 3) == 0, "token 0 is outside the last 2");
        intact_sampler_accept(&s, 0);
        CHECK(intact_sample(&s, a, 3) == 1, "token 0 now penalized (0.3)");
        for (int i = 0; i < 3000; i++) intact_sampler_accept(&s, 1);   // ring wrap-around
        CHECK(intact_sample(&s, a, 3) == 0, "after wrap-around only token 1 is recent");
    }
    TEST_CASE("bad values are refused with the field named") {
        intact_sampler_params bad[6];
        for (int i = 0; i < 6; i++) bad[i] = intact_sampler_default_params();
        bad[0].temp = -1; bad[1].top_p = 0; bad[2].min_p = 1.5f; bad[3].top_k = -1; bad[4].repeat_penalty = 0;
        bad[5].repeat_last_n = INTACT_SAMPLER_MAX_LAST_N + 1;
        const char *names[6] = {"temperature", "top_p", "min_p", "top_k", "repeat_penalty", "repeat_last_n"};
        for (int i = 0; i < 6; i++) {
            err.msg[0] = 0;
            CHECK(intact_sampler_init_params(&s, &bad[i], &err) != 0 && strstr(err.msg, names[i]), "%s: %s", names[i],
                  err.msg);
        }
        bad[0] = intact_sampler_default_params(); bad[0].min_p = NAN;
        CHECK(intact_sampler_init_params(&s, &bad[0], &err) != 0, "NaN min_p accepted");
    }
    TEST_CASE("stop_scan: a match, a held-back prefix, no match") {
        const char *st[2] = {"END", "xy"};
        int hit;
        CHECK(stop_scan("abcEN", 5, 0, st, 2, &hit) == 3 && !hit, "prefix 'EN' held back");
        CHECK(stop_scan("abcENDef", 8, 3, st, 2, &hit) == 3 && hit, "match at 3");
        CHECK(stop_scan("abcx", 4, 0, st, 2, &hit) == 3 && !hit, "'x' may become xy");
        CHECK(stop_scan("abcd", 4, 2, st, 2, &hit) == 4 && !hit, "no match");
    }
    char m_st[1024], m_tok[1024];
    th_shared("models/stories260K.bin", m_st, sizeof m_st);
    th_shared("models/tok512.bin", m_tok, sizeof m_tok);
    cli_harness_init();
    TEST_CASE("intact run: sampling flags") {
        SKIP_UNLESS(m_st);
        const char *badf[] = {"--top-k -1", "--min-p 2", "--top-p 0", "--repeat-penalty 0", "--repeat-last-n 5000",
                              "--stop ''", "--temp -1"};
        for (int i = 0; i < 7; i++) {
            result r = run("run -m '%s' -z '%s' -p Once -n 4 %s", m_st, m_tok, badf[i]);
            CHECK(r.rc == 2 && strchr(r.err, '\n') == strrchr(r.err, '\n') && r.err[0], "%s: rc %d err '%s'", badf[i],
                  r.rc, r.err);
            rfree(&r);
        }
        result full = run("run -m '%s' -z '%s' -p 'Once upon a time' -n 40 --temp 0", m_st, m_tok);
        result cut = run("run -m '%s' -z '%s' -p 'Once upon a time' -n 40 --temp 0 --stop Lily --stop zzz", m_st,
                         m_tok);
        const char *at = strstr(full.out, "Lily");
        CHECK(full.rc == 0 && cut.rc == 0 && at, "rc %d %d, out '%s'", full.rc, cut.rc, full.out);
        if (at) CHECK(strlen(cut.out) == (size_t)(at - full.out) + 1 && !strncmp(cut.out, full.out, (size_t)(at - full.out)),
                      "cut '%s' vs full '%s'", cut.out, full.out);
        result k1 = run("run -m '%s' -z '%s' -p Once -n 20 --temp 1 --top-k 1 --seed 5", m_st, m_tok);
        result g = run("run -m '%s' -z '%s' -p Once -n 20 --temp 0", m_st, m_tok);
        CHECK(k1.rc == 0 && !strcmp(k1.out, g.out), "top-k 1 is greedy: '%s' vs '%s'", k1.out, g.out);
        rfree(&full); rfree(&cut); rfree(&k1); rfree(&g);
    }
    cli_harness_done();
    return th_finish("test_sample");
}
