#!/bin/sh
# MiKV speed (issue 5): decode tok/s at a 4K context on the synthetic TinyLlama-1.1B file, FP16 cache vs
# uniform INT4 vs MiKV (20% FP16 + INT2), run back to back (this machine is shared: compare within a
# run). Prefill of 4096 random tokens, then N_GEN decoded tokens at positions 4096... The training
# context of the file is 2048; -c 4096+N_GEN goes past it, as llama.cpp's -c may (speed only).
# Usage: [ROUNDS=2] [N_GEN=32] bench/kv_speed.sh [WEIGHTS.gguf ...]  (default: the F16 file). Rounds
# alternate the three caches; decode at 4K is noisy here, so compare the medians of a few rounds.
set -e
SHARED=${INTACT_SHARED:-../shared}
BIN=${INTACT_BIN:-build/intact}
F16=/tmp/intact-tinyllama-1.1b-f16.gguf
if [ ! -f "$F16" ]; then
    python3 "$SHARED/tools/synth-gguf.py" "$F16.tmp" --preset tinyllama-1.1b >&2 && mv "$F16.tmp" "$F16"
fi
[ $# -eq 0 ] && set -- "$F16"
echo "| weights | KV cache | decode tok/s at 4K | KV bytes/token/layer | KV MiB | % of FP16 | prefill tok/s |"
echo "|---|---|---|---|---|---|---|"
ROUNDS=${ROUNDS:-1}
N_GEN=${N_GEN:-32}
r=1
while [ $r -le "$ROUNDS" ]; do
for m in "$@"; do
    for kv in "f16" "int4" "mikv"; do
        case $kv in
            f16) f="--kv-k f16 --kv-v f16" ;;
            int4) f="--kv-k int4 --kv-v int4" ;;
            mikv) f="--mikv --mikv-hi 0.2 --mikv-lo-type int2" ;;
        esac
        j=$("$BIN" bench -m "$m" -t 2 -c $((4096 + N_GEN)) -p 4096 -n "$N_GEN" --no-bandwidth --json $f 2>/dev/null)
        printf '%s' "$j" | awk -v w="$(basename "$m")" -v k="$kv" '{
            match($0, /"decode_tok_s":[0-9.]+/); d = substr($0, RSTART + 15, RLENGTH - 15)
            match($0, /"prefill_tok_s":[0-9.]+/); p = substr($0, RSTART + 16, RLENGTH - 16)
            match($0, /"kv_bytes":[0-9]+/); b = substr($0, RSTART + 11, RLENGTH - 11)
            match($0, /"kv_bytes_vs_f16":[0-9.]+/); r = substr($0, RSTART + 18, RLENGTH - 18)
            match($0, /"kv_bytes_per_token_layer":[0-9.]+/); t = substr($0, RSTART + 27, RLENGTH - 27)
            printf "| %s | %s | %.2f | %.1f | %.1f | %.1f%% | %.1f |\n", w, k, d, t, b / 1048576, 100 * r, p }'
    done
done
r=$((r + 1))
done
