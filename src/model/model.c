// Model loading: detects the format, validates hyperparameters and every tensor shape, and binds
// tensors to the layer structure the forward pass reads.
#include "model/model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/model_internal.h"

const char *const it_layer_matrix_names[IT_LAYER_NMAT] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                                           "ffn_gate", "ffn_up", "ffn_down"};

// Limits that keep a hostile but well-formed header from making us allocate without bound.
enum { MAX_DIM = 1 << 16, MAX_LAYERS = 1024, MAX_HEADS = 1024, MAX_VOCAB = 1 << 22,
       MAX_CTX = 1 << 22 };

int model_check_hparams(const it_hparams *hp, intact_error *err) {
    if (hp->dim <= 0 || hp->dim > MAX_DIM || hp->hidden_dim <= 0 || hp->hidden_dim > 8 * MAX_DIM)
        return it_fail(err, INTACT_E_FORMAT, "bad model dimensions: dim %d, hidden %d", hp->dim,
                       hp->hidden_dim);
    if (hp->n_layers <= 0 || hp->n_layers > MAX_LAYERS)
        return it_fail(err, INTACT_E_FORMAT, "bad layer count %d", hp->n_layers);
    if (hp->n_heads <= 0 || hp->n_heads > MAX_HEADS || hp->dim % hp->n_heads)
        return it_fail(err, INTACT_E_FORMAT, "head count %d does not divide dim %d", hp->n_heads,
                       hp->dim);
    if (hp->n_kv_heads <= 0 || hp->n_heads % hp->n_kv_heads)
        return it_fail(err, INTACT_E_FORMAT, "kv head count %d does not divide head count %d",
                       hp->n_kv_heads, hp->n_heads);
    if (hp->head_dim % 2)
        return it_fail(err, INTACT_E_FORMAT, "head dimension %d is odd (RoPE needs pairs)", hp->head_dim);
    if (hp->n_vocab <= 0 || hp->n_vocab > MAX_VOCAB)
        return it_fail(err, INTACT_E_LIMIT, "vocabulary size %d out of range (max %d)", hp->n_vocab,
                       MAX_VOCAB);
    if (hp->ctx_len <= 0 || hp->ctx_len > MAX_CTX)
        return it_fail(err, INTACT_E_LIMIT, "context length %d out of range (max %d)", hp->ctx_len,
                       MAX_CTX);
    if (!(hp->norm_eps > 0 && hp->norm_eps < 1))
        return it_fail(err, INTACT_E_FORMAT, "bad RMSNorm epsilon %g", (double)hp->norm_eps);
    if (!(hp->rope_base > 1 && hp->rope_base < 1e12f))
        return it_fail(err, INTACT_E_FORMAT, "bad RoPE base %g", (double)hp->rope_base);
    return 0;
}

static void model_sum_bytes(intact_model *m) {
    m->weight_bytes = 0;
    for (int i = 0; i < m->n_all; i++) m->weight_bytes += m->all[i].nbytes;
}

intact_model *intact_model_load(const char *path, const char *tokenizer_path, intact_error *err) {
    return intact_model_load_ex(path, tokenizer_path, 0, err);
}

intact_model *intact_model_load_ex(const char *path, const char *tokenizer_path, unsigned flags, intact_error *err) {
    if (flags & ~(unsigned)INTACT_LOAD_NO_MMAP) {
        it_fail(err, INTACT_E_ARG, "unknown model load flags 0x%x", flags);
        return NULL;
    }
    const int mode = (flags & INTACT_LOAD_NO_MMAP) ? IT_MMAP_COPY : IT_MMAP_WEIGHTS;
    if (!path) { it_fail(err, INTACT_E_ARG, "no model path given"); return NULL; }
    FILE *f = fopen(path, "rb");
    if (!f) { it_fail(err, INTACT_E_IO, "%s: cannot open: %s", path, strerror(errno)); return NULL; }
    char magic[4] = {0};
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    intact_model *m = calloc(1, sizeof *m);
    if (!m) { it_fail(err, INTACT_E_NOMEM, "out of memory"); return NULL; }
    m->aq.bits = 16;
    m->aq.clip = 1.0f;
    int rc = (got == 4 && memcmp(magic, "GGUF", 4) == 0) ? model_load_gguf(m, path, mode, err)
                                                         : model_load_llama2c(m, path, mode, err);
    it_mmap *map = rc ? NULL : m->is_gguf ? gguf_mapping(m->gguf) : &m->l2c.map;
    // Only a file that bound as a model is populated (and maybe re-read): io/mmapfile.c.
    if (map && mode == IT_MMAP_WEIGHTS) rc = it_mmap_settle_weights(map, path, err);
    if (rc == 0) {
        model_sum_bytes(m);
        const char *slash = strrchr(path, '/');
        if (!m->name) m->name = strdup(slash ? slash + 1 : path);
        if (tokenizer_path) {
            tok_free(m->vocab);
            m->vocab = tok_load_llama2c(tokenizer_path, m->hp.n_vocab, err);
            if (!m->vocab) rc = -1;
        }
    }
    if (rc == 0 && m->vocab && tok_n_vocab(m->vocab) > m->hp.n_vocab) {
        rc = it_fail(err, INTACT_E_FORMAT, "tokenizer has %d tokens but the model only %d embeddings",
                     tok_n_vocab(m->vocab), m->hp.n_vocab);
    }
    if (rc != 0) { intact_model_free(m); return NULL; }
    return m;
}

void intact_model_free(intact_model *m) {
    if (!m) return;
    tok_free(m->vocab);
    if (m->gguf) gguf_close(m->gguf);
    if (!m->is_gguf) l2c_close(&m->l2c);
    free(m->layers);
    free(m->owned);
    free(m->all);
    free(m->names);
    for (int i = 0; i < m->n_bufs; i++) free(m->bufs[i]);
    free(m->bufs);
    free(m->name);
    free(m);
}

const char *intact_model_meta_str(const intact_model *m, const char *key) {
    if (!m->is_gguf || !m->gguf || gguf_find_key(m->gguf, key) < 0) return NULL;
    return gguf_get_str(m->gguf, key, NULL, NULL);
}

void intact_model_get_info(const intact_model *m, intact_model_info *o) {
    const it_hparams *hp = &m->hp;
    memset(o, 0, sizeof *o);
    o->format = m->is_gguf ? "gguf" : "llama2c";
    o->arch = hp->arch == INTACT_ARCH_QWEN2 ? "qwen2" : "llama";
    o->name = m->name;
    o->n_vocab = hp->n_vocab; o->dim = hp->dim; o->hidden_dim = hp->hidden_dim;
    o->n_layers = hp->n_layers; o->n_heads = hp->n_heads; o->n_kv_heads = hp->n_kv_heads;
    o->head_dim = hp->head_dim; o->ctx_len = hp->ctx_len;
    o->rope_base = hp->rope_base; o->norm_eps = hp->norm_eps; o->rope_style = hp->rope_style;
    o->tied_embeddings = m->tied;
    o->has_qkv_bias = m->layers[0].bq != NULL;
    for (int i = 0; i < m->n_all; i++) {
        int64_t n = 1;
        for (int d = 0; d < m->all[i].n_dims; d++) n *= m->all[i].ne[d];
        o->n_params += n;
    }
    o->weight_bytes = m->weight_bytes;
    const it_mmap *map = m->is_gguf ? gguf_mapping(m->gguf) : &m->l2c.map;
    o->huge_page_fraction = map && map->base ? map->huge_fraction : -1;
    o->tokenizer = !m->vocab ? "none" : tok_kind(m->vocab) == TOK_GPT2 ? "gpt2" : "spm";
    o->bos_id = m->vocab ? tok_bos(m->vocab) : -1;
    o->eos_id = m->vocab ? tok_eos(m->vocab) : -1;
    o->add_bos = m->vocab ? tok_add_bos(m->vocab) && o->bos_id >= 0 : 0;
}

int intact_model_n_tensors(const intact_model *m) { return m->n_all; }

int intact_model_tensor(const intact_model *m, int i, intact_tensor_info *o) {
    if (i < 0 || i >= m->n_all) return -1;
    const it_tensor *t = &m->all[i];
    const fmt_traits *tr = fmt_get(t->type);
    o->name = t->name;
    o->type = tr ? tr->name : "?";
    o->n_dims = t->n_dims;
    for (int d = 0; d < 4; d++) o->ne[d] = d < t->n_dims ? t->ne[d] : 1;
    o->nbytes = t->nbytes;
    return 0;
}

int intact_tokenize(const intact_model *m, const char *text, size_t len, int add_bos, int32_t *out,
                    int max, intact_error *err) {
    if (!m->vocab) return it_fail(err, INTACT_E_ARG, "model has no tokenizer (pass one with -z)");
    return tok_encode(m->vocab, text, len, add_bos, out, max, err);
}

int intact_token_to_text(const intact_model *m, int32_t prev, int32_t tok, char *buf, int cap) {
    if (!m->vocab) return -1;
    return tok_decode(m->vocab, prev, tok, buf, cap);
}

void *model_alloc(intact_model *m, size_t bytes) {
    void **nb = realloc(m->bufs, (size_t)(m->n_bufs + 1) * sizeof *nb);
    if (!nb) return NULL;
    m->bufs = nb;
    void *p = malloc(bytes ? bytes : 1);
    if (p) m->bufs[m->n_bufs++] = p;
    return p;
}

static void list_add(it_tensor *all, char (*names)[64], int *k, int layer, const it_tensor *t, const char *name) {
    all[*k] = *t;
    snprintf(names[*k], sizeof names[*k], "blk.%d.%s.weight", layer, name);
    all[*k].name = names[*k];
    (*k)++;
}

int model_refresh_tensor_list(intact_model *m) {
    const it_hparams *hp = &m->hp;
    int n = 2 + !m->tied + (IT_LAYER_NMAT + 2) * hp->n_layers;
    it_tensor *all = calloc((size_t)n, sizeof *all);
    char (*names)[64] = calloc((size_t)n, sizeof *names);
    if (!all || !names) { free(all); free(names); return -1; }
    int k = 0;
    all[k++] = m->tok_embd;
    it_tensor norm = {"output_norm.weight", IT_TYPE_F32, 1, {hp->dim, 1, 1, 1}, m->output_norm,
                      (size_t)hp->dim * sizeof(float)};
    all[k++] = norm;
    if (!m->tied) all[k++] = m->output;
    for (int l = 0; l < hp->n_layers; l++) {
        const it_layer *ly = &m->layers[l];
        it_tensor an = norm, fn = norm;
        an.data = ly->attn_norm;
        fn.data = ly->ffn_norm;
        // `info` order: each norm, then the matrices that read its output (q k v o, then gate up down).
        const it_tensor *mat[IT_LAYER_NMAT] = IT_LAYER_MATRICES(ly);
        list_add(all, names, &k, l, &an, "attn_norm");
        for (int i = 0; i < IT_LAYER_WGATE; i++) list_add(all, names, &k, l, mat[i], it_layer_matrix_names[i]);
        list_add(all, names, &k, l, &fn, "ffn_norm");
        for (int i = IT_LAYER_WGATE; i < IT_LAYER_NMAT; i++) list_add(all, names, &k, l, mat[i], it_layer_matrix_names[i]);
    }
    all[0].name = "token_embd.weight";
    if (!m->tied) all[2].name = "output.weight";
    free(m->all);
    free(m->names);
    m->all = all;
    m->names = names;
    m->n_all = k;
    m->weight_bytes = 0;
    for (int i = 0; i < k; i++) m->weight_bytes += m->all[i].nbytes;
    return 0;
}
