#!/bin/sh
# `make bench`: speed on the synthetic TinyLlama-1.1B F16 GGUF (random weights, real shapes).
# The 2 GiB file is generated once under /tmp (never in the repo).
set -e
SHARED=${INTACT_SHARED:-../shared}
MODEL=${BENCH_MODEL:-/tmp/intact-tinyllama-1.1b-f16.gguf}
THREADS=${BENCH_THREADS:-2}
BIN=${INTACT_BIN:-build/intact}
if [ ! -f "$MODEL" ]; then
    echo "generating $MODEL (2 GiB, random weights)..." >&2
    python3 "$SHARED/tools/synth-gguf.py" "$MODEL.tmp" --preset tinyllama-1.1b >&2
    mv "$MODEL.tmp" "$MODEL"
fi
"$BIN" bench -m "$MODEL" -t "$THREADS" -p 128 -n 64 "$@"
