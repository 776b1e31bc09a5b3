#include "io/mmapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

// Reads the n bytes of fd into anonymous memory aligned to 2 MiB and advised MADV_HUGEPAGE. Decode
// streams every weight once per token, and a file mapping streams whatever physical pages the page
// cache gave the file, 4 KiB each and possibly scattered: on a 2-vCPU Xeon VM one int4 TinyLlama
// file decoded at 31 tok/s mapped and 44 read this way (37-38 without the huge-page advice;
// docs/speed.md). Read-only afterwards, as a mapping is.
static int read_anon(int fd, const char *path, size_t n, it_mmap *out, intact_error *err) {
    const size_t huge = (size_t)2 << 20;
    size_t len = n + huge;
    char *raw = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return it_fail(err, INTACT_E_NOMEM, "%s: cannot allocate %zu bytes: %s", path, n, strerror(errno));
    char *al = (char *)(((uintptr_t)raw + huge - 1) & ~(uintptr_t)(huge - 1));
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
    return 0;
}

int it_mmap_open(const char *path, it_mmap *out, intact_error *err) { return it_mmap_open_mode(path, 0, out, err); }

int it_mmap_open_mode(const char *path, int copy, it_mmap *out, intact_error *err) {
    out->data = NULL;
    out->size = 0;
    out->base = NULL;
    out->len = 0;
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
    if (copy) {
        int rc = read_anon(fd, path, (size_t)st.st_size, out, err);
        close(fd);
        return rc;
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
}
