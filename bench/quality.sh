#!/usr/bin/env bash
# Weight-quantization quality table (docs/weight-quant.md): FP vs RTN / GPTQ / AWQ at BITS on each
# MODEL, with every group size its widths allow (g128 and g32 for english-12m; g32 for the small
# models), same evaluation text and chunks for every row: eval-en.txt, 8 chunks of the model's
# context (512 tokens for english-12m); PPL, KL vs FP and top-1 agreement with FP.
# GPTQ/AWQ: SAMPLES windows of calib-en.txt of the model's context, seed 0.
# Usage: bench/quality.sh [SAMPLES] [MODEL_NAMES...]   (default 32, english-12m)
#   env: BITS ("4 3 2"), METHODS ("rtn gptq awq"), QDIR (reuse quantized files between scripts)
set -euo pipefail
. "$(dirname "$0")/common.sh"
SAMPLES=${1:-32}; shift || true
MODELS=("$@")
[ ${#MODELS[@]} -eq 0 ] && MODELS=(english-12m)
BITS=${BITS:-4 3 2} METHODS=${METHODS:-rtn gptq awq}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
QDIR=${QDIR:-$TMP}
row() { # label file
    local j; j=$(q_kld "$2")
    awk -v m="$MODEL_NAME" -v l="$1" -v p="$(field "$j" ppl)" -v k="$(field "$j" kld_mean)" \
        -v t="$(field "$j" top1)" -v b="$(stat -c %s "$2")" 'BEGIN {
        printf "| %s | %s | %.3f | %.5f | %.1f%% | %.2f MiB |\n", m, l, p, k, 100 * t, b / 1048576 }'
}
echo "| model | weights | PPL | KL vs FP | top-1 agree | file |"
echo "|---|---|---|---|---|---|"
for MODEL_NAME in "${MODELS[@]}"; do
    unset CTX WGROUPS
    q_model_setup "$MODEL_NAME"
    row "FP32" "$MODEL"
    for bits in $BITS; do
        for g in $WGROUPS; do
            for method in $METHODS; do
                row "W$bits g$g $method" "$(q_file "$method" "$bits" "$g")"
            done
        done
    done
done
