// Resource limits: absurd but well-formed inputs must fail fast with a message naming the limit, never
// by allocating until the machine dies. Each case runs in a forked child under setrlimit(RLIMIT_AS)
// (2 GiB, plus the size of the file when the case maps a huge sparse file) and must exit normally
// within 1 s with the expected message; a child killed by the address-space cap, a signal or the
// alarm fails the case. (Under AddressSanitizer the cap is skipped: ASan reserves terabytes of shadow
// address space; its allocator then aborts on any absurd allocation instead.)
// Cases: a GGUF vocabulary array of 2^31 strings (sparse file: the count fits the file, the limit
// must say no) and of 2^28-1 strings in a tiny file; 10^9 metadata keys (sparse and tiny); a tensor of
// 2^40 elements in a tiny file; context_length 2^30 (stories260K.gguf patched); llama2.c headers with
// vocab 2^31-1 and seq_len 2^30; a .ikv claiming 2^31 and 65536 tokens; intact_ctx_new with 2^30
// tokens; `intact run -c 1073741824` on a real model.
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "intact.h"
#include "io/gguf.h"

#if defined(__SANITIZE_ADDRESS__)
#define LIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LIM_ASAN 1
#endif
#endif
#ifndef LIM_ASAN
#define LIM_ASAN 0
#endif

#define GIB ((uint64_t)1 << 30)

static char g_dir[256];

// ---------------------------------------------------------------- byte builder

typedef struct bbuf { unsigned char *b; size_t n, cap; } bbuf;

static void b_put(bbuf *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->b = (unsigned char *)realloc(b->b, b->cap);
        if (!b->b) abort();
    }
    memcpy(b->b + b->n, p, n);
    b->n += n;
}
static void b_u32(bbuf *b, uint32_t v) { unsigned char t[4]; for (int i = 0; i < 4; i++) t[i] = (unsigned char)(v >> 8 * i); b_put(b, t, 4); }
static void b_u64(bbuf *b, uint64_t v) { unsigned char t[8]; for (int i = 0; i < 8; i++) t[i] = (unsigned char)(v >> 8 * i); b_put(b, t, 8); }
static void b_str(bbuf *b, const char *s) { b_u64(b, strlen(s)); b_put(b, s, strlen(s)); }
static void b_i32s(bbuf *b, const int32_t *v, int n) { for (int i = 0; i < n; i++) b_u32(b, (uint32_t)v[i]); }

// Writes b to dir/name, then extends the file (sparse) to total bytes if total > b->n.
static const char *write_file(const char *name, const bbuf *b, uint64_t total, char *path, size_t cap) {
    snprintf(path, cap, "%s/%s", g_dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return NULL;
    int ok = write(fd, b->b, b->n) == (ssize_t)b->n;
    if (ok && total > b->n) ok = ftruncate(fd, (off_t)total) == 0;
    close(fd);
    return ok ? path : NULL;
}

// ---------------------------------------------------------------- the forked child

typedef int (*child_fn)(const void *arg, char *msg, size_t cap);

typedef struct child_result {
    int exited;       // exited normally
    int code;         // its exit code (0: failed cleanly with a message, as expected)
    int sig;          // the signal that ended it, if any
    double seconds;
    char msg[512];
} child_result;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// Runs fn in a child capped at as_bytes of address space. fn returns 0 when the input was refused
// with a message (written to msg), non-zero when it was wrongly accepted.
static child_result run_capped(child_fn fn, const void *arg, uint64_t as_bytes) {
    child_result r;
    memset(&r, 0, sizeof r);
    int fds[2];
    if (pipe(fds) != 0) { r.code = 99; return r; }
    fflush(stdout);
    double t0 = now_s();
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        if (!LIM_ASAN) {
            struct rlimit rl = {(rlim_t)as_bytes, (rlim_t)as_bytes};
            if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(98);
        }
        alarm(20);
        char msg[512] = "";
        int rc = fn(arg, msg, sizeof msg);
        if (write(fds[1], msg, strlen(msg)) < 0) rc = 97;
        _exit(rc);
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t k;
    while (got < sizeof r.msg - 1 && (k = read(fds[0], r.msg + got, sizeof r.msg - 1 - got)) > 0) got += (size_t)k;
    r.msg[got] = '\0';
    close(fds[0]);
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid) { r.code = 96; return r; }
    r.seconds = now_s() - t0;
    r.exited = WIFEXITED(st);
    r.code = r.exited ? WEXITSTATUS(st) : -1;
    r.sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    return r;
}

#define CHECK_REFUSED(r, needle) do { \
    CHECK((r).exited && (r).code == 0, "child: exited %d code %d signal %d, message '%s'", (r).exited, (r).code, \
          (r).sig, (r).msg); \
    CHECK((r).seconds < 1.0, "took %.3f s", (r).seconds); \
    CHECK(strstr((r).msg, (needle)) != NULL, "message '%s' does not name '%s'", (r).msg, (needle)); \
} while (0)

// ---------------------------------------------------------------- what the children do

// The control: a child that really asks for 3 GiB must be refused by the cap (else the cap proves
// nothing). Touches the memory so an overcommitting kernel cannot pretend.
static int c_alloc_3g(const void *arg, char *msg, size_t cap) {
    (void)arg;
    size_t n = (size_t)3 << 30;
    char *p = (char *)malloc(n);
    if (!p) { snprintf(msg, cap, "refused by the address-space cap"); return 0; }
    memset(p, 1, n);
    snprintf(msg, cap, "allocated %zu bytes", n);
    free(p);
    return 1;
}

static int c_gguf_open(const void *arg, char *msg, size_t cap) {
    intact_error e = {0, ""};
    gguf_file *f = gguf_open((const char *)arg, &e);
    snprintf(msg, cap, "%s", e.msg);
    if (f) { gguf_close(f); return 1; }
    return 0;
}

static int c_model_load(const void *arg, char *msg, size_t cap) {
    const char *const *pt = (const char *const *)arg;
    intact_error e = {0, ""};
    intact_model *m = intact_model_load(pt[0], pt[1], &e);
    snprintf(msg, cap, "%s", e.msg);
    if (m) { intact_model_free(m); return 1; }
    return 0;
}

typedef struct prefix_arg { const char *model, *tok, *ikv; } prefix_arg;

static int c_prefix_load(const void *arg, char *msg, size_t cap) {
    const prefix_arg *a = (const prefix_arg *)arg;
    intact_error e = {0, ""};
    intact_model *m = intact_model_load(a->model, a->tok, &e);
    if (!m) { snprintf(msg, cap, "model: %s", e.msg); return 2; }
    intact_prefix *p = intact_prefix_load(a->ikv, m, &e);
    snprintf(msg, cap, "%s", e.msg);
    int rc = p ? 1 : 0;
    intact_prefix_free(p);
    intact_model_free(m);
    return rc;
}

static int c_ctx_new(const void *arg, char *msg, size_t cap) {
    const char *const *pt = (const char *const *)arg;
    intact_error e = {0, ""};
    intact_model *m = intact_model_load(pt[0], pt[1], &e);
    if (!m) { snprintf(msg, cap, "model: %s", e.msg); return 2; }
    intact_ctx_params cp = {1 << 30, 1, 0};
    intact_ctx *c = intact_ctx_new(m, &cp, &e);
    snprintf(msg, cap, "%s", e.msg);
    int rc = c ? 1 : 0;
    intact_ctx_free(c);
    intact_model_free(m);
    return rc;
}

// exec's the CLI with its stderr into the pipe; "refused" means exit status 1 or 2 with a message.
static int c_cli(const void *arg, char *msg, size_t cap) {
    char *const *argv = (char *const *)arg;
    int fds[2];
    if (pipe(fds) != 0) return 90;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        int dn = open("/dev/null", O_WRONLY);
        if (dn >= 0) dup2(dn, 1);
        close(fds[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t k;
    while (got < cap - 1 && (k = read(fds[0], msg + got, cap - 1 - got)) > 0) got += (size_t)k;
    msg[got] = '\0';
    close(fds[0]);
    int st;
    if (waitpid(pid, &st, 0) != pid) return 91;
    if (!WIFEXITED(st)) return 92;
    return WEXITSTATUS(st) == 1 || WEXITSTATUS(st) == 2 ? 0 : 93;
}

// ---------------------------------------------------------------- file builders

static void gguf_head(bbuf *b, uint64_t n_tensors, uint64_t n_kv) {
    b_put(b, "GGUF", 4);
    b_u32(b, 3);
    b_u64(b, n_tensors);
    b_u64(b, n_kv);
}

// Finds the u32 value of key in a GGUF image (the key string, then type 4 = u32); NULL if absent.
static unsigned char *find_u32_key(unsigned char *img, size_t n, const char *key) {
    size_t kl = strlen(key);
    for (size_t i = 8; i + kl + 8 <= n; i++)
        if (memcmp(img + i, key, kl) == 0 && img[i - 8] == kl && img[i + kl] == 4 && img[i + kl + 1] == 0)
            return img + i + kl + 4;
    return NULL;
}

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = (unsigned char *)malloc(sz > 0 ? (size_t)sz : 1);
    if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) { free(b); b = NULL; }
    fclose(f);
    *n = (size_t)sz;
    return b;
}

int main(void) {
    char st_bin[1024], st_gguf[1024], tok512[1024], path[1024], path2[1024];
    th_shared("models/stories260K.bin", st_bin, sizeof st_bin);
    th_shared("models/stories260K.gguf", st_gguf, sizeof st_gguf);
    th_shared("models/tok512.bin", tok512, sizeof tok512);
    snprintf(g_dir, sizeof g_dir, "/tmp/intact-limits-XXXXXX");
    if (!mkdtemp(g_dir)) { printf("cannot create a temp dir\n"); return 1; }
    const uint64_t cap = 2 * GIB;

    if (!LIM_ASAN)
        TEST_CASE("control: the 2 GiB address-space cap refuses a 3 GiB allocation") {
            child_result r = run_capped(c_alloc_3g, NULL, cap);
            CHECK_REFUSED(r, "refused by the address-space cap");
        }

    TEST_CASE("gguf: vocabulary array of 2^31 strings (sparse 16 GiB file) hits the array limit") {
        bbuf b = {0};
        gguf_head(&b, 0, 2);
        b_str(&b, "general.architecture"); b_u32(&b, 8); b_str(&b, "llama");
        b_str(&b, "tokenizer.ggml.tokens"); b_u32(&b, 9); b_u32(&b, 8); b_u64(&b, (uint64_t)1 << 31);
        uint64_t total = b.n + ((uint64_t)8 << 31);  // 2^31 empty strings: the count fits the file
        const char *p = write_file("vocab-2e31.gguf", &b, total, path, sizeof path);
        CHECK(p != NULL, "cannot write %s", path);
        if (p) {
            child_result r = run_capped(c_gguf_open, p, cap + total);
            CHECK_REFUSED(r, "exceeds the limit");
            const char *pt[2] = {p, NULL};
            r = run_capped(c_model_load, pt, cap + total);
            CHECK_REFUSED(r, "exceeds the limit");
            unlink(p);
        }
        free(b.b);
    }

    TEST_CASE("gguf: vocabulary array of 2^28-1 strings in a tiny file is refused before allocating") {
        bbuf b = {0};
        gguf_head(&b, 0, 1);
        b_str(&b, "tokenizer.ggml.tokens"); b_u32(&b, 9); b_u32(&b, 8); b_u64(&b, ((uint64_t)1 << 28) - 1);
        for (int i = 0; i < 16; i++) b_str(&b, "ab");
        const char *p = write_file("vocab-tiny.gguf", &b, 0, path, sizeof path);
        child_result r = run_capped(c_gguf_open, p, cap);
        CHECK_REFUSED(r, "array count 268435455");
        free(b.b);
    }

    TEST_CASE("gguf: 10^9 metadata keys (sparse 13 GB file) hit the key-count limit") {
        bbuf b = {0};
        gguf_head(&b, 0, 1000000000ull);
        b_str(&b, "k"); b_u32(&b, 4); b_u32(&b, 1);
        uint64_t total = 24 + 13ull * 1000000000ull + 64;
        const char *p = write_file("kv-1e9.gguf", &b, total, path, sizeof path);
        CHECK(p != NULL, "cannot write %s", path);
        if (p) {
            child_result r = run_capped(c_gguf_open, p, cap + total);
            CHECK_REFUSED(r, "metadata key count 1000000000 exceeds the limit of 1000000");
            unlink(p);
        }
        free(b.b);
    }

    TEST_CASE("gguf: 10^9 metadata keys in a tiny file are refused before allocating") {
        bbuf b = {0};
        gguf_head(&b, 0, 1000000000ull);
        b_str(&b, "k"); b_u32(&b, 4); b_u32(&b, 1);
        const char *p = write_file("kv-tiny.gguf", &b, 0, path, sizeof path);
        child_result r = run_capped(c_gguf_open, p, cap);
        CHECK_REFUSED(r, "metadata key count 1000000000 cannot fit");
        free(b.b);
    }

    TEST_CASE("gguf: a tensor of 2^40 f32 elements in a tiny file lies past the end") {
        bbuf b = {0};
        gguf_head(&b, 1, 1);
        b_str(&b, "general.architecture"); b_u32(&b, 8); b_str(&b, "llama");
        b_str(&b, "token_embd.weight"); b_u32(&b, 2); b_u64(&b, (uint64_t)1 << 20); b_u64(&b, (uint64_t)1 << 20);
        b_u32(&b, 0); b_u64(&b, 0);
        while (b.n % 32) b_put(&b, "", 1);
        for (int i = 0; i < 64; i++) b_u32(&b, 0);
        const char *p = write_file("tensor-2e40.gguf", &b, 0, path, sizeof path);
        child_result r = run_capped(c_gguf_open, p, cap);
        CHECK_REFUSED(r, "past the end of the file");
        const char *pt[2] = {p, NULL};
        r = run_capped(c_model_load, pt, cap);
        CHECK_REFUSED(r, "past the end of the file");
        free(b.b);
    }

    TEST_CASE("gguf model: context_length 2^30 is refused by the loader") {
        SKIP_UNLESS(st_gguf);
        size_t n = 0;
        unsigned char *img = read_all(st_gguf, &n);
        unsigned char *v = img ? find_u32_key(img, n, "llama.context_length") : NULL;
        CHECK(v != NULL, "no llama.context_length (u32) in %s", st_gguf);
        if (v) {
            uint32_t big = 1u << 30;
            memcpy(v, &big, 4);
            bbuf b = {img, n, n};
            const char *p = write_file("ctx-2e30.gguf", &b, 0, path, sizeof path);
            const char *pt[2] = {p, NULL};
            child_result r = run_capped(c_model_load, pt, cap);
            CHECK_REFUSED(r, "context length 1073741824 out of range (max 4194304)");
        }
        free(img);
    }

    TEST_CASE("llama2.c: vocab 2^31-1 and seq_len 2^30 are refused") {
        int32_t h1[7] = {64, 172, 5, 8, 4, INT32_MAX, 512}, h2[7] = {64, 172, 5, 8, 4, 512, 1 << 30};
        int32_t h3[7] = {64, 172, 5, 8, 4, INT32_MIN, 512};
        const int32_t *hs[3] = {h1, h2, h3};
        const char *want[3] = {"vocab_size 2147483647 is out of range (|vocab| must be 1..4194304)",
                               "seq_len 1073741824 is out of range (must be 1..16777216)",
                               "vocab_size -2147483648 is out of range"};
        for (int k = 0; k < 3; k++) {
            bbuf b = {0};
            b_i32s(&b, hs[k], 7);
            for (int i = 0; i < 256; i++) b_u32(&b, 0);
            char name[32];
            snprintf(name, sizeof name, "l2c-%d.bin", k);
            const char *p = write_file(name, &b, 0, path, sizeof path);
            const char *pt[2] = {p, tok512};
            child_result r = run_capped(c_model_load, pt, cap);
            CHECK_REFUSED(r, want[k]);
            free(b.b);
        }
    }

    TEST_CASE(".ikv: 2^31 and 65536 claimed tokens are refused before allocating") {
        SKIP_UNLESS(st_bin);
        intact_error e = {0, ""};
        intact_model *m = intact_model_load(st_bin, tok512, &e);
        CHECK(m != NULL, "%s", e.msg);
        intact_prefix *pf = NULL;
        if (m) {
            int32_t bos = 1;
            pf = intact_prefix_build(m, &bos, 1, 1, &e);
            CHECK(pf != NULL, "%s", e.msg);
        }
        snprintf(path, sizeof path, "%s/real.ikv", g_dir);
        if (pf && intact_prefix_save(pf, path, 0, &e) == 0) {
            size_t n = 0;
            unsigned char *img = read_all(path, &n);
            const uint32_t counts[2] = {1u << 31, 1u << 16};
            const char *want[2] = {"prefix token count 2147483648 exceeds the limit", "expected"};
            for (int k = 0; img && k < 2; k++) {
                memcpy(img + 32, &counts[k], 4);
                bbuf b = {img, n, n};
                write_file("claim.ikv", &b, 0, path2, sizeof path2);
                prefix_arg a = {st_bin, tok512, path2};
                child_result r = run_capped(c_prefix_load, &a, cap);
                CHECK_REFUSED(r, want[k]);
            }
            free(img);
        } else {
            CHECK(0, "cannot build/save the prefix: %s", e.msg);
        }
        intact_prefix_free(pf);
        intact_model_free(m);
    }

    TEST_CASE("intact_ctx_new with 2^30 tokens fails with the context limit") {
        SKIP_UNLESS(st_bin);
        const char *pt[2] = {st_bin, tok512};
        child_result r = run_capped(c_ctx_new, pt, cap);
        CHECK_REFUSED(r, "context size 1073741824 out of range");
    }

    TEST_CASE("intact run -c 1073741824 fails with a message, not an OOM kill") {
        const char *bin = getenv("INTACT_BIN");
        bin = bin && *bin ? bin : "build/intact";
        char *argv[] = {(char *)bin, "run", "-m", st_bin, "-z", tok512, "-p", "Once", "-n", "4",
                        "-c", "1073741824", NULL};
        child_result r = run_capped(c_cli, argv, cap);
        CHECK_REFUSED(r, "--ctx-size");
        CHECK(strstr(r.msg, "1048576") != NULL, "message '%s' does not give the maximum", r.msg);
    }

    // Clean up the scratch directory (every file in it is ours).
    const char *names[] = {"vocab-2e31.gguf", "vocab-tiny.gguf", "kv-1e9.gguf", "kv-tiny.gguf", "tensor-2e40.gguf",
                           "ctx-2e30.gguf", "l2c-0.bin", "l2c-1.bin", "l2c-2.bin", "real.ikv", "claim.ikv"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(path, sizeof path, "%s/%s", g_dir, names[i]);
        unlink(path);
    }
    rmdir(g_dir);
    return th_finish("test_limits");
}
