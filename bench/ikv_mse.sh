#!/usr/bin/env bash
# The paper's Fig. 2 and the error at the pivot (docs/intactkv.md), on MODEL at W$W g$G:
#  - per quantized model, `ikv mse`: MSE of the attention output and of the block output against FP
#    (mean over layers and over the same later positions), as the first k = 0..MAXP tokens of each
#    chunk are kept intact (their K/V from the FP model), and the share of the k=0 MSE that [BOS]
#    alone (k=1) removes; MSE_CHUNKS chunks of eval-en.txt of the model's context;
#  - the quantization error of [BOS]'s own K/V: relative L2 error, mean over layers, of the [BOS]
#    prefix built by the quantized model against the FP model's (bench/ikv_prefix_err.py).
# Usage: bench/ikv_mse.sh [MODEL_NAME] [SAMPLES]   (default english-12m, 32 GPTQ/AWQ windows)
#   env: W (3), G (128), MAXP (8), MSE_CHUNKS (2), METHODS ("rtn gptq awq"), QDIR,
#        VARIANTS="label=path.gguf ..." extra quantized files (e.g. another calibration)
set -euo pipefail
. "$(dirname "$0")/common.sh"
MODEL_NAME=${1:-english-12m}
SAMPLES=${2:-32}
q_model_setup "$MODEL_NAME"
W=${W:-3} MAXP=${MAXP:-8} MSE_CHUNKS=${MSE_CHUNKS:-2} METHODS=${METHODS:-rtn gptq awq}
G=${G:-${WGROUPS%% *}}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
QDIR=${QDIR:-$TMP}
"$BIN" ikv build -m "$MODEL" -z "$TOK" --bos -o "$TMP/fp.ikv" >/dev/null
list=()
for m in $METHODS; do list+=("W$W g$G $m=$(q_file "$m" "$W" "$G")"); done
for v in ${VARIANTS:-}; do list+=("${v//_/ }"); done
echo "$MODEL_NAME: ikv mse on $MSE_CHUNKS chunks x $CTX tokens of eval-en.txt; [BOS] K/V error vs the FP prefix"
echo
hdr="| weights | [BOS] K err | [BOS] V err |"; sep="|---|---|---|"
for k in $(seq 0 "$MAXP"); do hdr="$hdr attn MSE k=$k |"; sep="$sep---|"; done
echo "$hdr attn: removed by [BOS] | block MSE k=0 | k=1 | k=$MAXP | block: removed by [BOS] | monotone 0→1 |"
echo "$sep---|---|---|---|---|---|"
for e in "${list[@]}"; do
    label=${e%%=*} f=${e#*=}
    "$BIN" ikv build -m "$f" -z "$TOK" --bos -o "$TMP/q.ikv" >/dev/null
    err=$(python3 "$(dirname "$0")/ikv_prefix_err.py" "$TMP/fp.ikv" "$TMP/q.ikv" | tail -1 | awk -F'|' '{print $(NF-1)}')
    j=$("$BIN" ikv mse -m "$f" -z "$TOK" --base "$MODEL" -f "$TEXT" -c "$CTX" --chunks "$MSE_CHUNKS" \
        --max-prefix "$MAXP" -t "$T" --json 2>/dev/null)
    printf '%s' "$j" | python3 -c '
import json, sys
label, err = sys.argv[1], sys.argv[2].split("/")
rows = json.load(sys.stdin)["rows"]
a = [r["attn_mse"] for r in rows]; b = [r["block_mse"] for r in rows]
cells = " | ".join("%.5f" % x for x in a)
print("| %s | %.3f | %.3f | %s | %.1f%% | %.5f | %.5f | %.5f | %.1f%% | %s |" % (label, float(err[0]), float(err[1]),
      cells, 100 * (a[0] - a[1]) / a[0], b[0], b[1], b[-1], 100 * (b[0] - b[1]) / b[0],
      "yes" if a[1] < a[0] and b[1] < b[0] else "no"))' "$label" "$err"
done
