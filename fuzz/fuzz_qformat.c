// libFuzzer target for intact's packed integer formats (formats/qformat.h). The input is hostile
// packed blocks: every format must dequantize and multiply them without a crash or UB, whatever the
// fp16 scales (NaN, inf, subnormal) and zero points hold. Layout of the input:
//   byte 0: format index (mod 24: bits 2/3/4/8 x group 32/64/128 x asym/sym)
//   byte 1: groups per row (1..4, low 2 bits), rows (1..4, next 2 bits), tokens (1..3, next 2 bits),
//           and bit 6: "quantize" mode
//   byte 2: clip ratio for quantize mode ((b + 1) / 256)
//   rest:   rows * row_bytes of packed blocks (zero-padded when short), or in quantize mode the
//           raw bit patterns of the floats to quantize (NaN, inf and huge values included).
// Dequantize mode: qf_dequantize_row on every row, then the scalar reference kernel and every SIMD
// kernel this CPU has, with finite activations in [-1, 1]; when every scale is finite the kernels
// must agree with the dequantized dot product within a bound derived from sum |w_i x_i|.
// Quantize mode: rtn_quantize_row, then unpack/dequantize the result; a finite input must give
// in-range zero points and a finite, positive scale.
// Build and run: `make fuzz FUZZ_SECONDS=N` (scripts/fuzz.sh).
// (The entropic schedule's per-feature bookkeeping dominates this target's time; off, it runs ~10x faster.)
// fuzz-flags: -entropic=0
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fp16.h"
#include "formats/fmt_kernels.h"
#include "formats/formats.h"
#include "formats/qformat.h"
#include "quant/rtn.h"

static volatile float g_sink;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    return 0;
}

static void check_close(float a, float b, double bound) {
    if (!isfinite(a) || !isfinite(b)) return;
    if (fabs((double)a - (double)b) > bound) {
        fprintf(stderr, "fuzz_qformat: kernels disagree: %.9g vs %.9g (bound %g)\n", a, b, bound);
        __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    static const int bits_of[4] = {2, 3, 4, 8}, groups[3] = {32, 64, 128};
    int f = data[0] % 24;
    qf_spec s = {bits_of[f / 6], groups[(f / 2) % 3], f % 2};
    int type;
    if (qf_type_of(&s, &type) != 0) __builtin_trap();
    int n_groups = 1 + (data[1] & 3), rows = 1 + ((data[1] >> 2) & 3), nt = 1 + ((data[1] >> 4) & 3) % 3;
    int quantize = (data[1] >> 6) & 1;
    float clip = (float)(data[2] + 1) / 256.0f;
    data += 3;
    size -= 3;
    int64_t n_in = (int64_t)n_groups * s.group;
    size_t bb = qf_block_bytes(&s), row_bytes = bb * (size_t)n_groups;
    uint8_t *w = calloc((size_t)rows, row_bytes);
    float *deq = malloc((size_t)n_in * sizeof *deq);
    if (!w || !deq) abort();

    if (quantize) {
        float *src = calloc((size_t)n_in, sizeof *src);
        if (!src) abort();
        memcpy(src, data, size < (size_t)n_in * 4 ? size : (size_t)n_in * 4);
        int finite = 1;
        for (int64_t i = 0; i < n_in; i++) finite &= isfinite(src[i]) != 0;
        rtn_quantize_row(&s, src, n_in, clip, w);
        qf_dequantize_row(&s, w, deq, n_in);
        for (int g = 0; g < n_groups; g++) {
            float d;
            int z;
            uint8_t q[128];
            qf_unpack_group(&s, w + (size_t)g * bb, &d, &z, q);
            if (finite && !(d > 0 && isfinite(d))) __builtin_trap();
            if (z < 0 || z > (1 << s.bits) - 1) __builtin_trap();
            for (int i = 0; i < s.group; i++)
                if (q[i] > (1 << s.bits) - 1) __builtin_trap();
        }
        for (int64_t i = 0; i < n_in; i++) g_sink += deq[i];
        free(src);
        rows = 1;
    } else {
        size_t want = (size_t)rows * row_bytes;
        memcpy(w, data, size < want ? size : want);
    }

    // Activations: deterministic, finite, in [-1, 1] (seeded by the input so they vary).
    float *x = malloc((size_t)nt * (size_t)n_in * sizeof *x);
    float *y = malloc((size_t)nt * (size_t)rows * sizeof *y), *y2 = malloc((size_t)nt * (size_t)rows * sizeof *y2);
    double *mag = calloc((size_t)nt * (size_t)rows, sizeof *mag), *dot = calloc((size_t)nt * (size_t)rows, sizeof *dot);
    int *finite_row = calloc((size_t)rows, sizeof *finite_row);
    if (!x || !y || !y2 || !mag || !dot || !finite_row) abort();
    uint32_t st = 0x9e3779b9u ^ (uint32_t)size ^ (size ? data[size - 1] : 0);
    for (int64_t i = 0; i < (int64_t)nt * n_in; i++) {
        st = st * 1664525u + 1013904223u;
        x[i] = (float)((int32_t)(st >> 8) - (1 << 23)) / (float)(1 << 23);
    }
    for (int r = 0; r < rows; r++) {
        qf_dequantize_row(&s, w + (size_t)r * row_bytes, deq, n_in);
        int fin = 1;
        for (int64_t i = 0; i < n_in; i++) fin &= isfinite(deq[i]) != 0;
        finite_row[r] = fin;
        for (int t = 0; t < nt; t++)
            for (int64_t i = 0; i < n_in; i++) {
                double p = (double)deq[i] * x[t * n_in + i];
                dot[t * rows + r] += p;
                mag[t * rows + r] += fabs(p);
            }
    }
    fmt_qmatmul_ref(&s, w, row_bytes, n_in, x, n_in, nt, y, rows, 0, rows);
    const char *isas[3] = {"ref", "avx2", "avx512"};
    for (int k = 0; k < 3; k++) {
        it_matmul_fn fn = fmt_kernel(type, isas[k]);
        if (!fn) continue;
        for (int i = 0; i < nt * rows; i++) y2[i] = NAN;
        fn(w, row_bytes, n_in, x, n_in, nt, y2, rows, 0, rows);
        for (int t = 0; t < nt; t++)
            for (int r = 0; r < rows; r++) {
                int i = t * rows + r;
                g_sink += y2[i];
                if (!finite_row[r] || !isfinite(mag[i]) || mag[i] > 1e30) continue;
                double bound = 1e-4 * mag[i] + 1e-6;
                check_close(y2[i], (float)dot[i], bound);
                check_close(y2[i], y[i], bound);
            }
    }
    free(x); free(y); free(y2); free(mag); free(dot); free(finite_row);
    free(w);
    free(deq);
    return 0;
}
