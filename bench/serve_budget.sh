#!/usr/bin/env bash
# What --kv-budget bounds (issue 13): N requests at once, each filling most of its context, on a
# server with N slots, without a budget and with budgets of BUDGETS (MiB). Reports the wall time,
# the tokens generated, the peak RSS while they ran (VmHWM) and the RSS once they are done (VmRSS):
# under a budget, admitted sessions reserve their worst case and wait for room, and a finished
# session's cache is given back to the system.
#   SHARED=/work/shared bench/serve_budget.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/serve_common.sh
N=${N:-4}
MAXTOK=${MAXTOK:-500}
BUDGETS=${BUDGETS:-"8 64"}
KV=${KV:-}
printf '%-10s %8s %8s %14s %14s\n' budget wall_s tokens peak_rss_KiB idle_rss_KiB
for b in none $BUDGETS; do
    flags=(); [ "$b" != none ] && flags=(--kv-budget "$b")
    # shellcheck disable=SC2086
    serve_start --parallel "$N" --queue 64 "${flags[@]}" $KV
    t0=$(date +%s.%N)
    cpids=()
    for i in $(seq "$N"); do
        curl -s -o /dev/null -m 600 -d '{"prompt": "The", "max_tokens": '"$MAXTOK"', "temperature": 0}' \
            "http://127.0.0.1:$port/v1/completions" &
        cpids+=($!)
    done
    wait "${cpids[@]}"
    t1=$(date +%s.%N)
    sleep 0.3
    tok=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^intact_tokens_generated_total /{print $2}')
    hwm=$(awk '/VmHWM/{print $2}' "/proc/$pid/status")
    rss=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
    printf '%-10s %8.2f %8s %14s %14s\n' "$b" "$(echo "$t1 - $t0" | bc)" "$tok" "$hwm" "$rss"
    kill "$pid"; wait "$pid" 2>/dev/null || true
done
