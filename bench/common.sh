# Shared settings of the quality scripts (sourced): the model by name, its tokenizer and context, the
# evaluation protocol (eval-en.txt, 8 chunks of the model's context, at most 512 tokens), and the
# weight groups its widths allow. english-12m is the default: its [BOS] is a true pivot token.
#   MODEL_NAME  english-12m | english-1m | stories260K (a file in $SHARED/models/NAME.bin)
#   QDIR        where quantized GGUFs are kept and reused between scripts (default: a temporary dir)
SHARED=${INTACT_SHARED:-../shared}
BIN=${INTACT_BIN:-build/intact}
T=${THREADS:-2}
TEXT=$SHARED/data/eval-en.txt
CALIB=$SHARED/data/calib-en.txt
TOK=$SHARED/models/tok512.bin
CHUNKS=${CHUNKS:-8}
q_model_setup() { # NAME: sets MODEL, CTX, WGROUPS, KVG (KV group: head_dim, at most 32)
    MODEL=$SHARED/models/$1.bin
    [ -f "$MODEL" ] || { echo "no model $MODEL" >&2; exit 2; }
    local info; info=$("$BIN" info -m "$MODEL" -z "$TOK" --json)
    local ctx hd dim hid
    ctx=$(printf '%s' "$info" | sed -E 's/.*"ctx_len":([0-9]+).*/\1/')
    hd=$(printf '%s' "$info" | sed -E 's/.*"head_dim":([0-9]+).*/\1/')
    dim=$(printf '%s' "$info" | sed -E 's/.*"dim":([0-9]+).*/\1/')
    hid=$(printf '%s' "$info" | sed -E 's/.*"hidden_dim":([0-9]+).*/\1/')
    CTX=${CTX:-$(( ctx < 512 ? ctx : 512 ))}
    # g128 only where every matrix's input width is a multiple of 128 (english-12m: 384, 1024)
    if [ -z "${WGROUPS:-}" ]; then
        if [ $((dim % 128)) -eq 0 ] && [ $((hid % 128)) -eq 0 ]; then WGROUPS="128 32"; else WGROUPS="32"; fi
    fi
    KVG=$(( hd < 32 ? hd : 32 ))
}
field() { printf '%s' "$1" | sed -E "s/.*\"$2\":([0-9.eE+-]+).*/\1/"; }
# q_file METHOD BITS GROUP [SAMPLES]: path of the quantized GGUF, made once per QDIR
q_file() {
    local f=$QDIR/$MODEL_NAME-$1-w$2-g$3.gguf; [ "$1" = rtn ] || f=$QDIR/$MODEL_NAME-$1-w$2-g$3-s${4:-$SAMPLES}.gguf
    if [ ! -f "$f" ]; then
        local c=(); [ "$1" = rtn ] || c=(--calib "$CALIB" --calib-samples "${4:-$SAMPLES}" --calib-len "$CTX")
        "$BIN" quantize -m "$MODEL" -z "$TOK" -o "$f.tmp" --method "$1" --bits "$2" --group "$3" "${c[@]}" \
            -t "$T" >/dev/null 2>&1 && mv "$f.tmp" "$f"
    fi
    printf '%s' "$f"
}
q_kld() { # MODEL_FILE flags...: KL vs the FP model on the evaluation chunks, JSON
    "$BIN" kld -m "$1" -z "$TOK" --base "$MODEL" -f "$TEXT" -c "$CTX" --chunks "$CHUNKS" -t "$T" --json "${@:2}" 2>/dev/null
}
