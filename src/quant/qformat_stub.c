// Temporary: replaced by qformat.c (formats and their registration).
#include "quant/qformat.h"
void qf_register_types(void) {}
