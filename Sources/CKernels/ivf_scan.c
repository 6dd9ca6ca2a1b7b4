/*
 * ivf_scan.c: query-to-vectors distances for the IVF-Flat list scan (see hmst_ivf_scan.h).
 * The AVX-512 variant takes four stored vectors per pass so four independent FMA chains hide
 * the FMA latency, with a masked tail for Dk not a multiple of 16, except on CPUs that stream one
 * row at a time faster (AMD family 25: see many_avx512_one); the AVX2 one takes one vector at a
 * time with four accumulators (see many_avx2).
 */
#include "hmst_ivf_scan.h"
#include "hmst_kernels.h"
#include "hk_avx2.h"

/* ---- portable: eight partial sums so the compiler can keep them in vector registers ---- */

void hk_l2sqr_many_portable(float *out, const float *q, const float *x, size_t n, size_t Dk) {
    for (size_t i = 0; i < n; i++) {
        const float *v = x + i * Dk;
        float s[8] = {0};
        size_t j = 0;
        for (; j + 8 <= Dk; j += 8)
            for (int l = 0; l < 8; l++) {
                float t = q[j + l] - v[j + l];
                s[l] += t * t;
            }
        float r = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
        for (; j < Dk; j++) {
            float t = q[j] - v[j];
            r += t * t;
        }
        out[i] = r;
    }
}

void hk_inner_many_portable(float *out, const float *q, const float *x, size_t n, size_t Dk) {
    for (size_t i = 0; i < n; i++) {
        const float *v = x + i * Dk;
        float s[8] = {0};
        size_t j = 0;
        for (; j + 8 <= Dk; j += 8)
            for (int l = 0; l < 8; l++) s[l] += q[j + l] * v[j + l];
        float r = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
        for (; j < Dk; j++) r += q[j] * v[j];
        out[i] = r;
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

#define HK_AVX512 __attribute__((target("avx512f,fma")))

/* a + (q - t)^2 when l2, else a + q·t, lane-wise. */
static HK_AVX512 inline __m512 accumulate(__m512 q, __m512 t, __m512 a, int l2) {
    if (l2) {
        t = _mm512_sub_ps(q, t);
        return _mm512_fmadd_ps(t, t, a);
    }
    return _mm512_fmadd_ps(q, t, a);
}

/* L2 when l2 != 0, else inner product; the branch is hoisted by inlining into the two callers. */
static HK_AVX512 inline void many_avx512(float *out, const float *q, const float *x, size_t n, size_t Dk, int l2) {
    size_t full = Dk & ~(size_t)15;
    __mmask16 tail = (__mmask16)((1u << (Dk & 15)) - 1);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float *v0 = x + i * Dk, *v1 = v0 + Dk, *v2 = v1 + Dk, *v3 = v2 + Dk;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
        for (size_t j = 0; j < full; j += 16) {
            __m512 qq = _mm512_loadu_ps(q + j);
            __m512 t0 = _mm512_loadu_ps(v0 + j), t1 = _mm512_loadu_ps(v1 + j);
            __m512 t2 = _mm512_loadu_ps(v2 + j), t3 = _mm512_loadu_ps(v3 + j);
            a0 = accumulate(qq, t0, a0, l2); a1 = accumulate(qq, t1, a1, l2);
            a2 = accumulate(qq, t2, a2, l2); a3 = accumulate(qq, t3, a3, l2);
        }
        if (tail) {
            __m512 qq = _mm512_maskz_loadu_ps(tail, q + full);
            __m512 t0 = _mm512_maskz_loadu_ps(tail, v0 + full), t1 = _mm512_maskz_loadu_ps(tail, v1 + full);
            __m512 t2 = _mm512_maskz_loadu_ps(tail, v2 + full), t3 = _mm512_maskz_loadu_ps(tail, v3 + full);
            a0 = accumulate(qq, t0, a0, l2); a1 = accumulate(qq, t1, a1, l2);
            a2 = accumulate(qq, t2, a2, l2); a3 = accumulate(qq, t3, a3, l2);
        }
        out[i] = _mm512_reduce_add_ps(a0);
        out[i + 1] = _mm512_reduce_add_ps(a1);
        out[i + 2] = _mm512_reduce_add_ps(a2);
        out[i + 3] = _mm512_reduce_add_ps(a3);
    }
    for (; i < n; i++) {
        const float *v = x + i * Dk;
        __m512 a = _mm512_setzero_ps();
        for (size_t j = 0; j < full; j += 16) {
            __m512 qq = _mm512_loadu_ps(q + j), t = _mm512_loadu_ps(v + j);
            a = accumulate(qq, t, a, l2);
        }
        if (tail) {
            __m512 qq = _mm512_maskz_loadu_ps(tail, q + full), t = _mm512_maskz_loadu_ps(tail, v + full);
            a = accumulate(qq, t, a, l2);
        }
        out[i] = _mm512_reduce_add_ps(a);
    }
}

/* One stored vector at a time (one sequential stream), four accumulators over 64-float steps, the
 * rest into the first and the masked Dk % 16 tail into the second: the shape for CPUs that stream
 * one row at a time faster than four interleaved (hk_gemv_rows(0) == 1: AMD family 25). On Zen 4
 * the four-vector shape above read a 100k x 128 IVF list set at 10 GB/s on one thread, one stream
 * at a time at 21 GB/s (session 26); Zen 3's AVX2 kernel below has the same one-stream shape. */
static HK_AVX512 inline void many_avx512_one(float *out, const float *q, const float *x, size_t n, size_t Dk, int l2) {
    size_t full64 = Dk & ~(size_t)63, full16 = Dk & ~(size_t)15;
    __mmask16 tail = (__mmask16)((1u << (Dk & 15)) - 1);
    for (size_t i = 0; i < n; i++) {
        const float *v = x + i * Dk;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        size_t j = 0;
        for (; j < full64; j += 64) {
            a0 = accumulate(_mm512_loadu_ps(q + j), _mm512_loadu_ps(v + j), a0, l2);
            a1 = accumulate(_mm512_loadu_ps(q + j + 16), _mm512_loadu_ps(v + j + 16), a1, l2);
            a2 = accumulate(_mm512_loadu_ps(q + j + 32), _mm512_loadu_ps(v + j + 32), a2, l2);
            a3 = accumulate(_mm512_loadu_ps(q + j + 48), _mm512_loadu_ps(v + j + 48), a3, l2);
        }
        for (; j < full16; j += 16) a0 = accumulate(_mm512_loadu_ps(q + j), _mm512_loadu_ps(v + j), a0, l2);
        if (tail) a1 = accumulate(_mm512_maskz_loadu_ps(tail, q + full16), _mm512_maskz_loadu_ps(tail, v + full16), a1, l2);
        out[i] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    }
}

/* Four queries against the same stored vectors, each vector loaded once for the four (the
 * list-by-list batched scan). Every pair's distance is bit for bit the one-query kernel's: the same
 * accumulators over the same steps, summed the same way. One stream (many_avx512_one's shape):
 * four accumulators a query over 64-float steps. */
static HK_AVX512 inline void many4_avx512_one(float *const out[4], const float *const q[4], const float *x, size_t n,
                                              size_t Dk, int l2) {
    size_t full64 = Dk & ~(size_t)63, full16 = Dk & ~(size_t)15;
    __mmask16 tail = (__mmask16)((1u << (Dk & 15)) - 1);
    for (size_t i = 0; i < n; i++) {
        const float *v = x + i * Dk;
        __m512 a[4][4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) a[r][0] = a[r][1] = a[r][2] = a[r][3] = _mm512_setzero_ps();
        size_t j = 0;
        for (; j < full64; j += 64) {
            __m512 t0 = _mm512_loadu_ps(v + j), t1 = _mm512_loadu_ps(v + j + 16);
            __m512 t2 = _mm512_loadu_ps(v + j + 32), t3 = _mm512_loadu_ps(v + j + 48);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                a[r][0] = accumulate(_mm512_loadu_ps(q[r] + j), t0, a[r][0], l2);
                a[r][1] = accumulate(_mm512_loadu_ps(q[r] + j + 16), t1, a[r][1], l2);
                a[r][2] = accumulate(_mm512_loadu_ps(q[r] + j + 32), t2, a[r][2], l2);
                a[r][3] = accumulate(_mm512_loadu_ps(q[r] + j + 48), t3, a[r][3], l2);
            }
        }
        for (; j < full16; j += 16) {
            __m512 t = _mm512_loadu_ps(v + j);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) a[r][0] = accumulate(_mm512_loadu_ps(q[r] + j), t, a[r][0], l2);
        }
        if (tail) {
            __m512 t = _mm512_maskz_loadu_ps(tail, v + full16);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) a[r][1] = accumulate(_mm512_maskz_loadu_ps(tail, q[r] + full16), t, a[r][1], l2);
        }
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            out[r][i] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a[r][0], a[r][1]), _mm512_add_ps(a[r][2], a[r][3])));
    }
}

/* The four-vector shape (many_avx512's): four queries by four vectors, one accumulator a pair
 * over 16-float steps; vectors past a multiple of four one at a time, the same sums. */
static HK_AVX512 inline void many4_avx512(float *const out[4], const float *const q[4], const float *x, size_t n,
                                          size_t Dk, int l2) {
    size_t full = Dk & ~(size_t)15;
    __mmask16 tail = (__mmask16)((1u << (Dk & 15)) - 1);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float *v = x + i * Dk;
        __m512 a[4][4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) a[r][0] = a[r][1] = a[r][2] = a[r][3] = _mm512_setzero_ps();
        for (size_t j = 0; j < full; j += 16) {
            __m512 t0 = _mm512_loadu_ps(v + j), t1 = _mm512_loadu_ps(v + Dk + j);
            __m512 t2 = _mm512_loadu_ps(v + 2 * Dk + j), t3 = _mm512_loadu_ps(v + 3 * Dk + j);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                __m512 qq = _mm512_loadu_ps(q[r] + j);
                a[r][0] = accumulate(qq, t0, a[r][0], l2); a[r][1] = accumulate(qq, t1, a[r][1], l2);
                a[r][2] = accumulate(qq, t2, a[r][2], l2); a[r][3] = accumulate(qq, t3, a[r][3], l2);
            }
        }
        if (tail) {
            __m512 t0 = _mm512_maskz_loadu_ps(tail, v + full), t1 = _mm512_maskz_loadu_ps(tail, v + Dk + full);
            __m512 t2 = _mm512_maskz_loadu_ps(tail, v + 2 * Dk + full), t3 = _mm512_maskz_loadu_ps(tail, v + 3 * Dk + full);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                __m512 qq = _mm512_maskz_loadu_ps(tail, q[r] + full);
                a[r][0] = accumulate(qq, t0, a[r][0], l2); a[r][1] = accumulate(qq, t1, a[r][1], l2);
                a[r][2] = accumulate(qq, t2, a[r][2], l2); a[r][3] = accumulate(qq, t3, a[r][3], l2);
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 4; c++) out[r][i + (size_t)c] = _mm512_reduce_add_ps(a[r][c]);
    }
    for (; i < n; i++)
        for (int r = 0; r < 4; r++) many_avx512(out[r] + i, q[r], x + i * Dk, 1, Dk, l2);
}

static HK_AVX512 void l2sqr_many_avx512(float *out, const float *q, const float *x, size_t n, size_t Dk) {
    if (hk_gemv_rows(0) == 1) many_avx512_one(out, q, x, n, Dk, 1);
    else many_avx512(out, q, x, n, Dk, 1);
}

static HK_AVX512 void inner_many_avx512(float *out, const float *q, const float *x, size_t n, size_t Dk) {
    if (hk_gemv_rows(0) == 1) many_avx512_one(out, q, x, n, Dk, 0);
    else many_avx512(out, q, x, n, Dk, 0);
}
static HK_AVX512 void l2sqr_many4_one(float *const out[4], const float *const q[4], const float *x, size_t n, size_t Dk) {
    many4_avx512_one(out, q, x, n, Dk, 1);
}
static HK_AVX512 void inner_many4_one(float *const out[4], const float *const q[4], const float *x, size_t n, size_t Dk) {
    many4_avx512_one(out, q, x, n, Dk, 0);
}
static HK_AVX512 void l2sqr_many4_four(float *const out[4], const float *const q[4], const float *x, size_t n, size_t Dk) {
    many4_avx512(out, q, x, n, Dk, 1);
}
static HK_AVX512 void inner_many4_four(float *const out[4], const float *const q[4], const float *x, size_t n, size_t Dk) {
    many4_avx512(out, q, x, n, Dk, 0);
}

/* AVX2 + FMA, 8 wide; the Dk % 8 tail goes through a masked load. */

static HK_AVX2 inline __m256 accumulate8(__m256 q, __m256 t, __m256 a, int l2) {
    if (l2) {
        t = _mm256_sub_ps(q, t);
        return _mm256_fmadd_ps(t, t, a);
    }
    return _mm256_fmadd_ps(q, t, a);
}

/* One stored vector at a time with four accumulators (8-blocks at j ≡ 0, 8, 16, 24 mod 32, then
 * any further 8-blocks into the first and the masked Dk % 8 tail into the second): on Zen 3 one
 * sequential stream reads a list 35-40% faster than four vectors interleaved (the AVX-512 shape). */
static HK_AVX2 inline void many_avx2(float *out, const float *q, const float *x, size_t n, size_t Dk, int l2) {
    size_t full32 = Dk & ~(size_t)31, full8 = Dk & ~(size_t)7, rest = Dk & 7;
    static const int lanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    __m256i tail = _mm256_loadu_si256((const __m256i *)(lanes + 8 - rest));
    for (size_t i = 0; i < n; i++) {
        const float *v = x + i * Dk;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        size_t j = 0;
        for (; j < full32; j += 32) {
            a0 = accumulate8(_mm256_loadu_ps(q + j), _mm256_loadu_ps(v + j), a0, l2);
            a1 = accumulate8(_mm256_loadu_ps(q + j + 8), _mm256_loadu_ps(v + j + 8), a1, l2);
            a2 = accumulate8(_mm256_loadu_ps(q + j + 16), _mm256_loadu_ps(v + j + 16), a2, l2);
            a3 = accumulate8(_mm256_loadu_ps(q + j + 24), _mm256_loadu_ps(v + j + 24), a3, l2);
        }
        for (; j < full8; j += 8) a0 = accumulate8(_mm256_loadu_ps(q + j), _mm256_loadu_ps(v + j), a0, l2);
        if (rest) a1 = accumulate8(_mm256_maskload_ps(q + full8, tail), _mm256_maskload_ps(v + full8, tail), a1, l2);
        out[i] = hk_hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    }
}

static HK_AVX2 void l2sqr_many_avx2(float *out, const float *q, const float *x, size_t n, size_t Dk) {
    many_avx2(out, q, x, n, Dk, 1);
}

static HK_AVX2 void inner_many_avx2(float *out, const float *q, const float *x, size_t n, size_t Dk) {
    many_avx2(out, q, x, n, Dk, 0);
}
#endif

void hk_l2sqr_many(float *out, const float *q, const float *x, size_t n, size_t Dk) {
#if defined(__x86_64__)
    if (hk_level() >= HK_LEVEL_AVX512) {
        l2sqr_many_avx512(out, q, x, n, Dk);
        return;
    }
    if (hk_level() >= HK_LEVEL_AVX2) {
        l2sqr_many_avx2(out, q, x, n, Dk);
        return;
    }
#endif
    hk_l2sqr_many_portable(out, q, x, n, Dk);
}

void hk_inner_many(float *out, const float *q, const float *x, size_t n, size_t Dk) {
#if defined(__x86_64__)
    if (hk_level() >= HK_LEVEL_AVX512) {
        inner_many_avx512(out, q, x, n, Dk);
        return;
    }
    if (hk_level() >= HK_LEVEL_AVX2) {
        inner_many_avx2(out, q, x, n, Dk);
        return;
    }
#endif
    hk_inner_many_portable(out, q, x, n, Dk);
}

/* Four queries: the AVX-512 tiles, else four one-query calls (the same values either way). */
static void many4(float *const out[4], const float *const q[4], const float *x, size_t n, size_t Dk, int l2) {
#if defined(__x86_64__)
    if (hk_level() >= HK_LEVEL_AVX512) {
        if (hk_gemv_rows(0) == 1) {
            if (l2) l2sqr_many4_one(out, q, x, n, Dk);
            else inner_many4_one(out, q, x, n, Dk);
        } else {
            if (l2) l2sqr_many4_four(out, q, x, n, Dk);
            else inner_many4_four(out, q, x, n, Dk);
        }
        return;
    }
#endif
    for (int r = 0; r < 4; r++) {
        if (l2) hk_l2sqr_many(out[r], q[r], x, n, Dk);
        else hk_inner_many(out[r], q[r], x, n, Dk);
    }
}

void hk_l2sqr_many4(float *const out[4], const float *const q[4], const float *x, size_t n, size_t Dk) {
    many4(out, q, x, n, Dk, 1);
}

void hk_inner_many4(float *const out[4], const float *const q[4], const float *x, size_t n, size_t Dk) {
    many4(out, q, x, n, Dk, 0);
}
