// libFuzzer target for the GGUF reader: any input must either parse or fail with a message, and a
// parsed file must be safe to walk through every getter.
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "io/gguf.h"

static volatile uint64_t g_sink;  // keep the reads below from being optimized away
static volatile double g_fsink;

static void fuzz_walk_kv(const gguf_file *f, int64_t i) {
    const char *key = gguf_key_name(f, i);
    intact_error err;
    uint64_t u = 0, n = 0;
    int64_t s = 0;
    double d = 0;
    float x = 0;
    int b = 0, et = 0;
    size_t len = 0;
    if (gguf_find_key(f, key) != i) __builtin_trap();   // keys are unique, so lookup must round-trip
    gguf_get_u64(f, key, &u, &err);
    gguf_get_i64(f, key, &s, &err);
    gguf_get_f32(f, key, &x, &err);
    gguf_get_f64(f, key, &d, &err);
    gguf_get_bool(f, key, &b, &err);
    const char *str = gguf_get_str(f, key, &len, &err);
    if (str && (strlen(str) > len)) __builtin_trap();
    if (gguf_get_arr(f, key, &et, &n, &err) == 0) {
        for (uint64_t j = 0; j <= n && j < 4096; j++) {
            gguf_arr_f32(f, key, j, &x);
            gguf_arr_i64(f, key, j, &s);
            const char *e = gguf_arr_str(f, key, j, &len);
            if (e) for (size_t k = 0; k < len; k++) u += (unsigned char)e[k];
        }
    }
    g_sink += u + (uint64_t)s + (uint64_t)b + (uint64_t)gguf_key_type(f, i);
    g_fsink += (double)x + d;
}

static void fuzz_walk_tensor(const gguf_file *f, int64_t i) {
    const gguf_tensor_info *t = gguf_tensor(f, i);
    if (!t || gguf_find_tensor(f, t->name) != t) __builtin_trap();
    const unsigned char *p = t->data;
    if (t->nbytes) g_sink += p[0] + p[t->nbytes - 1];   // first and last byte must be inside the buffer
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    intact_error err = {0, ""};
    gguf_file *f = gguf_open_buffer(data, size, &err);
    if (!f) {
        if (!err.msg[0] || strchr(err.msg, '\n')) __builtin_trap();
        return 0;
    }
    for (int64_t i = 0; i < gguf_n_kv(f); i++) fuzz_walk_kv(f, i);
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) fuzz_walk_tensor(f, i);
    gguf_close(f);
    return 0;
}
