// Integer weight formats (formats/qformat.h) and their kernels (formats/fmt_kernels.h): hand-computed
// parameters, q values and packed bytes for every bit width; error bounds of the quantizer on random
// groups; row quantize/dequantize against the per-value formula; every SIMD kernel against the
// scalar reference and against a float matmul over the dequantized weights; the traits table.
#include "harness.h"

#include <stdint.h>

#include "core/fp16.h"
#include "core/pool.h"
#include "formats/fmt_kernels.h"
#include "formats/formats.h"
#include "formats/qformat.h"
#include "kernels/matmul.h"
#include "quant/rtn.h"

static uint64_t g_rng = 0x243f6a8885a308d3ull;
static uint32_t rnd_u32(void) { // xorshift64*
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return (uint32_t)((g_rng * 0x2545f4914f6cdd1dull) >> 32);
}
static float rnd_f(void) { return (float)((double)rnd_u32() / 4294967296.0 * 2.0 - 1.0); }
static int rnd_int(int n) { return (int)(rnd_u32() % (unsigned)n); }

static const int k_bits[] = {2, 3, 4, 8};
static const int k_groups[] = {32, 64, 128};

// ---- (a) hand-computed cases ----
//
// The group w_i = (i - 10) / 10, i < 32 (-1.0, -0.9, ..., 2.1), at clip 1. Worked for int4 asym:
// d = (2.1 - (-1.0)) / 15 = 0.206667 -> fp16 0x329d = 0.2066650390625; z = round(1.0 / d) =
// round(4.8387) = 5; q_i = clamp(round(w_i / d) + 5, 0, 15), so q_0 = -5 + 5 = 0 and
// q_31 = round(10.161) + 5 = 15. int4 sym: a = 2.1, d = 4.2 / 15 = 0.28 -> 0x347b = 0.280029296875,
// z = 8, q_31 = round(7.499) + 8 = 15 and q_0 = round(-3.571) + 8 = 4. The other widths were
// computed the same way by an independent float32/fp16 emulation (Python struct 'f'/'e', round
// half to even), and the packed bytes from the layout in qformat.h.
typedef struct {
    int bits, sym;
    uint16_t d_bits;
    int z;
    uint8_t q[32];
    uint8_t packed[32];
    int n_packed;
} hand_case;

static const hand_case k_hand[] = {
    {2, 0, 0x3c22, 1,
     {0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3},
     {0xa4, 0xa4, 0xe4, 0xe4, 0xe4, 0xe5, 0xe5, 0xe5}, 8},
    {2, 1, 0x3d9a, 2,
     {1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3},
     {0xe9, 0xe9, 0xf9, 0xfa, 0xfa, 0xfa, 0xfa, 0xfa}, 8},
    {3, 0, 0x3716, 2,
     {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7},
     {0x78, 0x48, 0x88, 0x88, 0x89, 0x8d, 0xdd, 0xdd, 0x00, 0x00, 0xfe, 0xff}, 12},
    {3, 1, 0x38cd, 4,
     {2, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7},
     {0x92, 0x93, 0xd3, 0xd3, 0xe3, 0xe3, 0xe7, 0xe4, 0x80, 0xff, 0xff, 0xff}, 12},
    {4, 0, 0x329d, 5,
     {0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15},
     {0x80, 0x81, 0x91, 0x92, 0xa2, 0xa3, 0xb3, 0xb4, 0xc4, 0xc5, 0xd5, 0xd5, 0xe6, 0xe6, 0xf7, 0xf7}, 16},
    {4, 1, 0x347b, 8,
     {4, 5, 5, 6, 6, 6, 7, 7, 7, 8, 8, 8, 9, 9, 9, 10, 10, 10, 11, 11, 12, 12, 12, 13, 13, 13, 14, 14, 14, 15, 15, 15},
     {0xa4, 0xa5, 0xb5, 0xb6, 0xc6, 0xc6, 0xc7, 0xd7, 0xd7, 0xd8, 0xe8, 0xe8, 0xe9, 0xf9, 0xf9, 0xfa}, 16},
    {8, 0, 0x2239, 82,
     {0, 8, 16, 24, 33, 41, 49, 57, 66, 74, 82, 90, 98, 107, 115, 123,
      131, 140, 148, 156, 164, 173, 181, 189, 197, 205, 214, 222, 230, 238, 247, 255},
     {0}, 0}, // int8 bytes are the q values
    {8, 1, 0x2437, 128,
     {67, 73, 79, 85, 92, 98, 104, 110, 116, 122, 128, 134, 140, 146, 152, 158,
      164, 171, 177, 183, 189, 195, 201, 207, 213, 219, 225, 231, 237, 243, 249, 255},
     {0}, 0},
};

static void test_hand_computed(void) {
    float w[32];
    for (int i = 0; i < 32; i++) w[i] = (float)(i - 10) / 10.0f;
    for (size_t c = 0; c < sizeof k_hand / sizeof k_hand[0]; c++) {
        const hand_case *h = &k_hand[c];
        char name[64];
        snprintf(name, sizeof name, "hand-computed int%d_g32%s", h->bits, h->sym ? "_sym" : "");
        TEST_CASE(name) {
            qf_spec s = {h->bits, 32, h->sym};
            float d;
            int z;
            rtn_group_params(&s, w, 1.0f, &d, &z);
            CHECK(it_f32_to_fp16(d) == h->d_bits, "d 0x%04x want 0x%04x", it_f32_to_fp16(d), h->d_bits);
            CHECK(d == it_fp16_to_f32(h->d_bits), "d is fp16-rounded: %.9g", d);
            CHECK(z == h->z, "z %d want %d", z, h->z);
            for (int i = 0; i < 32; i++) {
                int q = rtn_quantize_value(w[i], d, z, h->bits);
                CHECK(q == h->q[i], "q[%d] = %d want %d", i, q, h->q[i]);
            }
            uint8_t blk[3 + 32];
            memset(blk, 0xcc, sizeof blk);
            rtn_quantize_group(&s, w, 1.0f, blk);
            size_t bb = qf_block_bytes(&s), hdr = h->sym ? 2 : 3;
            CHECK(bb == hdr + (size_t)(32 * h->bits / 8), "block bytes %zu", bb);
            CHECK(blk[0] == (h->d_bits & 0xff) && blk[1] == h->d_bits >> 8, "d bytes %02x %02x", blk[0], blk[1]);
            if (!h->sym) CHECK(blk[2] == h->z, "z byte %d", blk[2]);
            const uint8_t *want = h->bits == 8 ? h->q : h->packed;
            for (size_t i = 0; i < bb - hdr; i++)
                CHECK(blk[hdr + i] == want[i], "packed[%zu] = 0x%02x want 0x%02x", i, blk[hdr + i], want[i]);
            if (h->bits != 8) CHECK((size_t)h->n_packed == bb - hdr, "layout size");
            float deq[32];
            qf_dequantize_row(&s, blk, deq, 32);
            for (int i = 0; i < 32; i++)
                CHECK(deq[i] == d * (float)(h->q[i] - h->z), "deq[%d] = %.9g", i, deq[i]);
        }
    }
    // Bit positions of the layouts, one weight at a time: q = 1 (b = 2), 4 (b = 3: the high bit
    // only) or 15 / 255 at weight j of sub-block 1 of a 64-group, all else 0.
    TEST_CASE("layout bit positions (g64, sub-block 1)") {
        for (int bi = 0; bi < 4; bi++) {
            int b = k_bits[bi];
            qf_spec s = {b, 64, 1};
            int one = b == 2 ? 1 : b == 3 ? 4 : (1 << b) - 1;
            for (int j = 0; j < 32; j++) {
                uint8_t q[64] = {0}, blk[2 + 64];
                q[32 + j] = (uint8_t)one;
                qf_pack_group(&s, 1.0f, 1 << (b - 1), q, blk);
                const uint8_t *qs = blk + 2;
                int byte, bit;
                switch (b) {
                case 8: byte = 32 + j; bit = 0; break;
                case 4: byte = 16 + j % 16; bit = j < 16 ? 0 : 4; break;
                case 2: byte = 8 + j % 8; bit = 2 * (j / 8); break;
                default: byte = 16 + 4 + j / 8; bit = j % 8; break; // high-bit word of sub-block 1
                }
                int set = 0, right = 0;
                for (int i = 0; i < 64 * b / 8; i++) set += __builtin_popcount(qs[i]);
                right = (qs[byte] >> bit) & (b == 3 ? 1 : one);
                int want_pop = b == 3 ? 1 : __builtin_popcount((unsigned)one);
                CHECK(set == want_pop && right == (b == 3 ? 1 : one), "bits=%d j=%d", b, j);
                uint8_t back[64];
                float d;
                int z;
                qf_unpack_group(&s, blk, &d, &z, back);
                CHECK(!memcmp(back, q, 64) && d == 1.0f && z == 1 << (b - 1), "unpack bits=%d j=%d", b, j);
            }
        }
    }
}

// ---- (b) error bounds, constant groups ----

static void random_group(float *w, int G, int kind) {
    for (int i = 0; i < G; i++) {
        float v = rnd_f();
        switch (kind) {
        case 0: w[i] = v; break;                                 // uniform [-1, 1)
        case 1: w[i] = 0.02f * v * v * v; break;                 // concentrated near 0
        case 2: w[i] = 0.5f + 0.6f * v; break;                   // shifted, still straddles 0
        default: w[i] = rnd_int(16) ? 0.01f * v : 3.0f * v; break; // outliers
        }
    }
    w[0] = -fabsf(w[0]) - 1e-3f; // the asymmetric range only covers 0 when the group straddles it
    w[1] = fabsf(w[1]) + 1e-3f;
}

static void test_error_bounds(void) {
    static const float clips[] = {1.0f, 0.9f, 0.75f};
    for (int bi = 0; bi < 4; bi++) {
        for (int gi = 0; gi < 3; gi++) {
            for (int sym = 0; sym < 2; sym++) {
                qf_spec s = {k_bits[bi], k_groups[gi], sym};
                char name[64];
                snprintf(name, sizeof name, "error bound int%d_g%d%s", s.bits, s.group, sym ? "_sym" : "");
                TEST_CASE(name) {
                    const int G = s.group, maxq = (1 << s.bits) - 1;
                    float w[128], deq[128];
                    uint8_t blk[3 + 128];
                    int bad = 0;
                    for (int it = 0; it < 200 && bad < 3; it++) {
                        float clip = clips[it % 3];
                        random_group(w, G, it % 4);
                        float d;
                        int z;
                        rtn_group_params(&s, w, clip, &d, &z);
                        rtn_quantize_group(&s, w, clip, blk);
                        qf_dequantize_row(&s, blk, deq, G);
                        // The scale before fp16 rounding, and the clipped range.
                        double lo = 1e30, hi = -1e30, a = 0;
                        for (int i = 0; i < G; i++) {
                            lo = w[i] < lo ? w[i] : lo;
                            hi = w[i] > hi ? w[i] : hi;
                            a = fabs(w[i]) > a ? fabs(w[i]) : a;
                        }
                        lo *= clip, hi *= clip, a *= clip;
                        lo = lo < 0 ? lo : 0, hi = hi > 0 ? hi : 0; // the asymmetric range holds 0
                        double dex = sym ? 2 * a / maxq : (hi - lo) / maxq;
                        if (sym) lo = -a, hi = a;
                        // d/2 from rounding, plus the range lost to rounding d to fp16 (at most
                        // maxq steps of |d - d_exact|), plus float rounding slack.
                        double bound = d / 2 + maxq * fabs(d - dex) + 1e-6 * (d + a);
                        for (int i = 0; i < G && bad < 3; i++) {
                            if (w[i] < lo || w[i] > hi) continue; // clipped away at clip < 1
                            double err = fabs((double)w[i] - deq[i]);
                            if (!(err <= bound)) {
                                CHECK(err <= bound, "it=%d clip=%g w[%d]=%.9g deq=%.9g d=%.9g z=%d", it,
                                      clip, i, w[i], deq[i], d, z);
                                bad++;
                            }
                        }
                    }
                    // All-zero group: d = 1, every q = z, dequantizes to exact zeros.
                    for (int i = 0; i < G; i++) w[i] = 0;
                    float d;
                    int z;
                    rtn_group_params(&s, w, 1.0f, &d, &z);
                    CHECK(d == 1.0f && z == (sym ? 1 << (s.bits - 1) : 0), "zero group d=%g z=%d", d, z);
                    rtn_quantize_group(&s, w, 1.0f, blk);
                    qf_dequantize_row(&s, blk, deq, G);
                    for (int i = 0; i < G; i++) CHECK(deq[i] == 0.0f, "zero group deq[%d]=%g", i, deq[i]);
                    // Constant non-zero group: the asymmetric range is [0, c] (it always holds 0), so
                    // d = c/maxq, z = 0 and c is the top level; symmetric within its usual bound.
                    const float c = 0.375f;
                    for (int i = 0; i < G; i++) w[i] = c;
                    rtn_group_params(&s, w, 1.0f, &d, &z);
                    rtn_quantize_group(&s, w, 1.0f, blk);
                    qf_dequantize_row(&s, blk, deq, G);
                    double dex = sym ? 2 * c / maxq : c / maxq;
                    double bound = d / 2 + maxq * fabs(d - dex) + 1e-6;
                    if (!sym) CHECK(fabs(d - dex) <= 1e-3 * dex && z == 0, "constant group d=%g z=%d", d, z);
                    for (int i = 0; i < G; i++) {
                        CHECK(fabs(deq[i] - c) <= bound, "constant deq[%d]=%.9g", i, deq[i]);
                        CHECK(deq[i] == deq[0], "constant group dequantizes to one value");
                    }
                }
            }
        }
    }
}

// ---- (c) rows: quantize_row + dequantize_row against the per-value formula ----

static void test_rows(void) {
    for (int bi = 0; bi < 4; bi++) {
        for (int gi = 0; gi < 3; gi++) {
            for (int sym = 0; sym < 2; sym++) {
                qf_spec s = {k_bits[bi], k_groups[gi], sym};
                char name[64];
                snprintf(name, sizeof name, "row formula int%d_g%d%s", s.bits, s.group, sym ? "_sym" : "");
                TEST_CASE(name) {
                    const int64_t n = 5 * s.group;
                    const float clip = 0.9f;
                    float w[5 * 128], deq[5 * 128];
                    uint8_t blocks[5 * 131], one[131];
                    for (int64_t i = 0; i < n; i++) w[i] = rnd_f() * (1.0f + (float)(i / s.group));
                    rtn_quantize_row(&s, w, n, clip, blocks);
                    qf_dequantize_row(&s, blocks, deq, n);
                    size_t bb = qf_block_bytes(&s);
                    for (int64_t g = 0; g < 5; g++) {
                        float d;
                        int z;
                        rtn_group_params(&s, w + g * s.group, clip, &d, &z);
                        for (int i = 0; i < s.group; i++) {
                            int64_t k = g * s.group + i;
                            int q = rtn_quantize_value(w[k], d, z, s.bits);
                            CHECK(deq[k] == d * (float)(q - z), "g=%lld i=%d: %.9g vs %.9g", (long long)g,
                                  i, deq[k], d * (float)(q - z));
                        }
                        rtn_quantize_group(&s, w + g * s.group, clip, one);
                        CHECK(!memcmp(one, blocks + g * bb, bb), "row block %lld == group block", (long long)g);
                    }
                }
            }
        }
    }
}

// ---- (f) the traits table ----

static void test_traits(void) {
    TEST_CASE("traits table") {
        const fmt_traits *t = fmt_get(IT_QTYPE(4, 2, 0));
        CHECK(t != NULL, "int4_g128 registered");
        if (t) {
            CHECK(!strcmp(t->name, "int4_g128"), "name %s", t->name);
            CHECK(t->block_size == 128 && t->block_bytes == 67, "%d %zu", t->block_size, t->block_bytes);
        }
        CHECK(fmt_row_bytes(IT_QTYPE(4, 2, 0), 100) == 0, "n not a multiple of G");
        CHECK(fmt_row_bytes(IT_QTYPE(4, 2, 0), 256) == 134, "two blocks");
        CHECK(fmt_row_bytes(IT_QTYPE(3, 0, 1), 64) == 2 * 14, "int3_g32_sym: 2 + 12 bytes");
        int n = 0;
        for (int bi = 0; bi < 4; bi++)
            for (int gi = 0; gi < 3; gi++)
                for (int sym = 0; sym < 2; sym++) {
                    qf_spec s = {k_bits[bi], k_groups[gi], sym}, back;
                    int type = -1;
                    CHECK(qf_type_of(&s, &type) == 0 && type == IT_QTYPE(s.bits, gi, sym), "type id");
                    CHECK(qf_spec_of(type, &back) == 0 && back.bits == s.bits && back.group == s.group &&
                              back.sym == sym, "spec of %d", type);
                    const fmt_traits *tt = fmt_get(type);
                    char want[32];
                    snprintf(want, sizeof want, "int%d_g%d%s", s.bits, s.group, sym ? "_sym" : "");
                    if (!tt) continue;
                    n++;
                    CHECK(!strcmp(tt->name, want), "%s vs %s", tt->name, want);
                    CHECK(tt->block_size == s.group && tt->block_bytes == qf_block_bytes(&s), "%s geometry", want);
                    CHECK(tt->matmul[IT_ISA_REF] == fmt_kernel(type, "ref") && tt->matmul[IT_ISA_AVX2] &&
                              tt->matmul[IT_ISA_AVX512], "%s kernels", want);
                    int isa = it_cpu_isa();
                    CHECK(fmt_matmul(tt) == tt->matmul[isa], "%s fastest kernel", want);
                    CHECK(fabs(qf_bits_per_weight(&s) - 8.0 * (double)qf_block_bytes(&s) / s.group) < 1e-12, "bpw");
                    CHECK(tt->bits_per_weight == qf_bits_per_weight(&s), "%s table bpw", want);
                    float blk[128];
                    uint8_t packed[3 + 128];
                    uint8_t q[128];
                    for (int i = 0; i < s.group; i++) q[i] = (uint8_t)((i * 7 + 3) & ((1 << s.bits) - 1));
                    qf_pack_group(&s, 0.5f, sym ? 1 << (s.bits - 1) : 1, q, packed);
                    tt->to_float(packed, blk, s.group);
                    int zz = sym ? 1 << (s.bits - 1) : 1, same = 1;
                    for (int i = 0; i < s.group; i++) same &= blk[i] == 0.5f * (float)(q[i] - zz);
                    CHECK(same, "%s table to_float decodes its own format", want);
                }
        CHECK(n == 24, "%d formats registered", n);
        qf_spec s = {5, 32, 0}, out;
        int type;
        CHECK(qf_type_of(&s, &type) != 0, "int5 is not a format");
        s = (qf_spec){4, 16, 0};
        CHECK(qf_type_of(&s, &type) != 0, "g16 is not a format");
        CHECK(qf_spec_of(IT_QTYPE(4, 3, 0), &out) != 0 && qf_spec_of(IT_QTYPE(5, 0, 0), &out) != 0 &&
                  qf_spec_of(IT_TYPE_F16, &out) != 0, "bad ids");
        CHECK(fmt_get(IT_QTYPE(4, 3, 0)) == NULL && fmt_get(IT_QTYPE(9, 0, 0)) == NULL &&
                  fmt_get(IT_QTYPE(1, 0, 0)) == NULL && fmt_get(IT_QTYPE_BASE + 9 * 16) == NULL,
              "unregistered ids");
        CHECK(fabs(qf_bits_per_weight(&(qf_spec){4, 128, 0}) - 4.1875) < 1e-12, "int4_g128 bpw");
        CHECK(fmt_kernel(IT_QTYPE(4, 3, 0), "ref") == NULL && fmt_kernel(IT_QTYPE(4, 2, 0), "sse9") == NULL,
              "kernel lookup of unknown types / unknown ISA");
        CHECK((fmt_kernel(IT_QTYPE(4, 2, 0), "avx2") != NULL) == it_cpu_has_avx2(), "avx2 lookup");
        CHECK((fmt_kernel(IT_QTYPE(4, 2, 0), "avx512") != NULL) == it_cpu_has_avx512(), "avx512 lookup");
        it_cpu_force_ref(1);
        CHECK(fmt_matmul(fmt_get(IT_QTYPE(4, 2, 0))) == fmt_kernel(IT_QTYPE(4, 2, 0), "ref"),
              "it_cpu_force_ref honoured");
        it_cpu_force_ref(0);
    }
}

// ---- (d), (e) kernels ----

// A weight matrix at an odd address (blocks are byte-packed: no load may assume alignment).
// mode 0: quantized random weights; mode 1: random blocks (any d, z and q, z up to 2^b - 1).
typedef struct {
    void *alloc;
    char *data;
    size_t row_bytes;
    float *deq;
} qmat;

static qmat make_qweights(int type, int64_t rows, int64_t n_in, int mode) {
    qf_spec s;
    qf_spec_of(type, &s);
    qmat m;
    m.row_bytes = fmt_row_bytes(type, n_in);
    // Ends exactly at the end of the allocation, so ASan catches any read past the last block.
    m.alloc = malloc((size_t)rows * m.row_bytes + 1);
    m.data = (char *)m.alloc + 1;
    m.deq = malloc((size_t)(rows * n_in) * sizeof(float));
    float *w = malloc((size_t)n_in * sizeof(float));
    const size_t bb = qf_block_bytes(&s);
    for (int64_t r = 0; r < rows; r++) {
        char *row = m.data + (size_t)r * m.row_bytes;
        if (mode == 0) {
            for (int64_t i = 0; i < n_in; i++) w[i] = rnd_f() * (0.5f + (float)(i % 7));
            rtn_quantize_row(&s, w, n_in, 1.0f, row);
        } else {
            for (int64_t g = 0; g < n_in / s.group; g++) {
                uint8_t q[128];
                for (int i = 0; i < s.group; i++) q[i] = (uint8_t)rnd_int(1 << s.bits);
                float d = it_fp16_to_f32(it_f32_to_fp16(0.001f + 0.05f * (rnd_f() + 1.0f)));
                qf_pack_group(&s, d, rnd_int(1 << s.bits), q, row + (size_t)g * bb);
            }
        }
        fmt_get(type)->to_float(row, m.deq + r * n_in, n_in);
    }
    free(w);
    return m;
}

static void free_qweights(qmat *m) {
    free(m->alloc);
    free(m->deq);
}

static const float k_sentinel = -1234.5f;
static double g_worst_ratio;
static const char *k_isas[] = {"avx2", "avx512"};

// Runs the reference and every SIMD kernel over rows [r0, r1) x nt tokens with strides ldx, ldy:
// each must match the float matmul over the dequantized weights (the packed-vs-fake identity) and
// the reference within 1e-5 * sum |w||x| + 1e-6, and leave other Y elements alone.
static int check_kernels(int type, const qmat *w, int64_t n_in, int64_t nt, int64_t ldx,
                         int64_t ldy, int64_t r0, int64_t r1) {
    float *x = malloc((size_t)(nt * ldx) * sizeof(float));
    float *y = malloc((size_t)(nt * ldy) * sizeof(float));
    float *yr = malloc((size_t)(nt * ldy) * sizeof(float));
    double *fake = malloc((size_t)(nt * ldy) * sizeof(double));
    double *tol = malloc((size_t)(nt * ldy) * sizeof(double));
    for (int64_t i = 0; i < nt * ldx; i++) x[i] = rnd_f();
    for (int64_t t = 0; t < nt; t++)
        for (int64_t r = r0; r < r1; r++) {
            double acc = 0, mag = 0;
            for (int64_t i = 0; i < n_in; i++) {
                double p = (double)w->deq[r * n_in + i] * x[t * ldx + i];
                acc += p;
                mag += fabs(p);
            }
            fake[t * ldy + r] = acc;
            tol[t * ldy + r] = 1e-5 * mag + 1e-6;
        }
    for (int64_t i = 0; i < nt * ldy; i++) yr[i] = k_sentinel;
    fmt_kernel(type, "ref")(w->data, w->row_bytes, n_in, x, ldx, nt, yr, ldy, r0, r1);
    int ok = 1;
    for (int k = -1; k < 2 && ok; k++) {
        it_matmul_fn fn = k < 0 ? fmt_kernel(type, "ref") : fmt_kernel(type, k_isas[k]);
        if (!fn) continue;
        const char *isa = k < 0 ? "ref" : k_isas[k];
        for (int64_t i = 0; i < nt * ldy; i++) y[i] = k_sentinel;
        fn(w->data, w->row_bytes, n_in, x, ldx, nt, y, ldy, r0, r1);
        for (int64_t t = 0; t < nt && ok; t++) {
            for (int64_t r = 0; r < ldy && ok; r++) {
                float got = y[t * ldy + r];
                if (r < r0 || r >= r1) {
                    if (got != k_sentinel) {
                        CHECK(got == k_sentinel, "%s wrote outside rows: t=%lld r=%lld", isa, (long long)t,
                              (long long)r);
                        ok = 0;
                    }
                    continue;
                }
                double tl = tol[t * ldy + r];
                double e1 = fabs((double)got - yr[t * ldy + r]), e2 = fabs((double)got - fake[t * ldy + r]);
                double e = e1 > e2 ? e1 : e2;
                if (e / tl > g_worst_ratio) g_worst_ratio = e / tl;
                if (!(e <= tl)) {
                    CHECK(e <= tl, "%s %s n_in=%lld nt=%lld t=%lld r=%lld: %.9g vs ref %.9g fake %.9g (tol %g)",
                          fmt_get(type)->name, isa, (long long)n_in, (long long)nt, (long long)t,
                          (long long)r, got, yr[t * ldy + r], fake[t * ldy + r], tl);
                    ok = 0;
                }
            }
        }
    }
    free(x);
    free(y);
    free(yr);
    free(fake);
    free(tol);
    return ok;
}

static void test_kernels(void) {
    static const int64_t rows_list[] = {1, 3, 16, 17};
    static const int64_t nt_list[] = {1, 2, 3, 5, 8, 13, 33, 64};
    static const int64_t n_mult[] = {1, 2, 11};
    for (int bi = 0; bi < 4; bi++) {
        for (int gi = 0; gi < 3; gi++) {
            for (int sym = 0; sym < 2; sym++) {
                int type = IT_QTYPE(k_bits[bi], gi, sym);
                char name[96];
                snprintf(name, sizeof name, "kernels %s (ref, avx2, avx512 vs fake-quant matmul)",
                         fmt_get(type)->name);
                TEST_CASE(name) {
                    int ok = 1;
                    for (int a = 0; a < 3 && ok; a++) {
                        int64_t n_in = n_mult[a] * k_groups[gi];
                        for (int b = 0; b < 4 && ok; b++) {
                            int64_t rows = rows_list[b];
                            qmat w = make_qweights(type, rows, n_in, (a + b) % 2);
                            for (int c = 0; c < 8 && ok; c++) {
                                int64_t nt = nt_list[c];
                                ok = check_kernels(type, &w, n_in, nt, n_in, rows, 0, rows);
                                int64_t r0 = rnd_int((int)rows), r1 = r0 + 1 + rnd_int((int)(rows - r0));
                                if (ok)
                                    ok = check_kernels(type, &w, n_in, nt, n_in + 1 + rnd_int(20),
                                                       rows + 1 + rnd_int(5), r0, r1);
                            }
                            free_qweights(&w);
                        }
                    }
                    // Rows longer than the decode kernels' input slice (8192): streamed in pieces.
                    int64_t n_long = 8192 + 2 * k_groups[gi];
                    qmat w = make_qweights(type, 3, n_long, 0);
                    for (int64_t nt = 1; nt <= 3 && ok; nt += 2) ok = check_kernels(type, &w, n_long, nt, n_long, 3, 0, 3);
                    free_qweights(&w);
                }
            }
        }
    }
}

// Through kern_matmul and the traits table, split over threads, on a layer-sized matrix.
static void test_threaded(void) {
    TEST_CASE("kern_matmul, 2 threads, int4_g128 / int8_g32_sym / int3_g64") {
        it_pool *pool = it_pool_new(2);
        const int types[] = {IT_QTYPE(4, 2, 0), IT_QTYPE(8, 0, 1), IT_QTYPE(3, 1, 0)};
        const int64_t n_in = 512, n_out = 272;
        for (int k = 0; k < 3; k++) {
            qmat w = make_qweights(types[k], n_out, n_in, 0);
            it_tensor t = {"w", types[k], 2, {n_in, n_out, 1, 1}, w.data, n_out * w.row_bytes};
            for (int64_t nt = 1; nt <= 70; nt += 69) {
                float *x = malloc((size_t)(nt * n_in) * sizeof(float));
                float *y = malloc((size_t)(nt * n_out) * sizeof(float));
                float *yr = malloc((size_t)(nt * n_out) * sizeof(float));
                for (int64_t i = 0; i < nt * n_in; i++) x[i] = rnd_f();
                kern_matmul(pool, &t, x, nt, y);
                fmt_get(types[k])->matmul[IT_ISA_REF](w.data, w.row_bytes, n_in, x, n_in, nt, yr, n_out, 0, n_out);
                int bad = 0;
                for (int64_t i = 0; i < nt * n_out && bad < 3; i++) {
                    double mag = 0;
                    for (int64_t j = 0; j < n_in; j++)
                        mag += fabs((double)w.deq[(i % n_out) * n_in + j] * x[(i / n_out) * n_in + j]);
                    if (!(fabs((double)y[i] - yr[i]) <= 1e-5 * mag + 1e-6)) {
                        CHECK(0, "%s nt=%lld i=%lld: %g vs %g", fmt_get(types[k])->name, (long long)nt,
                              (long long)i, y[i], yr[i]);
                        bad++;
                    }
                }
                free(x);
                free(y);
                free(yr);
            }
            free_qweights(&w);
        }
        it_pool_free(pool);
    }
}

int main(void) {
    printf("cpu: avx2=%d avx512=%d\n", it_cpu_has_avx2(), it_cpu_has_avx512());
    test_hand_computed();
    test_error_bounds();
    test_rows();
    test_traits();
    test_kernels();
    test_threaded();
    printf("worst kernel error / tolerance: %.3g\n", g_worst_ratio);
    return th_finish("test_qformat");
}
