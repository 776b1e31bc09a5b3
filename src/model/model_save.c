// Writes the model as it is in memory (quantized or not) to a GGUF file that every intact command
// loads: standard llama/qwen2 metadata and tensor names, our integer tensor types, the tokenizer.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/gguf_copy.h"
#include "io/gguf_write.h"
#include "model/model_internal.h"

// Keys the writer sets itself (or that would be wrong after quantization) are not copied.
static int skip_key(const char *k) {
    return !strcmp(k, "general.alignment") || !strcmp(k, "general.file_type") || !strncmp(k, "intact.", 7);
}

static void add_hparams(gguf_writer *w, const intact_model *m) {
    const it_hparams *hp = &m->hp;
    const char *arch = hp->arch == INTACT_ARCH_QWEN2 ? "qwen2" : "llama";
    char k[96];
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", arch, s), k)
    gguf_writer_add_str(w, "general.architecture", arch, strlen(arch));
    gguf_writer_add_str(w, "general.name", m->name, strlen(m->name));
    gguf_writer_add_u32(w, KEY("context_length"), (uint32_t)hp->ctx_len);
    gguf_writer_add_u32(w, KEY("embedding_length"), (uint32_t)hp->dim);
    gguf_writer_add_u32(w, KEY("block_count"), (uint32_t)hp->n_layers);
    gguf_writer_add_u32(w, KEY("feed_forward_length"), (uint32_t)hp->hidden_dim);
    gguf_writer_add_u32(w, KEY("attention.head_count"), (uint32_t)hp->n_heads);
    gguf_writer_add_u32(w, KEY("attention.head_count_kv"), (uint32_t)hp->n_kv_heads);
    gguf_writer_add_u32(w, KEY("rope.dimension_count"), (uint32_t)hp->head_dim);
    gguf_writer_add_f32(w, KEY("rope.freq_base"), hp->rope_base);
    gguf_writer_add_f32(w, KEY("attention.layer_norm_rms_epsilon"), hp->norm_eps);
#undef KEY
}

// llama.cpp's general.file_type (enum llama_ftype) for a model whose layer matrices are in a ggml
// type; -1 for intact's own formats (no llama_ftype describes them).
static int ggml_file_type(const char *format) {
    static const struct { const char *f; int ft; } k[] = {
        {"q4_0", 2}, {"q4_1", 3}, {"q8_0", 7}, {"q5_0", 8}, {"q4_K", 14 /* Q4_K_S: every matrix q4_K */},
        {"q6_K", 18},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (!strcmp(format, k[i].f)) return k[i].ft;
    return -1;
}

static void add_matrix(gguf_writer *w, const char *name, const it_tensor *t) {
    gguf_writer_add_tensor(w, name, t->type, 2, t->ne, t->data, t->nbytes);
}

static void add_vector(gguf_writer *w, const char *name, const float *v, int64_t n) {
    if (v) gguf_writer_add_tensor(w, name, IT_TYPE_F32, 1, &n, v, (size_t)n * sizeof(float));
}

int intact_model_save(const intact_model *m, const char *path, intact_error *err) {
    gguf_writer *w = gguf_writer_new();
    if (!w) return it_fail(err, INTACT_E_NOMEM, "out of memory");
    const it_hparams *hp = &m->hp;
    if (m->is_gguf) {
        // The source's metadata (hyperparameters, tokenizer, provenance) is kept verbatim.
        for (int64_t i = 0; i < gguf_n_kv(m->gguf); i++)
            if (!skip_key(gguf_key_name(m->gguf, i))) gguf_copy_kv(m->gguf, i, w);
    } else {
        add_hparams(w, m);
        if (m->vocab && tok_export_gguf(m->vocab, w, err) != 0) {
            gguf_writer_free(w);
            return -1;
        }
    }
    if (m->quant.method[0]) {
        gguf_writer_add_str(w, "intact.quant.method", m->quant.method, strlen(m->quant.method));
        if (m->quant.format[0]) {   // a ggml type: its name says bits and blocks
            gguf_writer_add_str(w, "intact.quant.format", m->quant.format, strlen(m->quant.format));
            gguf_writer_add_u32(w, "general.file_type", (uint32_t)ggml_file_type(m->quant.format));
        } else {
            gguf_writer_add_u32(w, "intact.quant.bits", (uint32_t)m->quant.bits);
            gguf_writer_add_u32(w, "intact.quant.group", (uint32_t)m->quant.group);
            gguf_writer_add_bool(w, "intact.quant.sym", m->quant.sym);
        }
    }
    // A rotated model (quant/rotate.h) only runs right with its online Hadamard transform.
    if (m->rot_down_block) gguf_writer_add_u32(w, "intact.rotate.down_block", (uint32_t)m->rot_down_block);

    add_matrix(w, "token_embd.weight", &m->tok_embd);
    add_vector(w, "output_norm.weight", m->output_norm, hp->dim);
    if (!m->tied) add_matrix(w, "output.weight", &m->output);
    add_vector(w, "rope_freqs.weight", m->rope_freqs, hp->head_dim / 2);
    int64_t kv_dim = (int64_t)hp->head_dim * hp->n_kv_heads;
    char n[96];
#define NAME(s) (snprintf(n, sizeof n, "blk.%d." s, l), n)
    for (int l = 0; l < hp->n_layers; l++) {
        const it_layer *ly = &m->layers[l];
        add_vector(w, NAME("attn_norm.weight"), ly->attn_norm, hp->dim);
        add_matrix(w, NAME("attn_q.weight"), &ly->wq);
        add_matrix(w, NAME("attn_k.weight"), &ly->wk);
        add_matrix(w, NAME("attn_v.weight"), &ly->wv);
        add_vector(w, NAME("attn_q.bias"), ly->bq, hp->dim);
        add_vector(w, NAME("attn_k.bias"), ly->bk, kv_dim);
        add_vector(w, NAME("attn_v.bias"), ly->bv, kv_dim);
        add_matrix(w, NAME("attn_output.weight"), &ly->wo);
        add_vector(w, NAME("ffn_norm.weight"), ly->ffn_norm, hp->dim);
        add_matrix(w, NAME("ffn_gate.weight"), &ly->w_gate);
        add_matrix(w, NAME("ffn_up.weight"), &ly->w_up);
        add_matrix(w, NAME("ffn_down.weight"), &ly->w_down);
    }
#undef NAME
    int rc = gguf_writer_write_file(w, path, err);
    gguf_writer_free(w);
    return rc;
}
