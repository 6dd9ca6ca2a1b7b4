/*
 * kernels_avx512.c: AVX-512 variants of the kernels in kernels.c, compiled with target
 * attributes so the rest of the library keeps the baseline ISA; called only after hk_level()
 * has checked the CPU.
 */
#include "hmst_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define HK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))

static HK_AVX512 inline __m512 load_bf16x16(const uint16_t *p) {
    __m256i h = _mm256_loadu_si256((const __m256i *)p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

static HK_AVX512 inline __m512 load_bf16_tail(const uint16_t *p, __mmask16 m) {
    __m256i h = _mm256_maskz_loadu_epi16(m, p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

HK_AVX512 void hk_bf16_to_f32_avx512(float *out, const uint16_t *in, size_t n) {
    for (size_t i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, load_bf16x16(in + i));
}

HK_AVX512 void hk_gemv_bf16_avx512(float *y, const uint16_t *w, const float *x, size_t cols, size_t r0, size_t r1) {
    size_t full = cols & ~(size_t)63;
    __mmask16 tail_mask = (__mmask16)((1u << (cols & 15)) - 1);
    for (size_t r = r0; r < r1; r++) {
        const uint16_t *row = w + r * cols;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
        size_t c = 0;
        for (; c < full; c += 64) {
            a0 = _mm512_fmadd_ps(load_bf16x16(row + c), _mm512_loadu_ps(x + c), a0);
            a1 = _mm512_fmadd_ps(load_bf16x16(row + c + 16), _mm512_loadu_ps(x + c + 16), a1);
            a2 = _mm512_fmadd_ps(load_bf16x16(row + c + 32), _mm512_loadu_ps(x + c + 32), a2);
            a3 = _mm512_fmadd_ps(load_bf16x16(row + c + 48), _mm512_loadu_ps(x + c + 48), a3);
        }
        for (; c + 16 <= cols; c += 16) a0 = _mm512_fmadd_ps(load_bf16x16(row + c), _mm512_loadu_ps(x + c), a0);
        if (c < cols) a1 = _mm512_fmadd_ps(load_bf16_tail(row + c, tail_mask), _mm512_maskz_loadu_ps(tail_mask, x + c), a1);
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    }
}

HK_AVX512 void hk_gemv_f32_avx512(float *y, const float *w, const float *x, size_t cols, size_t r0, size_t r1) {
    size_t full = cols & ~(size_t)63;
    __mmask16 tail_mask = (__mmask16)((1u << (cols & 15)) - 1);
    for (size_t r = r0; r < r1; r++) {
        const float *row = w + r * cols;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
        size_t c = 0;
        for (; c < full; c += 64) {
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(row + c), _mm512_loadu_ps(x + c), a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(row + c + 16), _mm512_loadu_ps(x + c + 16), a1);
            a2 = _mm512_fmadd_ps(_mm512_loadu_ps(row + c + 32), _mm512_loadu_ps(x + c + 32), a2);
            a3 = _mm512_fmadd_ps(_mm512_loadu_ps(row + c + 48), _mm512_loadu_ps(x + c + 48), a3);
        }
        for (; c + 16 <= cols; c += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(row + c), _mm512_loadu_ps(x + c), a0);
        if (c < cols) a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail_mask, row + c), _mm512_maskz_loadu_ps(tail_mask, x + c), a1);
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    }
}

#endif
