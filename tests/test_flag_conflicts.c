// Flag combinations that would be silently ignored or contradict each other are usage errors (exit 2,
// one stderr line naming both flags) in every command that takes them; the rules live once in
// src/cli/kv_flags.c and src/cli/quant_flags.c. Also: the default --kv-group fits the model
// (stories260K has head_dim 8), and a given group that does not fit names the head dimension, not
// memory. Drives the real binary ($INTACT_BIN) on the shared models ($INTACT_SHARED).
#include "cli_harness.h"

static char m_st[1024], m_tok[1024], text[1024];

// A conflicting combination and the two flags its message must name ("" when it is about one flag's
// value).
typedef struct conflict {
    const char *flags, *a, *b;
} conflict;

static const conflict kv_conflicts[] = {
    {"--mikv --mikv-hi 0.2 --kv-k int4", "--kv-k", "--mikv"},
    {"--mikv --mikv-hi 0.2 --kv-v int2", "--kv-v", "--mikv"},
    {"--h2o 0.2 --kv-k int4 --kv-v int4", "--kv-k", "--h2o"},
    {"--mikv --mikv-hi 0.2 --h2o 0.2", "--mikv", "--h2o"},
    {"--mikv", "--mikv", "--mikv-hi"},
    {"--mikv-hi 0.2", "--mikv-hi", "--mikv"},
    {"--mikv-lo-type int2", "--mikv-lo-type", "--mikv"},
    {"--mikv-recent 4", "--mikv-recent", "--mikv"},
    {"--mikv-hi-type int8", "--mikv-hi-type", "--mikv"},
    {"--h2o-recent 4", "--h2o-recent", "--h2o"},
    {"--h2o 0.2 --mikv-recent 4", "--mikv-recent", "--h2o"},
    {"--h2o 0.2 --mikv-lo-type int2", "--mikv-lo-type", "--h2o"},
    {"--mikv --mikv-hi 0.2 --h2o-recent 4", "--h2o-recent", "--mikv"},
    {"--mikv --mikv-hi 0.2 --kv-key-axis channel", "--kv-key-axis", "--mikv"},
    {"--kv-key-axis channel", "--kv-key-axis", "--kv-k"},
    {"--kv-k f16 --kv-v int4 --kv-key-axis channel", "--kv-key-axis", "--kv-k"},
    {"--kv-group 8", "--kv-group", "--kv-k"},
    {"--kv-k f16 --kv-v f16 --kv-group 8", "--kv-group", "--kv-k"},
    {"--h2o 0.2 --kv-group 8", "--kv-group", "--kv-k"},
    {"--kv-balance", "--kv-balance", "--kv-k"},
    {"--kv-v int4 --kv-balance", "--kv-balance", "--kv-k"},
};

static const conflict quant_conflicts[] = {
    {"--bits 3", "--bits", "--quant"},
    {"--group 64", "--group", "--quant"},
    {"--sym", "--sym", "--quant"},
    {"--fake-quant", "--fake-quant", "--quant"},
    {"--clip-search", "--clip-search", "--quant"},
    {"--act-order", "--act-order", "--quant"},
    {"--calib '%T'", "--calib", "--quant"},
    {"--calib-samples 4", "--calib-samples", "--quant"},
    {"--calib-len 64", "--calib-len", "--quant"},
    {"--quant-seed 3", "--quant-seed", "--quant"},
    {"--quant rtn --calib '%T'", "--calib", "rtn"},
    {"--quant rtn --calib-samples 4", "--calib-samples", "rtn"},
    {"--quant rtn --quant-seed 3", "--quant-seed", "rtn"},
    {"--calib-no-bos", "--calib-no-bos", "--quant"},
    {"--quant rtn --calib-no-bos", "--calib-no-bos", "rtn"},
    {"--quant gptq --clip-search --calib '%T'", "--clip-search", "gptq"},
    {"--quant awq --act-order --calib '%T'", "--act-order", "awq"},
    {"--quant rtn --act-order", "--act-order", "rtn"},
    {"--quant gptq", "--quant", "--calib"},
    {"--quant awq", "--quant", "--calib"},
    {"--quant none", "--quant", "--rotate"},
    {"--quant none --rotate --bits 3", "--bits", "--quant"},
    {"--quant foo", "--quant", "foo"},
    {"--quant rtn --bits 5", "--bits", "5"},
    {"--quant rtn --group 48", "--group", "48"},
    {"--rotate-seed 5", "--rotate-seed", "--rotate"},
    {"--a-clip 0.9", "--a-clip", "--abits"},
    {"--a-fake", "--a-fake", "--abits"},
    {"--abits 16 --a-clip 0.5", "--a-clip", "--abits"},
    {"--exact-act --int8-act-all", "--exact-act", "--int8-act-all"},
    {"--abits 8 --exact-act", "--exact-act", "--abits"},
    {"--abits 4 --int8-act-all", "--int8-act-all", "--abits"},
};

// The flags with %T replaced by the text file path.
static void expand(const char *flags, char *out, size_t cap) {
    out[0] = '\0';
    for (const char *s = flags; *s; s++) {
        size_t n = strlen(out);
        if (s[0] == '%' && s[1] == 'T') { snprintf(out + n, cap - n, "%s", text); s++; }
        else if (n + 1 < cap) { out[n] = *s; out[n + 1] = '\0'; }
    }
}

// Exit 2 and exactly one stderr line that names both flags.
static void expect_usage(const char *cmdline, const conflict *c) {
    char flags[2048];
    expand(c->flags, flags, sizeof flags);
    result r = run("%s %s", cmdline, flags);
    CHECK(r.rc == 2 && one_line_with(r.err, c->a) && strstr(r.err, c->b), "%s %s: rc %d, stderr '%s'", cmdline,
          c->flags, r.rc, r.err);
    rfree(&r);
}

int main(void) {
    if (th_skip_program("test_flag_conflicts", "data/eval-en.txt", NULL)) return 0;
    int ok = cli_harness_init() == 0;
    th_shared("models/stories260K.bin", m_st, sizeof m_st);
    th_shared("models/tok512.bin", m_tok, sizeof m_tok);
    th_shared("data/eval-en.txt", text, sizeof text);
    TEST_CASE("setup: binary and models") {
        CHECK(ok && access(bin, X_OK) == 0, "no executable at %s (set INTACT_BIN)", bin);
        CHECK(access(m_st, R_OK) == 0 && access(text, R_OK) == 0, "no %s / %s (set INTACT_SHARED)", m_st, text);
    }
    char ppl[6144];
    snprintf(ppl, sizeof ppl, "ppl -m '%s' -z '%s' -f '%s' -c 64 --chunks 2", m_st, m_tok, text);

    TEST_CASE("KV flags: every conflicting or ineffective combination is exit 2 naming both flags") {
        for (size_t i = 0; i < sizeof kv_conflicts / sizeof kv_conflicts[0]; i++) expect_usage(ppl, &kv_conflicts[i]);
    }
    TEST_CASE("quantization flags: every conflicting or ineffective combination is exit 2 naming both") {
        for (size_t i = 0; i < sizeof quant_conflicts / sizeof quant_conflicts[0]; i++)
            expect_usage(ppl, &quant_conflicts[i]);
    }

    // Every command that takes the flag groups rejects them the same way (the check is in the flag
    // modules, called by each command right after parsing).
    TEST_CASE("every command: run, kld, bench, retrieval, ikv mse, ikv calibrate") {
        char cmds[6][6144];
        snprintf(cmds[0], sizeof cmds[0], "run -m '%s' -z '%s' -p hi -n 2", m_st, m_tok);
        snprintf(cmds[1], sizeof cmds[1], "kld -m '%s' -z '%s' --base '%s' -f '%s' -c 64 --chunks 1", m_st, m_tok, m_st,
                 text);
        snprintf(cmds[2], sizeof cmds[2], "bench -m '%s' -p 4 -n 2 --no-bandwidth", m_st);
        snprintf(cmds[3], sizeof cmds[3], "retrieval -m '%s' -z '%s' --lines 2 --trials 1", m_st, m_tok);
        snprintf(cmds[4], sizeof cmds[4], "ikv mse -m '%s' -z '%s' --base '%s' -f '%s'", m_st, m_tok, m_st, text);
        snprintf(cmds[5], sizeof cmds[5], "ikv calibrate -m '%s' -z '%s' --base '%s' --ikv /nonexistent.ikv "
                 "--calib '%s' -o /tmp/intact-never-written.ikv", m_st, m_tok, m_st, text);
        static const conflict kv = {"--mikv --mikv-hi 0.2 --kv-k int4 --kv-v int4", "--kv-k", "--mikv"};
        static const conflict q = {"--quant rtn --act-order", "--act-order", "rtn"};
        static const conflict a = {"--a-fake", "--a-fake", "--abits"};
        // ikv calibrate reads --calib itself, so there the calibration options are what conflicts.
        static const conflict cal = {"--calib-samples 4", "--calib-samples", "--quant"};
        for (int i = 0; i < 6; i++) {
            if (i < 4) expect_usage(cmds[i], &kv);
            expect_usage(cmds[i], &q);
            expect_usage(cmds[i], &a);
            if (i == 5) expect_usage(cmds[i], &cal);
        }
    }

    TEST_CASE("valid combinations are still accepted") {
        static const char *good[] = {
            "--kv-k int4 --kv-v int4 --kv-key-axis token",
            "--kv-k int8 --kv-v f16 --kv-key-axis channel --kv-group 8 --kv-balance",
            "--h2o 0.2 --mikv-hi-type int8 --kv-group 8 --h2o-recent 4",
            "--mikv --mikv-hi 0.2 --mikv-hi-type int8 --mikv-lo-type int2 --mikv-recent 0 --kv-balance",
            "--quant rtn --bits 8 --group 32 --clip-search --sym",
            "--rotate --rotate-seed 3",
            "--abits 8 --a-clip 0.9 --a-fake",
        };
        for (int i = 0; i < 7; i++) {
            result r = run("%s %s --json", ppl, good[i]);
            CHECK(r.rc == 0 && json_num(r.out, "ppl") > 1, "%s: rc %d out '%s' err '%s'", good[i], r.rc, r.out, r.err);
            rfree(&r);
        }
    }

    char kld[6144];
    snprintf(kld, sizeof kld, "kld -m '%s' -z '%s' --base '%s' -f '%s' -c 64 --chunks 4 --json", m_st, m_tok, m_st,
             text);
    TEST_CASE("stories260K (head_dim 8): the default KV group fits, and is 8") {
        result r = run("%s --kv-k int4 --kv-v int4", kld), r8 = run("%s --kv-k int4 --kv-v int4 --kv-group 8", kld);
        double kl = json_num(r.out, "kld_mean");
        CHECK(r.rc == 0 && kl > 0 && kl < 1, "int4 default group: rc %d out '%s' err '%s'", r.rc, r.out, r.err);
        CHECK(r8.rc == 0 && !strcmp(r.out, r8.out), "default group != 8: '%s' vs '%s'", r.out, r8.out);
        rfree(&r);
        rfree(&r8);
        r = run("%s --mikv --mikv-hi 0.2", kld);
        kl = json_num(r.out, "kld_mean");
        CHECK(r.rc == 0 && kl > 0 && kl < 1, "MiKV default group: rc %d out '%s' err '%s'", r.rc, r.out, r.err);
        rfree(&r);
    }
    TEST_CASE("stories260K: a given group that does not fit names the head dimension, not memory") {
        static const char *bad[] = {"--kv-k int4 --kv-v int4 --kv-group 32", "--mikv --mikv-hi 0.2 --kv-group 16",
                                    "--h2o 0.2 --mikv-hi-type int8 --kv-group 32"};
        for (int i = 0; i < 3; i++) {
            result r = run("%s %s", kld, bad[i]);
            CHECK(r.rc != 0 && strstr(r.err, "head dimension 8") && strstr(r.err, "group") &&
                  !strstr(r.err, "memory"), "%s: rc %d, stderr '%s'", bad[i], r.rc, r.err);
            rfree(&r);
        }
    }
    // --mikv-recent 0 used to be read as "not given" (the default 32): a value silently ignored. A
    // prefill block attends over itself in high precision, so the chunks must span several 64-token
    // blocks for demotion to matter: -c 256.
    TEST_CASE("--mikv-recent 0 keeps no recent window (differs from the default 32)") {
        char k256[6144];
        snprintf(k256, sizeof k256, "kld -m '%s' -z '%s' --base '%s' -f '%s' -c 256 --chunks 2 --json", m_st, m_tok,
                 m_st, text);
        result r0 = run("%s --mikv --mikv-hi 0.1 --mikv-lo-type int2 --mikv-recent 0", k256);
        result r32 = run("%s --mikv --mikv-hi 0.1 --mikv-lo-type int2", k256);
        double k0 = json_num(r0.out, "kld_mean"), k32 = json_num(r32.out, "kld_mean");
        CHECK(r0.rc == 0 && r32.rc == 0 && k0 > k32, "recent 0: %g, default: %g (%s %s)", k0, k32, r0.err, r32.err);
        CHECK(json_num(r0.out, "kv_bytes") < json_num(r32.out, "kv_bytes"), "bytes %s vs %s", r0.out, r32.out);
        rfree(&r0);
        rfree(&r32);
    }
    cli_harness_done();
    return th_finish("test_flag_conflicts");
}
