#!/usr/bin/env python3
"""Writes docs/intact.1 (troff man page) from the CLI's own --help texts, so the page lists every
command and flag the binary has. Re-run after changing a command's flags:

  python3 scripts/gen_man.py build/intact > docs/intact.1

Flags shared by several commands (weight quantization, activation quantization, KV cache) are listed
once in their own sections; each command names the groups it accepts.
"""
import re, subprocess, sys

COMMANDS = ["info", "run", "tokenize", "ppl", "kld", "retrieval", "bench", "quantize", "analyze",
            "ikv build", "ikv calibrate", "ikv mse", "chat", "serve"]
GROUPS = [  # (section title, first flag, last flag): a contiguous run of options in --help
    ("WEIGHT QUANTIZATION OPTIONS", "--quant", "--rotate-seed"),
    ("ACTIVATION QUANTIZATION OPTIONS", "--abits", "--a-fake"),
    ("KV-CACHE OPTIONS", "--kv-k", "--kv-balance"),
]

def help_of(binary, cmd):
    r = subprocess.run([binary] + cmd.split() + ["--help"], capture_output=True, text=True)
    return r.stdout + r.stderr

def esc(s):
    s = s.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + s if s.startswith((".", "'")) else s

def parse(text):
    """usage line, option list [(flags, description)], free text after the options."""
    usage, opts, prose, where = "", [], [], "head"
    for line in text.splitlines():
        if line.startswith("usage: "):
            usage = line[len("usage: "):]
        elif line.strip() == "options:":
            where = "opts"
        elif where == "opts" and line.startswith("  ") and line.strip().startswith("-"):
            parts = re.split(r"\s{2,}", line.strip(), maxsplit=1)
            if len(parts) == 2:
                flags, desc = parts
            else:  # a long flag column: "--kv-key-axis token|channel quantize keys ..."
                t = line.split()
                n = 2 if len(t) > 2 and (t[1].isupper() or "|" in t[1]) else 1
                flags, desc = " ".join(t[:n]), " ".join(t[n:])
            opts.append((flags.strip(), desc.strip()))
        elif where == "opts" and line.startswith("    ") and opts:
            opts[-1] = (opts[-1][0], opts[-1][1] + " " + line.strip())
        elif line.strip():
            if where == "opts": where = "tail"
            if where in ("head", "tail") and not line.startswith("usage"): prose.append(line.strip())
        elif where == "opts":
            where = "tail"
    return usage, opts, prose

def split_groups(opts):
    own, groups = [], {}
    i = 0
    while i < len(opts):
        flag = opts[i][0].split()[0].rstrip(",")
        for title, first, last in GROUPS:
            if flag == first:
                j = i
                while j < len(opts) and opts[j][0].split()[0] != last: j += 1
                groups[title] = opts[i:j + 1]
                i = j + 1
                break
        else:
            own.append(opts[i]); i += 1
    return own, groups

def tp(flags, desc):
    return f".TP\n.B {esc(flags)}\n{esc(desc)}\n"

def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "build/intact"
    top = help_of(binary, "")
    version = re.search(r"intact (\S+)", top).group(1)
    summaries = dict(re.findall(r"^  (\w+)\s{2,}(.*)$", top, re.M))
    ikv_top = help_of(binary, "ikv")
    summaries.update({"ikv " + k: v for k, v in re.findall(r"^  (\w+)\s{2,}(.*)$", ikv_top, re.M)})
    out = [f'.TH INTACT 1 "" "intact {version}" "User Commands"\n',
           ".SH NAME\nintact \\- accurate low\\-bit inference for LLaMA\\-family models (IntactKV, MiKV)\n",
           ".SH SYNOPSIS\n.B intact\n.I COMMAND\n[\\fIoptions\\fR]\n.br\n.B intact\n.I COMMAND\n.B \\-\\-help\n",
           ".SH DESCRIPTION\n.B intact\nruns LLaMA\\-family models (GGUF v2/v3 or llama2.c checkpoints) on the CPU "
           "and measures what low\\-bit quantization of the weights, the activations and the KV cache costs: "
           "perplexity, KL divergence against the full\\-precision model, line retrieval and speed. "
           "IntactKV keeps the K/V of the first tokens (the pivot tokens, [BOS]) in full precision in a "
           "prefix file (.ikv); MiKV keeps important tokens' K/V in high precision and the rest in low. "
           "A FILE argument \\(aq\\-\\(aq is standard input. Every command prints its options with "
           "\\fB\\-\\-help\\fR.\n"]
    all_groups = {}
    out.append(".SH COMMANDS\n")
    for cmd in COMMANDS:
        usage, opts, prose = parse(help_of(binary, cmd))
        own, groups = split_groups(opts)
        for t, g in groups.items(): all_groups.setdefault(t, g)
        out.append(f".SS {esc(cmd)}\n{esc(summaries.get(cmd, ''))}.\n.PP\n.B {esc(usage)}\n")
        if prose:
            out.append(".PP\n" + esc(" ".join(prose)) + "\n")
        out += [tp(f, d) for f, d in own]
        if groups:
            names = [t.lower().replace("kv-cache", "KV-cache").replace(" options", "") for t in groups]
            out.append(".PP\nAlso accepts the " + esc(", ".join(names)) + " options (below).\n")
    for title, _, _ in GROUPS:
        if title in all_groups:
            out.append(f".SH {title}\n")
            out += [tp(f, d) for f, d in all_groups[title]]
    out.append(".SH EXIT STATUS\n.TP\n.B 0\nsuccess\n.TP\n.B 1\nfailure: a file that cannot be read or "
               "written, a malformed or unsupported model, a run that fails; one line on standard error\n"
               ".TP\n.B 2\nusage error: an unknown command or flag, a missing or invalid argument, "
               "conflicting flags; one line on standard error\n")
    out.append(".SH ENVIRONMENT\n.TP\n.B INTACT_ISA=ref|avx2|avx512\ncaps the instruction set the kernels "
               "may use (ref: the scalar reference kernels)\n.TP\n.B INTACT_PREFETCH=BYTES\nthe decode kernels' "
               "software prefetch distance, 0 to 65536 (default: 8 KB for integer weights and 4 KB for F16 on "
               "AMD Zen 5, 4 KB and none on Zen 4, 2 KB on other CPUs; bench \\-\\-prefetch\\-ab compares two); other "
               "values are ignored\n.TP\n.B INTACT_AMX=0\nkeeps the prefill of "
               "integer weights off AMX tiles (used by default where the CPU has AMX\-INT8 and Linux grants "
               "the tile state)\n.TP\n.B INTACT_HUGE_REFRESH=0\nkeeps a mapped model in whatever pages the page cache "
               "holds; by default a model file of 32 MiB or more that is cached in 4 KiB pages is dropped from "
               "the cache and read again, once, in 2 MiB pages, which decode streams faster\n")
    out.append(".SH FILES\n.TP\n.I *.gguf\nGGUF v2/v3 models (F32, F16, BF16, Q8_0, Q4_0, Q4_1 and the "
               "quantized types intact writes) with their tokenizer in the metadata\n.TP\n.I *.bin\n"
               "llama2.c v0 checkpoints; their tokenizer.bin is given with \\fB\\-z\\fR\n.TP\n.I *.ikv\n"
               "IntactKV prefixes written by \\fBintact ikv build\\fR and \\fBintact ikv calibrate\\fR\n"
               ".TP\n.I PREFIX/include/intact.h, PREFIX/lib/libintact.{a,so}, "
               "PREFIX/lib/pkgconfig/intact.pc\nthe C library (\\fBpkg\\-config \\-\\-cflags \\-\\-libs "
               "intact\\fR)\n")
    out.append(".SH SEE ALSO\n.BR pkg\\-config (1)\n.PP\nThe project's README.md and docs/ "
               "(intactkv.md, kv\\-quant.md, weight\\-quant.md, weight\\-act.md).\n")
    sys.stdout.write("".join(out))

if __name__ == "__main__":
    main()
