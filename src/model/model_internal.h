// Shared between the model loaders (model.c, model_gguf.c, model_llama2c.c).
#ifndef IT_MODEL_MODEL_INTERNAL_H
#define IT_MODEL_MODEL_INTERNAL_H

#include "model/model.h"

int model_check_hparams(const it_hparams *hp, intact_error *err);
// mode: how the file is brought into memory (enum it_mmap_mode; IT_MMAP_COPY for INTACT_LOAD_NO_MMAP).
int model_load_gguf(intact_model *m, const char *path, int mode, intact_error *err);
int model_load_llama2c(intact_model *m, const char *path, int mode, intact_error *err);

#endif
