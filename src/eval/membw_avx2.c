// Read-bandwidth probe with the same access pattern as the decode kernels (wide unaligned loads,
// software prefetch pf bytes ahead: the F16 decode kernel's distance for this CPU), so "fraction of
// bandwidth" compares like with like. Why not a fixed page ahead: on Zen 4 that read 10-15% slower
// than no software prefetch, and the probe then sat under what the F16 kernel streamed.
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

uint64_t eval_stream_read_avx2(const void *buf, size_t bytes, size_t pf) {
    const char *p = buf;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 128 <= bytes; i += 128) {
        _mm_prefetch(p + i + pf, _MM_HINT_T0);
        _mm_prefetch(p + i + pf + 64, _MM_HINT_T0);
        a0 = _mm256_xor_si256(a0, _mm256_loadu_si256((const __m256i *)(p + i)));
        a1 = _mm256_xor_si256(a1, _mm256_loadu_si256((const __m256i *)(p + i + 32)));
        a2 = _mm256_xor_si256(a2, _mm256_loadu_si256((const __m256i *)(p + i + 64)));
        a3 = _mm256_xor_si256(a3, _mm256_loadu_si256((const __m256i *)(p + i + 96)));
    }
    a0 = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    return (uint64_t)_mm256_extract_epi64(a0, 0) ^ (uint64_t)_mm256_extract_epi64(a0, 3);
}
