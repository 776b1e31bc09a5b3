// The command-line client, driven as a separate process: exit codes, help, argument errors, and the
// functional output of every command (tokenize ids and greedy text of the PyTorch reference, ppl/kld
// JSON equal to tests/goldens/eval.gold). The binary is $INTACT_BIN (tests/run.sh sets it; default
// build/intact); goldens come from tests/goldens or $INTACT_GOLDENS; models from $INTACT_SHARED.
// Case bodies are `do { } while (0)` so that `break` skips the rest of a case. The process harness
// (run, results, JSON helpers) is tests/cli_harness.h, shared with test_cli_inputs.c, which covers
// every input path (files, stdin, models, tokenizers, flags) with good and bad input.
#include "cli_harness.h"
#include "golden.h"

#define PREFIX_BYTES 4000
#define REL 1e-4

static char m_st[1024], m_stg[1024], m_en[1024], m_tok[1024];

static const char *golden_path(const char *file, char *buf, size_t cap) {
    const char *root = getenv("INTACT_GOLDENS");
    snprintf(buf, cap, "%s/%s", root && *root ? root : "tests/goldens", file);
    return buf;
}

int main(void) {
    if (th_skip_program("test_cli", "models/english-1m.bin", "models/stories260K.gguf", "data/eval-en.txt", NULL)) return 0;
    int harness_ok = cli_harness_init() == 0;
    th_shared("models/stories260K.bin", m_st, sizeof m_st);
    th_shared("models/stories260K.gguf", m_stg, sizeof m_stg);
    th_shared("models/english-1m.bin", m_en, sizeof m_en);
    th_shared("models/tok512.bin", m_tok, sizeof m_tok);
    char gp[1024], tp[1024];
    golden *g = golden_load(golden_path("eval.gold", gp, sizeof gp));
    const float *gppl = g ? golden_f32(g, "en1m.ppl", NULL, NULL) : NULL;
    const float *gkld = g ? golden_f32(g, "kld.en1m_vs_stories", NULL, NULL) : NULL;

    // temp files: stderr capture and the 4000-byte text prefix
    char textfile[] = "/tmp/intact_test_cli_text_XXXXXX";
    int tfd = mkstemp(textfile);
    int setup_ok = harness_ok && tfd >= 0;
    if (tfd >= 0) {
        size_t flen = 0;
        char *file = read_path(th_shared("data/eval-en.txt", tp, sizeof tp), &flen);
        size_t n = flen < PREFIX_BYTES ? flen : PREFIX_BYTES;
        while (file && n > 0 && n < flen && ((unsigned char)file[n] & 0xC0) == 0x80) n--;
        setup_ok = setup_ok && file && n > 0 && write(tfd, file, n) == (ssize_t)n;
        close(tfd);
        free(file);
    }

    TEST_CASE("setup: binary, golden, temp files") do {
        CHECK(access(bin, X_OK) == 0, "no executable at %s (set INTACT_BIN)", bin);
        CHECK(gppl && gkld, "cannot read %s (run from the repo root or set INTACT_GOLDENS)", gp);
        CHECK(setup_ok, "temp files / %s", tp);
    } while (0);

    TEST_CASE("intact --help, no command, unknown command") do {
        result r = run("--help");
        CHECK(r.rc == 0 && strstr(r.out, "usage:"), "--help: rc %d out '%s'", r.rc, r.out);
        rfree(&r);
        r = run("%s", "");
        CHECK_FAILS(r, "no command");
        rfree(&r);
        r = run("nosuchcmd");
        CHECK_FAILS(r, "nosuchcmd");
        CHECK(strstr(r.err, "nosuchcmd") != NULL, "stderr does not name the command: '%s'", r.err);
        rfree(&r);
    } while (0);

    // the rest of a valid command line, so that the model path is what fails
    static const struct { const char *cmd; const char *rest; } cmds[] = {
        {"info", ""}, {"run", "-p hi -n 2"}, {"tokenize", "-p hi"},
        {"ppl", "-f '%T'"}, {"kld", "--base '%E' -f '%T'"}, {"bench", "-p 4 -n 2 --no-bandwidth"},
        {"quantize", "-o /tmp/intact-test-cli-never-written.gguf"},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        const char *c = cmds[i].cmd;
        char name[128], rest[4096] = "";
        // expand %T (text file) and %E (english-1m)
        for (const char *s = cmds[i].rest; *s; s++) {
            size_t n = strlen(rest);
            if (s[0] == '%' && s[1] == 'T') { snprintf(rest + n, sizeof rest - n, "%s", textfile); s++; }
            else if (s[0] == '%' && s[1] == 'E') { snprintf(rest + n, sizeof rest - n, "%s", m_en); s++; }
            else if (n + 1 < sizeof rest) { rest[n] = *s; rest[n + 1] = '\0'; }
        }
        snprintf(name, sizeof name, "%s: --help, unknown flag, missing model, missing value", c);
        TEST_CASE(name) do {
            result r = run("%s --help", c);
            CHECK(r.rc == 0 && strstr(r.out, "usage:"), "%s --help: rc %d out '%s' err '%s'", c, r.rc,
                  r.out, r.err);
            rfree(&r);
            r = run("%s -m '%s' -z '%s' --bogus %s", c, m_en, m_tok, rest);
            CHECK_FAILS(r, "--bogus");
            CHECK(strstr(r.err, "unknown flag") && strstr(r.err, "--bogus"),
                  "%s --bogus: stderr '%s'", c, r.err);
            rfree(&r);
            const char *missing = "/nonexistent-dir/missing-model.bin";
            r = run("%s -m '%s' -z '%s' %s", c, missing, m_tok, rest);
            CHECK_FAILS(r, "missing model");
            CHECK(strstr(r.err, missing) != NULL, "%s: stderr does not mention the path: '%s'", c,
                  r.err);
            rfree(&r);
            r = run("%s -z '%s' -m", c, m_tok);
            CHECK_FAILS(r, "-m without a value");
            rfree(&r);
        } while (0);
    }

    TEST_CASE("missing and malformed values") do {
        static const char *bad[] = {
            "run -m '%s' -z '%s' -p hi -n",        "run -m '%s' -z '%s' -p hi -n abc",
            "run -m '%s' -z '%s' -p hi --temp -1", "run -m '%s' -z '%s' -p hi -t 0",
            "run -m '%s' -z '%s' -p hi -n 5x",     "run -m '%s' -z '%s' -p hi --top-p",
            "bench -m '%s' -z '%s' -n",            "bench -m '%s' -z '%s' -p abc",
            "bench -m '%s' -z '%s' -t 0",          "tokenize -m '%s' -z '%s' -p",
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            char args[4096];
            snprintf(args, sizeof args, bad[i], m_st, m_tok);
            result r = run("%s", args);
            CHECK(r.rc > 0 && r.err[0], "'%s': rc %d, stderr '%s'", bad[i], r.rc, r.err);
            rfree(&r);
        }
        // (-c beyond the training context is a warning, not an error: test_cli_inputs.c)
        static const char *bad_eval[] = {"-c abc", "-c 1", "-c 1048577", "--chunks abc", "-t 0", "-c"};
        for (size_t i = 0; i < sizeof bad_eval / sizeof bad_eval[0]; i++) {
            result r = run("ppl -m '%s' -z '%s' -f '%s' %s", m_en, m_tok, textfile, bad_eval[i]);
            CHECK(r.rc > 0 && r.err[0], "ppl '%s': rc %d, stderr '%s'", bad_eval[i], r.rc, r.err);
            rfree(&r);
        }
    } while (0);

    TEST_CASE("-f with a nonexistent file fails cleanly") do {
        const char *nf = "/nonexistent-dir/no-such-text.txt";
        result r = run("run -m '%s' -z '%s' -f '%s' -n 2", m_st, m_tok, nf);
        CHECK_FAILS(r, "run -f");
        CHECK(strstr(r.err, nf) != NULL, "run -f: stderr '%s'", r.err);
        rfree(&r);
        r = run("tokenize -m '%s' -z '%s' -f '%s'", m_st, m_tok, nf);
        CHECK_FAILS(r, "tokenize -f");
        CHECK(strstr(r.err, nf) != NULL, "tokenize -f: stderr '%s'", r.err);
        rfree(&r);
        r = run("ppl -m '%s' -z '%s' -f '%s'", m_en, m_tok, nf);
        CHECK_FAILS(r, "ppl -f");
        CHECK(strstr(r.err, nf) != NULL, "ppl -f: stderr '%s'", r.err);
        rfree(&r);
        r = run("kld -m '%s' --base '%s' -z '%s' -f '%s'", m_st, m_en, m_tok, nf);
        CHECK_FAILS(r, "kld -f");
        CHECK(strstr(r.err, nf) != NULL, "kld -f: stderr '%s'", r.err);
        rfree(&r);
    } while (0);

    TEST_CASE("tokenize prints the reference ids") do {
        result r = run("tokenize -m '%s' -z '%s' -p 'Once upon a time'", m_st, m_tok);
        CHECK(r.rc == 0, "rc %d: %s", r.rc, r.err);
        CHECK(strcmp(r.out, "[1, 403, 407, 261, 378]\n") == 0, "got '%s'", r.out);
        rfree(&r);
    } while (0);

    TEST_CASE("run --temp 0 gives the reference's greedy text") do {
        result r = run("run -m '%s' -z '%s' -p 'Once upon a time' -n 20 --temp 0", m_st, m_tok);
        CHECK(r.rc == 0, "rc %d: %s", r.rc, r.err);
        const char *want = "Once upon a time, there was a little girl named Lily";
        CHECK(strncmp(r.out, want, strlen(want)) == 0, "got '%s'", r.out);
        rfree(&r);
    } while (0);

    TEST_CASE("ppl --json equals the reference") do {
        result r = run("ppl -m '%s' -z '%s' -f '%s' -c 64 --json", m_en, m_tok, textfile);
        CHECK(r.rc == 0, "rc %d: %s", r.rc, r.err);
        CHECK(one_json_object(r.out), "stdout is not one JSON object: '%s'", r.out);
        static const char *keys[] = {"ppl", "nll", "tokens", "chunks"};
        for (int k = 0; k < 4; k++)
            CHECK(!isnan(json_num(r.out, keys[k])), "key \"%s\" missing: %s", keys[k], r.out);
        if (gppl) {
            double ppl = json_num(r.out, "ppl"), tok = json_num(r.out, "tokens");
            CHECK(near_rel(ppl, gppl[0], REL), "ppl %.9g vs ref %.9g", ppl, (double)gppl[0]);
            CHECK(tok == (double)gppl[2], "tokens %.0f vs ref %.0f", tok, (double)gppl[2]);
        }
        rfree(&r);
    } while (0);

    TEST_CASE("kld --json equals the reference") do {
        result r = run("kld -m '%s' --base '%s' -z '%s' -f '%s' -c 64 --chunks 4 --json", m_st, m_en,
                       m_tok, textfile);
        CHECK(r.rc == 0, "rc %d: %s", r.rc, r.err);
        CHECK(one_json_object(r.out), "stdout is not one JSON object: '%s'", r.out);
        static const char *keys[] = {"kld_mean", "kld_p99", "top1", "ppl", "ppl_base"};
        for (int k = 0; k < 5; k++) {
            double v = json_num(r.out, keys[k]);
            CHECK(!isnan(v), "key \"%s\" missing: %s", keys[k], r.out);
            if (gkld && k != 2)
                CHECK(near_rel(v, gkld[k], REL) || fabs(v - gkld[k]) <= 1e-6, "%s %.9g vs ref %.9g",
                      keys[k], v, (double)gkld[k]);
        }
        if (gkld) {
            double top1 = json_num(r.out, "top1");
            CHECK(fabs(top1 - gkld[2]) <= 1.0 / 252 + 1e-5, "top1 %.9g vs ref %.9g", top1,
                  (double)gkld[2]);
        }
        rfree(&r);
    } while (0);

    TEST_CASE("info --json of stories260K.gguf") do {
        result r = run("info -m '%s' --json", m_stg);
        CHECK(r.rc == 0, "rc %d: %s", r.rc, r.err);
        CHECK(one_json_object(r.out), "stdout is not one JSON object: '%s'", r.out);
        CHECK(json_num(r.out, "n_layers") == 5, "n_layers: %s", r.out);
        CHECK(json_num(r.out, "n_kv_heads") == 4, "n_kv_heads: %s", r.out);
        CHECK(json_num(r.out, "n_vocab") == 512, "n_vocab: %s", r.out);
        rfree(&r);
    } while (0);

    TEST_CASE("bench --json") do {
        result r = run("bench -m '%s' -p 8 -n 4 --json --no-bandwidth", m_st);
        CHECK(r.rc == 0, "rc %d: %s", r.rc, r.err);
        CHECK(one_json_object(r.out), "stdout is not one JSON object: '%s'", r.out);
        static const char *keys[] = {"prefill_tok_s", "decode_tok_s", "peak_rss_mb"};
        for (int k = 0; k < 3; k++) {
            double v = json_num(r.out, keys[k]);
            CHECK(isfinite(v) && v > 0, "key \"%s\" missing or not positive: %s", keys[k], r.out);
        }
        rfree(&r);
        // --prefetch-ab: 10 steps are two whole A A B B blocks (the last two steps start a third).
        r = run("bench -m '%s' -p 8 -n 10 --json --no-bandwidth --prefetch-ab 0,4096", m_st);
        CHECK(r.rc == 0 && one_json_object(r.out), "rc %d: %s %s", r.rc, r.out, r.err);
        CHECK(json_num(r.out, "ab_blocks") == 2, "ab_blocks: %s", r.out);
        CHECK(strstr(r.out, "\"prefetch_ab\":[0,4096]") != NULL, "prefetch_ab: %s", r.out);
        CHECK(json_num(r.out, "ab_speed") > 0, "ab_speed: %s", r.out);
        rfree(&r);
        r = run("bench -m '%s' -p 8 -n 10 --no-bandwidth --prefetch-ab 2048,8192", m_st);
        CHECK(r.rc == 0 && strstr(r.out, "A 2048 bytes") && strstr(r.out, "B 8192 bytes") &&
                  strstr(r.out, "median over 2 A A B B blocks"), "text: %s %s", r.out, r.err);
        rfree(&r);
    } while (0);

    TEST_CASE("quantize: bad parameters, then a file every command loads") do {
        static const char *bad[][2] = {
            {"--bits 5", "5 bits"}, {"--group 48", "group 48"}, {"--method hqq", "hqq"},
            {"--method gptq", "--calib"}, {"--bits", "needs a value"},
        };
        for (int i = 0; i < 5; i++) {
            result r = run("quantize -m '%s' -z '%s' -o /tmp/intact-test-cli-bad.gguf %s", m_en, m_tok, bad[i][0]);
            CHECK_FAILS(r, bad[i][0]);
            CHECK(strstr(r.err, bad[i][1]) != NULL, "%s: stderr '%s'", bad[i][0], r.err);
            CHECK(access("/tmp/intact-test-cli-bad.gguf", F_OK) != 0, "%s left a file behind", bad[i][0]);
            rfree(&r);
        }
        result r = run("quantize -m '%s' -z '%s' -o /tmp/intact-test-cli-q4.gguf --method rtn --bits 4 --group 32 --json",
                       m_en, m_tok);
        CHECK(r.rc == 0 && one_json_object(r.out), "rc %d out '%s' err '%s'", r.rc, r.out, r.err);
        CHECK(near_rel(json_num(r.out, "bits_per_weight"), 4.75, 1e-9), "bits_per_weight in '%s'", r.out);
        CHECK(json_num(r.out, "quantized") == 42, "quantized in '%s'", r.out);
        rfree(&r);
        r = run("info -m /tmp/intact-test-cli-q4.gguf --json");
        CHECK(r.rc == 0 && strstr(r.out, "\"int4_g32\":42"), "info: '%s' '%s'", r.out, r.err);
        rfree(&r);
        r = run("run -m /tmp/intact-test-cli-q4.gguf -p 'The president' -n 4 --temp 0");
        CHECK(r.rc == 0 && strncmp(r.out, "The president", 13) == 0, "run: '%s' '%s'", r.out, r.err);
        rfree(&r);
        r = run("ppl -m /tmp/intact-test-cli-q4.gguf -f '%s' -c 64 --json", textfile);
        CHECK(r.rc == 0 && json_num(r.out, "ppl") > 1, "ppl: '%s' '%s'", r.out, r.err);
        double ppl_file = json_num(r.out, "ppl");
        rfree(&r);
        r = run("ppl -m '%s' -z '%s' --quant rtn --bits 4 --group 32 -f '%s' -c 64 --json", m_en, m_tok, textfile);
        CHECK(r.rc == 0 && json_num(r.out, "ppl") == ppl_file, "in-memory ppl %s vs file %g", r.out, ppl_file);
        rfree(&r);
        unlink("/tmp/intact-test-cli-q4.gguf");
    } while (0);

    TEST_CASE("ikv: build, use on run/ppl/kld/bench, mse, calibrate, and their errors") do {
        const char *pf = "/tmp/intact-test-cli.ikv", *pc = "/tmp/intact-test-cli-cal.ikv";
        result r = run("ikv build -m '%s' -z '%s' --bos -o %s", m_en, m_tok, pf);
        CHECK(r.rc == 0 && access(pf, F_OK) == 0, "build: %s", r.err);
        rfree(&r);
        r = run("ikv build -m '%s' -z '%s' --bos --prompt hi -o %s", m_en, m_tok, pf);
        CHECK_FAILS(r, "--bos and --prompt");
        rfree(&r);
        r = run("ikv --help");
        CHECK(r.rc == 0 && strstr(r.out, "calibrate"), "ikv --help");
        rfree(&r);
        r = run("ikv frobnicate");
        CHECK_FAILS(r, "unknown subcommand");
        rfree(&r);
        // The FP prefix in front of the FP model changes nothing: same ppl.
        r = run("ppl -m '%s' -z '%s' -f '%s' -c 64 --json", m_en, m_tok, textfile);
        double plain = json_num(r.out, "ppl");
        rfree(&r);
        r = run("ppl -m '%s' -z '%s' -f '%s' -c 64 --json --ikv %s", m_en, m_tok, textfile, pf);
        CHECK(r.rc == 0 && near_rel(json_num(r.out, "ppl"), plain, 1e-6), "ppl with fp prefix %s vs %g", r.out, plain);
        rfree(&r);
        r = run("kld -m '%s' -z '%s' --base '%s' -f '%s' -c 64 --json --ikv %s --quant rtn --bits 3 --group 32",
                m_en, m_tok, m_en, textfile, pf);
        CHECK(r.rc == 0 && json_num(r.out, "kld_mean") > 0, "kld with prefix: %s %s", r.out, r.err);
        rfree(&r);
        r = run("run -m '%s' -z '%s' --ikv %s -p 'The president said that' -n 10 --temp 0", m_en, m_tok, pf);
        CHECK(r.rc == 0 && strstr(r.out, "The president said that the United States"), "run: '%s' %s", r.out, r.err);
        rfree(&r);
        r = run("bench -m '%s' -z '%s' --ikv %s -p 8 -n 4 --no-bandwidth --json", m_en, m_tok, pf);
        CHECK(r.rc == 0 && json_num(r.out, "decode_tok_s") > 0, "bench: %s", r.err);
        rfree(&r);
        r = run("ppl -m '%s' -z '%s' -f '%s' --ikv /tmp/no-such.ikv", m_en, m_tok, textfile);
        CHECK_FAILS(r, "missing prefix");
        CHECK(strstr(r.err, "/tmp/no-such.ikv") != NULL, "stderr: %s", r.err);
        rfree(&r);
        r = run("ppl -m '%s' -z '%s' -f '%s' --ikv '%s'", m_en, m_tok, textfile, m_tok);
        CHECK_FAILS(r, "not a prefix file");
        CHECK(strstr(r.err, "not an IntactKV prefix") != NULL, "stderr: %s", r.err);
        rfree(&r);
        r = run("ppl -m '%s' -z '%s' -f '%s' --ikv %s", m_st, m_tok, textfile, pf);
        CHECK_FAILS(r, "prefix of another model");
        rfree(&r);
        r = run("ikv mse -m '%s' -z '%s' --base '%s' --quant rtn --bits 3 --group 32 -f '%s' -c 64 --chunks 1 "
                "--max-prefix 2 --json", m_en, m_tok, m_en, textfile);
        CHECK(r.rc == 0 && one_json_object(r.out) && strstr(r.out, "\"n_intact\":2"), "mse: %s %s", r.out, r.err);
        rfree(&r);
        r = run("ikv mse -m '%s' -z '%s' --base '%s' -f '%s' -c 64 --max-prefix 63", m_en, m_tok, m_en, textfile);
        CHECK_FAILS(r, "--max-prefix beyond the chunk");
        CHECK(strstr(r.err, "--max-prefix") != NULL, "stderr: %s", r.err);
        rfree(&r);
        r = run("ikv calibrate -m '%s' -z '%s' --base '%s' --ikv %s -o %s", m_en, m_tok, m_en, pf, pc);
        CHECK_FAILS(r, "calibrate without --calib");
        rfree(&r);
        r = run("ikv calibrate -m '%s' -z '%s' --quant rtn --bits 3 --group 32 --base '%s' --ikv %s --calib '%s' "
                "--samples 2 --len 16 --epochs 2 -o %s --json", m_en, m_tok, m_en, pf, textfile, pc);
        CHECK(r.rc == 0 && json_num(r.out, "loss_after") <= json_num(r.out, "loss_before"), "calibrate: %s %s",
              r.out, r.err);
        rfree(&r);
        r = run("run -m '%s' -z '%s' --ikv %s -p 'The president' -n 2 --temp 0", m_en, m_tok, pc);
        CHECK(r.rc == 0, "calibrated prefix loads: %s", r.err);
        rfree(&r);
        unlink(pf);
        unlink(pc);
    } while (0);

    TEST_CASE("KV-cache flags: bytes accounting and bad types") do {
        // english-1m: head_dim 32, one group of 32 per (token, head): int4 = 16 bytes of codes + 4 of
        // fp16 scale/min = 20 bytes, against 64 for fp16.
        result r = run("kld -m '%s' -z '%s' --base '%s' -f '%s' -c 64 --json --kv-k int4 --kv-v int4",
                       m_en, m_tok, m_en, textfile);
        CHECK(r.rc == 0 && near_rel(json_num(r.out, "kv_bytes_vs_f16"), 20.0 / 64.0, 1e-9), "kld: %s %s", r.out, r.err);
        CHECK(json_num(r.out, "kld_mean") > 0, "an int4 cache must differ from fp32: %s", r.out);
        rfree(&r);
        r = run("ppl -m '%s' -z '%s' -f '%s' -c 64 --json --kv-k f16 --kv-v f16", m_en, m_tok, textfile);
        CHECK(r.rc == 0 && near_rel(json_num(r.out, "kv_bytes_vs_f16"), 1.0, 1e-12), "ppl: %s %s", r.out, r.err);
        rfree(&r);
        r = run("bench -m '%s' -p 8 -n 4 --no-bandwidth --json --kv-k int8 --kv-v int4 --kv-key-axis channel", m_en);
        CHECK(r.rc == 0 && json_num(r.out, "kv_bytes") > 0, "bench: %s %s", r.out, r.err);
        rfree(&r);
        // english-1m: 6 layers, 4 kv heads of 32; f16 K+V = 2 x 4 x 32 x 2 = 512 bytes per token per layer.
        // -c may exceed the training context (256) but must hold the run.
        r = run("bench -m '%s' -p 300 -n 2 -c 320 --no-bandwidth --json --kv-k f16 --kv-v f16", m_en);
        CHECK(r.rc == 0 && near_rel(json_num(r.out, "kv_bytes_per_token_layer"), 512, 1e-9), "bench -c: %s %s",
              r.out, r.err);
        rfree(&r);
        r = run("bench -m '%s' -p 300 -n 2 -c 301 --no-bandwidth", m_en);
        CHECK_FAILS(r, "bench -c too small");
        CHECK(strstr(r.err, "exceeds the requested context 301") != NULL, "stderr '%s'", r.err);
        rfree(&r);
        r = run("bench -m '%s' -p 300 -n 2 --no-bandwidth", m_en);
        CHECK_FAILS(r, "bench past the model context without -c");
        rfree(&r);
        r = run("run -m '%s' -z '%s' -p 'The president' -n 4 --temp 0 --kv-k int8 --kv-v int8", m_en, m_tok);
        CHECK(r.rc == 0 && strncmp(r.out, "The president", 13) == 0, "run: %s", r.err);
        rfree(&r);
        // MiKV keeps every token (demoted, never dropped): more bytes than H2O at the same budget.
        r = run("kld -m '%s' -z '%s' --base '%s' -f '%s' -c 64 --json --mikv --mikv-hi 0.2 --mikv-lo-type int2",
                m_en, m_tok, m_en, textfile);
        double mikv_bytes = json_num(r.out, "kv_bytes");
        CHECK(r.rc == 0 && mikv_bytes > 0, "mikv: %s %s", r.out, r.err);
        rfree(&r);
        r = run("kld -m '%s' -z '%s' --base '%s' -f '%s' -c 64 --json --h2o 0.2", m_en, m_tok, m_en, textfile);
        CHECK(r.rc == 0 && json_num(r.out, "kv_bytes") < mikv_bytes, "h2o: %s %s", r.out, r.err);
        rfree(&r);
        static const char *bad[][2] = {{"--kv-k int5", "unknown KV type"}, {"--kv-key-axis diagonal", "token"},
                                       {"--kv-k int4 --kv-group 24", "group"}, {"--kv-group 4", "--kv-group"},
                                       {"--mikv", "--mikv-hi"}, {"--mikv-hi 0.2", "--mikv"},
                                       {"--mikv --mikv-hi 0.2 --h2o 0.2", "H2O"},
                                       {"--mikv --mikv-hi 0.2 --mikv-lo-type int8", "MiKV"}};
        for (int i = 0; i < 8; i++) {
            r = run("ppl -m '%s' -z '%s' -f '%s' -c 64 %s", m_en, m_tok, textfile, bad[i][0]);
            CHECK_FAILS(r, bad[i][0]);
            CHECK(strstr(r.err, bad[i][1]) != NULL, "%s: stderr '%s'", bad[i][0], r.err);
            rfree(&r);
        }
    } while (0);

    TEST_CASE("weight-activation flags: --abits, --a-clip, --rotate, --kv-balance") do {
        result r = run("kld -m '%s' -z '%s' --base '%s' -f '%s' -c 64 --json --quant rtn --bits 4 --group 32 "
                       "--rotate --abits 4 --kv-k int4 --kv-v int4 --kv-balance", m_en, m_tok, m_en, textfile);
        CHECK(r.rc == 0 && json_num(r.out, "kld_mean") > 0, "W4A4KV4: %s %s", r.out, r.err);
        rfree(&r);
        r = run("kld -m '%s' -z '%s' --base '%s' -f '%s' -c 64 --json --rotate", m_en, m_tok, m_en, textfile);
        CHECK(r.rc == 0 && json_num(r.out, "kld_mean") < 1e-8, "rotation alone must keep the function: %s %s", r.out,
              r.err);
        rfree(&r);
        static const char *bad[][2] = {{"--abits 5", "activation bits"}, {"--abits 2", "--abits"},
                                       {"--a-clip 1.5", "--a-clip"}, {"--abits 8 --a-clip 0", "--a-clip"}};
        for (int i = 0; i < 4; i++) {
            r = run("ppl -m '%s' -z '%s' -f '%s' -c 64 %s", m_en, m_tok, textfile, bad[i][0]);
            CHECK_FAILS(r, bad[i][0]);
            CHECK(strstr(r.err, bad[i][1]) != NULL, "%s: stderr '%s'", bad[i][0], r.err);
            rfree(&r);
        }
    } while (0);

    // Scoring is checked against the rule written out here: each stderr trial line ("line ID = V, ...
    // answer "A": correct|wrong") must be flagged correct exactly when A's first integer is V, and the
    // JSON must count those. stories260K scores ~0, so a scripted model (tests/ref/retrieval_model.py:
    // it always answers one number) is given the value of one trial: accuracy exactly 1/4.
    TEST_CASE("retrieval: stories260K and a scripted model with a known accuracy, help, bad flags, too long") do {
        result r = {0, NULL, NULL, 0};
        long vals[4] = {-1, -1, -1, -1};
        char answer[32] = "";
        for (int pass = 0; pass < 3; pass++) {
            char smodel[64];
            snprintf(smodel, sizeof smodel, "/tmp/test_cli_retrieval_%d.bin", (int)getpid());
            if (pass == 0) {
                r = run("retrieval -m '%s' -z '%s' --lines 3 --trials 2 --json", m_st, m_tok);
            } else if (pass == 1) {   // the values of 4 one-line trials (stories260K answers 1 token)
                r = run("retrieval -m '%s' -z '%s' --lines 1 --trials 4 --seed 9 --max-answer 1", m_st, m_tok);
            } else {
                for (int t = 3; t >= 0 && !answer[0]; t--)   // a value with distinct digits (the model's rule)
                    for (long v = vals[t], seen = 0; v > 0; v /= 10) {
                        if (seen & (1 << (v % 10))) break;
                        seen |= 1 << (v % 10);
                        if (v < 10) snprintf(answer, sizeof answer, "%ld", vals[t]);
                    }
                char cmd[3072];
                snprintf(cmd, sizeof cmd, "%s tests/ref/retrieval_model.py --tok '%s' --answer '%s' --out '%s'",
                         access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3", m_tok, answer,
                         smodel);
                int src = answer[0] ? system(cmd) : -1;
                CHECK(answer[0] && src == 0, "values %ld %ld %ld %ld; '%s' exited %d (run from the repo root)",
                      vals[0], vals[1], vals[2], vals[3], cmd, src);
                if (!answer[0] || src != 0) break;
                r = run("retrieval -m '%s' -z '%s' --lines 1 --trials 4 --seed 9 --json", smodel, m_tok);
                unlink(smodel);
            }
            int trials = pass == 0 ? 2 : 4, n_lines = 0, n_right = 0, n_bad = 0, expect = 0;
            for (const char *l = strstr(r.err, "retrieval trial "); l; l = strstr(l + 1, "retrieval trial ")) {
                int ti, tn;
                long v;
                const char *a = strstr(l, "answer \""), *e = strchr(l, '\n');
                if (sscanf(l, "retrieval trial %d/%d: line %*[a-z-] = %ld,", &ti, &tn, &v) != 3 || !a || !e) {
                    n_bad++;
                    continue;
                }
                const char *end = e;   // the answer may hold quotes: it ends at the line's last '": '
                while (end > a && strncmp(end, "\": ", 3) != 0) end--;
                const char *d = a + 8;
                while (d < end && (*d < '0' || *d > '9')) d++;
                int right = d < end && strtol(d, NULL, 10) == v;
                int said = strncmp(end, "\": correct\n", 11) == 0;
                n_bad += right != said || ti != n_lines + 1 || tn != trials;
                if (pass == 2) n_bad += (size_t)(end - a - 8) != strlen(answer) || strncmp(a + 8, answer, strlen(answer));
                if (pass == 1 && ti >= 1 && ti <= 4) vals[ti - 1] = v;
                if (pass == 2) expect += v == strtol(answer, NULL, 10);
                n_right += right;
                n_lines++;
                l = e;
            }
            CHECK(r.rc == 0 && n_lines == trials && n_bad == 0, "pass %d: rc %d, %d trial lines, %d wrong: '%s'", pass,
                  r.rc, n_lines, n_bad, r.err);
            if (pass != 1) {
                double acc = json_num(r.out, "accuracy");
                CHECK(r.rc == 0 && one_json_object(r.out) && json_num(r.out, "trials") == trials &&
                      json_num(r.out, "lines") == (pass ? 1 : 3), "rc %d out '%s' err '%s'", r.rc, r.out, r.err);
                CHECK(json_num(r.out, "correct") == n_right && acc == n_right / (double)trials &&
                      json_num(r.out, "prompt_tokens") > 0 && json_num(r.out, "kv_bytes") > 0 &&
                      json_num(r.out, "kv_bytes_vs_f16") > 0, "pass %d: %d right by the rule: %s", pass, n_right, r.out);
            }
            if (pass == 2)
                CHECK(expect >= 1 && n_right == expect && json_num(r.out, "correct") == expect,
                      "the scripted model answers '%s', %d trials hold it, %d scored right", answer, expect, n_right);
            if (pass < 2) { rfree(&r); r.out = r.err = NULL; }
        }
        rfree(&r);
        r = run("retrieval -m '%s' -z '%s' --lines 2 --trials 1 -q", m_st, m_tok);
        CHECK(r.rc == 0 && strstr(r.out, "accuracy") && strstr(r.out, "of fp16") && r.err[0] == '\0',
              "summary: rc %d '%s' '%s'", r.rc, r.out, r.err);
        rfree(&r);
        r = run("retrieval --help");
        CHECK(r.rc == 0 && strstr(r.out, "usage:") && strstr(r.out, "chat models") && strstr(r.out, "near zero"),
              "help: '%s'", r.out);
        rfree(&r);
        static const char *bad[] = {"--lines 0", "--lines abc", "--trials 0", "--template vicuna", "--bogus",
                                    "--max-answer 0", "--mikv"};
        for (int i = 0; i < 7; i++) {
            r = run("retrieval -m '%s' -z '%s' --trials 1 %s", m_st, m_tok, bad[i]);
            CHECK(r.rc == 2 && r.err[0], "%s: rc %d stderr '%s'", bad[i], r.rc, r.err);
            rfree(&r);
        }
        r = run("retrieval -m '%s' -z '%s' --lines 40 --trials 1", m_st, m_tok);
        CHECK_FAILS(r, "40 lines in 512 tokens");
        CHECK(strstr(r.err, "needs") && strstr(r.err, "512") && strstr(r.err, "fewer lines"), "'%s'", r.err);
        rfree(&r);
        r = run("retrieval -m '%s' -z '%s' --lines 3 --trials 1", m_en, m_tok);
        CHECK_FAILS(r, "english-1m: 3 lines in 256 tokens");
        CHECK(strstr(r.err, "needs") && strstr(r.err, "context is 256"), "'%s'", r.err);
        rfree(&r);
    } while (0);

    cli_harness_done();
    unlink(textfile);
    golden_free(g);
    return th_finish("test_cli");
}
