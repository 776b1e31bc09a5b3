// The formats table (formats.h): one const entry per type id, built at compile time.
#include "formats/formats.h"

#include <string.h>

#include "core/cpu.h"
#include "formats/fmt_kernels.h"
#include "formats/qformat.h"

// Slots: ggml's ids (< FMT_GGML_SLOTS) map to themselves, our integer formats (IT_QTYPE_BASE ..
// IT_QTYPE_BASE + FMT_QF_SLOTS) follow them, so the table stays small while indexed by type id.
enum { FMT_GGML_SLOTS = 64, FMT_QF_SLOTS = 9 * 16, FMT_SLOTS = FMT_GGML_SLOTS + FMT_QF_SLOTS };
#define FMT_SLOT(type) ((type) < FMT_GGML_SLOTS ? (type) : (type) - IT_QTYPE_BASE + FMT_GGML_SLOTS)

#define FMT_BPW(block_size, block_bytes) ((double)(block_bytes) * 8.0 / (double)(block_size))
#define FMT_KERNELS(REF, AVX2, AVX512) {[IT_ISA_REF] = REF, [IT_ISA_AVX2] = AVX2, [IT_ISA_AVX512] = AVX512}

// A ggml type (Q4_0, Q4_K, ...) lands as one more entry here, nothing else in the engine changes:
//   1. its ggml id in enum it_type (formats.h) and its block struct with a _Static_assert on the
//      size (as it_block_q8_0);
//   2. fmt_to_float_<t> and fmt_matmul_<t>_ref in matmul_ref.c (plus _avx2/_avx512 twins when
//      written; NULL until then, the selector then uses the reference), declared in fmt_kernels.h;
//   3. a line  [IT_TYPE_<T>] = {"<t>", QK, sizeof(block), FMT_BPW(QK, sizeof(block)),
//      fmt_to_float_<t>, FMT_KERNELS(fmt_matmul_<t>_ref, <avx2 or NULL>, <avx512 or NULL>)},
//   and tests/test_kernels.c's k_types gets the id so the SIMD twins are compared with the ref.
// GGUF reading (io/gguf.c) and the forward pass only ever ask fmt_get(), so they need no change.
#define FMT_QF_ENTRY(B, G, S)                                                                    \
    [FMT_SLOT(IT_QTYPE(B, (G) == 32 ? 0 : (G) == 64 ? 1 : 2, S))] = {                            \
        (S) ? "int" #B "_g" #G "_sym" : "int" #B "_g" #G, G, QF_BLOCK_BYTES(B, G, S),           \
        FMT_BPW(G, QF_BLOCK_BYTES(B, G, S)), fmt_to_float_i##B##_g##G##_s##S,                    \
        FMT_KERNELS(fmt_qmatmul_i##B##_g##G##_s##S##_ref, fmt_qmatmul_i##B##_g##G##_s##S##_avx2, \
                    fmt_qmatmul_i##B##_g##G##_s##S##_avx512)},

static const fmt_traits g_formats[FMT_SLOTS] = {
    [IT_TYPE_F32] = {"f32", 1, 4, 32.0, fmt_to_float_f32,
                     FMT_KERNELS(fmt_matmul_f32_ref, fmt_matmul_f32_avx2, fmt_matmul_f32_avx512)},
    [IT_TYPE_F16] = {"f16", 1, 2, 16.0, fmt_to_float_f16,
                     FMT_KERNELS(fmt_matmul_f16_ref, fmt_matmul_f16_avx2, fmt_matmul_f16_avx512)},
    [IT_TYPE_BF16] = {"bf16", 1, 2, 16.0, fmt_to_float_bf16,
                      FMT_KERNELS(fmt_matmul_bf16_ref, fmt_matmul_bf16_avx2, fmt_matmul_bf16_avx512)},
    [IT_TYPE_Q8_0] = {"q8_0", IT_QK8_0, sizeof(it_block_q8_0), FMT_BPW(IT_QK8_0, sizeof(it_block_q8_0)),
                      fmt_to_float_q8_0,
                      FMT_KERNELS(fmt_matmul_q8_0_ref, fmt_matmul_q8_0_avx2, fmt_matmul_q8_0_avx512)},
#define FMT_GGML_ENTRY(ID, T, QK, AVX2)                                                          \
    [ID] = {#T, QK, sizeof(it_block_##T), FMT_BPW(QK, sizeof(it_block_##T)), fmt_to_float_##T,   \
            FMT_KERNELS(fmt_matmul_##T##_ref, AVX2, NULL)},
    FMT_GGML_ENTRY(IT_TYPE_Q4_0, q4_0, 32, fmt_matmul_q4_0_avx2)
    FMT_GGML_ENTRY(IT_TYPE_Q4_1, q4_1, 32, NULL)
    FMT_GGML_ENTRY(IT_TYPE_Q5_0, q5_0, 32, NULL)
    FMT_GGML_ENTRY(IT_TYPE_Q5_1, q5_1, 32, NULL)
    FMT_GGML_ENTRY(IT_TYPE_Q2_K, q2_K, IT_QK_K, NULL)
    FMT_GGML_ENTRY(IT_TYPE_Q3_K, q3_K, IT_QK_K, NULL)
    FMT_GGML_ENTRY(IT_TYPE_Q4_K, q4_K, IT_QK_K, fmt_matmul_q4_K_avx2)
    FMT_GGML_ENTRY(IT_TYPE_Q5_K, q5_K, IT_QK_K, NULL)
    FMT_GGML_ENTRY(IT_TYPE_Q6_K, q6_K, IT_QK_K, NULL)
    FMT_GGML_ENTRY(IT_TYPE_Q8_K, q8_K, IT_QK_K, NULL)
    QF_FOR_EACH_FORMAT(FMT_QF_ENTRY)
};
_Static_assert(FMT_SLOT(IT_QTYPE(8, 2, 1)) < FMT_SLOTS, "every integer format has a slot");

const fmt_traits *fmt_get(int type) {
    if (type < 0 || (type >= FMT_GGML_SLOTS && type < IT_QTYPE_BASE)) return NULL;
    int slot = FMT_SLOT(type);
    if (slot >= FMT_SLOTS || !g_formats[slot].name) return NULL;
    return &g_formats[slot];
}

it_matmul_fn fmt_matmul(const fmt_traits *t) {
    for (int isa = it_cpu_isa(); isa > IT_ISA_REF; isa--)
        if (t->matmul[isa]) return t->matmul[isa];
    return t->matmul[IT_ISA_REF];
}

it_matmul_fn fmt_kernel(int type, const char *isa) {
    const fmt_traits *t = fmt_get(type);
    if (!t || !isa) return NULL;
    if (!strcmp(isa, "ref")) return t->matmul[IT_ISA_REF];
    if (!strcmp(isa, "avx2")) return it_cpu_has_avx2() ? t->matmul[IT_ISA_AVX2] : NULL;
    if (!strcmp(isa, "avx512")) return it_cpu_has_avx512() ? t->matmul[IT_ISA_AVX512] : NULL;
    return NULL;
}

size_t fmt_row_bytes(int type, int64_t n) {
    const fmt_traits *t = fmt_get(type);
    if (!t || n <= 0 || n % t->block_size) return 0;
    uint64_t blocks = (uint64_t)n / (uint64_t)t->block_size;
    if (blocks > SIZE_MAX / t->block_bytes) return 0;
    return (size_t)blocks * t->block_bytes;
}

// ggml's type names, so a file in a format we don't read yet is named in the error message.
const char *fmt_ggml_name(uint32_t type) {
    static const char *const names[] = {
        "f32", "f16", "q4_0", "q4_1", NULL, NULL, "q5_0", "q5_1", "q8_0", "q8_1", "q2_K", "q3_K", "q4_K",
        "q5_K", "q6_K", "q8_K", "iq2_xxs", "iq2_xs", "iq3_xxs", "iq1_s", "iq4_nl", "iq3_s", "iq2_s",
        "iq4_xs", "i8", "i16", "i32", "i64", "f64", "iq1_m", "bf16", NULL, NULL, NULL, "tq1_0", "tq2_0"};
    return type < sizeof names / sizeof names[0] ? names[type] : NULL;
}
