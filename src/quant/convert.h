// Float-type conversion of a model's matrices (`intact quantize --outtype f32|f16|bf16`, llama.cpp
// convert's --outtype): every weight matrix still in a float type (F32, F16, BF16) is re-stored in
// the target type, token embedding and output head included; norm vectors stay F32. Matrices in a
// quantized type keep it, unless dequantize is set (then they are converted too: how `quantize
// --allow-requantize` gets float weights to quantize again).
#ifndef IT_QUANT_CONVERT_H
#define IT_QUANT_CONVERT_H

#include "intact.h"

// Target type id for "f32", "f16" or "bf16"; -1 for anything else.
int quant_outtype_parse(const char *s);
// Converts in place (new buffers owned by the model). Rounds to nearest even; a value beyond F16's
// range is an error naming the tensor (F16 would store it as infinity). *n_converted (may be NULL)
// receives the number of matrices whose type changed. 0 or -1.
int quant_convert_model(intact_model *m, int type, int dequantize, int *n_converted, intact_error *err);

#endif
