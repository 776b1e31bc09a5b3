#include "kernels/hadamard.h"

#include <math.h>
#include <stddef.h>

int kern_hadamard_block_ok(int64_t n, int64_t block) {
    return n > 0 && block > 0 && (block & (block - 1)) == 0 && n % block == 0;
}

int64_t kern_hadamard_block_of(int64_t n) { return n > 0 ? n & -n : 0; }

// One block of length b: log2(b) passes of butterflies (a, c) -> (a + c, a - c) at distance h.
// The inner j loop runs over contiguous elements, so the compiler vectorizes it for h >= 8.
static void fwht_block_f32(float *x, int b) {
    for (int h = 1; h < b; h *= 2)
        for (int i = 0; i < b; i += 2 * h)
            for (int j = i; j < i + h; j++) {
                float a = x[j], c = x[j + h];
                x[j] = a + c;
                x[j + h] = a - c;
            }
}

void kern_hadamard_rows(float *x, int rows, int n, int block) {
    if (block <= 1) return;
    const float scale = (float)(1.0 / sqrt((double)block));
    for (int r = 0; r < rows; r++) {
        float *row = x + (size_t)r * (size_t)n;
        for (int b0 = 0; b0 < n; b0 += block) fwht_block_f32(row + b0, block);
        for (int i = 0; i < n; i++) row[i] *= scale;
    }
}

void kern_fwht_f64(double *x, int64_t n, int64_t block, int64_t lanes) {
    for (int64_t b0 = 0; b0 < n; b0 += block)
        for (int64_t h = 1; h < block; h *= 2)
            for (int64_t i = b0; i < b0 + block; i += 2 * h)
                for (int64_t j = i; j < i + h; j++) {
                    double *a = x + j * lanes, *c = x + (j + h) * lanes;
                    for (int64_t k = 0; k < lanes; k++) {
                        double s = a[k], d = c[k];
                        a[k] = s + d;
                        c[k] = s - d;
                    }
                }
}
