// CPU features and the instruction set the kernels may use. Detected once, on the first call
// (pthread_once), from cpuid and XCR0; the formats table (formats/formats.h) and the kernels in
// kernels/ and kv/ all ask here, so one switch holds every kernel to the same ISA.
//
// Environment: INTACT_ISA=ref|avx2|avx512 caps the ISA (read once): "ref" keeps the scalar
// kernels, "avx2" never uses AVX-512, "avx512" (or unset) allows everything the CPU supports.
// Handy to compare ISAs end to end or to rule a kernel out when chasing a numerical difference.
#ifndef IT_CORE_CPU_H
#define IT_CORE_CPU_H

// Ordered: a wider ISA has a larger number.
enum it_isa { IT_ISA_REF = 0, IT_ISA_AVX2 = 1, IT_ISA_AVX512 = 2, IT_ISA_COUNT = 3 };

// AVX2 + FMA + F16C with OS support for the ymm state.
int it_cpu_has_avx2(void);
// AVX-512 F/BW/VL/DQ/BF16 (what *_avx512.c is compiled for) with OS support for the zmm state.
int it_cpu_has_avx512(void);
// The widest ISA the kernels may use: the CPU's, capped by INTACT_ISA; IT_ISA_REF while
// it_cpu_force_ref(1) is in effect.
int it_cpu_isa(void);
// An AMD (or Hygon) CPU: where a kernel's best instruction mix differs by vendor.
int it_cpu_amd(void);
// Software prefetch distance, in bytes, for a decode kernel streaming weight rows once. `zen5` is
// the distance measured best for that kernel on AMD Zen 5 (cpuid family 0x1A and later), where a
// long distance keeps enough lines in flight; `zen4` the one for family 0x19 (Zen 3 / Zen 4): none
// for F16 rows, which its hardware stream prefetcher alone read 10-15% faster than any software
// distance, 4 KB for the integer kernels (docs/speed.md, 2026-12-07 Zen 4, and 2026-12-08). Other
// CPUs get min(zen5, 2048): on an Intel Xeon (Granite Rapids, 2 threads) 8 KB ahead made int4
// decode 12-45% slower and F16 decode 23% slower than 2 KB — a prefetch to L1 waits for a free fill
// buffer, and 8 KB ahead they are all taken.
// INTACT_PREFETCH=BYTES (0..65536, read once) overrides all of them, for tuning on another CPU.
int it_cpu_stream_prefetch(int zen5, int zen4);
// Overrides the distance for every kernel from the next call on (0..65536 bytes; -1 gives it back
// to INTACT_PREFETCH or the per-CPU choice; anything else is refused with -1). For `bench
// --prefetch-ab`, which alternates two distances between decode steps: the distance only changes
// when memory is read, never a result.
int it_cpu_set_stream_prefetch(int bytes);
// For tests/benchmarks: hold every kernel choice to the scalar reference (1) or release it (0).
void it_cpu_force_ref(int on);

#endif
