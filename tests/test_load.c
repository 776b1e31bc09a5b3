// How a model file reaches memory: mapped (the default) or read into anonymous huge-page memory
// (INTACT_LOAD_NO_MMAP, `--no-mmap`), and the decode kernels' software prefetch distance
// (it_cpu_stream_prefetch, INTACT_PREFETCH). Neither may change a single result: the no-mmap load
// is held to the mapped load's logits byte for byte (GGUF and llama2.c), and bad files fail the same
// way on both paths.
#include <cpuid.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "harness.h"
#include "intact.h"
#include "core/cpu.h"

// Logits of the last of 6 tokens after a 6-token prefill and 2 decode steps (both paths of the
// forward pass), into out (n_vocab floats); 0 on success.
static int logits_of(const char *path, unsigned flags, float *out, int n_vocab) {
    intact_error err = {0, ""};
    intact_model *m = intact_model_load_ex(path, NULL, flags, &err);
    if (!m) { printf("  load %s: %s\n", path, err.msg); return -1; }
    intact_ctx_params p = {64, 2, 0};
    intact_ctx *c = intact_ctx_new(m, &p, &err);
    int32_t toks[6] = {1, 5, 17, 42, 3, 9};
    int rc = !c || intact_ctx_eval(c, toks, 6, &err) || intact_ctx_eval(c, toks + 1, 1, &err) ||
             intact_ctx_eval(c, toks + 2, 1, &err);
    if (!rc) memcpy(out, intact_ctx_logits(c, 0), (size_t)n_vocab * sizeof *out);
    intact_ctx_free(c);
    intact_model_free(m);
    return rc ? -1 : 0;
}

static void same_logits(const char *rel) {
    char buf[1024];
    const char *path = th_shared(rel, buf, sizeof buf);
    if (!th_have(path)) return;
    intact_error err = {0, ""};
    intact_model *m = intact_model_load(path, NULL, &err);
    CHECK(m, "%s", err.msg);
    if (!m) return;
    intact_model_info in;
    intact_model_get_info(m, &in);
    intact_model_free(m);
    float *a = malloc((size_t)in.n_vocab * sizeof *a), *b = malloc((size_t)in.n_vocab * sizeof *b);
    CHECK(a && b, "oom");
    if (a && b) {
        CHECK(logits_of(path, 0, a, in.n_vocab) == 0, "mapped");
        CHECK(logits_of(path, INTACT_LOAD_NO_MMAP, b, in.n_vocab) == 0, "no-mmap");
        CHECK(!memcmp(a, b, (size_t)in.n_vocab * sizeof *a), "%s: no-mmap logits differ from the mapped load's", rel);
        double s = 0;
        for (int i = 0; i < in.n_vocab; i++) s += fabs(a[i]);
        CHECK(s > 0 && isfinite(s), "logits are all zero or not finite");
    }
    free(a);
    free(b);
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f) {
        if (n) fwrite(p, 1, n, f);
        fclose(f);
    }
}

// Both load paths give the same one-line error for the same bad file.
static void same_error(const char *path, const char *want) {
    intact_error e1 = {0, ""}, e2 = {0, ""};
    intact_model *m1 = intact_model_load_ex(path, NULL, 0, &e1);
    intact_model *m2 = intact_model_load_ex(path, NULL, INTACT_LOAD_NO_MMAP, &e2);
    CHECK(!m1 && !m2, "%s loaded", path);
    intact_model_free(m1);
    intact_model_free(m2);
    CHECK(e1.code != 0 && e1.code == e2.code, "codes %d vs %d", e1.code, e2.code);
    CHECK(!strcmp(e1.msg, e2.msg), "'%s' vs '%s'", e1.msg, e2.msg);
    CHECK(strstr(e2.msg, want) != NULL, "'%s' lacks '%s'", e2.msg, want);
    CHECK(!strchr(e2.msg, '\n'), "multi-line error");
}

static int is_amd(void) {
    unsigned a, b, c, d;
    char v[13] = {0};
    if (!__get_cpuid(0, &a, &b, &c, &d)) return 0;
    memcpy(v, &b, 4);
    memcpy(v + 4, &d, 4);
    memcpy(v + 8, &c, 4);
    return !strcmp(v, "AuthenticAMD") || !strcmp(v, "HygonGenuine");
}

// it_cpu_stream_prefetch(8192) in a child process started with INTACT_PREFETCH=env (NULL: unset):
// the variable is read once per process, so each setting needs its own.
static int prefetch_in_child(const char *env) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (env) setenv("INTACT_PREFETCH", env, 1);
        else unsetenv("INTACT_PREFETCH");
        int v = it_cpu_stream_prefetch(8192);
        _exit(v == 8192 ? 1 : v == 2048 ? 2 : v == 4096 ? 3 : v == 0 ? 4 : 5);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) return -1;
    static const int val[] = {-1, 8192, 2048, 4096, 0, -2};
    return val[WEXITSTATUS(st) <= 5 ? WEXITSTATUS(st) : 5];
}

int main(void) {
    // First: the children must fork before this process detects its CPU (pthread_once).
    TEST_CASE("decode prefetch distance: 8 KB on AMD, at most 2 KB elsewhere; INTACT_PREFETCH overrides") {
        int want = is_amd() ? 8192 : 2048;
        CHECK(prefetch_in_child(NULL) == want, "unset: %d, want %d", prefetch_in_child(NULL), want);
        CHECK(prefetch_in_child("4096") == 4096, "4096");
        CHECK(prefetch_in_child("0") == 0, "0 turns it off");
        // Malformed or out of range: ignored, the CPU's default stays.
        CHECK(prefetch_in_child("12abc") == want, "12abc");
        CHECK(prefetch_in_child("-5") == want, "-5");
        CHECK(prefetch_in_child("70000") == want, "70000");
        CHECK(prefetch_in_child("") == want, "empty");
        CHECK(it_cpu_stream_prefetch(1000) == 1000 || getenv("INTACT_PREFETCH"), "a distance below 2 KB is kept");
    }
    TEST_CASE("no-mmap load: llama2.c logits identical to the mapped load") same_logits("models/stories260K.bin");
    TEST_CASE("no-mmap load: GGUF (llama.cpp-written) logits identical to the mapped load")
        same_logits("models/stories260K.gguf");
    TEST_CASE("no-mmap load: bad files fail as the mapped load does") {
        char dir[] = "/tmp/intact-test-load-XXXXXX";
        CHECK(mkdtemp(dir) != NULL, "mkdtemp");
        char p[256];
        snprintf(p, sizeof p, "%s/missing.gguf", dir);
        same_error(p, "cannot open");
        same_error(dir, "cannot open");   // a directory
        snprintf(p, sizeof p, "%s/empty.gguf", dir);
        write_bytes(p, "", 0);
        same_error(p, "empty");
        unlink(p);
        // A GGUF cut inside its header, and a llama2.c header whose weights are missing.
        snprintf(p, sizeof p, "%s/cut.gguf", dir);
        unsigned char g[24] = {'G', 'G', 'U', 'F', 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0};
        write_bytes(p, g, sizeof g);
        same_error(p, "cut.gguf");
        unlink(p);
        snprintf(p, sizeof p, "%s/cut.bin", dir);
        int32_t h[7] = {64, 172, 2, 4, 4, 32, 32};
        write_bytes(p, h, sizeof h);
        same_error(p, "cut.bin");
        unlink(p);
        rmdir(dir);
    }
    TEST_CASE("model load flags: unknown bits are refused") {
        char buf[1024];
        const char *path = th_shared("models/stories260K.bin", buf, sizeof buf);
        intact_error err = {0, ""};
        intact_model *m = intact_model_load_ex(path, NULL, 0x80, &err);
        CHECK(!m && err.code == INTACT_E_ARG && strstr(err.msg, "flags"), "%s", err.msg);
        intact_model_free(m);
    }
    return th_finish("test_load");
}
