// kv_score_avx512.c compiled with AVX-512 VNNI (Makefile rule for *_avx512vnni.c): the per-head
// integer sums take two vpdpbusd instead of maddubs, add and madd. Chosen by kv_kern_avx512.c when
// the CPU has VNNI; the plain build stays for AVX-512 CPUs without it (Skylake-X).
#define KVS_ENTRY kvk_scores_i8q_avx512vnni
#include "kv/kv_score_avx512.c"
