// Fast Walsh-Hadamard transforms (Sylvester order, H_2n = [[H, H], [H, -H]]): O(n log n) butterflies
// in place, for the rotations of QuaRot-style quantization (quant/rotate.c) and the online transform
// of the down-projection input in the forward pass.
#ifndef IT_KERNELS_HADAMARD_H
#define IT_KERNELS_HADAMARD_H

#include <stdint.h>

// 1 when block is a power of 2 (1 included) dividing n.
int kern_hadamard_block_ok(int64_t n, int64_t block);
// The largest power of 2 dividing n (n > 0): the block of a block-diagonal Hadamard matrix of
// size n, e.g. 5632 = 11 * 512 -> 512.
int64_t kern_hadamard_block_of(int64_t n);

// x (rows, n), float: every row, block by block, multiplied by the normalized Hadamard matrix
// H_block / sqrt(block) (orthogonal and symmetric, so it is its own inverse). block must satisfy
// kern_hadamard_block_ok(n, block); block 1 leaves x as it is.
void kern_hadamard_rows(float *x, int rows, int n, int block);

// x (n, lanes) row-major, double: each of the `lanes` columns (length n) multiplied, block by
// block, by the UNnormalized H_block. With lanes = 1 this is the transform of one vector; with
// lanes > 1 it transforms many columns at once with contiguous (vectorizable) inner loops.
void kern_fwht_f64(double *x, int64_t n, int64_t block, int64_t lanes);

#endif
