// GGUF v2/v3 reader (spec: ggml/docs/gguf.md). Parses and validates the whole header, metadata and
// tensor table up front; afterwards every accessor is a bounds-safe lookup into the mmapped file.
#ifndef IT_IO_GGUF_H
#define IT_IO_GGUF_H

#include <stddef.h>
#include <stdint.h>
#include "intact.h"
#include "io/mmapfile.h"

enum gguf_vtype {
    GGUF_T_U8 = 0, GGUF_T_I8 = 1, GGUF_T_U16 = 2, GGUF_T_I16 = 3, GGUF_T_U32 = 4, GGUF_T_I32 = 5,
    GGUF_T_F32 = 6, GGUF_T_BOOL = 7, GGUF_T_STRING = 8, GGUF_T_ARRAY = 9, GGUF_T_U64 = 10,
    GGUF_T_I64 = 11, GGUF_T_F64 = 12,
};

typedef struct gguf_file gguf_file;

typedef struct gguf_tensor_info {
    const char *name;      // NUL-terminated copy owned by the gguf_file
    uint32_t type;         // ggml type id (enum it_type for the ones we know)
    int n_dims;            // 1..4
    int64_t ne[4];         // unused dims are 1
    const void *data;      // inside the mapping, bounds-checked against the file size
    size_t nbytes;
} gguf_tensor_info;

// Opens, mmaps and validates. Rejects: bad magic/version, truncation anywhere, absurd counts,
// string lengths past the end, duplicate keys or tensor names, unknown value/tensor types,
// zero/negative dims, element-count overflow, misaligned or out-of-range tensor offsets,
// overlapping tensor data.
gguf_file *gguf_open(const char *path, intact_error *err);
// The same with a mapping mode (enum it_mmap_mode, io/mmapfile.h).
gguf_file *gguf_open_mode(const char *path, int mode, intact_error *err);
// The file's mapping (io/mmapfile.h); NULL for a gguf_open_buffer file.
it_mmap *gguf_mapping(gguf_file *f);
// Same, over a caller-owned buffer (fuzzing, tests). The buffer must outlive the gguf_file.
gguf_file *gguf_open_buffer(const void *data, size_t size, intact_error *err);
void gguf_close(gguf_file *f);

uint32_t gguf_version(const gguf_file *f);
int64_t gguf_n_kv(const gguf_file *f);
const char *gguf_key_name(const gguf_file *f, int64_t i);
int64_t gguf_find_key(const gguf_file *f, const char *key);   // -1 if absent
int gguf_key_type(const gguf_file *f, int64_t i);             // enum gguf_vtype

// Typed getters. Return 0 on success, -1 with a message naming the key if the key is missing,
// has the wrong type, or (integers) does not fit. Integer getters accept any integer width.
int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out, intact_error *err);
int gguf_get_f32(const gguf_file *f, const char *key, float *out, intact_error *err); // f32 or f64
// NUL-terminated copy owned by f; *len (optional) gets the byte length.
const char *gguf_get_str(const gguf_file *f, const char *key, size_t *len, intact_error *err);
// Additions: exact signed/double/bool reads (gguf_get_i64 accepts any integer that fits).
int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out, intact_error *err);
int gguf_get_f64(const gguf_file *f, const char *key, double *out, intact_error *err); // f32 or f64
int gguf_get_bool(const gguf_file *f, const char *key, int *out, intact_error *err);

// Arrays: element type (enum gguf_vtype) and count. Numeric elements are read by index with
// conversion; string elements by index (pointer into the mapping, NOT NUL-terminated).
int gguf_get_arr(const gguf_file *f, const char *key, int *elem_type, uint64_t *n, intact_error *err);
int gguf_arr_f32(const gguf_file *f, const char *key, uint64_t i, float *out);    // numeric -> float
int gguf_arr_i64(const gguf_file *f, const char *key, uint64_t i, int64_t *out);  // integer -> i64
const char *gguf_arr_str(const gguf_file *f, const char *key, uint64_t i, size_t *len);

// general.alignment (default 32) and the file offset where the tensor data section starts.
uint32_t gguf_alignment(const gguf_file *f);
size_t gguf_data_offset(const gguf_file *f);

int64_t gguf_n_tensors(const gguf_file *f);
const gguf_tensor_info *gguf_tensor(const gguf_file *f, int64_t i);
const gguf_tensor_info *gguf_find_tensor(const gguf_file *f, const char *name);  // NULL if absent

#endif
