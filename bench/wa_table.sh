#!/usr/bin/env bash
# Weight-activation quantization table (README, issue 7): on every test model, FP, W4A16, W8A8, W4A8,
# W4A4 and W4A4KV4, each without/with QuaRot rotation (--rotate) and without/with IntactKV (the FP
# [BOS] prefix, exact in the cache), same text and chunks for every cell (eval-en.txt, 8 chunks of
# 256 tokens). Weights: GPTQ g32 (CALIB windows of calib-en.txt), quantized once per model and
# rotation into a temporary GGUF; activations: per-token symmetric dynamic INTn on the input of every
# layer linear (the output head stays FP, as in QuaRot); KV4: --kv-k int4 --kv-v int4 per token.
# Each cell: PPL / KL vs the FP model. english-1m is judged by PPL, stories260K (English is far from
# its training data) by KL.
# Usage: bench/wa_table.sh [CALIB_SAMPLES]   (default 128)
set -euo pipefail
SHARED=${INTACT_SHARED:-../shared}
BIN=${INTACT_BIN:-build/intact}
T=${THREADS:-2}
SAMPLES=${1:-128}
TEXT=$SHARED/data/eval-en.txt
CALIB=$SHARED/data/calib-en.txt
TOK=$SHARED/models/tok512.bin
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
field() { printf '%s' "$1" | sed -E "s/.*\"$2\":([0-9.eE+-]+).*/\1/"; }
echo "| model | config | PPL / KL | +rotation | +IntactKV | +rotation +IntactKV |"
echo "|---|---|---|---|---|---|"
for name in english-1m stories260K; do
    fp=$SHARED/models/$name.bin
    G=32; [ "$name" = stories260K ] && G=8   # KV groups run along head_dim (32 / 8)
    "$BIN" ikv build -m "$fp" -z "$TOK" --bos -o "$TMP/bos.ikv" >/dev/null
    for bits in 4 8; do
        for rot in 0 1; do
            r=(); [ $rot = 1 ] && r=(--rotate)
            "$BIN" quantize -m "$fp" -z "$TOK" -o "$TMP/w$bits-r$rot.gguf" --method gptq --bits "$bits" --group 32 \
                --calib "$CALIB" --calib-samples "$SAMPLES" --calib-len 256 -t "$T" "${r[@]}" >/dev/null 2>&1
        done
    done
    cell() { # model flags...
        local j
        j=$("$BIN" kld -m "$1" -z "$TOK" --base "$fp" -f "$TEXT" -c 256 --chunks 8 -t "$T" --json "${@:2}" 2>/dev/null)
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
    row "FP" fp
    row "W4A16" 4
    row "W8A8" 8 --abits 8
    row "W4A8" 4 --abits 8
    row "W4A4" 4 --abits 4
    row "W4A4KV4" 4 --abits 4 --kv-k int4 --kv-v int4 --kv-group "$G"
done
