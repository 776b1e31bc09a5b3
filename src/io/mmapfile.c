#include "io/mmapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22   // Linux 5.14; older kernels answer EINVAL and pages fault lazily
#endif

#define MM_HUGE ((size_t)2 << 20)
// Below this a file's page size does not matter and a load should not pay for populating it.
#define MM_WEIGHTS_MIN ((size_t)32 << 20)

static char *mm_align_up(char *p) { return (char *)(((uintptr_t)p + MM_HUGE - 1) & ~(uintptr_t)(MM_HUGE - 1)); }

// The share of the n bytes at the start of the mapping at vma that the kernel maps with 2 MiB pages
// (its FilePmdMapped + AnonHugePages in /proc/self/smaps); -1 when that cannot be read.
static double mm_huge_fraction(const void *vma, size_t n) {
    FILE *f = fopen("/proc/self/smaps", "re");
    if (!f) return -1;
    char line[512];
    int in = 0;
    double kb = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long long lo, hi;
        char dash;
        if (sscanf(line, "%llx%c%llx ", &lo, &dash, &hi) == 3 && dash == '-') {   // a mapping's header
            if (in) break;
            in = (uintptr_t)lo == (uintptr_t)vma;
            if (in) kb = 0;
            continue;
        }
        unsigned long long v;
        if (in && (sscanf(line, "FilePmdMapped: %llu kB", &v) == 1 || sscanf(line, "AnonHugePages: %llu kB", &v) == 1))
            kb += (double)v;
    }
    fclose(f);
    return kb < 0 ? -1 : kb * 1024.0 / (double)n > 1 ? 1 : kb * 1024.0 / (double)n;
}

// Maps fd read-only at a 2 MiB boundary (at `at` when given: MAP_FIXED over a reservation): file
// offset 0 aligned lets every 2 MiB of the file be one page-table entry when the page cache holds it
// in 2 MiB folios; faults read ahead in 2 MiB folios under the advice. NULL on failure (errno set).
static char *mm_map_aligned(int fd, size_t n, char *at) {
    if (at) {
        char *p = mmap(at, n, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
        if (p == MAP_FAILED) return NULL;
    } else {
        char *r = mmap(NULL, n + MM_HUGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (r == MAP_FAILED) return NULL;
        at = mm_align_up(r);
        if (mmap(at, n, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0) == MAP_FAILED) {
            int e = errno;
            munmap(r, n + MM_HUGE);
            errno = e;
            return NULL;
        }
        size_t page = (size_t)sysconf(_SC_PAGESIZE), end = (n + page - 1) / page * page;
        if (at > r) munmap(r, (size_t)(at - r));
        if (r + n + MM_HUGE > at + end) munmap(at + end, (size_t)(r + n + MM_HUGE - (at + end)));
    }
#ifdef MADV_HUGEPAGE
    (void)madvise(at, n, MADV_HUGEPAGE);   // a hint, as for read_anon
#endif
    return at;
}

// Transparent huge pages switched off ("[never]"): no re-read can give 2 MiB pages.
static int mm_thp_never(void) {
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");
    if (!f) return 1;
    char buf[128] = {0};
    size_t k = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    return k == 0 || strstr(buf, "[never]") != NULL;
}

// A model's weights. Decode streams them once per token, and the page cache may hold the file in
// 4 KiB pages (written in small pieces, read while memory was fragmented): then every 4 KiB costs a
// TLB entry and the stream runs 20-30% slower (docs/speed.md). So once the file has been validated,
// its mapping is populated, and when less than 90% of it came in 2 MiB pages the cached pages are
// written if dirty, dropped (POSIX_FADV_DONTNEED; pages another process maps stay) and faulted again
// at the same address under the huge-page advice, which reads the file in 2 MiB folios. That costs
// one read of the file from disk, once: later loads find the 2 MiB folios in the cache. Files under
// 32 MiB or over half the machine's memory are left to fault lazily. INTACT_HUGE_REFRESH=0 keeps
// whatever pages the cache holds.
int it_mmap_settle_weights(it_mmap *m, const char *path, intact_error *err) {
    long phys = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (!m->base || m->base != (void *)m->data || m->size < MM_WEIGHTS_MIN || phys <= 0 || page <= 0 ||
        (double)m->size > 0.5 * (double)phys * (double)page)
        return 0;
    char *p = m->base;
    size_t n = m->size;
    (void)madvise(p, n, MADV_POPULATE_READ);
    m->huge_fraction = mm_huge_fraction(p, n);
    const char *env = getenv("INTACT_HUGE_REFRESH");
    if (m->huge_fraction < 0 || m->huge_fraction >= 0.9 || (env && strcmp(env, "0") == 0) || mm_thp_never())
        return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    // Only the very file that was validated (not one renamed over it since) may be mapped again.
    int same = fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == m->dev && st.st_ino == m->ino && (size_t)st.st_size == n;
    if (same) {
        // The file's pages leave this process (an anonymous reservation keeps the address), so the
        // drop can take them.
        if (mmap(p, n, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) == MAP_FAILED) {
            close(fd);
            return 0;
        }
        (void)fdatasync(fd);   // dirty pages (a file just copied) cannot be dropped until written
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        if (!mm_map_aligned(fd, n, p)) {
            int e = errno;
            close(fd);
            return it_fail(err, INTACT_E_IO, "%s: mmap failed: %s", path, strerror(e));
        }
        (void)madvise(p, n, MADV_POPULATE_READ);
        m->huge_fraction = mm_huge_fraction(p, n);
    }
    if (fd >= 0) close(fd);
    return 0;
}

// Reads the n bytes of fd into anonymous memory aligned to 2 MiB and advised MADV_HUGEPAGE. Decode
// streams every weight once per token, and a file mapping streams whatever physical pages the page
// cache gave the file, 4 KiB each and possibly scattered: on a 2-vCPU Xeon VM one int4 TinyLlama
// file decoded at 31 tok/s mapped and 44 read this way (37-38 without the huge-page advice;
// docs/speed.md). Read-only afterwards, as a mapping is.
static int read_anon(int fd, const char *path, size_t n, it_mmap *out, intact_error *err) {
    size_t len = n + MM_HUGE;
    char *raw = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return it_fail(err, INTACT_E_NOMEM, "%s: cannot allocate %zu bytes: %s", path, n, strerror(errno));
    char *al = mm_align_up(raw);
#ifdef MADV_HUGEPAGE
    (void)madvise(al, n, MADV_HUGEPAGE);   // a hint: without THP the copy still works
#endif
    size_t done = 0;
    while (done < n) {
        size_t want = n - done < ((size_t)64 << 20) ? n - done : ((size_t)64 << 20);
        ssize_t k = pread(fd, al + done, want, (off_t)done);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            int e = k < 0 ? errno : 0;
            munmap(raw, len);
            return it_fail(err, INTACT_E_IO, "%s: read failed at byte %zu of %zu: %s", path, done, n,
                           e ? strerror(e) : "the file shrank while it was read");
        }
        done += (size_t)k;
    }
    mprotect(raw, len, PROT_READ);
    out->data = (const unsigned char *)al;
    out->size = n;
    out->base = raw;
    out->len = len;
    out->huge_fraction = mm_huge_fraction(al, n);   // al: madvise split the mapping there
    return 0;
}

int it_mmap_open(const char *path, it_mmap *out, intact_error *err) { return it_mmap_open_mode(path, IT_MMAP_LAZY, out, err); }

int it_mmap_open_mode(const char *path, int mode, it_mmap *out, intact_error *err) {
    out->data = NULL;
    out->size = 0;
    out->base = NULL;
    out->len = 0;
    out->huge_fraction = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return it_fail(err, INTACT_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return it_fail(err, INTACT_E_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        if (S_ISDIR(st.st_mode)) return it_fail(err, INTACT_E_IO, "%s: cannot open: %s", path, strerror(EISDIR));
        return it_fail(err, INTACT_E_IO, "%s: not a regular file (a device, pipe or socket cannot be mapped)", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return it_fail(err, INTACT_E_IO, "%s: file is empty", path);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return it_fail(err, INTACT_E_IO, "%s: file too large to map", path);
    }
    out->dev = st.st_dev;
    out->ino = st.st_ino;
    if (mode == IT_MMAP_COPY) {
        int rc = read_anon(fd, path, (size_t)st.st_size, out, err);
        close(fd);
        return rc;
    }
    if (mode == IT_MMAP_WEIGHTS && (size_t)st.st_size >= MM_WEIGHTS_MIN) {
        char *p = mm_map_aligned(fd, (size_t)st.st_size, NULL);
        int e = errno;
        close(fd);   // the mapping keeps its own reference to the file
        if (!p) return it_fail(err, INTACT_E_IO, "%s: mmap failed: %s", path, strerror(e));
        out->data = (const unsigned char *)p;
        out->size = (size_t)st.st_size;
        out->base = p;
        out->len = out->size;
        return 0;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd); // the mapping keeps its own reference to the file
    if (p == MAP_FAILED) return it_fail(err, INTACT_E_IO, "%s: mmap failed: %s", path, strerror(e));
    out->data = p;
    out->size = (size_t)st.st_size;
    out->base = p;
    out->len = out->size;
    return 0;
}

void it_mmap_close(it_mmap *m) {
    if (m->base) munmap(m->base, m->len);
    m->data = NULL;
    m->size = 0;
    m->base = NULL;
    m->len = 0;
    m->huge_fraction = -1;
}
