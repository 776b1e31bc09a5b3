// Line retrieval (LongEval), internals shared with the CLI and the tests: the prompt builder, the
// chat templates, the answer parser, and the evaluation with a per-trial report.
#ifndef IT_EVAL_RETRIEVAL_H
#define IT_EVAL_RETRIEVAL_H

#include <stdint.h>
#include "intact.h"

// Line ids are "<adjective>-<noun>" from two built-in lists of 48 words: at most 48 * 48 lines.
enum { RETRIEVAL_MAX_LINES = 48 * 48, RETRIEVAL_MAX_VALUE = 50000 };

// One trial: the record and the question (before any chat template).
typedef struct retrieval_case {
    char *text;          // malloc'd, NUL-terminated
    int n_lines;
    int asked;           // index of the asked line in the record
    int value;           // its REGISTER_CONTENT, 1..RETRIEVAL_MAX_VALUE
    char asked_id[32];   // e.g. "swift-baker"
} retrieval_case;

// Builds trial `trial` of a run seeded with `seed`: n_lines lines with unique ids and random values,
// the asked line drawn uniformly. The same (n_lines, seed, trial) always gives the same text.
int retrieval_build_case(int n_lines, uint64_t seed, int trial, retrieval_case *out, intact_error *err);
void retrieval_case_free(retrieval_case *c);

// The first integer of an answer: the first run of ASCII digits, as LongEval's \d+ reads it. Signs
// are ignored ("-5" reads 5: the record holds only positive values, so a stray '-' is not a different
// answer), leading zeros too; runs over 9 digits saturate at 1e9, which matches no record value.
// Returns 1 and sets *value when the text has a digit, else 0.
int retrieval_first_int(const char *s, long *value);

// The scoring rule of a trial: 1 when the answer's first integer (retrieval_first_int) is the asked
// line's value c->value, else 0. retrieval_eval counts exactly these.
int retrieval_score(const retrieval_case *c, const char *answer);

// Chat templates. The header tokens of llama3 and chatml are written as text ("<|eot_id|>") and
// mapped to their vocabulary ids by retrieval_tokenize when the vocabulary has a piece spelling them
// exactly; otherwise they stay ordinary text (a base model then just reads the markup).
enum retrieval_template { RT_NONE = 0, RT_LLAMA2, RT_LLAMA3, RT_CHATML };
int retrieval_template_parse(const char *name);       // -1 for an unknown name
// prompt wrapped as a single user turn followed by the assistant's opening; malloc'd (NULL: no memory).
char *retrieval_apply_template(int tmpl, const char *prompt);

// Tokenizes a templated prompt without BOS, the template markers as their special ids (see above).
// *ids is malloc'd; returns the count, or -1.
int retrieval_tokenize(const intact_model *m, const char *text, int32_t **ids, intact_error *err);

// What the evaluation reports after each trial (for progress lines).
typedef struct retrieval_trial {
    int trial, trials;       // 1-based trial number and total
    const retrieval_case *c;
    const char *answer;      // decoded greedy answer (may be cut at max_answer_tokens)
    int prompt_tokens;       // the templated prompt and its head ([BOS] or the IntactKV prefix)
    int correct;
} retrieval_trial;
typedef void (*retrieval_report)(void *user, const retrieval_trial *t);

// intact_eval_retrieval with a chat template and an optional per-trial report (p->progress is
// called as well).
int retrieval_eval(const intact_model *m, const intact_retrieval_params *p, int tmpl, retrieval_report report,
                   void *report_user, intact_retrieval_result *out, intact_error *err);

#endif
