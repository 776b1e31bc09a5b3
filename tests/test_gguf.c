// GGUF reader and writer: the real stories260K.gguf (values checked independently with Python's
// struct module), a writer round trip over every value type, and a suite of corrupt files that
// must all fail cleanly with a message naming the problem.
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "formats/formats.h"
#include "io/gguf.h"
#include "io/gguf_write.h"

// ------------------------------------------------------------------------------------ helpers

typedef struct bytes {
    unsigned char *p;
    size_t n;
} bytes;

static bytes read_file(const char *path) {
    bytes b = {NULL, 0};
    FILE *fp = fopen(path, "rb");
    if (!fp) return b;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    b.p = malloc(n > 0 ? (size_t)n : 1);
    if (b.p && n > 0 && fread(b.p, 1, (size_t)n, fp) == (size_t)n) b.n = (size_t)n;
    fclose(fp);
    return b;
}

// Exact-size copy so AddressSanitizer catches any read past the end. (noinline: GCC's object-size
// warnings otherwise trace impossible sizes through the callers.)
__attribute__((noinline)) static bytes copy_prefix(bytes src, size_t n) {
    bytes b = {malloc(n ? n : 1), n};
    if (n) memcpy(b.p, src.p, n);
    return b;
}

// Large zero buffers from mmap: pages never touched cost nothing (calloc under ASan would touch them).
static bytes zero_bytes(size_t n) {
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) abort();
    return (bytes){p, n};
}

static size_t find_bytes(bytes b, const char *pat) {
    size_t m = strlen(pat);
    for (size_t i = 0; i + m <= b.n; i++)
        if (!memcmp(b.p + i, pat, m)) return i;
    fprintf(stderr, "pattern '%s' not found\n", pat);
    abort();
}

__attribute__((noinline)) static void put_le(bytes b, size_t off, uint64_t v, int n) {
    for (int i = 0; i < n; i++) b.p[off + i] = (unsigned char)(v >> (8 * i));
}

// Asserts that parsing fails with a one-line message containing want and the given code (-1: any).
static void expect_fail(bytes b, const char *want, int code, const char *what) {
    intact_error err = {0, ""};
    gguf_file *f = gguf_open_buffer(b.p, b.n, &err);
    CHECK(f == NULL, "%s: parse unexpectedly succeeded", what);
    gguf_close(f);
    CHECK(strstr(err.msg, want) != NULL, "%s: message '%s' lacks '%s'", what, err.msg, want);
    CHECK(code < 0 || err.code == code, "%s: code %d, want %d (%s)", what, err.code, code, err.msg);
    CHECK(err.msg[0] && !strchr(err.msg, '\n'), "%s: message must be one non-empty line", what);
}

// Copies base, patches n bytes at off with v, and expects failure.
static void expect_patch_fail(bytes base, size_t off, uint64_t v, int n, const char *want, int code,
                              const char *what) {
    bytes b = copy_prefix(base, base.n);
    put_le(b, off, v, n);
    expect_fail(b, want, code, what);
    free(b.p);
}

// ------------------------------------------------------------------------------------ real file

static void test_stories(void) {
    char path[512];
    th_shared("models/stories260K.gguf", path, sizeof path);
    int have = 1;
    TEST_CASE("stories260K.gguf parses (file present)") { have = 0; SKIP_UNLESS(path); have = 1; }
    if (!have) return;
    intact_error err = {0, ""};
    gguf_file *f = gguf_open(path, &err);
    TEST_CASE("stories260K.gguf parses") { CHECK(f != NULL, "%s", err.msg); }
    if (!f) return;
    TEST_CASE("stories260K.gguf header and hparams") {
        uint64_t u = 0;
        float eps = 0;
        size_t len = 0;
        CHECK(gguf_version(f) == 3, "version %u", gguf_version(f));
        CHECK(gguf_n_tensors(f) == 48, "%lld tensors", (long long)gguf_n_tensors(f));
        CHECK(gguf_n_kv(f) == 19, "%lld keys", (long long)gguf_n_kv(f));
        CHECK(gguf_alignment(f) == 32 && gguf_data_offset(f) == 14176, "data at %zu", gguf_data_offset(f));
        struct { const char *key; uint64_t want; } ints[] = {
            {"llama.embedding_length", 64}, {"llama.block_count", 5}, {"llama.attention.head_count", 8},
            {"llama.attention.head_count_kv", 4}, {"llama.feed_forward_length", 172},
            {"llama.context_length", 128}, {"llama.rope.dimension_count", 8},
            {"tokenizer.ggml.bos_token_id", 1}, {"tokenizer.ggml.eos_token_id", 2},
            {"tokenizer.ggml.padding_token_id", 4294967295u},
        };
        for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
            CHECK(gguf_get_u64(f, ints[i].key, &u, &err) == 0 && u == ints[i].want, "%s = %llu (%s)", ints[i].key,
                  (unsigned long long)u, err.msg);
        }
        CHECK(gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &eps, &err) == 0, "%s", err.msg);
        CHECK_NEAR(eps, 1e-5, 1e-9);
        const char *m = gguf_get_str(f, "tokenizer.ggml.model", &len, &err);
        CHECK(m && len == 5 && !strcmp(m, "llama"), "model '%s'", m ? m : "(null)");
        m = gguf_get_str(f, "general.architecture", NULL, &err);
        CHECK(m && !strcmp(m, "llama"), "arch");
        CHECK(gguf_find_key(f, "general.name") == 5, "key index %lld", (long long)gguf_find_key(f, "general.name"));
        CHECK(gguf_key_type(f, 18) == GGUF_T_F32, "type of key 18");
        CHECK(!strcmp(gguf_key_name(f, 0), "tokenizer.ggml.tokens"), "first key");
        CHECK(gguf_key_name(f, 19) == NULL && gguf_key_name(f, -1) == NULL, "out of range key");
        CHECK(gguf_find_key(f, "llama.nope") == -1, "absent key");
    }
    TEST_CASE("stories260K.gguf vocab arrays") {
        int et = -1;
        uint64_t n = 0;
        size_t len = 0;
        CHECK(gguf_get_arr(f, "tokenizer.ggml.tokens", &et, &n, &err) == 0 && et == GGUF_T_STRING && n == 512,
              "tokens %d %llu", et, (unsigned long long)n);
        const char *s = gguf_arr_str(f, "tokenizer.ggml.tokens", 259, &len);
        CHECK(s && len == 4 && !memcmp(s, "\xe2\x96\x81t", 4), "token 259");
        s = gguf_arr_str(f, "tokenizer.ggml.tokens", 300, &len);
        CHECK(s && len == 5 && !memcmp(s, "\xe2\x96\x81ha", 5), "token 300");
        s = gguf_arr_str(f, "tokenizer.ggml.tokens", 3, &len);
        CHECK(s && len == 6 && !memcmp(s, "<0x00>", 6), "token 3");
        CHECK(gguf_arr_str(f, "tokenizer.ggml.tokens", 512, &len) == NULL, "index past end");
        CHECK(gguf_arr_str(f, "tokenizer.ggml.scores", 0, &len) == NULL, "not a string array");
        float sc = 1;
        CHECK(gguf_arr_f32(f, "tokenizer.ggml.scores", 259, &sc) == 0 && sc == 0.0f && signbit(sc), "score 259");
        CHECK(gguf_arr_f32(f, "tokenizer.ggml.scores", 300, &sc) == 0 && sc == -41.0f, "score 300 %g", sc);
        CHECK(gguf_arr_f32(f, "tokenizer.ggml.scores", 511, &sc) == 0 && sc == -252.0f, "score 511 %g", sc);
        int64_t tt = 0;
        CHECK(gguf_arr_i64(f, "tokenizer.ggml.token_type", 0, &tt) == 0 && tt == 2, "type 0");
        CHECK(gguf_arr_i64(f, "tokenizer.ggml.token_type", 3, &tt) == 0 && tt == 6, "type 3");
        CHECK(gguf_arr_i64(f, "tokenizer.ggml.scores", 3, &tt) == -1, "float array is not integer");
    }
    TEST_CASE("stories260K.gguf tensors") {
        const gguf_tensor_info *t = gguf_find_tensor(f, "blk.0.attn_k.weight");
        CHECK(t && t->n_dims == 2 && t->ne[0] == 64 && t->ne[1] == 32 && t->ne[2] == 1 && t->type == 0 &&
              t->nbytes == 64 * 32 * 4, "attn_k");
        t = gguf_find_tensor(f, "output.weight");
        CHECK(t && t->ne[0] == 64 && t->ne[1] == 512, "output.weight");
        if (t) {
            float x;  // row 259 col 5: equals the .bin's token embedding (converted from the same model)
            memcpy(&x, (const char *)t->data + 4 * (259 * 64 + 5), 4);
            CHECK(x == -0.3447273075580597f, "output[259][5] = %.9g", x);
        }
        t = gguf_tensor(f, 0);
        CHECK(t && !strcmp(t->name, "token_embd.weight"), "tensor 0");
        if (t) {
            float x;
            memcpy(&x, t->data, 4);
            CHECK(x == -0.29474878311157227f, "token_embd[0] = %.9g", x);
        }
        CHECK(gguf_tensor(f, 48) == NULL && gguf_find_tensor(f, "nope") == NULL, "absent tensor");
        t = gguf_tensor(f, 47);
        CHECK(t && (const char *)t->data + t->nbytes == (const char *)gguf_tensor(f, 0)->data + 1185376 - 14176,
              "last tensor ends at the end of the file");
    }
    TEST_CASE("getter errors name the key") {
        uint64_t u;
        float x;
        CHECK(gguf_get_u64(f, "llama.missing", &u, &err) == -1 && strstr(err.msg, "'llama.missing' not found"),
              "%s", err.msg);
        CHECK(gguf_get_u64(f, "general.name", &u, &err) == -1 && strstr(err.msg, "has type string"), "%s", err.msg);
        CHECK(gguf_get_f32(f, "llama.block_count", &x, &err) == -1 && strstr(err.msg, "llama.block_count"), "%s",
              err.msg);
        CHECK(gguf_get_str(f, "llama.block_count", NULL, &err) == NULL, "u32 as string");
        CHECK(strncmp(err.msg, path, strlen(path)) == 0, "message starts with the path: %s", err.msg);
    }
    gguf_close(f);
}

static void test_open_errors(void) {
    TEST_CASE("gguf_open I/O errors") {
        intact_error err = {0, ""};
        CHECK(gguf_open("/nonexistent/x.gguf", &err) == NULL && err.code == INTACT_E_IO &&
              strstr(err.msg, "/nonexistent/x.gguf") && strstr(err.msg, "No such file"), "%s", err.msg);
        char tmpl[] = "/tmp/intact_empty_XXXXXX";
        int fd = mkstemp(tmpl);
        CHECK(fd >= 0, "mkstemp");
        if (fd >= 0) {
            close(fd);
            CHECK(gguf_open(tmpl, &err) == NULL && strstr(err.msg, "file is empty") && strstr(err.msg, tmpl), "%s",
                  err.msg);
            unlink(tmpl);
        }
        CHECK(gguf_open_buffer(NULL, 0, &err) == NULL && strstr(err.msg, "gguf: truncated"), "%s", err.msg);
        CHECK(gguf_open_buffer(NULL, 0, NULL) == NULL, "NULL err is allowed");
    }
}

// ------------------------------------------------------------------------------------ writer

static float g_f32_data[8 * 3];
static uint16_t g_f16_data[8];
static uint16_t g_bf16_data[16];
static unsigned char g_q8_data[2 * 2 * 34];

static gguf_writer *round_trip_writer(void) {
    for (int i = 0; i < 24; i++) g_f32_data[i] = (float)i * 0.5f - 3.0f;
    for (int i = 0; i < 8; i++) g_f16_data[i] = (uint16_t)(0x3c00 + i);
    for (int i = 0; i < 16; i++) g_bf16_data[i] = (uint16_t)(0x3f80 + i);
    for (int i = 0; i < (int)sizeof g_q8_data; i++) g_q8_data[i] = (unsigned char)(i * 7);
    gguf_writer *w = gguf_writer_new();
    static const char *strs[] = {"", "x", "\xe2\x96\x81t"};
    static const float fa[] = {1.5f, -2.0f, 1e-30f};
    static const int32_t ia[] = {-7, 0, INT32_MAX};
    static const uint8_t u8a[] = {0, 255};
    static const int64_t i64a[] = {INT64_MIN, 5};
    static const uint64_t u64a[] = {UINT64_MAX, 9};
    static const uint8_t ba[] = {1, 0, 1};
    static const double f64a[] = {1e300, -0.25};
    gguf_writer_add_str(w, "general.architecture", "llama", 5);
    gguf_writer_add_u8(w, "t.u8", 200);
    gguf_writer_add_i8(w, "t.i8", -100);
    gguf_writer_add_u16(w, "t.u16", 60000);
    gguf_writer_add_i16(w, "t.i16", -30000);
    gguf_writer_add_u32(w, "t.u32", 4000000000u);
    gguf_writer_add_i32(w, "t.i32", -2000000000);
    gguf_writer_add_u64(w, "t.u64", (1ull << 63) + 5);
    gguf_writer_add_i64(w, "t.i64", -(1ll << 62));
    gguf_writer_add_f32(w, "t.f32", 3.5f);
    gguf_writer_add_f64(w, "t.f64", 1e300);
    gguf_writer_add_bool(w, "t.bool", 1);
    gguf_writer_add_str(w, "t.str", "h\xc3\xa9llo", 6);
    gguf_writer_add_str(w, "t.empty", "", 0);
    gguf_writer_add_arr_str(w, "t.arr_str", strs, NULL, 3);
    gguf_writer_add_arr_f32(w, "t.arr_f32", fa, 3);
    gguf_writer_add_arr_i32(w, "t.arr_i32", ia, 3);
    gguf_writer_add_arr(w, "t.arr_u8", GGUF_T_U8, u8a, 2);
    gguf_writer_add_arr(w, "t.arr_i64", GGUF_T_I64, i64a, 2);
    gguf_writer_add_arr(w, "t.arr_u64", GGUF_T_U64, u64a, 2);
    gguf_writer_add_arr(w, "t.arr_bool", GGUF_T_BOOL, ba, 3);
    gguf_writer_add_arr(w, "t.arr_f64", GGUF_T_F64, f64a, 2);
    gguf_writer_add_arr_f32(w, "t.arr_empty", NULL, 0);
    gguf_writer_add_tensor(w, "w.f32", IT_TYPE_F32, 2, (int64_t[]){8, 3}, g_f32_data, sizeof g_f32_data);
    gguf_writer_add_tensor(w, "w.f16", IT_TYPE_F16, 1, (int64_t[]){8}, g_f16_data, sizeof g_f16_data);
    gguf_writer_add_tensor(w, "w.bf16", IT_TYPE_BF16, 4, (int64_t[]){2, 2, 2, 2}, g_bf16_data, sizeof g_bf16_data);
    gguf_writer_add_tensor(w, "w.q8", IT_TYPE_Q8_0, 2, (int64_t[]){64, 2}, g_q8_data, sizeof g_q8_data);
    return w;
}

static void check_round_trip(gguf_file *f) {
    intact_error err = {0, ""};
    uint64_t u = 0;
    int64_t i = 0;
    double d = 0;
    float x = 0;
    int bv = -1;
    size_t len = 0;
    CHECK(gguf_n_kv(f) == 23 && gguf_n_tensors(f) == 4, "%lld kv %lld tensors", (long long)gguf_n_kv(f),
          (long long)gguf_n_tensors(f));
    CHECK(gguf_get_u64(f, "t.u8", &u, &err) == 0 && u == 200, "u8");
    CHECK(gguf_get_i64(f, "t.i8", &i, &err) == 0 && i == -100, "i8");
    CHECK(gguf_get_u64(f, "t.i8", &u, &err) == -1 && strstr(err.msg, "negative value -100"), "%s", err.msg);
    CHECK(gguf_get_u64(f, "t.u16", &u, &err) == 0 && u == 60000, "u16");
    CHECK(gguf_get_i64(f, "t.i16", &i, &err) == 0 && i == -30000, "i16");
    CHECK(gguf_get_u64(f, "t.u32", &u, &err) == 0 && u == 4000000000u, "u32");
    CHECK(gguf_get_i64(f, "t.i32", &i, &err) == 0 && i == -2000000000, "i32");
    CHECK(gguf_get_u64(f, "t.u64", &u, &err) == 0 && u == (1ull << 63) + 5, "u64");
    CHECK(gguf_get_i64(f, "t.u64", &i, &err) == -1 && strstr(err.msg, "does not fit"), "%s", err.msg);
    CHECK(gguf_get_i64(f, "t.i64", &i, &err) == 0 && i == -(1ll << 62), "i64");
    CHECK(gguf_get_f32(f, "t.f32", &x, &err) == 0 && x == 3.5f, "f32");
    CHECK(gguf_get_f64(f, "t.f64", &d, &err) == 0 && d == 1e300, "f64");
    CHECK(gguf_get_f32(f, "t.f64", &x, &err) == -1 && strstr(err.msg, "does not fit in f32"), "%s", err.msg);
    CHECK(gguf_get_bool(f, "t.bool", &bv, &err) == 0 && bv == 1, "bool");
    CHECK(gguf_get_u64(f, "t.bool", &u, &err) == -1, "bool is not an integer");
    const char *s = gguf_get_str(f, "t.str", &len, &err);
    CHECK(s && len == 6 && !strcmp(s, "h\xc3\xa9llo"), "str");
    s = gguf_get_str(f, "t.empty", &len, &err);
    CHECK(s && len == 0 && s[0] == 0, "empty str");
    int et = -1;
    uint64_t n = 0;
    CHECK(gguf_get_arr(f, "t.arr_str", &et, &n, &err) == 0 && et == GGUF_T_STRING && n == 3, "arr_str");
    s = gguf_arr_str(f, "t.arr_str", 0, &len);
    CHECK(s && len == 0, "arr_str[0]");
    s = gguf_arr_str(f, "t.arr_str", 2, &len);
    CHECK(s && len == 4 && !memcmp(s, "\xe2\x96\x81t", 4), "arr_str[2]");
    CHECK(gguf_arr_f32(f, "t.arr_f32", 2, &x) == 0 && x == 1e-30f, "arr_f32");
    CHECK(gguf_arr_i64(f, "t.arr_i32", 0, &i) == 0 && i == -7, "arr_i32[0]");
    CHECK(gguf_arr_i64(f, "t.arr_i32", 2, &i) == 0 && i == INT32_MAX, "arr_i32[2]");
    CHECK(gguf_arr_f32(f, "t.arr_i32", 0, &x) == 0 && x == -7.0f, "arr_i32 as float");
    CHECK(gguf_arr_i64(f, "t.arr_u8", 1, &i) == 0 && i == 255, "arr_u8");
    CHECK(gguf_arr_i64(f, "t.arr_i64", 0, &i) == 0 && i == INT64_MIN, "arr_i64");
    CHECK(gguf_arr_i64(f, "t.arr_u64", 0, &i) == -1, "u64 max does not fit i64");
    CHECK(gguf_arr_i64(f, "t.arr_u64", 1, &i) == 0 && i == 9, "arr_u64[1]");
    CHECK(gguf_arr_f32(f, "t.arr_f64", 0, &x) == 0 && isinf(x), "f64 1e300 -> inf");
    CHECK(gguf_arr_f32(f, "t.arr_f64", 1, &x) == 0 && x == -0.25f, "arr_f64[1]");
    CHECK(gguf_get_arr(f, "t.arr_bool", &et, &n, &err) == 0 && et == GGUF_T_BOOL && n == 3, "arr_bool");
    CHECK(gguf_get_arr(f, "t.arr_empty", &et, &n, &err) == 0 && n == 0, "empty array");
    CHECK(gguf_arr_f32(f, "t.arr_empty", 0, &x) == -1, "index past an empty array");
    CHECK(gguf_arr_f32(f, "t.str", 0, &x) == -1 && gguf_arr_f32(f, "nope", 0, &x) == -1, "not arrays");
    const struct { const char *name; int type, nd; int64_t ne0; const void *data; size_t nb; } want[] = {
        {"w.f32", IT_TYPE_F32, 2, 8, g_f32_data, sizeof g_f32_data},
        {"w.f16", IT_TYPE_F16, 1, 8, g_f16_data, sizeof g_f16_data},
        {"w.bf16", IT_TYPE_BF16, 4, 2, g_bf16_data, sizeof g_bf16_data},
        {"w.q8", IT_TYPE_Q8_0, 2, 64, g_q8_data, sizeof g_q8_data},
    };
    const char *prev_end = NULL;
    for (int k = 0; k < 4; k++) {
        const gguf_tensor_info *t = gguf_tensor(f, k);
        CHECK(t && gguf_find_tensor(f, want[k].name) == t, "tensor %d", k);
        if (!t) continue;
        CHECK(!strcmp(t->name, want[k].name) && (int)t->type == want[k].type && t->n_dims == want[k].nd &&
              t->ne[0] == want[k].ne0 && t->nbytes == want[k].nb && !memcmp(t->data, want[k].data, want[k].nb),
              "tensor %s differs", want[k].name);
        CHECK(!prev_end || (const char *)t->data >= prev_end, "tensors in order");
        prev_end = (const char *)t->data + t->nbytes;
    }
    const gguf_tensor_info *t = gguf_find_tensor(f, "w.bf16");
    CHECK(t && t->ne[1] == 2 && t->ne[2] == 2 && t->ne[3] == 2, "4-d shape");
    t = gguf_find_tensor(f, "w.f16");
    CHECK(t && t->ne[1] == 1 && t->ne[2] == 1 && t->ne[3] == 1, "unused dims are 1");
}

static void test_writer(void) {
    gguf_writer *w = round_trip_writer();
    void *mem = NULL;
    size_t size = 0;
    intact_error err = {0, ""};
    TEST_CASE("writer round trip in memory") {
        CHECK(gguf_writer_write_mem(w, &mem, &size, &err) == 0, "%s", err.msg);
        CHECK(size == gguf_writer_size(w) && size % 32 == 0, "size %zu", size);
        gguf_file *f = mem ? gguf_open_buffer(mem, size, &err) : NULL;
        CHECK(f != NULL, "%s", err.msg);
        if (f) {
            CHECK(gguf_version(f) == 3 && gguf_data_offset(f) % 32 == 0, "header");
            for (int64_t k = 0; k < gguf_n_tensors(f); k++)
                CHECK(((const unsigned char *)gguf_tensor(f, k)->data - (const unsigned char *)mem) % 32 == 0,
                      "tensor %lld aligned", (long long)k);
            check_round_trip(f);
        }
        gguf_close(f);
    }
    TEST_CASE("writer round trip through a file (atomic rename)") {
        char dir[] = "/tmp/intact_gguf_XXXXXX", path[64];
        CHECK(mkdtemp(dir) != NULL, "mkdtemp");
        snprintf(path, sizeof path, "%s/out.gguf", dir);
        CHECK(gguf_writer_write_file(w, path, &err) == 0, "%s", err.msg);
        gguf_file *f = gguf_open(path, &err);
        CHECK(f != NULL, "%s", err.msg);
        if (f) check_round_trip(f);
        gguf_close(f);
        bytes b = read_file(path);
        CHECK(b.n == size && mem && !memcmp(b.p, mem, size), "file and memory output are identical");
        free(b.p);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "ls %s | grep -c tmp >/dev/null", dir);
        CHECK(system(cmd) != 0, "no temporary file left behind");
        char bad[96];
        snprintf(bad, sizeof bad, "%s/missing_dir/out.gguf", dir);
        CHECK(gguf_writer_write_file(w, bad, &err) == -1 && err.code == INTACT_E_IO && strstr(err.msg, bad), "%s",
              err.msg);
        unlink(path);
        rmdir(dir);
    }
    free(mem);
    gguf_writer_free(w);
    TEST_CASE("writer rejects bad input") {
        gguf_writer *v = gguf_writer_new();
        float d[4] = {0};
        CHECK(gguf_writer_add_u32(v, "a", 1) == 0, "first key");
        CHECK(gguf_writer_add_u32(v, "a", 2) == -1, "duplicate key");
        CHECK(gguf_writer_write_mem(v, &mem, &size, &err) == -1 && strstr(err.msg, "duplicate key 'a'"), "%s",
              err.msg);
        gguf_writer_free(v);
        v = gguf_writer_new();
        CHECK(gguf_writer_add_tensor(v, "t", IT_TYPE_F32, 1, (int64_t[]){4}, d, 12) == -1, "wrong nbytes");
        gguf_writer_free(v);
        v = gguf_writer_new();
        CHECK(gguf_writer_add_tensor(v, "t", IT_TYPE_Q8_0, 1, (int64_t[]){4}, d, 16) == -1, "partial block");
        gguf_writer_free(v);
        v = gguf_writer_new();
        CHECK(gguf_writer_add_u32(v, "general.alignment", 3) == -1, "alignment 3");
        gguf_writer_free(v);
        v = gguf_writer_new();
        CHECK(gguf_writer_add_tensor(v, "t", IT_TYPE_F32, 1, (int64_t[]){4}, d, 16) == 0, "tensor");
        CHECK(gguf_writer_add_tensor(v, "t", IT_TYPE_F32, 1, (int64_t[]){4}, d, 16) == -1, "duplicate tensor");
        gguf_writer_free(v);
    }
    TEST_CASE("custom alignment 64 and an empty file") {
        gguf_writer *v = gguf_writer_new();
        float d[3] = {1, 2, 3};
        gguf_writer_add_u32(v, "general.alignment", 64);
        gguf_writer_add_tensor(v, "a", IT_TYPE_F32, 1, (int64_t[]){3}, d, 12);
        gguf_writer_add_tensor(v, "b", IT_TYPE_F32, 1, (int64_t[]){3}, d, 12);
        CHECK(gguf_writer_write_mem(v, &mem, &size, &err) == 0, "%s", err.msg);
        gguf_file *f = gguf_open_buffer(mem, size, &err);
        CHECK(f && gguf_alignment(f) == 64 && gguf_data_offset(f) % 64 == 0, "%s", err.msg);
        if (f) {
            CHECK((const char *)gguf_find_tensor(f, "b")->data - (const char *)gguf_find_tensor(f, "a")->data == 64,
                  "second tensor 64 bytes after the first");
        }
        gguf_close(f);
        free(mem);
        gguf_writer_free(v);
        v = gguf_writer_new();
        CHECK(gguf_writer_write_mem(v, &mem, &size, &err) == 0 && size == 32, "empty file: %zu bytes", size);
        f = gguf_open_buffer(mem, 24, &err);  // header only, no padding: still valid
        CHECK(f && gguf_n_kv(f) == 0 && gguf_n_tensors(f) == 0, "%s", err.msg);
        gguf_close(f);
        free(mem);
        gguf_writer_free(v);
    }
}

// ------------------------------------------------------------------------------------ corrupt files
//
// Mapping from llama.cpp tests/test-gguf.cpp handcrafted cases to the cases below:
//   HEADER_BAD_MAGIC        -> "bad magic"
//   HEADER_BAD_VERSION_1    -> "version 1"; HEADER_BAD_VERSION_FUTURE -> "version 4", 0xFFFFFFFF, big-endian
//   HEADER_BAD_N_TENSORS    -> "absurd tensor_count" (2^40, 2^63, 2^64-1, over the limit)
//   HEADER_BAD_N_KV         -> "absurd kv_count" (2^40, 2^63, 2^64-1, over the limit)
//   HEADER_EMPTY            -> "custom alignment 64 and an empty file" (valid, header only)
//   KV_BAD_KEY_SIZE         -> "string lengths" (key length 2^64-1, past end, 2^63, > limit)
//   KV_BAD_TYPE             -> "unknown value types" (13, 0xFFFF, 2^32-1, array elem 13, nested arrays)
//   KV_BAD_VALUE_SIZE       -> "value shifted by one byte" (a u32 value one byte short)
//   KV_DUPLICATE_KEY        -> "duplicate key"
//   KV_SUCCESS              -> "writer round trip" (every value type)
//   TENSORS_BAD_NAME_SIZE   -> "tensor name too long" (65 bytes; spec limit 64)
//   TENSORS_BAD_N_DIMS      -> "n_dims 0 and 5"
//   TENSORS_BAD_SHAPE       -> "bad dims" (0, -1 as u64)
//   TENSORS_NE_TOO_BIG      -> "dims overflow" (2^32 x 2^32, 4*INT32_MAX x 4*INT32_MAX)
//   TENSORS_BAD_TYPE        -> "unknown tensor types" (9999, 40, -1)
//   TENSORS_BAD_OFFSET      -> "offset past end" (2^40, 2^64-32, -1)
//   TENSORS_DUPLICATE_NAME  -> "duplicate tensor"
//   TENSORS_BAD_ALIGNMENT   -> "misaligned offset"; also "general.alignment 0 / 3 / wrong type"
//   TENSORS_SUCCESS, TENSORS_CUSTOM_ALIGN -> round trip, "custom alignment 64" (llama.cpp's custom
//                              alignment is 33, which we reject: the spec requires a power of two)
//   DATA_NOT_ENOUGH_DATA    -> "truncation at every byte" (ends one byte short of the last tensor)
//   DATA_BAD_ALIGNMENT      -> "misaligned offset" in the data section
//   DATA_SUCCESS, DATA_CUSTOM_ALIGN -> round trip, "custom alignment 64"
// Beyond llama.cpp: bool values other than 0/1, overlapping tensors, q8_0 rows that are not whole
// blocks, NUL bytes in keys, and the same mutations applied to the real stories260K.gguf.

// A small valid file whose fields are easy to find by name.
static bytes mini_file(void) {
    static float fdata[16];
    static unsigned char qdata[68];
    static const char *strs[] = {"a", "bc"};
    static const float fa[] = {1, 2, 3};
    static const uint8_t ba[] = {0, 1};
    gguf_writer *w = gguf_writer_new();
    gguf_writer_add_str(w, "general.architecture", "llama", 5);
    gguf_writer_add_u32(w, "test.k1", 7);
    gguf_writer_add_u32(w, "test.k2", 8);
    gguf_writer_add_bool(w, "test.bool", 1);
    gguf_writer_add_arr_str(w, "test.arr", strs, NULL, 2);
    gguf_writer_add_arr_f32(w, "test.f32arr", fa, 3);
    gguf_writer_add_arr(w, "test.boolarr", GGUF_T_BOOL, ba, 2);
    gguf_writer_add_tensor(w, "t.f32", IT_TYPE_F32, 2, (int64_t[]){8, 2}, fdata, sizeof fdata);
    gguf_writer_add_tensor(w, "t.q80", IT_TYPE_Q8_0, 2, (int64_t[]){32, 2}, qdata, sizeof qdata);
    bytes b = {NULL, 0};
    void *mem = NULL;
    intact_error err;
    if (gguf_writer_write_mem(w, &mem, &b.n, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        abort();
    }
    b.p = mem;
    gguf_writer_free(w);
    return b;
}

// Every prefix of the file up to the end of the last tensor's data must fail (and not crash).
static void truncation_sweep(bytes base, size_t dense_end, size_t step, const char *what) {
    intact_error err = {0, ""};
    gguf_file *f = gguf_open_buffer(base.p, base.n, &err);
    size_t data_end = 0;
    for (int64_t i = 0; f && i < gguf_n_tensors(f); i++) {
        const gguf_tensor_info *t = gguf_tensor(f, i);
        size_t end = (size_t)((const unsigned char *)t->data - base.p) + t->nbytes;
        if (end > data_end) data_end = end;
    }
    gguf_close(f);
    CHECK(data_end > 0, "%s: base file has tensor data", what);
    if (!data_end) return;
    int bad = 0;
    for (size_t n = 0; n < data_end; n += n < dense_end ? 1 : step) {
        bytes b = copy_prefix(base, n);
        f = gguf_open_buffer(b.p, b.n, &err);
        if (f || !(strstr(err.msg, "truncated") || strstr(err.msg, "past the end"))) {
            if (bad++ < 5) CHECK(0, "%s: prefix of %zu bytes: %s", what, n, f ? "accepted" : err.msg);
        }
        gguf_close(f);
        free(b.p);
    }
    bytes b = copy_prefix(base, data_end - 1);   // one byte short of the last tensor
    expect_fail(b, "lies past the end of the file", INTACT_E_FORMAT, what);
    free(b.p);
    b = copy_prefix(base, data_end);
    f = gguf_open_buffer(b.p, b.n, &err);
    CHECK(f != NULL, "%s: file ending right after the last tensor is valid: %s", what, err.msg);
    gguf_close(f);
    free(b.p);
}

static void test_corrupt_header(bytes m) {
    TEST_CASE("bad magic") {
        expect_patch_fail(m, 0, 'X', 1, "bad magic (not a GGUF file)", INTACT_E_FORMAT, "magic");
        bytes b = copy_prefix(m, 3);
        expect_fail(b, "truncated", INTACT_E_FORMAT, "3-byte file");
        free(b.p);
    }
    TEST_CASE("bad versions") {
        expect_patch_fail(m, 4, 1, 4, "GGUF version 1 is not supported", INTACT_E_UNSUPPORTED, "v1");
        expect_patch_fail(m, 4, 4, 4, "GGUF version 4 is not supported", INTACT_E_UNSUPPORTED, "v4");
        expect_patch_fail(m, 4, 0, 4, "GGUF version 0 is not supported", INTACT_E_UNSUPPORTED, "v0");
        expect_patch_fail(m, 4, 0xFFFFFFFFu, 4, "GGUF version 4294967295", INTACT_E_UNSUPPORTED, "v-1");
        expect_patch_fail(m, 4, 0x03000000u, 4, "big-endian", INTACT_E_UNSUPPORTED, "big-endian");
        bytes b = copy_prefix(m, m.n);
        put_le(b, 4, 2, 4);
        intact_error err;
        gguf_file *f = gguf_open_buffer(b.p, b.n, &err);
        CHECK(f && gguf_version(f) == 2, "v2 is accepted");
        gguf_close(f);
        free(b.p);
    }
    TEST_CASE("absurd tensor_count") {
        expect_patch_fail(m, 8, 1ull << 40, 8, "tensor count 1099511627776 cannot fit", INTACT_E_FORMAT, "2^40");
        expect_patch_fail(m, 8, 1ull << 63, 8, "cannot fit", INTACT_E_FORMAT, "2^63");
        expect_patch_fail(m, 8, UINT64_MAX, 8, "cannot fit", INTACT_E_FORMAT, "2^64-1");
        expect_patch_fail(m, 8, 3, 8, "tensor info 2", INTACT_E_FORMAT, "one more than present");
    }
    TEST_CASE("absurd kv_count") {
        expect_patch_fail(m, 16, 1ull << 40, 8, "metadata key count 1099511627776 cannot fit", INTACT_E_FORMAT,
                          "2^40");
        expect_patch_fail(m, 16, 1ull << 63, 8, "cannot fit", INTACT_E_FORMAT, "2^63");
        expect_patch_fail(m, 16, 1000000000, 8, "cannot fit", INTACT_E_FORMAT, "10^9 in a small file");
    }
    TEST_CASE("counts over the resource limits") {
        // Big enough buffers that only the limits can reject them.
        bytes b = zero_bytes(14000100);
        memcpy(b.p, "GGUF", 4);
        put_le(b, 4, 3, 4);
        put_le(b, 16, 1000001, 8);
        expect_fail(b, "metadata key count 1000001 exceeds the limit of 1000000", INTACT_E_LIMIT, "kv limit");
        put_le(b, 16, 0, 8);
        put_le(b, 8, 100001, 8);
        expect_fail(b, "tensor count 100001 exceeds the limit of 100000", INTACT_E_LIMIT, "tensor limit");
        munmap(b.p, b.n);
        size_t big = (64u << 20) + 64;
        b = zero_bytes(big);
        memcpy(b.p, "GGUF", 4);
        put_le(b, 4, 3, 4);
        put_le(b, 16, 1, 8);
        put_le(b, 24, (64u << 20) + 1, 8);
        expect_fail(b, "exceeds the limit of 67108864 bytes", INTACT_E_LIMIT, "string limit");
        munmap(b.p, b.n);
        size_t huge = (1u << 28) + 64;    // a u8 array one element over the 2^28 limit
        b = zero_bytes(huge);
        memcpy(b.p, "GGUF", 4);
        put_le(b, 4, 3, 4);
        put_le(b, 16, 1, 8);
        put_le(b, 24, 1, 8);
        b.p[32] = 'k';
        put_le(b, 33, GGUF_T_ARRAY, 4);
        put_le(b, 37, GGUF_T_U8, 4);
        put_le(b, 41, (1u << 28) + 1, 8);
        expect_fail(b, "array count 268435457 exceeds the limit of 268435456", INTACT_E_LIMIT, "array limit");
        munmap(b.p, b.n);
    }
}

static void test_corrupt_kv(bytes m) {
    size_t k1 = find_bytes(m, "test.k1"), k2 = find_bytes(m, "test.k2");
    size_t kb = find_bytes(m, "test.bool"), ka = find_bytes(m, "test.arr\x09");
    size_t arch = find_bytes(m, "general.architecture"), kba = find_bytes(m, "test.boolarr");
    TEST_CASE("string lengths") {
        expect_patch_fail(m, arch - 8, UINT64_MAX, 8, "key length 18446744073709551615 runs past the end",
                          INTACT_E_FORMAT, "key length -1");
        expect_patch_fail(m, arch - 8, 1ull << 63, 8, "runs past the end", INTACT_E_FORMAT, "key length 2^63");
        expect_patch_fail(m, arch - 8, m.n, 8, "truncated in metadata key 0: key length", INTACT_E_FORMAT,
                          "key length = file size");
        expect_patch_fail(m, arch + 20 + 4, 1ull << 63, 8,
                          "truncated in metadata key 0 ('general.architecture'): string value length", INTACT_E_FORMAT,
                          "value length 2^63");
        // String element 1 ("bc") of test.arr: after the key, type, elem type, count, and element 0.
        expect_patch_fail(m, ka + 8 + 4 + 4 + 8 + 8 + 1, 1ull << 40, 8, "string element 1 length", INTACT_E_FORMAT,
                          "array element length");
        expect_patch_fail(m, k1 + 3, 0, 1, "key contains a NUL byte", INTACT_E_FORMAT, "NUL in key");
    }
    TEST_CASE("array counts") {
        expect_patch_fail(m, ka + 8 + 4 + 4, 1ull << 62, 8, "array count 4611686018427387904 of string cannot fit",
                          INTACT_E_FORMAT, "string array 2^62");
        size_t fa = find_bytes(m, "test.f32arr");
        expect_patch_fail(m, fa + 11 + 4 + 4, 1ull << 62, 8, "array count", INTACT_E_FORMAT, "f32 array 2^62");
        expect_patch_fail(m, fa + 11 + 4 + 4, UINT64_MAX, 8, "cannot fit", INTACT_E_FORMAT, "f32 array -1");
    }
    TEST_CASE("unknown value types") {
        expect_patch_fail(m, k1 + 7, 13, 4, "metadata key 1 ('test.k1'): unknown value type 13", INTACT_E_UNSUPPORTED,
                          "type 13");
        expect_patch_fail(m, k1 + 7, 0xFFFF, 4, "unknown value type 65535", INTACT_E_UNSUPPORTED, "type 0xFFFF");
        expect_patch_fail(m, k1 + 7, 0xFFFFFFFFu, 4, "unknown value type 4294967295", INTACT_E_UNSUPPORTED, "type -1");
        expect_patch_fail(m, ka + 8 + 4, 13, 4, "unknown array element type 13", INTACT_E_UNSUPPORTED, "elem 13");
        expect_patch_fail(m, ka + 8 + 4, GGUF_T_ARRAY, 4, "nested arrays are not supported", INTACT_E_UNSUPPORTED,
                          "nested");
    }
    TEST_CASE("value shifted by one byte") {
        // llama.cpp's KV_BAD_VALUE_SIZE: a u32 value written with 3 bytes shifts everything after it.
        bytes b = {malloc(m.n - 1), m.n - 1};
        size_t v = k1 + 7 + 4;
        memcpy(b.p, m.p, v + 3);
        memcpy(b.p + v + 3, m.p + v + 4, m.n - v - 4);
        expect_fail(b, "gguf: ", INTACT_E_FORMAT, "shifted value");
        free(b.p);
    }
    TEST_CASE("duplicate key") {
        bytes b = copy_prefix(m, m.n);
        b.p[k2 + 6] = '1';
        expect_fail(b, "duplicate key 'test.k1'", INTACT_E_FORMAT, "dup key");
        free(b.p);
    }
    TEST_CASE("bool value 2") {
        expect_patch_fail(m, kb + 9 + 4, 2, 1, "metadata key 3 ('test.bool'): bool value 2 is not 0 or 1",
                          INTACT_E_FORMAT, "bool 2");
        expect_patch_fail(m, kba + 12 + 4 + 4 + 8 + 1, 2, 1, "bool element 1 has value 2", INTACT_E_FORMAT,
                          "bool array element");
    }
}

// Builds a file with general.alignment = 64 and checks the alignment value checks.
static void test_corrupt_alignment(void) {
    static float d[4];
    gguf_writer *w = gguf_writer_new();
    gguf_writer_add_u32(w, "general.alignment", 64);
    gguf_writer_add_tensor(w, "a", IT_TYPE_F32, 1, (int64_t[]){4}, d, sizeof d);
    bytes m = {NULL, 0};
    void *mem = NULL;
    intact_error err;
    gguf_writer_write_mem(w, &mem, &m.n, &err);
    gguf_writer_free(w);
    m.p = mem;
    size_t k = find_bytes(m, "general.alignment");
    TEST_CASE("general.alignment 0 / 3 / wrong type") {
        expect_patch_fail(m, k + 17 + 4, 0, 4, "general.alignment 0 is not a nonzero power of two", INTACT_E_FORMAT,
                          "align 0");
        expect_patch_fail(m, k + 17 + 4, 3, 4, "general.alignment 3 is not", INTACT_E_FORMAT, "align 3");
        expect_patch_fail(m, k + 17 + 4, 33, 4, "general.alignment 33 is not", INTACT_E_FORMAT, "align 33");
        expect_patch_fail(m, k + 17, GGUF_T_I32, 4, "general.alignment must be of type u32, not i32", INTACT_E_FORMAT,
                          "align i32");
        // Alignment 256: the data section moves, so the tensor no longer fits.
        expect_patch_fail(m, k + 17 + 4, 256, 4, "past the end", INTACT_E_FORMAT, "align 256");
        // Alignment 16: the data section starts 16 bytes earlier and the tensor is still inside.
        bytes b = copy_prefix(m, m.n);
        put_le(b, k + 17 + 4, 16, 4);
        gguf_file *f = gguf_open_buffer(b.p, b.n, &err);
        CHECK(f && gguf_alignment(f) == 16, "alignment 16 accepted: %s", f ? "" : err.msg);
        gguf_close(f);
        free(b.p);
    }
    free(m.p);
}

static void test_corrupt_tensors(bytes m) {
    size_t tf = find_bytes(m, "t.f32\x02"), tq = find_bytes(m, "t.q80\x02");  // name, then n_dims 2
    // Layout after a 5-byte name: n_dims @+5, ne0 @+9, ne1 @+17, type @+25, offset @+29.
    TEST_CASE("tensor name too long") {
        expect_patch_fail(m, tf - 8, 65, 8, "tensor name is 65 bytes long, the GGUF limit is 64", INTACT_E_FORMAT,
                          "name 65");
        expect_patch_fail(m, tf - 8, UINT64_MAX, 8, "tensor name length", INTACT_E_FORMAT, "name -1");
        expect_patch_fail(m, tf + 2, 0, 1, "tensor name contains a NUL byte", INTACT_E_FORMAT, "name NUL");
    }
    TEST_CASE("n_dims 0 and 5") {
        expect_patch_fail(m, tf + 5, 0, 4, "tensor info 0 ('t.f32'): n_dims 0 is not in 1..4", INTACT_E_FORMAT, "0");
        expect_patch_fail(m, tf + 5, 5, 4, "n_dims 5 is not in 1..4", INTACT_E_FORMAT, "5");
        expect_patch_fail(m, tf + 5, 0xFFFFFFFFu, 4, "n_dims 4294967295", INTACT_E_FORMAT, "-1");
    }
    TEST_CASE("bad dims") {
        expect_patch_fail(m, tf + 17, 0, 8, "dimension 1 is 0", INTACT_E_FORMAT, "dim 0");
        expect_patch_fail(m, tf + 9, UINT64_MAX, 8, "dimension 0 is 18446744073709551615", INTACT_E_FORMAT, "dim -1");
        expect_patch_fail(m, tf + 9, 1ull << 63, 8, "dimension 0", INTACT_E_FORMAT, "dim 2^63");
    }
    TEST_CASE("dims overflow") {
        bytes b = copy_prefix(m, m.n);
        put_le(b, tf + 9, 1ull << 32, 8);
        put_le(b, tf + 17, 1ull << 32, 8);
        expect_fail(b, "element count overflows", INTACT_E_FORMAT, "2^32 x 2^32");
        put_le(b, tf + 9, 4ull * INT32_MAX, 8);
        put_le(b, tf + 17, 4ull * INT32_MAX, 8);
        expect_fail(b, "element count overflows", INTACT_E_FORMAT, "llama.cpp NE_TOO_BIG");
        put_le(b, tf + 9, 1ull << 62, 8);
        put_le(b, tf + 17, 1, 8);
        expect_fail(b, "byte size overflows", INTACT_E_FORMAT, "2^62 f32 = 2^64 bytes");
        put_le(b, tf + 9, 1ull << 40, 8);
        expect_fail(b, "lies past the end", INTACT_E_FORMAT, "2^40 f32");
        free(b.p);
    }
    TEST_CASE("q8_0 row not a multiple of 32") {
        expect_patch_fail(m, tq + 9, 33, 8, "row length 33 is not a multiple of the q8_0 block size 32",
                          INTACT_E_FORMAT, "ne0 33");
        expect_patch_fail(m, tq + 9, 16, 8, "not a multiple", INTACT_E_FORMAT, "ne0 16");
    }
    TEST_CASE("unknown tensor types") {
        expect_patch_fail(m, tf + 25, 9999, 4, "tensor 't.f32' has unknown type 9999", INTACT_E_UNSUPPORTED, "9999");
        expect_patch_fail(m, tq + 25, 40, 4, "tensor 't.q80' has unknown type 40", INTACT_E_UNSUPPORTED, "40");
        expect_patch_fail(m, tq + 25, 0xFFFFFFFFu, 4, "unknown type 4294967295", INTACT_E_UNSUPPORTED, "-1");
        expect_patch_fail(m, tq + 25, 16, 4, "unknown type 16: ggml iq2_xxs is not supported", INTACT_E_UNSUPPORTED,
                          "iq2_xxs (not implemented)");
        expect_patch_fail(m, tq + 25, 9, 4, "ggml q8_1 is not supported", INTACT_E_UNSUPPORTED, "q8_1");
    }
    TEST_CASE("duplicate tensor") {
        bytes b = copy_prefix(m, m.n);
        memcpy(b.p + tq, "t.f32", 5);
        expect_fail(b, "duplicate tensor 't.f32'", INTACT_E_FORMAT, "dup tensor");
        free(b.p);
    }
    TEST_CASE("misaligned offset") {
        expect_patch_fail(m, tq + 29, 65, 8, "tensor 't.q80' offset 65 is not a multiple of the alignment 32",
                          INTACT_E_FORMAT, "65");
        expect_patch_fail(m, tq + 29, UINT64_MAX, 8, "not a multiple of the alignment", INTACT_E_FORMAT, "-1");
    }
    TEST_CASE("offset past end") {
        expect_patch_fail(m, tq + 29, 1ull << 40, 8, "tensor 't.q80' data [", INTACT_E_FORMAT, "2^40");
        expect_patch_fail(m, tq + 29, 1ull << 40, 8, "lies past the end of the file (size", INTACT_E_FORMAT, "2^40");
        expect_patch_fail(m, tq + 29, UINT64_MAX - 31, 8, "lies past the end", INTACT_E_FORMAT, "wraps around");
        expect_patch_fail(m, tq + 29, 96, 8, "lies past the end", INTACT_E_FORMAT, "just past");
    }
    TEST_CASE("overlapping tensors") {
        expect_patch_fail(m, tq + 29, 32, 8, "tensors 't.f32' and 't.q80' overlap", INTACT_E_FORMAT, "overlap");
        expect_patch_fail(m, tq + 29, 0, 8, "overlap", INTACT_E_FORMAT, "same offset");
        // Swapped order in the file is fine as long as the ranges are disjoint.
        bytes b = copy_prefix(m, m.n);
        put_le(b, tf + 29, 96, 8);
        put_le(b, tq + 29, 0, 8);
        intact_error err;
        gguf_file *f = gguf_open_buffer(b.p, b.n, &err);
        CHECK(f != NULL, "disjoint out-of-order tensors: %s", err.msg);
        gguf_close(f);
        free(b.p);
    }
}

// ggml's block types: a file with a Q4_K (256-blocks, 144 bytes) and a Q5_0 (32-blocks, 22 bytes)
// tensor; the loader must size them from the table and refuse partial blocks and short data.
static bytes kq_file(void) {
    static unsigned char q4k[3 * 144], q50[2 * 2 * 22];
    gguf_writer *w = gguf_writer_new();
    gguf_writer_add_tensor(w, "t.q4k", IT_TYPE_Q4_K, 2, (int64_t[]){256, 3}, q4k, sizeof q4k);
    gguf_writer_add_tensor(w, "t.q50", IT_TYPE_Q5_0, 2, (int64_t[]){64, 2}, q50, sizeof q50);
    bytes b = {NULL, 0};
    void *mem = NULL;
    intact_error err;
    if (gguf_writer_write_mem(w, &mem, &b.n, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        abort();
    }
    b.p = mem;
    gguf_writer_free(w);
    return b;
}

static void test_corrupt_kquant(void) {
    bytes m = kq_file();
    size_t tk = find_bytes(m, "t.q4k\x02"), t5 = find_bytes(m, "t.q50\x02");   // offsets as in mini_file
    TEST_CASE("q4_K / q5_0 tensors: byte sizes from the block geometry") {
        intact_error err;
        gguf_file *f = gguf_open_buffer(m.p, m.n, &err);
        CHECK(f && gguf_n_tensors(f) == 2, "%s", f ? "" : err.msg);
        CHECK(f && gguf_tensor(f, 0)->nbytes == 3 * 144 && gguf_tensor(f, 1)->nbytes == 2 * 2 * 22,
              "nbytes %zu %zu", f ? gguf_tensor(f, 0)->nbytes : 0, f ? gguf_tensor(f, 1)->nbytes : 0);
        gguf_close(f);
    }
    TEST_CASE("q4_K row not a multiple of 256, q5_0 row not a multiple of 32") {
        expect_patch_fail(m, tk + 9, 255, 8, "row length 255 is not a multiple of the q4_K block size 256",
                          INTACT_E_FORMAT, "ne0 255");
        expect_patch_fail(m, tk + 9, 32, 8, "not a multiple of the q4_K block size 256", INTACT_E_FORMAT, "ne0 32");
        expect_patch_fail(m, tk + 9, 384, 8, "not a multiple", INTACT_E_FORMAT, "ne0 384");
        expect_patch_fail(m, t5 + 9, 48, 8, "row length 48 is not a multiple of the q5_0 block size 32",
                          INTACT_E_FORMAT, "q5_0 ne0 48");
    }
    TEST_CASE("q4_K claims more data than the file holds") {
        expect_patch_fail(m, tk + 9, 512, 8, "tensor 't.q4k' data", INTACT_E_FORMAT, "2 blocks per row");
        expect_patch_fail(m, tk + 17, 4, 8, "lies past the end", INTACT_E_FORMAT, "4 rows");
        expect_patch_fail(m, tk + 9, 1ull << 40, 8, "lies past the end", INTACT_E_FORMAT, "2^32 blocks per row");
        expect_patch_fail(m, tk + 17, 1ull << 50, 8, "lies past the end", INTACT_E_FORMAT, "2^50 rows");
        expect_patch_fail(m, tk + 25, IT_TYPE_Q8_K, 4, "tensor 't.q4k' data", INTACT_E_FORMAT, "q8_K: 292 bytes/block");
    }
    TEST_CASE("q4_K file truncation at every byte") { truncation_sweep(m, m.n, 1, "kq"); }
    free(m.p);
}

static void test_corrupt_stories(void) {
    char path[512];
    int have = 1;
    TEST_CASE("stories260K.gguf corruptions (file present)") {
        have = 0;
        SKIP_UNLESS(th_shared("models/stories260K.gguf", path, sizeof path));
        have = 1;
    }
    if (!have) return;
    bytes s = read_file(th_shared("models/stories260K.gguf", path, sizeof path));
    TEST_CASE("stories260K.gguf read into memory") {
        CHECK(s.n == 1185376, "read %zu bytes", s.n);
    }
    if (s.n != 1185376) {
        free(s.p);
        return;
    }
    TEST_CASE("stories260K.gguf mutations") {
        expect_patch_fail(s, 0, 0, 4, "bad magic", INTACT_E_FORMAT, "magic");
        expect_patch_fail(s, 4, 1, 4, "version 1", INTACT_E_UNSUPPORTED, "v1");
        expect_patch_fail(s, 8, 1ull << 40, 8, "cannot fit", INTACT_E_FORMAT, "tensors");
        expect_patch_fail(s, 16, 1ull << 63, 8, "cannot fit", INTACT_E_FORMAT, "kv");
        expect_patch_fail(s, 24 + 8 + 21 + 4 + 4, 1ull << 62, 8, "array count", INTACT_E_FORMAT, "tokens count");
        intact_error err;
        gguf_file *f = gguf_open_buffer(s.p, s.n, &err);
        size_t t259 = f ? (size_t)((const unsigned char *)gguf_arr_str(f, "tokenizer.ggml.tokens", 259, NULL) - s.p) : 8;
        gguf_close(f);
        expect_patch_fail(s, t259 - 8, 1ull << 40, 8, "'tokenizer.ggml.tokens'): string element 259 length",
                          INTACT_E_FORMAT, "token 259 length");
        size_t ak = find_bytes(s, "blk.0.attn_k.weight");
        expect_patch_fail(s, ak + 19 + 4 + 16, 9999, 4, "tensor 'blk.0.attn_k.weight' has unknown type 9999",
                          INTACT_E_UNSUPPORTED, "type");
        expect_patch_fail(s, ak + 19 + 4 + 16 + 4, 1185376, 8, "'blk.0.attn_k.weight' data", INTACT_E_FORMAT, "offset");
        expect_patch_fail(s, ak + 19 + 4 + 16 + 4, 0, 8, "overlap", INTACT_E_FORMAT, "overlap");
        size_t aq = find_bytes(s, "blk.0.attn_q.weight");
        bytes b = copy_prefix(s, s.n);
        memcpy(b.p + aq, "blk.0.attn_k.weight", 19);
        expect_fail(b, "duplicate tensor 'blk.0.attn_k.weight'", INTACT_E_FORMAT, "dup tensor");
        free(b.p);
        size_t bc = find_bytes(s, "llama.block_count");
        b = copy_prefix(s, bc + 17 + 2);
        expect_fail(b, "truncated in metadata key 16 ('llama.block_count')", INTACT_E_FORMAT, "truncated key 16");
        free(b.p);
    }
    TEST_CASE("stories260K.gguf truncation at every byte of the header and tables") {
        if (s.n) truncation_sweep(s, 14176 + 64, 997, "stories260K");
    }
    free(s.p);
}

static void test_corrupt(void) {
    bytes m = mini_file();
    TEST_CASE("mini file is valid") {
        intact_error err;
        gguf_file *f = gguf_open_buffer(m.p, m.n, &err);
        CHECK(f && gguf_n_tensors(f) == 2 && gguf_n_kv(f) == 7, "%s", f ? "" : err.msg);
        gguf_close(f);
    }
    test_corrupt_header(m);
    test_corrupt_kv(m);
    test_corrupt_alignment();
    test_corrupt_tensors(m);
    TEST_CASE("mini file truncation at every byte") { truncation_sweep(m, m.n, 1, "mini"); }
    free(m.p);
    test_corrupt_kquant();
    test_corrupt_stories();
}

int main(void) {
    test_stories();
    test_open_errors();
    test_writer();
    test_corrupt();
    return th_finish("test_gguf");
}
