// Shared by the quantization driver (quantize.c), calibration (calib.c) and AWQ glue (quant_awq.c).
#ifndef IT_QUANT_QUANT_INTERNAL_H
#define IT_QUANT_QUANT_INTERNAL_H

#include "intact.h"
#include "core/pool.h"
#include "formats/qformat.h"
#include "model/model.h"
#include "quant/gptq.h"
#include "quant/qgrid.h"

enum { QM_RTN, QM_GPTQ, QM_AWQ };
// The four distinct inputs of a layer's linear maps.
enum { QI_ATTN_NORM, QI_WO_IN, QI_FFN_NORM, QI_DOWN_IN, QI_COUNT };
// AWQ searches on at most this many calibration tokens per input (the references use ~512).
enum { QUANT_AWQ_TOKENS = 512 };

typedef struct quant_input_stats {
    int width;
    gptq_hessian h;          // gptq: 2/N sum x x^T
    double *abs_sum;         // awq: sum |x| per channel
    int64_t n_tok;           // tokens seen
    float *X;                // awq: (x_rows, width) subsample of the inputs
    int64_t x_rows;
} quant_input_stats;

typedef struct quant_run {
    intact_model *m;
    const intact_quant_params *p;
    intact_error *err;
    intact_quant_report *rep;
    qf_spec spec;
    qgrid grid;              // the storage grid every method quantizes onto
    qgrid fallback;          // k-quants: for rows not a multiple of 256 (fallback.type 0: none)
    int method;
    intact_ctx *ctx;         // calibration context (gptq, awq)
    it_pool *pool;           // its thread team, shared by the quantizers
    int32_t *samples;        // (n_samples, sample_len) token ids, BOS first (unless p->calib_no_bos)
    int n_samples, sample_len;
    int64_t awq_stride;      // keep every stride-th calibration token for the AWQ search
    quant_input_stats stats[QI_COUNT];
    float *awq_scales[QI_COUNT];  // awq: s applied to each input of the current layer (NULL: none)
    double q_weights, q_bits;
} quant_run;

int quant_run_begin(quant_run *q);              // calibration samples and context
void quant_run_end(quant_run *q);
int quant_collect(quant_run *q, int layer);     // fills q->stats for the inputs of this layer
void quant_stats_clear(quant_run *q);
// The grid for matrices with rows of n_in: q->grid, its fallback, or NULL (kept as stored).
const qgrid *quant_grid_for(const quant_run *q, int64_t n_in);

// AWQ: searches and folds the per-channel scales of layer l (before its matrices are quantized),
// then quantizes one matrix with the clip search.
int quant_awq_scale_layer(quant_run *q, int layer);
int quant_awq_matrix(quant_run *q, int input, float *w, int64_t n_out, int64_t n_in, void *packed);
void quant_awq_free(quant_run *q);

#endif
