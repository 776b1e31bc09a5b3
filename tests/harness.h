// Minimal test harness: each tests/test_*.c is its own program. CHECK records a failure and goes on;
// the program ends with "<file>: N passed, N failed" and exits non-zero on any failure.
// Tests find the shared models through $INTACT_SHARED (default ../shared, relative to the repo root).
#ifndef IT_TESTS_HARNESS_H
#define IT_TESTS_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int th_passed, th_failed, th_case_failed;
static const char *th_case = "";

// The inner one-pass loop is what a `break` in a case body leaves, so a case that breaks out after a
// failed CHECK is still counted by the outer loop's increment (a bare `for` would skip it: a failure
// lost and the program exiting 0).
#define TEST_CASE(name) for (th_case = (name), th_case_failed = 0; th_case; \
    (th_case_failed ? th_failed++ : th_passed++), \
    printf("%s %s\n", th_case_failed ? "FAIL" : "ok  ", th_case), th_case = NULL) \
    for (int th_once = 1; th_once; th_once = 0)

#define CHECK(cond, ...) do { if (!(cond)) { th_case_failed = 1; \
    printf("  %s:%d: %s: ", __FILE__, __LINE__, #cond); printf(__VA_ARGS__); printf("\n"); } } while (0)

#define CHECK_NEAR(a, b, tol) CHECK(fabs((double)(a) - (double)(b)) <= (tol), \
    "%.9g vs %.9g (tol %g)", (double)(a), (double)(b), (double)(tol))

static inline const char *th_shared(const char *rel, char *buf, size_t cap) {
    const char *root = getenv("INTACT_SHARED");
    snprintf(buf, cap, "%s/%s", root && *root ? root : "../shared", rel);
    return buf;
}

static inline int th_finish(const char *file) {
    printf("%s: %d passed, %d failed\n", file, th_passed, th_failed);
    return th_failed ? 1 : 0;
}

#endif
