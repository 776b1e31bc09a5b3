// Reader for the golden files in tests/goldens (format: tests/goldens/README.md). Tests only, but every
// length and count is bounds-checked, so a truncated or corrupt file gives NULL, never a bad read.
//
//   golden *g = golden_load("tests/goldens/stories260K_fwd.gold");
//   int nd; int64_t dims[GOLDEN_MAX_DIMS];
//   const float *x = golden_f32(g, "logits", &nd, dims);   // NULL if absent or not f32
//   golden_free(g);
#ifndef IT_TESTS_GOLDEN_H
#define IT_TESTS_GOLDEN_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GOLDEN_MAX_DIMS 8
#define GOLDEN_MAX_RECORDS 4096
#define GOLDEN_MAX_NAME 1024
#define GOLDEN_MAX_BYTES ((uint64_t)1 << 32)

enum { GOLDEN_F32 = 0, GOLDEN_I32 = 1, GOLDEN_U8 = 2 };

typedef struct golden_record {
    char *name;                        // NUL-terminated copy
    uint32_t dtype;                    // GOLDEN_F32 / GOLDEN_I32 / GOLDEN_U8
    int n_dims;
    int64_t dims[GOLDEN_MAX_DIMS];
    size_t count;                      // product of dims (1 for n_dims == 0)
    void *data;                        // own, suitably aligned copy (at least 1 byte allocated)
} golden_record;

typedef struct golden {
    int n_records;
    golden_record *rec;
} golden;

static inline void golden_free(golden *g) {
    if (!g) return;
    for (int i = 0; i < g->n_records; i++) { free(g->rec[i].name); free(g->rec[i].data); }
    free(g->rec);
    free(g);
}

static inline int golden__u32(const unsigned char *buf, size_t len, size_t *off, uint32_t *v) {
    if (*off > len || len - *off < 4) return -1;
    const unsigned char *p = buf + *off;
    *v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    *off += 4;
    return 0;
}

// Parses an in-memory golden image; NULL on any inconsistency.
static inline golden *golden_parse(const unsigned char *buf, size_t len) {
    size_t off = 0;
    uint32_t ver, n;
    if (len < 12 || memcmp(buf, "ITGD", 4) != 0) return NULL;
    off = 4;
    if (golden__u32(buf, len, &off, &ver) || ver != 1) return NULL;
    if (golden__u32(buf, len, &off, &n) || n > GOLDEN_MAX_RECORDS) return NULL;
    golden *g = (golden *)calloc(1, sizeof *g);
    if (!g) return NULL;
    g->rec = (golden_record *)calloc(n ? n : 1, sizeof *g->rec);
    if (!g->rec) { free(g); return NULL; }
    for (uint32_t r = 0; r < n; r++) {
        golden_record *rec = &g->rec[r];
        uint32_t name_len, dtype, nd;
        if (golden__u32(buf, len, &off, &name_len) || name_len > GOLDEN_MAX_NAME ||
            len - off < name_len) goto bad;
        rec->name = (char *)malloc((size_t)name_len + 1);
        if (!rec->name) goto bad;
        g->n_records = (int)r + 1;  // from here on golden_free releases this record
        memcpy(rec->name, buf + off, name_len);
        rec->name[name_len] = '\0';
        if (memchr(rec->name, '\0', name_len)) goto bad;
        off += name_len;
        if (golden__u32(buf, len, &off, &dtype) || dtype > GOLDEN_U8) goto bad;
        if (golden__u32(buf, len, &off, &nd) || nd > GOLDEN_MAX_DIMS) goto bad;
        rec->dtype = dtype;
        rec->n_dims = (int)nd;
        uint64_t count = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint32_t v;
            if (golden__u32(buf, len, &off, &v)) goto bad;
            rec->dims[d] = v;
            if (v != 0 && count > GOLDEN_MAX_BYTES / v) goto bad;
            count *= v;
        }
        uint64_t esize = dtype == GOLDEN_U8 ? 1 : 4;
        if (count > GOLDEN_MAX_BYTES / esize) goto bad;
        uint64_t nbytes = count * esize;
        if (nbytes > (uint64_t)(len - off)) goto bad;
        rec->count = (size_t)count;
        rec->data = malloc(nbytes ? (size_t)nbytes : 1);
        if (!rec->data) goto bad;
        // The format is little-endian; decode element-wise so big-endian hosts work too.
        if (esize == 1) {
            memcpy(rec->data, buf + off, (size_t)nbytes);
        } else {
            for (size_t i = 0; i < (size_t)count; i++) {
                size_t o = off + 4 * i;
                uint32_t v = 0;
                golden__u32(buf, len, &o, &v);
                if (dtype == GOLDEN_F32) { float fv; memcpy(&fv, &v, 4); ((float *)rec->data)[i] = fv; }
                else { int32_t iv; memcpy(&iv, &v, 4); ((int32_t *)rec->data)[i] = iv; }
            }
        }
        off += (size_t)nbytes;
    }
    if (off != len) goto bad;   // trailing garbage means the writer and reader disagree
    g->n_records = (int)n;
    return g;
bad:
    golden_free(g);
    return NULL;
}

static inline golden *golden_load(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    golden *g = NULL;
    unsigned char *buf = NULL;
    if (fseek(f, 0, SEEK_END) != 0) goto out;
    long sz = ftell(f);
    if (sz < 0 || (uint64_t)sz > GOLDEN_MAX_BYTES || fseek(f, 0, SEEK_SET) != 0) goto out;
    buf = (unsigned char *)malloc(sz ? (size_t)sz : 1);
    if (!buf) goto out;
    if (fread(buf, 1, (size_t)sz, f) != (size_t)sz) goto out;
    g = golden_parse(buf, (size_t)sz);
out:
    free(buf);
    fclose(f);
    return g;
}

static inline const golden_record *golden_record_get(const golden *g, const char *name) {
    if (!g || !name) return NULL;
    for (int i = 0; i < g->n_records; i++)
        if (strcmp(g->rec[i].name, name) == 0) return &g->rec[i];
    return NULL;
}

// Data of the record `name` (any dtype), or NULL. n_dims / dims (GOLDEN_MAX_DIMS entries) may be NULL.
static inline const void *golden_find(const golden *g, const char *name, int *n_dims, int64_t *dims) {
    const golden_record *r = golden_record_get(g, name);
    if (!r) return NULL;
    if (n_dims) *n_dims = r->n_dims;
    if (dims) for (int d = 0; d < r->n_dims; d++) dims[d] = r->dims[d];
    return r->data;
}

static inline const void *golden__typed(const golden *g, const char *name, uint32_t dtype,
                                        int *n_dims, int64_t *dims) {
    const golden_record *r = golden_record_get(g, name);
    if (!r || r->dtype != dtype) return NULL;
    return golden_find(g, name, n_dims, dims);
}
static inline const float *golden_f32(const golden *g, const char *name, int *n_dims, int64_t *dims) {
    return (const float *)golden__typed(g, name, GOLDEN_F32, n_dims, dims);
}
static inline const int32_t *golden_i32(const golden *g, const char *name, int *n_dims, int64_t *dims) {
    return (const int32_t *)golden__typed(g, name, GOLDEN_I32, n_dims, dims);
}
static inline const uint8_t *golden_u8(const golden *g, const char *name, int *n_dims, int64_t *dims) {
    return (const uint8_t *)golden__typed(g, name, GOLDEN_U8, n_dims, dims);
}
// Element count of a record (0 if absent).
static inline size_t golden_count(const golden *g, const char *name) {
    const golden_record *r = golden_record_get(g, name);
    return r ? r->count : 0;
}

#endif
