// Line retrieval (LongEval): the answer parser, the scoring rule, the prompt builder, the chat
// templates and their special tokens, runs on stories260K (which fits only a few lines and scores near
// zero) and on a scripted model with a known accuracy (tests/ref/retrieval_model.py, needs python3).
#include <stdint.h>
#include <unistd.h>

#include "harness.h"
#include "eval/retrieval.h"
#include "model/model.h"
#include "model/tokenizer_impl.h"

// Lines of the record: those starting with "line " (the header and question never do).
static int count_lines(const char *text, char ids[][32], int max) {
    int n = 0;
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, "line ", 5) != 0) continue;
        const char *colon = strchr(p, ':');
        if (n < max && colon && colon - p - 5 < 32) {
            memcpy(ids[n], p + 5, (size_t)(colon - p - 5));
            ids[n][colon - p - 5] = '\0';
        }
        n++;
    }
    return n;
}

static int check_case(int n_lines, uint64_t seed, int trial) {
    static char ids[RETRIEVAL_MAX_LINES][32];
    retrieval_case c;
    intact_error err = {0, ""};
    if (retrieval_build_case(n_lines, seed, trial, &c, &err) != 0) { printf("  %s\n", err.msg); return 0; }
    int ok = count_lines(c.text, ids, RETRIEVAL_MAX_LINES) == n_lines && c.n_lines == n_lines;
    for (int i = 0; ok && i < n_lines; i++)
        for (int j = i + 1; ok && j < n_lines; j++) ok = strcmp(ids[i], ids[j]) != 0;
    char want[192];
    snprintf(want, sizeof want, "line %s: REGISTER_CONTENT is <%d>\n", c.asked_id, c.value);
    ok = ok && strstr(c.text, want) && c.value >= 1 && c.value <= RETRIEVAL_MAX_VALUE;
    ok = ok && c.asked >= 0 && c.asked < n_lines && strcmp(ids[c.asked], c.asked_id) == 0;
    ok = ok && strncmp(c.text, "Below is a record of lines", 26) == 0;
    snprintf(want, sizeof want, "\nNow the record is over. Tell me what is the <REGISTER_CONTENT> in line %s? "
             "I need the number.", c.asked_id);
    size_t tl = strlen(c.text), wl = strlen(want);
    ok = ok && tl > wl && strcmp(c.text + tl - wl, want) == 0;
    retrieval_case_free(&c);
    return ok;
}

static int same_text(int n, uint64_t s1, int t1, uint64_t s2, int t2) {
    retrieval_case a, b;
    if (retrieval_build_case(n, s1, t1, &a, NULL) || retrieval_build_case(n, s2, t2, &b, NULL)) return -1;
    int same = strcmp(a.text, b.text) == 0;
    retrieval_case_free(&a);
    retrieval_case_free(&b);
    return same;
}

// The asked line's value read back from the prompt text alone: the id after the question's "in line
// ", then that line's "<n>". -1 when the text does not say.
static long value_in_text(const char *text) {
    const char *q = strstr(text, "Tell me what is the <REGISTER_CONTENT> in line ");
    if (!q) return -1;
    q += strlen("Tell me what is the <REGISTER_CONTENT> in line ");
    const char *e = strchr(q, '?');
    char want[64];
    if (!e || e - q > 40) return -1;
    snprintf(want, sizeof want, "line %.*s: REGISTER_CONTENT is <", (int)(e - q), q);
    const char *l = strstr(text, want);
    return l ? strtol(l + strlen(want), NULL, 10) : -1;
}

// The rule written out independently of retrieval.c: skip to the first digit, read the digits.
static int answer_is(const char *answer, long value) {
    while (*answer && (*answer < '0' || *answer > '9')) answer++;
    if (!*answer) return 0;
    char *end;
    long v = strtol(answer, &end, 10);
    return v == value;
}

// Per-trial reports: counted, and the flag of each checked against the independent rule.
static int n_reports, n_report_bad, n_report_correct;
static char first_answer[64];
static void count_report(void *user, const retrieval_trial *t) {
    (void)user;
    if (t->answer && t->c && t->prompt_tokens > 0 && (t->correct == 0 || t->correct == 1)) n_reports++;
    if (!t->answer || !t->c || t->correct != answer_is(t->answer, value_in_text(t->c->text))) n_report_bad++;
    n_report_correct += t->correct == 1;
    if (t->trial == 1 && t->answer) snprintf(first_answer, sizeof first_answer, "%s", t->answer);
}

// Writes tests/ref/retrieval_model.py's scripted model (always answers `answer`, then EOS) to path.
static int write_scripted_model(const char *tok, const char *answer, const char *path) {
    const char *py = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
    if (access("tests/ref/retrieval_model.py", R_OK) != 0) {
        printf("  tests/ref/retrieval_model.py not found: run the tests from the repository root\n");
        return -1;
    }
    char cmd[3072];
    snprintf(cmd, sizeof cmd, "%s tests/ref/retrieval_model.py --tok '%s' --answer %s --out '%s'", py, tok, answer,
             path);
    int rc = system(cmd);
    if (rc != 0) printf("  '%s' failed (status %d)\n", cmd, rc);
    return rc == 0 ? 0 : -1;
}

static int distinct_digits(long v) {
    int seen = 0;
    for (; v > 0; v /= 10) {
        if (seen & (1 << (v % 10))) return 0;
        seen |= 1 << (v % 10);
    }
    return 1;
}

int main(void) {
    TEST_CASE("first integer of an answer") {
        static const struct { const char *s; int found; long v; } cases[] = {
            {" 12345.", 1, 12345}, {"The number is <987>", 1, 987}, {"none", 0, 0}, {"", 0, 0},
            {"-5", 1, 5}, {"0042 and 7", 1, 42}, {"<REGISTER_CONTENT> is 31 or 32", 1, 31},
            {"12345678901234567890", 1, 1000000000}, {"\n\n  8", 1, 8}};
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            long v = -1;
            int f = retrieval_first_int(cases[i].s, &v);
            CHECK(f == cases[i].found && (!f || v == cases[i].v), "'%s': found %d value %ld", cases[i].s, f, v);
        }
    }

    TEST_CASE("prompt builder: N unique lines, the asked one with its value, header and question") {
        static const int ns[] = {1, 2, 3, 20, 100, RETRIEVAL_MAX_LINES};
        for (int i = 0; i < 6; i++)
            for (int t = 0; t < 3; t++) CHECK(check_case(ns[i], 42 + (uint64_t)i, t), "lines %d trial %d", ns[i], t);
    }

    TEST_CASE("prompt builder: deterministic per seed and trial, bad line counts rejected") {
        CHECK(same_text(20, 7, 3, 7, 3) == 1, "same seed and trial differ");
        CHECK(same_text(20, 7, 3, 7, 4) == 0, "trials 3 and 4 are the same");
        CHECK(same_text(20, 7, 3, 8, 3) == 0, "seeds 7 and 8 are the same");
        retrieval_case c;
        intact_error err = {0, ""};
        CHECK(retrieval_build_case(0, 1, 0, &c, &err) != 0 && strstr(err.msg, "lines"), "0 lines: '%s'", err.msg);
        CHECK(retrieval_build_case(RETRIEVAL_MAX_LINES + 1, 1, 0, &c, &err) != 0, "too many lines accepted");
    }

    TEST_CASE("chat templates") {
        CHECK(retrieval_template_parse("none") == RT_NONE && retrieval_template_parse("llama2") == RT_LLAMA2 &&
              retrieval_template_parse("llama3") == RT_LLAMA3 && retrieval_template_parse("chatml") == RT_CHATML,
              "names");
        CHECK(retrieval_template_parse("vicuna") == -1 && retrieval_template_parse("") == -1, "unknown names");
        char *s = retrieval_apply_template(RT_NONE, "Q?");
        CHECK(s && strcmp(s, "Q?") == 0, "none: '%s'", s);
        free(s);
        s = retrieval_apply_template(RT_LLAMA2, "Q?");
        CHECK(s && strcmp(s, "[INST] Q? [/INST]") == 0, "llama2: '%s'", s);
        free(s);
        s = retrieval_apply_template(RT_LLAMA3, "Q?");
        CHECK(s && strcmp(s, "<|start_header_id|>user<|end_header_id|>\n\nQ?<|eot_id|><|start_header_id|>"
                             "assistant<|end_header_id|>\n\n") == 0, "llama3: '%s'", s);
        free(s);
        s = retrieval_apply_template(RT_CHATML, "Q?");
        CHECK(s && strcmp(s, "<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\n") == 0, "chatml: '%s'", s);
        free(s);
    }

    TEST_CASE("scoring: hand-written answers, 6 of 11 right") {
        retrieval_case c = {NULL, 3, 1, 4711, "calm-river"};
        static const struct { const char *answer; int right; } cases[] = {
            {"4711", 1}, {" <4711>", 1}, {"The number is 4711.", 1}, {"04711", 1}, {"-4711", 1},
            {"4711 or 4712", 1}, {"47110", 0}, {"4,711", 0}, {"12 then 4711", 0}, {"", 0}, {"four", 0}};
        int right = 0;
        for (int i = 0; i < 11; i++) {
            int got = retrieval_score(&c, cases[i].answer);
            CHECK(got == cases[i].right, "'%s' for 4711: scored %d", cases[i].answer, got);
            right += got;
        }
        CHECK(right == 6, "%d of 11 scored right", right);
        c.value = 7;
        CHECK(retrieval_score(&c, "7") == 1 && retrieval_score(&c, "70") == 0 && retrieval_score(&c, "x 7 y") == 1,
              "value 7");
    }

    char mp[1024], tp[1024];
    intact_error err = {0, ""};
    intact_model *m = intact_model_load(th_shared("models/stories260K.bin", mp, sizeof mp),
                                        th_shared("models/tok512.bin", tp, sizeof tp), &err);
    TEST_CASE("load stories260K") { SKIP_UNLESS(mp); CHECK(m != NULL, "%s", err.msg); }

    TEST_CASE("template markers: special ids when the vocabulary has them, else plain text") do {
        if (!m) break;
        // Without such pieces (tok512) the markup is ordinary text.
        const char *txt = "<|im_start|>user\nhi<|im_end|>";
        int32_t *ids = NULL, plain[64];
        int n = retrieval_tokenize(m, txt, &ids, &err);
        int np = intact_tokenize(m, txt, strlen(txt), 0, plain, 64, &err);
        CHECK(n > 0 && n == np && memcmp(ids, plain, (size_t)n * sizeof *ids) == 0, "n %d vs %d", n, np);
        free(ids);
        // A GPT-2 vocabulary with <|im_start|> as a control token: the marker becomes its id.
        static const char *const toks[] = {"h", "i", "y", "o", "<|im_start|>"};
        static const int types[] = {TOK_T_NORMAL, TOK_T_NORMAL, TOK_T_NORMAL, TOK_T_NORMAL, TOK_T_CONTROL};
        tok_vocab *v = tok_build_gpt2(toks, 5, NULL, 0, NULL, -1, -1, types, &err);
        CHECK(v != NULL, "%s", err.msg);
        if (!v) break;
        tok_vocab *saved = m->vocab;
        m->vocab = v;
        n = retrieval_tokenize(m, "hi<|im_start|>yo", &ids, &err);
        CHECK(n == 5 && ids[0] == 0 && ids[1] == 1 && ids[2] == 4 && ids[3] == 2 && ids[4] == 3, "n %d: %s", n,
              n < 0 ? err.msg : "");
        free(ids);
        m->vocab = saved;
        tok_free(v);
    } while (0);

    TEST_CASE("end to end: stories260K, 3 lines, 2 trials, deterministic") do {
        if (!m) break;
        intact_retrieval_params p = intact_retrieval_default_params();
        CHECK(p.n_lines == 20 && p.trials == 10 && p.max_answer_tokens == 16, "defaults");
        p.n_lines = 3;
        p.trials = 2;
        p.seed = 5;
        intact_retrieval_result r, r2;
        int rc = intact_eval_retrieval(m, &p, &r, &err);
        CHECK(rc == 0, "%s", err.msg);
        if (rc) break;
        CHECK(r.trials == 2 && r.correct >= 0 && r.correct <= 2, "trials %d correct %d", r.trials, r.correct);
        CHECK(r.accuracy >= 0 && r.accuracy <= 1 && r.accuracy == r.correct / 2.0, "accuracy %g", r.accuracy);
        CHECK(r.prompt_tokens > 100 && r.prompt_tokens < 512, "prompt tokens %g", r.prompt_tokens);
        CHECK(r.kv_bytes > 0 && r.kv_bytes_vs_f16 > 1.9 && r.kv_bytes_vs_f16 < 2.1, "fp32 cache: %llu bytes, %g of f16",
              (unsigned long long)r.kv_bytes, r.kv_bytes_vs_f16);
        n_reports = n_report_bad = n_report_correct = 0;
        rc = retrieval_eval(m, &p, RT_NONE, count_report, NULL, &r2, &err);
        CHECK(rc == 0 && n_reports == 2 && n_report_bad == 0 && n_report_correct == r.correct,
              "rc %d reports %d (%d flags against the rule, %d correct): %s", rc, n_reports, n_report_bad,
              n_report_correct, err.msg);
        CHECK(rc == 0 && r2.correct == r.correct && r2.prompt_tokens == r.prompt_tokens, "not deterministic");
        // A quantized cache is smaller; a template makes the prompt longer.
        intact_kv_params kv = {0};
        kv.k_type = "int4";
        kv.v_type = "int4";
        kv.group = 8; // stories260K has head_dim 8
        p.kv = &kv;
        rc = retrieval_eval(m, &p, RT_LLAMA2, NULL, NULL, &r2, &err);
        CHECK(rc == 0 && r2.kv_bytes_vs_f16 < 0.6 && r2.prompt_tokens > r.prompt_tokens, "int4 + llama2: %g %g %s",
              r2.kv_bytes_vs_f16, r2.prompt_tokens, err.msg);
    } while (0);

    // A scripted model (tests/ref/retrieval_model.py: whatever the prompt, the greedy answer is one
    // fixed number) answers the value of one trial, read from that trial's text. The reported
    // accuracy must then be exactly (trials holding that value) / trials, 1 of 4 here: forcing every
    // answer wrong, or every answer right, in retrieval.c fails this.
    TEST_CASE("end to end: a scripted model that knows one trial's answer scores exactly 1/4") do {
        SKIP_UNLESS(tp);   // the scripted model borrows tok512's vocabulary
        enum { T = 4, LINES = 2 };
        long vals[T];
        uint64_t seed = 0;
        int pick = -1;
        for (; pick < 0 && seed < 100; seed++) {
            for (int t = 0; t < T; t++) {
                retrieval_case c;
                vals[t] = -1;
                if (retrieval_build_case(LINES, seed, t, &c, NULL) == 0) vals[t] = value_in_text(c.text);
                retrieval_case_free(&c);
            }
            for (int t = T - 1; t >= 0; t--)   // a later trial, so trial order matters too
                if (vals[t] > 0 && distinct_digits(vals[t])) pick = t;
        }
        seed--;
        CHECK(pick >= 0, "no trial value with distinct digits");
        if (pick < 0) break;
        int expect = 0;
        for (int t = 0; t < T; t++) expect += vals[t] == vals[pick];
        char answer[32], path[64];
        snprintf(answer, sizeof answer, "%ld", vals[pick]);
        snprintf(path, sizeof path, "/tmp/test_retrieval_%d.bin", (int)getpid());
        CHECK(write_scripted_model(tp, answer, path) == 0, "could not build the scripted model");
        intact_model *sm = intact_model_load(path, tp, &err);
        unlink(path);
        CHECK(sm != NULL, "%s", err.msg);
        if (!sm) break;
        intact_retrieval_params p = intact_retrieval_default_params();
        p.n_lines = LINES;
        p.trials = T;
        p.seed = seed;
        intact_retrieval_result r;
        n_reports = n_report_bad = n_report_correct = 0;
        first_answer[0] = '\0';
        int rc = retrieval_eval(sm, &p, RT_NONE, count_report, NULL, &r, &err);
        CHECK(rc == 0, "%s", err.msg);
        CHECK(rc == 0 && strcmp(first_answer, answer) == 0, "the scripted model answered '%s', not '%s'",
              first_answer, answer);
        CHECK(rc == 0 && r.trials == T && r.correct == expect && r.accuracy == (double)expect / T,
              "seed %llu: %d of %d correct (accuracy %g), expected exactly %d", (unsigned long long)seed, r.correct,
              r.trials, r.accuracy, expect);
        CHECK(n_reports == T && n_report_bad == 0 && n_report_correct == expect,
              "per-trial flags: %d reports, %d disagree with the rule, %d correct", n_reports, n_report_bad,
              n_report_correct);
        // A compressed cache does not change this model's answer (its attention adds exactly 0).
        intact_kv_params kv = {0};
        kv.k_type = "int2";
        kv.v_type = "int2";
        kv.group = 8;
        p.kv = &kv;
        rc = intact_eval_retrieval(sm, &p, &r, &err);
        CHECK(rc == 0 && r.correct == expect, "int2 cache: rc %d, %d correct: %s", rc, r.correct, err.msg);
        intact_model_free(sm);
    } while (0);

    TEST_CASE("errors: prompt too long, bad parameters") do {
        if (!m) break;
        intact_retrieval_params p = intact_retrieval_default_params();
        intact_retrieval_result r;
        p.n_lines = 60;
        p.trials = 1;
        int rc = intact_eval_retrieval(m, &p, &r, &err);
        CHECK(rc != 0 && err.code == INTACT_E_LIMIT, "60 lines fit in 512 tokens?");
        CHECK(strstr(err.msg, "needs") && strstr(err.msg, "context is 512") && strstr(err.msg, "fewer lines") &&
              strstr(err.msg, "fit"), "message: %s", err.msg);
        p.n_lines = 3;
        p.trials = 0;
        CHECK(intact_eval_retrieval(m, &p, &r, &err) != 0 && strstr(err.msg, "trial"), "0 trials: %s", err.msg);
        p.trials = 1;
        p.max_answer_tokens = 0;
        CHECK(intact_eval_retrieval(m, &p, &r, &err) != 0, "0 answer tokens accepted");
        p.max_answer_tokens = 16;
        p.n_lines = 0;
        CHECK(intact_eval_retrieval(m, &p, &r, &err) != 0 && strstr(err.msg, "lines"), "0 lines: %s", err.msg);
    } while (0);

    intact_model_free(m);
    return th_finish("test_retrieval");
}
