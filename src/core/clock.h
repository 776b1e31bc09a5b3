// Monotonic wall clock in seconds, for timings the library reports.
#ifndef IT_CORE_CLOCK_H
#define IT_CORE_CLOCK_H

#include <time.h>

static inline double it_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
