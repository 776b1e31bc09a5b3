// GGUF parser: validates everything up front so that the getters never have to distrust the file.
// Every count and length read from the file is checked against the bytes that remain before
// anything is allocated for it, so a hostile header cannot make us allocate more than a small
// multiple of the file size.
#include "io/gguf_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/error.h"
#include "formats/formats.h"

// Smallest possible encodings, used to bound counts by the bytes left: a key/value pair is a u64
// key length, a u32 type and at least one value byte; a tensor info has a u64 name length, u32
// n_dims, at least one u64 dim, a u32 type and a u64 offset.
#define GGUF_MIN_KV_BYTES 13u
#define GGUF_MIN_TENSOR_BYTES 32u

typedef struct gguf_rd {
    const unsigned char *p;
    size_t size, pos;
    const char *label;
    intact_error *err;
    const char *sect;       // "header", "metadata key", "tensor info"
    int64_t idx;
    const char *name;       // name of the current entry once read, else NULL
} gguf_rd;

// Copies a name from the file into a message, replacing control bytes so the message stays one
// line, and cutting it short so a 64 KiB key cannot crowd out the rest.
static const char *gguf_printable(const char *name, char *buf, size_t cap) {
    size_t n = 0, i = 0;
    for (; name[i] && n + 4 < cap && i < 80; i++) {
        unsigned char c = (unsigned char)name[i];
        buf[n++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (name[i]) { memcpy(buf + n, "...", 3); n += 3; }
    buf[n] = 0;
    return buf;
}

static const char *gguf_where(const gguf_rd *r, char *buf, size_t cap) {
    if (r->idx < 0) {
        snprintf(buf, cap, "%s", r->sect);
    } else if (r->name) {
        char nm[96];
        snprintf(buf, cap, "%s %lld ('%s')", r->sect, (long long)r->idx,
                 gguf_printable(r->name, nm, sizeof nm));
    } else {
        snprintf(buf, cap, "%s %lld", r->sect, (long long)r->idx);
    }
    return buf;
}

__attribute__((format(printf, 3, 4)))
static int gguf_fail(const gguf_rd *r, int code, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return it_fail(r->err, code, "%s: %s", r->label, msg);
}

static int gguf_trunc(const gguf_rd *r, const char *what) {
    char w[160];
    return gguf_fail(r, INTACT_E_FORMAT, "truncated in %s%s%s (file size %zu)", gguf_where(r, w, sizeof w),
                     what ? ": " : "", what ? what : "", r->size);
}

static size_t rd_left(const gguf_rd *r) { return r->size - r->pos; }

static int rd_bytes(gguf_rd *r, size_t n, const unsigned char **out, const char *what) {
    if (n > rd_left(r)) return gguf_trunc(r, what);
    *out = r->p + r->pos;
    r->pos += n;
    return 0;
}

static int rd_u32(gguf_rd *r, uint32_t *v, const char *what) {
    const unsigned char *b = NULL;
    if (rd_bytes(r, 4, &b, what)) return -1;
    *v = gguf_le32(b);
    return 0;
}

static int rd_u64(gguf_rd *r, uint64_t *v, const char *what) {
    const unsigned char *b = NULL;
    if (rd_bytes(r, 8, &b, what)) return -1;
    *v = gguf_le64(b);
    return 0;
}

// Reads a GGUF string (u64 length + bytes) without copying it.
static int rd_str(gguf_rd *r, const unsigned char **s, size_t *len, const char *what) {
    uint64_t n = 0;
    if (rd_u64(r, &n, what)) return -1;
    if (n > rd_left(r)) {
        char w[160];
        return gguf_fail(r, INTACT_E_FORMAT, "truncated in %s: %s length %llu runs past the end of the file "
                         "(%zu bytes left)", gguf_where(r, w, sizeof w), what, (unsigned long long)n, rd_left(r));
    }
    if (n > GGUF_MAX_STRING) {
        char w[160];
        return gguf_fail(r, INTACT_E_LIMIT, "%s: %s length %llu exceeds the limit of %u bytes",
                         gguf_where(r, w, sizeof w), what, (unsigned long long)n, GGUF_MAX_STRING);
    }
    *s = r->p + r->pos;
    *len = (size_t)n;
    r->pos += (size_t)n;
    return 0;
}

static char *gguf_strdup(const unsigned char *s, size_t n) {
    char *c = malloc(n + 1);
    if (!c) return NULL;
    memcpy(c, s, n);
    c[n] = 0;
    return c;
}

// Reads a key or tensor name: bounded length, no NUL bytes (lookups use C strings), own copy.
static int rd_name(gguf_rd *r, size_t max_len, const char *what, char **out) {
    const unsigned char *s = NULL;
    size_t n = 0;
    char w[160];
    if (rd_str(r, &s, &n, what)) return -1;
    if (n > max_len)
        return gguf_fail(r, INTACT_E_FORMAT, "%s: %s is %zu bytes long, the GGUF limit is %zu",
                         gguf_where(r, w, sizeof w), what, n, max_len);
    if (memchr(s, 0, n))
        return gguf_fail(r, INTACT_E_FORMAT, "%s: %s contains a NUL byte", gguf_where(r, w, sizeof w), what);
    if (!(*out = gguf_strdup(s, n))) return gguf_fail(r, INTACT_E_NOMEM, "out of memory");
    r->name = *out;
    return 0;
}

// ------------------------------------------------------------------------------------ metadata

static int gguf_read_scalar(gguf_rd *r, gguf_kv *kv) {
    const unsigned char *b = NULL;
    size_t sz = gguf_vtype_size(kv->type);
    if (rd_bytes(r, sz, &b, "value")) return -1;
    switch (kv->type) {
    case GGUF_T_U8: kv->v.u = b[0]; break;
    case GGUF_T_I8: kv->v.i = (int8_t)b[0]; break;
    case GGUF_T_U16: kv->v.u = gguf_le16(b); break;
    case GGUF_T_I16: kv->v.i = (int16_t)gguf_le16(b); break;
    case GGUF_T_U32: kv->v.u = gguf_le32(b); break;
    case GGUF_T_I32: kv->v.i = (int32_t)gguf_le32(b); break;
    case GGUF_T_U64: kv->v.u = gguf_le64(b); break;
    case GGUF_T_I64: kv->v.i = (int64_t)gguf_le64(b); break;
    case GGUF_T_F32: { uint32_t u = gguf_le32(b); float x; memcpy(&x, &u, 4); kv->v.f = x; break; }
    case GGUF_T_F64: { uint64_t u = gguf_le64(b); memcpy(&kv->v.f, &u, 8); break; }
    case GGUF_T_BOOL:
        if (b[0] > 1) {
            char w[160];
            return gguf_fail(r, INTACT_E_FORMAT, "%s: bool value %u is not 0 or 1", gguf_where(r, w, sizeof w), b[0]);
        }
        kv->v.u = b[0];
        break;
    }
    return 0;
}

// String arrays get an index of element pointers so gguf_arr_str is O(1); the count has already
// been bounded by the bytes left (each element needs at least its 8-byte length).
static int gguf_read_str_array(gguf_rd *r, gguf_kv *kv) {
    kv->strs = malloc((size_t)(kv->n ? kv->n : 1) * sizeof *kv->strs);
    if (!kv->strs) return gguf_fail(r, INTACT_E_NOMEM, "out of memory");
    for (uint64_t j = 0; j < kv->n; j++) {
        size_t left = rd_left(r);
        uint64_t len = left >= 8 ? gguf_le64(r->p + r->pos) : 0;
        if (left < 8 || len > left - 8 || len > GGUF_MAX_STRING) {
            // Slow path only on failure: rd_str fails the same way and words the message.
            const unsigned char *s = NULL;
            size_t n = 0;
            char what[48];
            snprintf(what, sizeof what, "string element %llu", (unsigned long long)j);
            if (rd_str(r, &s, &n, what)) return -1;
            return gguf_fail(r, INTACT_E_FORMAT, "internal error reading string element %llu", (unsigned long long)j);
        }
        kv->strs[j] = r->p + r->pos + 8;
        r->pos += 8 + (size_t)len;
    }
    return 0;
}

static int gguf_read_array(gguf_rd *r, gguf_kv *kv) {
    uint32_t et = 0;
    uint64_t n = 0;
    char w[160];
    if (rd_u32(r, &et, "array element type") || rd_u64(r, &n, "array count")) return -1;
    if (et == GGUF_T_ARRAY)
        return gguf_fail(r, INTACT_E_UNSUPPORTED, "%s: nested arrays are not supported", gguf_where(r, w, sizeof w));
    if (et > GGUF_T_F64)
        return gguf_fail(r, INTACT_E_UNSUPPORTED, "%s: unknown array element type %u",
                         gguf_where(r, w, sizeof w), et);
    size_t esz = et == GGUF_T_STRING ? 8 : gguf_vtype_size((int)et);
    if (n > rd_left(r) / esz)
        return gguf_fail(r, INTACT_E_FORMAT, "truncated in %s: array count %llu of %s cannot fit in the %zu "
                         "bytes left", gguf_where(r, w, sizeof w), (unsigned long long)n,
                         gguf_vtype_name((int)et), rd_left(r));
    if (n > GGUF_MAX_ARRAY)
        return gguf_fail(r, INTACT_E_LIMIT, "%s: array count %llu exceeds the limit of %llu",
                         gguf_where(r, w, sizeof w), (unsigned long long)n, (unsigned long long)GGUF_MAX_ARRAY);
    kv->elem_type = (int)et;
    kv->n = n;
    kv->raw = r->p + r->pos;
    if (et == GGUF_T_STRING) return gguf_read_str_array(r, kv);
    r->pos += (size_t)n * esz;
    if (et == GGUF_T_BOOL) {
        for (uint64_t j = 0; j < n; j++)
            if (kv->raw[j] > 1)
                return gguf_fail(r, INTACT_E_FORMAT, "%s: bool element %llu has value %u (not 0 or 1)",
                                 gguf_where(r, w, sizeof w), (unsigned long long)j, kv->raw[j]);
    }
    return 0;
}

static int gguf_check_alignment(gguf_rd *r, const gguf_kv *kv, uint32_t *alignment) {
    char w[160];
    if (kv->type != GGUF_T_U32)
        return gguf_fail(r, INTACT_E_FORMAT, "%s: general.alignment must be of type u32, not %s",
                         gguf_where(r, w, sizeof w), gguf_vtype_name(kv->type));
    uint64_t a = kv->v.u;
    if (a == 0 || (a & (a - 1)))
        return gguf_fail(r, INTACT_E_FORMAT, "%s: general.alignment %llu is not a nonzero power of two",
                         gguf_where(r, w, sizeof w), (unsigned long long)a);
    *alignment = (uint32_t)a;
    return 0;
}

static int gguf_read_kv(gguf_rd *r, gguf_kv *kv, uint32_t *alignment) {
    uint32_t type = 0;
    if (rd_name(r, GGUF_MAX_KEY_LEN, "key", &kv->key) || rd_u32(r, &type, "value type")) return -1;
    if (type > GGUF_T_F64) {
        char w[160];
        return gguf_fail(r, INTACT_E_UNSUPPORTED, "%s: unknown value type %u", gguf_where(r, w, sizeof w), type);
    }
    kv->type = (int)type;
    if (type == GGUF_T_ARRAY) {
        if (gguf_read_array(r, kv)) return -1;
    } else if (type == GGUF_T_STRING) {
        if (rd_str(r, &kv->raw, &kv->len, "string value")) return -1;
        if (!(kv->str = gguf_strdup(kv->raw, kv->len))) return gguf_fail(r, INTACT_E_NOMEM, "out of memory");
    } else if (gguf_read_scalar(r, kv)) {
        return -1;
    }
    if (strcmp(kv->key, "general.alignment") == 0) return gguf_check_alignment(r, kv, alignment);
    return 0;
}

// ------------------------------------------------------------------------------------ tensors

static int gguf_read_dims(gguf_rd *r, gguf_tensor_info *t) {
    uint32_t nd = 0;
    char w[160];
    if (rd_u32(r, &nd, "n_dims")) return -1;
    if (nd < 1 || nd > 4)
        return gguf_fail(r, INTACT_E_FORMAT, "%s: n_dims %u is not in 1..4", gguf_where(r, w, sizeof w), nd);
    t->n_dims = (int)nd;
    uint64_t total = 1;
    for (int d = 0; d < 4; d++) {
        uint64_t v = 1;
        if (d < t->n_dims && rd_u64(r, &v, "dims")) return -1;
        if (v < 1 || v > (uint64_t)INT64_MAX)
            return gguf_fail(r, INTACT_E_FORMAT, "%s: dimension %d is %llu (must be 1..2^63-1)",
                             gguf_where(r, w, sizeof w), d, (unsigned long long)v);
        if (v > (uint64_t)INT64_MAX / total)
            return gguf_fail(r, INTACT_E_FORMAT, "%s: element count overflows (dims product > 2^63)",
                             gguf_where(r, w, sizeof w));
        total *= v;
        t->ne[d] = (int64_t)v;
    }
    return 0;
}

// Checks the type and computes the byte size; the data pointer is bound later, once the start
// of the data section is known.
static int gguf_read_tensor(gguf_rd *r, gguf_tensor_info *t, uint64_t *offset) {
    char w[160], nm[96], *name = NULL;
    int rc = rd_name(r, GGUF_MAX_NAME_LEN, "tensor name", &name);
    t->name = name;
    if (rc || gguf_read_dims(r, t) || rd_u32(r, &t->type, "type") || rd_u64(r, offset, "offset")) return -1;
    const fmt_traits *tr = fmt_get((int)t->type);
    if (!tr && fmt_ggml_name(t->type))
        return gguf_fail(r, INTACT_E_UNSUPPORTED, "tensor '%s' has unknown type %u: ggml %s is not "
                         "supported (f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_K ... q8_K are)", gguf_printable(t->name, nm, sizeof nm),
                         t->type, fmt_ggml_name(t->type));
    if (!tr)
        return gguf_fail(r, INTACT_E_UNSUPPORTED, "tensor '%s' has unknown type %u",
                         gguf_printable(t->name, nm, sizeof nm), t->type);
    size_t row = fmt_row_bytes((int)t->type, t->ne[0]);
    if (!row && t->ne[0] % tr->block_size)
        return gguf_fail(r, INTACT_E_FORMAT, "%s: row length %lld is not a multiple of the %s block size %d",
                         gguf_where(r, w, sizeof w), (long long)t->ne[0], tr->name, tr->block_size);
    size_t nb = row;
    if (!row || it_mul_size(nb, (size_t)t->ne[1], &nb) || it_mul_size(nb, (size_t)t->ne[2], &nb) ||
        it_mul_size(nb, (size_t)t->ne[3], &nb))
        return gguf_fail(r, INTACT_E_FORMAT, "%s: byte size overflows", gguf_where(r, w, sizeof w));
    t->nbytes = nb;
    return 0;
}

static int gguf_bind_tensor(gguf_rd *r, gguf_file *f, gguf_tensor_info *t, uint64_t off) {
    char nm[96];
    const char *name = gguf_printable(t->name, nm, sizeof nm);
    if (off % f->alignment)
        return gguf_fail(r, INTACT_E_FORMAT, "tensor '%s' offset %llu is not a multiple of the alignment %u",
                         name, (unsigned long long)off, f->alignment);
    size_t start, end;
    if (off > SIZE_MAX || it_add_size(f->data_offset, (size_t)off, &start) || it_add_size(start, t->nbytes, &end) ||
        end > f->size)
        return gguf_fail(r, INTACT_E_FORMAT, "tensor '%s' data [%llu, %llu+%zu) lies past the end of the file "
                         "(size %zu)", name, (unsigned long long)f->data_offset + off,
                         (unsigned long long)f->data_offset + off, t->nbytes, f->size);
    t->data = f->data + start;
    return 0;
}

// ------------------------------------------------------------------------------------ checks

static int gguf_cmp_kv(const void *a, const void *b) {
    return strcmp((*(gguf_kv *const *)a)->key, (*(gguf_kv *const *)b)->key);
}
static int gguf_cmp_tname(const void *a, const void *b) {
    return strcmp((*(gguf_tensor_info *const *)a)->name, (*(gguf_tensor_info *const *)b)->name);
}
static int gguf_cmp_tdata(const void *a, const void *b) {
    const unsigned char *x = (*(gguf_tensor_info *const *)a)->data, *y = (*(gguf_tensor_info *const *)b)->data;
    return x < y ? -1 : x > y;
}

static int gguf_index(gguf_rd *r, gguf_file *f) {
    char nm[96];
    f->kv_by_name = malloc((size_t)(f->n_kv ? f->n_kv : 1) * sizeof *f->kv_by_name);
    f->t_by_name = malloc((size_t)(f->n_tensors ? f->n_tensors : 1) * sizeof *f->t_by_name);
    if (!f->kv_by_name || !f->t_by_name) return gguf_fail(r, INTACT_E_NOMEM, "out of memory");
    for (int64_t i = 0; i < f->n_kv; i++) f->kv_by_name[i] = &f->kv[i];
    qsort(f->kv_by_name, (size_t)f->n_kv, sizeof *f->kv_by_name, gguf_cmp_kv);
    for (int64_t i = 1; i < f->n_kv; i++)
        if (!strcmp(f->kv_by_name[i - 1]->key, f->kv_by_name[i]->key))
            return gguf_fail(r, INTACT_E_FORMAT, "duplicate key '%s'",
                             gguf_printable(f->kv_by_name[i]->key, nm, sizeof nm));
    for (int64_t i = 0; i < f->n_tensors; i++) f->t_by_name[i] = &f->tensors[i];
    // Sort by data first to find overlaps, then by name for lookups and duplicates.
    qsort(f->t_by_name, (size_t)f->n_tensors, sizeof *f->t_by_name, gguf_cmp_tdata);
    for (int64_t i = 1; i < f->n_tensors; i++) {
        const gguf_tensor_info *a = f->t_by_name[i - 1], *b = f->t_by_name[i];
        if ((const unsigned char *)a->data + a->nbytes > (const unsigned char *)b->data) {
            char nm2[96];
            return gguf_fail(r, INTACT_E_FORMAT, "tensors '%s' and '%s' overlap", gguf_printable(a->name, nm, sizeof nm),
                             gguf_printable(b->name, nm2, sizeof nm2));
        }
    }
    qsort(f->t_by_name, (size_t)f->n_tensors, sizeof *f->t_by_name, gguf_cmp_tname);
    for (int64_t i = 1; i < f->n_tensors; i++)
        if (!strcmp(f->t_by_name[i - 1]->name, f->t_by_name[i]->name))
            return gguf_fail(r, INTACT_E_FORMAT, "duplicate tensor '%s'",
                             gguf_printable(f->t_by_name[i]->name, nm, sizeof nm));
    return 0;
}

// ------------------------------------------------------------------------------------ top level

static int gguf_read_header(gguf_rd *r, gguf_file *f, uint64_t *n_kv, uint64_t *n_t) {
    const unsigned char *b = NULL;
    if (r->size < 4) return gguf_fail(r, INTACT_E_FORMAT, "truncated: %zu bytes is too short for a GGUF header", r->size);
    if (rd_bytes(r, 4, &b, NULL) || memcmp(b, "GGUF", 4))
        return gguf_fail(r, INTACT_E_FORMAT, "bad magic (not a GGUF file)");
    if (rd_u32(r, &f->version, "version")) return -1;
    uint32_t v = f->version, sw = (v >> 24) | ((v >> 8) & 0xff00) | ((v << 8) & 0xff0000) | (v << 24);
    if (v == 1) return gguf_fail(r, INTACT_E_UNSUPPORTED, "GGUF version 1 is not supported");
    if (v != 2 && v != 3) {
        if (sw == 2 || sw == 3) return gguf_fail(r, INTACT_E_UNSUPPORTED, "big-endian GGUF files are not supported");
        return gguf_fail(r, INTACT_E_UNSUPPORTED, "GGUF version %u is not supported (expected 2 or 3)", v);
    }
    if (rd_u64(r, n_t, "tensor count") || rd_u64(r, n_kv, "metadata key count")) return -1;
    size_t left = rd_left(r);
    if (*n_kv > left / GGUF_MIN_KV_BYTES)
        return gguf_fail(r, INTACT_E_FORMAT, "metadata key count %llu cannot fit in the %zu bytes left "
                         "(truncated or corrupt)", (unsigned long long)*n_kv, left);
    if (*n_t > left / GGUF_MIN_TENSOR_BYTES || *n_kv * GGUF_MIN_KV_BYTES + *n_t * GGUF_MIN_TENSOR_BYTES > left)
        return gguf_fail(r, INTACT_E_FORMAT, "tensor count %llu cannot fit in the %zu bytes left "
                         "(truncated or corrupt)", (unsigned long long)*n_t, left);
    if (*n_kv > GGUF_MAX_KV)
        return gguf_fail(r, INTACT_E_LIMIT, "metadata key count %llu exceeds the limit of %d",
                         (unsigned long long)*n_kv, GGUF_MAX_KV);
    if (*n_t > GGUF_MAX_TENSORS)
        return gguf_fail(r, INTACT_E_LIMIT, "tensor count %llu exceeds the limit of %d",
                         (unsigned long long)*n_t, GGUF_MAX_TENSORS);
    return 0;
}

static int gguf_parse(gguf_rd *r, gguf_file *f) {
    uint64_t n_kv = 0, n_t = 0;
    if (gguf_read_header(r, f, &n_kv, &n_t)) return -1;
    f->kv = calloc(n_kv ? n_kv : 1, sizeof *f->kv);
    f->tensors = calloc(n_t ? n_t : 1, sizeof *f->tensors);
    uint64_t *offs = malloc((n_t ? n_t : 1) * sizeof *offs);
    if (!f->kv || !f->tensors || !offs) { free(offs); return gguf_fail(r, INTACT_E_NOMEM, "out of memory"); }
    int rc = 0;
    r->sect = "metadata key";
    for (uint64_t i = 0; i < n_kv && !rc; i++, f->n_kv++) {
        r->idx = (int64_t)i;
        r->name = NULL;
        rc = gguf_read_kv(r, &f->kv[i], &f->alignment);
    }
    r->sect = "tensor info";
    for (uint64_t i = 0; i < n_t && !rc; i++, f->n_tensors++) {
        r->idx = (int64_t)i;
        r->name = NULL;
        rc = gguf_read_tensor(r, &f->tensors[i], &offs[i]);
    }
    if (!rc) {
        size_t a = f->alignment, pad = (a - r->pos % a) % a;
        f->data_offset = r->pos + pad;    // cannot overflow: pos <= size and pad < 2^32
        for (int64_t i = 0; i < f->n_tensors && !rc; i++) rc = gguf_bind_tensor(r, f, &f->tensors[i], offs[i]);
    }
    free(offs);
    return rc ? -1 : gguf_index(r, f);
}

static gguf_file *gguf_open_impl(const unsigned char *data, size_t size, const char *label, it_mmap *map,
                                 intact_error *err) {
    gguf_file *f = calloc(1, sizeof *f);
    char *lab = f ? gguf_strdup((const unsigned char *)label, strlen(label)) : NULL;
    if (!lab) {
        free(f);
        if (map) it_mmap_close(map);
        it_fail(err, INTACT_E_NOMEM, "%s: out of memory", label);
        return NULL;
    }
    if (map) f->map = *map;
    f->data = data;
    f->size = size;
    f->label = lab;
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    gguf_rd r = {data, size, 0, lab, err, "header", -1, NULL};
    if (gguf_parse(&r, f)) {
        gguf_close(f);
        return NULL;
    }
    return f;
}

gguf_file *gguf_open(const char *path, intact_error *err) { return gguf_open_mode(path, 0, err); }

gguf_file *gguf_open_mode(const char *path, int mode, intact_error *err) {
    it_mmap m;
    if (it_mmap_open_mode(path, mode, &m, err)) return NULL;
    return gguf_open_impl(m.data, m.size, path, &m, err);
}

gguf_file *gguf_open_buffer(const void *data, size_t size, intact_error *err) {
    if (!data && size) {
        it_fail(err, INTACT_E_ARG, "gguf: NULL buffer");
        return NULL;
    }
    return gguf_open_impl(data, size, "gguf", NULL, err);
}

it_mmap *gguf_mapping(gguf_file *f) { return f->map.base ? &f->map : NULL; }

void gguf_close(gguf_file *f) {
    if (!f) return;
    for (int64_t i = 0; i < f->n_kv; i++) {
        free(f->kv[i].key);
        free(f->kv[i].str);
        free(f->kv[i].strs);
    }
    for (int64_t i = 0; i < f->n_tensors; i++) free((char *)f->tensors[i].name);
    free(f->kv);
    free(f->kv_by_name);
    free(f->tensors);
    free(f->t_by_name);
    free(f->label);
    it_mmap_close(&f->map);
    free(f);
}
