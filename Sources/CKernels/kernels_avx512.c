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

/* y[r] = w[r, :] · x for r in [r0, r1). With hk_gemv_rows(KIND) == 4, four rows at a time share each
 * load of x and keep four weight streams in flight (16 accumulators); each row's arithmetic is
 * exactly the one-row loop's (accumulator k takes the 16-wide blocks at c ≡ 16k mod 64, the tail
 * goes to a0 then a1, the sum is (a0 + a1) + (a2 + a3)), so a row's value does not depend on how
 * rows are grouped, nor on the rows per pass. */
#define HK_GEMV_ROW4(LOAD, LOAD_TAIL, T, KIND)                                                     \
    size_t full = cols & ~(size_t)63;                                                              \
    __mmask16 tail_mask = (__mmask16)((1u << (cols & 15)) - 1);                                    \
    size_t r = r0;                                                                                 \
    const int rows4 = hk_gemv_rows(KIND) == 4;                                                     \
    for (; rows4 && r + 4 <= r1; r += 4) {                                                         \
        const T *p0 = w + r * cols, *p1 = p0 + cols, *p2 = p1 + cols, *p3 = p2 + cols;             \
        __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;                         \
        __m512 a10 = a00, a11 = a00, a12 = a00, a13 = a00;                                         \
        __m512 a20 = a00, a21 = a00, a22 = a00, a23 = a00;                                         \
        __m512 a30 = a00, a31 = a00, a32 = a00, a33 = a00;                                         \
        size_t c = 0;                                                                              \
        for (; c < full; c += 64) {                                                                \
            __m512 x0 = _mm512_loadu_ps(x + c), x1 = _mm512_loadu_ps(x + c + 16);                  \
            __m512 x2 = _mm512_loadu_ps(x + c + 32), x3 = _mm512_loadu_ps(x + c + 48);             \
            a00 = _mm512_fmadd_ps(LOAD(p0 + c), x0, a00); a01 = _mm512_fmadd_ps(LOAD(p0 + c + 16), x1, a01); \
            a02 = _mm512_fmadd_ps(LOAD(p0 + c + 32), x2, a02); a03 = _mm512_fmadd_ps(LOAD(p0 + c + 48), x3, a03); \
            a10 = _mm512_fmadd_ps(LOAD(p1 + c), x0, a10); a11 = _mm512_fmadd_ps(LOAD(p1 + c + 16), x1, a11); \
            a12 = _mm512_fmadd_ps(LOAD(p1 + c + 32), x2, a12); a13 = _mm512_fmadd_ps(LOAD(p1 + c + 48), x3, a13); \
            a20 = _mm512_fmadd_ps(LOAD(p2 + c), x0, a20); a21 = _mm512_fmadd_ps(LOAD(p2 + c + 16), x1, a21); \
            a22 = _mm512_fmadd_ps(LOAD(p2 + c + 32), x2, a22); a23 = _mm512_fmadd_ps(LOAD(p2 + c + 48), x3, a23); \
            a30 = _mm512_fmadd_ps(LOAD(p3 + c), x0, a30); a31 = _mm512_fmadd_ps(LOAD(p3 + c + 16), x1, a31); \
            a32 = _mm512_fmadd_ps(LOAD(p3 + c + 32), x2, a32); a33 = _mm512_fmadd_ps(LOAD(p3 + c + 48), x3, a33); \
        }                                                                                          \
        for (; c + 16 <= cols; c += 16) {                                                          \
            __m512 xv = _mm512_loadu_ps(x + c);                                                    \
            a00 = _mm512_fmadd_ps(LOAD(p0 + c), xv, a00); a10 = _mm512_fmadd_ps(LOAD(p1 + c), xv, a10); \
            a20 = _mm512_fmadd_ps(LOAD(p2 + c), xv, a20); a30 = _mm512_fmadd_ps(LOAD(p3 + c), xv, a30); \
        }                                                                                          \
        if (c < cols) {                                                                            \
            __m512 xv = _mm512_maskz_loadu_ps(tail_mask, x + c);                                   \
            a01 = _mm512_fmadd_ps(LOAD_TAIL(p0 + c, tail_mask), xv, a01);                          \
            a11 = _mm512_fmadd_ps(LOAD_TAIL(p1 + c, tail_mask), xv, a11);                          \
            a21 = _mm512_fmadd_ps(LOAD_TAIL(p2 + c, tail_mask), xv, a21);                          \
            a31 = _mm512_fmadd_ps(LOAD_TAIL(p3 + c, tail_mask), xv, a31);                          \
        }                                                                                          \
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a00, a01), _mm512_add_ps(a02, a03))); \
        y[r + 1] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a10, a11), _mm512_add_ps(a12, a13))); \
        y[r + 2] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a20, a21), _mm512_add_ps(a22, a23))); \
        y[r + 3] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a30, a31), _mm512_add_ps(a32, a33))); \
    }                                                                                              \
    for (; r < r1; r++) {                                                                          \
        const T *row = w + r * cols;                                                               \
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                \
        size_t c = 0;                                                                              \
        for (; c < full; c += 64) {                                                                \
            a0 = _mm512_fmadd_ps(LOAD(row + c), _mm512_loadu_ps(x + c), a0);                       \
            a1 = _mm512_fmadd_ps(LOAD(row + c + 16), _mm512_loadu_ps(x + c + 16), a1);             \
            a2 = _mm512_fmadd_ps(LOAD(row + c + 32), _mm512_loadu_ps(x + c + 32), a2);             \
            a3 = _mm512_fmadd_ps(LOAD(row + c + 48), _mm512_loadu_ps(x + c + 48), a3);             \
        }                                                                                          \
        for (; c + 16 <= cols; c += 16) a0 = _mm512_fmadd_ps(LOAD(row + c), _mm512_loadu_ps(x + c), a0); \
        if (c < cols) a1 = _mm512_fmadd_ps(LOAD_TAIL(row + c, tail_mask), _mm512_maskz_loadu_ps(tail_mask, x + c), a1); \
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));  \
    }

#define HK_LOAD_F32(p) _mm512_loadu_ps(p)
#define HK_LOAD_F32_TAIL(p, m) _mm512_maskz_loadu_ps((m), (p))

HK_AVX512 void hk_gemv_f32_avx512(float *y, const float *w, const float *x, size_t cols, size_t r0, size_t r1) {
    HK_GEMV_ROW4(HK_LOAD_F32, HK_LOAD_F32_TAIL, float, 0)
}

/* IEEE half rows: vcvtph2ps widens 16 at a time (exactly), then the f32 loop; the AVX-512
 * target implies F16C's 512-bit form (AVX512F). One row per pass unless forced (hk_gemv_rows). */
static HK_AVX512 inline __m512 load_f16x16(const uint16_t *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

static HK_AVX512 inline __m512 load_f16_tail(const uint16_t *p, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

HK_AVX512 void hk_gemv_f16_avx512(float *y, const uint16_t *w, const float *x, size_t cols, size_t r0, size_t r1) {
    HK_GEMV_ROW4(load_f16x16, load_f16_tail, uint16_t, 2)
}

/* bf16 rows in 32-element blocks without a widening shuffle: a 64-byte load holds 16 pairs;
 * shifting each 32-bit word left by 16 gives the even elements as f32, masking off its low half
 * the odd ones, and x is split once into its even and odd elements (xe, xo) to match. Per 32
 * weights that is one load, two ALU ops and two FMAs, against two vpmovzxwd (port 5 only), two
 * shifts and two FMAs for the widening load, which held decode below the memory bandwidth.
 * Per row, accumulators 0/1 take the even/odd halves of the first 32-block of every 64, 2/3 of
 * the second; the columns past the last 32-block take the widening path into accumulator 0 (16
 * at a time) and 1 (the masked tail); the sum is ((a0 + a1) + (a2 + a3)), so, as above, a row's
 * value does not depend on the rows beside it. */
#define HK_BF16_SPLIT_MAX 8192
#define HK_BF16_EO(p, c, ae, ao) do {                                                              \
        __m512i v_ = _mm512_loadu_si512((const void *)((p) + (c)));                                \
        ae = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v_, 16)), _mm512_load_ps(xe + (c) / 2), ae); \
        ao = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(v_, hi_mask)), _mm512_load_ps(xo + (c) / 2), ao); \
    } while (0)
#define HK_BF16_TAIL(p, a0, a1) do {                                                               \
        size_t c_ = blocks;                                                                        \
        for (; c_ + 16 <= cols; c_ += 16) a0 = _mm512_fmadd_ps(load_bf16x16((p) + c_), _mm512_loadu_ps(x + c_), a0); \
        if (c_ < cols) a1 = _mm512_fmadd_ps(load_bf16_tail((p) + c_, tail_mask), _mm512_maskz_loadu_ps(tail_mask, x + c_), a1); \
    } while (0)

HK_AVX512 void hk_gemv_bf16_avx512(float *y, const uint16_t *w, const float *x, size_t cols, size_t r0, size_t r1) {
    if (cols > HK_BF16_SPLIT_MAX || cols < 32) {
        HK_GEMV_ROW4(load_bf16x16, load_bf16_tail, uint16_t, 1)
        return;
    }
    size_t blocks = cols & ~(size_t)31, pairs64 = cols & ~(size_t)63;
    __attribute__((aligned(64))) float xe[HK_BF16_SPLIT_MAX / 2], xo[HK_BF16_SPLIT_MAX / 2];
    const __m512i even_idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd_idx = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    for (size_t c = 0; c < blocks; c += 32) {
        __m512 lo = _mm512_loadu_ps(x + c), hi = _mm512_loadu_ps(x + c + 16);
        _mm512_store_ps(xe + c / 2, _mm512_permutex2var_ps(lo, even_idx, hi));
        _mm512_store_ps(xo + c / 2, _mm512_permutex2var_ps(lo, odd_idx, hi));
    }
    const __m512i hi_mask = _mm512_set1_epi32((int)0xFFFF0000u);
    __mmask16 tail_mask = (__mmask16)((1u << (cols & 15)) - 1);
    size_t r = r0;
    const int rows4 = hk_gemv_rows(1) == 4;
    for (; rows4 && r + 4 <= r1; r += 4) {
        const uint16_t *p0 = w + r * cols, *p1 = p0 + cols, *p2 = p1 + cols, *p3 = p2 + cols;
        __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;
        __m512 a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        __m512 a20 = a00, a21 = a00, a22 = a00, a23 = a00;
        __m512 a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        size_t c = 0;
        for (; c < pairs64; c += 64) {
            HK_BF16_EO(p0, c, a00, a01); HK_BF16_EO(p1, c, a10, a11); HK_BF16_EO(p2, c, a20, a21); HK_BF16_EO(p3, c, a30, a31);
            HK_BF16_EO(p0, c + 32, a02, a03); HK_BF16_EO(p1, c + 32, a12, a13);
            HK_BF16_EO(p2, c + 32, a22, a23); HK_BF16_EO(p3, c + 32, a32, a33);
        }
        if (c < blocks) {
            HK_BF16_EO(p0, c, a00, a01); HK_BF16_EO(p1, c, a10, a11); HK_BF16_EO(p2, c, a20, a21); HK_BF16_EO(p3, c, a30, a31);
        }
        HK_BF16_TAIL(p0, a00, a01); HK_BF16_TAIL(p1, a10, a11); HK_BF16_TAIL(p2, a20, a21); HK_BF16_TAIL(p3, a30, a31);
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a00, a01), _mm512_add_ps(a02, a03)));
        y[r + 1] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a10, a11), _mm512_add_ps(a12, a13)));
        y[r + 2] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a20, a21), _mm512_add_ps(a22, a23)));
        y[r + 3] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a30, a31), _mm512_add_ps(a32, a33)));
    }
    for (; r < r1; r++) {
        const uint16_t *p0 = w + r * cols;
        __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;
        size_t c = 0;
        for (; c < pairs64; c += 64) {
            HK_BF16_EO(p0, c, a00, a01);
            HK_BF16_EO(p0, c + 32, a02, a03);
        }
        if (c < blocks) HK_BF16_EO(p0, c, a00, a01);
        HK_BF16_TAIL(p0, a00, a01);
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a00, a01), _mm512_add_ps(a02, a03)));
    }
}

#endif
