#!/usr/bin/env bash
# IntactKV calibration sweep (docs/intactkv.md): trains the FP [BOS] prefix of MODEL for one quantized
# variant (default W3 g128 RTN) at several (lr, epochs, windows, window length) settings and prints,
# for each, the calibration loss and KL / PPL vs FP on held-out text (eval-en.txt, 8 chunks of the
# model's context), next to the uncalibrated FP prefix and no prefix. Calibration text: calib-en.txt.
# Usage: bench/ikv_sweep.sh [MODEL_NAME] [METHOD] [BITS] [GROUP]   (default english-12m rtn 3 128)
#   SWEEP="lr:epochs:windows:len ..." overrides the settings; SAMPLES: GPTQ/AWQ windows (32); QDIR.
set -euo pipefail
. "$(dirname "$0")/common.sh"
MODEL_NAME=${1:-english-12m} METHOD=${2:-rtn} BITS=${3:-3} G=${4:-128}
SAMPLES=${SAMPLES:-32}
q_model_setup "$MODEL_NAME"
SWEEP=${SWEEP:-"2e-4:5:16:128 1e-3:5:16:128 3e-3:5:16:128 1e-2:5:16:128 3e-3:10:16:128 3e-3:5:32:128 3e-3:5:16:256"}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
QDIR=${QDIR:-$TMP}
f=$(q_file "$METHOD" "$BITS" "$G")
"$BIN" ikv build -m "$MODEL" -z "$TOK" --bos -o "$TMP/bos.ikv" >/dev/null
# BASELINE=0 skips the two reference rows (for splitting a sweep over processes; then P0/K0/FP_PPL
# give the no-prefix PPL and KL and the FP PPL the gap shares are computed from)
if [ "${BASELINE:-1}" = 1 ]; then
    a=$(q_kld "$f"); b=$(q_kld "$f" --ikv "$TMP/bos.ikv")
    fp=$(field "$a" ppl_base) p0=$(field "$a" ppl) k0=$(field "$a" kld_mean)
else
    fp=$FP_PPL p0=$P0 k0=$K0
fi
echo "$MODEL_NAME W$BITS g$G $METHOD: FP PPL $(printf '%.3f' "$fp"); prefix calibrated on calib-en.txt, evaluated on eval-en.txt ($CHUNKS x $CTX tokens)"
echo
echo "| prefix | lr | epochs | windows x tokens | loss before → after | PPL | KL vs FP | PPL gap removed | KL removed | seconds |"
echo "|---|---|---|---|---|---|---|---|---|---|"
line() { awk -v l="$1" -v lr="$2" -v e="$3" -v w="$4" -v lo="$5" -v p="$6" -v k="$7" -v s="$8" \
    -v fp="$fp" -v p0="$p0" -v k0="$k0" 'BEGIN {
    printf "| %s | %s | %s | %s | %s | %.3f | %.4f | %.1f%% | %.1f%% | %s |\n", l, lr, e, w, lo, p, k,
           100 * (p0 - p) / (p0 - fp), 100 * (k0 - k) / k0, s }'; }
if [ "${BASELINE:-1}" = 1 ]; then
    line "none" "" "" "" "" "$p0" "$k0" ""
    line "FP [BOS]" "" "" "" "" "$(field "$b" ppl)" "$(field "$b" kld_mean)" ""
fi
for s in $SWEEP; do
    IFS=: read -r lr ep ns ln <<<"$s"
    r=$("$BIN" ikv calibrate -m "$f" -z "$TOK" --calib "$CALIB" --base "$MODEL" --ikv "$TMP/bos.ikv" \
        --samples "$ns" --len "$ln" --epochs "$ep" --lr "$lr" -t "$T" --json -o "$TMP/cal.ikv" 2>/dev/null)
    c=$(q_kld "$f" --ikv "$TMP/cal.ikv")
    lo=$(awk -v a="$(field "$r" loss_before)" -v b="$(field "$r" loss_after)" 'BEGIN { printf "%.4g → %.4g", a, b }')
    line "calibrated" "$lr" "$ep" "$ns x $ln" "$lo" "$(field "$c" ppl)" "$(field "$c" kld_mean)" \
         "$(printf '%.0f' "$(field "$r" seconds)")"
done
