// AWQ glue (filled in once the search functions land).
#include "core/error.h"
#include "quant/quant_internal.h"

int quant_awq_scale_layer(quant_run *q, int layer) {
    (void)layer;
    return it_fail(q->err, INTACT_E_UNSUPPORTED, "awq is not available yet");
}

int quant_awq_matrix(quant_run *q, int input, float *w, int64_t n_out, int64_t n_in, void *packed) {
    (void)input; (void)w; (void)n_out; (void)n_in; (void)packed;
    return it_fail(q->err, INTACT_E_UNSUPPORTED, "awq is not available yet");
}
