#!/usr/bin/env bash
# `make fuzz FUZZ_SECONDS=N`: builds every fuzz/fuzz_*.c with libFuzzer + ASan + UBSan (clang) and
# runs each for N seconds; prints executions per target and fails on any crash, leak or timeout.
#   FUZZ_TARGETS="fuzz_args fuzz_ikv"  only these targets (default: every fuzz/fuzz_*.c)
#   FUZZ_JOBS=N                        run up to N targets at once (default 1)
#   FUZZ_BUILD=DIR                     build, seeds, corpora and logs in DIR (default build-fuzz)
#   FUZZ_TIMEOUT=S                     a unit slower than S seconds is a failure (default 10; raise it on a
#                                      loaded machine, where a starved process can exceed 10 s of wall time)
# A target whose source has a line "// fuzz-extra-src: FILE..." is linked with those files too
# (for code outside libintact.a), a line "// fuzz-libs: -l..." with those system libraries; a line "// fuzz-flags: ..." adds libFuzzer flags for that target
# (fuzz_qformat: -entropic=0, which is 10x faster there). The library is built once into build-fuzz/
# with make -j (coverage instrumentation, -O1); later runs only rebuild what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-10}
SHARED=${INTACT_SHARED:-../shared}
export INTACT_SHARED=$SHARED
export INTACT_MODELS=${INTACT_MODELS:-$SHARED/models}
JOBS=${FUZZ_JOBS:-1}
FB=${FUZZ_BUILD:-build-fuzz}
NPROC=$(nproc 2>/dev/null || echo 2)
command -v clang >/dev/null || { echo "fuzz: clang not found (libFuzzer needs clang)"; exit 1; }
make --no-print-directory -j"$NPROC" CC=clang BUILD=$FB OPT=-O1 \
    SIMD_O0="src/formats/matmul_avx512.c src/formats/matmul_avx2.c src/kernels/iqmatmul_avx512vnni.c" \
    SANFLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer" $FB/libintact.a >/dev/null
intact_bin=""
[ -x build/intact ] && intact_bin=build/intact
python3 scripts/fuzz_seeds.py --shared "$SHARED" --models "$INTACT_MODELS" --out $FB/seeds --intact "$intact_bin"
targets=${FUZZ_TARGETS:-$(for s in fuzz/fuzz_*.c; do basename "$s" .c; done)}

build_one() {
    local name=$1 src=fuzz/$1.c extra libs
    extra=$(sed -n 's|^// fuzz-extra-src: *||p' "$src")
    libs=$(sed -n 's|^// fuzz-libs: *||p' "$src")
    # shellcheck disable=SC2086
    if [ ! $FB/$name -nt "$src" ] || [ ! $FB/$name -nt $FB/libintact.a ] ||
       [ -n "$(find $extra src/*/*.h -newer $FB/$name 2>/dev/null | head -1)" ]; then
        clang -g -O1 -std=c11 -D_DEFAULT_SOURCE -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer \
            -Iinclude -Isrc "$src" $extra $FB/libintact.a $libs -lm -pthread -o "$FB/$name"
    fi
}

run_one() {
    local name=$1 log=$FB/$1.log flags
    flags=$(sed -n 's|^// fuzz-flags: *||p' "fuzz/$name.c")
    mkdir -p "$FB/corpus/$name" "$FB/artifacts/$name"
    # shellcheck disable=SC2086
    if ! "$FB/$name" $flags -max_total_time="$SECONDS_EACH" -max_len=16384 -timeout="${FUZZ_TIMEOUT:-10}" -rss_limit_mb=4096 \
            -print_final_stats=1 -artifact_prefix="$FB/artifacts/$name/" \
            "$FB/corpus/$name" "$FB/seeds/$name" >"$log" 2>&1; then
        grep -E "ERROR|SUMMARY|==[0-9]+==|Test unit written" "$log" | head -20
        echo "$name: FAILED (log: $log)"
        return 1
    fi
    local execs
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    echo "$name: $execs executions in ${SECONDS_EACH} s, no crash"
}

for t in $targets; do build_one "$t"; done
fail=0
if [ "$JOBS" -gt 1 ]; then
    pids=()
    for t in $targets; do
        while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 0.2; done
        run_one "$t" & pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || fail=1; done
else
    for t in $targets; do run_one "$t" || fail=1; done
fi
total=0
for t in $targets; do
    e=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$FB/$t.log" 2>/dev/null | grep -o '[0-9]*$' || echo 0)
    total=$((total + ${e:-0}))
done
if [ "$fail" -ne 0 ]; then
    echo "fuzz: FAILED ($total executions; see the logs above)"
    exit 1
fi
echo "fuzz: $total executions in total, 0 crashes"
