// IntactKV calibration (Liu et al. 2024, sec. 3.3): the prefix K/V, built lossless from the FP
// model, are treated as trainable parameters (all model weights frozen) and tuned with AdamW so
// that the quantized model's block outputs match the FP model's on calibration text:
//     loss = sum over layers l of 1/2 * mean over (tokens, dim) of (block_out_q_l - block_out_fp_l)^2
// over the sample tokens that follow the prefix.
#ifndef IT_IKV_CALIBRATE_H
#define IT_IKV_CALIBRATE_H

#include <stdint.h>
#include "intact.h"

// Called after every epoch with the mean per-sample loss seen during it (before each step).
typedef void (*ikv_calib_progress)(void *user, int epoch, int epochs, double loss);

typedef struct ikv_calib_opts {
    int epochs;            // passes over the samples (default 20, as in the paper)
    int batch;             // samples per AdamW step; their gradients are averaged (default 1)
    float lr;              // default 2e-4 (the paper's)
    // Decoupled (AdamW) weight decay. Default 0: decay pulls K/V towards zero, not towards the FP
    // values they start from, so any nonzero value fights the objective. (PyTorch's default is 0.01.)
    float weight_decay;
    float beta1, beta2, eps;   // defaults 0.9, 0.999, 1e-8
    int n_threads;         // <= 0: 1
    uint64_t seed;         // the sample order of every epoch (Fisher-Yates with xorshift64)
    ikv_calib_progress progress;
    void *progress_user;
} ikv_calib_opts;

typedef struct ikv_calib_report {
    int epochs, steps;
    double loss_init;      // mean loss with the prefix as given, before any step
    double loss_first;     // mean loss seen during epoch 1 (as the progress callback reports it)
    double loss_last;      // ... during the last epoch
    double loss_final;     // mean loss with the calibrated prefix (an extra forward-only pass)
    double seconds;
} ikv_calib_report;

ikv_calib_opts ikv_calib_default_opts(void);

// qm: the quantized model; fp: the full-precision model of the same family; p: a prefix built
// from fp (intact_prefix_build), updated in place; tokens: (n_samples, len) text ids NOT including
// the prefix. o, rep may be NULL. Returns 0, or -1 with err set.
//
// Memory: the FP targets are cached once, n_samples * n_layers * len * dim floats, plus a
// transposed fp32 copy of every layer matrix of qm (4 bytes per weight) and the activations of
// one sample for all layers (see src/ikv/train.h). Fine for small models; the targets are refused
// above 4 GiB.
int ikv_calibrate(const intact_model *qm, const intact_model *fp, intact_prefix *p, const int32_t *tokens,
                  int n_samples, int len, const ikv_calib_opts *o, ikv_calib_report *rep, intact_error *err);

#endif
