#!/usr/bin/env bash
# What sharing the system-prompt prefix saves (issue 13): 8 sessions at once over one IntactKV
# prefix, once with the prefix shared in place (the default) and once with the old per-session copy
# (INTACT_SERVE_COPY_PREFIX=1). While all 8 are decoding, reads /metrics (intact_kv_bytes_in_use,
# intact_kv_prefix_shared_bytes) and the server's RSS (VmRSS).
#   SHARED=/work/shared bench/serve_share.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/serve_common.sh
N=${N:-8}
SYSTEM=${SYSTEM:-"The history of the city begins with a small village by the river, where farmers and traders met every week to sell grain, cloth and tools. Over the years the village grew into a town with a market square, a stone bridge and a church, and later into a city with schools, factories and a railway station that connected it to the rest of the country."}
printf '%-6s %8s %14s %16s %16s %10s\n' mode prefix kv_in_use_B prefix_shared_B total_kv_B rss_KiB
for mode in copy share; do
    if [ "$mode" = copy ]; then export INTACT_SERVE_COPY_PREFIX=1; else unset INTACT_SERVE_COPY_PREFIX; fi
    serve_start --parallel "$N" --queue 64 --system "$SYSTEM"
    body='{"prompt": "'"$SYSTEM"' Today", "max_tokens": 150, "temperature": 0}'
    for i in $(seq "$N"); do
        curl -s -o /dev/null -m 300 -H 'Content-Type: application/json' -d "$body" \
            "http://127.0.0.1:$port/v1/completions" & 
    done
    best=""
    for _ in $(seq 200); do   # sample while every slot is busy
        m=$(curl -s "http://127.0.0.1:$port/metrics")
        if grep -q "^intact_slots_busy $N\$" <<<"$m"; then best=$m; rss=$(awk '/VmRSS/{print $2}' /proc/$pid/status); fi
        [ -n "$best" ] && grep -q "^intact_slots_busy $N\$" <<<"$m" || { [ -n "$best" ] && break; }
        sleep 0.2
    done
    kvb=$(awk '/^intact_kv_bytes_in_use /{print $2}' <<<"$best")
    sh=$(awk '/^intact_kv_prefix_shared_bytes /{print $2}' <<<"$best")
    pre=$(awk '/^intact_prefix_kv_bytes /{print $2}' <<<"$best")
    printf '%-6s %8s %14s %16s %16s %10s\n' "$mode" "$pre" "$kvb" "$sh" "$((kvb + sh))" "$rss"
    wait $(jobs -p | grep -v "^$pid\$") 2>/dev/null || true
    kill "$pid"; wait "$pid" 2>/dev/null || true
done
