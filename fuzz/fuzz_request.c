// libFuzzer target for the request parser of `intact serve` (src/serve/req.c): any bytes as a
// chat or completion body under each chat template. The first byte picks the endpoint (bit 0) and
// the template (the rest, modulo TMPL_N). Checks: a parse either fails with a message or yields a
// NUL-terminated prompt, in-range sampling fields and at most REQ_MAX_STOPS non-empty stops.
// fuzz-extra-src: src/serve/req.c src/serve/template.c
// fuzz-libs: -lcjson
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "serve/req.h"
#include "serve/template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int chat = data[0] & 1, t = (data[0] >> 1) % TMPL_N;
    if (!tmpl_name(t) || tmpl_id(tmpl_name(t)) != t) __builtin_trap();
    serve_req r;
    char msg[256];
    msg[0] = 0;
    if (req_parse((const char *)data + 1, size - 1, chat, t, &r, msg, sizeof msg) != 0) {
        if (!msg[0]) __builtin_trap();
        return 0;
    }
    if (!r.prompt || strlen(r.prompt) > 64 * (size + 64)) __builtin_trap();
    if (r.max_tokens < 0 || !(r.temperature >= 0 && r.temperature <= 2) || !(r.top_p > 0 && r.top_p <= 1) ||
        !(r.min_p >= 0 && r.min_p <= 1) || r.top_k < 0 || r.n_stops < 0 || r.n_stops > REQ_MAX_STOPS)
        __builtin_trap();
    for (int i = 0; i < r.n_stops; i++)
        if (!r.stops[i] || !r.stops[i][0]) __builtin_trap();
    req_free(&r);
    return 0;
}
