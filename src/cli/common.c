#include "cli/common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

intact_model *cli_load_model(const char *cmd, const char *path, const char *tokenizer) {
    cli_load_mode lm = {0, 1, 0};   // the other commands map (quantize reads its input once)
    return cli_load_model_ex(cmd, path, tokenizer, &lm);
}

// MemAvailable from /proc/meminfo in bytes; 0 when it cannot be read.
static unsigned long long mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    unsigned long long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb * 1024ull;
}

intact_model *cli_load_model_ex(const char *cmd, const char *path, const char *tokenizer, cli_load_mode *lm) {
    if (!path) {
        fprintf(stderr, "intact %s: no model given (-m MODEL)\n", cmd);
        return NULL;
    }
    if (lm->no_mmap && lm->mmap) {
        fprintf(stderr, "intact %s: --mmap and --no-mmap contradict each other; give one\n", cmd);
        return NULL;
    }
    struct stat st;
    int copy = lm->no_mmap;
    if (!lm->no_mmap && !lm->mmap && stat(path, &st) == 0 && S_ISREG(st.st_mode))
        copy = (unsigned long long)st.st_size <= mem_available() / 2;
    intact_error err = {0, ""};
    intact_model *m = intact_model_load_ex(path, tokenizer, copy ? INTACT_LOAD_NO_MMAP : 0, &err);
    if (!m) fprintf(stderr, "intact %s: %s\n", cmd, err.msg);
    lm->copied = m && copy;
    return m;
}

// Reads f to the end into a NUL-terminated buffer; prints the cause and returns NULL on failure.
static char *read_stream(const char *cmd, const char *name, FILE *f, size_t *len) {
    struct stat st;
    int err = fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode) ? EISDIR : 0;   // fopen opens directories
    size_t cap = 1 << 16, n = 0;
    char *buf = err ? NULL : malloc(cap + 1);
    const char *why = err ? strerror(err) : buf ? NULL : "out of memory";
    while (buf && !why) {
        size_t got = fread(buf + n, 1, cap - n, f);
        const char *nul = memchr(buf + n, '\0', got);   // checked per read: /dev/zero fails at once
        n += got;
        if (nul) {
            fprintf(stderr, "intact %s: %s is not text: NUL byte at offset %zu\n", cmd, name, (size_t)(nul - buf));
            why = "";
        } else if (ferror(f)) {
            why = strerror(errno);
        } else if (n == cap && cap >= ((size_t)1 << 30)) {
            fprintf(stderr, "intact %s: %s is larger than 1 GiB\n", cmd, name);
            why = "";
        } else if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) why = "out of memory";
            else buf = nb, cap *= 2;
        } else {
            break;   // end of file
        }
    }
    if (why && *why) fprintf(stderr, "intact %s: cannot read %s: %s\n", cmd, name, why);
    if (!why && n == 0) fprintf(stderr, "intact %s: %s is empty\n", cmd, name);
    if (why || n == 0) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

// Standard input is read once and kept: several options may name "-" (ikv calibrate reads --calib
// for the prefix and again for the quantizer), and each gets the same text.
static char *stdin_text;
static size_t stdin_len;

char *cli_read_file(const char *cmd, const char *path, size_t *len) {
    if (strcmp(path, "-") == 0) {
        if (!stdin_text && !(stdin_text = read_stream(cmd, "standard input", stdin, &stdin_len))) return NULL;
        char *copy = malloc(stdin_len + 1);
        if (!copy) fprintf(stderr, "intact %s: out of memory\n", cmd);
        else memcpy(copy, stdin_text, stdin_len + 1), *len = stdin_len;
        return copy;
    }
    char name[1100];
    snprintf(name, sizeof name, "'%s'", path);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "intact %s: cannot open %s: %s\n", cmd, name, strerror(errno));
        return NULL;
    }
    char *buf = read_stream(cmd, name, f, len);
    fclose(f);
    return buf;
}

const char *cli_human_bytes(char *buf, size_t cap, double bytes) {
    static const char *units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (bytes < 1024) {
        snprintf(buf, cap, "%.0f bytes", bytes);
        return buf;
    }
    int u = 0;
    for (bytes /= 1024; bytes >= 1024 && u < 3; u++) bytes /= 1024;
    snprintf(buf, cap, "%.2f %s", bytes, units[u]);
    return buf;
}

void cli_warn_ctx(const char *cmd, int n_ctx, int train_ctx) {
    if (n_ctx > train_ctx)
        fprintf(stderr, "intact %s: warning: context %d exceeds the model's training context %d (positions past it "
                "were never trained)\n", cmd, n_ctx, train_ctx);
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

int cli_flag_error(const char *cmd, const char *msg, const char *a, const char *b) {
    fprintf(stderr, "intact %s: ", cmd);
    fprintf(stderr, msg, a, b);
    fputc('\n', stderr);
    return -1;
}

intact_prefix *cli_system_prefix(const char *cmd, intact_model *m, const char *fp_path, const char *tokenizer,
                                 const char *text) {
    intact_model *fp = fp_path ? cli_load_model(cmd, fp_path, tokenizer) : m;
    if (!fp) return NULL;
    intact_model_info in;
    intact_model_get_info(m, &in);
    intact_error err = {0, ""};
    intact_prefix *p = NULL;
    int n = text ? intact_tokenize(fp, text, strlen(text), in.add_bos, NULL, 0, &err) : -1;
    int32_t *ids = n > 0 ? malloc((size_t)n * sizeof *ids) : NULL;
    if (ids && intact_tokenize(fp, text, strlen(text), in.add_bos, ids, n, &err) == n)
        p = intact_prefix_build(fp, ids, n, 0, &err);
    if (!p)
        fprintf(stderr, "intact %s: cannot build the system prompt prefix: %s\n", cmd,
                err.msg[0] ? err.msg : n == 0 ? "it is empty" : "out of memory");
    free(ids);
    if (fp != m) intact_model_free(fp);
    return p;
}
