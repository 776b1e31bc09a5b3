// llama2.c checkpoints: both shared models (weights checked against values read independently with
// Python's struct module at computed offsets) and corrupt headers/sizes that must fail by name.
#include <stdint.h>
#include <unistd.h>

#include "harness.h"
#include "io/llama2c.h"

typedef struct bytes {
    unsigned char *p;
    size_t n;
} bytes;

static bytes read_file(const char *path, size_t extra) {
    bytes b = {NULL, 0};
    FILE *fp = fopen(path, "rb");
    if (!fp) return b;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    b.p = calloc(1, (n > 0 ? (size_t)n : 1) + extra);
    if (b.p && n > 0 && fread(b.p, 1, (size_t)n, fp) == (size_t)n) b.n = (size_t)n;
    fclose(fp);
    return b;
}

static void set_i32(bytes b, int field, int32_t v) { memcpy(b.p + 4 * field, &v, 4); }

static void expect_fail(const void *p, size_t n, const char *want, int code, const char *what) {
    intact_error err = {0, ""};
    l2c_file f;
    int rc = l2c_parse(p, n, &f, &err);
    CHECK(rc == -1, "%s: parse unexpectedly succeeded", what);
    CHECK(strstr(err.msg, want) != NULL, "%s: message '%s' lacks '%s'", what, err.msg, want);
    CHECK(err.code == code, "%s: code %d, want %d", what, err.code, code);
    CHECK(f.tok_embd == NULL && f.wcls == NULL, "%s: pointers cleared on failure", what);
}

// Patches one header field of a copy of base and expects failure.
static void expect_header_fail(bytes base, int field, int32_t v, const char *want, const char *what) {
    bytes b = {malloc(base.n), base.n};
    memcpy(b.p, base.p, base.n);
    set_i32(b, field, v);
    expect_fail(b.p, b.n, want, INTACT_E_FORMAT, what);
    free(b.p);
}

typedef struct expect_model {
    const char *file;
    int h[7];
    size_t size;
    float emb0, emb_259_5, wq_1_3_7, w2_last, rms_final_last, wk_2_0_1;
} expect_model;

static void test_model(const expect_model *e) {
    char path[512], name[128];
    th_shared(e->file, path, sizeof path);
    int have = 1;
    snprintf(name, sizeof name, "%s present", e->file);
    TEST_CASE(name) { have = 0; SKIP_UNLESS(path); have = 1; }
    if (!have) return;
    l2c_file f;
    intact_error err = {0, ""};
    snprintf(name, sizeof name, "%s parses", e->file);
    int rc = l2c_open(path, &f, &err);
    TEST_CASE(name) { CHECK(rc == 0, "%s", err.msg); }
    if (rc) return;
    snprintf(name, sizeof name, "%s config and weights", e->file);
    TEST_CASE(name) {
        const l2c_config *c = &f.cfg;
        CHECK(c->dim == e->h[0] && c->hidden_dim == e->h[1] && c->n_layers == e->h[2] && c->n_heads == e->h[3] &&
              c->n_kv_heads == e->h[4] && c->vocab_size == e->h[5] && c->seq_len == e->h[6], "config");
        CHECK(c->shared_classifier == 1 && f.wcls == f.tok_embd, "vocab > 0 means a shared classifier");
        CHECK(f.map.size == e->size, "mapped %zu bytes", f.map.size);
        int dim = c->dim, hid = c->hidden_dim, L = c->n_layers, kv = dim * c->n_kv_heads / c->n_heads;
        CHECK((const unsigned char *)f.tok_embd == f.map.data + 28, "embedding right after the header");
        CHECK(f.tok_embd[0] == e->emb0, "tok_embd[0] = %.9g", f.tok_embd[0]);
        CHECK(f.tok_embd[259 * dim + 5] == e->emb_259_5, "tok_embd[259][5] = %.9g", f.tok_embd[259 * dim + 5]);
        CHECK(f.wq[(size_t)dim * dim + 3 * dim + 7] == e->wq_1_3_7, "wq[1][3][7]");
        CHECK(f.w2[(size_t)L * dim * hid - 1] == e->w2_last, "w2 last");
        CHECK(f.rms_final[dim - 1] == e->rms_final_last, "rms_final last = %.9g", f.rms_final[dim - 1]);
        CHECK(f.wk[(size_t)2 * kv * dim + 1] == e->wk_2_0_1, "wk[2][0][1]");
        // Tables are contiguous and in order; after rms_final only the (skipped) freq_cis tables remain.
        CHECK(f.rms_att == f.tok_embd + (size_t)c->vocab_size * dim && f.wk == f.wq + (size_t)L * dim * dim &&
              f.w3 == f.w2 + (size_t)L * dim * hid, "layout");
        size_t head = (size_t)dim / (size_t)c->n_heads;
        CHECK((const unsigned char *)(f.rms_final + dim + (size_t)c->seq_len * head) == f.map.data + f.map.size,
              "file ends after freq_cis");
    }
    snprintf(name, sizeof name, "%s closes", e->file);
    TEST_CASE(name) {
        l2c_close(&f);
        CHECK(f.map.data == NULL && f.tok_embd == NULL, "closed");
    }
}

static void test_unshared(bytes s) {
    TEST_CASE("negative vocab: separate classifier after freq_cis") {
        size_t extra = 512 * 64 * 4;
        bytes b = {malloc(s.n + extra), s.n + extra};
        memcpy(b.p, s.p, s.n);
        for (size_t i = 0; i < extra / 4; i++) {
            float x = (float)i;
            memcpy(b.p + s.n + 4 * i, &x, 4);
        }
        set_i32(b, 5, -512);
        l2c_file f;
        intact_error err = {0, ""};
        CHECK(l2c_parse(b.p, b.n, &f, &err) == 0, "%s", err.msg);
        CHECK(f.cfg.vocab_size == 512 && !f.cfg.shared_classifier, "config");
        CHECK(f.wcls == (const float *)(const void *)(b.p + s.n) && f.wcls[77] == 77.0f, "wcls");
        CHECK(f.map.data == NULL, "parse does not own a map");
        l2c_close(&f);
        expect_header_fail(s, 5, -512, "does not match the 1187612 bytes", "classifier missing");
        free(b.p);
    }
}

static void test_corrupt(bytes s) {
    TEST_CASE("empty and header-only files") {
        expect_fail(s.p, 0, "0 bytes is too small for a llama2.c header", INTACT_E_FORMAT, "empty");
        expect_fail(s.p, 27, "27 bytes is too small", INTACT_E_FORMAT, "27 bytes");
        expect_fail(s.p, 28, "file size 28 does not match the 1056540 bytes the header implies", INTACT_E_FORMAT,
                    "header only");
        char tmpl[] = "/tmp/intact_l2c_XXXXXX";
        int fd = mkstemp(tmpl);
        if (fd >= 0) {
            close(fd);
            l2c_file f;
            intact_error err = {0, ""};
            CHECK(l2c_open(tmpl, &f, &err) == -1 && strstr(err.msg, "file is empty") && strstr(err.msg, tmpl), "%s",
                  err.msg);
            unlink(tmpl);
            CHECK(l2c_open("/nonexistent.bin", &f, &err) == -1 && err.code == INTACT_E_IO, "%s", err.msg);
        }
    }
    TEST_CASE("size off by 4 bytes") {
        expect_fail(s.p, s.n - 4, "file size 1056536 does not match the 1056540 bytes", INTACT_E_FORMAT, "-4");
        expect_fail(s.p, s.n + 4, "file size 1056544 does not match the 1056540 bytes", INTACT_E_FORMAT, "+4");
        expect_fail(s.p, s.n - 1, "does not match", INTACT_E_FORMAT, "-1");
    }
    TEST_CASE("negative and zero dims") {
        expect_header_fail(s, 0, -64, "dim -64 is out of range", "dim < 0");
        expect_header_fail(s, 0, 0, "dim 0 is out of range", "dim 0");
        expect_header_fail(s, 1, 0, "hidden_dim 0 is out of range", "hidden 0");
        expect_header_fail(s, 2, -5, "n_layers -5 is out of range", "layers < 0");
        expect_header_fail(s, 3, 0, "n_heads 0 is out of range", "heads 0");
        expect_header_fail(s, 4, 0, "n_kv_heads 0 is out of range", "kv heads 0");
        expect_header_fail(s, 6, -1, "seq_len -1 is out of range", "seq < 0");
        expect_header_fail(s, 5, 0, "vocab_size 0 is out of range", "vocab 0");
    }
    TEST_CASE("head divisibility") {
        expect_header_fail(s, 3, 7, "n_heads 7 does not divide dim 64", "heads 7");
        expect_header_fail(s, 4, 3, "n_kv_heads 3 does not divide n_heads 8", "kv heads 3");
        expect_header_fail(s, 4, 16, "n_kv_heads 16 does not divide n_heads 8", "more kv heads than heads");
        expect_header_fail(s, 3, 64, "head size 1 (dim / n_heads) is odd", "odd head size");
    }
    TEST_CASE("huge dims and vocab") {
        expect_header_fail(s, 0, (1 << 20) + 2, "dim 1048578 is out of range", "dim > 2^20");
        expect_header_fail(s, 1, INT32_MAX, "hidden_dim 2147483647 is out of range", "hidden max");
        expect_header_fail(s, 2, 4097, "n_layers 4097 is out of range", "layers > 4096");
        expect_header_fail(s, 6, (1 << 24) + 1, "seq_len 16777217 is out of range", "seq > 2^24");
        expect_header_fail(s, 5, INT32_MIN, "vocab_size -2147483648 is out of range", "vocab INT32_MIN");
        expect_header_fail(s, 5, (1 << 22) + 1, "vocab_size 4194305 is out of range", "vocab > 2^22");
        // Every field at its maximum: a size of ~2^57 bytes, which must be computed without overflow.
        bytes b = {malloc(s.n), s.n};
        memcpy(b.p, s.p, s.n);
        int32_t h[7] = {1 << 20, 1 << 20, 4096, 2, 1, -(1 << 22), 1 << 24};
        for (int i = 0; i < 7; i++) set_i32(b, i, h[i]);
        expect_fail(b.p, b.n, "does not match the", INTACT_E_FORMAT, "all maxima");
        free(b.p);
    }
    TEST_CASE("misaligned buffer") {
        unsigned char *p = malloc(s.n + 1);
        memcpy(p + 1, s.p, s.n);
        expect_fail(p + 1, s.n, "not 4-byte aligned", INTACT_E_ARG, "odd address");
        free(p);
    }
}

int main(void) {
    static const expect_model models[] = {
        {"models/stories260K.bin", {64, 172, 5, 8, 4, 512, 512}, 1056540, -0.29474878311157227f,
         -0.3447273075580597f, 0.07947146147489548f, -0.0035068716388195753f, 1.7077769041061401f,
         -0.0028758638072758913f},
        {"models/english-1m.bin", {128, 352, 6, 4, 4, 512, 256}, 5118492, 0.3000830411911011f,
         -0.012010473757982254f, 0.02368718944489956f, -0.00958973728120327f, 1.5393542051315308f,
         -0.010924093425273895f},
    };
    for (int i = 0; i < 2; i++) test_model(&models[i]);
    char path[512];
    bytes s = read_file(th_shared("models/stories260K.bin", path, sizeof path), 8);
    TEST_CASE("stories260K.bin read into memory") { SKIP_UNLESS(path); CHECK(s.n == 1056540, "%zu bytes", s.n); }
    if (s.n == 1056540) {
        test_unshared(s);
        test_corrupt(s);
    }
    free(s.p);
    return th_finish("test_llama2c");
}
