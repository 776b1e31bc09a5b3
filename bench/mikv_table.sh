#!/usr/bin/env bash
# KV-cache table (docs/kv-quant.md): KV-cache configurations on each MODEL, same text and chunks for
# every row (eval-en.txt, 8 chunks of the model's context: 512 tokens for english-12m), FP32 weights,
# KL against the same model with an exact fp32 cache. Each row twice: as is (a uniform cache then
# quantizes every token, the [BOS] sink included) and with IntactKV (the model's own FP [BOS] prefix,
# which every cache keeps exact). Columns: KL, PPL, cache bytes as a share of an FP16 cache of the
# same tokens (scales and zero points included). KV groups of min(head_dim, 32) values.
# Rows (ROWS=core, the default): FP16; uniform INT8/4/3/2 with per-token keys and with per-channel
# (KIVI) keys; MiKV (hi 10/20% FP16 with INT4/INT2 low, hi 10% INT8 + INT2 low) and H2O (keep
# 10/20/50%), both keeping the 8 newest tokens and [BOS] high. ROWS=full adds key balancing, INT3
# MiKV, hi 50% and INT2-keys/FP16-values rows (the english-1m table of earlier releases);
# ROWS=uniform or ROWS=mikv run only the uniform rows or only the MiKV/H2O rows of core.
# english-1m-keyout is english-1m with function-preserving key outlier channels (bench/key_outliers.py),
# the situation key balancing is for; it is evaluated against english-1m itself.
# Usage: bench/mikv_table.sh [MODEL_NAMES...]   (default: english-12m)
set -euo pipefail
. "$(dirname "$0")/common.sh"
ROWS=${ROWS:-core}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
MODELS=("$@")
[ ${#MODELS[@]} -eq 0 ] && MODELS=(english-12m)
echo "| model | KV cache | KL vs FP cache | +IntactKV | PPL | +IntactKV | bytes (% of FP16) |"
echo "|---|---|---|---|---|---|---|"
for name in "${MODELS[@]}"; do
    unset CTX
    if [ "$name" = english-1m-keyout ]; then
        q_model_setup english-1m
        base=$MODEL model=$TMP/keyout.gguf
        python3 "$(dirname "$0")/key_outliers.py" "$base" "$model" >/dev/null
    else
        q_model_setup "$name"
        base=$MODEL model=$MODEL
    fi
    "$BIN" ikv build -m "$model" -z "$TOK" --bos -o "$TMP/$name.ikv" >/dev/null   # the FP prefix of the model itself
    row() { # label flags...
        local label=$1; shift
        # H2O keeps what it keeps at full precision: a KV group would have no effect (and is refused)
        case $label in FP16 | H2O*) ;; *) set -- "$@" --kv-group "$KVG" ;; esac
        local a b
        a=$("$BIN" kld -m "$model" -z "$TOK" --base "$base" -f "$TEXT" -c "$CTX" --chunks "$CHUNKS" -t "$T" --json "$@" 2>/dev/null)
        b=$("$BIN" kld -m "$model" -z "$TOK" --base "$base" -f "$TEXT" -c "$CTX" --chunks "$CHUNKS" -t "$T" --json \
            --ikv "$TMP/$name.ikv" "$@" 2>/dev/null)
        awk -v n="$name" -v l="$label" -v k0="$(field "$a" kld_mean)" -v k1="$(field "$b" kld_mean)" \
            -v p0="$(field "$a" ppl)" -v p1="$(field "$b" ppl)" -v by="$(field "$a" kv_bytes_vs_f16)" 'BEGIN {
            printf "| %s | %s | %.5f | %.5f | %.3f | %.3f | %.1f%% |\n", n, l, k0, k1, p0, p1, 100 * by }'
    }
    up() { echo "$1" | tr a-z A-Z; }
    uniform=1 mikv=1   # ROWS=uniform / ROWS=mikv: only the uniform caches / only MiKV and H2O
    [ "$ROWS" = mikv ] && uniform=0
    [ "$ROWS" = uniform ] && mikv=0
    [ $uniform = 1 ] && row "FP16" --kv-k f16 --kv-v f16
    [ $uniform = 1 ] && for t in int8 int4 int3 int2; do
        row "$(up $t) per-token keys" --kv-k "$t" --kv-v "$t"
        [ "$ROWS" = full ] && row "$(up $t) per-token keys + balance" --kv-k "$t" --kv-v "$t" --kv-balance
        [ "$t" != int8 ] || [ "$ROWS" = full ] && row "$(up $t) per-channel keys" --kv-k "$t" --kv-v "$t" --kv-key-axis channel
        [ "$ROWS" = full ] && row "$(up $t) per-channel keys + balance" --kv-k "$t" --kv-v "$t" --kv-key-axis channel --kv-balance
    done
    if [ "$ROWS" = full ]; then
        row "INT2 keys (per-token), FP16 values" --kv-k int2 --kv-v f16
        row "INT2 keys (per-token) + balance, FP16 values" --kv-k int2 --kv-v f16 --kv-balance
    fi
    [ $mikv = 1 ] || continue
    row "MiKV hi 0.1 INT8, lo INT2" --mikv --mikv-hi 0.1 --mikv-hi-type int8 --mikv-lo-type int2 --mikv-recent 8
    [ "$ROWS" = full ] && row "MiKV hi 0.1 INT8, lo INT2 + balance" --mikv --mikv-hi 0.1 --mikv-hi-type int8 \
        --mikv-lo-type int2 --mikv-recent 8 --kv-balance
    for hi in 0.1 0.2 0.5; do
        row "H2O keep $hi (evict the rest)" --h2o "$hi" --h2o-recent 8
    done
    his="0.1 0.2"; los="int4 int2"
    [ "$ROWS" = full ] && his="0.1 0.2 0.5" los="int4 int3 int2"
    for hi in $his; do
        for lo in $los; do
            row "MiKV hi $hi FP16, lo $(up $lo)" --mikv --mikv-hi "$hi" --mikv-lo-type "$lo" --mikv-recent 8
        done
    done
done
