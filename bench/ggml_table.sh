#!/usr/bin/env bash
# ggml-type quality table (docs/ggml.md): RTN / GPTQ / AWQ written as ggml's Q4_0, Q4_1 and Q4_K
# (`intact quantize --format`), plus intact's own int4 g32 / g128 (GPTQ) for comparison, on
# MODEL_NAME (default english-12m). Same text and chunks for every cell (common.sh: eval-en.txt, 8
# chunks of the model's context). Columns: bits per weight of the quantized matrices, file size, PPL
# and KL vs FP without IntactKV and with the FP [BOS] prefix (`ikv build --bos` from the F32 model),
# and with CAL=1 also with a prefix calibrated for each file (`ikv calibrate`, CAL_* as ikv_table.sh).
# Then the output head: the RTN Q4_0 file again with --output-type f16 / q8_0 / q6_k.
# GPTQ/AWQ: SAMPLES windows of calib-en.txt of the model's context, seed 0.
# Usage: bench/ggml_table.sh [SAMPLES] > table.md   (default 32)
#   env: QDIR (keep the files), CAL=1, CAL_SAMPLES/CAL_LEN/CAL_EPOCHS/CAL_LR, MODEL_NAME
set -euo pipefail
. "$(dirname "$0")/common.sh"
SAMPLES=${1:-32}
MODEL_NAME=${MODEL_NAME:-english-12m}
q_model_setup "$MODEL_NAME"
CAL=${CAL:-0} CAL_SAMPLES=${CAL_SAMPLES:-8} CAL_LEN=${CAL_LEN:-128} CAL_EPOCHS=${CAL_EPOCHS:-4} CAL_LR=${CAL_LR:-1e-2}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
QDIR=${QDIR:-$TMP}
mkdir -p "$QDIR"
"$BIN" ikv build -m "$MODEL" -z "$TOK" --bos -o "$TMP/bos.ikv" >/dev/null
# gfile METHOD LABEL FLAGS...: quantizes once per QDIR; prints the file name; keeps the --json summary
gfile() {
    local f=$QDIR/$MODEL_NAME-$1-$2.gguf c=()
    [ "$1" = rtn ] || c=(--calib "$CALIB" --calib-samples "$SAMPLES" --calib-len "$CTX")
    if [ ! -f "$f" ]; then
        "$BIN" quantize -m "$MODEL" -z "$TOK" -o "$f.tmp" --method "$1" "${@:3}" "${c[@]}" -t "$T" --json \
            >"$f.json" 2>/dev/null && mv "$f.tmp" "$f"
    fi
    printf '%s' "$f"
}
fp=$(field "$(q_kld "$MODEL")" ppl_base)
echo "$MODEL_NAME: eval-en.txt, $CHUNKS chunks x $CTX tokens; FP PPL $(printf '%.3f' "$fp"); GPTQ/AWQ on $SAMPLES windows of calib-en.txt."
[ "$CAL" = 1 ] && echo "Calibrated prefix: $CAL_SAMPLES windows x $CAL_LEN tokens, $CAL_EPOCHS epochs, lr $CAL_LR."
echo
hdr="| weights | bits/weight | file | PPL | +IntactKV | KL vs FP | +IntactKV |"
sep="|---|---|---|---|---|---|---|"
[ "$CAL" = 1 ] && hdr="$hdr +calibrated PPL | +calibrated KL |" && sep="$sep---|---|"
echo "$hdr"; echo "$sep"
row() { # label file
    local a b c="" j; a=$(q_kld "$2"); b=$(q_kld "$2" --ikv "$TMP/bos.ikv")
    j=$(cat "$2.json" 2>/dev/null || echo '{"bits_per_weight":0}')
    if [ "$CAL" = 1 ]; then
        "$BIN" ikv calibrate -m "$2" -z "$TOK" --base "$MODEL" --ikv "$TMP/bos.ikv" --calib "$CALIB" \
            --samples "$CAL_SAMPLES" --len "$CAL_LEN" --epochs "$CAL_EPOCHS" --lr "$CAL_LR" -t "$T" \
            -o "$TMP/cal.ikv" >/dev/null 2>&1
        c=$(q_kld "$2" --ikv "$TMP/cal.ikv")
        c=$(awk -v p="$(field "$c" ppl)" -v k="$(field "$c" kld_mean)" 'BEGIN { printf " %.3f | %.4f |", p, k }')
    fi
    awk -v l="$1" -v bpw="$(field "$j" bits_per_weight)" -v sz="$(stat -c %s "$2")" -v p0="$(field "$a" ppl)" \
        -v p1="$(field "$b" ppl)" -v k0="$(field "$a" kld_mean)" -v k1="$(field "$b" kld_mean)" -v c="$c" 'BEGIN {
        printf "| %s | %.3f | %.2f MiB | %.3f | %.3f | %.4f | %.4f |%s\n", l, bpw, sz / 1048576, p0, p1, k0, k1, c }'
}
for fmt in q4_0 q4_1 q4_k; do
    for method in rtn gptq awq; do
        row "$method $fmt" "$(gfile "$method" "$fmt" --format "$fmt")"
    done
done
for g in 128 32; do
    row "gptq int4 g$g (intact)" "$(gfile gptq "int4-g$g" --bits 4 --group "$g")"
done
echo
echo "Output head (the RTN Q4_0 file, head RTN-quantized as llama-quantize does):"
echo
echo "| head | file | PPL | KL vs FP | KL cost of the head |"
echo "|---|---|---|---|---|"
k0=$(field "$(q_kld "$(gfile rtn q4_0 --format q4_0)")" kld_mean)
for ht in f32 f16 q8_0 q6_k; do
    if [ "$ht" = f32 ]; then f=$(gfile rtn q4_0 --format q4_0)
    else f=$(gfile rtn "q4_0-head-$ht" --format q4_0 --output-type "$ht"); fi
    a=$(q_kld "$f")
    t=$("$BIN" info -m "$f" --json 2>/dev/null | sed -E 's/.*"tensor_types":\{([^}]*)\}.*/\1/; s/"//g; s/,/ /g')
    awk -v h="$ht (tensors: $t)" -v sz="$(stat -c %s "$f")" -v p="$(field "$a" ppl)" -v k="$(field "$a" kld_mean)" \
        -v k0="$k0" 'BEGIN { printf "| %s | %.2f MiB | %.3f | %.4f | %+.4f |\n", h, sz / 1048576, p, k, k - k0 }'
done
