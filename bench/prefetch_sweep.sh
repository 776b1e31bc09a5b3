#!/usr/bin/env bash
# Software prefetch distance of the decode kernels on this CPU, measured with `bench --prefetch-ab`:
# each candidate distance B against a reference A, decode steps alternating A A B B within one run,
# so that a machine whose memory bandwidth swings from minute to minute (docs/speed.md, 2026-12-08)
# compares like with like. Prints B's speed against A per file (median over A A B B blocks; above 1,
# B is faster). The per-CPU defaults live in core/cpu.h (it_cpu_stream_prefetch); INTACT_PREFETCH
# overrides them for a whole run once a better distance is known.
# Usage: bench/prefetch_sweep.sh MODEL.gguf...   env: INTACT_BIN (build/intact), PF_A (4096),
#   PF_B ("0 1024 2048 8192 16384"), N_GEN (256), THREADS (2)
set -euo pipefail
BIN=${INTACT_BIN:-build/intact}
A=${PF_A:-4096}
CANDIDATES=${PF_B:-0 1024 2048 8192 16384}
N_GEN=${N_GEN:-256}
T=${THREADS:-2}
[ $# -ge 1 ] || { echo "usage: bench/prefetch_sweep.sh MODEL.gguf..." >&2; exit 2; }
echo "| file | A (bytes) | B (bytes) | ms per step A / B | B's speed against A |"
echo "|---|---|---|---|---|"
for m in "$@"; do
    for b in $CANDIDATES; do
        echo "$(basename "$m"): $A against $b" >&2
        j=$("$BIN" bench -m "$m" -t "$T" -p 1 -n "$N_GEN" --no-bandwidth --json --prefetch-ab "$A,$b")
        ms=$(printf '%s' "$j" | sed -E 's/.*"ab_step_ms":\[([0-9.]+),([0-9.]+)\].*/\1 \/ \2/')
        sp=$(printf '%s' "$j" | sed -E 's/.*"ab_speed":([0-9.]+).*/\1/')
        echo "| $(basename "$m") | $A | $b | $ms | $sp |"
    done
done
