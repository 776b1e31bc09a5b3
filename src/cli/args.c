#include "cli/args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void (*cli_parse_only_hook)(const char *cmd, const cli_opt *opts, int n_opts, int argc, char **argv);

void cli_usage(const char *cmd, const char *synopsis, const cli_opt *opts, int n_opts, void *stream) {
    FILE *f = stream;
    fprintf(f, "usage: intact %s %s\n\noptions:\n", cmd, synopsis);
    for (int i = 0; i < n_opts; i++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s%s %s", opts[i].shrt ? opts[i].shrt : "", opts[i].shrt ? ", " : "",
                 opts[i].lng, opts[i].meta ? opts[i].meta : "");
        fprintf(f, "  %-26s %s\n", left, opts[i].help);
    }
    fprintf(f, "  %-26s %s\n", "-h, --help", "show this help");
}

static int parse_number(const char *cmd, const cli_opt *o, const char *v) {
    char *end;
    errno = 0;
    int kind = o->kind & ARG_KIND_MASK;
    if (kind == ARG_FLOAT) {
        double d = strtod(v, &end);
        if (errno || end == v || *end || !isfinite(d) || d < o->lo || d > o->hi) goto bad;
        *(float *)o->dst = (float)d;
    } else if (kind == ARG_U64) {
        if (*v == '-') goto bad;
        unsigned long long u = strtoull(v, &end, 10);
        if (errno || end == v || *end) goto bad;
        *(uint64_t *)o->dst = u;
    } else {
        long long l = strtoll(v, &end, 10);
        if (errno || end == v || *end || (double)l < o->lo || (double)l > o->hi) goto bad;
        *(int *)o->dst = (int)l;
    }
    return 0;
bad:
    if (kind == ARG_U64)
        fprintf(stderr, "intact %s: %s expects a non-negative integer, got '%s'\n", cmd, o->lng, v);
    else
        fprintf(stderr, "intact %s: %s expects a %s in [%.15g, %.15g], got '%s'\n", cmd, o->lng,
                kind == ARG_FLOAT ? "number" : "whole number", o->lo, o->hi, v);
    return -1;
}

int cli_parse(const char *cmd, const char *synopsis, const cli_opt *opts, int n_opts, int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cli_usage(cmd, synopsis, opts, n_opts, stdout);
            return 1;
        }
        const cli_opt *o = NULL;
        const char *inline_val = NULL;
        for (int k = 0; k < n_opts && !o; k++) {
            size_t ln = strlen(opts[k].lng);
            if (strcmp(a, opts[k].lng) == 0 || (opts[k].shrt && strcmp(a, opts[k].shrt) == 0)) {
                o = &opts[k];
            } else if (strncmp(a, opts[k].lng, ln) == 0 && a[ln] == '=' &&
                       (opts[k].kind & ARG_KIND_MASK) != ARG_FLAG) {
                o = &opts[k];
                inline_val = a + ln + 1;
            }
        }
        if (!o) {
            fprintf(stderr, "intact %s: unknown %s '%s' (see 'intact %s --help')\n", cmd,
                    a[0] == '-' ? "flag" : "argument", a, cmd);
            return -1;
        }
        int kind = o->kind & ARG_KIND_MASK;
        if (kind == ARG_FLAG) {
            *(int *)o->dst = 1;
            continue;
        }
        const char *v = inline_val;
        if (!v) {
            if (i + 1 >= argc) {
                fprintf(stderr, "intact %s: %s needs a value (%s)\n", cmd, o->lng, o->meta ? o->meta : "");
                return -1;
            }
            v = argv[++i];
        }
        if (kind == ARG_STR) *(const char **)o->dst = v;
        else if (kind == ARG_STRS) {
            cli_strs *l = o->dst;
            if (l->n >= CLI_MAX_STRS) {
                fprintf(stderr, "intact %s: %s given more than %d times\n", cmd, o->lng, CLI_MAX_STRS);
                return -1;
            }
            l->v[l->n++] = v;
        }
        else if (parse_number(cmd, o, v) != 0) return -1;
    }
    for (int k = 0; k < n_opts; k++) {
        if (!(opts[k].kind & ARG_REQUIRED)) continue;
        const char *given = *(const char **)opts[k].dst;
        if (!given || !*given) {   // "--model=" names no model either
            const char *what = opts[k].lng + 2;   // "--model" -> "model"
            fprintf(stderr, "intact %s: no %s given (%s %s)\n", cmd, what, opts[k].shrt ? opts[k].shrt : opts[k].lng,
                    opts[k].meta ? opts[k].meta : "");
            return -1;
        }
    }
    if (cli_parse_only_hook) {
        cli_parse_only_hook(cmd, opts, n_opts, argc, argv);
        return 1;
    }
    return 0;
}
