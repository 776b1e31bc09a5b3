#!/usr/bin/env bash
# ggml-typed GGUF files (issue 15): intact and llama.cpp run the SAME file, alternating per file and
# round, so both see the same machine load. Per file: intact's prefill / decode tok/s, the fraction
# of the bandwidth bound intact's bench reports (decode GB/s over the read bandwidth it probes in the
# same run), llama-bench's tok/s, and the medians of the per-round ratios intact / llama.cpp.
# Usage: LLAMA=DIR_WITH_llama-bench bench/ggml_speed.sh [ROUNDS] FILE.gguf...
#   env: INTACT_BIN (build/intact), THREADS (2), PROMPT (128), N_GEN (32)
# A file llama.cpp cannot load (intact's own intN types) gets '-' in the llama.cpp columns.
set -euo pipefail
BIN=${INTACT_BIN:-build/intact}
: "${LLAMA:?set LLAMA to the directory holding llama-bench}"
ROUNDS=${1:-2}; shift || true
[ $# -gt 0 ] || { echo "usage: LLAMA=DIR bench/ggml_speed.sh [ROUNDS] FILE.gguf..." >&2; exit 2; }
T=${THREADS:-2}; PP=${PROMPT:-128}; NG=${N_GEN:-32}
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
field() { sed -E "s/.*\"$1\":([0-9.eE+-]+).*/\1/"; }
# ratio A B R: this round's A / B (the last line of each file) appended to R, if both exist
ratio() { [ -s "$TMP/$1$i" ] && [ -s "$TMP/$2$i" ] && echo "$(tail -n 1 "$TMP/$1$i") $(tail -n 1 "$TMP/$2$i")" |
    awk '$2 > 0 { print $1 / $2 }' >>"$TMP/$3$i" || true; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (!NR) print "-"; else printf "%.2f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

for r in $(seq "$ROUNDS"); do
    i=0
    for f in "$@"; do
        i=$((i + 1))
        j=$("$BIN" bench -m "$f" -t "$T" -p "$PP" -n "$NG" --json 2>/dev/null | tail -n 1)
        printf '%s\n' "$j" | field prefill_tok_s >>"$TMP/ip$i"
        printf '%s\n' "$j" | field decode_tok_s >>"$TMP/id$i"
        printf '%s\n' "$j" | field bw_fraction >>"$TMP/bw$i"
        if l=$("$LLAMA/llama-bench" -m "$f" -t "$T" -p "$PP" -n "$NG" -r 1 -o csv 2>/dev/null); then
            # llama-bench's csv: the header names the columns; n_prompt/n_gen tell the two rows apart
            printf '%s\n' "$l" | awk -F, -v pp="$TMP/lp$i" -v dd="$TMP/ld$i" '
                NR == 1 { for (c = 1; c <= NF; c++) { h = $c; gsub(/"/, "", h); col[h] = c }; next }
                { gsub(/"/, ""); if ($col["n_gen"] > 0) print $col["avg_ts"] >> dd; else print $col["avg_ts"] >> pp }'
            ratio ip lp rp; ratio id ld rd
        fi
    done
    echo "round $r/$ROUNDS done" >&2
done
echo "| file | intact pp$PP tok/s | llama.cpp pp$PP | ratio | intact tg$NG tok/s | % of bandwidth bound | llama.cpp tg$NG | ratio |"
echo "|---|---|---|---|---|---|---|---|"
i=0
for f in "$@"; do
    i=$((i + 1))
    m() { [ -f "$TMP/$1$i" ] && median <"$TMP/$1$i" || echo -; }
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(basename "$f")" "$(m ip)" "$(m lp)" "$(m rp)" \
        "$(m id)" "$(m bw | awk '{ print ($1 == "-") ? "-" : sprintf("%.0f%%", 100 * $1) }')" "$(m ld)" "$(m rd)"
done
