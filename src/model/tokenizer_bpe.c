// GPT-2 byte-level BPE (placeholder while the encoder is written).
#include "core/error.h"
#include "model/tokenizer_impl.h"

int tok_bpe_finish(tok_vocab *v, const char *pre, intact_error *err) {
    (void)v; (void)pre;
    return it_fail(err, INTACT_E_UNSUPPORTED, "tokenizer: gpt2 vocabularies are not supported yet");
}
int tok_bpe_add_merge(tok_vocab *v, const char *s, size_t len, int rank, intact_error *err) {
    (void)v; (void)s; (void)len; (void)rank;
    return it_fail(err, INTACT_E_UNSUPPORTED, "tokenizer: gpt2 vocabularies are not supported yet");
}
int tok_bpe_encode(const tok_vocab *v, const char *text, size_t len, int add_bos,
                   int32_t *out, int max, intact_error *err) {
    (void)v; (void)text; (void)len; (void)add_bos; (void)out; (void)max;
    return it_fail(err, INTACT_E_UNSUPPORTED, "tokenizer: gpt2 vocabularies are not supported yet");
}
