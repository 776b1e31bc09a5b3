// Binds a llama2.c v0 checkpoint: all weights fp32, row-major (out, in), the same memory layout as
// a GGUF tensor with ne = {in, out}.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/model_internal.h"

static it_tensor l2c_tensor(const char *name, const float *data, int64_t n_in, int64_t n_out) {
    it_tensor t = {name, IT_TYPE_F32, 2, {n_in, n_out, 1, 1}, data, (size_t)(n_in * n_out) * 4};
    return t;
}

int model_load_llama2c(intact_model *m, const char *path, int mode, intact_error *err) {
    if (l2c_open_mode(path, mode, &m->l2c, err) != 0) return -1;
    const l2c_config *c = &m->l2c.cfg;
    it_hparams *hp = &m->hp;
    hp->arch = INTACT_ARCH_LLAMA;
    hp->n_vocab = c->vocab_size;
    hp->dim = c->dim;
    hp->hidden_dim = c->hidden_dim;
    hp->n_layers = c->n_layers;
    hp->n_heads = c->n_heads;
    hp->n_kv_heads = c->n_kv_heads;
    hp->head_dim = c->dim / c->n_heads;
    hp->ctx_len = c->seq_len;
    hp->rope_base = 10000.0f;
    hp->rope_scale = 1.0f;
    hp->norm_eps = 1e-5f;
    hp->rope_style = INTACT_ROPE_NORM;
    if (model_check_hparams(hp, err) != 0) return -1;

    int L = c->n_layers;
    int64_t dim = c->dim, hid = c->hidden_dim, kv_dim = (int64_t)c->dim * c->n_kv_heads / c->n_heads;
    m->layers = calloc((size_t)L, sizeof *m->layers);
    if (!m->layers) return it_fail(err, INTACT_E_NOMEM, "out of memory");
    const l2c_file *f = &m->l2c;
    m->tok_embd = l2c_tensor("token_embd.weight", f->tok_embd, dim, c->vocab_size);
    for (int l = 0; l < L; l++) {
        it_layer *ly = &m->layers[l];
        ly->attn_norm = f->rms_att + l * dim;
        ly->ffn_norm = f->rms_ffn + l * dim;
        ly->wq = l2c_tensor("attn_q", f->wq + l * dim * dim, dim, dim);
        ly->wk = l2c_tensor("attn_k", f->wk + l * kv_dim * dim, dim, kv_dim);
        ly->wv = l2c_tensor("attn_v", f->wv + l * kv_dim * dim, dim, kv_dim);
        ly->wo = l2c_tensor("attn_output", f->wo + l * dim * dim, dim, dim);
        ly->w_gate = l2c_tensor("ffn_gate", f->w1 + l * hid * dim, dim, hid);
        ly->w_down = l2c_tensor("ffn_down", f->w2 + l * dim * hid, hid, dim);
        ly->w_up = l2c_tensor("ffn_up", f->w3 + l * hid * dim, dim, hid);
    }
    m->output_norm = f->rms_final;
    m->tied = c->shared_classifier;
    m->output = m->tied ? m->tok_embd : l2c_tensor("output.weight", f->wcls, dim, c->vocab_size);
    // `info` lists the tensors in the one canonical order (model.c), not the file's.
    if (model_refresh_tensor_list(m) != 0) return it_fail(err, INTACT_E_NOMEM, "out of memory");
    return 0;
}
