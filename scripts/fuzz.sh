#!/usr/bin/env bash
# `make fuzz FUZZ_SECONDS=N`: builds every fuzz/fuzz_*.c with libFuzzer + ASan + UBSan (clang) and
# runs each for N seconds; prints executions per target and fails on any crash or leak.
set -euo pipefail
SECONDS_EACH=${FUZZ_SECONDS:-10}
SHARED=${INTACT_SHARED:-../shared}
export INTACT_SHARED=$SHARED
make --no-print-directory CC=clang BUILD=build-fuzz OPT=-O1 \
    SANFLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer" build-fuzz/libintact.a >/dev/null
python3 scripts/fuzz_seeds.py --shared "$SHARED" --out build-fuzz/seeds
total=0
for src in fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    clang -g -O1 -std=c11 -D_DEFAULT_SOURCE -fsanitize=fuzzer,address,undefined -Iinclude -Isrc \
        "$src" build-fuzz/libintact.a -lm -pthread -o "build-fuzz/$name"
    mkdir -p "build-fuzz/corpus/$name"
    log="build-fuzz/$name.log"
    if ! "./build-fuzz/$name" -max_total_time="$SECONDS_EACH" -max_len=16384 -print_final_stats=1 \
            "build-fuzz/corpus/$name" "build-fuzz/seeds/$name" >"$log" 2>&1; then
        grep -E "ERROR|SUMMARY|==[0-9]+==" "$log" | head -20
        echo "$name: FAILED (log: $log)"
        exit 1
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    echo "$name: $execs executions in ${SECONDS_EACH} s, no crash"
    total=$((total + execs))
done
echo "fuzz: $total executions in total, 0 crashes"
