// A whole file in memory, read-only: mapped (it_mmap_open), or read into anonymous memory advised
// for transparent huge pages (it_mmap_open_mode with copy = 1: `--no-mmap`, docs/speed.md).
#ifndef IT_IO_MMAPFILE_H
#define IT_IO_MMAPFILE_H

#include <stddef.h>
#include "intact.h"

typedef struct it_mmap {
    const unsigned char *data;
    size_t size;
    void *base;      // what it_mmap_close unmaps: the file mapping, or the anonymous region
    size_t len;
} it_mmap;

int it_mmap_open(const char *path, it_mmap *out, intact_error *err);
int it_mmap_open_mode(const char *path, int copy, it_mmap *out, intact_error *err);
void it_mmap_close(it_mmap *m);

#endif
