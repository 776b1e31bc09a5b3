// Every input path of every command, good and bad, through the real binary: prompt text and
// prompt files, standard input (-f -), eval text (-f), calibration text (--calib), system-prompt
// files (--prompt-file), IntactKV prefixes (--ikv), models (-m, --base), tokenizers (-z) and flags.
// A bad input must give its exit status (2: usage error, 1: failure) and one line on stderr naming
// the cause; a good one must give the right output (a prompt file is echoed byte for byte; stdin
// gives what the same file gives). `make check SANITIZE=1` runs this under ASan + UBSan, so a
// use-after-free or leak on any of these paths fails here (a sanitizer report is never one line).
// Models: stories260K (llama2.c, with tok512) for almost everything: fast. Temp files live in one
// mkdtemp directory, removed at the end.
#include <sys/stat.h>

#include "cli_harness.h"

static char m_st[1024], m_en[1024], m_tok[1024], dir[] = "/tmp/intact_test_cli_inputs_XXXXXX";
static char p_prompt[1200], p_prompt2[1200], p_empty[1200], p_nul[1200], p_sub[1200], p_noperm[1200],
    p_text[1200], p_calib[1200], p_trunc_bin[1200], p_trunc_gguf[1200], p_garbage[1200], p_trunc_tok[1200],
    p_ikv[1200], p_ikv_en[1200], p_ikv_trunc[1200], p_out[1200], p_out2[1200], p_missing[1200];

static const char PROMPT[] = "Once upon a time";
// Several lines, UTF-8, no final newline: the echo must reproduce it exactly.
static const char PROMPT2[] = "Once upon a time\nthere was a caf\xC3\xA9 called \xE2\x98\x83.\n\nShe";

// Expands a command template: {M} "-m MODEL" (stories260K unless `model` is given; nothing when
// model is ""), {B} the base model, {K} the tokenizer, {T} the eval text, {I} a stories prefix,
// {O}/{Q} output paths, {F} the input under test. Paths are single-quoted.
static const char *expand(char *buf, size_t cap, const char *tmpl, const char *model, const char *tok,
                          const char *input) {
    buf[0] = '\0';
    for (const char *s = tmpl; *s; s++) {
        size_t n = strlen(buf);
        const char *sub = NULL;
        char tmp[1300];
        if (s[0] == '{' && s[1] && s[2] == '}') {
            switch (s[1]) {
            case 'M':
                if (model && !*model) sub = "";
                else snprintf(tmp, sizeof tmp, "-m '%s'", model ? model : m_st), sub = tmp;
                break;
            case 'B': sub = m_st; break;
            case 'K': sub = tok ? tok : m_tok; break;
            case 'T': sub = p_text; break;
            case 'I': sub = p_ikv; break;
            case 'O': sub = p_out; break;
            case 'Q': sub = p_out2; break;
            case 'F': sub = input; break;
            }
        }
        if (sub) {
            int quote = s[1] != 'M' && strcmp(sub, "-") != 0;
            snprintf(buf + n, cap - n, quote ? "'%s'" : "%s", sub);
            s += 2;
        } else if (n + 1 < cap) {
            buf[n] = *s;
            buf[n + 1] = '\0';
        }
    }
    return buf;
}

// Every command, with good inputs; {M}, {K} are what the model and tokenizer cases replace.
static const struct { const char *name, *tmpl; } CMDS[] = {
    {"info", "info {M} -z {K}"},
    {"run", "run {M} -z {K} -p hi -n 2 --temp 0"},
    {"tokenize", "tokenize {M} -z {K} -p hi"},
    {"ppl", "ppl {M} -z {K} -f {T} -c 32 --chunks 1"},
    {"kld", "kld {M} --base {B} -z {K} -f {T} -c 32 --chunks 1"},
    {"bench", "bench {M} -z {K} -p 4 -n 2 --no-bandwidth"},
    {"quantize", "quantize {M} -z {K} -o {Q} --method rtn --bits 4 --group 32"},
    {"ikv build", "ikv build {M} -z {K} --bos -o {O}"},
    {"ikv mse", "ikv mse {M} --base {B} -z {K} -f {T} -c 32 --chunks 1 --max-prefix 1"},
    {"ikv calibrate", "ikv calibrate {M} --base {B} -z {K} --ikv {I} --calib {T} --samples 1 --len 8 --epochs 1 -o {O}"},
    {"analyze", "analyze {M} -z {K} -p 'Once upon a time'"},
    {"retrieval", "retrieval {M} -z {K} --lines 1 --trials 1 -q"},
};
enum { N_CMDS = sizeof CMDS / sizeof CMDS[0] };

// Text inputs: {F} is the file under test; `good` is a file the command accepts; `key`: compare
// this JSON number between the file and stdin runs (NULL: stdout must be identical).
static const struct { const char *name, *tmpl, *good, *key; } TEXTS[] = {
    {"run -f", "run -m {B} -z {K} -f {F} -n 6 --temp 0", p_prompt2, NULL},
    {"tokenize -f", "tokenize -m {B} -z {K} -f {F}", p_prompt2, NULL},
    {"analyze -f", "analyze -m {B} -z {K} -f {F} --json", p_prompt2, NULL},
    {"ikv build --prompt-file", "ikv build -m {B} -z {K} --prompt-file {F} -o {O}", p_prompt, NULL},
    {"ppl -f", "ppl -m {B} -z {K} -f {F} -c 64 --chunks 2 --json", p_text, NULL},
    {"kld -f", "kld -m {B} --base {B} -z {K} -f {F} -c 64 --chunks 2 --json --quant rtn --bits 3 --group 32",
     p_text, NULL},
    {"ikv mse -f", "ikv mse -m {B} --base {B} -z {K} -f {F} -c 32 --chunks 1 --max-prefix 1 --json --quant rtn "
     "--bits 3 --group 32", p_text, NULL},
    {"ppl --calib (gptq)", "ppl -m {B} -z {K} -f {T} -c 64 --chunks 1 --json --quant gptq --bits 3 --group 32 "
     "--calib {F} --calib-samples 2 --calib-len 16", p_calib, NULL},
    {"quantize --calib (awq)", "quantize -m {B} -z {K} -o {Q} --method awq --bits 4 --group 32 --calib {F} "
     "--calib-samples 2 --calib-len 16 --json", p_calib, "bits_per_weight"},
    {"ikv calibrate --calib", "ikv calibrate -m {B} --base {B} -z {K} --ikv {I} --quant rtn --bits 3 --group 32 "
     "--calib {F} --samples 2 --len 8 --epochs 2 -o {O} --json", p_calib, "loss_after"},
    // --calib read twice (prefix calibration and GPTQ): stdin must serve both.
    {"ikv calibrate --calib twice (gptq)", "ikv calibrate -m {B} --base {B} -z {K} --ikv {I} --quant gptq --bits 3 "
     "--group 32 --calib-samples 2 --calib-len 16 --calib {F} --samples 2 --len 8 --epochs 2 -o {O} --json",
     p_calib, "loss_after"},
};
enum { N_TEXTS = sizeof TEXTS / sizeof TEXTS[0] };

// Commands taking --ikv, with a prefix built from [BOS] of stories260K as {F}.
static const char *IKVS[] = {
    "run -m {B} -z {K} --ikv {F} -p 'Once upon' -n 2 --temp 0",
    "ppl -m {B} -z {K} -f {T} -c 32 --chunks 1 --ikv {F}",
    "kld -m {B} --base {B} -z {K} -f {T} -c 32 --chunks 1 --ikv {F}",
    "bench -m {B} -z {K} -p 4 -n 2 --no-bandwidth --ikv {F}",
    "retrieval -m {B} -z {K} --lines 1 --trials 1 -q --ikv {F}",
    "ikv calibrate -m {B} --base {B} -z {K} --ikv {F} --calib {T} --samples 1 --len 8 --epochs 1 -o {Q}",
};
enum { N_IKVS = sizeof IKVS / sizeof IKVS[0] };

static int copy_prefix(const char *from, const char *to, size_t n) {
    size_t len = 0;
    char *s = read_path(from, &len);
    int rc = s && len >= n ? write_path(to, s, n) : -1;
    free(s);
    return rc;
}

static void path_in(char *buf, const char *name) { snprintf(buf, 1200, "%s/%s", dir, name); }

static int setup(void) {
    char tmp[1024];
    th_shared("models/stories260K.bin", m_st, sizeof m_st);
    th_shared("models/english-1m.bin", m_en, sizeof m_en);
    th_shared("models/tok512.bin", m_tok, sizeof m_tok);
    if (cli_harness_init() != 0 || !mkdtemp(dir)) return -1;
    path_in(p_prompt, "prompt.txt");
    path_in(p_prompt2, "prompt2.txt");
    path_in(p_empty, "empty.txt");
    path_in(p_nul, "nul.txt");
    path_in(p_sub, "subdir");
    path_in(p_noperm, "noperm.txt");
    path_in(p_text, "text.txt");
    path_in(p_calib, "calib.txt");
    path_in(p_trunc_bin, "trunc.bin");
    path_in(p_trunc_gguf, "trunc.gguf");
    path_in(p_garbage, "garbage.bin");
    path_in(p_trunc_tok, "trunc_tok.bin");
    path_in(p_ikv, "st.ikv");
    path_in(p_ikv_en, "en.ikv");
    path_in(p_ikv_trunc, "trunc.ikv");
    path_in(p_out, "out.ikv");
    path_in(p_out2, "out.gguf");
    path_in(p_missing, "no-such-file");
    int bad = 0;
    bad |= write_path(p_prompt, PROMPT, strlen(PROMPT));
    bad |= write_path(p_prompt2, PROMPT2, strlen(PROMPT2));
    bad |= write_path(p_empty, "", 0);
    bad |= write_path(p_nul, "Once\0upon", 9);
    bad |= write_path(p_noperm, PROMPT, strlen(PROMPT)) || chmod(p_noperm, 0);
    bad |= mkdir(p_sub, 0700);
    // 4000 bytes of eval text, 3000 of calibration text (cut at a UTF-8 boundary), the first 1000
    // bytes of each model (truncated), eval text as a model (garbage), 100 bytes of the tokenizer.
    size_t n = 0;
    char *t = read_path(th_shared("data/eval-en.txt", tmp, sizeof tmp), &n);
    size_t k = n < 4000 ? n : 4000;
    while (t && k > 0 && k < n && ((unsigned char)t[k] & 0xC0) == 0x80) k--;
    bad |= !t || write_path(p_text, t, k) || write_path(p_garbage, t, k);
    free(t);
    t = read_path(th_shared("data/calib-en.txt", tmp, sizeof tmp), &n);
    k = n < 3000 ? n : 3000;
    while (t && k > 0 && k < n && ((unsigned char)t[k] & 0xC0) == 0x80) k--;
    bad |= !t || write_path(p_calib, t, k);
    free(t);
    bad |= copy_prefix(m_st, p_trunc_bin, 1000);
    bad |= copy_prefix(th_shared("models/stories260K.gguf", tmp, sizeof tmp), p_trunc_gguf, 1000);
    bad |= copy_prefix(m_tok, p_trunc_tok, 100);
    result r = run("ikv build -m '%s' -z '%s' --bos -o '%s'", m_st, m_tok, p_ikv);
    bad |= r.rc != 0;
    rfree(&r);
    r = run("ikv build -m '%s' -z '%s' --bos -o '%s'", m_en, m_tok, p_ikv_en);
    bad |= r.rc != 0;
    rfree(&r);
    struct stat st;
    bad |= stat(p_ikv, &st) != 0 || copy_prefix(p_ikv, p_ikv_trunc, (size_t)st.st_size / 2);
    return bad ? -1 : 0;
}

static void cleanup(void) {
    const char *files[] = {p_prompt, p_prompt2, p_empty, p_nul, p_noperm, p_text, p_calib, p_trunc_bin,
                           p_trunc_gguf, p_garbage, p_trunc_tok, p_ikv, p_ikv_en, p_ikv_trunc, p_out, p_out2};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) unlink(files[i]);
    rmdir(p_sub);
    rmdir(dir);
    cli_harness_done();
}

int main(void) {
    if (th_skip_program("test_cli_inputs", "models/english-1m.bin", "models/stories260K.gguf", "data/eval-en.txt", "data/calib-en.txt", NULL)) return 0;
    char cmd[8192];
    int setup_ok = setup() == 0;
    int root = geteuid() == 0;   // root reads mode-000 files: no "Permission denied" to see

    TEST_CASE("setup: binary, temp files, prefixes") do {
        CHECK(access(bin, X_OK) == 0, "no executable at %s (set INTACT_BIN)", bin);
        CHECK(setup_ok, "temp files in %s", dir);
    } while (0);

    TEST_CASE("every command succeeds with its good inputs (the templates below are valid)") do {
        for (int c = 0; c < N_CMDS; c++) {
            result r = run("%s", expand(cmd, sizeof cmd, CMDS[c].tmpl, NULL, NULL, NULL));
            CHECK_OK(r, cmd);
            CHECK(r.out_len > 0, "%s: no output", cmd);
            rfree(&r);
        }
    } while (0);

    // Finding 1: the prompt file was freed before it was echoed (heap-use-after-free).
    TEST_CASE("run: -p, -f FILE and -f - give the same text, the prompt echoed byte for byte") do {
        result rp = run("run -m '%s' -z '%s' -p 'Once upon a time' -n 8 --temp 0", m_st, m_tok);
        result rf = run("run -m '%s' -z '%s' -f '%s' -n 8 --temp 0", m_st, m_tok, p_prompt);
        result rs = run_in(p_prompt, "run -m '%s' -z '%s' -f - -n 8 --temp 0", m_st, m_tok);
        CHECK_OK(rp, "-p");
        CHECK_OK(rf, "-f FILE");
        CHECK_OK(rs, "-f -");
        // stories260K's greedy continuation per the PyTorch reference (test_cli, tests/goldens).
        const char *want = "Once upon a time, there was a little girl";
        CHECK(rp.out_len == strlen(rp.out) && strncmp(rp.out, want, strlen(want)) == 0, "-p: '%s'", rp.out);
        CHECK(rf.out_len == rp.out_len && memcmp(rf.out, rp.out, rp.out_len) == 0, "-f FILE: '%.*s' vs -p '%s'",
              (int)rf.out_len, rf.out, rp.out);
        CHECK(rs.out_len == rp.out_len && memcmp(rs.out, rp.out, rp.out_len) == 0, "-f -: '%.*s' vs -p '%s'",
              (int)rs.out_len, rs.out, rp.out);
        rfree(&rp);
        rfree(&rf);
        rfree(&rs);
        // A multi-line UTF-8 prompt file: echoed exactly, from the file and from stdin.
        rf = run("run -m '%s' -z '%s' -f '%s' -n 3 --temp 0", m_st, m_tok, p_prompt2);
        rs = run_in(p_prompt2, "run -m '%s' -z '%s' -f - -n 3 --temp 0", m_st, m_tok);
        CHECK_OK(rf, "-f prompt2");
        CHECK(rf.out_len > strlen(PROMPT2) && memcmp(rf.out, PROMPT2, strlen(PROMPT2)) == 0,
              "echo of the file: '%.*s'", (int)rf.out_len, rf.out);
        CHECK(rs.rc == 0 && rs.out_len == rf.out_len && memcmp(rs.out, rf.out, rf.out_len) == 0,
              "stdin '%.*s' vs file '%.*s'", (int)rs.out_len, rs.out, (int)rf.out_len, rf.out);
        rfree(&rf);
        rfree(&rs);
    } while (0);

    TEST_CASE("run -n 0: the prompt is evaluated and echoed, nothing generated, exit 0") do {
        result r = run("run -m '%s' -z '%s' -p 'Once upon a time' -n 0", m_st, m_tok);
        CHECK(r.rc == 0 && strcmp(r.out, "Once upon a time\n") == 0, "-p: rc %d out '%s' err '%s'", r.rc, r.out, r.err);
        rfree(&r);
        r = run("run -m '%s' -z '%s' -f '%s' -n 0", m_st, m_tok, p_prompt2);
        CHECK(r.rc == 0 && r.out_len == strlen(PROMPT2) + 1 && memcmp(r.out, PROMPT2, strlen(PROMPT2)) == 0,
              "-f: rc %d out '%s' err '%s'", r.rc, r.out, r.err);
        rfree(&r);
        // The prompt is still evaluated, so one that does not fit the context is still an error.
        r = run("run -m '%s' -z '%s' -f '%s' -n 0 -c 16", m_st, m_tok, p_text);
        CHECK_ERROR(r, 1, "more than the context size 16", "-n 0, prompt too long");
        rfree(&r);
    } while (0);

    TEST_CASE("run: -p with -f is a usage error; an empty -p is BOS alone") do {
        result r = run("run -m '%s' -z '%s' -p hi -f '%s' -n 2", m_st, m_tok, p_prompt);
        CHECK_ERROR(r, 2, "either -p or -f", "-p and -f");
        rfree(&r);
        r = run("run -m '%s' -z '%s' -p '' -n 3 --temp 0", m_st, m_tok);
        CHECK(r.rc == 0 && r.out_len > 1, "-p '': rc %d out '%s' err '%s'", r.rc, r.out, r.err);
        rfree(&r);
    } while (0);

    for (int i = 0; i < N_TEXTS; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s: FILE and - agree; missing, directory, empty, NUL, unreadable", TEXTS[i].name);
        TEST_CASE(name) do {
            result rf = run("%s", expand(cmd, sizeof cmd, TEXTS[i].tmpl, NULL, NULL, TEXTS[i].good));
            CHECK_OK(rf, cmd);
            result rs = run_in(TEXTS[i].good, "%s", expand(cmd, sizeof cmd, TEXTS[i].tmpl, NULL, NULL, "-"));
            CHECK_OK(rs, cmd);
            if (TEXTS[i].key) {
                double a = json_num(rf.out, TEXTS[i].key), b = json_num(rs.out, TEXTS[i].key);
                CHECK(!isnan(a) && a == b, "%s: file %s vs stdin %s", TEXTS[i].key, rf.out, rs.out);
            } else {
                CHECK(rf.out_len > 0 && rf.out_len == rs.out_len && memcmp(rf.out, rs.out, rf.out_len) == 0,
                      "file '%s' vs stdin '%s'", rf.out, rs.out);
            }
            rfree(&rf);
            rfree(&rs);
            static const struct { const char *what, *want; int stdin_empty; } bad[] = {
                {"missing", "No such file or directory", 0}, {"directory", "Is a directory", 0},
                {"empty", "is empty", 0}, {"NUL byte", "not text: NUL byte at offset 4", 0},
                {"empty stdin", "standard input is empty", 1}, {"unreadable", "Permission denied", 0},
            };
            const char *paths[] = {p_missing, p_sub, p_empty, p_nul, "-", p_noperm};
            for (int b = 0; b < 6; b++) {
                if (b == 5 && root) continue;
                result r = run_in(bad[b].stdin_empty ? "/dev/null" : p_prompt, "%s",
                                  expand(cmd, sizeof cmd, TEXTS[i].tmpl, NULL, NULL, paths[b]));
                CHECK_ERROR(r, 1, bad[b].want, bad[b].what);
                if (b != 4) CHECK(strstr(r.err, paths[b]) != NULL, "%s: the path is not named: '%s'", bad[b].what, r.err);
                rfree(&r);
            }
        } while (0);
    }

    TEST_CASE("models (-m) of every command: missing, directory, empty, truncated, garbage, none") do {
        static const struct { const char *what, *want; } bad[] = {
            {"missing", "No such file or directory"}, {"directory", "Is a directory"}, {"empty", "file is empty"},
            {"truncated llama2.c", "does not match the 1056540 bytes the header implies"},
            {"truncated GGUF", "(truncated or corrupt)"}, {"garbage", "out of range"},
            {"unreadable", "Permission denied"},
        };
        const char *paths[] = {p_missing, p_sub, p_empty, p_trunc_bin, p_trunc_gguf, p_garbage, p_noperm};
        for (int c = 0; c < N_CMDS; c++) {
            for (int b = 0; b < 7; b++) {
                if (b == 6 && root) continue;
                result r = run("%s", expand(cmd, sizeof cmd, CMDS[c].tmpl, paths[b], NULL, NULL));
                CHECK_ERROR(r, 1, bad[b].want, cmd);
                CHECK(strstr(r.err, paths[b]) != NULL, "%s: the path is not named: '%s'", cmd, r.err);
                rfree(&r);
            }
            result r = run("%s", expand(cmd, sizeof cmd, CMDS[c].tmpl, "", NULL, NULL));
            CHECK_ERROR(r, 2, "no model given (-m ", cmd);
            rfree(&r);
        }
    } while (0);

    TEST_CASE("--no-mmap / --mmap (run, bench, chat, serve): the same text; bad models fail as without them") do {
        result a = run("run -m '%s' -z '%s' -p 'Once upon' -n 8 --temp 0", m_st, m_tok);
        result b = run("run -m '%s' -z '%s' -p 'Once upon' -n 8 --temp 0 --no-mmap", m_st, m_tok);
        result c = run("run -m '%s' -z '%s' -p 'Once upon' -n 8 --temp 0 --mmap", m_st, m_tok);
        CHECK(a.rc == 0 && b.rc == 0 && strcmp(a.out, b.out) == 0, "'%s' vs '%s'", a.out, b.out);
        CHECK(c.rc == 0 && strcmp(a.out, c.out) == 0, "'%s' vs '%s'", a.out, c.out);
        rfree(&a);
        rfree(&b);
        rfree(&c);
        // bench says which way the weights came in (a small model fits: read in by default).
        result j0 = run("bench -m '%s' -p 1 -n 1 --no-bandwidth --json", m_st);
        result j1 = run("bench -m '%s' -p 1 -n 1 --no-bandwidth --json --mmap", m_st);
        CHECK(j0.rc == 0 && strstr(j0.out, "\"weights_mapped\":false"), "default: %s", j0.out);
        CHECK(j1.rc == 0 && strstr(j1.out, "\"weights_mapped\":true"), "--mmap: %s", j1.out);
        // Weights rewritten in memory (--quant) are read once: mapped, unless --no-mmap says otherwise.
        result j2 = run("bench -m '%s' -p 1 -n 1 --no-bandwidth --json --quant rtn --bits 8 --group 32", m_st);
        result j3 = run("bench -m '%s' -p 1 -n 1 --no-bandwidth --json --quant rtn --bits 8 --group 32 --no-mmap", m_st);
        CHECK(j2.rc == 0 && strstr(j2.out, "\"weights_mapped\":true"), "--quant: %s", j2.out);
        CHECK(j3.rc == 0 && strstr(j3.out, "\"weights_mapped\":false"), "--quant --no-mmap: %s", j3.out);
        rfree(&j0);
        rfree(&j1);
        rfree(&j2);
        rfree(&j3);
        static const char *both[] = {"run -m '%s' -p hi --mmap --no-mmap", "bench -m '%s' --no-mmap --mmap -p 1 -n 1",
                                     "chat -m '%s' --mmap --no-mmap", "serve -m '%s' --mmap --no-mmap --port 0"};
        for (int k = 0; k < 4; k++) {
            result r = run(both[k], m_st);
            CHECK_ERROR(r, 1, "--mmap and --no-mmap contradict each other", both[k]);
            rfree(&r);
        }
        static const struct { const char *what, *want; } bad[] = {
            {"missing", "No such file or directory"}, {"directory", "Is a directory"}, {"empty", "file is empty"},
            {"truncated llama2.c", "does not match the 1056540 bytes the header implies"},
            {"truncated GGUF", "(truncated or corrupt)"}, {"garbage", "out of range"},
        };
        const char *paths[] = {p_missing, p_sub, p_empty, p_trunc_bin, p_trunc_gguf, p_garbage};
        static const char *tmpl[] = {"run -m '%s' -p hi --no-mmap", "bench -m '%s' --no-mmap -p 1 -n 1",
                                     "chat -m '%s' --no-mmap", "serve -m '%s' --no-mmap --port 0",
                                     "run -m '%s' -p hi --mmap", "bench -m '%s' --mmap -p 1 -n 1"};
        for (int c = 0; c < 6; c++) {
            for (int k = 0; k < 6; k++) {
                result r = run(tmpl[c], paths[k]);
                CHECK_ERROR(r, 1, bad[k].want, tmpl[c]);
                rfree(&r);
            }
        }
    } while (0);

    TEST_CASE("base models (--base): missing, directory, garbage, none") do {
        static const char *with_base[] = {
            "kld {M} --base {F} -z {K} -f {T} -c 32 --chunks 1",
            "ikv mse {M} --base {F} -z {K} -f {T} -c 32 --chunks 1 --max-prefix 1",
            "ikv calibrate {M} --base {F} -z {K} --ikv {I} --calib {T} --samples 1 --len 8 --epochs 1 -o {O}",
        };
        const char *paths[] = {p_missing, p_sub, p_garbage};
        const char *want[] = {"No such file or directory", "Is a directory", "out of range"};
        for (int c = 0; c < 3; c++) {
            for (int b = 0; b < 3; b++) {
                result r = run("%s", expand(cmd, sizeof cmd, with_base[c], NULL, NULL, paths[b]));
                CHECK_ERROR(r, 1, want[b], cmd);
                rfree(&r);
            }
            char no_base[1024];
            snprintf(no_base, sizeof no_base, "%s", with_base[c]);
            char *p = strstr(no_base, "--base {F} ");
            memmove(p, p + 11, strlen(p + 11) + 1);
            result r = run("%s", expand(cmd, sizeof cmd, no_base, NULL, NULL, NULL));
            CHECK(r.rc == 2 && one_line_with(r.err, "--base"), "%s: rc %d '%s'", cmd, r.rc, r.err);
            rfree(&r);
        }
    } while (0);

    TEST_CASE("tokenizers (-z) of every command: missing, directory, empty, truncated, garbage; none") do {
        static const struct { const char *what, *want; } bad[] = {
            {"missing", "No such file or directory"}, {"directory", "Is a directory"}, {"empty", "file is empty"},
            {"truncated", "truncated at piece 7 of 512"}, {"garbage", "outside 0..65536"},
        };
        const char *paths[] = {p_missing, p_sub, p_empty, p_trunc_tok, p_text};
        for (int c = 0; c < N_CMDS; c++) {
            for (int b = 0; b < 5; b++) {
                result r = run("%s", expand(cmd, sizeof cmd, CMDS[c].tmpl, NULL, paths[b], NULL));
                CHECK_ERROR(r, 1, bad[b].want, cmd);
                CHECK(strstr(r.err, paths[b]) != NULL, "%s: the path is not named: '%s'", cmd, r.err);
                rfree(&r);
            }
        }
        // A llama2.c model without -z cannot tokenize.
        result r = run("run -m '%s' -p hi -n 2", m_st);
        CHECK_ERROR(r, 1, "no tokenizer (pass one with -z)", "run without -z");
        rfree(&r);
    } while (0);

    TEST_CASE("prefixes (--ikv) of every command taking one: good; missing, directory, empty, garbage, "
              "truncated, another model's") do {
        static const struct { const char *what, *want; } bad[] = {
            {"missing", "No such file or directory"}, {"directory", "Is a directory"}, {"empty", "file is empty"},
            {"garbage", "not an IntactKV prefix file"}, {"truncated", "(truncated or padded)"},
            {"another model's", "built for a model with 6 layers"},
        };
        const char *paths[] = {p_missing, p_sub, p_empty, m_tok, p_ikv_trunc, p_ikv_en};
        for (int c = 0; c < N_IKVS; c++) {
            result r = run("%s", expand(cmd, sizeof cmd, IKVS[c], NULL, NULL, p_ikv));
            CHECK_OK(r, cmd);
            rfree(&r);
            for (int b = 0; b < 6; b++) {
                r = run("%s", expand(cmd, sizeof cmd, IKVS[c], NULL, NULL, paths[b]));
                CHECK_ERROR(r, 1, bad[b].want, cmd);
                rfree(&r);
            }
        }
    } while (0);

    TEST_CASE("flags of every command: unknown, stray argument, missing value, out of range, malformed") do {
        static const struct { const char *add, *want; } bad[] = {
            {"--bogus", "unknown flag '--bogus'"},
            {"stray", "unknown argument 'stray'"},
            {"-z", "--tokenizer needs a value (PATH)"},
            {"--model=", "no model given"},
        };
        for (int c = 0; c < N_CMDS; c++) {
            for (int b = 0; b < 4; b++) {
                char t[1024];
                snprintf(t, sizeof t, "%s %s", CMDS[c].tmpl, bad[b].add);
                // "--model=" (empty) in place of -m: an empty path is no path
                result r = run("%s", expand(cmd, sizeof cmd, t, b == 3 ? "" : NULL, NULL, NULL));
                CHECK_ERROR(r, 2, bad[b].want, cmd);
                rfree(&r);
            }
        }
        // Numbers: range and syntax, per kind (int, float, u64), on the commands that take them.
        static const struct { const char *cmdline, *want; } nums[] = {
            {"run {M} -z {K} -p hi -t 0", "--threads expects a whole number in [1, 256], got '0'"},
            {"run {M} -z {K} -p hi -t 2x", "got '2x'"},
            {"run {M} -z {K} -p hi -t 99999999999999999999", "got '99999999999999999999'"},
            {"run {M} -z {K} -p hi -n -1", "--n-predict expects a whole number in [0, 16777216], got '-1'"},
            {"run {M} -z {K} -p hi --temp abc", "--temp expects a number in [0, 100], got 'abc'"},
            {"run {M} -z {K} -p hi --temp nan", "got 'nan'"},
            {"run {M} -z {K} -p hi --top-p 1.5", "--top-p expects a number in [0, 1], got '1.5'"},
            {"run {M} -z {K} -p hi --seed -1", "--seed expects a non-negative integer, got '-1'"},
            {"run {M} -z {K} -p hi --n-predict=", "--n-predict expects a whole number"},
            {"ppl {M} -z {K} -f {T} -c 1", "--ctx-size expects a whole number in [2, 1048576], got '1'"},
            {"ppl {M} -z {K} -f {T} --chunks x", "--chunks expects a whole number"},
            {"kld {M} -z {K} --base {B} -f {T} -t 300", "got '300'"},
            {"bench {M} -p 0", "--n-prompt expects a whole number in [1, 1048576], got '0'"},
            {"bench {M} -c 0", "--ctx-size expects a whole number in [1, 1048576], got '0'"},
            {"bench {M} -p 4 -n 8 --prefetch-ab 4096", "--prefetch-ab expects two distances in bytes, A,B, each in [0, 65536]; got '4096'"},
            {"bench {M} -p 4 -n 8 --prefetch-ab 0,70000", "got '0,70000'"},
            {"bench {M} -p 4 -n 8 --prefetch-ab -1,0", "got '-1,0'"},
            {"bench {M} -p 4 -n 8 --prefetch-ab 1,2,3", "got '1,2,3'"},
            {"bench {M} -p 4 -n 8 --prefetch-ab ,5", "got ',5'"},
            {"bench {M} -p 4 -n 8 --prefetch-ab 5,", "got '5,'"},
            {"bench {M} -p 4 -n 8 --prefetch-ab 0x10,5", "got '0x10,5'"},
            {"bench {M} -p 4 -n 8 --prefetch-ab 0000000000004096,5", "got '0000000000004096,5'"},
            {"bench {M} -p 4 -n 8 --prefetch-ab=", "got ''"},
            {"bench {M} -p 4 -n 3 --prefetch-ab 0,4096", "--prefetch-ab needs -n 4 or more"},
            {"quantize {M} -z {K} -o {Q} --bits 9", "--bits expects a whole number in [2, 8], got '9'"},
            {"ikv mse {M} --base {B} -z {K} -f {T} --max-prefix -1", "--max-prefix expects a whole number"},
            {"ikv calibrate {M} --base {B} -z {K} --ikv {I} --calib {T} -o {O} --lr 0", "--lr expects a number"},
            {"analyze {M} -z {K} -p hi --first 65", "--first expects a whole number in [1, 64], got '65'"},
            {"retrieval {M} -z {K} --lines 0", "--lines expects a whole number"},
            {"retrieval {M} -z {K} --trials 1 --template vicuna", "not 'vicuna'"},
        };
        for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
            result r = run("%s", expand(cmd, sizeof cmd, nums[i].cmdline, NULL, NULL, NULL));
            CHECK_ERROR(r, 2, nums[i].want, cmd);
            rfree(&r);
        }
        // --flag=value is the same as --flag value.
        result a = run("run -m '%s' -z '%s' -p 'Once upon' --n-predict=4 --temp=0", m_st, m_tok);
        result b = run("run -m '%s' -z '%s' -p 'Once upon' -n 4 --temp 0", m_st, m_tok);
        CHECK(a.rc == 0 && strcmp(a.out, b.out) == 0, "'%s' vs '%s'", a.out, b.out);
        rfree(&a);
        rfree(&b);
    } while (0);

    TEST_CASE("-c beyond the training context: a one-line warning, not an error") do {
        // stories260K was trained with a 512-token context.
        static const char *cmds[] = {
            "run -m {B} -z {K} -p hi -n 2 -c 600",
            "ppl -m {B} -z {K} -f {T} -c 600 --chunks 1 --json",
            "kld -m {B} --base {B} -z {K} -f {T} -c 600 --chunks 1 --json",
            "bench -m {B} -p 4 -n 2 -c 600 --no-bandwidth --json",
            "ikv mse -m {B} --base {B} -z {K} -f {T} -c 600 --chunks 1 --max-prefix 1 --json",
        };
        const char *want = "warning: context 600 exceeds the model's training context 512";
        for (int i = 0; i < 5; i++) {
            result r = run("%s", expand(cmd, sizeof cmd, cmds[i], NULL, NULL, NULL));
            CHECK(r.rc == 0 && strstr(r.err, want) && !sanitizer_report(r.err), "%s: rc %d '%s'", cmd, r.rc, r.err);
            const char *nl = strstr(r.err, want) ? strchr(strstr(r.err, want), '\n') : NULL;
            CHECK(nl != NULL, "%s: the warning is not a line of its own: '%s'", cmd, r.err);
            rfree(&r);
        }
        // kld: the base's own training context (english-1m: 256) is warned about too.
        result r = run("kld -m '%s' --base '%s' -z '%s' -f '%s' -c 300 --chunks 1 --json", m_st, m_en, m_tok, p_text);
        CHECK(r.rc == 0 && strstr(r.err, "kld --base: warning: context 300 exceeds the model's training context 256") &&
              !strstr(r.err, "context 512"), "kld --base: rc %d '%s'", r.rc, r.err);
        rfree(&r);
        // ppl scores every position of a 600-token chunk: 599 tokens.
        r = run("ppl -m '%s' -z '%s' -f '%s' -c 600 --chunks 1 --json", m_st, m_tok, p_text);
        CHECK(json_num(r.out, "tokens") == 599 && json_num(r.out, "ctx") == 600, "%s", r.out);
        rfree(&r);
        r = run("run -m '%s' -z '%s' -p hi -n 2 -c 512", m_st, m_tok);
        CHECK(r.rc == 0 && !strstr(r.err, "warning"), "-c 512 warns: '%s'", r.err);
        rfree(&r);
    } while (0);

    TEST_CASE("bench and info print weights in units that fit") do {
        // english-1m: 1,271,425 fp32 parameters = 5,085,700 bytes = 4.85 MiB; stories260K: 260,033 x 4
        // = 1,040,132 bytes = 1015.75 KiB.
        result r = run("bench -m '%s' -p 4 -n 2 --no-bandwidth", m_en);
        CHECK(r.rc == 0 && strstr(r.out, "english-1m.bin, 4.85 MiB of weights"), "bench: '%s' '%s'", r.out, r.err);
        rfree(&r);
        r = run("bench -m '%s' -p 4 -n 2 --no-bandwidth", m_st);
        CHECK(r.rc == 0 && strstr(r.out, "1015.75 KiB of weights"), "bench: '%s' '%s'", r.out, r.err);
        rfree(&r);
        r = run("info -m '%s'", m_en);
        CHECK(r.rc == 0 && strstr(r.out, "(4.85 MiB of weights)"), "info: '%s' '%s'", r.out, r.err);
        rfree(&r);
    } while (0);

    TEST_CASE("ikv calibrate defaults to the online CPUs (at most 16), like every command") do {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        int want = ncpu < 1 ? 1 : ncpu > 16 ? 16 : (int)ncpu;
        result r = run("ikv calibrate -m '%s' --base '%s' -z '%s' --ikv '%s' --calib '%s' --samples 1 --len 8 "
                       "--epochs 1 -o '%s' --json", m_st, m_st, m_tok, p_ikv, p_text, p_out);
        CHECK(r.rc == 0 && json_num(r.out, "threads") == want, "want %d threads: '%s' '%s'", want, r.out, r.err);
        rfree(&r);
        r = run("ikv calibrate --help");
        CHECK(r.rc == 0 && strstr(r.out, "online CPUs"), "help: '%s'", r.out);
        rfree(&r);
    } while (0);

    cleanup();
    return th_finish("test_cli_inputs");
}
