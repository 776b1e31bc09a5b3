#!/usr/bin/env bash
# IntactKV table (docs/intactkv.md, the paper's Table): RTN / GPTQ / AWQ x W3 / W4 x g128 / g32 on
# MODEL, each without IntactKV, with the FP [BOS] prefix, and with that prefix calibrated for the
# quantized model (ikv calibrate on calib-en.txt: CAL_SAMPLES windows of CAL_LEN tokens, CAL_EPOCHS
# epochs, lr CAL_LR). Same text and chunks for every cell: eval-en.txt, 8 chunks of the model's
# context (512 for english-12m). Columns: PPL and KL vs FP, then the share of the PPL gap to FP and
# of the KL that IntactKV removes (FP prefix / calibrated prefix).
# GPTQ/AWQ: SAMPLES calibration windows of calib-en.txt, of the model's context, seed 0.
# Usage: bench/ikv_table.sh [MODEL_NAME] [SAMPLES]   (default english-12m, 32)
#   env: WGROUPS="128 32", BITS="3 4", METHODS="rtn gptq awq", QDIR (reuse quantized files), CAL_*
set -euo pipefail
. "$(dirname "$0")/common.sh"
MODEL_NAME=${1:-english-12m}
SAMPLES=${2:-32}
q_model_setup "$MODEL_NAME"
BITS=${BITS:-3 4} METHODS=${METHODS:-rtn gptq awq}
CAL_SAMPLES=${CAL_SAMPLES:-8} CAL_LEN=${CAL_LEN:-128} CAL_EPOCHS=${CAL_EPOCHS:-4} CAL_LR=${CAL_LR:-1e-2}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
QDIR=${QDIR:-$TMP}
"$BIN" ikv build -m "$MODEL" -z "$TOK" --bos -o "$TMP/bos.ikv" >/dev/null
fp=$(field "$(q_kld "$MODEL")" ppl_base)
echo "$MODEL_NAME: eval-en.txt, $CHUNKS chunks x $CTX tokens; FP PPL $(printf '%.3f' "$fp"); GPTQ/AWQ on $SAMPLES windows;"
echo "calibrated prefix: $CAL_SAMPLES windows x $CAL_LEN tokens of calib-en.txt, $CAL_EPOCHS epochs, lr $CAL_LR"
echo
echo "| weights | PPL | +IntactKV | +calibrated | KL vs FP | +IntactKV | +calibrated | PPL gap removed (IntactKV / calibrated) | KL removed (IntactKV / calibrated) |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '| FP32 | %.3f | | | | | | | |\n' "$fp"
for bits in $BITS; do
    for g in $WGROUPS; do
        for method in $METHODS; do
            f=$(q_file "$method" "$bits" "$g")
            a=$(q_kld "$f")
            b=$(q_kld "$f" --ikv "$TMP/bos.ikv")
            "$BIN" ikv calibrate -m "$f" -z "$TOK" --base "$MODEL" --ikv "$TMP/bos.ikv" --calib "$CALIB" \
                --samples "$CAL_SAMPLES" --len "$CAL_LEN" --epochs "$CAL_EPOCHS" --lr "$CAL_LR" -t "$T" \
                -o "$TMP/cal.ikv" >/dev/null 2>&1
            c=$(q_kld "$f" --ikv "$TMP/cal.ikv")
            awk -v w="W$bits g$g $method" -v fp="$fp" -v p0="$(field "$a" ppl)" -v p1="$(field "$b" ppl)" \
                -v p2="$(field "$c" ppl)" -v k0="$(field "$a" kld_mean)" -v k1="$(field "$b" kld_mean)" \
                -v k2="$(field "$c" kld_mean)" 'BEGIN {
                printf "| %s | %.3f | %.3f | %.3f | %.4f | %.4f | %.4f | %.1f%% / %.1f%% | %.1f%% / %.1f%% |\n",
                       w, p0, p1, p2, k0, k1, k2, 100 * (p0 - p1) / (p0 - fp), 100 * (p0 - p2) / (p0 - fp),
                       100 * (k0 - k1) / k0, 100 * (k0 - k2) / k0 }'
        done
    done
done
