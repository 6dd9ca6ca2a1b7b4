/*
 * vmath.c: the exp-heavy elementwise ops of training and inference (softmax, SiLU gates and
 * their backward), the AdamW update and the gradient norm's sum of squares, as 16-wide AVX-512 or 8-wide AVX2 loops with a
 * polynomial exp, and portable loops over libm otherwise. The vector exp reduces x = n·ln2 + r (|r| <= ln2/2),
 * evaluates a degree-6 polynomial for e^r and scales by 2^n (vscalefps): within 2 ulp of expf
 * over the whole float range, exact 0 below -104 and +inf above 88.7.
 */
#include <math.h>

#include "hmst_kernels.h"
#include "hk_avx2.h"

float hk_softmax_portable(float *x, size_t n);
void hk_silu_mul_portable(float *out, const float *a, const float *b, size_t n);

void hk_swiglu_backward_portable(float *da, float *db, const float *dh, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + expf(-a[i]));
        da[i] = dh[i] * b[i] * s * (1.0f + a[i] * (1.0f - s));
        db[i] = dh[i] * a[i] * s;
    }
}

static double sumsq_blocks_portable(const float *x, size_t n, size_t block) {
    double total = 0;
    for (size_t i0 = 0; i0 < n; i0 += block) {
        size_t end = n - i0 > block ? i0 + block : n;
        float s = 0;
        for (size_t i = i0; i < end; i++) s += x[i] * x[i];
        total += s;
    }
    return total;
}

/* AdamW, one element: the same operations in the same order (fmaf where the vector paths use an
 * FMA) in every path, so an element's update does not depend on the path or its position. */
static inline void adamw_one(float *p, float g, float *m, float *v, const hk_adam_params *hp) {
    float gi = g * hp->grad_scale;
    float mi = fmaf(hp->beta1, *m, (1 - hp->beta1) * gi);
    float vi = fmaf(hp->beta2, *v, (1 - hp->beta2) * gi * gi);
    *m = mi;
    *v = vi;
    float d = (mi / hp->bc1) / (sqrtf(vi / hp->bc2) + hp->eps);
    *p = fmaf(-hp->lr, fmaf(hp->weight_decay, *p, d), *p);
}

static void adamw_portable(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, size_t n,
                           const hk_adam_params *hp) {
    for (size_t i = 0; i < n; i++) adamw_one(p + i, g[i], m + i, v + i, hp);
}

#if defined(__x86_64__)
#include <immintrin.h>
#define HK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))

static HK_AVX512 inline __m512 exp16(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.7f)), _mm512_set1_ps(-104.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504089f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

static HK_AVX512 float softmax_avx512(float *x, size_t n) {
    __m512 vm = _mm512_set1_ps(-INFINITY);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) vm = _mm512_max_ps(vm, _mm512_loadu_ps(x + i));
    if (i < n) vm = _mm512_max_ps(vm, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), (__mmask16)((1u << (n - i)) - 1), x + i));
    float m = _mm512_reduce_max_ps(vm);
    if (m == -INFINITY) {
        for (i = 0; i < n; i++) x[i] = 1.0f / (float)n;
        return -INFINITY;
    }
    __m512 mm = _mm512_set1_ps(m), vs = _mm512_setzero_ps();
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), mm));
        _mm512_storeu_ps(x + i, e);
        vs = _mm512_add_ps(vs, e);
    }
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), mm));
        e = _mm512_maskz_mov_ps(k, e);
        _mm512_mask_storeu_ps(x + i, k, e);
        vs = _mm512_add_ps(vs, e);
    }
    float sum = _mm512_reduce_add_ps(vs);
    __m512 inv = _mm512_set1_ps(1.0f / sum);
    for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), inv));
    for (; i < n; i++) x[i] *= 1.0f / sum;
    return m + logf(sum);
}

/* sigmoid(z) = 1 / (1 + e^-z) */
static HK_AVX512 inline __m512 sigmoid16(__m512 z) {
    return _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), exp16(_mm512_sub_ps(_mm512_setzero_ps(), z))));
}

static HK_AVX512 void silu_mul_avx512(float *out, const float *a, const float *b, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 z = _mm512_loadu_ps(a + i);
        _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_mul_ps(z, sigmoid16(z)), _mm512_loadu_ps(b + i)));
    }
    if (i < n) hk_silu_mul_portable(out + i, a + i, b + i, n - i);
}

static HK_AVX512 void swiglu_backward_avx512(float *da, float *db, const float *dh, const float *a, const float *b, size_t n) {
    size_t i = 0;
    __m512 one = _mm512_set1_ps(1.0f);
    for (; i + 16 <= n; i += 16) {
        __m512 z = _mm512_loadu_ps(a + i), s = sigmoid16(z), d = _mm512_loadu_ps(dh + i);
        __m512 ds = _mm512_mul_ps(s, _mm512_fmadd_ps(z, _mm512_sub_ps(one, s), one)); /* s (1 + z (1 - s)) */
        _mm512_storeu_ps(da + i, _mm512_mul_ps(_mm512_mul_ps(d, _mm512_loadu_ps(b + i)), ds));
        _mm512_storeu_ps(db + i, _mm512_mul_ps(d, _mm512_mul_ps(z, s)));
    }
    if (i < n) hk_swiglu_backward_portable(da + i, db + i, dh + i, a + i, b + i, n - i);
}

static HK_AVX512 double sumsq_blocks_avx512(const float *x, size_t n, size_t block) {
    double total = 0;
    for (size_t i0 = 0; i0 < n; i0 += block) {
        size_t end = n - i0 > block ? i0 + block : n, i = i0;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (; i + 64 <= end; i += 64) {
            __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);
            __m512 x2 = _mm512_loadu_ps(x + i + 32), x3 = _mm512_loadu_ps(x + i + 48);
            a0 = _mm512_fmadd_ps(x0, x0, a0);
            a1 = _mm512_fmadd_ps(x1, x1, a1);
            a2 = _mm512_fmadd_ps(x2, x2, a2);
            a3 = _mm512_fmadd_ps(x3, x3, a3);
        }
        for (; i + 16 <= end; i += 16) {
            __m512 x0 = _mm512_loadu_ps(x + i);
            a0 = _mm512_fmadd_ps(x0, x0, a0);
        }
        float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
        for (; i < end; i++) s += x[i] * x[i];
        total += s;
    }
    return total;
}

/* Written out in intrinsics: the compiler keeps a loop with sqrtf scalar (sqrtf may set errno), and
 * the scalar loop was a tenth of a bf16 training step. Tails are masked, so every element goes
 * through the same vector operations. */
static HK_AVX512 void adamw_avx512(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, size_t n,
                                   const hk_adam_params *hp) {
    const __m512 scale = _mm512_set1_ps(hp->grad_scale), b1 = _mm512_set1_ps(hp->beta1), b2 = _mm512_set1_ps(hp->beta2);
    const __m512 c1 = _mm512_set1_ps(1 - hp->beta1), c2 = _mm512_set1_ps(1 - hp->beta2);
    const __m512 bc1 = _mm512_set1_ps(hp->bc1), bc2 = _mm512_set1_ps(hp->bc2), eps = _mm512_set1_ps(hp->eps);
    const __m512 nlr = _mm512_set1_ps(-hp->lr), wd = _mm512_set1_ps(hp->weight_decay);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 gi = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, g + i), scale);
        __m512 mi = _mm512_fmadd_ps(b1, _mm512_maskz_loadu_ps(k, m + i), _mm512_mul_ps(c1, gi));
        __m512 vi = _mm512_fmadd_ps(b2, _mm512_maskz_loadu_ps(k, v + i), _mm512_mul_ps(_mm512_mul_ps(c2, gi), gi));
        _mm512_mask_storeu_ps(m + i, k, mi);
        _mm512_mask_storeu_ps(v + i, k, vi);
        __m512 d = _mm512_div_ps(_mm512_div_ps(mi, bc1), _mm512_add_ps(_mm512_sqrt_ps(_mm512_div_ps(vi, bc2)), eps));
        __m512 pi = _mm512_maskz_loadu_ps(k, p + i);
        _mm512_mask_storeu_ps(p + i, k, _mm512_fmadd_ps(nlr, _mm512_fmadd_ps(wd, pi, d), pi));
    }
}

/* AVX2 + FMA: the same exp, 8 wide. Without vscalefps, 2^n is built in the exponent field in two
 * halves (2^(n>>1) · 2^(n - (n>>1)), each within a normal float's range for n in [-150, 128]), so
 * large arguments and subnormal results come out as AVX-512's do. */

static HK_AVX2 inline __m256 pow2i8(__m256i n) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23));
}

static HK_AVX2 inline __m256 exp8(__m256 x) {
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.7f)), _mm256_set1_ps(-104.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504089f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187e-06f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i ni = _mm256_cvtps_epi32(n), n1 = _mm256_srai_epi32(ni, 1);
    return _mm256_mul_ps(_mm256_mul_ps(p, pow2i8(n1)), pow2i8(_mm256_sub_epi32(ni, n1)));
}

static HK_AVX2 float softmax_avx2(float *x, size_t n) {
    __m256 vm = _mm256_set1_ps(-INFINITY);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + i));
    float m = hk_hmax8(vm);
    for (size_t j = i; j < n; j++) m = x[j] > m ? x[j] : m;
    if (n == 0 || m == -INFINITY) {
        for (i = 0; i < n; i++) x[i] = 1.0f / (float)n;
        return -INFINITY;
    }
    __m256 mm = _mm256_set1_ps(m), vs = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mm));
        _mm256_storeu_ps(x + i, e);
        vs = _mm256_add_ps(vs, e);
    }
    if (i < n) { /* the tail through the same exp, padded with -inf (whose exp is 0) */
        float t[8];
        for (size_t j = 0; j < 8; j++) t[j] = i + j < n ? x[i + j] : -INFINITY;
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(t), mm));
        e = _mm256_and_ps(e, _mm256_cmp_ps(_mm256_loadu_ps(t), _mm256_set1_ps(-INFINITY), _CMP_NEQ_OQ));
        _mm256_storeu_ps(t, e);
        for (size_t j = 0; i + j < n; j++) x[i + j] = t[j];
        vs = _mm256_add_ps(vs, e);
    }
    float sum = hk_hsum8(vs);
    __m256 inv = _mm256_set1_ps(1.0f / sum);
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    for (; i < n; i++) x[i] *= 1.0f / sum;
    return m + logf(sum);
}

static HK_AVX2 inline __m256 sigmoid8(__m256 z) {
    return _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), exp8(_mm256_sub_ps(_mm256_setzero_ps(), z))));
}

static HK_AVX2 void silu_mul_avx2(float *out, const float *a, const float *b, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 z = _mm256_loadu_ps(a + i);
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(z, sigmoid8(z)), _mm256_loadu_ps(b + i)));
    }
    if (i < n) hk_silu_mul_portable(out + i, a + i, b + i, n - i);
}

static HK_AVX2 void swiglu_backward_avx2(float *da, float *db, const float *dh, const float *a, const float *b, size_t n) {
    size_t i = 0;
    __m256 one = _mm256_set1_ps(1.0f);
    for (; i + 8 <= n; i += 8) {
        __m256 z = _mm256_loadu_ps(a + i), s = sigmoid8(z), d = _mm256_loadu_ps(dh + i);
        __m256 ds = _mm256_mul_ps(s, _mm256_fmadd_ps(z, _mm256_sub_ps(one, s), one));
        _mm256_storeu_ps(da + i, _mm256_mul_ps(_mm256_mul_ps(d, _mm256_loadu_ps(b + i)), ds));
        _mm256_storeu_ps(db + i, _mm256_mul_ps(d, _mm256_mul_ps(z, s)));
    }
    if (i < n) hk_swiglu_backward_portable(da + i, db + i, dh + i, a + i, b + i, n - i);
}

static HK_AVX2 double sumsq_blocks_avx2(const float *x, size_t n, size_t block) {
    double total = 0;
    for (size_t i0 = 0; i0 < n; i0 += block) {
        size_t end = n - i0 > block ? i0 + block : n, i = i0;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (; i + 32 <= end; i += 32) {
            __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);
            __m256 x2 = _mm256_loadu_ps(x + i + 16), x3 = _mm256_loadu_ps(x + i + 24);
            a0 = _mm256_fmadd_ps(x0, x0, a0);
            a1 = _mm256_fmadd_ps(x1, x1, a1);
            a2 = _mm256_fmadd_ps(x2, x2, a2);
            a3 = _mm256_fmadd_ps(x3, x3, a3);
        }
        for (; i + 8 <= end; i += 8) {
            __m256 x0 = _mm256_loadu_ps(x + i);
            a0 = _mm256_fmadd_ps(x0, x0, a0);
        }
        float s = hk_hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
        for (; i < end; i++) s += x[i] * x[i];
        total += s;
    }
    return total;
}

static HK_AVX2 void adamw_avx2(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, size_t n,
                               const hk_adam_params *hp) {
    const __m256 scale = _mm256_set1_ps(hp->grad_scale), b1 = _mm256_set1_ps(hp->beta1), b2 = _mm256_set1_ps(hp->beta2);
    const __m256 c1 = _mm256_set1_ps(1 - hp->beta1), c2 = _mm256_set1_ps(1 - hp->beta2);
    const __m256 bc1 = _mm256_set1_ps(hp->bc1), bc2 = _mm256_set1_ps(hp->bc2), eps = _mm256_set1_ps(hp->eps);
    const __m256 nlr = _mm256_set1_ps(-hp->lr), wd = _mm256_set1_ps(hp->weight_decay);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 gi = _mm256_mul_ps(_mm256_loadu_ps(g + i), scale);
        __m256 mi = _mm256_fmadd_ps(b1, _mm256_loadu_ps(m + i), _mm256_mul_ps(c1, gi));
        __m256 vi = _mm256_fmadd_ps(b2, _mm256_loadu_ps(v + i), _mm256_mul_ps(_mm256_mul_ps(c2, gi), gi));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        __m256 d = _mm256_div_ps(_mm256_div_ps(mi, bc1), _mm256_add_ps(_mm256_sqrt_ps(_mm256_div_ps(vi, bc2)), eps));
        __m256 pi = _mm256_loadu_ps(p + i);
        _mm256_storeu_ps(p + i, _mm256_fmadd_ps(nlr, _mm256_fmadd_ps(wd, pi, d), pi));
    }
    for (; i < n; i++) adamw_one(p + i, g[i], m + i, v + i, hp);  /* the same operations, one at a time */
}
#endif

float hk_softmax(float *x, size_t n) {
#if defined(__x86_64__)
    if (hk_level() >= HK_LEVEL_AVX512) return softmax_avx512(x, n);
    if (hk_level() >= HK_LEVEL_AVX2) return softmax_avx2(x, n);
#endif
    return hk_softmax_portable(x, n);
}

void hk_silu_mul(float *out, const float *a, const float *b, size_t n) {
#if defined(__x86_64__)
    if (hk_level() >= HK_LEVEL_AVX512) { silu_mul_avx512(out, a, b, n); return; }
    if (hk_level() >= HK_LEVEL_AVX2) { silu_mul_avx2(out, a, b, n); return; }
#endif
    hk_silu_mul_portable(out, a, b, n);
}

void hk_swiglu_backward(float *da, float *db, const float *dh, const float *a, const float *b, size_t n) {
#if defined(__x86_64__)
    if (hk_level() >= HK_LEVEL_AVX512) { swiglu_backward_avx512(da, db, dh, a, b, n); return; }
    if (hk_level() >= HK_LEVEL_AVX2) { swiglu_backward_avx2(da, db, dh, a, b, n); return; }
#endif
    hk_swiglu_backward_portable(da, db, dh, a, b, n);
}

void hk_adamw_update(float *p, const float *g, float *m, float *v, size_t n, const hk_adam_params *hp) {
#if defined(__x86_64__)
    if (hk_level() >= HK_LEVEL_AVX512) { adamw_avx512(p, g, m, v, n, hp); return; }
    if (hk_level() >= HK_LEVEL_AVX2) { adamw_avx2(p, g, m, v, n, hp); return; }
#endif
    adamw_portable(p, g, m, v, n, hp);
}

double hk_sumsq_blocks(const float *x, size_t n, size_t block) {
    if (block == 0) block = n ? n : 1;
#if defined(__x86_64__)
    if (hk_level() >= HK_LEVEL_AVX512) return sumsq_blocks_avx512(x, n, block);
    if (hk_level() >= HK_LEVEL_AVX2) return sumsq_blocks_avx2(x, n, block);
#endif
    return sumsq_blocks_portable(x, n, block);
}
