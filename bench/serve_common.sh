# Shared by the bench/serve_*.sh scripts (sourced, bash): the model, the binary, a scratch
# directory, and starting a server on a free port.
SHARED=${SHARED:-../shared}
MODEL=${MODEL:-$SHARED/models/english-12m.bin}
TOK=${TOK:-$SHARED/models/tok512.bin}
BIN=${INTACT_BIN:-build/intact}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# serve_start ARGS...: `intact serve -m MODEL -z TOK --port 0 ARGS` in the background; sets pid and
# port once it listens (exits the script with the server's stderr if it does not within 30 s).
serve_start() {
    "$BIN" serve -m "$MODEL" -z "$TOK" --port 0 "$@" 2>"$OUT/err" &
    pid=$!
    port=""
    for _ in $(seq 300); do
        port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\)|\1|p' "$OUT/err"); [ -n "$port" ] && break; sleep 0.1
    done
    [ -n "$port" ] || { cat "$OUT/err"; kill "$pid"; exit 1; }
}
