// Minimal test harness: each tests/test_*.c is its own program. CHECK records a failure and goes on;
// the program ends with "<file>: N passed, N failed" and exits non-zero on any failure.
// Tests find their models and texts in the shared directory ($INTACT_SHARED, default ../shared;
// stories260K.bin and tok512.bin through $INTACT_MODELS, which the Makefile sets to its models/). A test that needs
// a shared file which is absent is skipped, not failed: SKIP_UNLESS(path) inside a case skips that
// case, th_skip_program() the whole program; both print the reason, and tests/run.sh counts skips.
#ifndef IT_TESTS_HARNESS_H
#define IT_TESTS_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <unistd.h>

static int th_passed, th_failed, th_case_failed, th_skipped, th_case_skipped;
static const char *th_case = "";

// The inner one-pass loop is what a `break` in a case body leaves, so a case that breaks out after a
// failed CHECK is still counted by the outer loop's increment (a bare `for` would skip it: a failure
// lost and the program exiting 0).
// A skipped case (SKIP_UNLESS) counts as skipped unless a CHECK failed before the skip.
#define TEST_CASE(name) for (th_case = (name), th_case_failed = 0, th_case_skipped = 0; th_case; \
    (th_case_failed ? th_failed++ : th_case_skipped ? th_skipped++ : th_passed++), \
    (th_case_failed || !th_case_skipped ? printf("%s %s\n", th_case_failed ? "FAIL" : "ok  ", th_case) : 0), \
    th_case = NULL) \
    for (int th_once = 1; th_once; th_once = 0)

#define CHECK(cond, ...) do { if (!(cond)) { th_case_failed = 1; \
    printf("  %s:%d: %s: ", __FILE__, __LINE__, #cond); printf(__VA_ARGS__); printf("\n"); } } while (0)

#define CHECK_NEAR(a, b, tol) CHECK(fabs((double)(a) - (double)(b)) <= (tol), \
    "%.9g vs %.9g (tol %g)", (double)(a), (double)(b), (double)(tol))

// The path of a test file named by its place in the shared directory ("models/english-1m.bin"); the
// two small models every test uses (models/stories260K.bin, models/tok512.bin) resolve through
// $INTACT_MODELS when it is set.
static inline const char *th_shared(const char *rel, char *buf, size_t cap) {
    if (!strcmp(rel, "models/stories260K.bin") || !strcmp(rel, "models/tok512.bin")) {
        const char *models = getenv("INTACT_MODELS");
        if (models && *models) {
            snprintf(buf, cap, "%s/%s", models, rel + strlen("models/"));
            return buf;
        }
    }
    const char *root = getenv("INTACT_SHARED");
    snprintf(buf, cap, "%s/%s", root && *root ? root : "../shared", rel);
    return buf;
}

// 1 if path is readable; else prints why the current case is skipped and marks it skipped.
static inline int th_have(const char *path) {
    if (access(path, R_OK) == 0) return 1;
    printf("skip %s: needs %s (set SHARED=...)\n", th_case, path);
    th_case_skipped = 1;
    return 0;
}

// Inside a TEST_CASE body (not in a nested loop): skip the case when path is missing.
#define SKIP_UNLESS(path) if (!th_have(path)) break

// Skips the whole program when any of the shared files (NULL-terminated list of paths relative to
// the shared directory) is missing: prints "<file>: skipped: needs PATH (set SHARED=...)" and the
// usual totals line; returns 1 then (main returns 0), else 0.
static inline int th_skip_program(const char *file, ...) {
    va_list ap;
    va_start(ap, file);
    const char *missing = NULL;
    char buf[1024];
    for (const char *rel; !missing && (rel = va_arg(ap, const char *)) != NULL;)
        if (access(th_shared(rel, buf, sizeof buf), R_OK) != 0) missing = buf;
    va_end(ap);
    if (!missing) return 0;
    printf("%s: skipped: needs %s (set SHARED=...)\n", file, missing);
    printf("%s: 0 passed, 0 failed\n", file);
    return 1;
}

static inline int th_finish(const char *file) {
    if (th_skipped) printf("%s: skipped cases: %d\n", file, th_skipped);
    printf("%s: %d passed, %d failed\n", file, th_passed, th_failed);
    return th_failed ? 1 : 0;
}

#endif
