// Error reporting for the library: every fallible function fills an intact_error and
// returns a failure value; the library never prints or exits on its own.
#ifndef IT_CORE_ERROR_H
#define IT_CORE_ERROR_H

#include "intact.h"

// Formats the message into err (if non-NULL) and returns -1 so callers can `return it_fail(...)`.
int it_fail(intact_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

// Overflow-checked size arithmetic: return 0 on success, -1 if the result would not fit.
int it_mul_size(size_t a, size_t b, size_t *out);
int it_add_size(size_t a, size_t b, size_t *out);

#endif
