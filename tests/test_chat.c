// `intact chat` driven through standard input: the first reply equals `intact run` (greedy), a
// conversation saved with /save and restored with /load continues exactly as the uninterrupted
// one, damaged session files are refused with one line, bad flags are usage errors.
#include "cli_harness.h"

static int nth_line(const char *s, int n, char *out, size_t cap) {
    for (int i = 0; i < n && s; i++) { s = strchr(s, '\n'); if (s) s++; }
    if (!s) return -1;
    snprintf(out, cap, "%.*s", (int)strcspn(s, "\n"), s);
    return 0;
}

int main(void) {
    char m_st[1024], m_tok[1024], in[64] = "/tmp/intact_chat_in_XXXXXX", sess[64] = "/tmp/intact_chat_sess_XXXXXX";
    th_shared("models/stories260K.bin", m_st, sizeof m_st);
    th_shared("models/tok512.bin", m_tok, sizeof m_tok);
    if (th_skip_program("test_chat", "models/stories260K.bin", NULL)) return 0;
    cli_harness_init();
    close(mkstemp(in));
    close(mkstemp(sess));
    char buf[4096], a[1024], b[1024];
    TEST_CASE("first reply equals intact run; /save + /load continues the same conversation") {
        result r = run("run -m '%s' -z '%s' -p 'Once upon a time' -n 20 --temp 0", m_st, m_tok);
        snprintf(buf, sizeof buf, "Once upon a time\nThe dog\nThe cat\n");
        write_path(in, buf, strlen(buf));
        result c1 = run_in(in, "chat -m '%s' -z '%s' -n 20 --temp 0", m_st, m_tok);
        snprintf(buf, sizeof buf, "Once upon a time\nThe dog\n/save %s\n/reset\nHello\n/load %s\nThe cat\n", sess, sess);
        write_path(in, buf, strlen(buf));
        result c2 = run_in(in, "chat -m '%s' -z '%s' -n 20 --temp 0", m_st, m_tok);
        CHECK(r.rc == 0 && c1.rc == 0 && c2.rc == 0, "rc %d %d %d: %s", r.rc, c1.rc, c2.rc, c2.err);
        nth_line(c1.out, 0, a, sizeof a);
        CHECK(!strncmp(r.out, "Once upon a time", 16) && !strncmp(r.out + 16, a, strlen(a)) &&
              strlen(r.out) == 16 + strlen(a) + 1, "chat '%s' vs run '%s'", a, r.out);
        nth_line(c1.out, 2, a, sizeof a);
        nth_line(c2.out, 3, b, sizeof b);
        CHECK(a[0] && !strcmp(a, b), "after /load: '%s' vs uninterrupted '%s' (out '%s')", b, a, c2.out);
        CHECK(strstr(c2.err, "(saved") && strstr(c2.err, "(loaded"), "%s", c2.err);
        rfree(&r); rfree(&c1); rfree(&c2);
    }
    TEST_CASE("damaged session files are refused, the chat goes on") {
        const char *bad[] = {"garbage\n", "intact-chat 1\nfingerprint 0000000000000001\ntokens 1\n1\nend\n",
                             "intact-chat 1\nfingerprint %s\ntokens 2\n1 99999\nend\n",
                             "intact-chat 1\nfingerprint %s\ntokens 3\n1 2\n"};
        // this model's fingerprint, from a good save
        snprintf(buf, sizeof buf, "Hi\n/save %s\n", sess);
        write_path(in, buf, strlen(buf));
        result s = run_in(in, "chat -m '%s' -z '%s' -n 2 --temp 0", m_st, m_tok);
        char *saved = read_path(sess, NULL), fp[32] = "";
        if (saved && strstr(saved, "fingerprint ")) sscanf(strstr(saved, "fingerprint ") + 12, "%31s", fp);
        CHECK(fp[0], "no fingerprint in '%s'", saved ? saved : "");
        const char *why[] = {"not an intact chat session", "another model", "bad or missing token id", "bad or missing"};
        for (int i = 0; i < 4; i++) {
            char file[512];
            snprintf(file, sizeof file, bad[i], fp);
            write_path(sess, file, strlen(file));
            snprintf(buf, sizeof buf, "/load %s\nOnce upon a time\n", sess);
            write_path(in, buf, strlen(buf));
            result r = run_in(in, "chat -m '%s' -z '%s' -n 5 --temp 0", m_st, m_tok);
            CHECK(r.rc == 0 && strstr(r.err, why[i]) && strstr(r.out, "there"), "%d: rc %d err '%s' out '%s'", i, r.rc,
                  r.err, r.out);
            rfree(&r);
        }
        free(saved);
        rfree(&s);
    }
    TEST_CASE("bad flags are usage errors; --system builds the prefix") {
        const char *flags[] = {"--chat-template nope", "--ikv x.ikv --system hi", "--ikv-base x.bin", "--top-k -2",
                               "--system a --system-file b"};
        for (int i = 0; i < 5; i++) {
            result r = run("chat -m '%s' -z '%s' %s", m_st, m_tok, flags[i]);
            CHECK(r.rc == 2 && one_line_with(r.err, "intact chat"), "%s: rc %d '%s'", flags[i], r.rc, r.err);
            rfree(&r);
        }
        write_path(in, "there was\n", 10);
        result r = run_in(in, "chat -m '%s' -z '%s' --system 'Once upon a time' -n 8 --temp 0", m_st, m_tok);
        CHECK(r.rc == 0 && strlen(r.out) > 3, "rc %d out '%s' err '%s'", r.rc, r.out, r.err);
        rfree(&r);
    }
    unlink(in);
    unlink(sess);
    cli_harness_done();
    return th_finish("test_chat");
}
