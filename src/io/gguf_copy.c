// Copies one metadata entry of an opened GGUF into a writer, value type preserved (a quantized
// model keeps its source's tokenizer and general.* metadata verbatim).
#include "io/gguf_copy.h"

#include <stdlib.h>

#include "core/error.h"
#include "io/gguf_internal.h"

static int copy_str_array(const gguf_kv *kv, gguf_writer *w) {
    const char **strs = malloc((size_t)(kv->n ? kv->n : 1) * sizeof *strs);
    size_t *lens = malloc((size_t)(kv->n ? kv->n : 1) * sizeof *lens);
    int rc = -1;
    if (strs && lens) {
        for (uint64_t j = 0; j < kv->n; j++) {
            strs[j] = (const char *)kv->strs[j];
            lens[j] = (size_t)gguf_le64(kv->strs[j] - 8); // the u64 length precedes each string
        }
        rc = gguf_writer_add_arr_str(w, kv->key, strs, lens, kv->n);
    }
    free(strs);
    free(lens);
    return rc;
}

int gguf_copy_kv(const gguf_file *f, int64_t i, gguf_writer *w) {
    const gguf_kv *kv = &f->kv[i];
    switch (kv->type) {
    case GGUF_T_U8: return gguf_writer_add_u8(w, kv->key, (uint8_t)kv->v.u);
    case GGUF_T_I8: return gguf_writer_add_i8(w, kv->key, (int8_t)kv->v.i);
    case GGUF_T_U16: return gguf_writer_add_u16(w, kv->key, (uint16_t)kv->v.u);
    case GGUF_T_I16: return gguf_writer_add_i16(w, kv->key, (int16_t)kv->v.i);
    case GGUF_T_U32: return gguf_writer_add_u32(w, kv->key, (uint32_t)kv->v.u);
    case GGUF_T_I32: return gguf_writer_add_i32(w, kv->key, (int32_t)kv->v.i);
    case GGUF_T_U64: return gguf_writer_add_u64(w, kv->key, kv->v.u);
    case GGUF_T_I64: return gguf_writer_add_i64(w, kv->key, kv->v.i);
    case GGUF_T_F32: return gguf_writer_add_f32(w, kv->key, (float)kv->v.f);
    case GGUF_T_F64: return gguf_writer_add_f64(w, kv->key, kv->v.f);
    case GGUF_T_BOOL: return gguf_writer_add_bool(w, kv->key, (int)kv->v.u);
    case GGUF_T_STRING: return gguf_writer_add_str(w, kv->key, kv->str, kv->len);
    case GGUF_T_ARRAY:
        if (kv->elem_type == GGUF_T_STRING) return copy_str_array(kv, w);
        return gguf_writer_add_arr(w, kv->key, kv->elem_type, kv->raw, kv->n);
    default: return -1;
    }
}
