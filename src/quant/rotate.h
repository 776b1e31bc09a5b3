// QuaRot-style rotation of a full-precision model (intact_quant_params.rotate), so that outliers
// are spread over all channels before weights (and later activations) are quantized. The rotated
// model computes the same function as the original, up to float rounding:
//   1. RMSNorm weights are folded into the linear layers that read the norm's output
//      (q, k, v <- W diag(attn_norm); gate, up <- W diag(ffn_norm); output head <- W diag(output_norm))
//      and the norm vectors become ones, so RMSNorm commutes with any orthogonal matrix.
//   2. The residual stream is rotated by Q = D H / sqrt(b): D a random +-1 diagonal drawn from the
//      seed, H the block-diagonal Sylvester Hadamard matrix with blocks of b, the largest power of 2
//      dividing dim (b = dim for the usual power-of-2 widths; otherwise the mixing only happens
//      within blocks, which spreads outliers less). Embedding rows and the linears reading the
//      residual get W <- W Q, the linears writing it (attn_output, ffn_down) W <- Q^T W.
//   3. The down-projection input is rotated online: ffn_down <- W Hd with Hd the normalized
//      block-diagonal Hadamard matrix with blocks of the largest power of 2 dividing hidden_dim, and
//      the forward pass multiplies the SwiGLU output by Hd (m->rot_down_block) before ffn_down.
// Tied embeddings are untied (the folded head differs from the rotated embedding) unless the
// final norm is all ones. Every rotated matrix becomes an owned F32 tensor.
#ifndef IT_QUANT_ROTATE_H
#define IT_QUANT_ROTATE_H

#include <stdint.h>

#include "model/model.h"

// Rotates m in place. Refuses (leaving m unchanged) a model already rotated or quantized, or whose
// matrices are not F32/F16/BF16/Q8_0. After an out-of-memory failure m is half rotated: free it.
// n_threads <= 0 means 1; the result does not depend on it (rows and columns are independent).
int rot_model(intact_model *m, uint64_t seed, int n_threads, intact_error *err);

// The random signs of D: (n) values +-1, a fixed function of the seed (splitmix64 bits).
void rot_signs(uint64_t seed, double *sign, int64_t n);

#endif
