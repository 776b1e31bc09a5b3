// Run-time selection of the x86 SIMD matmul kernels. This file is compiled for baseline x86-64:
// it only detects features and hands out pointers into matmul_avx2.c / matmul_avx512.c.
//
// Environment: INTACT_ISA=ref|avx2|avx512 caps the kernels kern_simd_matmul() picks (read once,
// on the first call): "ref" keeps the scalar kernels, "avx2" never uses AVX-512, "avx512" (or
// unset) allows everything the CPU supports. Handy to compare ISAs end to end or to rule a kernel
// out when chasing a numerical difference.
#include "kernels/matmul_simd.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/matmul.h"
#include "kernels/matmul_ref.h"
#include "kernels/matmul_simd_impl.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define KERN_X86 1
#else
#define KERN_X86 0
#endif

enum { ISA_REF = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 };

static int g_force_ref;
static int g_has_avx2, g_has_avx512, g_isa_cap = ISA_AVX512;
static pthread_once_t g_detect_once = PTHREAD_ONCE_INIT;

#if KERN_X86
// XCR0: which register states the OS saves on context switch. A CPU flag alone is not enough:
// without OS support the wide registers are clobbered (or the instructions fault).
static unsigned long long read_xcr0(void) {
    unsigned eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}
#endif

static void detect(void) {
#if KERN_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    if (!osxsave) return;
    unsigned long long xcr0 = read_xcr0();
    int os_avx = (xcr0 & 0x6) == 0x6;            // XMM + YMM state
    int os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0; // + opmask, ZMM0-15 high, ZMM16-31
    __builtin_cpu_init();
    g_has_avx2 = os_avx && fma && f16c && __builtin_cpu_supports("avx2") &&
                 __builtin_cpu_supports("fma");
    // matmul_avx512.c is compiled with F/BW/VL/DQ/BF16: require exactly that set so the compiler
    // is free to use any of it.
    int bf16 = 0;
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) bf16 = (a >> 5) & 1;
    g_has_avx512 = g_has_avx2 && os_avx512 && bf16 && __builtin_cpu_supports("avx512f") &&
                   __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                   __builtin_cpu_supports("avx512dq");
#endif
    const char *env = getenv("INTACT_ISA");
    if (env && !strcmp(env, "ref")) g_isa_cap = ISA_REF;
    else if (env && !strcmp(env, "avx2")) g_isa_cap = ISA_AVX2;
}

static void ensure_detected(void) { pthread_once(&g_detect_once, detect); }

void kern_force_ref(int on) { g_force_ref = on; }
int kern_cpu_has_avx2(void) { ensure_detected(); return g_has_avx2; }
int kern_cpu_has_avx512(void) { ensure_detected(); return g_has_avx512; }

static it_matmul_fn kernel_for(int type, int isa) {
    switch (isa) {
    case ISA_REF:
        switch (type) {
        case IT_TYPE_F32: return kern_matmul_f32_ref;
        case IT_TYPE_F16: return kern_matmul_f16_ref;
        case IT_TYPE_BF16: return kern_matmul_bf16_ref;
        case IT_TYPE_Q8_0: return kern_matmul_q8_0_ref;
        default: return NULL;
        }
    case ISA_AVX2:
        if (!kern_cpu_has_avx2()) return NULL;
        switch (type) {
        case IT_TYPE_F32: return kern_matmul_f32_avx2;
        case IT_TYPE_F16: return kern_matmul_f16_avx2;
        case IT_TYPE_BF16: return kern_matmul_bf16_avx2;
        case IT_TYPE_Q8_0: return kern_matmul_q8_0_avx2;
        default: return NULL;
        }
    case ISA_AVX512:
        if (!kern_cpu_has_avx512()) return NULL;
        switch (type) {
        case IT_TYPE_F32: return kern_matmul_f32_avx512;
        case IT_TYPE_F16: return kern_matmul_f16_avx512;
        case IT_TYPE_BF16: return kern_matmul_bf16_avx512;
        case IT_TYPE_Q8_0: return kern_matmul_q8_0_avx512;
        default: return NULL;
        }
    default: return NULL;
    }
}

it_matmul_fn kern_matmul_kernel(int type, const char *isa) {
    if (!isa) return NULL;
    if (!strcmp(isa, "ref")) return kernel_for(type, ISA_REF);
    if (!strcmp(isa, "avx2")) return kernel_for(type, ISA_AVX2);
    if (!strcmp(isa, "avx512")) return kernel_for(type, ISA_AVX512);
    return NULL;
}

// Preferred ISA per type on a CPU that has both, from bench/bench_kernels.c on the target machine
// (AMD EPYC Zen 5, 2 cores): AVX-512 wins or ties everywhere. Decode is bandwidth bound (both ISAs
// reach ~45 GB/s with 2 threads; AVX-512 streams Q8_0 faster on one core, 28-32 vs 20-22 GB/s);
// prefill is compute bound and AVX-512 (full-width FMA on Zen 5) is ~1.7-2x faster.
static int preferred_isa(int type) {
    (void)type;
    return ISA_AVX512;
}

it_matmul_fn kern_simd_matmul(int type) {
    ensure_detected();
    if (g_force_ref) return NULL;
    int isa = preferred_isa(type);
    if (isa > g_isa_cap) isa = g_isa_cap;
    for (; isa > ISA_REF; isa--) {
        it_matmul_fn fn = kernel_for(type, isa);
        if (fn) return fn;
    }
    return NULL;
}
