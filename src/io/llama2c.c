// llama2.c v0 checkpoints. With no magic number, the header is only trusted once every field is in
// range and the file size matches the size it implies to the byte.
#include "io/llama2c.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define L2C_HEADER_BYTES 28
#define L2C_MAX_DIM (1 << 20)
#define L2C_MAX_LAYERS 4096
#define L2C_MAX_VOCAB (1 << 22)
#define L2C_MAX_SEQ (1 << 24)

static int32_t l2c_le32(const unsigned char *p) {
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

static int l2c_check_range(const char *label, const char *field, int32_t v, int32_t max, intact_error *err) {
    if (v <= 0 || v > max)
        return it_fail(err, INTACT_E_FORMAT, "%s: %s %d is out of range (must be 1..%d)", label, field, v, max);
    return 0;
}

static int l2c_check_config(const char *label, const int32_t h[7], l2c_config *c, intact_error *err) {
    if (l2c_check_range(label, "dim", h[0], L2C_MAX_DIM, err) ||
        l2c_check_range(label, "hidden_dim", h[1], L2C_MAX_DIM, err) ||
        l2c_check_range(label, "n_layers", h[2], L2C_MAX_LAYERS, err) ||
        l2c_check_range(label, "n_heads", h[3], L2C_MAX_DIM, err) ||
        l2c_check_range(label, "n_kv_heads", h[4], L2C_MAX_DIM, err) ||
        l2c_check_range(label, "seq_len", h[6], L2C_MAX_SEQ, err))
        return -1;
    // INT32_MIN has no positive counterpart, so compare in 64 bits.
    int64_t vocab = h[5] < 0 ? -(int64_t)h[5] : h[5];
    if (vocab == 0 || vocab > L2C_MAX_VOCAB)
        return it_fail(err, INTACT_E_FORMAT, "%s: vocab_size %d is out of range (|vocab| must be 1..%d)", label,
                       h[5], L2C_MAX_VOCAB);
    if (h[0] % h[3])
        return it_fail(err, INTACT_E_FORMAT, "%s: n_heads %d does not divide dim %d", label, h[3], h[0]);
    if (h[3] % h[4])
        return it_fail(err, INTACT_E_FORMAT, "%s: n_kv_heads %d does not divide n_heads %d", label, h[4], h[3]);
    if ((h[0] / h[3]) % 2)
        return it_fail(err, INTACT_E_FORMAT, "%s: head size %d (dim / n_heads) is odd; RoPE needs pairs", label,
                       h[0] / h[3]);
    *c = (l2c_config){h[0], h[1], h[2], h[3], h[4], (int)vocab, h[6], h[5] > 0};
    return 0;
}

// Accumulates a byte size with overflow checks; any overflow sticks and fails the whole sum.
typedef struct l2c_sum {
    size_t total;
    int overflow;
} l2c_sum;

// Adds a tensor of a*b*c floats and returns its offset in floats from the start of the weights.
static size_t l2c_add(l2c_sum *s, size_t a, size_t b, size_t c) {
    size_t n, off = s->total;
    if (it_mul_size(a, b, &n) || it_mul_size(n, c, &n) || it_add_size(s->total, n, &s->total)) s->overflow = 1;
    return off;
}

static int l2c_layout(const char *label, const unsigned char *data, size_t size, l2c_file *f, intact_error *err) {
    const l2c_config *c = &f->cfg;
    size_t dim = (size_t)c->dim, hid = (size_t)c->hidden_dim, L = (size_t)c->n_layers;
    size_t kv_dim = dim * (size_t)c->n_kv_heads / (size_t)c->n_heads, head = dim / (size_t)c->n_heads;
    size_t vocab = (size_t)c->vocab_size;
    l2c_sum s = {0, 0};
    size_t o_emb = l2c_add(&s, vocab, dim, 1), o_ratt = l2c_add(&s, L, dim, 1);
    size_t o_wq = l2c_add(&s, L, dim, dim), o_wk = l2c_add(&s, L, kv_dim, dim);
    size_t o_wv = l2c_add(&s, L, kv_dim, dim), o_wo = l2c_add(&s, L, dim, dim);
    size_t o_rffn = l2c_add(&s, L, dim, 1), o_w1 = l2c_add(&s, L, hid, dim);
    size_t o_w2 = l2c_add(&s, L, dim, hid), o_w3 = l2c_add(&s, L, hid, dim);
    size_t o_rfin = l2c_add(&s, dim, 1, 1);
    l2c_add(&s, 2, (size_t)c->seq_len, head / 2); // freq_cis_real and _imag: unused, RoPE is computed
    size_t o_cls = c->shared_classifier ? o_emb : l2c_add(&s, vocab, dim, 1);
    size_t expect;
    if (s.overflow || it_mul_size(s.total, 4, &expect) || it_add_size(expect, L2C_HEADER_BYTES, &expect))
        return it_fail(err, INTACT_E_FORMAT, "%s: the header implies a size that overflows", label);
    if (expect != size)
        return it_fail(err, INTACT_E_FORMAT, "%s: file size %zu does not match the %zu bytes the header implies "
                       "(dim %d, hidden %d, layers %d, heads %d/%d, vocab %d, seq %d)", label, size, expect,
                       c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                       c->shared_classifier ? c->vocab_size : -c->vocab_size, c->seq_len);
    const float *w = (const float *)(const void *)(data + L2C_HEADER_BYTES);
    f->tok_embd = w + o_emb; f->rms_att = w + o_ratt; f->wq = w + o_wq; f->wk = w + o_wk; f->wv = w + o_wv;
    f->wo = w + o_wo; f->rms_ffn = w + o_rffn; f->w1 = w + o_w1; f->w2 = w + o_w2; f->w3 = w + o_w3;
    f->rms_final = w + o_rfin; f->wcls = w + o_cls;
    return 0;
}

static int l2c_parse_labeled(const void *data, size_t size, const char *label, l2c_file *out, intact_error *err) {
    memset(out, 0, sizeof *out);
    if (size < L2C_HEADER_BYTES)
        return it_fail(err, INTACT_E_FORMAT, "%s: %zu bytes is too small for a llama2.c header (%d bytes)", label,
                       size, L2C_HEADER_BYTES);
    if ((uintptr_t)data % 4)
        return it_fail(err, INTACT_E_ARG, "%s: buffer is not 4-byte aligned", label);
    int32_t h[7];
    for (int i = 0; i < 7; i++) h[i] = l2c_le32((const unsigned char *)data + 4 * i);
    if (l2c_check_config(label, h, &out->cfg, err) || l2c_layout(label, data, size, out, err)) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    return 0;
}

int l2c_parse(const void *data, size_t size, l2c_file *out, intact_error *err) {
    return l2c_parse_labeled(data, size, "llama2.c", out, err);
}

int l2c_open(const char *path, l2c_file *out, intact_error *err) { return l2c_open_mode(path, 0, out, err); }

int l2c_open_mode(const char *path, int mode, l2c_file *out, intact_error *err) {
    it_mmap m;
    memset(out, 0, sizeof *out);
    if (it_mmap_open_mode(path, mode, &m, err)) return -1;
    if (l2c_parse_labeled(m.data, m.size, path, out, err)) {
        it_mmap_close(&m);
        return -1;
    }
    out->map = m;
    return 0;
}

void l2c_close(l2c_file *f) {
    if (!f) return;
    it_mmap_close(&f->map);
    memset(f, 0, sizeof *f);
}
