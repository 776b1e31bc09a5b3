#!/bin/sh
# Prefill speed of weight-activation quantization (issue 7) on the synthetic TinyLlama-1.1B file:
# W4A16 (float kernels over int4 weights) vs W4A8 (integer GEMM, int8 activations) vs W8A8, rounds
# alternating so that the ratios are measured side by side (this machine is shared). Prefill of 512
# random tokens, 2 threads; llama.cpp's Q4_0 prefill on this file is ~145 tok/s (pp512, 2 threads).
# Usage: bench/wa_speed.sh [ROUNDS]   (default 3)
set -e
R=${1:-3}
SHARED=${INTACT_SHARED:-../shared}
BIN=${INTACT_BIN:-build/intact}
F16=/tmp/intact-tinyllama-1.1b-f16.gguf
if [ ! -f "$F16" ]; then
    python3 "$SHARED/tools/synth-gguf.py" "$F16.tmp" --preset tinyllama-1.1b >&2 && mv "$F16.tmp" "$F16"
fi
for spec in "4 128" "4 32" "8 128"; do
    set -- $spec
    out=/tmp/intact-tinyllama-w$1g$2.gguf
    [ -f "$out" ] || "$BIN" quantize -m "$F16" -o "$out" --method rtn --bits "$1" --group "$2" -t 2 >/dev/null 2>&1
done
pp() { "$BIN" bench -m "$1" -t 2 -p 512 -n 0 --no-bandwidth --json ${2:-} 2>/dev/null |
       sed -E 's/.*"prefill_tok_s":([0-9.]+).*/\1/'; }
echo "| round | F16 | W4A16 g128 | W4A8 g128 | W4A16 g32 | W4A8 g32 | W8A16 g128 | W8A8 g128 |"
echo "|---|---|---|---|---|---|---|---|"
i=1
while [ $i -le "$R" ]; do
    echo "| $i | $(pp $F16) | $(pp /tmp/intact-tinyllama-w4g128.gguf) | $(pp /tmp/intact-tinyllama-w4g128.gguf '--abits 8') |" \
         "$(pp /tmp/intact-tinyllama-w4g32.gguf) | $(pp /tmp/intact-tinyllama-w4g32.gguf '--abits 8') |" \
         "$(pp /tmp/intact-tinyllama-w8g128.gguf) | $(pp /tmp/intact-tinyllama-w8g128.gguf '--abits 8') |"
    i=$((i + 1))
done
