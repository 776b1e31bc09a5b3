#!/usr/bin/env bash
# IntactKV table (README): for every test model, RTN / GPTQ / AWQ at W4 and W3 (g32), without IntactKV,
# with the full-precision [BOS] prefix, and with that prefix calibrated for the quantized model
# (ikv calibrate: CAL_SAMPLES windows of CAL_LEN tokens of calib-en.txt, CAL_EPOCHS epochs, lr CAL_LR),
# same text and chunks for every row: eval-en.txt, 8 chunks of 256 tokens. Prints PPL, KL vs FP, and
# the share of the quantization gap that IntactKV removes (in KL, and in PPL).
# Usage: bench/ikv_table.sh [SAMPLES]   (calibration windows for GPTQ/AWQ, default 128)
set -euo pipefail
SHARED=${INTACT_SHARED:-../shared}
BIN=${INTACT_BIN:-build/intact}
SAMPLES=${1:-128}
T=${THREADS:-2}
TEXT=$SHARED/data/eval-en.txt
CALIB=$SHARED/data/calib-en.txt
TOK=$SHARED/models/tok512.bin
CAL_SAMPLES=${CAL_SAMPLES:-32} CAL_LEN=${CAL_LEN:-128} CAL_EPOCHS=${CAL_EPOCHS:-10} CAL_LR=${CAL_LR:-1e-3}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
field() { printf '%s' "$1" | sed -E "s/.*\"$2\":([0-9.eE+-]+).*/\1/"; }
kld() { "$BIN" kld -m "$1" -z "$TOK" --base "$1" -f "$TEXT" -c 256 --chunks 8 -t "$T" --json \
        --calib "$CALIB" --calib-samples "$SAMPLES" "${@:2}" 2>/dev/null; }
echo "| model | weights | PPL | +IntactKV | +calibrated | KL vs FP | +IntactKV | +calibrated | KL gap removed (IntactKV / calibrated) |"
echo "|---|---|---|---|---|---|---|---|---|"
for name in english-1m stories260K; do
    model=$SHARED/models/$name.bin
    "$BIN" ikv build -m "$model" -z "$TOK" --bos -o "$TMP/$name.ikv" >/dev/null
    fp=$(field "$(kld "$model")" ppl_base)
    printf '| %s | FP32 | %.3f | | | | | | |\n' "$name" "$fp"
    for bits in 4 3; do
        for method in rtn gptq awq; do
            q=(--quant "$method" --bits "$bits" --group 32)
            a=$(kld "$model" "${q[@]}")
            b=$(kld "$model" "${q[@]}" --ikv "$TMP/$name.ikv")
            "$BIN" ikv calibrate -m "$model" -z "$TOK" "${q[@]}" --calib "$CALIB" --calib-samples "$SAMPLES" \
                --base "$model" --ikv "$TMP/$name.ikv" --samples "$CAL_SAMPLES" --len "$CAL_LEN" \
                --epochs "$CAL_EPOCHS" --lr "$CAL_LR" -o "$TMP/cal.ikv" >/dev/null 2>&1
            c=$(kld "$model" "${q[@]}" --ikv "$TMP/cal.ikv")
            awk -v n="$name" -v w="W$bits g32 $method" -v p0="$(field "$a" ppl)" -v p1="$(field "$b" ppl)" \
                -v p2="$(field "$c" ppl)" -v k0="$(field "$a" kld_mean)" -v k1="$(field "$b" kld_mean)" \
                -v k2="$(field "$c" kld_mean)" 'BEGIN {
                printf "| %s | %s | %.3f | %.3f | %.3f | %.5f | %.5f | %.5f | %.1f%% / %.1f%% |\n", n, w, p0, p1, p2,
                       k0, k1, k2, 100 * (k0 - k1) / k0, 100 * (k0 - k2) / k0 }'
        done
    done
done
