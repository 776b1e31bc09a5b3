// Output files are written atomically: `intact quantize` and `intact ikv build` write OUT.tmp.XXXXXX,
// fsync it and rename it over OUT only when complete. Driven as separate processes ($INTACT_BIN):
//  - a normal run, with the parent polling OUT every ~100 us: whenever OUT exists it already has its
//    final size (it never appears partially written), and afterwards it loads;
//  - runs killed with SIGKILL after 0..500 ms and at the moment the temporary file appears: OUT must
//    not exist afterwards, unless the rename had already happened, in which case it is the complete
//    file (same size as the reference, and it loads).
// A killed run may leave its OUT.tmp.XXXXXX behind (nothing can clean up after SIGKILL); that is the
// documented behaviour: it never has the output's name, and the test removes it.
// Input: build/synth-small.gguf (shared/tools/synth-gguf.py --preset small, ~90 MB; reused when
// test_synth already made it) so the quantize write takes long enough to be interrupted.
#define _GNU_SOURCE 1
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "intact.h"

static char g_dir[256];

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static pid_t spawn(char *const *argv) {
    pid_t pid = fork();
    if (pid == 0) {
        int dn = open("/dev/null", O_WRONLY);
        if (dn >= 0) { dup2(dn, 1); dup2(dn, 2); }
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static long long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

// Number of entries in g_dir whose name starts with prefix; removes them when rm is set.
static int count_prefix(const char *prefix, int rm) {
    DIR *d = opendir(g_dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    size_t pl = strlen(prefix);
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, prefix, pl) == 0) {
            n++;
            if (rm) {
                char p[600];
                snprintf(p, sizeof p, "%s/%s", g_dir, e->d_name);
                unlink(p);
            }
        }
    closedir(d);
    return n;
}

typedef enum { KIND_MODEL, KIND_PREFIX } out_kind;

typedef struct job {
    const char *name;       // "quantize" / "ikv build"
    out_kind kind;
    char out[512];          // output path
    char tmp_prefix[128];   // basename + ".tmp."
    char *argv[24];
    long long ref_size;     // size of a complete output
    const char *model;      // for loading a prefix: the model it was built from
} job;

static int loads(const job *j, const char *path, char *msg, size_t cap) {
    intact_error e = {0, ""};
    int ok = 0;
    if (j->kind == KIND_MODEL) {
        intact_model *m = intact_model_load(path, NULL, &e);
        ok = m != NULL;
        intact_model_free(m);
    } else {
        intact_model *m = intact_model_load(j->model, NULL, &e);
        intact_prefix *p = m ? intact_prefix_load(path, m, &e) : NULL;
        ok = p != NULL;
        intact_prefix_free(p);
        intact_model_free(m);
    }
    snprintf(msg, cap, "%s", e.msg);
    return ok;
}

// A normal run polled from outside: OUT only ever appears complete. Sets j->ref_size.
static void normal_run(job *j) {
    unlink(j->out);
    pid_t pid = spawn(j->argv);
    long long seen_min = -1, seen_max = -1;
    int st = 0, polls = 0;
    double t0 = now_s();
    for (;;) {
        long long s = file_size(j->out);
        if (s >= 0) {
            if (seen_min < 0 || s < seen_min) seen_min = s;
            if (s > seen_max) seen_max = s;
        }
        polls++;
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid || w < 0 || now_s() - t0 > 300) break;
        sleep_s(1e-4);
    }
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s exited with status %d", j->name, st);
    j->ref_size = file_size(j->out);
    CHECK(j->ref_size > 0, "%s wrote no %s", j->name, j->out);
    CHECK(seen_min < 0 || (seen_min == j->ref_size && seen_max == j->ref_size),
          "%s appeared with %lld..%lld bytes before it was complete (%lld); %d polls", j->out, seen_min, seen_max,
          j->ref_size, polls);
    char msg[512];
    CHECK(loads(j, j->out, msg, sizeof msg), "the completed %s does not load: %s", j->out, msg);
    CHECK(count_prefix(j->tmp_prefix, 0) == 0, "a completed %s left a temporary file", j->name);
}

// After a kill: OUT absent, or complete and loadable. Returns 1 if OUT existed (rename had happened).
static int check_after_kill(const job *j, const char *when) {
    long long s = file_size(j->out);
    if (s < 0) return 0;
    CHECK(s == j->ref_size, "%s killed %s: %s exists with %lld bytes (complete: %lld)", j->name, when, j->out, s,
          j->ref_size);
    char msg[512];
    CHECK(loads(j, j->out, msg, sizeof msg), "%s killed %s: %s exists but does not load: %s", j->name, when,
          j->out, msg);
    return 1;
}

static void kill_runs(job *j) {
    static const double delays_ms[] = {0, 1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 200, 300, 500};
    int n_absent = 0, n_complete = 0, n_exited = 0, leftovers = 0;
    for (size_t k = 0; k < sizeof delays_ms / sizeof *delays_ms; k++) {
        unlink(j->out);
        pid_t pid = spawn(j->argv);
        sleep_s(delays_ms[k] / 1000);
        kill(pid, SIGKILL);
        int st = 0;
        waitpid(pid, &st, 0);
        char when[64];
        snprintf(when, sizeof when, "after %g ms", delays_ms[k]);
        if (WIFEXITED(st)) {
            n_exited++;
            CHECK(WEXITSTATUS(st) == 0, "%s exited with %d", j->name, WEXITSTATUS(st));
            check_after_kill(j, when);
        } else if (check_after_kill(j, when)) {
            n_complete++;
        } else {
            n_absent++;
        }
        leftovers += count_prefix(j->tmp_prefix, 1);
    }
    // Killed at the moment the temporary file appears: mid-write.
    int mid_absent = 0, mid_tries = 0;
    for (int rep = 0; rep < 3; rep++) {
        unlink(j->out);
        pid_t pid = spawn(j->argv);
        double t0 = now_s();
        int saw = 0;
        while (now_s() - t0 < 120) {
            if (count_prefix(j->tmp_prefix, 0) > 0) { saw = 1; break; }
            if (waitpid(pid, NULL, WNOHANG) == pid) { pid = -1; break; }
            sleep_s(5e-5);
        }
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
        if (saw) {
            mid_tries++;
            if (!check_after_kill(j, "mid-write")) mid_absent++;
        }
        leftovers += count_prefix(j->tmp_prefix, 1);
    }
    CHECK(mid_tries > 0, "%s: never saw its temporary file", j->name);
    CHECK(mid_absent > 0, "%s: every mid-write kill came too late to test anything", j->name);
    printf("  %s: %d kills left no output, %d came after the rename (complete file), %d runs finished first; "
           "mid-write kills: %d of %d left no output; %d temporary files left behind (removed)\n",
           j->name, n_absent, n_complete, n_exited, mid_absent, mid_tries, leftovers);
    unlink(j->out);
}

int main(void) {
    if (th_skip_program("test_atomic", "tools/synth-gguf.py", NULL)) return 0;
    const char *bin = getenv("INTACT_BIN");
    bin = bin && *bin ? bin : "build/intact";
    char tool[1024], cmd[2300], st_bin[1024], tok512[1024];
    const char *synth = "build/synth-small.gguf";
    th_shared("tools/synth-gguf.py", tool, sizeof tool);
    th_shared("models/stories260K.bin", st_bin, sizeof st_bin);
    th_shared("models/tok512.bin", tok512, sizeof tok512);
    snprintf(g_dir, sizeof g_dir, "/tmp/intact-atomic-XXXXXX");
    if (!mkdtemp(g_dir)) { printf("cannot create a temp dir\n"); return 1; }

    TEST_CASE("the synthetic input model is there") {
        if (file_size(synth) < 80000000) {
            snprintf(cmd, sizeof cmd, "mkdir -p build && python3 %s %s --preset small --seed 3 > /dev/null", tool,
                     synth);
            CHECK(system(cmd) == 0, "%s failed", cmd);
        }
        CHECK(file_size(synth) > 80000000, "%s missing", synth);
    }

    job q = {.name = "quantize", .kind = KIND_MODEL};
    snprintf(q.out, sizeof q.out, "%s/killed.gguf", g_dir);
    snprintf(q.tmp_prefix, sizeof q.tmp_prefix, "killed.gguf.tmp.");
    char *qa[] = {(char *)bin, "quantize", "-m", (char *)synth, "-o", q.out, "--bits", "4", "--group", "128",
                  "-t", "1", NULL};
    memcpy(q.argv, qa, sizeof qa);

    TEST_CASE("quantize: the output appears only complete, and loads") { normal_run(&q); }
    if (q.ref_size > 0)
        TEST_CASE("quantize: SIGKILL at any moment leaves no partial file at the output path") { kill_runs(&q); }

    job k = {.name = "ikv build", .kind = KIND_PREFIX, .model = synth};
    snprintf(k.out, sizeof k.out, "%s/killed.ikv", g_dir);
    snprintf(k.tmp_prefix, sizeof k.tmp_prefix, "killed.ikv.tmp.");
    char *ka[] = {(char *)bin, "ikv", "build", "-m", (char *)synth, "--prompt",
                  "You are a helpful assistant. Answer briefly and accurately, in plain words.", "-o", k.out, NULL};
    memcpy(k.argv, ka, sizeof ka);
    TEST_CASE("ikv build: the output appears only complete, and loads") { normal_run(&k); }
    if (k.ref_size > 0)
        TEST_CASE("ikv build: SIGKILL at any moment leaves no partial file at the output path") { kill_runs(&k); }

    count_prefix("killed", 1);
    rmdir(g_dir);
    return th_finish("test_atomic");
}
