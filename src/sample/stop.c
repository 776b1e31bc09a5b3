// Stop-string matching for run, chat and serve (see stop.h).
#include "sample/stop.h"

#include <string.h>

size_t stop_scan(const char *text, size_t len, size_t from, const char *const *stops, int n_stops, int *hit) {
    *hit = 0;
    // A match cannot start before `from`: those bytes were shown because no stop string began there.
    for (size_t at = from; at < len; at++)
        for (int i = 0; i < n_stops; i++) {
            size_t sl = strlen(stops[i]);
            if (sl == 0) continue;
            size_t avail = len - at;
            if (avail >= sl && memcmp(text + at, stops[i], sl) == 0) {
                *hit = 1;
                return at;
            }
            if (avail < sl && memcmp(text + at, stops[i], avail) == 0) return at;   // may still complete
        }
    return len;
}
