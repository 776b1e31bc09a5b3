#include "io/gguf_write.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "formats/formats.h"
#include "io/gguf.h"

#define GW_MAX_KEY 65535u
#define GW_MAX_NAME 64u

typedef struct gw_tensor {
    char *name;
    int type, n_dims;
    int64_t ne[4];
    const void *data;
    size_t nbytes;
} gw_tensor;

struct gguf_writer {
    unsigned char *meta;          // serialized key/value pairs
    size_t meta_n, meta_cap;
    char **keys;                  // for duplicate checks (writers add tens of keys, so a scan is fine)
    uint64_t n_kv;
    gw_tensor *t;
    size_t n_t, cap_t;
    uint32_t alignment;
    int failed;
    char msg[256];
};

__attribute__((format(printf, 2, 3)))
static int gw_fail(gguf_writer *w, const char *fmt, ...) {
    if (!w->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->msg, sizeof w->msg, fmt, ap);
        va_end(ap);
        w->failed = 1;
    }
    return -1;
}

gguf_writer *gguf_writer_new(void) {
    gguf_writer *w = calloc(1, sizeof *w);
    if (w) w->alignment = 32;
    return w;
}

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (uint64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->keys);
    free(w->t);
    free(w->meta);
    free(w);
}

static int gw_put(gguf_writer *w, const void *p, size_t n) {
    if (n > SIZE_MAX - w->meta_n) return gw_fail(w, "metadata too large");
    if (w->meta_n + n > w->meta_cap) {
        size_t cap = w->meta_cap ? w->meta_cap : 256;
        while (cap < w->meta_n + n) cap = cap > SIZE_MAX / 2 ? w->meta_n + n : cap * 2;
        unsigned char *m = realloc(w->meta, cap);
        if (!m) return gw_fail(w, "out of memory");
        w->meta = m;
        w->meta_cap = cap;
    }
    if (n) memcpy(w->meta + w->meta_n, p, n);
    w->meta_n += n;
    return 0;
}

// GGUF is little-endian; encode explicitly so the writer is correct on any host.
static int gw_put_le(gguf_writer *w, uint64_t v, int bytes) {
    unsigned char b[8];
    for (int i = 0; i < bytes; i++) b[i] = (unsigned char)(v >> (8 * i));
    return gw_put(w, b, (size_t)bytes);
}

static int gw_put_str(gguf_writer *w, const char *s, size_t len) {
    return (gw_put_le(w, len, 8) || gw_put(w, s, len)) ? -1 : 0;
}

// Validates the key and writes it with its value type; the value follows.
static int gw_key(gguf_writer *w, const char *key, int type) {
    if (w->failed) return -1;
    size_t len = key ? strlen(key) : 0;
    if (!len || len > GW_MAX_KEY) return gw_fail(w, "invalid key '%.64s'", key ? key : "(null)");
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->keys[i], key)) return gw_fail(w, "duplicate key '%.64s'", key);
    char **k = realloc(w->keys, (size_t)(w->n_kv + 1) * sizeof *k);
    if (!k) return gw_fail(w, "out of memory");
    w->keys = k;
    if (!(k[w->n_kv] = malloc(len + 1))) return gw_fail(w, "out of memory");
    memcpy(k[w->n_kv], key, len + 1);
    w->n_kv++;
    return (gw_put_str(w, key, len) || gw_put_le(w, (uint64_t)type, 4)) ? -1 : 0;
}

static int gw_scalar(gguf_writer *w, const char *key, int type, uint64_t bits, int bytes) {
    return (gw_key(w, key, type) || gw_put_le(w, bits, bytes)) ? -1 : 0;
}

int gguf_writer_add_u8(gguf_writer *w, const char *key, uint8_t v) { return gw_scalar(w, key, GGUF_T_U8, v, 1); }
int gguf_writer_add_i8(gguf_writer *w, const char *key, int8_t v) {
    return gw_scalar(w, key, GGUF_T_I8, (uint8_t)v, 1);
}
int gguf_writer_add_u16(gguf_writer *w, const char *key, uint16_t v) {
    return gw_scalar(w, key, GGUF_T_U16, v, 2);
}
int gguf_writer_add_i16(gguf_writer *w, const char *key, int16_t v) {
    return gw_scalar(w, key, GGUF_T_I16, (uint16_t)v, 2);
}
int gguf_writer_add_u32(gguf_writer *w, const char *key, uint32_t v) {
    if (key && !strcmp(key, "general.alignment")) {
        if (w->failed) return -1;
        if (!v || (v & (v - 1))) return gw_fail(w, "general.alignment %u is not a power of two", v);
        w->alignment = v;
    }
    return gw_scalar(w, key, GGUF_T_U32, v, 4);
}
int gguf_writer_add_i32(gguf_writer *w, const char *key, int32_t v) {
    return gw_scalar(w, key, GGUF_T_I32, (uint32_t)v, 4);
}
int gguf_writer_add_u64(gguf_writer *w, const char *key, uint64_t v) {
    return gw_scalar(w, key, GGUF_T_U64, v, 8);
}
int gguf_writer_add_i64(gguf_writer *w, const char *key, int64_t v) {
    return gw_scalar(w, key, GGUF_T_I64, (uint64_t)v, 8);
}
int gguf_writer_add_f32(gguf_writer *w, const char *key, float v) {
    uint32_t b;
    memcpy(&b, &v, 4);
    return gw_scalar(w, key, GGUF_T_F32, b, 4);
}
int gguf_writer_add_f64(gguf_writer *w, const char *key, double v) {
    uint64_t b;
    memcpy(&b, &v, 8);
    return gw_scalar(w, key, GGUF_T_F64, b, 8);
}
int gguf_writer_add_bool(gguf_writer *w, const char *key, int v) {
    return gw_scalar(w, key, GGUF_T_BOOL, v ? 1 : 0, 1);
}
int gguf_writer_add_str(gguf_writer *w, const char *key, const char *s, size_t len) {
    if (!s && len) return gw_fail(w, "NULL string for key '%.64s'", key ? key : "");
    return (gw_key(w, key, GGUF_T_STRING) || gw_put_str(w, s ? s : "", len)) ? -1 : 0;
}

static int gw_arr_head(gguf_writer *w, const char *key, int elem_type, uint64_t n) {
    return (gw_key(w, key, GGUF_T_ARRAY) || gw_put_le(w, (uint64_t)elem_type, 4) || gw_put_le(w, n, 8)) ? -1 : 0;
}

int gguf_writer_add_arr_str(gguf_writer *w, const char *key, const char *const *strs, const size_t *lens,
                            uint64_t n) {
    if (gw_arr_head(w, key, GGUF_T_STRING, n)) return -1;
    for (uint64_t i = 0; i < n; i++)
        if (gw_put_str(w, strs[i], lens ? lens[i] : strlen(strs[i]))) return -1;
    return 0;
}

int gguf_writer_add_arr(gguf_writer *w, const char *key, int elem_type, const void *v, uint64_t n) {
    static const unsigned char sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (elem_type < 0 || elem_type > GGUF_T_F64 || !sizes[elem_type])
        return gw_fail(w, "array '%.64s': element type %d is not a scalar type", key ? key : "", elem_type);
    int sz = sizes[elem_type];
    if (gw_arr_head(w, key, elem_type, n)) return -1;
    const unsigned char *p = v;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t bits = 0;
        switch (sz) {
        case 1: bits = p[i]; break;
        case 2: { uint16_t x; memcpy(&x, p + 2 * i, 2); bits = x; break; }
        case 4: { uint32_t x; memcpy(&x, p + 4 * i, 4); bits = x; break; }
        default: memcpy(&bits, p + 8 * i, 8); break;
        }
        if (gw_put_le(w, bits, sz)) return -1;
    }
    return 0;
}

int gguf_writer_add_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n) {
    return gguf_writer_add_arr(w, key, GGUF_T_F32, v, n);
}
int gguf_writer_add_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n) {
    return gguf_writer_add_arr(w, key, GGUF_T_I32, v, n);
}

int gguf_writer_add_tensor(gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne,
                           const void *data, size_t nbytes) {
    if (w->failed) return -1;
    size_t len = name ? strlen(name) : 0;
    if (!len || len > GW_MAX_NAME) return gw_fail(w, "invalid tensor name '%.64s'", name ? name : "(null)");
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name)) return gw_fail(w, "duplicate tensor '%s'", name);
    if (n_dims < 1 || n_dims > 4) return gw_fail(w, "tensor '%s': n_dims %d", name, n_dims);
    gw_tensor t = {NULL, type, n_dims, {1, 1, 1, 1}, data, nbytes};
    size_t expect = 0;
    for (int d = 0; d < n_dims; d++) t.ne[d] = ne[d];
    size_t row = fmt_row_bytes(type, t.ne[0]);
    for (int d = 1; d < 4 && row; d++)
        if (t.ne[d] < 1 || it_mul_size(row, (size_t)t.ne[d], &row)) row = 0;
    expect = row;
    if (!expect || expect != nbytes || (!data && nbytes))
        return gw_fail(w, "tensor '%s': %zu bytes given, type %d and shape imply %zu", name, nbytes, type, expect);
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? 2 * w->cap_t : 16;
        gw_tensor *nt = realloc(w->t, cap * sizeof *nt);
        if (!nt) return gw_fail(w, "out of memory");
        w->t = nt;
        w->cap_t = cap;
    }
    if (!(t.name = malloc(len + 1))) return gw_fail(w, "out of memory");
    memcpy(t.name, name, len + 1);
    w->t[w->n_t++] = t;
    return 0;
}

// ------------------------------------------------------------------------------------ output

static size_t gw_pad(size_t n, uint32_t a) { return (a - n % a) % a; }

size_t gguf_writer_size(const gguf_writer *w) {
    size_t n = 24 + w->meta_n;
    for (size_t i = 0; i < w->n_t; i++) n += 8 + strlen(w->t[i].name) + 4 + 8 * (size_t)w->t[i].n_dims + 4 + 8;
    n += gw_pad(n, w->alignment);
    for (size_t i = 0; i < w->n_t; i++) n += w->t[i].nbytes + gw_pad(w->t[i].nbytes, w->alignment);
    return n;
}

// Output goes either to a memory buffer or to a file descriptor. File output is staged in 2 MiB
// pieces written at 2 MiB offsets: a write that covers a whole aligned 2 MiB lets the kernel keep it
// in the page cache as one 2 MiB folio, which a mapping then reads through one TLB entry (decode of
// a freshly quantized model runs at the speed of a huge-page mapping without re-reading the file;
// io/mmapfile.c).
#define GW_STAGE ((size_t)2 << 20)
typedef struct gw_sink {
    unsigned char *mem;
    size_t pos;
    int fd;
    int err;              // errno of a failed write
    unsigned char *stage; // GW_STAGE bytes, or NULL: write through
    size_t staged;
} gw_sink;

static void gw_write(gw_sink *s, const unsigned char *b, size_t n) {
    while (n && !s->err) {
        ssize_t k = write(s->fd, b, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) { s->err = k < 0 ? errno : EIO; return; }
        b += k;
        n -= (size_t)k;
    }
}

static void gw_flush(gw_sink *s) {
    gw_write(s, s->stage, s->staged);
    s->staged = 0;
}

static void gw_out(gw_sink *s, const void *p, size_t n) {
    if (s->err || !n) return;
    if (s->mem) {
        memcpy(s->mem + s->pos, p, n);
        s->pos += n;
        return;
    }
    if (!s->stage) { gw_write(s, p, n); return; }
    const unsigned char *b = p;
    while (n && !s->err) {
        size_t k = GW_STAGE - s->staged < n ? GW_STAGE - s->staged : n;
        memcpy(s->stage + s->staged, b, k);
        s->staged += k;
        b += k;
        n -= k;
        if (s->staged == GW_STAGE) gw_flush(s);
    }
}

static void gw_out_le(gw_sink *s, uint64_t v, int bytes) {
    unsigned char b[8];
    for (int i = 0; i < bytes; i++) b[i] = (unsigned char)(v >> (8 * i));
    gw_out(s, b, (size_t)bytes);
}

static void gw_out_zeros(gw_sink *s, size_t n) {
    static const unsigned char z[64];
    while (n) {
        size_t k = n < sizeof z ? n : sizeof z;
        gw_out(s, z, k);
        n -= k;
    }
}

static void gw_emit(const gguf_writer *w, gw_sink *s) {
    size_t pos = 24 + w->meta_n;
    gw_out(s, "GGUF", 4);
    gw_out_le(s, 3, 4);
    gw_out_le(s, w->n_t, 8);
    gw_out_le(s, w->n_kv, 8);
    gw_out(s, w->meta, w->meta_n);
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const gw_tensor *t = &w->t[i];
        size_t len = strlen(t->name);
        gw_out_le(s, len, 8);
        gw_out(s, t->name, len);
        gw_out_le(s, (uint64_t)t->n_dims, 4);
        for (int d = 0; d < t->n_dims; d++) gw_out_le(s, (uint64_t)t->ne[d], 8);
        gw_out_le(s, (uint64_t)t->type, 4);
        gw_out_le(s, off, 8);
        off += t->nbytes + gw_pad(t->nbytes, w->alignment);
        pos += 8 + len + 4 + 8 * (size_t)t->n_dims + 4 + 8;
    }
    gw_out_zeros(s, gw_pad(pos, w->alignment));
    for (size_t i = 0; i < w->n_t; i++) {
        gw_out(s, w->t[i].data, w->t[i].nbytes);
        gw_out_zeros(s, gw_pad(w->t[i].nbytes, w->alignment));
    }
}

int gguf_writer_write_mem(const gguf_writer *w, void **out, size_t *size, intact_error *err) {
    *out = NULL;
    *size = 0;
    if (w->failed) return it_fail(err, INTACT_E_ARG, "gguf writer: %s", w->msg);
    size_t n = gguf_writer_size(w);
    gw_sink s = {malloc(n), 0, -1, 0, NULL, 0};
    if (!s.mem) return it_fail(err, INTACT_E_NOMEM, "gguf writer: out of memory (%zu bytes)", n);
    gw_emit(w, &s);
    *out = s.mem;
    *size = n;
    return 0;
}

int gguf_writer_write_file(const gguf_writer *w, const char *path, intact_error *err) {
    if (w->failed) return it_fail(err, INTACT_E_ARG, "%s: gguf writer: %s", path, w->msg);
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 12);
    if (!tmp) return it_fail(err, INTACT_E_NOMEM, "%s: out of memory", path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    gw_sink s = {NULL, 0, mkstemp(tmp), 0, malloc(GW_STAGE), 0};
    if (s.fd < 0) {
        int e = errno;
        free(tmp);
        free(s.stage);
        return it_fail(err, INTACT_E_IO, "%s: cannot create temporary file: %s", path, strerror(e));
    }
    gw_emit(w, &s);
    gw_flush(&s);
    free(s.stage);
    if (!s.err && fchmod(s.fd, 0644)) s.err = errno;
    if (!s.err && fsync(s.fd)) s.err = errno;
    if (close(s.fd) && !s.err) s.err = errno;
    if (!s.err && rename(tmp, path)) s.err = errno;
    if (s.err) {
        unlink(tmp);
        free(tmp);
        return it_fail(err, INTACT_E_IO, "%s: write failed: %s", path, strerror(s.err));
    }
    free(tmp);
    return 0;
}
