#!/bin/sh
# `make install` into a temporary DESTDIR, then a user's program (tests/install/use_intact.c) built
# against the installed copy with nothing but pkg-config, linked statically and dynamically, run on
# the shared stories260K (skipped without it); then `make uninstall` leaves nothing behind. pkg-config reads only the
# installed intact.pc (PKG_CONFIG_LIBDIR) and PKG_CONFIG_SYSROOT_DIR maps its /usr/local paths into
# DESTDIR, so wrong prefix/includedir/libdir/Cflags/Libs lines in the .pc make this test fail.
# Run from the repo root by `make check` (tests/run.sh), after `make lib`; prints the harness line.
name=test_install
passed=0; failed=0
ok()   { echo "ok  $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; shift; for l in "$@"; do printf '  %s\n' "$l"; done; failed=$((failed + 1)); }
check() { # check NAME COMMAND...: a case that passes when COMMAND succeeds (its output shown on failure)
    c=$1; shift
    if out=$("$@" 2>&1); then ok "$c"; else fail "$c" "$(printf '%s' "$out" | tail -n 5)"; fi
}
# check_model NAME COMMAND...: as check, but skipped (counted by tests/run.sh) without the shared model.
check_model() {
    if [ -r "$models/stories260K.bin" ] && [ -r "$models/tok512.bin" ]; then check "$@"
    else echo "skip $1: needs $models/stories260K.bin and tok512.bin (set SHARED=...)"; fi
}
finish() { rm -rf "$tmp"; echo "$name: $passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

if ! command -v pkg-config >/dev/null; then
    echo "$name: skipped: needs pkg-config (apt-get install pkg-config)"
    echo "$name: 0 passed, 0 failed"; exit 0
fi
tmp=$(mktemp -d /tmp/intact_test_install_XXXXXX) || { echo "$name: 0 passed, 1 failed"; exit 1; }
root=$tmp/root; prefix=/usr/local; lib=$root$prefix/lib
CC=${CC:-cc}
models=${INTACT_MODELS:-../shared/models}
version=$(sed -n 's/^#define INTACT_VERSION "\(.*\)"/\1/p' include/intact.h)

# The same make variables as the calling `make check` (MAKEFLAGS carries SANITIZE=..., CC=...).
check "make install DESTDIR=... PREFIX=$prefix" make --no-print-directory -s install DESTDIR="$root" PREFIX=$prefix
for f in bin/intact lib/libintact.a lib/libintact.so.$version include/intact.h lib/pkgconfig/intact.pc \
         share/man/man1/intact.1; do
    [ -f "$root$prefix/$f" ] || fail "installed $f" "missing: $root$prefix/$f"
done
[ "$(readlink "$lib/libintact.so.0")" = "libintact.so.$version" ] && [ "$(readlink "$lib/libintact.so")" = libintact.so.0 ] \
    && ok "symlinks libintact.so -> libintact.so.0 -> libintact.so.$version" \
    || fail "symlinks" "$(ls -l "$lib")"
soname=$(readelf -d "$lib/libintact.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = libintact.so.0 ] && ok "soname libintact.so.0" || fail "soname" "got '$soname'"

# Exported symbols: exactly the INTACT_API functions of include/intact.h.
nm -D --defined-only "$lib/libintact.so.$version" | awk '$2 ~ /^[TWDBRV]$/ {print $3}' | sort > "$tmp/exported"
grep -E '^INTACT_API ' include/intact.h | sed -E 's/\(.*//; s/.*[ *]//' | sort > "$tmp/api"
if [ -s "$tmp/api" ] && cmp -s "$tmp/exported" "$tmp/api"; then ok "libintact.so exports exactly the $(wc -l < "$tmp/api") API functions"
else fail "exported symbols = INTACT_API functions" "$(diff "$tmp/api" "$tmp/exported" | head -n 8)"; fi

export PKG_CONFIG_LIBDIR="$lib/pkgconfig" PKG_CONFIG_PATH= PKG_CONFIG_SYSROOT_DIR="$root"
pc_version=$(pkg-config --modversion intact 2>&1)
[ "$pc_version" = "$version" ] && ok "pkg-config --modversion intact = $version" || fail "modversion" "$pc_version"
cflags=$(pkg-config --cflags intact); libs=$(pkg-config --libs intact); slibs=$(pkg-config --static --libs intact)
echo "  pkg-config --cflags: $cflags; --libs: $libs; --static --libs: $slibs"

# Shared: the program needs libintact.so.0 and finds the installed one through LD_LIBRARY_PATH.
# INTACT_SANFLAGS: the sanitizer flags of `make check SANITIZE=1` (its libraries are instrumented).
# shellcheck disable=SC2086
check "cc use_intact.c \$(pkg-config --cflags --libs intact) (shared)" \
    $CC $INTACT_SANFLAGS -std=c11 -Wall -Wextra -Werror $cflags tests/install/use_intact.c -o "$tmp/use_shared" $libs
if [ -x "$tmp/use_shared" ]; then
    needed=$(readelf -d "$tmp/use_shared" | grep -c 'NEEDED.*\[libintact\.so\.0\]')
    resolved=$(LD_LIBRARY_PATH="$lib" ldd "$tmp/use_shared" | grep 'libintact\.so\.0 =>' | grep -c "$lib/libintact.so.0")
    [ "$needed" = 1 ] && [ "$resolved" = 1 ] && ok "shared program needs libintact.so.0, resolved in DESTDIR" \
        || fail "shared linkage" "$(LD_LIBRARY_PATH="$lib" ldd "$tmp/use_shared")"
    check_model "shared program: stories260K greedy text, finite logits" \
        env LD_LIBRARY_PATH="$lib" "$tmp/use_shared" "$models/stories260K.bin" "$models/tok512.bin"
fi

# Static: libintact.a from the same -L, plus Libs.private (-lm -pthread) from --static.
slibs_a=$(printf '%s' "$slibs" | sed 's/-lintact/-Wl,-Bstatic -lintact -Wl,-Bdynamic/')
# shellcheck disable=SC2086
check "cc use_intact.c \$(pkg-config --cflags --static --libs intact) (static libintact.a)" \
    $CC $INTACT_SANFLAGS -std=c11 -Wall -Wextra -Werror $cflags tests/install/use_intact.c -o "$tmp/use_static" $slibs_a
if [ -x "$tmp/use_static" ]; then
    readelf -d "$tmp/use_static" | grep -q 'NEEDED.*libintact' && fail "static program does not need libintact.so" \
        || ok "static program does not need libintact.so"
    check_model "static program: stories260K greedy text, finite logits" \
        "$tmp/use_static" "$models/stories260K.bin" "$models/tok512.bin"
fi

check_model "installed CLI runs (intact info)" "$root$prefix/bin/intact" info -m "$models/stories260K.bin"
check "man page formats without warnings" sh -c \
    "groff -man -Tutf8 -ww -z '$root$prefix/share/man/man1/intact.1' 2>&1 | { ! grep .; }"

check "docs/intact.1 is what scripts/gen_man.py writes from the CLI's --help" sh -c \
    "python3 scripts/gen_man.py '${INTACT_BIN:-build/intact}' | cmp - docs/intact.1"

check "make uninstall" make --no-print-directory -s uninstall DESTDIR="$root" PREFIX=$prefix
left=$(find "$root" ! -type d | head -n 5)
[ -z "$left" ] && ok "uninstall removes every installed file" || fail "uninstall leaves files" "$left"
finish
