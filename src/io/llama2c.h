// llama2.c v0 checkpoints: 7 x int32 header (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
// vocab_size, seq_len; negative vocab_size = unshared classifier), then fp32 weights in this order:
// token_embedding (vocab, dim), rms_att (L, dim), wq (L, dim, dim), wk (L, kv_dim, dim),
// wv (L, kv_dim, dim), wo (L, dim, dim), rms_ffn (L, dim), w1 (L, hidden, dim), w2 (L, dim, hidden),
// w3 (L, hidden, dim), rms_final (dim), freq_cis_real (seq_len, head/2), freq_cis_imag (seq_len, head/2),
// [wcls (vocab, dim)]. The file size must match exactly; there is no magic number to trust.
#ifndef IT_IO_LLAMA2C_H
#define IT_IO_LLAMA2C_H

#include <stdint.h>
#include "intact.h"
#include "io/mmapfile.h"

typedef struct l2c_config {
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
    int shared_classifier;
} l2c_config;

typedef struct l2c_file {
    it_mmap map;
    l2c_config cfg;
    // Pointers into the mapping (fp32, row-major as described above).
    const float *tok_embd, *rms_att, *wq, *wk, *wv, *wo, *rms_ffn, *w1, *w2, *w3, *rms_final, *wcls;
} l2c_file;

int l2c_open(const char *path, l2c_file *out, intact_error *err);
// The same with a mapping mode (enum it_mmap_mode, io/mmapfile.h).
int l2c_open_mode(const char *path, int mode, l2c_file *out, intact_error *err);
// Validate and bind over a caller-owned, 4-byte aligned buffer (fuzzing, tests); out->map is not
// owned then and is left empty ({NULL, 0}), so l2c_close has nothing to unmap.
int l2c_parse(const void *data, size_t size, l2c_file *out, intact_error *err);
void l2c_close(l2c_file *f);

#endif
