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

#endif
