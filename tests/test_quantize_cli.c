// `intact quantize` as a user meets it (issue 11, finding 4): everything checkable is checked before
// the work (tokenizer, already-quantized input, output directory, calibration text), each refusal
// names its real cause, and flags the method ignores are usage errors (exit 2). "Before the work"
// is observed as: no "layer i/n" progress on stderr and no output file. The binary is $INTACT_BIN.
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static char bin[1024], errfile[64], dir[64];
static char m_st[1024], m_tok[1024], m_calib[1024];

typedef struct result {
    int rc;          // exit status, or -1 if it did not exit normally
    char *out, *err; // stdout, stderr (never NULL)
} result;

static char *slurp(FILE *f) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (cap - n < 2048) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) { free(buf); return NULL; }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (!got) break;
    }
    if (buf) buf[n] = 0;
    return buf;
}

// Runs "$INTACT_BIN args" through the shell (callers single-quote paths), stderr into errfile.
static result run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static result run(const char *fmt, ...) {
    char args[4096], cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "'%s' %s 2>'%s' </dev/null", bin, args, errfile);
    result r = {-1, NULL, NULL};
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    if (p) {
        r.out = slurp(p);
        int st = pclose(p);
        r.rc = (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
    }
    FILE *e = fopen(errfile, "rb");
    if (e) { r.err = slurp(e); fclose(e); }
    if (!r.out) r.out = strdup("");
    if (!r.err) r.err = strdup("");
    return r;
}

static void rfree(result *r) { free(r->out); free(r->err); }

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

// The refusal came before any layer was quantized, and left no output behind.
#define CHECK_REFUSED(r, code, want, outpath) do { \
    CHECK((r).rc == (code), "rc %d (want %d), stderr '%s'", (r).rc, (code), (r).err); \
    CHECK(strstr((r).err, (want)) != NULL, "stderr '%s' lacks '%s'", (r).err, (want)); \
    CHECK(!strstr((r).err, "layer 1/"), "work started before the refusal: '%s'", (r).err); \
    CHECK(!exists(outpath), "%s was written", (outpath)); \
    CHECK(!strchr((r).err, '\n') || strchr((r).err, '\n') == strrchr((r).err, '\n'), "not one line: '%s'", \
          (r).err); \
} while (0)

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    if (f) { fputs(s, f); fclose(f); }
}

int main(void) {
    if (th_skip_program("test_quantize_cli", "data/calib-en.txt", NULL)) return 0;
    const char *b = getenv("INTACT_BIN");
    snprintf(bin, sizeof bin, "%s", b && *b ? b : "build/intact");
    th_shared("models/stories260K.bin", m_st, sizeof m_st);
    th_shared("models/tok512.bin", m_tok, sizeof m_tok);
    th_shared("data/calib-en.txt", m_calib, sizeof m_calib);
    snprintf(dir, sizeof dir, "/tmp/intact_test_qcli_XXXXXX");
    snprintf(errfile, sizeof errfile, "/tmp/intact_test_qcli_err_XXXXXX");
    int efd = mkstemp(errfile);
    if (efd >= 0) close(efd);
    if (efd < 0 || !mkdtemp(dir)) {
        printf("cannot create temporary files\n");
        return 1;
    }
    char out[128], q4[128], empty[128], tiny[128];
    snprintf(out, sizeof out, "%s/out.gguf", dir);
    snprintf(q4, sizeof q4, "%s/q4.gguf", dir);
    snprintf(empty, sizeof empty, "%s/empty.txt", dir);
    snprintf(tiny, sizeof tiny, "%s/tiny.txt", dir);
    write_text(empty, "");
    write_text(tiny, "Once upon a time.");

    TEST_CASE("llama2.c input without -z is refused before the work (run could not use the file)") {
        result r = run("quantize -m '%s' -o '%s' --bits 4 --group 32", m_st, out);
        CHECK_REFUSED(r, 2, "llama2.c input needs its tokenizer: -z tokenizer.bin", out);
        rfree(&r);
    }

    TEST_CASE("an already-quantized input is refused, naming its tensor type; --allow-requantize overrides") {
        result r = run("quantize -m '%s' -z '%s' -o '%s' --bits 4 --group 32", m_st, m_tok, q4);
        CHECK(r.rc == 0 && exists(q4), "rc %d: %s", r.rc, r.err);
        rfree(&r);
        r = run("quantize -m '%s' -o '%s' --bits 3 --group 32", q4, out);
        CHECK_REFUSED(r, 1, "already quantized", out);
        CHECK(strstr(r.err, "int4_g32") && strstr(r.err, "--allow-requantize"), "'%s'", r.err);
        rfree(&r);
        r = run("quantize -m '%s' -o '%s' --method none --outtype f16", q4, out);
        CHECK_REFUSED(r, 1, "already quantized", out);
        rfree(&r);
        r = run("quantize -m '%s' -o '%s' --bits 3 --group 32 --allow-requantize", q4, out);
        CHECK(r.rc == 0 && exists(out), "rc %d: %s", r.rc, r.err);
        rfree(&r);
        remove(out);
    }

    // stories260K: dim 64, hidden 172 (= 4 x 43). 64 divides dim, nothing of 32/64/128 divides 172: the
    // default group is 64 and the five ffn_down matrices stay fp32 (7 x 5 - 5 = 30 quantized).
    TEST_CASE("the default group fits the model's widths; a group that fits no matrix is an error") {
        result r = run("quantize -m '%s' -z '%s' -o '%s' --bits 4 --json", m_st, m_tok, out);
        CHECK(r.rc == 0 && strstr(r.out, "\"group\":64,") && strstr(r.out, "\"quantized\":30,"), "rc %d: %s %s",
              r.rc, r.out, r.err);
        rfree(&r);
        remove(out);
        r = run("quantize -m '%s' -z '%s' -o '%s' --bits 4 --group 128", m_st, m_tok, out);
        CHECK(r.rc == 1 && strstr(r.err, "group 128 divides none") && !exists(out), "rc %d: %s", r.rc, r.err);
        rfree(&r);
        r = run("run -m '%s' -z '%s' --quant rtn --group 128 -p Once -n 1", m_st, m_tok);
        CHECK(r.rc == 1 && strstr(r.err, "group 128 divides none"), "rc %d: %s", r.rc, r.err);
        rfree(&r);
    }

    TEST_CASE("an unwritable output is reported before the work") {
        char bad[160], sub[160];
        snprintf(bad, sizeof bad, "%s/no-such-dir/x.gguf", dir);
        result r = run("quantize -m '%s' -z '%s' -o '%s' --bits 4 --group 32", m_st, m_tok, bad);
        CHECK_REFUSED(r, 1, "cannot write", bad);
        CHECK(strstr(r.err, "No such file or directory"), "'%s'", r.err);
        rfree(&r);
        // a directory as the output
        snprintf(sub, sizeof sub, "%s/adir", dir);
        mkdir(sub, 0755);
        r = run("quantize -m '%s' -z '%s' -o '%s' --bits 4 --group 32", m_st, m_tok, sub);
        CHECK(r.rc == 1 && strstr(r.err, "is a directory") && !strstr(r.err, "layer 1/"), "rc %d '%s'", r.rc, r.err);
        rfree(&r);
        rmdir(sub);
    }

    TEST_CASE("an empty or too short --calib file names the real cause") {
        result r = run("quantize -m '%s' -z '%s' -o '%s' --method gptq --bits 4 --group 32 --calib '%s'", m_st, m_tok,
                       out, empty);
        CHECK_REFUSED(r, 1, "is empty", out);
        CHECK(strstr(r.err, empty) != NULL, "file not named: '%s'", r.err);
        rfree(&r);
        // "Once upon a time." is a handful of tokens; the default window is 512 (stories260K's context).
        r = run("quantize -m '%s' -z '%s' -o '%s' --method awq --bits 4 --group 32 --calib '%s'", m_st, m_tok, out,
                tiny);
        CHECK_REFUSED(r, 1, "has only", out);
        CHECK(strstr(r.err, "need at least 512"), "'%s'", r.err);
        rfree(&r);
        // ... and enough once the window is short enough.
        r = run("quantize -m '%s' -z '%s' -o '%s' --method gptq --bits 4 --group 32 --calib '%s' --calib-len 4 "
                "--calib-samples 2", m_st, m_tok, out, tiny);
        CHECK(r.rc == 0 && exists(out), "rc %d: %s", r.rc, r.err);
        rfree(&r);
        remove(out);
    }

    TEST_CASE("flags the method ignores, and meaningless combinations, are usage errors (exit 2)") {
        static const char *const bad[][2] = {
            {"--method rtn --calib CALIB", "--calib is only used by gptq and awq"},
            {"--calib-samples 8", "--calib-samples is only used by gptq and awq"},
            {"--method none --outtype f16 --quant-seed 3", "--quant-seed is only used"},
            {"--method gptq", "gptq needs calibration text"},
            {"--method rtn --act-order", "--act-order is a gptq option"},
            {"--method gptq --calib CALIB --clip-search", "--clip-search is an rtn option"},
            {"--method none", "--method none does nothing"},
            {"--method none --outtype f16 --bits 3", "--bits has no effect with --method none"},
            {"--method none --rotate --sym", "--sym has no effect"},
            {"--rotate-seed 5", "--rotate-seed needs --rotate"},
            {"--method none --outtype q4", "unknown --outtype 'q4'"},
            {"--method nope", "unknown method 'nope'"},
            {"--fake-quant --outtype f16", "--outtype would round them"},
            {"--format q4_0 --bits 4", "--bits and --format exclude each other"},
            {"--format q4_0 --group 32", "--group and --format exclude each other"},
            {"--format q4_0 --sym", "--sym and --format exclude each other"},
            {"--format q3_k", "unknown --format 'q3_k'"},
            {"--method none --outtype f16 --format q4_0", "--format has no effect with --method none"},
            {"--format q4_0 --output-type q2", "unknown --output-type 'q2'"},
            {"--embd-type int4", "unknown --embd-type 'int4'"},
            {"--output-type int8_g33", "unknown --output-type 'int8_g33'"},
            {"--fake-quant --output-type q8_0", "--fake-quant keeps fp32 weights"},
            // stories260K's widths are 64 and 172: no matrix could hold a super-block of 256.
            {"--format q4_k", "--format q4_k needs rows that are a multiple of 256"},
            {"--format q6_k", "--format q6_k needs rows that are a multiple of 256"},
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            char flags[1400];
            const char *c = strstr(bad[i][0], "CALIB");
            if (c) snprintf(flags, sizeof flags, "%.*s'%s'%s", (int)(c - bad[i][0]), bad[i][0], m_calib, c + 5);
            else snprintf(flags, sizeof flags, "%s", bad[i][0]);
            result r = run("quantize -m '%s' -z '%s' -o '%s' %s", m_st, m_tok, out, flags);
            CHECK_REFUSED(r, 2, bad[i][1], out);
            rfree(&r);
        }
    }

    TEST_CASE("--format q4_0 --output-type q8_0 writes ggml types; --json names the format") {
        result r = run("quantize -m '%s' -z '%s' -o '%s' --format q4_0 --output-type q8_0 --json", m_st, m_tok, out);
        CHECK(r.rc == 0, "rc %d: %s", r.rc, r.err);
        CHECK(strstr(r.out, "\"format\":\"q4_0\"") && strstr(r.out, "\"bits_per_weight\":4.5000"), "json: %s", r.out);
        rfree(&r);
        r = run("info -m '%s' --json", out);
        CHECK(r.rc == 0 && strstr(r.out, "\"q4_0\":30") && strstr(r.out, "\"q8_0\":1") &&
              strstr(r.out, "\"tied_embeddings\":false"), "info: %s", r.out);
        rfree(&r);
        unlink(out);
    }

    TEST_CASE("a separate output head is quantized by default, as llama-quantize does; a tied one stays tied") do {
        // llama-quantize (llama_tensor_get_type) stores output.weight as Q6_K, or Q8_0 in a Q8_0 file;
        // intact's intN files take int8_g32. The synthetic writer's small preset has its own head.
        char tool[1024], synth[160], cmd[1400];
        th_shared("tools/synth-gguf.py", tool, sizeof tool);
        snprintf(synth, sizeof synth, "%s/synth.gguf", dir);
        snprintf(cmd, sizeof cmd, "python3 '%s' '%s' --preset small --seed 5 >/dev/null", tool, synth);
        CHECK(system(cmd) == 0, "%s failed", cmd);
        if (!exists(synth)) break;
        // Flags; the head in --json; the file's tensor types (4 layers x 7 matrices, groups that divide
        // ffn_down's 1376 columns so none stays F16; the F16 embedding; the 9 f32 norms).
        static const char *const cases[][3] = {
            {"--bits 4 --group 32", "\"output_type\":\"int8_g32\"", "{\"f16\":1,\"f32\":9,\"int4_g32\":28,\"int8_g32\":1}"},
            {"--bits 3 --group 32", "\"output_type\":\"int8_g32\"", "{\"f16\":1,\"f32\":9,\"int3_g32\":28,\"int8_g32\":1}"},
            {"--format q4_0", "\"output_type\":\"q6_K\"", "{\"f16\":1,\"f32\":9,\"q4_0\":28,\"q6_K\":1}"},
            {"--format q8_0", "\"output_type\":\"q8_0\"", "{\"f16\":1,\"f32\":9,\"q8_0\":29}"},
            {"--bits 4 --group 32 --output-type f16", "\"output_type\":\"f16\"", "{\"f16\":2,\"f32\":9,\"int4_g32\":28}"},
            {"--bits 4 --group 32 --fake-quant", "\"output_type\":\"f16\"", "{\"f16\":2,\"f32\":37}"},
        };
        for (int i = 0; i < 6; i++) {
            result r = run("quantize -m '%s' -o '%s' %s -t 2 --json", synth, out, cases[i][0]);
            CHECK(r.rc == 0 && strstr(r.out, cases[i][1]), "%s: rc %d %s %s", cases[i][0], r.rc, r.out, r.err);
            rfree(&r);
            r = run("info -m '%s' --json", out);
            const char *types = strstr(r.out, "\"tensor_types\":{");
            char want[128], *save = NULL;
            snprintf(want, sizeof want, "%s", cases[i][2]);
            int n_want = 0, n_got = 0;
            for (char *w = strtok_r(want + 1, ",}", &save); w; w = strtok_r(NULL, ",}", &save), n_want++)
                CHECK(types && strstr(types, w), "%s: info lacks %s: %s", cases[i][0], w, r.out);
            for (const char *c = types; c && *c && *c != '}'; c++) n_got += *c == ':';
            CHECK(r.rc == 0 && n_got - 1 == n_want && strstr(r.out, "\"tied_embeddings\":false"), "%s: %s",
                  cases[i][0], r.out);
            rfree(&r);
        }
        result r = run("quantize -m '%s' -z '%s' -o '%s' --bits 4 --group 32 --json", m_st, m_tok, out);
        CHECK(r.rc == 0 && strstr(r.out, "\"output_type\":\"f32\""), "tied: %s %s", r.out, r.err);
        rfree(&r);
        r = run("info -m '%s' --json", out);
        CHECK(r.rc == 0 && strstr(r.out, "\"tied_embeddings\":true"), "tied: %s", r.out);
        rfree(&r);
        unlink(out);
        unlink(synth);
    } while (0);

    TEST_CASE("--outtype f16 refuses a weight beyond f16's range (it would become infinity); bf16 takes it") do {
        // stories260K.bin with wq[0][0] of layer 0 set to 1e5: after the 28-byte header come the token
        // embedding (512 x 64) and rms_att (5 x 64) in fp32, then wq.
        char big[128];
        snprintf(big, sizeof big, "%s/big.bin", dir);
        FILE *in = fopen(m_st, "rb"), *o = fopen(big, "wb");
        int ok = in && o;
        for (int c; ok && (c = fgetc(in)) != EOF;) ok = fputc(c, o) != EOF;
        long off = 28 + 4L * (512 * 64 + 5 * 64);
        float v = 1e5f;
        ok = ok && fseek(o, off, SEEK_SET) == 0 && fwrite(&v, 4, 1, o) == 1;
        if (in) fclose(in);
        if (o && fclose(o)) ok = 0;
        CHECK(ok, "cannot write %s", big);
        if (!ok) break;
        result r = run("quantize -m '%s' -z '%s' -o '%s' --method none --outtype f16", big, m_tok, out);
        CHECK(r.rc == 1 && strstr(r.err, "blk.0.attn_q.weight has a weight 100000 beyond f16's range"), "rc %d '%s'",
              r.rc, r.err);
        CHECK(!exists(out), "written");
        rfree(&r);
        r = run("quantize -m '%s' -z '%s' -o '%s' --method none --outtype bf16", big, m_tok, out);
        CHECK(r.rc == 0 && exists(out), "rc %d '%s'", r.rc, r.err);
        rfree(&r);
        remove(out);
        remove(big);
    } while (0);

    remove(q4);
    remove(empty);
    remove(tiny);
    rmdir(dir);
    remove(errfile);
    return th_finish("test_quantize_cli");
}
