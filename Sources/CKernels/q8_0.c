/*
 * q8_0.c: int8 weights in blocks of 32 with one f32 scale per block (the Q8_0 block layout of
 * GGUF, with the scale kept apart from the values), and the decode GEMV over them.
 *
 * A block holds q[32] in [-127, 127] and d = max|x| / 127, so x ≈ d · q. The GEMV quantizes the
 * activation vector the same way once per token (hk_q8_quantize_act), then for each row sums,
 * block by block, d_w · d_x · Σ q_w q_x, the inner sum in exact int32 arithmetic.
 *
 * The integer dot products multiply unsigned by signed bytes (vpdpbusd, vpmaddubsw), so the
 * activation enters as |q_x| and its sign moves onto the weight: q_w q_x = |q_x| · (sign(q_x) q_w).
 * This is exact because weights never hold -128 (negating it would overflow).
 *
 * Variants, chosen at run time: 2 AVX-512 VNNI (two blocks per 512-bit register), 1 AVX2 (one
 * block per 256-bit register), 0 portable C. All three give the same integer sums; only the
 * order of the f32 accumulation differs.
 */
#include "hmst_kernels.h"
#include "hk_avx2.h"
#include "hk_gemm.h"

#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define HK_X86 1
#endif

static atomic_int q8_forced = -1;
static atomic_int q8_cpu = -1;

static int q8_detect(void) {
#if HK_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512vnni"))
        return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    return 0;
}

int hk_q8_level(void) {
    int l = atomic_load(&q8_cpu);
    if (l < 0) {
        l = q8_detect();
        atomic_store(&q8_cpu, l);
    }
    int f = atomic_load(&q8_forced);
    return (f >= 0 && f < l) ? f : l;
}

void hk_q8_set_max_level(int level) { atomic_store(&q8_forced, level); }

/* ---- quantization -------------------------------------------------------------------------- */

/* One block: s = max|x| / 127, q = round-to-nearest-even(x / s), 0 for an all-zero block. A
 * block holding a NaN gets the scale NaN (and q = 0), as one holding an infinity gets +inf, so
 * the value stays visible to a NaN/Inf scan instead of becoming a finite 0. */
static inline float quantize_block(int8_t *q, const float *x) {
    float amax = 0;
    int nan = 0;
    for (int i = 0; i < HK_Q8_BLOCK; i++) {
        float a = fabsf(x[i]);
        amax = a > amax ? a : amax;
        nan |= a != a;
    }
    if (nan || amax > FLT_MAX) {   /* x * (1/inf) would be NaN for an infinite x: (int)NaN is undefined */
        memset(q, 0, HK_Q8_BLOCK);
        return nan ? NAN : INFINITY;
    }
    float d = amax / 127.0f;
    float id = d > 0 ? 1.0f / d : 0.0f;
    /* round half to even without a libm call, so the loop vectorises on baseline x86-64:
     * adding and removing 1.5 * 2^23 leaves the nearest integer for |v| < 2^22 */
    const float magic = 12582912.0f;
    for (int i = 0; i < HK_Q8_BLOCK; i++) {
        float v = x[i] * id;
        v = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
        v = (v + magic) - magic;
        q[i] = (int8_t)(int)v;
    }
    return d;
}

void hk_q8_quantize(int8_t *q, float *scales, const float *x, size_t n) {
    for (size_t b = 0; b < n / HK_Q8_BLOCK; b++) scales[b] = quantize_block(q + b * HK_Q8_BLOCK, x + b * HK_Q8_BLOCK);
}

void hk_q8_dequantize(float *out, const int8_t *q, const float *scales, size_t n) {
    for (size_t b = 0; b < n / HK_Q8_BLOCK; b++) {
        const float d = scales[b];
        const int8_t *qb = q + b * HK_Q8_BLOCK;
        float *ob = out + b * HK_Q8_BLOCK;
        for (int i = 0; i < HK_Q8_BLOCK; i++) ob[i] = d * (float)qb[i];
    }
}

/* The quantized activation buffer: q[n] int8, |q|[n] uint8, s[nb] f32, and s2[np * 16] f32 (for
 * each pair of blocks, the two scales each repeated 8 times: one AVX-512 register's lanes). */
static inline size_t align64(size_t x) { return (x + 63) & ~(size_t)63; }

typedef struct {
    int8_t *q;
    uint8_t *a;
    float *s;
    float *s2;
} q8_act;

static q8_act act_view(void *buf, size_t n) {
    size_t nb = n / HK_Q8_BLOCK;
    uint8_t *p = (uint8_t *)buf;
    q8_act v;
    v.q = (int8_t *)p;
    v.a = p + align64(n);
    v.s = (float *)(p + 2 * align64(n));
    v.s2 = (float *)(p + 2 * align64(n) + align64(nb * 4));
    return v;
}

size_t hk_q8_act_bytes(size_t n) {
    size_t nb = n / HK_Q8_BLOCK, np = (nb + 1) / 2;
    return 2 * align64(n) + align64(nb * 4) + np * 16 * 4 + 64;
}

void hk_q8_quantize_act(void *buf, const float *x, size_t n) {
    size_t nb = n / HK_Q8_BLOCK, np = (nb + 1) / 2;
    q8_act v = act_view(buf, n);
    hk_q8_quantize(v.q, v.s, x, n);
    for (size_t i = 0; i < n; i++) v.a[i] = (uint8_t)(v.q[i] < 0 ? -v.q[i] : v.q[i]);
    for (size_t p = 0; p < np; p++) {
        float s0 = v.s[2 * p], s1 = 2 * p + 1 < nb ? v.s[2 * p + 1] : 0.0f;
        for (int i = 0; i < 8; i++) {
            v.s2[p * 16 + i] = s0;
            v.s2[p * 16 + 8 + i] = s1;
        }
    }
}

/* ---- GEMV ---------------------------------------------------------------------------------- */

static void gemv_q8_portable(float *y, const int8_t *w, const float *ws, q8_act x, size_t cols, size_t r0, size_t r1) {
    size_t nb = cols / HK_Q8_BLOCK;
    for (size_t r = r0; r < r1; r++) {
        const int8_t *row = w + r * cols;
        const float *sr = ws + r * nb;
        float acc = 0;
        for (size_t b = 0; b < nb; b++) {
            int32_t dot = 0;
            for (int i = 0; i < HK_Q8_BLOCK; i++) dot += (int32_t)row[b * HK_Q8_BLOCK + i] * (int32_t)x.q[b * HK_Q8_BLOCK + i];
            acc += sr[b] * x.s[b] * (float)dot;
        }
        y[r] = acc;
    }
}

#if HK_X86
#define HK_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma")))

static HK_AVX2 void gemv_q8_avx2(float *y, const int8_t *w, const float *ws, q8_act x, size_t cols, size_t r0, size_t r1) {
    size_t nb = cols / HK_Q8_BLOCK;
    const __m256i ones = _mm256_set1_epi16(1);
    for (size_t r = r0; r < r1; r++) {
        const int8_t *row = w + r * cols;
        const float *sr = ws + r * nb;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        size_t b = 0;
        for (; b + 2 <= nb; b += 2) {
            __m256i w0 = _mm256_loadu_si256((const __m256i *)(row + b * 32));
            __m256i w1 = _mm256_loadu_si256((const __m256i *)(row + b * 32 + 32));
            __m256i s0 = _mm256_sign_epi8(w0, _mm256_loadu_si256((const __m256i *)(x.q + b * 32)));
            __m256i s1 = _mm256_sign_epi8(w1, _mm256_loadu_si256((const __m256i *)(x.q + b * 32 + 32)));
            __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)(x.a + b * 32)), s0), ones);
            __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)(x.a + b * 32 + 32)), s1), ones);
            a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(sr[b] * x.s[b]), a0);
            a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_set1_ps(sr[b + 1] * x.s[b + 1]), a1);
        }
        if (b < nb) {
            __m256i w0 = _mm256_loadu_si256((const __m256i *)(row + b * 32));
            __m256i s0 = _mm256_sign_epi8(w0, _mm256_loadu_si256((const __m256i *)(x.q + b * 32)));
            __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)(x.a + b * 32)), s0), ones);
            a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(sr[b] * x.s[b]), a0);
        }
        y[r] = hk_hsum8(_mm256_add_ps(a0, a1));
    }
}

/* Two blocks per register: lanes 0-7 of the vpdpbusd result sum block 2p, lanes 8-15 block
 * 2p+1. Row scales are loaded 16 at a time and spread to the lanes with one permute, whose
 * indices for pair p (p = 0..7) are idx[p]: 2p in lanes 0-7, 2p + 1 in lanes 8-15. */
static HK_VNNI inline void q8_pair_lanes(__m512i idx[8]) {
    for (int p = 0; p < 8; p++) {
        idx[p] = _mm512_set_epi32(2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1,
                                  2 * p, 2 * p, 2 * p, 2 * p, 2 * p, 2 * p, 2 * p, 2 * p);
    }
}

static HK_VNNI inline __m512 q8_pair(__m512 acc, const int8_t *wp, const int8_t *xq, const uint8_t *xa, const float *s2,
                                     __m512 swv, __m512i idx, __mmask64 m) {
    const __m512i zero = _mm512_setzero_si512();
    __m512i wv = _mm512_maskz_loadu_epi8(m, wp);
    __mmask64 neg = _mm512_movepi8_mask(_mm512_maskz_loadu_epi8(m, xq));
    __m512i sw = _mm512_mask_sub_epi8(wv, neg, zero, wv);
    __m512i dp = _mm512_dpbusd_epi32(zero, _mm512_maskz_loadu_epi8(m, xa), sw);
    __m512 sc = _mm512_mul_ps(_mm512_permutexvar_ps(idx, swv), _mm512_loadu_ps(s2));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(dp), sc, acc);
}

static HK_VNNI void gemv_q8_vnni(float *y, const int8_t *w, const float *ws, q8_act x, size_t cols, size_t r0, size_t r1) {
    size_t nb = cols / HK_Q8_BLOCK;
    __m512i idx[8];
    q8_pair_lanes(idx);
    const __mmask64 all = ~(__mmask64)0, low = 0xFFFFFFFFull;
    for (size_t r = r0; r < r1; r++) {
        const int8_t *row = w + r * cols;
        const float *sr = ws + r * nb;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        for (size_t g = 0; g < nb; g += 16) {
            size_t ng = nb - g < 16 ? nb - g : 16;
            __m512 swv = _mm512_maskz_loadu_ps((__mmask16)((1u << ng) - 1), sr + g);
            size_t c0 = g * HK_Q8_BLOCK;
            size_t p = 0;
            for (; 2 * p + 3 < ng; p += 2) {
                size_t o = c0 + 64 * p;
                a0 = q8_pair(a0, row + o, x.q + o, x.a + o, x.s2 + (g / 2 + p) * 16, swv, idx[p], all);
                a1 = q8_pair(a1, row + o + 64, x.q + o + 64, x.a + o + 64, x.s2 + (g / 2 + p + 1) * 16, swv,
                                               idx[p + 1], all);
            }
            for (; 2 * p < ng; p++) {
                size_t o = c0 + 64 * p;
                __mmask64 m = 2 * p + 1 < ng ? all : low;
                a0 = q8_pair(a0, row + o, x.q + o, x.a + o, x.s2 + (g / 2 + p) * 16, swv, idx[p], m);
            }
        }
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    }
}
#endif

void hk_gemv_q8(float *y, const int8_t *w, const float *ws, const void *act, size_t cols, size_t r0, size_t r1) {
    q8_act x = act_view((void *)act, cols);
#if HK_X86
    int l = hk_q8_level();
    if (l >= 2) {
        gemv_q8_vnni(y, w, ws, x, cols, r0, r1);
        return;
    }
    if (l >= 1) {
        gemv_q8_avx2(y, w, ws, x, cols, r0, r1);
        return;
    }
#endif
    gemv_q8_portable(y, w, ws, x, cols, r0, r1);
}

/* ---- the row-quad layout (hmst_kernels.h) ---------------------------------------------------- */

int hk_q8_packable(size_t rows, size_t cols) { return rows >= 4 && cols > 0 && cols % 64 == 0; }

void hk_q8_pack_rows4(int8_t *pq, float *ps, const int8_t *q, const float *s, size_t rows, size_t cols, size_t r0, size_t r1) {
    size_t nb = cols / HK_Q8_BLOCK;
    for (size_t r = r0; r < r1; r++) {
        for (size_t c = 0; c < cols; c += 64) memcpy(pq + hk_rq_value(r, c, rows, cols), q + r * cols + c, 64);
        for (size_t b = 0; b < nb; b++) ps[hk_rq_scale(r, b, rows, nb)] = s[r * nb + b];
    }
}

void hk_q8_unpack_rows4(int8_t *q, float *s, const int8_t *pq, const float *ps, size_t rows, size_t cols) {
    size_t nb = cols / HK_Q8_BLOCK;
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < cols; c += 64) memcpy(q + r * cols + c, pq + hk_rq_value(r, c, rows, cols), 64);
        for (size_t b = 0; b < nb; b++) s[r * nb + b] = ps[hk_rq_scale(r, b, rows, nb)];
    }
}

void hk_q8_dequantize_rows4(float *out, const int8_t *pq, const float *ps, size_t rows, size_t cols, size_t r0, size_t r1) {
    size_t nb = cols / HK_Q8_BLOCK;
    for (size_t r = r0; r < r1; r++)
        for (size_t b = 0; b < nb; b++)
            hk_q8_dequantize(out + (r - r0) * cols + b * HK_Q8_BLOCK, pq + hk_rq_value(r, b * HK_Q8_BLOCK, rows, cols),
                             ps + hk_rq_scale(r, b, rows, nb), HK_Q8_BLOCK);
}

void hk_q8_dequantize_bf16(uint16_t *out, const int8_t *q, const float *scales, size_t n) {
    float block[HK_Q8_BLOCK];
    for (size_t b = 0; b < n / HK_Q8_BLOCK; b++) {
        hk_q8_dequantize(block, q + b * HK_Q8_BLOCK, scales + b, HK_Q8_BLOCK);
        hk_f32_to_bf16(out + b * HK_Q8_BLOCK, block, HK_Q8_BLOCK);
    }
}

/* One row of a row-quad matrix, block by block (rows outside whole quads, and the portable and
 * AVX2 levels). */
static float rq_row_portable(const int8_t *pq, const float *ps, q8_act x, size_t rows, size_t cols, size_t r) {
    size_t nb = cols / HK_Q8_BLOCK;
    float acc = 0;
    for (size_t b = 0; b < nb; b++) {
        const int8_t *v = pq + hk_rq_value(r, b * HK_Q8_BLOCK, rows, cols);
        int32_t dot = 0;
        for (int i = 0; i < HK_Q8_BLOCK; i++) dot += (int32_t)v[i] * (int32_t)x.q[b * HK_Q8_BLOCK + i];
        acc += ps[hk_rq_scale(r, b, rows, nb)] * x.s[b] * (float)dot;
    }
    return acc;
}

#if HK_X86
static HK_AVX2 float rq_row_avx2(const int8_t *pq, const float *ps, q8_act x, size_t rows, size_t cols, size_t r) {
    size_t nb = cols / HK_Q8_BLOCK;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 a0 = _mm256_setzero_ps();
    for (size_t b = 0; b < nb; b++) {
        __m256i w0 = _mm256_loadu_si256((const __m256i *)(pq + hk_rq_value(r, b * HK_Q8_BLOCK, rows, cols)));
        __m256i s0 = _mm256_sign_epi8(w0, _mm256_loadu_si256((const __m256i *)(x.q + b * 32)));
        __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)(x.a + b * 32)), s0), ones);
        a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(ps[hk_rq_scale(r, b, rows, nb)] * x.s[b]), a0);
    }
    return hk_hsum8(a0);
}

/* Four rows of a quad at a time: per 64-column chunk one activation load and sign mask serve
 * the four rows' 256 contiguous bytes; per run of 16 blocks each row's scales are multiplied by
 * the activation's once, and a permute hands each pair of blocks its two products. (A software
 * prefetch, and the eight pairs of a run unrolled by hand, both made it slower from DRAM on
 * Zen 5: 27 GB/s against 46 for this form on one core.) */
static HK_VNNI inline void rq_pairs(__m512 *a, const int8_t *vb, const float *sg, size_t n, size_t j, q8_act x,
                                    const __m512i *idx) {
    const __m512i zero = _mm512_setzero_si512();
    __mmask16 m = (__mmask16)((1u << n) - 1);
    __m512 xs = _mm512_maskz_loadu_ps(m, x.s + j);
    __m512 c0 = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, sg), xs), c1 = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, sg + n), xs);
    __m512 c2 = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, sg + 2 * n), xs), c3 = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, sg + 3 * n), xs);
    __m512 a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
    for (size_t p = 0; p < n / 2; p++) {
        size_t o = j * HK_Q8_BLOCK + 64 * p;
        const int8_t *v = vb + o * 4;
        __m512i xa = _mm512_load_si512((const void *)(x.a + o));
        __mmask64 neg = _mm512_movepi8_mask(_mm512_load_si512((const void *)(x.q + o)));
        __m512i w0 = _mm512_load_si512((const void *)v), w1 = _mm512_load_si512((const void *)(v + 64));
        __m512i w2 = _mm512_load_si512((const void *)(v + 128)), w3 = _mm512_load_si512((const void *)(v + 192));
        __m512i d0 = _mm512_dpbusd_epi32(zero, xa, _mm512_mask_sub_epi8(w0, neg, zero, w0));
        __m512i d1 = _mm512_dpbusd_epi32(zero, xa, _mm512_mask_sub_epi8(w1, neg, zero, w1));
        __m512i d2 = _mm512_dpbusd_epi32(zero, xa, _mm512_mask_sub_epi8(w2, neg, zero, w2));
        __m512i d3 = _mm512_dpbusd_epi32(zero, xa, _mm512_mask_sub_epi8(w3, neg, zero, w3));
        a0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d0), _mm512_permutexvar_ps(idx[p], c0), a0);
        a1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d1), _mm512_permutexvar_ps(idx[p], c1), a1);
        a2 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d2), _mm512_permutexvar_ps(idx[p], c2), a2);
        a3 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d3), _mm512_permutexvar_ps(idx[p], c3), a3);
    }
    a[0] = a0, a[1] = a1, a[2] = a2, a[3] = a3;
}

/* Quads q0..q1 (multiples of 4) of a row-quad matrix whose buffers are 64-byte aligned (Q8Tensor). */
static HK_VNNI void rq_quads_vnni(float *y, const int8_t *pq, const float *ps, q8_act x, size_t cols, size_t q0, size_t q1) {
    size_t nb = cols / HK_Q8_BLOCK;
    __m512i idx[8];
    q8_pair_lanes(idx);
    for (size_t r = q0; r < q1; r += 4) {
        const int8_t *vb = pq + r * cols;
        const float *sb = ps + r * nb;
        __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        size_t j = 0;
        for (; j + 16 <= nb; j += 16) rq_pairs(a, vb, sb + 4 * j, 16, j, x, idx);
        if (j < nb) rq_pairs(a, vb, sb + 4 * j, nb - j, j, x, idx);   /* a shorter last run (an even count) */
        y[r] = _mm512_reduce_add_ps(a[0]);
        y[r + 1] = _mm512_reduce_add_ps(a[1]);
        y[r + 2] = _mm512_reduce_add_ps(a[2]);
        y[r + 3] = _mm512_reduce_add_ps(a[3]);
    }
}
#endif

void hk_gemv_q8_rows4(float *y, const int8_t *pq, const float *ps, const void *act, size_t rows, size_t cols, size_t r0,
                      size_t r1) {
    q8_act x = act_view((void *)act, cols);
    int l = hk_q8_level();
    size_t r = r0;
#if HK_X86
    if (l >= 2 && (uintptr_t)pq % 64 == 0) {   /* (aligned loads: Q8Tensor's buffers are) */
        /* rows before the first whole quad, the quads, then what is left */
        size_t full = rows & ~(size_t)3;
        size_t q0 = (r0 + 3) & ~(size_t)3, q1 = (r1 < full ? r1 : full) & ~(size_t)3;
        if (q0 < q1) {
            for (; r < q0; r++) y[r] = rq_row_avx2(pq, ps, x, rows, cols, r);
            rq_quads_vnni(y, pq, ps, x, cols, q0, q1);
            r = q1;
        }
    }
    if (l >= 1) {
        for (; r < r1; r++) y[r] = rq_row_avx2(pq, ps, x, rows, cols, r);
        return;
    }
#endif
    (void)l;
    for (; r < r1; r++) y[r] = rq_row_portable(pq, ps, x, rows, cols, r);
}

/* ---- checks -------------------------------------------------------------------------------- */

/* Scans in chunks whose test the compiler vectorises (an OR over exponent-all-ones flags), and
 * looks element by element only inside a chunk that has a bad value. */
#define SCAN_CHUNK 1024

size_t hk_find_nonfinite_f32(const float *x, size_t n) {
    const uint32_t *u = (const uint32_t *)x;
    for (size_t c = 0; c < n; c += SCAN_CHUNK) {
        size_t e = n - c < SCAN_CHUNK ? n - c : SCAN_CHUNK;
        uint32_t bad = 0;
        for (size_t i = 0; i < e; i++) bad |= ((u[c + i] & 0x7f800000u) == 0x7f800000u);
        if (bad)
            for (size_t i = 0; i < e; i++)
                if ((u[c + i] & 0x7f800000u) == 0x7f800000u) return c + i;
    }
    return (size_t)-1;
}

size_t hk_find_nonfinite_16(const uint16_t *x, size_t n, int is_bf16) {
    const uint16_t mask = is_bf16 ? 0x7f80u : 0x7c00u;
    for (size_t c = 0; c < n; c += SCAN_CHUNK) {
        size_t e = n - c < SCAN_CHUNK ? n - c : SCAN_CHUNK;
        uint16_t bad = 0;
        for (size_t i = 0; i < e; i++) bad |= (uint16_t)((x[c + i] & mask) == mask);
        if (bad)
            for (size_t i = 0; i < e; i++)
                if ((x[c + i] & mask) == mask) return c + i;
    }
    return (size_t)-1;
}

size_t hk_find_i8_value(const int8_t *x, size_t n, int8_t value) {
    for (size_t c = 0; c < n; c += SCAN_CHUNK) {
        size_t e = n - c < SCAN_CHUNK ? n - c : SCAN_CHUNK;
        uint8_t hit = 0;
        for (size_t i = 0; i < e; i++) hit |= (uint8_t)(x[c + i] == value);
        if (hit)
            for (size_t i = 0; i < e; i++)
                if (x[c + i] == value) return c + i;
    }
    return (size_t)-1;
}
