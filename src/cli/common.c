#include "cli/common.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

intact_model *cli_load_model(const char *cmd, const char *path, const char *tokenizer) {
    if (!path) {
        fprintf(stderr, "intact %s: no model given (-m MODEL)\n", cmd);
        return NULL;
    }
    intact_error err = {0, ""};
    intact_model *m = intact_model_load(path, tokenizer, &err);
    if (!m) fprintf(stderr, "intact %s: %s\n", cmd, err.msg);
    return m;
}

char *cli_read_file(const char *cmd, const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "intact %s: cannot open '%s'\n", cmd, path);
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        if (cap >= ((size_t)1 << 30)) {
            fprintf(stderr, "intact %s: '%s' is larger than 1 GiB\n", cmd, path);
            free(buf);
            buf = NULL;
            break;
        }
        char *nb = realloc(buf, cap * 2 + 1);
        if (!nb) { free(buf); buf = NULL; break; }
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (buf && bad) {
        fprintf(stderr, "intact %s: error reading '%s'\n", cmd, path);
        free(buf);
        return NULL;
    }
    if (buf) { buf[n] = 0; *len = n; }
    return buf;
}

void cli_json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

void cli_progress(void *user, int done, int total) {
    fprintf(stderr, "\r%s: %d/%d", (const char *)user, done, total);
    if (done == total) fputc('\n', stderr);
    fflush(stderr);
}

double cli_peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; // Linux reports KiB
}

int cli_default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 16 ? 16 : (int)n;
}

intact_prefix *cli_load_prefix(const char *cmd, const char *path, const intact_model *m) {
    intact_error err = {0, ""};
    intact_prefix *p = intact_prefix_load(path, m, &err);
    if (!p) fprintf(stderr, "intact %s: %s\n", cmd, err.msg);
    return p;
}
