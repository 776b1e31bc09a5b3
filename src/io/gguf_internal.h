// Private layout of a parsed GGUF file, shared by the parser (gguf.c) and the getters (gguf_get.c).
#ifndef IT_IO_GGUF_INTERNAL_H
#define IT_IO_GGUF_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "io/gguf.h"
#include "io/mmapfile.h"

#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_MAX_KV 1000000
#define GGUF_MAX_TENSORS 100000
#define GGUF_MAX_STRING (64u << 20)
#define GGUF_MAX_ARRAY (1ull << 28)
#define GGUF_MAX_KEY_LEN 65535u    // spec: keys are at most 2^16-1 bytes
#define GGUF_MAX_NAME_LEN 64u      // spec: tensor names are at most 64 bytes

typedef struct gguf_kv {
    char *key;                      // NUL-terminated copy (keys with NUL bytes are rejected)
    int type;                       // enum gguf_vtype
    int elem_type;                  // arrays: element type
    uint64_t n;                     // arrays: element count
    union { uint64_t u; int64_t i; double f; } v;   // scalars: u for unsigned/bool, i signed, f float
    const unsigned char *raw;       // string bytes or first array element, inside the file
    size_t len;                     // string byte length
    char *str;                      // NUL-terminated copy of a string value
    const unsigned char **strs;     // string arrays: bytes of element i; its u64 length precedes it
} gguf_kv;

struct gguf_file {
    it_mmap map;                    // owned (non-NULL) only when opened from a path
    const unsigned char *data;
    size_t size;
    char *label;                    // path or "gguf", prefixes every message
    uint32_t version, alignment;
    size_t data_offset;
    int64_t n_kv, n_tensors;
    gguf_kv *kv;
    gguf_kv **kv_by_name;           // sorted by key for binary search and duplicate detection
    gguf_tensor_info *tensors;
    gguf_tensor_info **t_by_name;   // sorted by name
};

static inline uint16_t gguf_le16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t gguf_le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t gguf_le64(const unsigned char *p) {
    return (uint64_t)gguf_le32(p) | (uint64_t)gguf_le32(p + 4) << 32;
}

// Size in bytes of a scalar value type; 0 for string, array and unknown types.
size_t gguf_vtype_size(int type);
const char *gguf_vtype_name(int type);
int gguf_vtype_is_int(int type);
int gguf_vtype_is_signed(int type);

const gguf_kv *gguf_kv_find(const gguf_file *f, const char *key);

#endif
