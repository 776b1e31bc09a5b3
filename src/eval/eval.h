// Shared pieces of the text evaluations (perplexity, KL divergence).
#ifndef IT_EVAL_EVAL_H
#define IT_EVAL_EVAL_H

#include "intact.h"

// Tokenizes text (no BOS) and cuts it into chunks of n_ctx-1 tokens; a text shorter than one chunk
// gives one short chunk. *tokens is malloc'd. Returns the chunk count, or -1.
int eval_chunks(const intact_model *m, const char *text, size_t len, const intact_eval_params *p,
                int32_t **tokens, int *chunk_len, intact_error *err);

// log-softmax of one row into out (n), computed in double for stable sums over big vocabularies.
void eval_log_softmax(const float *logits, int n, double *out);

// Evaluates a chunk of cl text tokens after its head (see ppl.c); with use_prefix_kv the prefix's
// stored K/V are installed instead of being computed. eval_score_logits gives the logits that
// score text token i of the chunk.
int eval_run_chunk(intact_ctx *ctx, const intact_model *m, const intact_prefix *prefix, int use_prefix_kv,
                   const int32_t *chunk, int cl, int32_t *buf, intact_error *err);
const float *eval_score_logits(const intact_ctx *ctx, const intact_prefix *prefix, int use_prefix_kv, int i);

#endif
