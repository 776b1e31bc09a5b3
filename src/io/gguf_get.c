// GGUF accessors: lookups into the tables gguf.c built and validated, with typed conversion.
#include "io/gguf_internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "core/error.h"

size_t gguf_vtype_size(int type) {
    static const unsigned char sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return type >= 0 && type <= GGUF_T_F64 ? sizes[type] : 0;
}

const char *gguf_vtype_name(int type) {
    static const char *const names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool",
                                        "string", "array", "u64", "i64", "f64"};
    return type >= 0 && type <= GGUF_T_F64 ? names[type] : "unknown";
}

int gguf_vtype_is_int(int type) {
    return (type >= GGUF_T_U8 && type <= GGUF_T_I32) || type == GGUF_T_U64 || type == GGUF_T_I64;
}

int gguf_vtype_is_signed(int type) {
    return type == GGUF_T_I8 || type == GGUF_T_I16 || type == GGUF_T_I32 || type == GGUF_T_I64;
}

const gguf_kv *gguf_kv_find(const gguf_file *f, const char *key) {
    int64_t lo = 0, hi = f->n_kv;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->kv_by_name[mid]->key, key);
        if (c == 0) return f->kv_by_name[mid];
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return NULL;
}

uint32_t gguf_version(const gguf_file *f) { return f->version; }
int64_t gguf_n_kv(const gguf_file *f) { return f->n_kv; }
uint32_t gguf_alignment(const gguf_file *f) { return f->alignment; }
size_t gguf_data_offset(const gguf_file *f) { return f->data_offset; }

const char *gguf_key_name(const gguf_file *f, int64_t i) {
    return i >= 0 && i < f->n_kv ? f->kv[i].key : NULL;
}

int64_t gguf_find_key(const gguf_file *f, const char *key) {
    const gguf_kv *kv = gguf_kv_find(f, key);
    return kv ? kv - f->kv : -1;
}

int gguf_key_type(const gguf_file *f, int64_t i) {
    return i >= 0 && i < f->n_kv ? f->kv[i].type : -1;
}

// Finds key and checks its type class; the message names the key and what was expected.
static const gguf_kv *gguf_want(const gguf_file *f, const char *key, int (*ok)(int), const char *expect,
                                intact_error *err) {
    const gguf_kv *kv = gguf_kv_find(f, key);
    if (!kv) {
        it_fail(err, INTACT_E_FORMAT, "%s: key '%s' not found", f->label, key);
        return NULL;
    }
    if (!ok(kv->type)) {
        it_fail(err, INTACT_E_FORMAT, "%s: key '%s' has type %s, expected %s", f->label, key,
                gguf_vtype_name(kv->type), expect);
        return NULL;
    }
    return kv;
}

static int gguf_is_float(int t) { return t == GGUF_T_F32 || t == GGUF_T_F64; }
static int gguf_is_bool(int t) { return t == GGUF_T_BOOL; }
static int gguf_is_str(int t) { return t == GGUF_T_STRING; }
static int gguf_is_arr(int t) { return t == GGUF_T_ARRAY; }

int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out, intact_error *err) {
    const gguf_kv *kv = gguf_want(f, key, gguf_vtype_is_int, "an integer", err);
    if (!kv) return -1;
    if (gguf_vtype_is_signed(kv->type) && kv->v.i < 0)
        return it_fail(err, INTACT_E_FORMAT, "%s: key '%s' has negative value %lld", f->label, key,
                       (long long)kv->v.i);
    *out = gguf_vtype_is_signed(kv->type) ? (uint64_t)kv->v.i : kv->v.u;
    return 0;
}

int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out, intact_error *err) {
    const gguf_kv *kv = gguf_want(f, key, gguf_vtype_is_int, "an integer", err);
    if (!kv) return -1;
    if (!gguf_vtype_is_signed(kv->type) && kv->v.u > (uint64_t)INT64_MAX)
        return it_fail(err, INTACT_E_FORMAT, "%s: key '%s' value %llu does not fit in i64", f->label, key,
                       (unsigned long long)kv->v.u);
    *out = gguf_vtype_is_signed(kv->type) ? kv->v.i : (int64_t)kv->v.u;
    return 0;
}

int gguf_get_f64(const gguf_file *f, const char *key, double *out, intact_error *err) {
    const gguf_kv *kv = gguf_want(f, key, gguf_is_float, "f32 or f64", err);
    if (!kv) return -1;
    *out = kv->v.f;
    return 0;
}

int gguf_get_f32(const gguf_file *f, const char *key, float *out, intact_error *err) {
    double d;
    if (gguf_get_f64(f, key, &d, err)) return -1;
    if (isfinite(d) && fabs(d) > FLT_MAX)
        return it_fail(err, INTACT_E_FORMAT, "%s: key '%s' value %g does not fit in f32", f->label, key, d);
    *out = (float)d;
    return 0;
}

int gguf_get_bool(const gguf_file *f, const char *key, int *out, intact_error *err) {
    const gguf_kv *kv = gguf_want(f, key, gguf_is_bool, "bool", err);
    if (!kv) return -1;
    *out = (int)kv->v.u;
    return 0;
}

const char *gguf_get_str(const gguf_file *f, const char *key, size_t *len, intact_error *err) {
    const gguf_kv *kv = gguf_want(f, key, gguf_is_str, "string", err);
    if (!kv) return NULL;
    if (len) *len = kv->len;
    return kv->str;
}

int gguf_get_arr(const gguf_file *f, const char *key, int *elem_type, uint64_t *n, intact_error *err) {
    const gguf_kv *kv = gguf_want(f, key, gguf_is_arr, "array", err);
    if (!kv) return -1;
    if (elem_type) *elem_type = kv->elem_type;
    if (n) *n = kv->n;
    return 0;
}

// Element i of a numeric array as both an integer (if it is one) and a double.
static int gguf_arr_elem(const gguf_file *f, const char *key, uint64_t i, int *is_int, int64_t *iv, double *dv,
                         int *fits_i64) {
    const gguf_kv *kv = gguf_kv_find(f, key);
    if (!kv || kv->type != GGUF_T_ARRAY || i >= kv->n) return -1;
    int t = kv->elem_type;
    size_t sz = gguf_vtype_size(t);
    if (!sz || t == GGUF_T_BOOL) return -1;
    const unsigned char *p = kv->raw + i * sz;
    uint64_t u = 0;
    *fits_i64 = 1;
    *is_int = gguf_vtype_is_int(t);
    switch (t) {
    case GGUF_T_U8: *iv = p[0]; break;
    case GGUF_T_I8: *iv = (int8_t)p[0]; break;
    case GGUF_T_U16: *iv = gguf_le16(p); break;
    case GGUF_T_I16: *iv = (int16_t)gguf_le16(p); break;
    case GGUF_T_U32: *iv = gguf_le32(p); break;
    case GGUF_T_I32: *iv = (int32_t)gguf_le32(p); break;
    case GGUF_T_I64: *iv = (int64_t)gguf_le64(p); break;
    case GGUF_T_U64:
        u = gguf_le64(p);
        *fits_i64 = u <= (uint64_t)INT64_MAX;
        *iv = (int64_t)(u & (uint64_t)INT64_MAX);
        *dv = (double)u;
        return 0;
    case GGUF_T_F32: { uint32_t b = gguf_le32(p); float x; memcpy(&x, &b, 4); *dv = x; return 0; }
    case GGUF_T_F64: { uint64_t b = gguf_le64(p); memcpy(dv, &b, 8); return 0; }
    }
    *dv = (double)*iv;
    return 0;
}

int gguf_arr_f32(const gguf_file *f, const char *key, uint64_t i, float *out) {
    int is_int, fits;
    int64_t iv;
    double dv;
    if (gguf_arr_elem(f, key, i, &is_int, &iv, &dv, &fits)) return -1;
    *out = (float)(isfinite(dv) && fabs(dv) > FLT_MAX ? (dv > 0 ? INFINITY : -INFINITY) : dv);
    return 0;
}

int gguf_arr_i64(const gguf_file *f, const char *key, uint64_t i, int64_t *out) {
    int is_int, fits;
    int64_t iv;
    double dv;
    if (gguf_arr_elem(f, key, i, &is_int, &iv, &dv, &fits) || !is_int || !fits) return -1;
    *out = iv;
    return 0;
}

const char *gguf_arr_str(const gguf_file *f, const char *key, uint64_t i, size_t *len) {
    const gguf_kv *kv = gguf_kv_find(f, key);
    if (!kv || kv->type != GGUF_T_ARRAY || kv->elem_type != GGUF_T_STRING || i >= kv->n) return NULL;
    if (len) *len = (size_t)gguf_le64(kv->strs[i] - 8);
    return (const char *)kv->strs[i];
}

int64_t gguf_n_tensors(const gguf_file *f) { return f->n_tensors; }

const gguf_tensor_info *gguf_tensor(const gguf_file *f, int64_t i) {
    return i >= 0 && i < f->n_tensors ? &f->tensors[i] : NULL;
}

const gguf_tensor_info *gguf_find_tensor(const gguf_file *f, const char *name) {
    int64_t lo = 0, hi = f->n_tensors;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->t_by_name[mid]->name, name);
        if (c == 0) return f->t_by_name[mid];
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return NULL;
}
