#!/usr/bin/env bash
# Weight-quantization quality table (README): FP vs RTN / GPTQ / AWQ at 4, 3 and 2 bits on every
# test model, same evaluation text and chunks for every row.
#   english-1m  : perplexity on eval-en.txt (8 chunks of 256 tokens) and KL vs FP
#   stories260K : KL vs FP on the same text (English is far from its training data, so its PPL
#                 says little), plus PPL for completeness
# Group 32 everywhere: these models' widths (64, 128, 172, 352) are too small for g128.
# Usage: bench/quality.sh [SAMPLES]   (calibration sequences, default 128)
set -euo pipefail
SHARED=${INTACT_SHARED:-../shared}
BIN=${INTACT_BIN:-build/intact}
SAMPLES=${1:-128}
TEXT=$SHARED/data/eval-en.txt
CALIB=$SHARED/data/calib-en.txt
T=${THREADS:-2}
row() { # model tok ctx label quantflags...
    local model=$1 tok=$2 ctx=$3 label=$4; shift 4
    local j
    j=$("$BIN" kld -m "$model" -z "$tok" --base "$model" -f "$TEXT" -c "$ctx" --chunks 8 -t "$T" --json \
        --calib "$CALIB" --calib-samples "$SAMPLES" "$@" 2>/dev/null)
    local ppl kld top1
    ppl=$(printf '%s' "$j" | sed -E 's/.*"ppl":([0-9.]+).*/\1/')
    kld=$(printf '%s' "$j" | sed -E 's/.*"kld_mean":([0-9.]+).*/\1/')
    top1=$(printf '%s' "$j" | sed -E 's/.*"top1":([0-9.]+).*/\1/')
    awk -v m="$(basename "$model")" -v l="$label" -v p="$ppl" -v k="$kld" -v t="$top1" \
        'BEGIN { printf "| %s | %s | %.3f | %.5f | %.1f%% |\n", m, l, p, k, 100 * t }'
}
echo "| model | weights | PPL | KL vs FP | top-1 agree |"
echo "|---|---|---|---|---|"
for spec in "$SHARED/models/english-1m.bin 256" "$SHARED/models/stories260K.bin 256"; do
    set -- $spec
    model=$1 ctx=$2 tok=$SHARED/models/tok512.bin
    row "$model" "$tok" "$ctx" "FP32"
    for bits in 4 3 2; do
        for method in rtn gptq awq; do
            row "$model" "$tok" "$ctx" "W${bits} g32 $method" --quant "$method" --bits "$bits" --group 32
        done
    done
done
