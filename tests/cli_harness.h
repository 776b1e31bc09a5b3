// Drives the intact binary as a separate process, for tests/test_cli.c and tests/test_cli_inputs.c:
// run() executes "$INTACT_BIN args" through the shell (args is shell syntax; callers single-quote
// paths) with stdin from /dev/null, run_in() with stdin from a file; both capture the exit status,
// stdout (with its length, so bytes after a NUL are seen) and stderr.
// The binary is $INTACT_BIN (tests/run.sh sets it; default build/intact).
#ifndef IT_TESTS_CLI_HARNESS_H
#define IT_TESTS_CLI_HARNESS_H

#include <stdarg.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static char bin[1024], errfile[64] = "";

typedef struct result {
    int rc;          // exit status, or -1 if it did not exit normally
    char *out, *err; // stdout, stderr (NUL-terminated, never NULL)
    size_t out_len;  // bytes of stdout (out may hold NUL bytes before out_len)
} result;

static inline char *slurp_n(FILE *f, size_t *len) {
    size_t cap = 4096, n = 0;
    char *buf = (char *)malloc(cap);
    if (!buf) return NULL;
    for (;;) {
        if (cap - n < 2048) {
            char *nb = (char *)realloc(buf, cap *= 2);
            if (!nb) { free(buf); return NULL; }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

static inline char *slurp(FILE *f) { return slurp_n(f, NULL); }

static inline char *read_path(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *s = slurp_n(f, len);
    fclose(f);
    return s;
}

static inline int write_path(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

// Sets bin from $INTACT_BIN and creates the stderr capture file; 0 on success.
static inline int cli_harness_init(void) {
    const char *b = getenv("INTACT_BIN");
    snprintf(bin, sizeof bin, "%s", b && *b ? b : "build/intact");
    snprintf(errfile, sizeof errfile, "/tmp/intact_test_cli_err_XXXXXX");
    int fd = mkstemp(errfile);
    if (fd < 0) { errfile[0] = '\0'; return -1; }
    close(fd);
    return 0;
}

static inline void cli_harness_done(void) {
    if (errfile[0]) unlink(errfile);
}

static inline result run_va(const char *in, const char *fmt, va_list ap) {
    char args[8192], cmd[12288];
    vsnprintf(args, sizeof args, fmt, ap);
    snprintf(cmd, sizeof cmd, "'%s' %s 2>'%s' <'%s'", bin, args, errfile, in ? in : "/dev/null");
    result r = {-1, NULL, NULL, 0};
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    if (p) {
        r.out = slurp_n(p, &r.out_len);
        int st = pclose(p);
        r.rc = (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
    }
    r.err = read_path(errfile, NULL);
    if (!r.out) { r.out = strdup(""); r.out_len = 0; }
    if (!r.err) r.err = strdup("");
    return r;
}

static inline result run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline result run(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    result r = run_va(NULL, fmt, ap);
    va_end(ap);
    return r;
}

// As run(), with standard input read from the file `in`.
static inline result run_in(const char *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline result run_in(const char *in, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    result r = run_va(in, fmt, ap);
    va_end(ap);
    return r;
}

static inline void rfree(result *r) { free(r->out); free(r->err); }

// A sanitizer report (ASan, UBSan, LSan) anywhere in stderr.
static inline int sanitizer_report(const char *err) {
    return strstr(err, "Sanitizer") || strstr(err, "runtime error:");
}

// stderr is exactly one line that contains want.
static inline int one_line_with(const char *err, const char *want) {
    size_t n = strlen(err);
    return n > 1 && err[n - 1] == '\n' && memchr(err, '\n', n - 1) == NULL && strstr(err, want) != NULL;
}

// The number after "key": in a flat JSON object; NAN if the key is absent.
static inline double json_num(const char *js, const char *key) {
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(js, pat);
    if (!p) return NAN;
    p += strlen(pat);
    while (*p == ' ') p++;
    char *end;
    double v = strtod(p, &end);
    return end == p ? NAN : v;
}

// One JSON object on one line: "{...}\n" and nothing else.
static inline int one_json_object(const char *s) {
    size_t n = strlen(s);
    if (n < 3 || s[0] != '{' || s[n - 1] != '\n' || s[n - 2] != '}') return 0;
    return memchr(s, '\n', n - 1) == NULL;
}

static inline int near_rel(double a, double b, double rel) { return fabs(a - b) <= rel * fabs(b); }

// A failure: non-zero exit and something on stderr.
#define CHECK_FAILS(r, what) CHECK((r).rc > 0 && (r).err[0] != '\0', \
    "%s: rc %d, stderr '%s'", what, (r).rc, (r).err)

// A clean error: exit status `code` (2 usage, 1 failure) and one line on stderr containing `want`.
#define CHECK_ERROR(r, code, want, what) CHECK((r).rc == (code) && one_line_with((r).err, want), \
    "%s: want rc %d and one line with '%s'; got rc %d, stderr '%s'", what, code, want, (r).rc, (r).err)

// A success: exit status 0 and no sanitizer report on stderr.
#define CHECK_OK(r, what) CHECK((r).rc == 0 && !sanitizer_report((r).err), \
    "%s: rc %d, stderr '%s'", what, (r).rc, (r).err)

#endif
