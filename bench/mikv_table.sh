#!/usr/bin/env bash
# MiKV table (README): KV-cache configurations on every test model, same text and chunks for every
# row (eval-en.txt, 8 chunks of 256 tokens), FP32 weights, KL against the same model with an exact
# fp32 cache; each row without and with IntactKV (the FP [BOS] prefix, kept exact by every cache).
# Columns: KL vs FP cache, PPL, cache bytes as a share of an FP16 cache of the same tokens (scales
# and zero points included). Groups of 32 (english-1m) or 8 (stories260K: head_dim 8). Rows:
#   FP16; uniform INT8/4/3/2 with per-token keys, per-token keys + balance, per-channel (KIVI) keys,
#   per-channel + balance (values per token, group 32);
#   MiKV: hi 10/20/50% FP16 with INT4/3/2 low, plus hi 10% INT8 + INT2 low (the <= 25% budget row);
#   H2O (evict instead of demote) at the same hi budgets.
# MiKV/H2O keep the 8 newest tokens and [BOS] (or the prefix) high: --mikv-recent 8.
# english-1m-keyout is english-1m with function-preserving key outlier channels (bench/key_outliers.py),
# the situation key balancing is for; it is evaluated against english-1m itself.
# Usage: bench/mikv_table.sh [MODEL_NAMES...]   (default: english-1m stories260K english-1m-keyout)
set -euo pipefail
SHARED=${INTACT_SHARED:-../shared}
BIN=${INTACT_BIN:-build/intact}
T=${THREADS:-2}
TEXT=$SHARED/data/eval-en.txt
TOK=$SHARED/models/tok512.bin
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
MODELS=("$@")
[ ${#MODELS[@]} -eq 0 ] && MODELS=(english-1m stories260K english-1m-keyout)
field() { printf '%s' "$1" | sed -E "s/.*\"$2\":([0-9.eE+-]+).*/\1/"; }
echo "| model | KV cache | KL vs FP cache | +IntactKV | PPL | +IntactKV | bytes (% of FP16) |"
echo "|---|---|---|---|---|---|---|"
for name in "${MODELS[@]}"; do
    if [ "$name" = english-1m-keyout ]; then
        model=$TMP/keyout.gguf base=$SHARED/models/english-1m.bin
        python3 "$(dirname "$0")/key_outliers.py" "$base" "$model" >/dev/null
    else
        model=$SHARED/models/$name.bin base=$model
    fi
    "$BIN" ikv build -m "$model" -z "$TOK" --bos -o "$TMP/$name.ikv" >/dev/null   # the FP prefix of the model itself
    # KV groups run along head_dim: 32 for english-1m (head_dim 32), 8 for stories260K (head_dim 8).
    G=32; [ "$name" = stories260K ] && G=8
    row() { # label flags...
        local label=$1; shift
        [ "$label" != FP16 ] && set -- "$@" --kv-group "$G"
        local a b
        a=$("$BIN" kld -m "$model" -z "$TOK" --base "$base" -f "$TEXT" -c 256 --chunks 8 -t "$T" --json "$@" 2>/dev/null)
        b=$("$BIN" kld -m "$model" -z "$TOK" --base "$base" -f "$TEXT" -c 256 --chunks 8 -t "$T" --json \
            --ikv "$TMP/$name.ikv" "$@" 2>/dev/null)
        awk -v n="$name" -v l="$label" -v k0="$(field "$a" kld_mean)" -v k1="$(field "$b" kld_mean)" \
            -v p0="$(field "$a" ppl)" -v p1="$(field "$b" ppl)" -v by="$(field "$a" kv_bytes_vs_f16)" 'BEGIN {
            printf "| %s | %s | %.5f | %.5f | %.3f | %.3f | %.1f%% |\n", n, l, k0, k1, p0, p1, 100 * by }'
    }
    row "FP16" --kv-k f16 --kv-v f16
    for t in int8 int4 int3 int2; do
        T_=$(echo "$t" | tr a-z A-Z)
        row "$T_ per-token keys" --kv-k "$t" --kv-v "$t"
        row "$T_ per-token keys + balance" --kv-k "$t" --kv-v "$t" --kv-balance
        row "$T_ per-channel keys" --kv-k "$t" --kv-v "$t" --kv-key-axis channel
        row "$T_ per-channel keys + balance" --kv-k "$t" --kv-v "$t" --kv-key-axis channel --kv-balance
    done
    row "INT2 keys (per-token), FP16 values" --kv-k int2 --kv-v f16
    row "INT2 keys (per-token) + balance, FP16 values" --kv-k int2 --kv-v f16 --kv-balance
    for hi in 0.1 0.2 0.5; do
        for lo in int4 int3 int2; do
            row "MiKV hi $hi FP16, lo $(echo $lo | tr a-z A-Z)" --mikv --mikv-hi "$hi" --mikv-lo-type "$lo" --mikv-recent 8
        done
    done
    row "MiKV hi 0.1 INT8, lo INT2" --mikv --mikv-hi 0.1 --mikv-hi-type int8 --mikv-lo-type int2 --mikv-recent 8
    row "MiKV hi 0.1 INT8, lo INT2 + balance" --mikv --mikv-hi 0.1 --mikv-hi-type int8 --mikv-lo-type int2 \
        --mikv-recent 8 --kv-balance
    for hi in 0.1 0.2 0.5; do
        row "H2O keep $hi (evict the rest)" --h2o "$hi" --h2o-recent 8
    done
done
