#ifndef IT_IO_GGUF_COPY_H
#define IT_IO_GGUF_COPY_H

#include "io/gguf.h"
#include "io/gguf_write.h"

// Adds metadata entry i of f to w (same key, type and value). 0 or -1 (the writer keeps the reason).
int gguf_copy_kv(const gguf_file *f, int64_t i, gguf_writer *w);

#endif
