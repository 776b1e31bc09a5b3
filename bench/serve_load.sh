#!/usr/bin/env bash
# Load test of `intact serve` on loopback (a benchmark, not a test): for each cache (fp32, MiKV) and
# each client count in CLIENTS, CLIENTS closed-loop curl clients send completion requests for
# DURATION seconds; prints requests, generated tokens/s, p50/p99 request latency, errors (non-200)
# and the server's peak RSS (VmHWM: the peak so far of that server process, so it only grows down a
# column) as a table, then the same rows as JSON. The server runs with --parallel = the largest
# client count; its scheduler decodes all active sessions in one batched step.
#   DURATION=60 CLIENTS="1 2 4 8" MODEL=.../english-12m.bin TOK=.../tok512.bin bench/serve_load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/serve_common.sh
SECONDS_EACH=${DURATION:-${SECONDS_EACH:-60}}
CLIENTS=${CLIENTS:-"1 2 4 8"}
MAXTOK=${MAXTOK:-32}
max=0; for c in $CLIENTS; do [ "$c" -gt "$max" ] && max=$c; done
body='{"prompt": "The history of the", "max_tokens": '$MAXTOK', "temperature": 0}'

client() {   # $1 port, $2 end time (epoch s), $3 log: one "code seconds" line per request
    while [ "$(date +%s)" -lt "$2" ]; do
        curl -s -o /dev/null -m 120 -w '%{http_code} %{time_total}\n' -H 'Content-Type: application/json' \
            -d "$body" "http://127.0.0.1:$1/v1/completions" >>"$3" || echo "000 0" >>"$3"
    done
}

printf '%-6s %7s %9s %9s %9s %9s %6s %9s\n' cache clients requests tok/s p50_s p99_s errors peak_MiB
for cache in fp32 mikv; do
    kv=(); [ "$cache" = mikv ] && kv=(--mikv --mikv-hi 0.25 --mikv-lo-type int2)
    serve_start --parallel "$max" --queue 64 --timeout 120 "${kv[@]}"
    for c in $CLIENTS; do
        : >"$OUT/log"
        end=$(( $(date +%s) + SECONDS_EACH ))
        for _ in $(seq "$c"); do client "$port" "$end" "$OUT/log" & done
        wait $(jobs -p | grep -v "^$pid$") 2>/dev/null || true
        rss=$(awk '/VmHWM/ {print int($2/1024)}' /proc/$pid/status)
        python3 - "$OUT/log" "$cache" "$c" "$SECONDS_EACH" "$MAXTOK" "$rss" "$OUT/json" <<'PY'
import sys
log, cache, c, secs, maxtok, rss = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
rows = [l.split() for l in open(log) if l.strip()]
ok = sorted(float(t) for code, t in rows if code == "200")
err = sum(1 for code, _ in rows if code != "200")
q = lambda p: ok[min(len(ok) - 1, int(p * len(ok)))] if ok else float("nan")
print(f"{cache:<6} {c:>7} {len(rows):>9} {len(ok) * maxtok / secs:>9.1f} {q(0.5):>9.3f} {q(0.99):>9.3f} {err:>6} {rss:>9}")
import json
with open(sys.argv[7], "a") as f:
    f.write(json.dumps({"cache": cache, "clients": c, "seconds": secs, "requests": len(rows),
                        "tok_per_s": round(len(ok) * maxtok / secs, 1), "p50_s": q(0.5), "p99_s": q(0.99),
                        "errors": err, "peak_rss_mib": int(rss)}) + "\n")
PY
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
done
echo "JSON:"; cat "$OUT/json"
echo "(tok/s counts max_tokens=$MAXTOK per successful request; every request of this prompt runs to max_tokens at temperature 0)"
