// Binds a GGUF model: architecture `llama` (LLaMA-1/2/3, Mistral, TinyLlama) or `qwen2`.
// Hyperparameters come from "<arch>.*" keys; every tensor's type and shape is checked against them.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/model_internal.h"

typedef struct {
    intact_model *m;
    const char *arch;
    intact_error *err;
} gguf_bind;

static int get_int(gguf_bind *b, const char *suffix, int *out, int required, int dflt) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", b->arch, suffix);
    if (gguf_find_key(b->m->gguf, key) < 0) {
        if (required) return it_fail(b->err, INTACT_E_FORMAT, "missing required key '%s'", key);
        *out = dflt;
        return 0;
    }
    if (gguf_key_type(b->m->gguf, gguf_find_key(b->m->gguf, key)) == GGUF_T_ARRAY)
        return it_fail(b->err, INTACT_E_UNSUPPORTED, "per-layer values for '%s' are not supported", key);
    uint64_t v;
    if (gguf_get_u64(b->m->gguf, key, &v, b->err) != 0) return -1;
    if (v > (1u << 30)) return it_fail(b->err, INTACT_E_LIMIT, "'%s' = %llu is out of range", key,
                                       (unsigned long long)v);
    *out = (int)v;
    return 0;
}

static int get_float(gguf_bind *b, const char *suffix, float *out, float dflt) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", b->arch, suffix);
    if (gguf_find_key(b->m->gguf, key) < 0) { *out = dflt; return 0; }
    return gguf_get_f32(b->m->gguf, key, out, b->err);
}

// Finds a tensor and checks it is a 2-D (or 1-D when n_out == 0) tensor of the expected shape.
static int bind_tensor(gguf_bind *b, const char *name, int64_t n_in, int64_t n_out, int optional,
                       it_tensor *out) {
    const gguf_tensor_info *ti = gguf_find_tensor(b->m->gguf, name);
    if (!ti) {
        if (optional) { memset(out, 0, sizeof *out); return 0; }
        return it_fail(b->err, INTACT_E_FORMAT, "missing tensor '%s'", name);
    }
    int want_dims = n_out ? 2 : 1;
    int64_t rows = n_out ? n_out : 1;
    if (ti->n_dims != want_dims || ti->ne[0] != n_in || ti->ne[1] != rows)
        return it_fail(b->err, INTACT_E_FORMAT,
                       "tensor '%s' has shape (%lld, %lld), expected (%lld, %lld)", name,
                       (long long)ti->ne[0], (long long)ti->ne[1], (long long)n_in, (long long)rows);
    if (!fmt_get((int)ti->type))
        return it_fail(b->err, INTACT_E_UNSUPPORTED, "tensor '%s' has unsupported type %u", name, ti->type);
    it_tensor t = {ti->name, (int)ti->type, ti->n_dims, {ti->ne[0], ti->ne[1], ti->ne[2], ti->ne[3]},
                   ti->data, ti->nbytes};
    *out = t;
    return 0;
}

// Norm weights and biases are small; they are converted to fp32 once, whatever their stored type.
static int bind_vector(gguf_bind *b, const char *name, int64_t n, int optional, float **cursor,
                       const float **out) {
    it_tensor t;
    if (bind_tensor(b, name, n, 0, optional, &t) != 0) return -1;
    if (!t.data) { *out = NULL; return 0; }
    fmt_get(t.type)->to_float(t.data, *cursor, n);
    *out = *cursor;
    *cursor += n;
    return 0;
}

static int read_hparams(gguf_bind *b) {
    it_hparams *hp = &b->m->hp;
    if (get_int(b, "embedding_length", &hp->dim, 1, 0) || get_int(b, "block_count", &hp->n_layers, 1, 0) ||
        get_int(b, "feed_forward_length", &hp->hidden_dim, 1, 0) ||
        get_int(b, "attention.head_count", &hp->n_heads, 1, 0) ||
        get_int(b, "attention.head_count_kv", &hp->n_kv_heads, 0, hp->n_heads) ||
        get_int(b, "context_length", &hp->ctx_len, 0, 2048))
        return -1;
    if (get_float(b, "rope.freq_base", &hp->rope_base, 10000.0f) ||
        get_float(b, "attention.layer_norm_rms_epsilon", &hp->norm_eps, 1e-5f))
        return -1;
    hp->head_dim = hp->n_heads > 0 ? hp->dim / hp->n_heads : 0;
    int rope_dims;
    if (get_int(b, "rope.dimension_count", &rope_dims, 0, hp->head_dim)) return -1;
    if (rope_dims != hp->head_dim)
        return it_fail(b->err, INTACT_E_UNSUPPORTED, "partial RoPE (%d of %d dims) is not supported",
                       rope_dims, hp->head_dim);
    hp->rope_scale = 1.0f;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", b->arch);
    const char *scaling = gguf_find_key(b->m->gguf, key) >= 0 ? gguf_get_str(b->m->gguf, key, NULL, b->err) : "none";
    if (!scaling) return -1;
    if (strcmp(scaling, "linear") == 0) {
        float factor;
        if (get_float(b, "rope.scaling.factor", &factor, 1.0f)) return -1;
        if (!(factor >= 1.0f && factor < 1e4f))
            return it_fail(b->err, INTACT_E_FORMAT, "bad RoPE scaling factor %g", (double)factor);
        hp->rope_scale = 1.0f / factor;
    } else if (strcmp(scaling, "none") != 0) {
        return it_fail(b->err, INTACT_E_UNSUPPORTED, "RoPE scaling '%s' is not supported", scaling);
    }
    return 0;
}

static int bind_layers(gguf_bind *b, float *cursor) {
    intact_model *m = b->m;
    const it_hparams *hp = &m->hp;
    int64_t dim = hp->dim, kv_dim = (int64_t)hp->head_dim * hp->n_kv_heads, hid = hp->hidden_dim;
    int bias = hp->arch == INTACT_ARCH_QWEN2;
    char n[96];
#define NAME(s) (snprintf(n, sizeof n, "blk.%d." s, l), n)
    for (int l = 0; l < hp->n_layers; l++) {
        it_layer *ly = &m->layers[l];
        if (bind_tensor(b, NAME("attn_q.weight"), dim, dim, 0, &ly->wq) ||
            bind_tensor(b, NAME("attn_k.weight"), dim, kv_dim, 0, &ly->wk) ||
            bind_tensor(b, NAME("attn_v.weight"), dim, kv_dim, 0, &ly->wv) ||
            bind_tensor(b, NAME("attn_output.weight"), dim, dim, 0, &ly->wo) ||
            bind_tensor(b, NAME("ffn_gate.weight"), dim, hid, 0, &ly->w_gate) ||
            bind_tensor(b, NAME("ffn_up.weight"), dim, hid, 0, &ly->w_up) ||
            bind_tensor(b, NAME("ffn_down.weight"), hid, dim, 0, &ly->w_down) ||
            bind_vector(b, NAME("attn_norm.weight"), dim, 0, &cursor, &ly->attn_norm) ||
            bind_vector(b, NAME("ffn_norm.weight"), dim, 0, &cursor, &ly->ffn_norm) ||
            bind_vector(b, NAME("attn_q.bias"), dim, !bias, &cursor, &ly->bq) ||
            bind_vector(b, NAME("attn_k.bias"), kv_dim, !bias, &cursor, &ly->bk) ||
            bind_vector(b, NAME("attn_v.bias"), kv_dim, !bias, &cursor, &ly->bv))
            return -1;
    }
#undef NAME
    if (bind_tensor(b, "token_embd.weight", dim, hp->n_vocab, 0, &m->tok_embd) ||
        bind_tensor(b, "output.weight", dim, hp->n_vocab, 1, &m->output) ||
        bind_vector(b, "output_norm.weight", dim, 0, &cursor, &m->output_norm) ||
        bind_vector(b, "rope_freqs.weight", hp->head_dim / 2, 1, &cursor, &m->rope_freqs))
        return -1;
    m->tied = m->output.data == NULL;
    if (m->tied) m->output = m->tok_embd;
    return 0;
}

// Rotated models (written by intact quantize --rotate) need the online Hadamard transform of the
// down-projection input, with the block size their ffn_down weights were built for.
static int read_rotation(gguf_bind *b) {
    static const char key[] = "intact.rotate.down_block";
    if (gguf_find_key(b->m->gguf, key) < 0) return 0;
    uint64_t v;
    if (gguf_get_u64(b->m->gguf, key, &v, b->err) != 0) return -1;
    uint64_t hid = (uint64_t)b->m->hp.hidden_dim;
    if (v == 0 || (v & (v - 1)) != 0 || v > hid || hid % v != 0)
        return it_fail(b->err, INTACT_E_FORMAT, "'%s' = %llu is not a power of 2 dividing the hidden size %llu",
                       key, (unsigned long long)v, (unsigned long long)hid);
    b->m->rot_down_block = (int)v;
    b->m->rotated = 1;
    return 0;
}

int model_load_gguf(intact_model *m, const char *path, int mode, intact_error *err) {
    m->is_gguf = 1;
    m->gguf = gguf_open_mode(path, mode, err);
    if (!m->gguf) return -1;
    gguf_bind b = {m, NULL, err};
    b.arch = gguf_get_str(m->gguf, "general.architecture", NULL, err);
    if (!b.arch) return -1;
    if (strcmp(b.arch, "llama") == 0) {
        m->hp.arch = INTACT_ARCH_LLAMA;
        m->hp.rope_style = INTACT_ROPE_NORM;
    } else if (strcmp(b.arch, "qwen2") == 0) {
        m->hp.arch = INTACT_ARCH_QWEN2;
        m->hp.rope_style = INTACT_ROPE_NEOX;
    } else {
        return it_fail(err, INTACT_E_UNSUPPORTED, "architecture '%s' is not supported (llama, qwen2)", b.arch);
    }
    if (read_hparams(&b) != 0) return -1;
    const gguf_tensor_info *emb = gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!emb) return it_fail(err, INTACT_E_FORMAT, "missing tensor 'token_embd.weight'");
    if (emb->n_dims != 2 || emb->ne[1] > (1 << 22))
        return it_fail(err, INTACT_E_FORMAT, "tensor 'token_embd.weight' has a bad shape");
    m->hp.n_vocab = (int)emb->ne[1];
    if (model_check_hparams(&m->hp, err) != 0) return -1;

    const it_hparams *hp = &m->hp;
    int64_t kv_dim = (int64_t)hp->head_dim * hp->n_kv_heads;
    size_t n_floats = (size_t)hp->n_layers * (size_t)(3 * hp->dim + 2 * kv_dim) + (size_t)hp->dim +
                      (size_t)hp->head_dim;
    m->owned = malloc(n_floats * sizeof(float));
    m->layers = calloc((size_t)hp->n_layers, sizeof *m->layers);
    if (!m->owned || !m->layers) return it_fail(err, INTACT_E_NOMEM, "out of memory");
    if (bind_layers(&b, m->owned) != 0) return -1;
    if (read_rotation(&b) != 0) return -1;

    m->n_all = (int)gguf_n_tensors(m->gguf);
    m->all = calloc((size_t)m->n_all, sizeof *m->all);
    if (!m->all) return it_fail(err, INTACT_E_NOMEM, "out of memory");
    for (int i = 0; i < m->n_all; i++) {
        const gguf_tensor_info *ti = gguf_tensor(m->gguf, i);
        it_tensor t = {ti->name, (int)ti->type, ti->n_dims, {ti->ne[0], ti->ne[1], ti->ne[2], ti->ne[3]},
                       ti->data, ti->nbytes};
        m->all[i] = t;
    }
    if (gguf_find_key(m->gguf, "general.name") >= 0) {
        const char *nm = gguf_get_str(m->gguf, "general.name", NULL, err);
        if (nm) m->name = strdup(nm);
    }
    if (gguf_find_key(m->gguf, "tokenizer.ggml.model") >= 0) {
        m->vocab = tok_load_gguf(m->gguf, err);
        if (!m->vocab) return -1;
    }
    return 0;
}
