#!/usr/bin/env bash
# IntactKV table (README): for every test model, RTN / GPTQ / AWQ at W4 and W3 (g32), without and
# with the full-precision [BOS] prefix (and with a calibrated prefix when CALIBRATE=1), same text
# and chunks for every row: eval-en.txt, 8 chunks of 256 tokens. Prints PPL, KL vs FP, and the
# share of the quantization gap (PPL_q - PPL_fp) that IntactKV removes.
# Usage: bench/ikv_table.sh [SAMPLES]   (calibration windows for GPTQ/AWQ, default 128)
set -euo pipefail
SHARED=${INTACT_SHARED:-../shared}
BIN=${INTACT_BIN:-build/intact}
SAMPLES=${1:-128}
T=${THREADS:-2}
TEXT=$SHARED/data/eval-en.txt
CALIB=$SHARED/data/calib-en.txt
TOK=$SHARED/models/tok512.bin
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
field() { printf '%s' "$1" | sed -E "s/.*\"$2\":([0-9.eE+-]+).*/\1/"; }
kld() { "$BIN" kld -m "$1" -z "$TOK" --base "$1" -f "$TEXT" -c 256 --chunks 8 -t "$T" --json \
        --calib "$CALIB" --calib-samples "$SAMPLES" "${@:2}" 2>/dev/null; }
echo "| model | weights | PPL | PPL +IntactKV | KL vs FP | KL +IntactKV | gap removed (PPL) |"
echo "|---|---|---|---|---|---|---|"
for name in english-1m stories260K; do
    model=$SHARED/models/$name.bin
    "$BIN" ikv build -m "$model" -z "$TOK" --bos -o "$TMP/$name.ikv" >/dev/null
    fp=$(field "$(kld "$model")" ppl_base)
    printf '| %s | FP32 | %.3f | | | | |\n' "$name" "$fp"
    for bits in 4 3; do
        for method in rtn gptq awq; do
            q=(--quant "$method" --bits "$bits" --group 32)
            a=$(kld "$model" "${q[@]}")
            b=$(kld "$model" "${q[@]}" --ikv "$TMP/$name.ikv")
            awk -v n="$name" -v w="W$bits g32 $method" -v fp="$fp" -v p0="$(field "$a" ppl)" -v p1="$(field "$b" ppl)" \
                -v k0="$(field "$a" kld_mean)" -v k1="$(field "$b" kld_mean)" 'BEGIN {
                printf "| %s | %s | %.3f | %.3f | %.5f | %.5f | %.1f%% |\n", n, w, p0, p1, k0, k1, 100 * (p0 - p1) / (p0 - fp) }'
        done
    done
done
