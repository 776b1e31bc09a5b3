// Stop strings: generation ends where the generated text first contains one of them, and the text
// from the match on is not shown. Text that could still become a stop string is held back.
#ifndef IT_SAMPLE_STOP_H
#define IT_SAMPLE_STOP_H

#include <stddef.h>

// text[0..len) is everything generated so far, of which text[0..from) is already shown (and holds
// no stop string, nor a start of one). Returns the end of what may be shown now: with *hit = 1 the
// start of the earliest stop string (generation should end), else len minus the longest tail of
// text that is a proper prefix of some stop string. Empty stop strings are ignored.
size_t stop_scan(const char *text, size_t len, size_t from, const char *const *stops, int n_stops, int *hit);

#endif
