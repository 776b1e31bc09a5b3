// Internals of intact_analyze (the public API is the "analysis" block of intact.h), exposed for
// the tests: the two baselines the pivot criteria compare against.
#ifndef IT_EVAL_ANALYZE_H
#define IT_EVAL_ANALYZE_H

#include "intact.h"

// Share key j of n receives when every query t >= j attends uniformly to its t+1 visible keys:
// mean over t = j..n-1 of 1/(t+1). Early keys are seen by more queries with fewer keys, so their
// baseline is higher (key 0 of 128: 4.3%; the last key: 1/n).
double analyze_uniform_share(int n, int j);

// Median of sorted[0..n-1] with the element at index skip removed (n >= 2).
float analyze_median_without(const float *sorted, int n, int skip);

// Channel profile of the residual stream after each layer in layers[0..nl) (one more forward pass
// over tokens[0..n)): out[(k * 3 + 0) * dim + c] = |h_c| of token `who`, [.. + 1] the max and
// [.. + 2] the median of |h_c| over the other tokens, for layers[k]. Shows which channels carry a
// pivot token's massive activation and that no other token comes near them. Keeps nl x n x dim
// floats for the medians. 0 or -1 (err filled).
int analyze_channel_profile(const intact_model *m, const int32_t *tokens, int n, int who, const int *layers,
                            int nl, int n_threads, float *out, intact_error *err);

#endif
