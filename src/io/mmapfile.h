// A whole file in memory, read-only: mapped (it_mmap_open), mapped for streaming in 2 MiB pages
// (IT_MMAP_WEIGHTS: a model's weights), or read into anonymous memory advised for transparent huge
// pages (IT_MMAP_COPY: `--no-mmap`). docs/speed.md says why the page size matters to decode.
#ifndef IT_IO_MMAPFILE_H
#define IT_IO_MMAPFILE_H

#include <stddef.h>
#include "intact.h"

typedef struct it_mmap {
    const unsigned char *data;
    size_t size;
    void *base;      // what it_mmap_close unmaps: the file mapping, or the anonymous region
    size_t len;
    double huge_fraction;  // share of the bytes the kernel maps with 2 MiB pages; -1: not measured
} it_mmap;

enum it_mmap_mode {
    IT_MMAP_LAZY = 0,      // a plain mapping, pages read on first touch
    IT_MMAP_COPY = 1,      // read into 2 MiB-aligned anonymous memory advised MADV_HUGEPAGE
    IT_MMAP_WEIGHTS = 2,   // mapped, 2 MiB-aligned, advised, populated; the page cache re-read once
                           // in 2 MiB folios when it held the file in small pages (INTACT_HUGE_REFRESH)
};

int it_mmap_open(const char *path, it_mmap *out, intact_error *err);
int it_mmap_open_mode(const char *path, int mode, it_mmap *out, intact_error *err);
void it_mmap_close(it_mmap *m);

#endif
