// The HTTP server of `intact serve` (GNU libmicrohttpd): OpenAI endpoints over a pool of inference
// slots. A client of the library API only.
#ifndef IT_SERVE_SERVER_H
#define IT_SERVE_SERVER_H

#include <stdint.h>
#include "intact.h"

typedef struct serve_config {
    const intact_model *model;
    const intact_prefix *prefix;     // shared system prompt (NULL: none)
    const intact_kv_params *kv;      // per-session cache (NULL: fp32)
    const char *host;                // IPv4 address to bind (default 127.0.0.1)
    int port;                        // 0: any free port (printed)
    int parallel;                    // slots decoding at once
    int queue;                       // requests waiting for a slot before 503
    int n_ctx;
    int n_threads;                   // per slot
    int timeout_s;                   // idle connection timeout
    const char *api_key;             // NULL: no authentication
    const char *model_name;          // reported by /v1/models
    int template_id;                 // req_template_id
    size_t max_body;                 // bytes; larger bodies get 413
    uint64_t kv_budget;              // bytes of KV cache all sessions may reserve together (0: no limit)
} serve_config;

// Runs until SIGINT/SIGTERM. Prints "intact serve: listening on http://HOST:PORT" to stderr when ready.
// 0, or 1 after printing why it could not start.
int serve_run(const serve_config *cfg);

#endif
