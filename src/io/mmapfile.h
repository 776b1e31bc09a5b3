// Read-only memory map of a whole file.
#ifndef IT_IO_MMAPFILE_H
#define IT_IO_MMAPFILE_H

#include <stddef.h>
#include "intact.h"

typedef struct it_mmap {
    const unsigned char *data;
    size_t size;
} it_mmap;

int it_mmap_open(const char *path, it_mmap *out, intact_error *err);
void it_mmap_close(it_mmap *m);

#endif
