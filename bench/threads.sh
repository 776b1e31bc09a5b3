#!/usr/bin/env bash
# Decode speed with -t 1 and -t 2, on an idle machine and with one core loaded by a competing busy
# loop (issue 11 finding 5, issue 12 item 4: -t 2 must not lose to -t 1 there). Rounds alternate
# the configurations so drifting machine load hits them alike; each cell is the median over rounds.
# With OLD=path/to/other/intact the same table is printed for that binary too (before/after).
# Usage: bench/threads.sh [ROUNDS] [MODEL_NAMES...]   (default 5, english-1m english-12m)
#   env: INTACT_BIN (build/intact), INTACT_SHARED (../shared), OLD, N_GEN (128)
set -euo pipefail
SHARED=${INTACT_SHARED:-../shared}
BIN=${INTACT_BIN:-build/intact}
ROUNDS=${1:-5}; shift || true
MODELS=("$@")
[ ${#MODELS[@]} -eq 0 ] && MODELS=(english-1m english-12m)
N_GEN=${N_GEN:-128}
BINS=("$BIN"); [ -n "${OLD:-}" ] && BINS+=("$OLD")
TMP=$(mktemp -d)
BUSY=
cleanup() { [ -n "$BUSY" ] && kill "$BUSY" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

decode() { # BIN MODEL THREADS: decode tok/s
    "$1" bench -m "$SHARED/models/$2.bin" -t "$3" -p 16 -n "$N_GEN" --no-bandwidth --json |
        sed -E 's/.*"decode_tok_s":([0-9.]+).*/\1/'
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

for r in $(seq "$ROUNDS"); do
    for load in idle busy; do
        if [ "$load" = busy ]; then # one core busy for at most 10 minutes, whatever happens to us
            timeout 600 sh -c 'while :; do :; done' & BUSY=$!
            sleep 0.2
        fi
        for b in "${!BINS[@]}"; do
            for m in "${MODELS[@]}"; do
                for t in 1 2; do decode "${BINS[$b]}" "$m" "$t" >> "$TMP/$b-$m-$load-$t"; done
            done
        done
        if [ "$load" = busy ]; then kill "$BUSY"; wait "$BUSY" 2>/dev/null || true; BUSY=; fi
    done
done

echo "| binary | model | load | -t 1 tok/s | -t 2 tok/s | -t 2 / -t 1 |"
echo "|---|---|---|---|---|---|"
for b in "${!BINS[@]}"; do
    for m in "${MODELS[@]}"; do
        for load in idle busy; do
            t1=$(median < "$TMP/$b-$m-$load-1"); t2=$(median < "$TMP/$b-$m-$load-2")
            awk -v b="${BINS[$b]}" -v m="$m" -v l="$load" -v a="$t1" -v c="$t2" \
                'BEGIN { printf "| %s | %s | %s | %.0f | %.0f | %.2f |\n", b, m, l, a, c, c / a }'
        done
    done
done
echo "(median of $ROUNDS rounds; decode of $N_GEN tokens after a 16-token prompt; busy = one shell busy loop)"
