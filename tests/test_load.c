// How a model file reaches memory: mapped (the default) or read into anonymous huge-page memory
// (INTACT_LOAD_NO_MMAP, `--no-mmap`), and the decode kernels' software prefetch distance
// (it_cpu_stream_prefetch, INTACT_PREFETCH). Neither may change a single result: the no-mmap load
// is held to the mapped load's logits byte for byte (GGUF and llama2.c), and bad files fail the same
// way on both paths. A mapped model gets 2 MiB pages when the kernel can give them (io/mmapfile.c's
// re-read of a file cached in 4 KiB pages, gguf_write.c's 2 MiB writes), checked against the
// kernel's own count in /proc/self/smaps_rollup.
#include <cpuid.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "harness.h"
#include "intact.h"
#include "core/cpu.h"
#include "io/gguf_write.h"
#include "io/mmapfile.h"

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


// Bytes this process holds in 2 MiB pages of one kind, the kernel's total over all mappings
// (smaps_rollup), not the per-mapping figure the loader reads: "FilePmdMapped" for mapped files,
// "AnonHugePages" for anonymous memory (what a --no-mmap copy gets); -1 when unreadable.
static double rollup_huge_bytes(const char *key) {
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (!f) return -1;
    char line[256], fmt[64];
    snprintf(fmt, sizeof fmt, "%s: %%llu kB", key);
    double kb = -1;
    unsigned long long v;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, fmt, &v) == 1) kb = (double)v;
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}
static double rollup_pmd_bytes(void) { return rollup_huge_bytes("FilePmdMapped"); }
static double rollup_anon_huge_bytes(void) { return rollup_huge_bytes("AnonHugePages"); }

// n bytes of a position-dependent pattern in 4 KiB write() calls, so the page cache holds the file
// in 4 KiB folios; written back to disk. 0 on success.
static int write_small(const char *path, size_t n) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return -1;
    uint32_t buf[1024];
    int rc = 0;
    for (size_t off = 0; off < n && !rc; off += sizeof buf) {
        for (int i = 0; i < 1024; i++) buf[i] = (uint32_t)(off / 4 + (size_t)i) * 2654435761u;
        size_t k = n - off < sizeof buf ? n - off : sizeof buf;
        rc = write(fd, buf, k) != (ssize_t)k;
    }
    rc = rc || fsync(fd);   // clean pages: POSIX_FADV_DONTNEED drops only those
    return close(fd) || rc ? -1 : 0;
}

// Whether this kernel and file system can map path with 2 MiB pages at all: the test's own way
// (drop the file's cache, map it at a 2 MiB boundary with MADV_HUGEPAGE, fault it in), measured by
// smaps_rollup. Leaves path's cache in whatever pages that produced.
static int kernel_gives_huge_pages(const char *path, size_t n) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    size_t H = (size_t)2 << 20;
    char *r = mmap(NULL, n + H, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int yes = 0;
    if (r != MAP_FAILED) {
        char *a = (char *)(((uintptr_t)r + H - 1) & ~(uintptr_t)(H - 1));
        double before = rollup_pmd_bytes();
        if (mmap(a, n, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0) == a) {
            madvise(a, n, MADV_HUGEPAGE);
            volatile unsigned char sink = 0;
            for (size_t i = 0; i < n; i += 4096) sink ^= a[i];
            (void)sink;
            yes = rollup_pmd_bytes() - before >= 0.5 * (double)n;
        }
        munmap(r, n + H);
    }
    close(fd);
    return yes;
}

// it_mmap_open_mode(IT_MMAP_WEIGHTS) + it_mmap_settle_weights of path with INTACT_HUGE_REFRESH=refresh (NULL: unset):
// returns the loader's huge_fraction, checks it against the kernel's count and the bytes against
// the pattern of write_small (when pattern is set).
static double weights_fraction(const char *path, size_t n, const char *refresh, int pattern) {
    if (refresh) setenv("INTACT_HUGE_REFRESH", refresh, 1);
    else unsetenv("INTACT_HUGE_REFRESH");
    double before = rollup_pmd_bytes();
    it_mmap m;
    intact_error err = {0, ""};
    int rc = it_mmap_open_mode(path, IT_MMAP_WEIGHTS, &m, &err);
    if (!rc) rc = it_mmap_settle_weights(&m, path, &err);
    unsetenv("INTACT_HUGE_REFRESH");
    CHECK(rc == 0, "%s", err.msg);
    if (rc) return -1;
    double kernel = rollup_pmd_bytes() - before, frac = m.huge_fraction;
    CHECK(m.size == n, "size %zu", m.size);
    CHECK(frac >= 0 && frac <= 1, "fraction %g", frac);
    CHECK(fabs(frac * (double)n - kernel) <= (double)((size_t)2 << 20), "loader says %.0f bytes in 2 MiB pages, "
          "the kernel %.0f", frac * (double)n, kernel);
    int bad = 0;
    for (size_t off = 0; pattern && off + 4 <= n && !bad; off += 4093 * 4) {
        uint32_t v;
        memcpy(&v, m.data + off, 4);
        bad = v != (uint32_t)(off / 4) * 2654435761u;
    }
    CHECK(!bad, "mapped bytes differ from the file's");
    it_mmap_close(&m);
    return frac;
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

// cpuid display family, worked out here from leaf 1 as the AMD/Intel manuals define it (base
// family, plus the extended family when the base is 0xF): Zen 3/4 are 0x19, Zen 5 0x1A.
static int cpu_family(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    unsigned base = (a >> 8) & 0xf;
    return (int)(base == 0xf ? base + ((a >> 20) & 0xff) : base);
}

// it_cpu_stream_prefetch(8192, 1024) in a child process started with INTACT_PREFETCH=env (NULL:
// unset): the variable is read once per process, so each setting needs its own.
static int prefetch_in_child(const char *env) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (env) setenv("INTACT_PREFETCH", env, 1);
        else unsetenv("INTACT_PREFETCH");
        int v = it_cpu_stream_prefetch(8192, 1024);
        _exit(v == 8192 ? 1 : v == 2048 ? 2 : v == 4096 ? 3 : v == 0 ? 4 : v == 1024 ? 5 : 6);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) return -1;
    static const int val[] = {-1, 8192, 2048, 4096, 0, 1024, -2};
    return val[WEXITSTATUS(st) <= 6 ? WEXITSTATUS(st) : 6];
}

int main(void) {
    // First: the children must fork before this process detects its CPU (pthread_once).
    TEST_CASE("decode prefetch distance: Zen 5's on AMD family >= 0x1A, Zen 4's on 0x19, at most 2 KB elsewhere; INTACT_PREFETCH overrides") {
        int want = is_amd() ? (cpu_family() >= 0x1a ? 8192 : 1024) : 2048;
        CHECK(prefetch_in_child(NULL) == want, "unset: %d, want %d", prefetch_in_child(NULL), want);
        CHECK(prefetch_in_child("4096") == 4096, "4096");
        CHECK(prefetch_in_child("0") == 0, "0 turns it off");
        // Malformed or out of range: ignored, the CPU's default stays.
        CHECK(prefetch_in_child("12abc") == want, "12abc");
        CHECK(prefetch_in_child("-5") == want, "-5");
        CHECK(prefetch_in_child("70000") == want, "70000");
        CHECK(prefetch_in_child("") == want, "empty");
        CHECK(it_cpu_stream_prefetch(1000, 1000) == 1000 || getenv("INTACT_PREFETCH"), "a distance below 2 KB is kept");
    }
    TEST_CASE("it_cpu_set_stream_prefetch: one distance for every kernel until -1 gives the default back") {
        int def = it_cpu_stream_prefetch(8192, 1024);
        CHECK(it_cpu_set_stream_prefetch(3000) == 0 && it_cpu_stream_prefetch(8192, 1024) == 3000, "set 3000");
        CHECK(it_cpu_stream_prefetch(100, 200) == 3000, "whatever the kernel's own distances");
        CHECK(it_cpu_set_stream_prefetch(0) == 0 && it_cpu_stream_prefetch(8192, 1024) == 0, "0: off");
        CHECK(it_cpu_set_stream_prefetch(65537) == -1 && it_cpu_stream_prefetch(8192, 1024) == 0, "65537 refused");
        CHECK(it_cpu_set_stream_prefetch(-2) == -1 && it_cpu_stream_prefetch(8192, 1024) == 0, "-2 refused");
        CHECK(it_cpu_set_stream_prefetch(-1) == 0 && it_cpu_stream_prefetch(8192, 1024) == def, "-1: back to %d", def);
    }
    TEST_CASE("bench prefetch A/B: whole A A B B blocks, bad distances refused, the default distance restored") {
        char buf[1024];
        intact_error err = {0, ""};
        intact_model *m = intact_model_load(th_shared("models/stories260K.bin", buf, sizeof buf), NULL, &err);
        CHECK(m != NULL, "load: %s", err.msg);
        if (m) {
            int def = it_cpu_stream_prefetch(8192, 1024);
            intact_bench_params p = {4, 13, 2, 1, 0, NULL, NULL, 0, 1, {0, 4096}};
            intact_bench_result r;
            CHECK(intact_bench(m, &p, &r, &err) == 0, "bench: %s", err.msg);
            CHECK(r.ab_blocks == 3, "13 steps hold 3 whole blocks, got %d", r.ab_blocks);
            CHECK(r.ab_step_ms[0] > 0 && r.ab_step_ms[1] > 0 && r.ab_speed > 0, "times %g %g %g", r.ab_step_ms[0],
                  r.ab_step_ms[1], r.ab_speed);
            CHECK(it_cpu_stream_prefetch(8192, 1024) == def, "after the run: %d, want %d",
                  it_cpu_stream_prefetch(8192, 1024), def);
            p.prefetch_ab[1] = 65537;
            CHECK(intact_bench(m, &p, &r, &err) == -1 && err.code == INTACT_E_ARG && strstr(err.msg, "65537"),
                  "65537: %s", err.msg);
            p.prefetch_ab[1] = 0;
            p.n_gen = 3;
            CHECK(intact_bench(m, &p, &r, &err) == -1 && strstr(err.msg, "at least 4 decoded tokens"), "n_gen 3: %s",
                  err.msg);
            p.prefetch_ab_on = 0;   // without A/B three tokens are fine, and no block is reported
            CHECK(intact_bench(m, &p, &r, &err) == 0 && r.ab_blocks == 0, "no A/B: %s", err.msg);
            intact_model_free(m);
        }
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
    TEST_CASE("mapped weights: a file cached in 4 KiB pages is re-read into 2 MiB pages (INTACT_HUGE_REFRESH=0 keeps them)") {
        char dir[] = "/tmp/intact-test-huge-XXXXXX";
        CHECK(mkdtemp(dir) != NULL, "mkdtemp");
        char p[256];
        const size_t n = (size_t)40 << 20;   // above the loader's 32 MiB threshold
        snprintf(p, sizeof p, "%s/probe.bin", dir);
        int can = write_small(p, n) == 0 && kernel_gives_huge_pages(p, n);
        unlink(p);
        if (!can) {
            printf("skip %s: this kernel or file system maps no file with 2 MiB pages\n", th_case);
            th_case_skipped = 1;
            rmdir(dir);
            break;
        }
        snprintf(p, sizeof p, "%s/small-pages.bin", dir);
        CHECK(write_small(p, n) == 0, "write");
        double kept = weights_fraction(p, n, "0", 1);
        double fresh = weights_fraction(p, n, NULL, 1);
        CHECK(kept < 0.5, "INTACT_HUGE_REFRESH=0: %.2f of a file written in 4 KiB pieces in 2 MiB pages", kept);
        CHECK(fresh >= 0.5, "after the re-read only %.2f in 2 MiB pages", fresh);
        CHECK(weights_fraction(p, n, "0", 1) >= 0.5, "the re-read did not stay in the page cache");
        unlink(p);
        // A small file is mapped plainly: nothing measured, nothing re-read.
        CHECK(write_small(p, 1 << 20) == 0, "write");
        it_mmap m;
        intact_error err = {0, ""};
        CHECK(it_mmap_open_mode(p, IT_MMAP_WEIGHTS, &m, &err) == 0 && it_mmap_settle_weights(&m, p, &err) == 0 &&
              m.huge_fraction == -1, "%s", err.msg);
        it_mmap_close(&m);
        unlink(p);
        // The GGUF writer's output lands in 2 MiB folios: 48 tensors of 1 MiB, each write smaller
        // than a huge page, read back without any re-read.
        gguf_writer *w = gguf_writer_new();
        unsigned char *blob = calloc(1, (size_t)1 << 20);
        CHECK(w && blob, "oom");
        char name[48][16];
        for (int i = 0; w && blob && i < 48; i++) {
            int64_t ne[1] = {(int64_t)1 << 18};
            snprintf(name[i], sizeof name[i], "t%d", i);
            gguf_writer_add_tensor(w, name[i], 0 /* F32 */, 1, ne, blob, (size_t)1 << 20);
        }
        snprintf(p, sizeof p, "%s/written.gguf", dir);
        CHECK(w && gguf_writer_write_file(w, p, &err) == 0, "%s", err.msg);
        size_t gn = w ? gguf_writer_size(w) : 0;
        CHECK(weights_fraction(p, gn, "0", 0) >= 0.5, "the writer's output is not in 2 MiB folios");
        gguf_writer_free(w);
        free(blob);
        unlink(p);
        rmdir(dir);
    }
    TEST_CASE("no-mmap load: huge_fraction counts the copy's 2 MiB pages as the kernel does") {
        // The copy is advised MADV_HUGEPAGE from its 2 MiB-aligned start, which splits the mapping
        // there: the loader must measure that part, not the unaligned head before it. The size is no
        // multiple of 2 MiB, so the kernel does not align the reservation itself.
        char dir[] = "/tmp/intact-test-anon-XXXXXX";
        CHECK(mkdtemp(dir) != NULL, "mkdtemp");
        char p[256];
        const size_t n = ((size_t)40 << 20) + 8192;
        snprintf(p, sizeof p, "%s/copy.bin", dir);
        CHECK(write_small(p, n) == 0, "write");
        double before = rollup_anon_huge_bytes();
        it_mmap m;
        intact_error err = {0, ""};
        int rc = it_mmap_open_mode(p, IT_MMAP_COPY, &m, &err);
        CHECK(rc == 0, "%s", err.msg);
        if (rc == 0) {
            double kernel = rollup_anon_huge_bytes() - before;
            CHECK(m.huge_fraction >= 0 && m.huge_fraction <= 1, "fraction %g", m.huge_fraction);
            CHECK(fabs(m.huge_fraction * (double)n - kernel) <= (double)((size_t)2 << 20),
                  "loader says %.0f bytes in 2 MiB pages, the kernel %.0f", m.huge_fraction * (double)n, kernel);
            printf("  copy of 40 MiB: %.2f in 2 MiB pages\n", m.huge_fraction);
            it_mmap_close(&m);
        }
        unlink(p);
        rmdir(dir);
    }
    TEST_CASE("model load: a model cached in 4 KiB pages comes back in 2 MiB pages; huge_page_fraction") {
        char buf[1024], dir[] = "/tmp/intact-test-model-huge-XXXXXX", p[256];
        const char *path = th_shared("models/english-12m.bin", buf, sizeof buf);
        SKIP_UNLESS(path);
        CHECK(mkdtemp(dir) != NULL, "mkdtemp");
        // english-12m (51 MB, above the 32 MiB threshold) re-written in 4 KiB pieces.
        snprintf(p, sizeof p, "%s/english-12m.bin", dir);
        FILE *src = fopen(path, "rb");
        int out = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644), bad = !src || out < 0;
        char chunk[4096];
        for (size_t k; !bad && (k = fread(chunk, 1, sizeof chunk, src)) > 0;) bad = write(out, chunk, k) != (ssize_t)k;
        bad |= out < 0 || fsync(out) != 0;
        if (src) fclose(src);
        if (out >= 0) close(out);
        CHECK(!bad, "copy");
        intact_error err = {0, ""};
        intact_model_info in;
        for (int copy = 0; copy < 2; copy++) {
            intact_model *m = intact_model_load_ex(p, NULL, copy ? INTACT_LOAD_NO_MMAP : 0, &err);
            CHECK(m, "%s", err.msg);
            if (!m) break;
            intact_model_get_info(m, &in);
            CHECK(in.huge_page_fraction >= 0 && in.huge_page_fraction <= 1, "%s load: %g", copy ? "no-mmap" : "mapped",
                  in.huge_page_fraction);
            // The mapped load re-read the file wherever the kernel can map file huge pages at all.
            struct stat st;
            if (!copy && stat(path, &st) == 0 && kernel_gives_huge_pages(path, (size_t)st.st_size))
                CHECK(in.huge_page_fraction >= 0.5, "mapped model: %.2f in 2 MiB pages", in.huge_page_fraction);
            intact_model_free(m);
        }
        unlink(p);
        rmdir(dir);
        path = th_shared("models/stories260K.bin", buf, sizeof buf);   // below 32 MiB: not measured
        intact_model *m = intact_model_load(path, NULL, &err);
        CHECK(m, "%s", err.msg);
        if (m) intact_model_get_info(m, &in);
        CHECK(m && in.huge_page_fraction == -1, "small model: %g", m ? in.huge_page_fraction : 0.0);
        intact_model_free(m);
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
