// Quantization flags shared by `quantize` and the commands that can quantize in memory
// (run, ppl, kld, bench): --quant METHOD --bits B --group G [--sym] [--calib FILE ...] [--rotate
// [--rotate-seed S]]. --rotate alone (no --quant, or `quantize --method none`) only rotates.
#ifndef IT_CLI_QUANT_FLAGS_H
#define IT_CLI_QUANT_FLAGS_H

#include "cli/args.h"
#include "intact.h"

enum { QUANT_N_OPTS = 20 };   // the last 5 (activation quantization) are not on `quantize`

// Who uses the flags: a command quantizing in memory (--quant METHOD), `quantize` itself (--method,
// default rtn), or a command that reads --calib as its own input too (`ikv calibrate`).
enum { QF_IN_MEMORY = 0, QF_QUANTIZE_CMD = 1, QF_CALIB_CMD = 2 };

typedef struct quant_flags {
    int mode;   // QF_*, set by quant_flags_add
    const char *method, *calib, *format;
    const char *output_type, *embd_type;   // `quantize` only (set by it, not flags here)
    int bits, group, sym, clip_search, act_order, samples, len, calib_no_bos, fake, rotate;
    uint64_t seed, rotate_seed;
    int abits, a_fake, exact_act, int8_act_all;
    float a_clip;
} quant_flags;

void quant_flags_init(quant_flags *q);
// Appends the quantization options after n options already in opts; returns the new count.
int quant_flags_add(quant_flags *q, cli_opt *opts, int n, int mode);

// Usage errors, checked right after cli_parse with the same table and arguments (commands exit 2):
// a flag that the chosen method (or its absence) would silently ignore, or a bad value. One stderr
// line naming the flag and the one it needs / conflicts with; -1, or 0. The rules:
//   --bits --group --sym --fake-quant --clip-search --act-order --format need a method (not none);
//   --format q4_0|q4_1|q8_0|q4_k|q6_k excludes --bits, --group and --sym;
//   --clip-search is rtn only, --act-order gptq only; --bits 2|3|4|8, --group 32|64|128;
//   --calib --calib-samples --calib-len --quant-seed --calib-no-bos need gptq or awq (except --calib for
//   ikv calibrate), and gptq / awq need --calib; --quant none needs --rotate;
//   --rotate-seed needs --rotate; --a-clip and --a-fake need --abits 8|4; --exact-act and
//   --int8-act-all exclude each other and --abits 8|4.
int quant_flags_check(const char *cmd, const quant_flags *q, const cli_opt *opts, int n_opts, int argc,
                      char **argv);
// Rotates and/or quantizes m in memory when --rotate or a method was given; prints errors; 0 on
// success. A report is printed to stderr unless quiet; *rep (may be NULL) receives it.
// The group a quantization of m uses: --group, or the default that fits m's widths.
int quant_flags_group(const quant_flags *q, const intact_model *m);
// 1 when --rotate or a method (not none) rewrites the weights in memory: the file's weights are then
// read once, so run and bench map the file rather than keep a copy beside the new weights.
int quant_flags_rewrites(const quant_flags *q);
int quant_flags_apply(const char *cmd, const quant_flags *q, intact_model *m, int n_threads, int quiet,
                      intact_quant_report *rep);

// With --rotate: rotates the FP reference model too (same seed, no quantization), so that residual
// streams compared against the rotated quantized model are in one basis. 0 on success.
int quant_flags_rotate_base(const char *cmd, const quant_flags *q, intact_model *base, int n_threads, int quiet);

#endif
