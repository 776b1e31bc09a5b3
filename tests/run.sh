#!/bin/sh
# Runs each test program, then prints the total as "N passed, N failed, N skipped" (the line CI reads).
# A test skipped for a missing shared file prints "skip CASE: needs ..." (one case) or
# "NAME: skipped: needs ..." (the whole program); each such line counts one skip. Skips do not fail
# the run unless INTACT_NO_SKIP=1 (.ci/run sets it: CI must run everything).
passed=0; failed=0; skipped=0; bad=""; skip_list=""
for t in "$@"; do
    out=$("$t" 2>&1); rc=$?
    printf '%s\n' "$out" | grep -v '^ok  ' || true
    line=$(printf '%s\n' "$out" | grep -E ': [0-9]+ passed, [0-9]+ failed$' | tail -n 1)
    p=$(printf '%s' "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/'); f=$(printf '%s' "$line" | sed -E 's/.* ([0-9]+) failed$/\1/')
    s=$(printf '%s\n' "$out" | grep -cE '^skip |^[A-Za-z0-9_.-]+: skipped: ')
    [ -n "$p" ] || p=0; [ -n "$f" ] || f=0
    if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "$t: exited with status $rc"; fi
    [ "$f" -ne 0 ] && bad="$bad $(basename "$t")"
    [ "$s" -ne 0 ] && skip_list="$skip_list $(basename "$t")($s)"
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
done
[ -n "$bad" ] && echo "failing:$bad"
[ -n "$skip_list" ] && echo "skipped (missing shared files):$skip_list"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] || exit 1
if [ "$skipped" -ne 0 ] && [ "${INTACT_NO_SKIP:-0}" = 1 ]; then
    echo "INTACT_NO_SKIP=1: $skipped skipped tests count as a failure"; exit 1
fi
exit 0
