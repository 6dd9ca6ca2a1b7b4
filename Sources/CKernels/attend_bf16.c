/*
 * attend_bf16.c: one query of causal attention over a bf16 KV cache (hk_attend with keys and
 * values stored as bf16: half the bytes each decode step reads at long contexts). Scores use
 * the bf16 GEMV; values are widened 16 (AVX-512) or 8 (AVX2, kernels_avx2.c) at a time, or one by one (portable), while
 * accumulating in f32.
 */
#include "hmst_kernels.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define HK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))

/* out[Dh] += Σ_s p[s] · V[s, :] over n rows, four rows per pass */
static HK_AVX512 void accumulate_avx512(float *out, const float *p, const uint16_t *V, size_t n, size_t Dh) {
    for (size_t d = 0; d < Dh; d += 16) {
        size_t left = Dh - d;
        __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        __m512 a0 = _mm512_maskz_loadu_ps(m, out + d), a1 = _mm512_setzero_ps();
        size_t s = 0;
        for (; s + 2 <= n; s += 2) {
            __m512 v0 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, V + s * Dh + d)), 16));
            __m512 v1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, V + (s + 1) * Dh + d)), 16));
            a0 = _mm512_fmadd_ps(_mm512_set1_ps(p[s]), v0, a0);
            a1 = _mm512_fmadd_ps(_mm512_set1_ps(p[s + 1]), v1, a1);
        }
        if (s < n) {
            __m512 v0 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, V + s * Dh + d)), 16));
            a0 = _mm512_fmadd_ps(_mm512_set1_ps(p[s]), v0, a0);
        }
        _mm512_mask_storeu_ps(out + d, m, _mm512_add_ps(a0, a1));
    }
}
#endif

static void accumulate_portable(float *out, const float *p, const uint16_t *V, size_t n, size_t Dh) {
    for (size_t s = 0; s < n; s++) {
        for (size_t d = 0; d < Dh; d++) {
            uint32_t u = (uint32_t)V[s * Dh + d] << 16;
            float f;
            memcpy(&f, &u, 4);
            out[d] += p[s] * f;
        }
    }
}

void hk_attend_bf16(float *out, float *scratch, const float *q, const uint16_t *K, const uint16_t *V, size_t n, size_t Dh,
                    float scale) {
    hk_gemv_bf16(scratch, K, q, Dh, 0, n);
    for (size_t s = 0; s < n; s++) scratch[s] *= scale;
    hk_softmax(scratch, n);
    for (size_t d = 0; d < Dh; d++) out[d] = 0;
#if defined(__x86_64__)
    if (hk_level() >= HK_LEVEL_AVX512) {
        accumulate_avx512(out, scratch, V, n, Dh);
        return;
    }
    if (hk_level() >= HK_LEVEL_AVX2) {
        extern void hk_accumulate_bf16_avx2(float *, const float *, const uint16_t *, size_t, size_t);
        hk_accumulate_bf16_avx2(out, scratch, V, n, Dh);
        return;
    }
#endif
    accumulate_portable(out, scratch, V, n, Dh);
}
