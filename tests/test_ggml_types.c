// ggml's block formats (Q4_0 ... Q8_K, formats/ggml_ref.c) on hand-built blocks: each block below
// is filled byte by byte with a few nonzero codes and exactly representable scales, and the values
// it must decode to were worked out by hand from the layout (comments at each case). The reference
// matmul is then checked against a dot product with those hand values. The end-to-end checks (whole
// models against the independent Python dequantizer) are in test_variants.c.
#include "harness.h"

#include <stdint.h>

#include "formats/fmt_kernels.h"
#include "formats/formats.h"

enum { MAXQ = 256 };

// Fills want[0..n) with base and applies the (index, value) exceptions.
typedef struct { int i; float v; } hv;
static void expect(float *want, int n, float base, const hv *ex, int n_ex) {
    for (int i = 0; i < n; i++) want[i] = base;
    for (int k = 0; k < n_ex; k++) want[ex[k].i] = ex[k].v;
}

// A block range base for sub-blocks: want[lo..hi) = v.
static void fill(float *want, int lo, int hi, float v) {
    for (int i = lo; i < hi; i++) want[i] = v;
}

// Decodes blk with the table's to_float and compares with want exactly; then a row of two copies of
// the block against x (3 tokens) through the reference matmul, compared with the hand dot product.
static void check_block(int type, const void *blk, const float *want) {
    const fmt_traits *t = fmt_get(type);
    CHECK(t != NULL, "type %d in the table", type);
    if (!t) return;
    int qk = t->block_size;
    float got[2 * MAXQ];
    t->to_float(blk, got, qk);
    int bad = 0;
    for (int i = 0; i < qk && bad < 4; i++)
        if (got[i] != want[i]) {
            CHECK(got[i] == want[i], "%s weight %d: got %.9g, want %.9g", t->name, i, got[i], want[i]);
            bad++;
        }
    unsigned char row[2 * 292];
    memcpy(row, blk, t->block_bytes);
    memcpy(row + t->block_bytes, blk, t->block_bytes);
    float x[3 * 2 * MAXQ], y[3];
    for (int i = 0; i < 3 * 2 * qk; i++) x[i] = (float)((i * 37) % 17 - 8) / 8.0f;
    t->matmul[IT_ISA_REF](row, 2 * t->block_bytes, 2 * qk, x, 2 * qk, 3, y, 1, 0, 1);
    for (int tok = 0; tok < 3; tok++) {
        double s = 0, mag = 0;
        for (int i = 0; i < 2 * qk; i++) {
            s += (double)want[i % qk] * x[tok * 2 * qk + i];
            mag += fabs((double)want[i % qk] * x[tok * 2 * qk + i]);
        }
        CHECK(fabs(y[tok] - s) <= 1e-6 * mag + 1e-6, "%s matmul token %d: %.9g vs %.9g", t->name, tok, y[tok], s);
    }
}

#define H_0_25 0x3400
#define H_0_5 0x3800
#define H_1 0x3C00
#define H_2 0x4000
#define H_M1 0xBC00

static void test_q4_0(void) {
    TEST_CASE("q4_0 hand block") {
        // d = 0.5; every nibble 8 (weight 0) but: qs[0] lo 11 -> x0 = 1.5; qs[3] hi 0 -> x19 = -4;
        // qs[15] hi 15 -> x31 = 3.5.
        it_block_q4_0 b = {H_0_5, {0}};
        memset(b.qs, 0x88, sizeof b.qs);
        b.qs[0] = 0x8B;
        b.qs[3] = 0x08;
        b.qs[15] = 0xF8;
        float want[32];
        expect(want, 32, 0.0f, (hv[]){{0, 1.5f}, {19, -4.0f}, {31, 3.5f}}, 3);
        check_block(IT_TYPE_Q4_0, &b, want);
    }
}

static void test_q4_1(void) {
    TEST_CASE("q4_1 hand block") {
        // d = 0.25, m = -1: code 0 -> -1. qs[1] hi 4 -> x17 = 0; qs[2] lo 15 -> x2 = 2.75.
        it_block_q4_1 b = {H_0_25, H_M1, {0}};
        b.qs[1] = 0x40;
        b.qs[2] = 0x0F;
        float want[32];
        expect(want, 32, -1.0f, (hv[]){{17, 0.0f}, {2, 2.75f}}, 2);
        check_block(IT_TYPE_Q4_1, &b, want);
    }
}

static void test_q5_0(void) {
    TEST_CASE("q5_0 hand block") {
        // d = 1: code 0 -> -16. Fifth bits 0 and 20 set (qh[0] bit 0, qh[2] bit 4). qs[0] lo 3 with
        // bit 0 -> x0 = 19 - 16 = 3; qs[4] hi 5 with bit 20 -> x20 = 21 - 16 = 5. x16 (qs[0] hi 0,
        // bit 16 clear) and x4 (qs[4] lo 0, bit 4 clear) stay -16.
        it_block_q5_0 b = {H_1, {0x01, 0, 0x10, 0}, {0}};
        b.qs[0] = 0x03;
        b.qs[4] = 0x50;
        float want[32];
        expect(want, 32, -16.0f, (hv[]){{0, 3.0f}, {20, 5.0f}}, 2);
        check_block(IT_TYPE_Q5_0, &b, want);
    }
}

static void test_q5_1(void) {
    TEST_CASE("q5_1 hand block") {
        // d = 0.5, m = 2: code 0 -> 2. qs[15] hi 15 + bit 31 -> x31 = 0.5*31 + 2 = 17.5;
        // qs[1] lo 2 + bit 1 -> x1 = 0.5*18 + 2 = 11.
        it_block_q5_1 b = {H_0_5, H_2, {0x02, 0, 0, 0x80}, {0}};
        b.qs[15] = 0xF0;
        b.qs[1] = 0x02;
        float want[32];
        expect(want, 32, 2.0f, (hv[]){{31, 17.5f}, {1, 11.0f}}, 2);
        check_block(IT_TYPE_Q5_1, &b, want);
    }
}

static void test_q2_K(void) {
    TEST_CASE("q2_K hand block") {
        // d = 1, dmin = 0.5; scale/min nibbles 0 (weight 0) except:
        //   scales[0] = 0x21: sub-block 0 (weights 0..15) x = 1*q - 0.5*2 = q - 1; qs[3] bits 0-1 = 3
        //     -> x3 = 2, the rest -1.
        //   scales[2] = 0x03: sub-block 2 = weights 32..47 (n 0, shift 2, l < 16); qs[3] bits 2-3 = 2
        //     -> x35 = 6, the rest 0.
        //   scales[15] = 0xF4: sub-block 15 = weights 240..255 (n 1, shift 6, l >= 16), x = 4q - 7.5;
        //     qs[63] bits 6-7 = 3 -> x255 = 4.5, the rest -7.5.
        it_block_q2_K b = {{0}, {0}, H_1, H_0_5};
        b.scales[0] = 0x21;
        b.scales[2] = 0x03;
        b.scales[15] = 0xF4;
        b.qs[3] = 0x03 | 2 << 2;
        b.qs[63] = 0xC0;
        float want[256];
        expect(want, 256, 0.0f, NULL, 0);
        fill(want, 0, 16, -1.0f);
        fill(want, 240, 256, -7.5f);
        want[3] = 2.0f;
        want[35] = 6.0f;
        want[255] = 4.5f;
        check_block(IT_TYPE_Q2_K, &b, want);
    }
}

static void test_q3_K(void) {
    TEST_CASE("q3_K hand block") {
        // d = 0.5. Stored 6-bit scales 32 (scale 0) everywhere: low nibbles 0, high crumbs 2 -> bytes
        // 8..11 = 0xAA. Sub-block 0 gets 33 (scale 1): scales[0] = 0x01. Sub-block 13 gets 29
        // (scale -3) = 0b01'1101: low nibble 0xD in the high half of byte 5, high crumb 01 at bits 6-7
        // of byte 9 (0xAA -> 0x6A).
        // All codes 0 with hmask 0 -> q = -4: sub-block 0 (weights 0..15) x = 0.5*1*-4 = -2;
        // sub-block 13 (n 1, shift 4, l >= 16: weights 208..223) x = 0.5*-3*-4 = 6.
        // x2: qs[2] bits 0-1 = 3, hmask[2] bit 0 -> q = 3 -> 1.5.
        // x223: qs[63] bits 4-5 = 1, hmask[31] bit 6 -> q = 1 -> -1.5.
        it_block_q3_K b = {{0}, {0}, {0}, H_0_5};
        b.scales[8] = b.scales[9] = b.scales[10] = b.scales[11] = 0xAA;
        b.scales[0] = 0x01;
        b.scales[5] = 0xD0;
        b.scales[9] = 0x6A;
        b.qs[2] = 0x03;
        b.hmask[2] = 0x01;
        b.qs[63] = 0x10;
        b.hmask[31] = 0x40;
        float want[256];
        expect(want, 256, 0.0f, NULL, 0);
        fill(want, 0, 16, -2.0f);
        fill(want, 208, 224, 6.0f);
        want[2] = 1.5f;
        want[223] = -1.5f;
        check_block(IT_TYPE_Q3_K, &b, want);
    }
}

// Q4_K / Q5_K scales: sub-block 1 scale 2 min 4 (bytes 1 and 5); sub-block 6 scale 21 = 0b01'0101,
// min 35 = 0b10'0011: nibbles 5 | 3 << 4 in byte 10, top bits 01 of the scale in byte 2, 10 of the
// min in byte 6. Everything else 0.
static void k4_scales(uint8_t sc[12]) {
    memset(sc, 0, 12);
    sc[1] = 2;
    sc[5] = 4;
    sc[10] = 0x35;
    sc[2] = 0x40;
    sc[6] = 0x80;
}

static void test_q4_K(void) {
    TEST_CASE("q4_K hand block") {
        // d = 0.5, dmin = 0.25. Sub-block 1 = weights 32..63 (high nibbles of qs[0..31]):
        // x = 0.5*2*q - 0.25*4 = q - 1; qs[5] hi 7 -> x37 = 6. Sub-block 6 = weights 192..223 (low
        // nibbles of qs[96..127]): x = 10.5q - 8.75; qs[106] lo 15 -> x202 = 148.75.
        it_block_q4_K b = {H_0_5, H_0_25, {0}, {0}};
        k4_scales(b.scales);
        b.qs[5] = 0x70;
        b.qs[106] = 0x0F;
        float want[256];
        expect(want, 256, 0.0f, NULL, 0);
        fill(want, 32, 64, -1.0f);
        fill(want, 192, 224, -8.75f);
        want[37] = 6.0f;
        want[202] = 148.75f;
        check_block(IT_TYPE_Q4_K, &b, want);
    }
}

static void test_q5_K(void) {
    TEST_CASE("q5_K hand block") {
        // As Q4_K, plus fifth bits: qh[5] bit 1 (sub-block 1, l 5) -> x37 = 7 + 16 - 1 = 22;
        // qh[8] bit 6 (sub-block 6, l 8) -> x200 = 10.5*16 - 8.75 = 159.25.
        it_block_q5_K b = {H_0_5, H_0_25, {0}, {0}, {0}};
        k4_scales(b.scales);
        b.qs[5] = 0x70;
        b.qs[106] = 0x0F;
        b.qh[5] = 0x02;
        b.qh[8] = 0x40;
        float want[256];
        expect(want, 256, 0.0f, NULL, 0);
        fill(want, 32, 64, -1.0f);
        fill(want, 192, 224, -8.75f);
        want[37] = 22.0f;
        want[202] = 148.75f;
        want[200] = 159.25f;
        check_block(IT_TYPE_Q5_K, &b, want);
    }
}

static void test_q6_K(void) {
    TEST_CASE("q6_K hand block") {
        // d = 0.25, scales 0 except scales[0] = 2 and scales[13] = -4. Codes 0 -> q = -32:
        // sub-block 0 (weights 0..15) x = 0.5*-32 = -16; sub-block 13 (n 1, k 2, l >= 16: weights
        // 208..223) x = -1*-32 = 32.
        // x0: ql[0] lo 5, qh[0] bits 0-1 = 2 -> q = 37 - 32 = 5 -> 2.5.
        // x223: ql[95] hi 15, qh[63] bits 4-5 = 3 -> q = 63 - 32 = 31 -> -31.
        it_block_q6_K b = {{0}, {0}, {0}, H_0_25};
        b.scales[0] = 2;
        b.scales[13] = -4;
        b.ql[0] = 0x05;
        b.qh[0] = 0x02;
        b.ql[95] = 0xF0;
        b.qh[63] = 0x30;
        float want[256];
        expect(want, 256, 0.0f, NULL, 0);
        fill(want, 0, 16, -16.0f);
        fill(want, 208, 224, 32.0f);
        want[0] = 2.5f;
        want[223] = -31.0f;
        check_block(IT_TYPE_Q6_K, &b, want);
    }
}

static void test_q8_K(void) {
    TEST_CASE("q8_K hand block") {
        // d = 0.125 (fp32): qs[5] = 8 -> 1, qs[255] = -128 -> -16; bsums are not read.
        it_block_q8_K b = {0.125f, {0}, {0}};
        b.qs[5] = 8;
        b.qs[255] = -128;
        b.bsums[0] = 12345;
        float want[256];
        expect(want, 256, 0.0f, (hv[]){{5, 1.0f}, {255, -16.0f}}, 2);
        check_block(IT_TYPE_Q8_K, &b, want);
    }
}

int main(void) {
    test_q4_0();
    test_q4_1();
    test_q5_0();
    test_q5_1();
    test_q2_K();
    test_q3_K();
    test_q4_K();
    test_q5_K();
    test_q6_K();
    test_q8_K();
    return th_finish("test_ggml_types");
}
