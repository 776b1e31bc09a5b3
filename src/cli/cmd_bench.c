// `intact bench`: prefill and decode speed, decode bytes/token against this machine's measured
// read bandwidth (same run, same threads), and peak RSS.
#include <stdio.h>
#include <stdlib.h>

#include "cli/args.h"
#include "cli/common.h"
#include "cli/kv_flags.h"
#include "cli/quant_flags.h"

// "A,B": two whole numbers of bytes in [0, 65536].
static int parse_ab(const char *s, int out[2]) {
    char *end;
    for (int i = 0; i < 2; i++) {
        if (*s < '0' || *s > '9') return -1;   // strtol would take a sign or spaces
        long v = strtol(s, &end, 10);
        if (v > 65536 || end - s > 6 || *end != (i == 0 ? ',' : '\0')) return -1;
        out[i] = (int)v;
        s = end + 1;
    }
    return 0;
}

int cmd_bench(int argc, char **argv) {
    const char *model = NULL, *tok = NULL, *ikv = NULL, *ab_arg = NULL;
    int threads = cli_default_threads(), n_prompt = 128, n_gen = 64, json = 0, no_bw = 0, n_ctx = 0;
    cli_load_mode load = {0, 0, 0};
    quant_flags qf;
    quant_flags_init(&qf);
    kv_flags kvf;
    cli_opt opts[12 + QUANT_N_OPTS + KV_N_OPTS] = {
        CLI_OPT_LOAD_MODE(&load),
        {"--ikv", NULL, ARG_STR, &ikv, "P.ikv", "IntactKV prefix in front of the prompt", 0, 0},
        {"--model", "-m", ARG_STR | ARG_REQUIRED, &model, "PATH", "model file (GGUF or llama2.c .bin)", 0, 0},
        {"--tokenizer", "-z", ARG_STR, &tok, "PATH", "llama2.c tokenizer.bin (not needed)", 0, 0},
        {"--threads", "-t", ARG_INT, &threads, "N", "threads (default: online CPUs, at most 16)", 1, 256},
        {"--n-prompt", "-p", ARG_INT, &n_prompt, "N", "prefill tokens (default 128)", 1, 1 << 20},
        {"--n-gen", "-n", ARG_INT, &n_gen, "N", "decoded tokens (default 64)", 0, 1 << 20},
        {"--no-bandwidth", NULL, ARG_FLAG, &no_bw, NULL, "skip the memory bandwidth measurement", 0, 0},
        {"--json", NULL, ARG_FLAG, &json, NULL, "print JSON", 0, 0},
        {"--ctx-size", "-c", ARG_INT, &n_ctx, "N", "context size (default: what the run needs; may exceed the "
         "model's training context, for long-context speed)", 1, 1 << 20},
        {"--prefetch-ab", NULL, ARG_STR, &ab_arg, "A,B", "alternate decode steps in pairs between software prefetch "
         "distances A and B bytes (0..65536) and compare their times: tuning on a machine whose bandwidth swings "
         "(docs/speed.md)", 0, 0},
    };
    int n_opts = quant_flags_add(&qf, opts, 12, 0);
    n_opts = kv_flags_add(&kvf, opts, n_opts);
    int rc = cli_parse("bench", "-m MODEL [-t N] [-p 128] [-n 64] [--json]", opts, n_opts, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    if (quant_flags_check("bench", &qf, opts, n_opts, argc, argv) != 0) return 2;
    int ab[2] = {0, 0};
    if (ab_arg && parse_ab(ab_arg, ab) != 0) {
        fprintf(stderr, "intact bench: --prefetch-ab expects two distances in bytes, A,B, each in [0, 65536]; "
                "got '%s'\n", ab_arg);
        return 2;
    }
    if (ab_arg && n_gen < 4) {
        fprintf(stderr, "intact bench: --prefetch-ab needs -n 4 or more (one A A B B block of decode steps)\n");
        return 2;
    }
    int bad_kv;
    const intact_kv_params *kvp = kv_flags_get("bench", &kvf, 0, &bad_kv);
    if (bad_kv) return 2;
    if (quant_flags_rewrites(&qf) && !load.no_mmap) load.mmap = 1;
    intact_model *m = cli_load_model_ex("bench", model, tok, &load);
    if (m && quant_flags_apply("bench", &qf, m, threads, json, NULL) != 0) { intact_model_free(m); m = NULL; }
    if (!m) return 1;
    intact_model_info in;
    intact_model_get_info(m, &in);
    intact_prefix *prefix = ikv ? cli_load_prefix("bench", ikv, m) : NULL;
    if (ikv && !prefix) { intact_model_free(m); return 1; }
    intact_bench_params p = {n_prompt, n_gen, threads, 1, !no_bw, prefix, kvp, n_ctx, ab_arg != NULL, {ab[0], ab[1]}};
    cli_warn_ctx("bench", n_ctx, in.ctx_len);
    intact_bench_result r;
    intact_error err = {0, ""};
    int brc = intact_bench(m, &p, &r, &err);
    int n_pre = prefix ? intact_prefix_n_tokens(prefix) : 0;
    intact_prefix_free(prefix);
    if (brc != 0) {
        fprintf(stderr, "intact bench: %s\n", err.msg);
        intact_model_free(m);
        return 1;
    }
    double rss = cli_peak_rss_mb();
    double bw = r.mem_bw_gb_s, frac = r.bw_fraction;
    if (json) {
        printf("{\"model\":");
        cli_json_str(stdout, in.name);
        printf(",\"threads\":%d,\"n_prompt\":%d,\"n_gen\":%d,\"prefill_tok_s\":%.3f,\"decode_tok_s\":%.3f,"
               "\"weight_bytes\":%llu,\"decode_bytes_per_token\":%.0f,\"decode_gb_s\":%.3f,"
               "\"mem_bw_gb_s\":%.3f,\"bw_fraction\":%.4f,\"peak_rss_mb\":%.1f,\"kv_bytes\":%llu,"
               "\"kv_bytes_vs_f16\":%.4f,\"kv_bytes_per_token_layer\":%.1f,\"huge_page_fraction\":%.4f,"
               "\"weights_mapped\":%s",
               threads, n_prompt, n_gen, r.prefill_tok_s, r.decode_tok_s, (unsigned long long)in.weight_bytes,
               r.decode_bytes_per_token, r.decode_gb_s, bw, frac, rss, (unsigned long long)r.kv_bytes,
               r.kv_bytes_vs_f16, (double)r.kv_bytes / (n_pre + n_prompt + n_gen) / in.n_layers,
               in.huge_page_fraction, load.copied ? "false" : "true");
        if (ab_arg)
            printf(",\"prefetch_ab\":[%d,%d],\"ab_step_ms\":[%.4f,%.4f],\"ab_speed\":%.4f,\"ab_blocks\":%d", ab[0],
                   ab[1], r.ab_step_ms[0], r.ab_step_ms[1], r.ab_speed, r.ab_blocks);
        printf("}\n");
    } else {
        char wb[32];
        printf("model       %s, %s of weights, %d threads\n", in.name,
               cli_human_bytes(wb, sizeof wb, (double)in.weight_bytes), threads);
        printf("prefill     %d tokens: %.2f tok/s\n", n_prompt, r.prefill_tok_s);
        printf("decode      %d tokens: %.2f tok/s, %.1f MB read per token = %.2f GB/s\n", n_gen, r.decode_tok_s,
               r.decode_bytes_per_token / 1e6, r.decode_gb_s);
        if (bw > 0)
            printf("bandwidth   %.2f GB/s streaming the same weights (median probe); decode reaches %.0f%% of it "
                   "(median over 16-token segments, each against its adjacent probes)\n", bw, 100 * frac);
        int n_tok = n_pre + n_prompt + n_gen;
        printf("KV cache    %d tokens: %.2f MiB = %.1f bytes per token per layer (K+V, scales and zero points "
               "included), %.3f of an fp16 cache\n", n_tok, r.kv_bytes / 1048576.0,
               (double)r.kv_bytes / n_tok / in.n_layers, r.kv_bytes_vs_f16);
        printf("peak RSS    %.1f MiB (%s)\n", rss,
               load.copied ? "weights read into memory; --mmap maps the file instead"
                           : "weights are mmapped: pages of the file count once touched");
        if (ab_arg)
            printf("prefetch    A %d bytes: %.3f ms per step, B %d bytes: %.3f ms; B's speed against A %.4f "
                   "(median over %d A A B B blocks)\n", ab[0], r.ab_step_ms[0], ab[1], r.ab_step_ms[1], r.ab_speed,
                   r.ab_blocks);
        if (in.huge_page_fraction >= 0)
            printf("huge pages  %.0f%% of the weights are in 2 MiB pages (decode streams them; docs/speed.md)\n",
                   100 * in.huge_page_fraction);
    }
    intact_model_free(m);
    return 0;
}
