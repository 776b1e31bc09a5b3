// Placeholder until the SIMD kernels land: scalar everywhere.
#include "kernels/matmul_simd.h"
#include "kernels/matmul.h"

static int g_force_ref;
void kern_force_ref(int on) { g_force_ref = on; }
int kern_cpu_has_avx2(void) { return 0; }
int kern_cpu_has_avx512(void) { return 0; }
it_matmul_fn kern_simd_matmul(int type) { (void)type; (void)g_force_ref; return NULL; }
