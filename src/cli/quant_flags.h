// Quantization flags shared by `quantize` and the commands that can quantize in memory
// (run, ppl, kld, bench): --quant METHOD --bits B --group G [--sym] [--calib FILE ...] [--rotate
// [--rotate-seed S]]. --rotate alone (no --quant, or `quantize --method none`) only rotates.
#ifndef IT_CLI_QUANT_FLAGS_H
#define IT_CLI_QUANT_FLAGS_H

#include "cli/args.h"
#include "intact.h"

enum { QUANT_N_OPTS = 16 };   // the last 3 (activation quantization) are not on `quantize`

typedef struct quant_flags {
    const char *method, *calib;
    int bits, group, sym, clip_search, act_order, samples, len, fake, rotate;
    uint64_t seed, rotate_seed;
    int abits, a_fake;
    float a_clip;
} quant_flags;

void quant_flags_init(quant_flags *q);
// Appends the quantization options after n options already in opts; returns the new count.
int quant_flags_add(quant_flags *q, cli_opt *opts, int n, int for_quantize_cmd);
// Rotates and/or quantizes m in memory when --rotate or a method was given; prints errors; 0 on
// success. A report is printed to stderr unless quiet; *rep (may be NULL) receives it.
int quant_flags_apply(const char *cmd, const quant_flags *q, intact_model *m, int n_threads, int quiet,
                      intact_quant_report *rep);

// With --rotate: rotates the FP reference model too (same seed, no quantization), so that residual
// streams compared against the rotated quantized model are in one basis. 0 on success.
int quant_flags_rotate_base(const char *cmd, const quant_flags *q, intact_model *base, int n_threads, int quiet);

#endif
