/*
 * kernels_avx2.c: AVX2 + FMA variants of the GEMV kernels and the bf16 widening in kernels.c,
 * for x86-64 CPUs without AVX-512 (Haswell to Alder Lake clients, AMD Zen 1-3). Compiled with
 * target attributes so the rest of the library keeps the baseline ISA; called only after
 * hk_level() has checked the CPU.
 *
 * One row at a time, four accumulators: on Zen 3 a single sequential weight stream per thread
 * reads memory 15-50% faster than four rows interleaved (measured for both f32 and bf16, one and
 * two threads), and with sixteen ymm registers there is no room to share x across rows anyway.
 * A row's value depends only on the row, never on the range it was computed in.
 */
#include "hmst_kernels.h"

#include <string.h>
#include "hk_avx2.h"

#if defined(__x86_64__)

/* 8 bf16 (raw bits) widened to f32 */
static HK_AVX2 inline __m256 load_bf16x8(const uint16_t *p) {
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

static inline float bf16_scalar(uint16_t h) {
    union { uint32_t u; float f; } v = {.u = (uint32_t)h << 16};
    return v.f;
}

HK_AVX2 void hk_bf16_to_f32_avx2(float *out, const uint16_t *in, size_t n) {
    for (size_t i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, load_bf16x8(in + i));
}

/* IEEE half <-> f32 with F16C (every AVX2 CPU has it; the caller checks): exact widening, and
 * round-to-nearest-even narrowing with overflow to inf and NaN kept NaN, as _Float16 does. */
__attribute__((target("avx,f16c"))) void hk_f16_to_f32_f16c(float *out, const uint16_t *in, size_t n) {
    for (size_t i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(in + i))));
}

__attribute__((target("avx,f16c"))) void hk_f32_to_f16_f16c(uint16_t *out, const float *in, size_t n) {
    for (size_t i = 0; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(out + i), _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

/* ---- f32 ----------------------------------------------------------------------------------- */

/* The one-row loop every AVX2 GEMV shares: the weight type T, LOAD8(p) giving 8 weights as f32
 * and SCALAR(v) one, for the tail. Expects y, w, x, cols, r0, r1 in scope. */
#define HK_AVX2_GEMV_ROWS(T, LOAD8, SCALAR) do {                                                    \
        size_t full32_ = cols & ~(size_t)31, full8_ = cols & ~(size_t)7;                            \
        for (size_t r = r0; r < r1; r++) {                                                          \
            const T *p = w + r * cols;                                                              \
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                             \
            size_t c = 0;                                                                           \
            for (; c < full32_; c += 32) {                                                          \
                a0 = _mm256_fmadd_ps(LOAD8(p + c), _mm256_loadu_ps(x + c), a0);                     \
                a1 = _mm256_fmadd_ps(LOAD8(p + c + 8), _mm256_loadu_ps(x + c + 8), a1);             \
                a2 = _mm256_fmadd_ps(LOAD8(p + c + 16), _mm256_loadu_ps(x + c + 16), a2);           \
                a3 = _mm256_fmadd_ps(LOAD8(p + c + 24), _mm256_loadu_ps(x + c + 24), a3);           \
            }                                                                                       \
            for (; c < full8_; c += 8) a0 = _mm256_fmadd_ps(LOAD8(p + c), _mm256_loadu_ps(x + c), a0); \
            float s = hk_hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));        \
            for (; c < cols; c++) s += SCALAR(p[c]) * x[c];                                         \
            y[r] = s;                                                                               \
        }                                                                                           \
    } while (0)

static inline float f32_scalar(float v) { return v; }

HK_AVX2 void hk_gemv_f32_avx2(float *y, const float *w, const float *x, size_t cols, size_t r0, size_t r1) {
    HK_AVX2_GEMV_ROWS(float, _mm256_loadu_ps, f32_scalar);
}

/* ---- IEEE half: widened 8 at a time by F16C (the caller checks the CPU has it) -------------- */

#define HK_AVX2_F16C __attribute__((target("avx2,fma,f16c")))

static HK_AVX2_F16C inline __m256 load_f16x8(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

static inline float f16_scalar(uint16_t h) {
    _Float16 v;
    memcpy(&v, &h, 2);
    return (float)v;
}

HK_AVX2_F16C void hk_gemv_f16_avx2(float *y, const uint16_t *w, const float *x, size_t cols, size_t r0, size_t r1) {
    HK_AVX2_GEMV_ROWS(uint16_t, load_f16x8, f16_scalar);
}

/* ---- bf16 ---------------------------------------------------------------------------------- */

/* As in the AVX-512 kernel, no widening shuffle in the inner loop: a 32-byte load holds 8 pairs
 * of bf16; shifting each 32-bit word left by 16 gives the even elements as f32, masking off its
 * low half the odd ones, and x is split once into its even and odd elements (xe, xo) to match.
 * Per 32 columns: accumulators 0/1 take the even/odd halves of the first 16, 2/3 of the second;
 * a last 16-block goes to 0/1, a last 8-block is widened into 0, the rest is a scalar loop. Rows
 * longer than HK_BF16_SPLIT_MAX (no room for the split x on the stack) widen every 8-block. */
#define HK_BF16_SPLIT_MAX 8192
#define HK_BF16_EO(c, ae, ao) do {                                                                 \
        __m256i v_ = _mm256_loadu_si256((const __m256i *)(p + (c)));                               \
        ae = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v_, 16)), _mm256_load_ps(xe + (c) / 2), ae); \
        ao = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(v_, hi_mask)), _mm256_load_ps(xo + (c) / 2), ao); \
    } while (0)

static HK_AVX2 void gemv_bf16_widening(float *y, const uint16_t *w, const float *x, size_t cols, size_t r0, size_t r1) {
    HK_AVX2_GEMV_ROWS(uint16_t, load_bf16x8, bf16_scalar);
}

HK_AVX2 void hk_gemv_bf16_avx2(float *y, const uint16_t *w, const float *x, size_t cols, size_t r0, size_t r1) {
    if (cols > HK_BF16_SPLIT_MAX || cols < 16) {
        gemv_bf16_widening(y, w, x, cols, r0, r1);
        return;
    }
    size_t blocks16 = cols & ~(size_t)15, full32 = cols & ~(size_t)31, full8 = cols & ~(size_t)7;
    __attribute__((aligned(32))) float xe[HK_BF16_SPLIT_MAX / 2], xo[HK_BF16_SPLIT_MAX / 2];
    for (size_t c = 0; c < blocks16; c += 16) {
        __m256 lo = _mm256_loadu_ps(x + c), hi = _mm256_loadu_ps(x + c + 8);
        /* per 128-bit lane: lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6, then the middle 64-bit halves swapped */
        __m256 e = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0)), o = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
        _mm256_store_ps(xe + c / 2, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0))));
        _mm256_store_ps(xo + c / 2, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0))));
    }
    const __m256i hi_mask = _mm256_set1_epi32((int)0xFFFF0000u);
    for (size_t r = r0; r < r1; r++) {
        const uint16_t *p = w + r * cols;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        size_t c = 0;
        for (; c < full32; c += 32) {
            HK_BF16_EO(c, a0, a1);
            HK_BF16_EO(c + 16, a2, a3);
        }
        if (c < blocks16) { HK_BF16_EO(c, a0, a1); c += 16; }
        if (c < full8) { a0 = _mm256_fmadd_ps(load_bf16x8(p + c), _mm256_loadu_ps(x + c), a0); c += 8; }
        float s = hk_hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
        for (; c < cols; c++) s += bf16_scalar(p[c]) * x[c];
        y[r] = s;
    }
}

/* ---- attention over a bf16 or f32 cache: out[Dh] += Σ_s p[s] · V[s, :] ---------------------- */

HK_AVX2 void hk_accumulate_bf16_avx2(float *out, const float *p, const uint16_t *V, size_t n, size_t Dh) {
    size_t full8 = Dh & ~(size_t)7;
    for (size_t d = 0; d < full8; d += 8) {
        __m256 a0 = _mm256_loadu_ps(out + d), a1 = _mm256_setzero_ps();
        size_t s = 0;
        for (; s + 2 <= n; s += 2) {
            a0 = _mm256_fmadd_ps(_mm256_set1_ps(p[s]), load_bf16x8(V + s * Dh + d), a0);
            a1 = _mm256_fmadd_ps(_mm256_set1_ps(p[s + 1]), load_bf16x8(V + (s + 1) * Dh + d), a1);
        }
        if (s < n) a0 = _mm256_fmadd_ps(_mm256_set1_ps(p[s]), load_bf16x8(V + s * Dh + d), a0);
        _mm256_storeu_ps(out + d, _mm256_add_ps(a0, a1));
    }
    for (size_t d = full8; d < Dh; d++)
        for (size_t s = 0; s < n; s++) out[d] += p[s] * bf16_scalar(V[s * Dh + d]);
}

HK_AVX2 void hk_axpy_avx2(float *out, float a, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] += a * x[i];
}

#endif
