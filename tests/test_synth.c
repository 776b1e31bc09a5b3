// Loads a GGUF written by the project's independent synthetic writer (../shared/tools/synth-gguf.py,
// real LLaMA shapes, random F16 weights, 32000-token SentencePiece-style vocabulary) and checks that
// metadata, tokenizer and both forward paths (batched prefill, token-by-token decode) agree.
#include <math.h>

#include "harness.h"
#include "intact.h"

int main(void) {
    if (th_skip_program("test_synth", "tools/synth-gguf.py", NULL)) return 0;
    char tool[1024], cmd[2300];
    const char *path = "build/synth-small.gguf";
    th_shared("tools/synth-gguf.py", tool, sizeof tool);
    snprintf(cmd, sizeof cmd, "python3 %s %s --preset small --seed 3 > /dev/null", tool, path);
    intact_model *m = NULL;
    TEST_CASE("synth-gguf.py small preset loads") {
        CHECK(system(cmd) == 0, "%s failed", cmd);
        intact_error err = {0, ""};
        m = intact_model_load(path, NULL, &err);
        CHECK(m != NULL, "%s", err.msg);
    }
    if (!m) return th_finish("test_synth");
    TEST_CASE("metadata matches the writer's preset") {
        intact_model_info in;
        intact_model_get_info(m, &in);
        CHECK(in.dim == 512 && in.hidden_dim == 1376 && in.n_layers == 4 && in.n_heads == 8 &&
              in.n_kv_heads == 8 && in.n_vocab == 32000 && in.ctx_len == 1024, "shape");
        CHECK(!in.tied_embeddings, "the writer stores output.weight");
        CHECK(in.bos_id == 1 && in.eos_id == 2, "bos %d eos %d", in.bos_id, in.eos_id);
        CHECK(in.n_params == 32000LL * 512 * 2 + 4LL * (4 * 512 * 512 + 3 * 512 * 1376 + 2 * 512) + 512,
              "params %lld", (long long)in.n_params);
    }
    TEST_CASE("tokenizer from GGUF metadata: byte fallback for text the vocabulary lacks") {
        int32_t ids[16];
        intact_error err = {0, ""};
        int n = intact_tokenize(m, "hi", 2, 1, ids, 16, &err);
        // The vocabulary has no real pieces: BOS, then bytes ' ', 'h', 'i' as <0x20> <0x68> <0x69>.
        CHECK(n == 4 && ids[0] == 1 && ids[1] == 3 + 0x20 && ids[2] == 3 + 'h' && ids[3] == 3 + 'i',
              "n %d", n);
    }
    TEST_CASE("batched prefill equals token-by-token decode") {
        intact_ctx_params p = {64, 2, 1};
        intact_error err = {0, ""};
        intact_ctx *a = intact_ctx_new(m, &p, &err), *b = intact_ctx_new(m, &p, &err);
        int32_t toks[9] = {1, 450, 4996, 17354, 1701, 29889, 3, 31999, 100};
        CHECK(a && b && intact_ctx_eval(a, toks, 9, &err) == 0, "%s", err.msg);
        double worst = 0, scale = 0;
        for (int t = 0; a && b && t < 9; t++) {
            CHECK(intact_ctx_eval(b, &toks[t], 1, &err) == 0, "%s", err.msg);
            const float *la = intact_ctx_logits(a, t), *lb = intact_ctx_logits(b, 0);
            for (int v = 0; v < 32000; v++) {
                CHECK(isfinite(la[v]), "non-finite logit");
                double d = fabs((double)la[v] - lb[v]);
                worst = d > worst ? d : worst;
                scale = fabs(la[v]) > scale ? fabs(la[v]) : scale;
            }
        }
        printf("  max |logit| %.3g, batch vs decode max-abs %.3g\n", scale, worst);
        CHECK(worst <= 1e-5 * (scale > 1 ? scale : 1), "batch and decode differ by %g", worst);
        intact_ctx_free(a);
        intact_ctx_free(b);
    }
    intact_model_free(m);
    remove(path);
    return th_finish("test_synth");
}
