// Small GGUF v3 writer (quantize output, tests, fuzz seeds). Metadata is serialized as it is added;
// tensor data is NOT copied: the pointers given to gguf_writer_add_tensor must stay valid until the
// file is written. Adders return 0 or -1; the first failure is remembered and reported by the
// write functions, so callers may add everything and check once at the end.
#ifndef IT_IO_GGUF_WRITE_H
#define IT_IO_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>
#include "intact.h"

typedef struct gguf_writer gguf_writer;

gguf_writer *gguf_writer_new(void);   // NULL when out of memory
void gguf_writer_free(gguf_writer *w);

// Scalars. Keys must be unique, non-empty and NUL-free. Adding "general.alignment" (u32, a power of
// two) sets the alignment of the tensor data (default 32).
int gguf_writer_add_u8(gguf_writer *w, const char *key, uint8_t v);
int gguf_writer_add_i8(gguf_writer *w, const char *key, int8_t v);
int gguf_writer_add_u16(gguf_writer *w, const char *key, uint16_t v);
int gguf_writer_add_i16(gguf_writer *w, const char *key, int16_t v);
int gguf_writer_add_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_add_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_writer_add_u64(gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_add_i64(gguf_writer *w, const char *key, int64_t v);
int gguf_writer_add_f32(gguf_writer *w, const char *key, float v);
int gguf_writer_add_f64(gguf_writer *w, const char *key, double v);
int gguf_writer_add_bool(gguf_writer *w, const char *key, int v);
int gguf_writer_add_str(gguf_writer *w, const char *key, const char *s, size_t len);

// Arrays. lens may be NULL for NUL-terminated strings. gguf_writer_add_arr writes n elements of any
// scalar type (enum gguf_vtype, not string/array) from host-order memory.
int gguf_writer_add_arr_str(gguf_writer *w, const char *key, const char *const *strs, const size_t *lens,
                            uint64_t n);
int gguf_writer_add_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n);
int gguf_writer_add_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n);
int gguf_writer_add_arr(gguf_writer *w, const char *key, int elem_type, const void *v, uint64_t n);

// ne[0] is the row length; nbytes must equal the size implied by type and ne.
int gguf_writer_add_tensor(gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne,
                           const void *data, size_t nbytes);

// Total size of the file that would be written now.
size_t gguf_writer_size(const gguf_writer *w);

// Writes PATH.tmp.XXXXXX, fsyncs and renames it over path, so an interrupted write never leaves a
// complete-looking file behind.
int gguf_writer_write_file(const gguf_writer *w, const char *path, intact_error *err);
// Writes into a malloc'ed buffer the caller frees.
int gguf_writer_write_mem(const gguf_writer *w, void **out, size_t *size, intact_error *err);

#endif
