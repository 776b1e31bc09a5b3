#!/usr/bin/env bash
# Pivot tokens beyond [BOS], and whether a longer intact prefix helps (docs/intactkv.md).
#  1. `intact analyze` on two 1,200-byte passages of eval-en.txt (its start and its middle), 256
#     tokens each: the pivot tokens it finds at the default criteria and at a looser attention
#     criterion (--attn-ratio 2).
#  2. For W$W g$G METHOD on MODEL, evaluation with a one-token prefix ([BOS]) and with a longer one
#     ([BOS] + a fixed system-prompt-like sentence, PROMPT), each computed by the quantized model
#     itself (not intact) and by the FP model (IntactKV): PPL and KL vs FP on eval-en.txt, 8 chunks.
#     Each chunk holds CTX - P text tokens after its prefix, so compare rows with the same prefix.
# Usage: bench/pivots.sh [MODEL_NAME]   (default english-12m)   env: W (3), G (128), METHODS (rtn), PROMPT
set -euo pipefail
. "$(dirname "$0")/common.sh"
MODEL_NAME=${1:-english-12m}
q_model_setup "$MODEL_NAME"
W=${W:-3} G=${G:-${WGROUPS%% *}} METHODS=${METHODS:-rtn} SAMPLES=${SAMPLES:-32}
PROMPT=${PROMPT:-"The following is a passage of English text, taken from a book, a letter or a newspaper."}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
QDIR=${QDIR:-$TMP}
size=$(wc -c <"$TEXT")
head -c 1200 "$TEXT" >"$TMP/a.txt"
dd if="$TEXT" of="$TMP/b.txt" bs=1200 skip=$((size / 2400)) count=1 status=none
for p in a b; do
    for ar in 3 2; do
        echo "### analyze, passage $p ($([ $p = a ] && echo start || echo middle) of eval-en.txt), --attn-ratio $ar"
        echo
        echo '```'
        "$BIN" analyze -m "$MODEL" -z "$TOK" -f "$TMP/$p.txt" -c 256 --attn-ratio "$ar" 2>/dev/null |
            sed -n '/^pivot tokens/,/^attention share/p' | grep -E '^pivot tokens|^  #' || true
        echo '```'
        echo
    done
done
echo "### Longer intact prefix: W$W g$G, eval-en.txt, $CHUNKS chunks x $CTX tokens (prefix included)"
echo
echo "prompt: \"$PROMPT\""
echo
echo "| weights | prefix | tokens | PPL (prefix by the quantized model) | PPL (FP prefix, IntactKV) | KL (quantized prefix) | KL (FP prefix) | KL removed |"
echo "|---|---|---|---|---|---|---|---|"
"$BIN" ikv build -m "$MODEL" -z "$TOK" --bos -o "$TMP/fp1.ikv" >/dev/null
"$BIN" ikv build -m "$MODEL" -z "$TOK" --prompt "$PROMPT" -o "$TMP/fpP.ikv" >/dev/null
np=$("$BIN" tokenize -m "$MODEL" -z "$TOK" -p "$PROMPT" | tr -cd ',' | wc -c); np=$((np + 1))
for m in $METHODS; do
    f=$(q_file "$m" "$W" "$G")
    "$BIN" ikv build -m "$f" -z "$TOK" --bos -o "$TMP/q1.ikv" >/dev/null
    "$BIN" ikv build -m "$f" -z "$TOK" --prompt "$PROMPT" -o "$TMP/qP.ikv" >/dev/null
    for P in 1 P; do
        a=$(q_kld "$f" --ikv "$TMP/q$P.ikv"); b=$(q_kld "$f" --ikv "$TMP/fp$P.ikv")
        label="[BOS]"; n=1; [ $P = P ] && label="[BOS] + prompt" n=$np
        awk -v w="W$W g$G $m" -v l="$label" -v n="$n" -v p0="$(field "$a" ppl)" -v p1="$(field "$b" ppl)" \
            -v k0="$(field "$a" kld_mean)" -v k1="$(field "$b" kld_mean)" 'BEGIN {
            printf "| %s | %s | %d | %.3f | %.3f | %.4f | %.4f | %.1f%% |\n", w, l, n, p0, p1, k0, k1, 100 * (k0 - k1) / k0 }'
    done
done
