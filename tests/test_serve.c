// `intact serve` end to end: starts the server on a free loopback port with stories260K (and
// english-12m for the slot/queue cases), sends every bad-request class with curl and checks the
// status and the JSON error; answers must equal `intact run` at temperature 0. With node and the
// official `openai` npm package (OPENAI_MODULE, or build/npm/node_modules/openai: .ci/run installs
// it) tests/serve_openai.js drives it as a real client.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "cli_harness.h"

static pid_t srv_pid;
static int srv_port;
static char srv_err[64] = "/tmp/intact_serve_err_XXXXXX", body_file[64] = "/tmp/intact_serve_body_XXXXXX";

// Starts `intact serve ARGS --port 0`; 0 when it printed its port within 20 s.
static int srv_start(const char *args) {
    srv_port = 0;
    srv_pid = fork();
    if (srv_pid == 0) {
        int fd = open(srv_err, O_WRONLY | O_TRUNC);
        dup2(fd, 2);
        int nul = open("/dev/null", O_RDWR);
        dup2(nul, 0);
        dup2(nul, 1);
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "exec '%s' serve %s --port 0", bin, args);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 400 && !srv_port; i++) {
        usleep(50000);
        char *e = read_path(srv_err, NULL);
        const char *p = e ? strstr(e, "listening on http://127.0.0.1:") : NULL;
        if (p) srv_port = atoi(p + strlen("listening on http://127.0.0.1:"));
        free(e);
        int st;
        if (!srv_port && waitpid(srv_pid, &st, WNOHANG) == srv_pid) { srv_pid = 0; return -1; }
    }
    return srv_port ? 0 : -1;
}

static int srv_stop(void) {
    if (srv_pid <= 0) return -1;
    kill(srv_pid, SIGTERM);
    int st = 0;
    waitpid(srv_pid, &st, 0);
    srv_pid = 0;
    char *e = read_path(srv_err, NULL);   // the server's own sanitizer reports (SANITIZE=1 builds)
    int bad = e && sanitizer_report(e);
    if (bad) printf("  server stderr: %s\n", e);
    free(e);
    return bad ? -2 : WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// curl with extra args (shell syntax) against path; returns the HTTP status, body in *out (malloc'd).
static int http(char **out, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int http(char **out, const char *path, const char *fmt, ...) {
    char extra[8192], cmd[12288];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(extra, sizeof extra, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "curl -s -m 30 -o '%s' -w '%%{http_code}' %s 'http://127.0.0.1:%d%s'", body_file, extra,
             srv_port, path);
    FILE *p = popen(cmd, "r");
    int code = -1;
    if (p) {
        if (fscanf(p, "%d", &code) != 1) code = -1;
        pclose(p);
    }
    *out = read_path(body_file, NULL);
    if (!*out) *out = strdup("");
    return code;
}

#define JSON "-H 'Content-Type: application/json' "

int main(void) {
    if (th_skip_program("test_serve", "models/english-12m.bin", NULL)) return 0;
    char m_st[1024], m_tok[1024], m_en[1024];
    th_shared("models/stories260K.bin", m_st, sizeof m_st);
    th_shared("models/tok512.bin", m_tok, sizeof m_tok);
    th_shared("models/english-12m.bin", m_en, sizeof m_en);
    cli_harness_init();
    close(mkstemp(srv_err));
    close(mkstemp(body_file));
    int have_curl = system("curl --version >/dev/null 2>&1") == 0;
    char *b = NULL;
    char args[4096];
    snprintf(args, sizeof args, "-m '%s' -z '%s' --api-key sekret --max-body 4 --system 'Once upon a time' -c 32 --timeout 2", m_st,
             m_tok);
    TEST_CASE("server starts on loopback and answers /health") {
        if (!have_curl) { printf("skip %s: needs curl\n", th_case); th_case_skipped = 1; break; }
        CHECK(srv_start(args) == 0, "no 'listening' line: %s", read_path(srv_err, NULL));
        CHECK(http(&b, "/health", "%s", "") == 200 && strstr(b, "ok"), "%s", b);
        free(b);
    }
#define AUTH "-H 'Authorization: Bearer sekret' "
    TEST_CASE("bad requests: JSON errors with the right status") {
        if (!srv_port) break;
        struct { int code; const char *path, *args, *want; } cases[] = {
            {401, "/v1/models", "", "API key"},
            {401, "/v1/models", "-H 'Authorization: Bearer wrong'", "API key"},
            {200, "/v1/models", AUTH, "\"object\":\"list\""},
            {400, "/v1/completions", AUTH JSON "-d '{\"prompt\": '", "malformed JSON"},
            {400, "/v1/completions", AUTH JSON "-d '[1,2]'", "JSON object"},
            {400, "/v1/completions", AUTH JSON "-d '{\"prompt\": 3}'", "'prompt' must be a string"},
            {400, "/v1/completions", AUTH JSON "-d '{\"max_tokens\": 3}'", "missing field 'prompt'"},
            {400, "/v1/chat/completions", AUTH JSON "-d '{\"prompt\": \"x\"}'", "missing field 'messages'"},
            {400, "/v1/chat/completions", AUTH JSON "-d '{\"messages\": [{\"role\": \"user\"}]}'", "messages[0]"},
            {400, "/v1/chat/completions", AUTH JSON "-d '{\"messages\": [{\"role\": \"bot\", \"content\": \"x\"}]}'", "role"},
            {400, "/v1/completions", AUTH JSON "-d '{\"prompt\": \"x\", \"temperature\": \"hot\"}'", "'temperature' must be a number"},
            {400, "/v1/completions", AUTH JSON "-d '{\"prompt\": \"x\", \"top_p\": 0}'", "top_p"},
            {400, "/v1/completions", AUTH JSON "-d '{\"prompt\": \"x\", \"stream\": 1}'", "'stream' must be true or false"},
            {400, "/v1/completions", AUTH JSON "-d '{\"prompt\": \"x\", \"stop\": [1]}'", "'stop'"},
            {400, "/v1/completions", AUTH JSON "-d '{\"prompt\": \"Once upon a time there was a girl who liked to play "
             "with her dog in the park every day and she was very happy and the sun was shining and\"}'", "context holds 32"},
            {404, "/v1/nothing", AUTH, "no such endpoint"},
            {405, "/v1/completions", AUTH, "use POST"},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            int code = http(&b, cases[i].path, "%s", cases[i].args);
            CHECK(code == cases[i].code && strstr(b, cases[i].want) &&
                  (code == 200 || strstr(b, "\"error\"")), "%s %s: %d '%s'", cases[i].path, cases[i].args, code, b);
            free(b);
        }
        // oversized body: --max-body 4 KiB
        char big[6000];
        memset(big, 'a', sizeof big);
        memcpy(big, "{\"prompt\":\"", 11);
        memcpy(big + sizeof big - 3, "\"}", 3);
        write_path("/tmp/intact_serve_big.json", big, strlen(big));
        int code = http(&b, "/v1/completions", AUTH JSON "--data-binary @/tmp/intact_serve_big.json");
        CHECK(code == 413 && strstr(b, "too large"), "%d '%s'", code, b);
        free(b);
        unlink("/tmp/intact_serve_big.json");
    }
    TEST_CASE("a stalled client is disconnected after --timeout 2") {
        if (!srv_port) break;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {0};
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)srv_port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        struct timeval tv = {8, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect");
        const char *part = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pro";
        CHECK(write(fd, part, strlen(part)) == (ssize_t)strlen(part), "write");
        time_t t0 = time(NULL);
        char buf[256];
        ssize_t n = read(fd, buf, sizeof buf);
        long dt = (long)(time(NULL) - t0);
        CHECK(n <= 0 && dt >= 1 && dt <= 5, "read %zd after %ld s (want the server to close after ~2 s)", n, dt);
        close(fd);
    }
    TEST_CASE("answers equal intact run (temperature 0); the system prompt is a prefix hit") {
        if (!srv_port) break;
        result r = run("run -m '%s' -z '%s' -p 'Once upon a time' -n 20 --temp 0 --seed 1", m_st, m_tok);
        int code = http(&b, "/v1/completions", AUTH JSON "-d '{\"prompt\": \"Once upon a time\", \"max_tokens\": 20, "
                        "\"temperature\": 0, \"seed\": 1}'");
        const char *t = strstr(b, "\"text\":\"");
        CHECK(code == 200 && t && r.rc == 0, "%d %s", code, b);
        if (t) {
            t += 8;
            size_t n = strcspn(t, "\"");
            CHECK(!strncmp(r.out, "Once upon a time", 16) && strlen(r.out) == 16 + n + 1 && !strncmp(r.out + 16, t, n),
                  "run '%s' vs serve '%.*s'", r.out, (int)n, t);
        }
        CHECK(strstr(b, "\"prompt_tokens\":5") && strstr(b, "\"completion_tokens\":20"), "usage: %s", b);
        free(b);
        // chat, plain template: system + user joined by a blank line; streamed as SSE
        code = http(&b, "/v1/chat/completions", AUTH JSON "-d '{\"messages\": [{\"role\": \"user\", \"content\": "
                    "\"Once upon a time\"}], \"max_tokens\": 5, \"temperature\": 0, \"stream\": true}'");
        CHECK(code == 200 && strstr(b, "data: {") && strstr(b, "\"delta\":{\"content\":\" there\"}") &&
              strstr(b, "data: [DONE]\n\n") && strstr(b, "\"finish_reason\":\"length\""), "%d %s", code, b);
        free(b);
        code = http(&b, "/metrics", AUTH);
        CHECK(code == 200 && strstr(b, "intact_prefix_hits_total 2") && strstr(b, "intact_prefix_kv_bytes 6400") &&
              // shared, counted once: P 5 x 5 layers x 2 x kv_dim 32 x 4 bytes; no slot holds it
              strstr(b, "intact_kv_prefix_shared_bytes 6400\n") && strstr(b, "intact_kv_bytes_in_use 0\n") &&
              strstr(b, "intact_queue_depth 0") && strstr(b, "intact_tokens_generated_total 25"), "%s", b);
        free(b);
        rfree(&r);
        CHECK(srv_stop() == 0, "server exit status");
    }
    TEST_CASE("chatml: a chat opening with the --system prompt uses the shared prefix; another system prompt does not") {
        if (!have_curl) break;
        snprintf(args, sizeof args, "-m '%s' -z '%s' --chat-template chatml --system 'Once upon a time' -c 128", m_st, m_tok);
        CHECK(srv_start(args) == 0, "start: %s", read_path(srv_err, NULL));
        if (!srv_port) break;
        int code = http(&b, "/v1/chat/completions", JSON "-d '{\"messages\": [{\"role\": \"system\", \"content\": "
                        "\"Once upon a time\"}, {\"role\": \"user\", \"content\": \"Tell\"}], \"max_tokens\": 2}'");
        CHECK(code == 200, "%d %s", code, b);
        free(b);
        code = http(&b, "/v1/chat/completions", JSON "-d '{\"messages\": [{\"role\": \"system\", \"content\": "
                    "\"Once upon a tim\"}, {\"role\": \"user\", \"content\": \"Tell\"}], \"max_tokens\": 2}'");
        CHECK(code == 200, "%d %s", code, b);
        free(b);
        // logprobs in OpenAI's shapes: chat content[] entries; completions tokens/token_logprobs/text_offset
        code = http(&b, "/v1/chat/completions", JSON "-d '{\"messages\": [{\"role\": \"user\", \"content\": "
                    "\"Tell\"}], \"max_tokens\": 3, \"temperature\": 0, \"logprobs\": true}'");
        CHECK(code == 200 && strstr(b, "\"logprobs\":{\"content\":[{\"bytes\":[") && strstr(b, "\"logprob\":-") &&
              strstr(b, "\"top_logprobs\":[]"), "%d %s", code, b);
        free(b);
        code = http(&b, "/v1/completions", JSON "-d '{\"prompt\": \"Once\", \"max_tokens\": 3, \"temperature\": 0, "
                    "\"logprobs\": 1}'");
        CHECK(code == 200 && strstr(b, "\"tokens\":[\"") && strstr(b, "\"token_logprobs\":[-") &&
              strstr(b, "\"text_offset\":[0,"), "%d %s", code, b);
        free(b);
        code = http(&b, "/v1/completions", JSON "-d '{\"prompt\": \"Once\", \"logprobs\": 99}'");
        CHECK(code == 400 && strstr(b, "'logprobs' must be in [0, 20]"), "%d %s", code, b);
        free(b);
        code = http(&b, "/metrics", "%s", "");
        // the prefix is the templated system text: "<|im_start|>system\nOnce upon a time<|im_end|>\n"
        CHECK(code == 200 && strstr(b, "intact_prefix_hits_total 1\n") && strstr(b, "intact_requests_total 4"), "%s", b);
        free(b);
        CHECK(srv_stop() == 0, "server exit status");
    }
    TEST_CASE("one slot, no queue: 503 while busy; a disconnected client (stream or not) frees its slot") {
        if (!have_curl) break;
        snprintf(args, sizeof args, "-m '%s' -z '%s' --parallel 1 --queue 0", m_en, m_tok);
        CHECK(srv_start(args) == 0, "start: %s", read_path(srv_err, NULL));
        if (!srv_port) break;
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "curl -s -m 30 -o /dev/null http://127.0.0.1:%d/v1/completions -d "
                 "'{\"prompt\": \"The\", \"max_tokens\": 500, \"temperature\": 0}' & echo $!", srv_port);
        FILE *p = popen(cmd, "r");
        int bg = 0;
        if (p) { if (fscanf(p, "%d", &bg) != 1) bg = 0; pclose(p); }
        usleep(400000);
        int code = http(&b, "/v1/completions", JSON "-d '{\"prompt\": \"The\", \"max_tokens\": 1}'");
        CHECK(code == 503 && strstr(b, "busy"), "%d %s", code, b);
        free(b);
        // a non-streamed request runs to its end: wait for the first one (it holds the slot until then)
        for (int i = 0; i < 300 && bg > 0 && kill(bg, 0) == 0; i++) usleep(100000);
        // now a stream whose client goes away after 0.3 s: the slot must be free long before 500 tokens
        snprintf(cmd, sizeof cmd, "curl -s -N -m 0.3 -o /dev/null http://127.0.0.1:%d/v1/completions -d "
                 "'{\"prompt\": \"The\", \"max_tokens\": 500, \"temperature\": 0, \"stream\": true}'", srv_port);
        usleep(300000);
        CHECK(system(cmd) != -1, "curl");
        usleep(300000);
        code = http(&b, "/v1/completions", JSON "-d '{\"prompt\": \"The\", \"max_tokens\": 1}'");
        CHECK(code == 200, "slot not freed after the client left: %d %s", code, b);
        free(b);
        // the same for a non-streamed request: the server checks the socket between tokens
        snprintf(cmd, sizeof cmd, "curl -s -m 0.3 -o /dev/null http://127.0.0.1:%d/v1/completions -d "
                 "'{\"prompt\": \"The\", \"max_tokens\": 500, \"temperature\": 0}'", srv_port);
        CHECK(system(cmd) != -1, "curl");
        usleep(300000);
        code = http(&b, "/v1/completions", JSON "-d '{\"prompt\": \"The\", \"max_tokens\": 1}'");
        CHECK(code == 200, "slot not freed after a non-streamed client left: %d %s", code, b);
        free(b);
        CHECK(srv_stop() == 0, "server exit status");
    }
    TEST_CASE("bad serve flags are usage errors (exit 2, one line)") {
        const char *flags[] = {"--kv-budget 0", "--kv-budget -5", "--kv-budget abc", "--kv-budget 5X", "--kv-budget 1e30G",
                               "--kv-budget", "--api-key ''", "--ikv x.ikv --system hi", "--ikv-base x.bin",
                               "--chat-template nope", "--parallel 0"};
        for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
            result r = run("serve -m '%s' -z '%s' %s", m_st, m_tok, flags[i]);
            CHECK(r.rc == 2 && one_line_with(r.err, "intact serve"), "%s: rc %d '%s'", flags[i], r.rc, r.err);
            rfree(&r);
        }
    }
    TEST_CASE("--kv-budget: a request that can never fit is 400, one that does not fit now waits, a full queue is 503") {
        if (!have_curl) break;
        // english-12m, fp32 cache: 8 layers x 2 x kv_dim 128 x 4 bytes = 8192 bytes per position, so
        // 3.5 MiB holds 448 positions. "The" is 2 tokens with BOS: max_tokens 400 reserves 402 x 8192 =
        // 3293184 bytes (fits once, not twice; ~1 s of decoding); max_tokens 500 needs 3.92 MiB (never fits).
        snprintf(args, sizeof args, "-m '%s' -z '%s' --parallel 2 --queue 1 --kv-budget 3.5M", m_en, m_tok);
        CHECK(srv_start(args) == 0, "start: %s", read_path(srv_err, NULL));
        if (!srv_port) break;
        int code = http(&b, "/v1/completions", JSON "-d '{\"prompt\": \"The\", \"max_tokens\": 500}'");
        CHECK(code == 400 && strstr(b, "needs 3.92 MiB of KV cache") && strstr(b, "--kv-budget is 3.50 MiB"), "%d %s", code, b);
        free(b);
        char cmd[2048], outs[2][64];
        for (int i = 0; i < 2; i++) {
            snprintf(outs[i], sizeof outs[i], "/tmp/intact_serve_budget_%d_%d.json", (int)getpid(), i);
            snprintf(cmd, sizeof cmd, "curl -s -m 60 -o '%s' http://127.0.0.1:%d/v1/completions -d "
                     "'{\"prompt\": \"The\", \"max_tokens\": 400, \"temperature\": 0}' &", outs[i], srv_port);
            CHECK(system(cmd) == 0, "curl");
            usleep(150000);
        }
        code = http(&b, "/metrics", "%s", "");
        // the second request holds the other slot and waits for budget: one reservation, queue 1
        CHECK(code == 200 && strstr(b, "intact_kv_budget_bytes 3670016\n") && strstr(b, "intact_kv_bytes_reserved 3293184\n") &&
              strstr(b, "intact_queue_depth 1\n") && strstr(b, "intact_slots_busy 2\n"), "%s", b);
        free(b);
        code = http(&b, "/v1/completions", JSON "-d '{\"prompt\": \"The\", \"max_tokens\": 1}'");
        CHECK(code == 503 && strstr(b, "busy"), "%d %s", code, b);
        free(b);
        for (int i = 0; i < 300; i++) {   // both answers, one after the other
            char *a0 = read_path(outs[0], NULL), *a1 = read_path(outs[1], NULL);
            int done = a0 && a1 && strstr(a0, "usage") && strstr(a1, "usage");
            if (done) CHECK(!strcmp(strstr(a0, "\"choices\""), strstr(a1, "\"choices\"")), "'%s' vs '%s'", a0, a1);
            free(a0);
            free(a1);
            if (done) break;
            usleep(100000);
        }
        code = http(&b, "/metrics", "%s", "");
        CHECK(code == 200 && strstr(b, "intact_kv_bytes_reserved 0\n") && strstr(b, "intact_requests_total 4\n"), "%s", b);
        free(b);
        for (int i = 0; i < 2; i++) unlink(outs[i]);
        CHECK(srv_stop() == 0, "server exit status");
    }
    TEST_CASE("the official openai npm client: chat, stream, two sessions at once") {
        char mod[1024];
        const char *env = getenv("OPENAI_MODULE");
        char cwd[512];
        snprintf(mod, sizeof mod, "%s", env && *env ? env : getcwd(cwd, sizeof cwd) ? cwd : ".");
        if (!(env && *env)) strncat(mod, "/build/npm/node_modules/openai", sizeof mod - strlen(mod) - 1);
        struct stat sb;
        if (system("node --version >/dev/null 2>&1") != 0 || stat(mod, &sb) != 0 || !have_curl) {
            printf("skip %s: needs node and the openai package at %s (npm install --prefix build/npm openai)\n", th_case, mod);
            th_case_skipped = 1;
            break;
        }
        snprintf(args, sizeof args, "-m '%s' -z '%s' --parallel 2", m_st, m_tok);
        CHECK(srv_start(args) == 0, "start");
        if (!srv_port) break;
        result want = run("run -m '%s' -z '%s' -p 'Once upon a time' -n 24 --temp 0", m_st, m_tok);
        result want2 = run("run -m '%s' -z '%s' -p 'The dog' -n 24 --temp 0", m_st, m_tok);
        char node[2048];
        snprintf(node, sizeof node, "OPENAI_MODULE='%s' node tests/serve_openai.js %d", mod, srv_port);
        FILE *np = popen(node, "r");
        char *out = np ? slurp(np) : NULL;
        int st = np ? pclose(np) : -1;
        CHECK(st == 0 && out, "node failed (%d): %s", st, out ? out : "");
        if (out) {
            // lines: chat, stream, session A, session B (each the generated text, JSON-escaped)
            char exp1[1024], exp2[1024];
            snprintf(exp1, sizeof exp1, "%.*s", (int)(strlen(want.out) - 17), want.out + 16);
            snprintf(exp2, sizeof exp2, "%.*s", (int)(strlen(want2.out) - 8), want2.out + 7);
            char line[4][1024] = {"", "", "", ""};
            char *s = out;
            for (int i = 0; i < 4 && s; i++) {
                char *e = strchr(s, '\n');
                snprintf(line[i], sizeof line[i], "%.*s", e ? (int)(e - s) : (int)strlen(s), s);
                s = e ? e + 1 : NULL;
            }
            CHECK(!strcmp(line[0], exp1), "chat '%s' vs run '%s'", line[0], exp1);
            CHECK(!strcmp(line[1], exp1), "stream '%s' vs run '%s'", line[1], exp1);
            CHECK(!strcmp(line[2], exp1), "session A '%s' vs run '%s'", line[2], exp1);
            CHECK(!strcmp(line[3], exp2), "session B '%s' vs run '%s'", line[3], exp2);
        }
        free(out);
        rfree(&want);
        rfree(&want2);
        CHECK(srv_stop() == 0, "server exit status");
    }
    if (srv_pid > 0) srv_stop();
    unlink(srv_err);
    unlink(body_file);
    cli_harness_done();
    return th_finish("test_serve");
}
