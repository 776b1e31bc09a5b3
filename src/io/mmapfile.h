// A whole file in memory, read-only: mapped (it_mmap_open), mapped for streaming in 2 MiB pages
// (IT_MMAP_WEIGHTS: a model's weights), or read into anonymous memory advised for transparent huge
// pages (IT_MMAP_COPY: `--no-mmap`). docs/speed.md says why the page size matters to decode.
#ifndef IT_IO_MMAPFILE_H
#define IT_IO_MMAPFILE_H

#include <stddef.h>
#include <sys/types.h>
#include "intact.h"

typedef struct it_mmap {
    const unsigned char *data;
    size_t size;
    void *base;      // what it_mmap_close unmaps: the file mapping, or the anonymous region
    size_t len;
    double huge_fraction;  // share of the bytes the kernel maps with 2 MiB pages; -1: not measured
    dev_t dev;             // the file's identity, for it_mmap_settle_weights
    ino_t ino;
} it_mmap;

enum it_mmap_mode {
    IT_MMAP_LAZY = 0,      // a plain mapping, pages read on first touch
    IT_MMAP_COPY = 1,      // read into 2 MiB-aligned anonymous memory advised MADV_HUGEPAGE
    IT_MMAP_WEIGHTS = 2,   // mapped 2 MiB-aligned and advised MADV_HUGEPAGE; it_mmap_settle_weights
                           // once the file is validated
};

int it_mmap_open(const char *path, it_mmap *out, intact_error *err);
int it_mmap_open_mode(const char *path, int mode, it_mmap *out, intact_error *err);
// An IT_MMAP_WEIGHTS mapping of a validated file: populated, measured (huge_fraction), and re-read
// once in 2 MiB folios when the page cache held it in small pages (io/mmapfile.c says when). Fails
// only when the file cannot be mapped again, and then m is unusable: close it.
int it_mmap_settle_weights(it_mmap *m, const char *path, intact_error *err);
void it_mmap_close(it_mmap *m);

#endif
