#include <stdio.h>

#include "cli/args.h"
#include "cli/common.h"

int cmd_info(int argc, char **argv) {
    const char *model = NULL, *tok = NULL;
    int json = 0, tensors = 0;
    const cli_opt opts[] = {
        {"--model", "-m", ARG_STR | ARG_REQUIRED, &model, "PATH", "model file (GGUF or llama2.c .bin)", 0, 0},
        {"--tokenizer", "-z", ARG_STR, &tok, "PATH", "llama2.c tokenizer.bin", 0, 0},
        {"--tensors", NULL, ARG_FLAG, &tensors, NULL, "list every tensor", 0, 0},
        {"--json", NULL, ARG_FLAG, &json, NULL, "print JSON", 0, 0},
    };
    int rc = cli_parse("info", "-m MODEL [options]", opts, 4, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    intact_model *m = cli_load_model("info", model, tok);
    if (!m) return 1;
    intact_model_info in;
    intact_model_get_info(m, &in);
    int nt = intact_model_n_tensors(m);
    // Count tensors per storage type for the summary line.
    const char *types[8] = {0};
    int counts[8] = {0}, ntypes = 0;
    for (int i = 0; i < nt; i++) {
        intact_tensor_info ti;
        intact_model_tensor(m, i, &ti);
        int k = 0;
        while (k < ntypes && types[k] != ti.type) k++;
        if (k == ntypes && ntypes < 8) types[ntypes++] = ti.type;
        if (k < 8) counts[k]++;
    }
    if (json) {
        printf("{\"format\":\"%s\",\"arch\":\"%s\",\"name\":", in.format, in.arch);
        cli_json_str(stdout, in.name);
        printf(",\"n_vocab\":%d,\"dim\":%d,\"hidden_dim\":%d,\"n_layers\":%d,\"n_heads\":%d,"
               "\"n_kv_heads\":%d,\"head_dim\":%d,\"ctx_len\":%d,\"rope_base\":%g,\"norm_eps\":%g,"
               "\"rope_style\":\"%s\",\"tied_embeddings\":%s,\"qkv_bias\":%s,\"n_params\":%lld,"
               "\"weight_bytes\":%llu,\"tokenizer\":\"%s\",\"bos_id\":%d,\"eos_id\":%d,\"tensor_types\":{",
               in.n_vocab, in.dim, in.hidden_dim, in.n_layers, in.n_heads, in.n_kv_heads, in.head_dim,
               in.ctx_len, (double)in.rope_base, (double)in.norm_eps, in.rope_style ? "neox" : "norm",
               in.tied_embeddings ? "true" : "false", in.has_qkv_bias ? "true" : "false",
               (long long)in.n_params, (unsigned long long)in.weight_bytes, in.tokenizer, in.bos_id, in.eos_id);
        for (int k = 0; k < ntypes; k++) printf("%s\"%s\":%d", k ? "," : "", types[k], counts[k]);
        printf("}");
        if (tensors) {
            printf(",\"tensors\":[");
            for (int i = 0; i < nt; i++) {
                intact_tensor_info ti;
                intact_model_tensor(m, i, &ti);
                printf("%s{\"name\":", i ? "," : "");
                cli_json_str(stdout, ti.name);
                printf(",\"type\":\"%s\",\"ne\":[", ti.type);
                for (int d = 0; d < ti.n_dims; d++) printf("%s%lld", d ? "," : "", (long long)ti.ne[d]);
                printf("],\"bytes\":%llu}", (unsigned long long)ti.nbytes);
            }
            printf("]");
        }
        printf("}\n");
    } else {
        printf("model        %s (%s, %s)\n", in.name, in.format, in.arch);
        char wb[32];
        printf("parameters   %lld (%s of weights)\n", (long long)in.n_params,
               cli_human_bytes(wb, sizeof wb, (double)in.weight_bytes));
        printf("shape        dim %d, hidden %d, layers %d, heads %d, kv heads %d, head dim %d\n", in.dim,
               in.hidden_dim, in.n_layers, in.n_heads, in.n_kv_heads, in.head_dim);
        printf("context      %d tokens, RoPE base %g (%s pairs), RMSNorm eps %g\n", in.ctx_len,
               (double)in.rope_base, in.rope_style ? "neox half" : "adjacent", (double)in.norm_eps);
        printf("vocab        %d, tokenizer %s, bos %d, eos %d\n", in.n_vocab, in.tokenizer, in.bos_id, in.eos_id);
        printf("embeddings   %s%s\n", in.tied_embeddings ? "tied to the output head" : "separate output head",
               in.has_qkv_bias ? ", q/k/v biases" : "");
        printf("tensors      %d:", nt);
        for (int k = 0; k < ntypes; k++) printf(" %d %s", counts[k], types[k]);
        printf("\n");
        for (int i = 0; tensors && i < nt; i++) {
            intact_tensor_info ti;
            intact_model_tensor(m, i, &ti);
            printf("  %-32s %-5s [", ti.name, ti.type);
            for (int d = 0; d < ti.n_dims; d++) printf("%s%lld", d ? ", " : "", (long long)ti.ne[d]);
            printf("] %llu bytes\n", (unsigned long long)ti.nbytes);
        }
    }
    intact_model_free(m);
    return 0;
}
