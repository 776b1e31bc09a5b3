#!/usr/bin/env bash
# Pivot-token plots of the README (docs/img/): `intact analyze --svg` on the first 56 tokens of
# eval-en.txt ([BOS] + 55; few enough that every token label stays readable), then the chosen
# files copied under a model prefix:
#   activations.svg       max|h| per token and layer, log colour, channel of the massive cells
#   channels_L1.svg       |h| per channel of [BOS] vs every other token, layer 1
#   attention_L1_H0.svg   attention map of layer 1 head 0
#   attention_L5_H2.svg   the strongest sink head of this text (78% of its attention on [BOS])
#   attention_share.svg   attention received by the first 4 tokens, per layer, vs uniform
# Usage: bench/pivot_plots.sh [MODEL_NAME [OUT_DIR]]   (default english-12m, docs/img; the layer and head
# choice is english-12m's: another model needs >= 6 layers and 3 heads)
set -euo pipefail
SHARED=${INTACT_SHARED:-../shared}
BIN=${INTACT_BIN:-build/intact}
NAME=${1:-english-12m}
OUT=${2:-docs/img}
PREFIX=$(printf '%s' "$NAME" | tr -d '-')   # english-12m -> english12m
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# stdout: the text report (the numbers behind the pictures); stderr only on failure (its "wrote" lines
# name the temporary files)
"$BIN" analyze -m "$SHARED/models/$NAME.bin" -z "$SHARED/models/tok512.bin" -f "$SHARED/data/eval-en.txt" \
    -c 56 --layers 1,5 --heads 0,2 --svg "$TMP/svg" -t "${THREADS:-2}" 2>"$TMP/err" || { cat "$TMP/err" >&2; exit 1; }
mkdir -p "$OUT"
for f in activations channels_L1 attention_L1_H0 attention_L5_H2 attention_share; do
    cp "$TMP/svg/$f.svg" "$OUT/.${PREFIX}_$f.svg.tmp"   # temp + rename: never a half-copied picture
    mv "$OUT/.${PREFIX}_$f.svg.tmp" "$OUT/${PREFIX}_$f.svg"
    echo "wrote $OUT/${PREFIX}_$f.svg" >&2
done
