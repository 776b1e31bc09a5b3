// Chat templates (src/serve/template.c): each family's rendering against a hand-written expected
// prompt (the layout of the family's Hugging Face Jinja template with add_generation_prompt), the
// detection of the family from real tokenizer.chat_template texts, the system-prompt prefix being
// the start of every conversation that opens with it, the turn-by-turn pieces of `intact chat`
// adding up to the same text as the whole-conversation rendering of `intact serve`, and bad ids.
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "serve/template.h"

static const tmpl_msg k_sys = {"system", "Be brief."}, k_u1 = {"user", "Hi"}, k_a1 = {"assistant", "Hello."},
                      k_u2 = {"user", "Why?"};

static int renders(const char *tmpl, const tmpl_msg *m, int n, const char *want) {
    char *got = tmpl_render(tmpl_id(tmpl), m, n);
    int ok = got && !strcmp(got, want);
    if (!ok) printf("  %s: got '%s'\n  want '%s'\n", tmpl, got ? got : "(null)", want);
    free(got);
    return ok;
}

int main(void) {
    TEST_CASE("each family renders as its Jinja template lays the conversation out") {
        tmpl_msg su[2] = {k_sys, k_u1}, suau[4] = {k_sys, k_u1, k_a1, k_u2}, uau[3] = {k_u1, k_a1, k_u2}, u[1] = {k_u1};
        CHECK(renders("chatml", su, 2,
                      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"),
              "chatml");
        CHECK(renders("chatml", uau, 3,
                      "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nWhy?"
                      "<|im_end|>\n<|im_start|>assistant\n"),
              "chatml, multi-turn");
        // Llama-2: the system text opens the first [INST]; the reply follows " [/INST]" after a space.
        // (HF puts <s> before every [INST]; the tokenizer adds the first, later ones are left out.)
        CHECK(renders("llama-2", suau, 4, "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello. </s>[INST] Why? [/INST]"),
              "llama-2");
        CHECK(renders("llama-3", u, 1,
                      "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant"
                      "<|end_header_id|>\n\n"),
              "llama-3");
        CHECK(renders("mistral", uau, 3, "[INST] Hi [/INST]Hello.</s>[INST] Why? [/INST]"), "mistral");
        CHECK(renders("mistral", su, 2, "[INST] Be brief.\n\nHi [/INST]"), "mistral, system folded into [INST]");
        CHECK(renders("zephyr", su, 2, "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\n"), "zephyr");
        CHECK(renders("gemma", uau, 3,
                      "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n"
                      "<start_of_turn>user\nWhy?<end_of_turn>\n<start_of_turn>model\n"),
              "gemma");
        CHECK(renders("plain", suau, 4, "Be brief.\n\nHi\n\nHello.\n\nWhy?"), "plain");
    }

    TEST_CASE("the family is detected from real tokenizer.chat_template texts") {
        static const char *const cases[][2] = {
            // TinyLlama-1.1B-Chat (zephyr)
            {"{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + "
             "eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}"
             "\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
             "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}",
             "zephyr"},
            // Qwen2-Instruct (ChatML)
            {"{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>"
             "system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
             "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>"
             "assistant\n' }}{% endif %}",
             "chatml"},
            // Meta-Llama-3-Instruct
            {"{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' "
             "+ message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 "
             "== 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}",
             "llama-3"},
            // Llama-2-chat
            {"{% if messages[0]['role'] == 'system' %}{% set system_message = '<<SYS>>\\n' + messages[0]['content'] | "
             "trim + '\\n<</SYS>>\\n\\n' %}{% endif %}{{ bos_token + '[INST] ' + content | trim + ' [/INST]' }}",
             "llama-2"},
            // Mistral-7B-Instruct-v0.1
            {"{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + "
             "message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + "
             "eos_token}}{% endif %}{% endfor %}",
             "mistral"},
            // Gemma-it
            {"{{ bos_token }}{% for message in messages %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim "
             "+ '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}",
             "gemma"},
            {"{{ messages[0]['content'] }}", "plain"},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            CHECK(!strcmp(tmpl_detect(cases[i][0]), cases[i][1]), "case %zu: %s, want %s", i, tmpl_detect(cases[i][0]),
                  cases[i][1]);
        CHECK(!strcmp(tmpl_detect(NULL), "plain"), "no template");
    }

    TEST_CASE("the system prompt's text starts every conversation that opens with it; chat's turns add up to serve's text") {
        for (int t = 0; t < TMPL_N; t++) {
            tmpl_msg su[2] = {k_sys, k_u1}, u[1] = {k_u1};
            char *whole = tmpl_render(t, su, 2), *sys = tmpl_system(t, k_sys.content);
            char *turn = tmpl_user_turn(t, k_u1.content, 1, 1), *alone = tmpl_render(t, u, 1);
            char *first = tmpl_user_turn(t, k_u1.content, 0, 0);
            CHECK(whole && sys && turn && alone && first, "%s: out of memory", tmpl_name(t));
            if (!(whole && sys && turn && alone && first)) continue;
            CHECK(!strncmp(whole, sys, strlen(sys)), "%s: '%s' does not start with the system text '%s'", tmpl_name(t),
                  whole, sys);
            CHECK(!strcmp(whole + strlen(sys), turn), "%s: system + turn '%s%s' != '%s'", tmpl_name(t), sys, turn, whole);
            CHECK(!strcmp(first, alone), "%s: first turn '%s' != '%s'", tmpl_name(t), first, alone);
            free(whole), free(sys), free(turn), free(alone), free(first);
        }
    }

    TEST_CASE("unknown names and ids are refused") {
        CHECK(tmpl_id("nope") == -1 && tmpl_id(NULL) == -1 && tmpl_id("ChatML") == -1, "names");
        CHECK(tmpl_name(-1) == NULL && tmpl_name(TMPL_N) == NULL, "ids");
        tmpl_msg u[1] = {k_u1};
        CHECK(tmpl_render(-1, u, 1) == NULL && tmpl_render(TMPL_N, u, 1) == NULL && tmpl_system(99, "x") == NULL &&
                  tmpl_user_turn(-3, "x", 0, 0) == NULL,
              "render with a bad id");
        CHECK(!strcmp(tmpl_reply_end(-1), ""), "reply end of a bad id");
    }
    return th_finish("test_template");
}
