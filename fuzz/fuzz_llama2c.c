// libFuzzer target for the llama2.c loader: any input must parse or fail with a message; when it
// parses, every weight table must lie inside the input.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/llama2c.h"

static volatile float g_sink;

// First and last float of a table of n floats; ASan flags it if the table leaves the buffer.
static void fuzz_touch(const float *p, size_t n) {
    if (!p || !n) __builtin_trap();
    g_sink += p[0] + p[n - 1];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    // libFuzzer's buffer is malloc'ed (aligned); copy anyway so the alignment check is not what
    // decides, and so that the exact size is what ASan sees.
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    l2c_file f;
    intact_error err = {0, ""};
    if (l2c_parse(buf, size, &f, &err) == 0) {
        const l2c_config *c = &f.cfg;
        size_t dim = (size_t)c->dim, hid = (size_t)c->hidden_dim, L = (size_t)c->n_layers;
        size_t kv = dim * (size_t)c->n_kv_heads / (size_t)c->n_heads, V = (size_t)c->vocab_size;
        fuzz_touch(f.tok_embd, V * dim);
        fuzz_touch(f.rms_att, L * dim);
        fuzz_touch(f.wq, L * dim * dim);
        fuzz_touch(f.wk, L * kv * dim);
        fuzz_touch(f.wv, L * kv * dim);
        fuzz_touch(f.wo, L * dim * dim);
        fuzz_touch(f.rms_ffn, L * dim);
        fuzz_touch(f.w1, L * hid * dim);
        fuzz_touch(f.w2, L * dim * hid);
        fuzz_touch(f.w3, L * hid * dim);
        fuzz_touch(f.rms_final, dim);
        fuzz_touch(f.wcls, V * dim);
        l2c_close(&f);
    } else if (!err.msg[0]) {
        __builtin_trap();
    }
    free(buf);
    return 0;
}
