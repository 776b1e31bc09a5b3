#include "core/types.h"

#include <pthread.h>
#include <stdint.h>

#include "kernels/matmul_ref.h"
#include "kernels/matmul_simd.h"
#include "quant/qformat.h"

// Formats registered at init by other modules (our integer formats, ids from IT_QTYPE_BASE).
enum { EXT_TYPES = 256 };
static it_type_traits g_ext[EXT_TYPES];
static int g_ext_set[EXT_TYPES];

void it_type_register(int type, const it_type_traits *t) {
    int i = type - IT_QTYPE_BASE;
    if (i < 0 || i >= EXT_TYPES) return;
    g_ext[i] = *t;
    g_ext_set[i] = 1;
}

static it_type_traits g_f32 = {"f32", 1, 4, kern_to_float_f32, kern_matmul_f32_ref, kern_matmul_f32_ref};
static it_type_traits g_f16 = {"f16", 1, 2, kern_to_float_f16, kern_matmul_f16_ref, kern_matmul_f16_ref};
static it_type_traits g_bf16 = {"bf16", 1, 2, kern_to_float_bf16, kern_matmul_bf16_ref, kern_matmul_bf16_ref};
static it_type_traits g_q8_0 = {"q8_0", IT_QK8_0, sizeof(it_block_q8_0), kern_to_float_q8_0,
                                kern_matmul_q8_0_ref, kern_matmul_q8_0_ref};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void select_kernels(void) {
    it_type_traits *all[] = {&g_f32, &g_f16, &g_bf16, &g_q8_0};
    int ids[] = {IT_TYPE_F32, IT_TYPE_F16, IT_TYPE_BF16, IT_TYPE_Q8_0};
    for (int i = 0; i < 4; i++) {
        it_matmul_fn fast = kern_simd_matmul(ids[i]);
        if (fast) all[i]->matmul = fast;
    }
    qf_register_types();
}

void it_types_init(void) { pthread_once(&g_once, select_kernels); }

const it_type_traits *it_type_get(int type) {
    it_types_init();
    switch (type) {
    case IT_TYPE_F32: return &g_f32;
    case IT_TYPE_F16: return &g_f16;
    case IT_TYPE_BF16: return &g_bf16;
    case IT_TYPE_Q8_0: return &g_q8_0;
    default: {
        int i = type - IT_QTYPE_BASE;
        return i >= 0 && i < EXT_TYPES && g_ext_set[i] ? &g_ext[i] : NULL;
    }
    }
}

size_t it_type_row_bytes(int type, int64_t n) {
    const it_type_traits *t = it_type_get(type);
    if (!t || n <= 0 || n % t->block_size) return 0;
    uint64_t blocks = (uint64_t)n / (uint64_t)t->block_size;
    if (blocks > SIZE_MAX / t->block_bytes) return 0;
    return (size_t)blocks * t->block_bytes;
}

// ggml's type names, so a file in a format we don't read yet is named in the error message.
const char *it_type_ggml_name(uint32_t type) {
    static const char *const names[] = {
        "f32", "f16", "q4_0", "q4_1", NULL, NULL, "q5_0", "q5_1", "q8_0", "q8_1", "q2_K", "q3_K", "q4_K",
        "q5_K", "q6_K", "q8_K", "iq2_xxs", "iq2_xs", "iq3_xxs", "iq1_s", "iq4_nl", "iq3_s", "iq2_s",
        "iq4_xs", "i8", "i16", "i32", "i64", "f64", "iq1_m", "bf16", NULL, NULL, NULL, "tq1_0", "tq2_0"};
    return type < sizeof names / sizeof names[0] ? names[type] : NULL;
}
