// CPU feature detection (cpu.h). Compiled for baseline x86-64: it only reads cpuid and XCR0.
#include "core/cpu.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define CPU_X86 1
#else
#define CPU_X86 0
#endif

static int g_force_ref;
static int g_has_avx2, g_has_avx512, g_isa_cap = IT_ISA_AVX512;
static int g_amd, g_prefetch = -1;   // g_prefetch: INTACT_PREFETCH, -1 when unset
// it_cpu_set_stream_prefetch's override, -1 when unset: set by the caller between decode steps and
// read by every thread's kernels (relaxed: any value it held is a valid distance).
static _Atomic int g_prefetch_set = -1;
static int g_family;                 // cpuid display family (base + extended)
static pthread_once_t g_detect_once = PTHREAD_ONCE_INIT;

#if CPU_X86
// XCR0: which register states the OS saves on context switch. A CPU flag alone is not enough:
// without OS support the wide registers are clobbered (or the instructions fault).
static unsigned long long read_xcr0(void) {
    unsigned eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}
#endif

static void detect(void) {
#if CPU_X86
    unsigned a, b, c, d;
    if (__get_cpuid(0, &a, &b, &c, &d)) {   // vendor: ebx edx ecx
        char v[13];
        memcpy(v, &b, 4); memcpy(v + 4, &d, 4); memcpy(v + 8, &c, 4);
        v[12] = 0;
        g_amd = !strcmp(v, "AuthenticAMD") || !strcmp(v, "HygonGenuine");
    }
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    g_family = (int)((a >> 8) & 0xf) + ((a >> 8 & 0xf) == 0xf ? (int)((a >> 20) & 0xff) : 0);
    int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    if (!osxsave) return;
    unsigned long long xcr0 = read_xcr0();
    int os_avx = (xcr0 & 0x6) == 0x6;            // XMM + YMM state
    int os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0; // + opmask, ZMM0-15 high, ZMM16-31
    __builtin_cpu_init();
    g_has_avx2 = os_avx && fma && f16c && __builtin_cpu_supports("avx2") &&
                 __builtin_cpu_supports("fma");
    // formats/matmul_avx512.c is compiled with F/BW/VL/DQ/BF16: require exactly that set so the
    // compiler is free to use any of it.
    int bf16 = 0;
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) bf16 = (a >> 5) & 1;
    g_has_avx512 = g_has_avx2 && os_avx512 && bf16 && __builtin_cpu_supports("avx512f") &&
                   __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                   __builtin_cpu_supports("avx512dq");
#endif
    const char *pf = getenv("INTACT_PREFETCH");
    if (pf && *pf) {
        char *end;
        long v = strtol(pf, &end, 10);
        if (!*end && v >= 0 && v <= 65536) g_prefetch = (int)v;
    }
    const char *env = getenv("INTACT_ISA");
    if (env && !strcmp(env, "ref")) g_isa_cap = IT_ISA_REF;
    else if (env && !strcmp(env, "avx2")) g_isa_cap = IT_ISA_AVX2;
}

static void ensure_detected(void) { pthread_once(&g_detect_once, detect); }

void it_cpu_force_ref(int on) { g_force_ref = on; }
int it_cpu_has_avx2(void) { ensure_detected(); return g_has_avx2; }
int it_cpu_has_avx512(void) { ensure_detected(); return g_has_avx512; }
int it_cpu_amd(void) { ensure_detected(); return g_amd; }

int it_cpu_stream_prefetch(int zen5, int zen4) {
    ensure_detected();
    int set = atomic_load_explicit(&g_prefetch_set, memory_order_relaxed);
    if (set >= 0) return set;
    if (g_prefetch >= 0) return g_prefetch;
    if (g_amd) return g_family >= 0x1a ? zen5 : zen4;
    return zen5 < 2048 ? zen5 : 2048;
}

int it_cpu_set_stream_prefetch(int bytes) {
    if (bytes < -1 || bytes > 65536) return -1;
    atomic_store_explicit(&g_prefetch_set, bytes, memory_order_relaxed);
    return 0;
}

int it_cpu_isa(void) {
    ensure_detected();
    if (g_force_ref) return IT_ISA_REF;
    if (g_isa_cap >= IT_ISA_AVX512 && g_has_avx512) return IT_ISA_AVX512;
    if (g_isa_cap >= IT_ISA_AVX2 && g_has_avx2) return IT_ISA_AVX2;
    return IT_ISA_REF;
}
