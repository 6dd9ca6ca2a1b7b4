/*
 * hk_avx2.h: small AVX2 helpers shared by the kernels' AVX2 variants (internal, not part of the
 * module's headers). Each is compiled for AVX2 + FMA by its target attribute, so including this
 * file changes nothing for the baseline-ISA code around it.
 */
#ifndef HK_AVX2_H
#define HK_AVX2_H

#if defined(__x86_64__)
#include <immintrin.h>

#define HK_AVX2 __attribute__((target("avx2,fma")))

/* the sum of a vector's 8 lanes */
static HK_AVX2 inline float hk_hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* the largest of a vector's 8 lanes */
static HK_AVX2 inline float hk_hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}
#endif

#endif
