#!/usr/bin/env bash
# Weight-activation quantization table (docs/weight-act.md): on each MODEL, the rows ROWS (default
# "A16 A4 A4KV4"; also FP-A4KV4, W8A8, A8), each without/with QuaRot rotation (--rotate) and without/with
# IntactKV (the FP [BOS] prefix, exact in the cache), same text and chunks for every cell (eval-en.txt,
# 8 chunks of the model's context: 512 for english-12m). Weights: WMETHOD (default gptq, SAMPLES
# windows of calib-en.txt) with group WG (default: 128 where the widths allow it, else 32), quantized
# once per model and rotation; activations: per-token symmetric dynamic INTn on the input of every
# layer linear (the output head stays FP, as in QuaRot); KV4: --kv-k int4 --kv-v int4 per token,
# groups of min(head_dim, 32). Each cell: PPL / KL vs the FP model.
# Usage: bench/wa_table.sh [MODEL_NAMES...]   (default english-12m)   env: SAMPLES (32), WMETHOD, WG, ROWS
set -euo pipefail
. "$(dirname "$0")/common.sh"
SAMPLES=${SAMPLES:-32} WMETHOD=${WMETHOD:-gptq} ROWS=${ROWS:-A16 A4 A4KV4}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
MODELS=("$@")
[ ${#MODELS[@]} -eq 0 ] && MODELS=(english-12m)
echo "| model | config | PPL / KL | +rotation | +IntactKV | +rotation +IntactKV |"
echo "|---|---|---|---|---|---|"
for name in "${MODELS[@]}"; do
    unset CTX WGROUPS
    MODEL_NAME=$name
    q_model_setup "$name"
    fp=$MODEL
    wg=${WG:-${WGROUPS%% *}}
    "$BIN" ikv build -m "$fp" -z "$TOK" --bos -o "$TMP/bos.ikv" >/dev/null
    bitlist="4"; case " $ROWS " in *" W8A8 "*) bitlist="4 8" ;; esac
    for bits in $bitlist; do
        for rot in 0 1; do
            r=(); [ $rot = 1 ] && r=(--rotate)
            c=(); [ "$WMETHOD" != rtn ] && c=(--calib "$CALIB" --calib-samples "$SAMPLES" --calib-len "$CTX")
            "$BIN" quantize -m "$fp" -z "$TOK" -o "$TMP/w$bits-r$rot.gguf" --method "$WMETHOD" --bits "$bits" \
                --group "$wg" "${c[@]}" -t "$T" "${r[@]}" >/dev/null 2>&1
        done
    done
    cell() { # model flags...
        local j
        j=$("$BIN" kld -m "$1" -z "$TOK" --base "$fp" -f "$TEXT" -c "$CTX" --chunks "$CHUNKS" -t "$T" --json "${@:2}" 2>/dev/null)
        awk -v p="$(field "$j" ppl)" -v k="$(field "$j" kld_mean)" 'BEGIN { printf "%.3f / %.4f", p, k }'
    }
    row() { # label wbits act-flags...
        local label=$1 wb=$2; shift 2
        local a b c d
        if [ "$wb" = fp ]; then
            a=$(cell "$fp" "$@"); b=$(cell "$fp" --rotate "$@")
            c=$(cell "$fp" --ikv "$TMP/bos.ikv" "$@"); d=$(cell "$fp" --rotate --ikv "$TMP/bos.ikv" "$@")
        else
            a=$(cell "$TMP/w$wb-r0.gguf" "$@"); b=$(cell "$TMP/w$wb-r1.gguf" "$@")
            c=$(cell "$TMP/w$wb-r0.gguf" --ikv "$TMP/bos.ikv" "$@"); d=$(cell "$TMP/w$wb-r1.gguf" --ikv "$TMP/bos.ikv" "$@")
        fi
        echo "| $name | $label | $a | $b | $c | $d |"
    }
    w="W4 g$wg $WMETHOD"
    for r in $ROWS; do
        case $r in
            FP-A4KV4) row "FP weights, A4, KV4" fp --abits 4 --kv-k int4 --kv-v int4 --kv-group "$KVG" ;;
            A16) row "$w, A16" 4 ;;
            W8A8) row "W8 g$wg $WMETHOD, A8" 8 --abits 8 ;;
            A8) row "$w, A8" 4 --abits 8 ;;
            A4) row "$w, A4" 4 --abits 4 ;;
            A4KV4) row "$w, A4, KV4" 4 --abits 4 --kv-k int4 --kv-v int4 --kv-group "$KVG" ;;
            *) echo "unknown row $r" >&2; exit 2 ;;
        esac
    done
done
