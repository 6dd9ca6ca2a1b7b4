/*
 * gemm_bf16.c: the mixed-precision matmul OpenBLAS 0.3.21 lacks (no cblas_sbgemm in Debian's
 * build): C = alpha * op(A) op(B) + beta * C with both operands rounded to bf16 and every
 * product accumulated in f32.
 *
 * Layout follows GotoBLAS: for each block of NC columns and KC depth, B is packed into
 * 32-column panels of bf16 pairs [KC/2][32][2]; for each block of MC rows, A is packed into
 * 8-row panels [KC/2][8][2]; an 8x32 micro-kernel keeps its 16 accumulators in registers and
 * issues one vdpbf16ps (32 multiply-adds) per row and half-panel for every pair of k. A pair
 * holds (k even, k odd) in one 32-bit lane, which is exactly what vdpbf16ps multiplies.
 * Without AVX512-BF16 the same packed panels go through a portable micro-kernel, so both
 * paths round identically and differ only in summation order.
 * hk_gemm_bf16_wt runs the same driver on weights already stored as bf16 (prefill), and
 * hk_gemv_bf16_dot, at the end, is decode's GEMV with x rounded to bf16.
 */
#include "hmst_kernels.h"
#include "hk_gemm.h"

#include <stdlib.h>
#include <string.h>

enum { MR = 8, NR = 32, KC = 256, MC = 64, NC = 1024 };

/* f32 -> bf16 bits, round to nearest even; NaN stays a quiet NaN. Branch-free, so the
 * packing loops below vectorise. */
static inline uint32_t bf16_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16, quiet = (u >> 16) | 0x40u;
    return (u & 0x7fffffffu) > 0x7f800000u ? quiet : rounded;
}

/* Packing, one loop per storage order so each reads memory contiguously.
 * pack_a: op(A)[m0 .. m0+mc, k0 .. k0+kc] -> panels of MR rows: out[panel][kc/2][MR] pairs.
 * pack_b: op(B)[k0 .. k0+kc, n0 .. n0+nc] -> panels of NR columns: out[panel][kc/2][NR] pairs.
 * Rows past mc / columns past nc / the odd k past kc are zero. */
#define HK_DEFINE_PACKERS(SUFFIX, ATTR)                                                                          \
    static ATTR void pack_a##SUFFIX(uint32_t *out, const float *A, size_t lda, int transA, size_t m0, size_t mc,   \
                                    size_t k0, size_t kc) {                                                     \
        size_t kp = (kc + 1) / 2, full = kc / 2;                                                                \
        for (size_t p = 0; p * MR < mc; p++) {                                                                  \
            uint32_t *dst = out + p * kp * MR;                                                                  \
            size_t rows = mc - p * MR < MR ? mc - p * MR : MR;                                                  \
            if (rows < MR) memset(dst, 0, kp * MR * 4);                                                         \
            if (!transA) {                                                                                      \
                for (size_t r = 0; r < rows; r++) {                                                             \
                    const float *src = A + (m0 + p * MR + r) * lda + k0;                                        \
                    for (size_t j = 0; j < full; j++)                                                           \
                        dst[j * MR + r] = bf16_bits(src[2 * j]) | (bf16_bits(src[2 * j + 1]) << 16);             \
                    if (kc & 1) dst[full * MR + r] = bf16_bits(src[kc - 1]);                                    \
                }                                                                                               \
            } else {                                                                                            \
                for (size_t j = 0; j < kp; j++) {                                                               \
                    const float *r0 = A + (k0 + 2 * j) * lda + m0 + p * MR;                                     \
                    const float *r1 = r0 + lda;                                                                 \
                    int odd = 2 * j + 1 >= kc;                                                                  \
                    for (size_t r = 0; r < rows; r++)                                                           \
                        dst[j * MR + r] = bf16_bits(r0[r]) | (odd ? 0u : bf16_bits(r1[r]) << 16);               \
                }                                                                                               \
            }                                                                                                   \
        }                                                                                                       \
    }                                                                                                           \
    static ATTR void pack_b##SUFFIX(uint32_t *out, const float *B, size_t ldb, int transB, size_t k0, size_t kc,   \
                                    size_t n0, size_t nc) {                                                     \
        size_t kp = (kc + 1) / 2, full = kc / 2;                                                                \
        for (size_t p = 0; p * NR < nc; p++) {                                                                  \
            uint32_t *dst = out + p * kp * NR;                                                                  \
            size_t cols = nc - p * NR < NR ? nc - p * NR : NR;                                                  \
            if (cols < NR) memset(dst, 0, kp * NR * 4);                                                         \
            if (transB) {                                                                                       \
                for (size_t c = 0; c < cols; c++) {                                                             \
                    const float *src = B + (n0 + p * NR + c) * ldb + k0;                                        \
                    for (size_t j = 0; j < full; j++)                                                           \
                        dst[j * NR + c] = bf16_bits(src[2 * j]) | (bf16_bits(src[2 * j + 1]) << 16);             \
                    if (kc & 1) dst[full * NR + c] = bf16_bits(src[kc - 1]);                                    \
                }                                                                                               \
            } else {                                                                                            \
                for (size_t j = 0; j < kp; j++) {                                                               \
                    const float *r0 = B + (k0 + 2 * j) * ldb + n0 + p * NR;                                     \
                    const float *r1 = r0 + ldb;                                                                 \
                    if (2 * j + 1 < kc) {                                                                       \
                        for (size_t c = 0; c < cols; c++) dst[j * NR + c] = bf16_bits(r0[c]) | (bf16_bits(r1[c]) << 16); \
                    } else {                                                                                    \
                        for (size_t c = 0; c < cols; c++) dst[j * NR + c] = bf16_bits(r0[c]);                   \
                    }                                                                                           \
                }                                                                                               \
            }                                                                                                   \
        }                                                                                                       \
    }

HK_DEFINE_PACKERS(_portable, )
#if defined(__x86_64__)
HK_DEFINE_PACKERS(_avx512, __attribute__((target("avx512f,avx512bw,avx512vl"))))
#endif

/* Per-thread packing scratch, grown on demand and freed when the thread exits. */
#include <pthread.h>
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
typedef struct { uint32_t *a, *b; size_t a_n, b_n; } scratch_t;
static void scratch_free(void *p) {
    scratch_t *s = p;
    free(s->a);
    free(s->b);
    free(s);
}
static void scratch_init(void) { pthread_key_create(&scratch_key, scratch_free); }
static scratch_t *scratch_get(size_t a_n, size_t b_n) {
    pthread_once(&scratch_once, scratch_init);
    scratch_t *s = pthread_getspecific(scratch_key);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s || pthread_setspecific(scratch_key, s) != 0) { free(s); return NULL; }
    }
    if (s->a_n < a_n) { free(s->a); s->a = aligned_alloc(64, a_n * 4); s->a_n = s->a ? a_n : 0; }
    if (s->b_n < b_n) { free(s->b); s->b = aligned_alloc(64, b_n * 4); s->b_n = s->b ? b_n : 0; }
    return s->a && s->b ? s : NULL;
}

int hk_thread_scratch(size_t a_n, size_t b_n, uint32_t **a, uint32_t **b) {
    scratch_t *s = scratch_get(a_n, b_n);
    if (!s) return -1;
    *a = s->a;
    *b = s->b;
    return 0;
}

static inline float lo_f(uint32_t v) { uint32_t u = v << 16; float f; memcpy(&f, &u, 4); return f; }
static inline float hi_f(uint32_t v) { uint32_t u = v & 0xffff0000u; float f; memcpy(&f, &u, 4); return f; }

/* C[mr, nr] += alpha * Apanel · Bpanel over kp pairs, or C = alpha * Apanel · Bpanel when
 * overwrite (the first depth block of a beta = 0 call: C is neither cleared nor read) (portable). */
static void micro_portable(float *C, size_t ldc, const uint32_t *a, const uint32_t *b, size_t kp,
                           size_t mr, size_t nr, float alpha, int overwrite) {
    float acc[MR][NR];
    memset(acc, 0, sizeof acc);
    for (size_t j = 0; j < kp; j++) {
        for (size_t r = 0; r < MR; r++) {
            float a0 = lo_f(a[j * MR + r]), a1 = hi_f(a[j * MR + r]);
            for (size_t c = 0; c < NR; c++) acc[r][c] += a0 * lo_f(b[j * NR + c]) + a1 * hi_f(b[j * NR + c]);
        }
    }
    for (size_t r = 0; r < mr; r++)
        for (size_t c = 0; c < nr; c++) C[r * ldc + c] = overwrite ? alpha * acc[r][c] : C[r * ldc + c] + alpha * acc[r][c];
}

#if defined(__x86_64__)
#include <immintrin.h>
#define HK_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

static HK_BF16 void micro_avx512bf16(float *C, size_t ldc, const uint32_t *a, const uint32_t *b, size_t kp,
                                     size_t mr, size_t nr, float alpha, int overwrite) {
    __m512 acc[MR][2];
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    /* the C tile's lines on their way while the products run: a C larger than the caches
     * (an LM head's logits) would otherwise take its misses at the stores, one tile at a time */
    for (size_t r = 0; r < mr; r++) {
        _mm_prefetch((const char *)(C + r * ldc), _MM_HINT_T0);
        if (nr > 16) _mm_prefetch((const char *)(C + r * ldc + 16), _MM_HINT_T0);
    }
    for (size_t j = 0; j < kp; j++) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512((const void *)(b + j * NR));
        __m512bh b1 = (__m512bh)_mm512_loadu_si512((const void *)(b + j * NR + 16));
        const uint32_t *ap = a + j * MR;
#define HK_ROW(r)                                                           \
        {                                                                   \
            __m512bh av = (__m512bh)_mm512_set1_epi32((int)ap[r]);          \
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);                \
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);                \
        }
        HK_ROW(0) HK_ROW(1) HK_ROW(2) HK_ROW(3) HK_ROW(4) HK_ROW(5) HK_ROW(6) HK_ROW(7)
#undef HK_ROW
    }
    __m512 va = _mm512_set1_ps(alpha);
    __mmask16 m0 = nr >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? (__mmask16)0xffff : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
    if (overwrite) {
        for (size_t r = 0; r < mr; r++) {
            float *c = C + r * ldc;
            _mm512_mask_storeu_ps(c, m0, _mm512_mul_ps(va, acc[r][0]));
            if (m1) _mm512_mask_storeu_ps(c + 16, m1, _mm512_mul_ps(va, acc[r][1]));
        }
        return;
    }
    for (size_t r = 0; r < mr; r++) {
        float *c = C + r * ldc;
        _mm512_mask_storeu_ps(c, m0, _mm512_fmadd_ps(va, acc[r][0], _mm512_maskz_loadu_ps(m0, c)));
        if (m1) _mm512_mask_storeu_ps(c + 16, m1, _mm512_fmadd_ps(va, acc[r][1], _mm512_maskz_loadu_ps(m1, c + 16)));
    }
}
#endif

#if defined(__x86_64__)
/* Packers with the BF16 conversion instructions (vcvtne2ps2bf16: round to nearest even, as
 * bf16_bits; input denormals read as zero). 16 pairs per step; the portable packers above
 * finish ragged edges. */
static HK_BF16 inline __m512i consecutive16(const float *src) {
    /* 32 consecutive floats -> 16 pairs (src[2i], src[2i+1]) in order */
    return (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + 16), _mm512_loadu_ps(src));
}

/* Two rows' pairs: lanes i = (k0[i], k1[i]) for 16 columns, low half k0; one conversion and one
 * word permute. */
static HK_BF16 inline __m512i interleave16(const float *k0, const float *k1) {
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                         23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    __m512i both = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(k1), _mm512_loadu_ps(k0));  /* words 0-15 k0, 16-31 k1 */
    return _mm512_permutexvar_epi16(idx, both);
}

/* Eight rows of 32 consecutive floats (row r at src + r * lds) -> their 16 pairs transposed:
 * dst[i * stride + r] = pair i of row r. Two unpack rounds put four rows of one pair in each
 * 128-bit lane; each lane is then one 16-byte store (128 scalar stores before). */
static HK_BF16 inline void transpose_pairs_8x16(uint32_t *dst, size_t stride, const float *src, size_t lds) {
    __m512i r0 = consecutive16(src), r1 = consecutive16(src + lds), r2 = consecutive16(src + 2 * lds),
            r3 = consecutive16(src + 3 * lds), r4 = consecutive16(src + 4 * lds), r5 = consecutive16(src + 5 * lds),
            r6 = consecutive16(src + 6 * lds), r7 = consecutive16(src + 7 * lds);
    /* per 128-bit lane L (pairs 4L .. 4L+3): t01a = r0[4L] r1[4L] r0[4L+1] r1[4L+1], t01b the next two */
    __m512i t01a = _mm512_unpacklo_epi32(r0, r1), t01b = _mm512_unpackhi_epi32(r0, r1);
    __m512i t23a = _mm512_unpacklo_epi32(r2, r3), t23b = _mm512_unpackhi_epi32(r2, r3);
    __m512i t45a = _mm512_unpacklo_epi32(r4, r5), t45b = _mm512_unpackhi_epi32(r4, r5);
    __m512i t67a = _mm512_unpacklo_epi32(r6, r7), t67b = _mm512_unpackhi_epi32(r6, r7);
    /* u[h][b], lane L: rows 4h .. 4h+3 of pair 4L + b */
    __m512i u[2][4] = {
        {_mm512_unpacklo_epi64(t01a, t23a), _mm512_unpackhi_epi64(t01a, t23a), _mm512_unpacklo_epi64(t01b, t23b),
         _mm512_unpackhi_epi64(t01b, t23b)},
        {_mm512_unpacklo_epi64(t45a, t67a), _mm512_unpackhi_epi64(t45a, t67a), _mm512_unpacklo_epi64(t45b, t67b),
         _mm512_unpackhi_epi64(t45b, t67b)}};
    for (int h = 0; h < 2; h++)
        for (int b = 0; b < 4; b++) {
            uint32_t *d = dst + (size_t)b * stride + 4 * h;
            _mm_storeu_si128((__m128i *)d, _mm512_extracti32x4_epi32(u[h][b], 0));
            _mm_storeu_si128((__m128i *)(d + 4 * stride), _mm512_extracti32x4_epi32(u[h][b], 1));
            _mm_storeu_si128((__m128i *)(d + 8 * stride), _mm512_extracti32x4_epi32(u[h][b], 2));
            _mm_storeu_si128((__m128i *)(d + 12 * stride), _mm512_extracti32x4_epi32(u[h][b], 3));
        }
}

static HK_BF16 void pack_a_bf16(uint32_t *out, const float *A, size_t lda, int transA, size_t m0, size_t mc, size_t k0, size_t kc) {
    size_t kp = (kc + 1) / 2, full = kc / 2;
    if (mc % MR != 0 || (!transA && full < 16)) {
        pack_a_avx512(out, A, lda, transA, m0, mc, k0, kc);
        return;
    }
    size_t panels = mc / MR;
    if (!transA) {
        for (size_t p = 0; p < panels; p++) {
            uint32_t *dst = out + p * kp * MR;
            const float *rows = A + (m0 + p * MR) * lda + k0;
            size_t j = 0;
            for (; j + 16 <= full; j += 16) transpose_pairs_8x16(dst + j * MR, MR, rows + 2 * j, lda);
            for (size_t r = 0; r < MR; r++) {
                const float *src = rows + r * lda;
                for (size_t jj = j; jj < full; jj++) dst[jj * MR + r] = bf16_bits(src[2 * jj]) | (bf16_bits(src[2 * jj + 1]) << 16);
                if (kc & 1) dst[full * MR + r] = bf16_bits(src[kc - 1]);
            }
        }
        return;
    }
    /* stored [K, M]: rows 2j and 2j+1 give pair j of every column; read each row pair once, 16
     * columns (two panels) at a time, MR for an odd last panel */
    for (size_t j = 0; j < kp; j++) {
        const float *r0 = A + (k0 + 2 * j) * lda + m0;
        if (2 * j + 1 < kc) {
            const float *r1 = r0 + lda;
            size_t p = 0;
            for (; p + 2 <= panels; p += 2) {
                __m512i pr = interleave16(r0 + p * MR, r1 + p * MR);
                _mm256_storeu_si256((__m256i *)(out + p * kp * MR + j * MR), _mm512_castsi512_si256(pr));
                _mm256_storeu_si256((__m256i *)(out + (p + 1) * kp * MR + j * MR), _mm512_extracti64x4_epi64(pr, 1));
            }
            if (p < panels) {
                __m128i lo = (__m128i)_mm256_cvtneps_pbh(_mm256_loadu_ps(r0 + p * MR));
                __m128i hi = (__m128i)_mm256_cvtneps_pbh(_mm256_loadu_ps(r1 + p * MR));
                __m256i pr = _mm256_or_si256(_mm256_cvtepu16_epi32(lo), _mm256_slli_epi32(_mm256_cvtepu16_epi32(hi), 16));
                _mm256_storeu_si256((__m256i *)(out + p * kp * MR + j * MR), pr);
            }
        } else {
            for (size_t p = 0; p < panels; p++) {
                __m128i lo = (__m128i)_mm256_cvtneps_pbh(_mm256_loadu_ps(r0 + p * MR));
                _mm256_storeu_si256((__m256i *)(out + p * kp * MR + j * MR), _mm256_cvtepu16_epi32(lo));
            }
        }
    }
}

static HK_BF16 void pack_b_bf16(uint32_t *out, const float *B, size_t ldb, int transB, size_t k0, size_t kc, size_t n0, size_t nc) {
    size_t kp = (kc + 1) / 2, full = kc / 2;
    if (nc % NR != 0 || (transB && full < 16)) {
        pack_b_avx512(out, B, ldb, transB, k0, kc, n0, nc);
        return;
    }
    for (size_t p = 0; p * NR < nc; p++) {
        uint32_t *dst = out + p * kp * NR;
        if (transB) {
            /* stored [N, K]: column c of op(B) is row c; 8 rows at a time, transposed in registers */
            const float *rows = B + (n0 + p * NR) * ldb + k0;
            size_t j = 0;
            for (; j + 16 <= full; j += 16)
                for (size_t c = 0; c < NR; c += 8) transpose_pairs_8x16(dst + j * NR + c, NR, rows + c * ldb + 2 * j, ldb);
            for (size_t c = 0; c < NR; c++) {
                const float *src = rows + c * ldb;
                for (size_t jj = j; jj < full; jj++) dst[jj * NR + c] = bf16_bits(src[2 * jj]) | (bf16_bits(src[2 * jj + 1]) << 16);
                if (kc & 1) dst[full * NR + c] = bf16_bits(src[kc - 1]);
            }
        } else {
            for (size_t j = 0; j < kp; j++) {
                const float *r0 = B + (k0 + 2 * j) * ldb + n0 + p * NR;
                if (2 * j + 1 < kc) {
                    _mm512_storeu_si512(dst + j * NR, interleave16(r0, r0 + ldb));
                    _mm512_storeu_si512(dst + j * NR + 16, interleave16(r0 + 16, r0 + ldb + 16));
                } else {
                    for (size_t c = 0; c < NR; c++) dst[j * NR + c] = bf16_bits(r0[c]);
                }
            }
        }
    }
}
#endif

/* One weight row's kc bf16 values -> column c of a panel [kp][NR] of pairs. */
static inline void pack_row16(uint32_t *dst, const uint16_t *src, size_t kc, size_t c) {
    size_t full = kc / 2;
    for (size_t j = 0; j < full; j++) {
        uint32_t v;
        memcpy(&v, src + 2 * j, 4);
        dst[j * NR + c] = v;
    }
    if (kc & 1) dst[full * NR + c] = src[kc - 1];
}

/* W[N, K] stored as bf16 rows (ldw elements apart), read as op(B) = Wᵀ: a pair (k even, k odd)
 * of one row is already one 32-bit lane of the packed panel, so packing is a transposing copy
 * with no rounding. */
static void pack_w16(uint32_t *out, const void *Bv, size_t ldw, int transB, size_t k0, size_t kc, size_t n0, size_t nc) {
    (void)transB;
    const uint16_t *W = Bv;
    size_t kp = (kc + 1) / 2;
    for (size_t p = 0; p * NR < nc; p++) {
        uint32_t *dst = out + p * kp * NR;
        size_t cols = nc - p * NR < NR ? nc - p * NR : NR;
        if (cols < NR) memset(dst, 0, kp * NR * 4);
        for (size_t c = 0; c < cols; c++) pack_row16(dst, W + (n0 + p * NR + c) * ldw + k0, kc, c);
    }
}

/* 32 int8 weights of one block, dequantized as hk_q8_dequantize does (scale · value) and rounded
 * to bf16 as hk_f32_to_bf16 does: hk_q8_dequantize_bf16's values, computed here in registers. */
static void dequantize_bf16_portable(uint16_t *out, const int8_t *v, float scale) {
    for (int i = 0; i < 32; i++) out[i] = (uint16_t)bf16_bits(scale * (float)v[i]);
}

#if defined(__x86_64__)
static __attribute__((target("avx512f,avx512bw,avx512vl"))) inline __m256i bf16_round16(__m512 x) {
    const __m512i u = _mm512_castps_si512(x);
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1))));
    r = _mm512_srli_epi32(r, 16);
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
    return _mm512_cvtepi32_epi16(r);
}

static __attribute__((target("avx512f,avx512bw,avx512vl"))) void dequantize_bf16_avx512(uint16_t *out, const int8_t *v, float scale) {
    __m512 d = _mm512_set1_ps(scale);
    __m512 lo = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)v))));
    __m512 hi = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(v + 16)))));
    _mm256_storeu_si256((__m256i *)out, bf16_round16(lo));
    _mm256_storeu_si256((__m256i *)(out + 16), bf16_round16(hi));
}
#endif

/* The pack_w16 of int8 weights (hk_gemm_bf16_q8): Bv is an hk_q8_src; each row's kc weights (whole
 * blocks: k0 and kc are multiples of 32) are dequantized to bf16 on the stack, then packed as
 * stored bf16 rows are. */
static void pack_q8(uint32_t *out, const void *Bv, size_t ldw, int transB, size_t k0, size_t kc, size_t n0, size_t nc) {
    (void)ldw; (void)transB;
    const hk_q8_src *src = Bv;
    void (*dequantize)(uint16_t *, const int8_t *, float) = dequantize_bf16_portable;
#if defined(__x86_64__)
    if (hk_level() >= HK_LEVEL_AVX512) dequantize = dequantize_bf16_avx512;
#endif
    uint16_t row[KC];
    size_t kp = (kc + 1) / 2;
    for (size_t p = 0; p * NR < nc; p++) {
        uint32_t *dst = out + p * kp * NR;
        size_t cols = nc - p * NR < NR ? nc - p * NR : NR;
        if (cols < NR) memset(dst, 0, kp * NR * 4);
        for (size_t c = 0; c < cols; c++) {
            for (size_t b = 0; b < kc; b += 32) {
                float scale;
                const int8_t *v = hk_q8_at(src, n0 + p * NR + c, k0 + b, &scale);
                dequantize(row + b, v, scale);
            }
            pack_row16(dst, row, kc, c);
        }
    }
}

typedef void (*pack_a_fn)(uint32_t *, const float *, size_t, int, size_t, size_t, size_t, size_t);
typedef void (*pack_b_fn)(uint32_t *, const void *, size_t, int, size_t, size_t, size_t, size_t);
typedef void (*micro_fn)(float *, size_t, const uint32_t *, const uint32_t *, size_t, size_t, size_t, float, int);

/* The f32 B packers behind the pack_b_fn signature. */
#define HK_PACK_B_VOID(NAME, ATTR)                                                                                 \
    static ATTR void NAME##_v(uint32_t *out, const void *B, size_t ldb, int transB, size_t k0, size_t kc, size_t n0, \
                              size_t nc) {                                                                       \
        NAME(out, (const float *)B, ldb, transB, k0, kc, n0, nc);                                                  \
    }
HK_PACK_B_VOID(pack_b_portable, )
#if defined(__x86_64__)
HK_PACK_B_VOID(pack_b_avx512, __attribute__((target("avx512f,avx512bw,avx512vl"))))
HK_PACK_B_VOID(pack_b_bf16, HK_BF16)
#endif

static void kernels_for_level(micro_fn *micro, pack_a_fn *pack_a, pack_b_fn *pack_b) {
    *micro = micro_portable;
    *pack_a = pack_a_portable;
    *pack_b = pack_b_portable_v;
#if defined(__x86_64__)
    if (hk_level() >= HK_LEVEL_AVX512) { *pack_a = pack_a_avx512; *pack_b = pack_b_avx512_v; }
    if (hk_level() >= HK_LEVEL_BF16) { *micro = micro_avx512bf16; *pack_a = pack_a_bf16; *pack_b = pack_b_bf16_v; }
#endif
}

/* The blocked driver shared by both entries: B is whatever pack_b reads. */
static int gemm_driver(int transA, int transB, size_t M, size_t N, size_t K, float alpha, const float *A, size_t lda,
                       const void *B, size_t ldb, float beta, float *C, size_t ldc, micro_fn micro, pack_a_fn pack_a,
                       pack_b_fn pack_b) {
    if (M == 0 || N == 0) return 0;
    int products = K != 0 && alpha != 0;
    scratch_t *s = NULL;
    if (products) {  /* before C is touched, so a caller can fall back to another GEMM */
        size_t kcMax = K < KC ? K : KC, kpMax = (kcMax + 1) / 2;
        s = scratch_get(((MC + MR - 1) / MR) * MR * kpMax, ((NC + NR - 1) / NR) * NR * kpMax);
        if (!s) return -1;
    }
    /* beta = 0 with products: the first depth block overwrites C (never cleared, never read) */
    int overwrite = beta == 0 && products;
    if (beta != 1 && !overwrite) {
        for (size_t m = 0; m < M; m++) {
            float *c = C + m * ldc;
            if (beta == 0) memset(c, 0, N * sizeof(float));
            else for (size_t n = 0; n < N; n++) c[n] *= beta;
        }
    }
    if (!products) return 0;
    uint32_t *pa = s->a, *pb = s->b;
    for (size_t n0 = 0; n0 < N; n0 += NC) {
        size_t nc = N - n0 < NC ? N - n0 : NC;
        for (size_t k0 = 0; k0 < K; k0 += KC) {
            size_t kc = K - k0 < KC ? K - k0 : KC, kp = (kc + 1) / 2;
            pack_b(pb, B, ldb, transB, k0, kc, n0, nc);
            for (size_t m0 = 0; m0 < M; m0 += MC) {
                size_t mc = M - m0 < MC ? M - m0 : MC;
                pack_a(pa, A, lda, transA, m0, mc, k0, kc);
                for (size_t jn = 0; jn < nc; jn += NR) {
                    for (size_t im = 0; im < mc; im += MR) {
                        size_t mr = mc - im < MR ? mc - im : MR, nr = nc - jn < NR ? nc - jn : NR;
                        micro(C + (m0 + im) * ldc + n0 + jn, ldc, pa + (im / MR) * kp * MR, pb + (jn / NR) * kp * NR, kp,
                              mr, nr, alpha, overwrite && k0 == 0);
                    }
                }
            }
        }
    }
    return 0;
}

int hk_gemm_bf16(int transA, int transB, size_t M, size_t N, size_t K, float alpha, const float *A, size_t lda,
                 const float *B, size_t ldb, float beta, float *C, size_t ldc) {
    micro_fn micro;
    pack_a_fn pack_a;
    pack_b_fn pack_b;
    kernels_for_level(&micro, &pack_a, &pack_b);
    return gemm_driver(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, micro, pack_a, pack_b);
}

int hk_gemm_bf16_wt(size_t M, size_t N, size_t K, const float *A, size_t lda, const uint16_t *W, size_t ldw, float *C,
                    size_t ldc) {
    micro_fn micro;
    pack_a_fn pack_a;
    pack_b_fn unused;
    kernels_for_level(&micro, &pack_a, &unused);
    return gemm_driver(0, 1, M, N, K, 1, A, lda, W, ldw, 0, C, ldc, micro, pack_a, pack_w16);
}

int hk_gemm_bf16_q8(size_t M, size_t N, size_t K, const float *A, size_t lda, const int8_t *q, const float *scales, size_t rows,
                    size_t r0, int rows4, float *C, size_t ldc) {
    hk_q8_src src;
    if (hk_q8_src_init(&src, q, scales, rows, K, r0, N, rows4) != 0) return HK_GEMM_WT_UNAVAILABLE;
    micro_fn micro;
    pack_a_fn pack_a;
    pack_b_fn unused;
    kernels_for_level(&micro, &pack_a, &unused);
    return gemm_driver(0, 1, M, N, K, 1, A, lda, &src, K, 0, C, ldc, micro, pack_a, pack_q8);
}

/* ---- GEMV against bf16 weights with x rounded to bf16 (hk_gemv_bf16_dot) -------------------
 * x is rounded once per call (per column block of DOT_BLOCK) into a stack buffer; each row is
 * then 64-byte loads of 32 weights and one vdpbf16ps per 32 columns against the matching x
 * pairs, four accumulators over 128 columns, the ragged end masked. */
enum { DOT_BLOCK = 8192 };

static void gemv_dot_portable(float *y, const uint16_t *w, const float *x, size_t cols, size_t r0, size_t r1) {
    float xr[256];
    for (size_t r = r0; r < r1; r++) y[r] = 0;
    for (size_t c0 = 0; c0 < cols; c0 += 256) {
        size_t n = cols - c0 < 256 ? cols - c0 : 256;
        for (size_t i = 0; i < n; i++) {
            uint32_t u = bf16_bits(x[c0 + i]) << 16;
            memcpy(&xr[i], &u, 4);
        }
        for (size_t r = r0; r < r1; r++) {
            const uint16_t *p = w + r * cols + c0;
            float acc = 0;
            for (size_t i = 0; i < n; i++) {
                uint32_t u = (uint32_t)p[i] << 16;
                float wf;
                memcpy(&wf, &u, 4);
                acc += wf * xr[i];
            }
            y[r] += acc;
        }
    }
}

#if defined(__x86_64__)
/* How a row's 32-weight vectors are loaded; each way gives the same vectors, hence the same sums.
 *   DOT_ALIGNED  rows start on a cache line: one 64-byte load each.
 *   DOT_SHIFTED  rows start 32 bytes into a line (GGUF aligns tensors to 32 bytes) and the row
 *                length is whole lines: aligned 64-byte loads of the lines themselves, each vector
 *                the upper half of one line and the lower half of the next (valignq), so every
 *                line is loaded once and no load splits a line. The first line's lower half (just
 *                before the row) and the last line's upper half (just after it) are read but not
 *                used; they lie in the lines the row occupies, so in mapped pages.
 *   DOT_HALVES   anything else: two 32-byte loads (a 64-byte load that splits a line cost a
 *                memory-bound GEMV half its speed on Zen 5). */
enum { DOT_ALIGNED, DOT_SHIFTED, DOT_HALVES };

static HK_BF16 inline __m512bh load_w32(const uint16_t *p, int halves) {
    if (halves)
        return (__m512bh)_mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p)),
                                             _mm256_loadu_si256((const __m256i *)(p + 16)), 1);
    return (__m512bh)_mm512_loadu_si512(p);
}

/* The 32 weights from the middle of line lo to the middle of line hi. */
static HK_BF16 inline __m512bh spliced(__m512i lo, __m512i hi) { return (__m512bh)_mm512_alignr_epi64(hi, lo, 4); }

static HK_BF16 inline void gemv_dot_rows(float *y, const uint16_t *w, const uint16_t *xb, size_t cols, size_t c0, size_t n,
                                         size_t r0, size_t r1, int mode) {
    size_t full = n & ~(size_t)31, quads = n & ~(size_t)127;
    __mmask32 tail = (__mmask32)((1ull << (n - full)) - 1);
    int halves = mode == DOT_HALVES;
    for (size_t r = r0; r < r1; r++) {
        const uint16_t *p = w + r * cols + c0;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        size_t k = 0;
        if (mode == DOT_SHIFTED && full > 0) {
            const uint16_t *line = p - 16;   /* the line the row starts in */
            __m512i prev = _mm512_load_si512(line);
            for (; k < quads; k += 128) {
                __m512i l1 = _mm512_load_si512(line + k + 32), l2 = _mm512_load_si512(line + k + 64);
                __m512i l3 = _mm512_load_si512(line + k + 96), l4 = _mm512_load_si512(line + k + 128);
                a0 = _mm512_dpbf16_ps(a0, spliced(prev, l1), (__m512bh)_mm512_load_si512(xb + k));
                a1 = _mm512_dpbf16_ps(a1, spliced(l1, l2), (__m512bh)_mm512_load_si512(xb + k + 32));
                a2 = _mm512_dpbf16_ps(a2, spliced(l2, l3), (__m512bh)_mm512_load_si512(xb + k + 64));
                a3 = _mm512_dpbf16_ps(a3, spliced(l3, l4), (__m512bh)_mm512_load_si512(xb + k + 96));
                prev = l4;
            }
            for (; k < full; k += 32) {
                __m512i l = _mm512_load_si512(line + k + 32);
                a0 = _mm512_dpbf16_ps(a0, spliced(prev, l), (__m512bh)_mm512_load_si512(xb + k));
                prev = l;
            }
        }
        for (; k < quads; k += 128) {
            a0 = _mm512_dpbf16_ps(a0, load_w32(p + k, halves), (__m512bh)_mm512_load_si512(xb + k));
            a1 = _mm512_dpbf16_ps(a1, load_w32(p + k + 32, halves), (__m512bh)_mm512_load_si512(xb + k + 32));
            a2 = _mm512_dpbf16_ps(a2, load_w32(p + k + 64, halves), (__m512bh)_mm512_load_si512(xb + k + 64));
            a3 = _mm512_dpbf16_ps(a3, load_w32(p + k + 96, halves), (__m512bh)_mm512_load_si512(xb + k + 96));
        }
        for (; k < full; k += 32) a0 = _mm512_dpbf16_ps(a0, load_w32(p + k, halves), (__m512bh)_mm512_load_si512(xb + k));
        if (tail)
            a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_maskz_loadu_epi16(tail, p + full), (__m512bh)_mm512_maskz_loadu_epi16(tail, xb + full));
        float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
        y[r] = c0 == 0 ? s : y[r] + s;
    }
}

static HK_BF16 void gemv_dot_avx512bf16(float *y, const uint16_t *w, const float *x, size_t cols, size_t r0, size_t r1) {
    __attribute__((aligned(64))) uint16_t xb[DOT_BLOCK];
    /* every row starts where the first does when rows are whole lines */
    uintptr_t phase = (uintptr_t)(w + r0 * cols) & 63;
    int mode = (cols * 2) % 64 != 0 ? DOT_HALVES : phase == 0 ? DOT_ALIGNED : phase == 32 ? DOT_SHIFTED : DOT_HALVES;
    for (size_t c0 = 0; c0 < cols; c0 += DOT_BLOCK) {
        size_t n = cols - c0 < DOT_BLOCK ? cols - c0 : DOT_BLOCK, c = 0;
        for (; c + 32 <= n; c += 32)
            _mm512_store_si512(xb + c, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + c0 + c + 16), _mm512_loadu_ps(x + c0 + c)));
        for (; c < n; c++) xb[c] = (uint16_t)bf16_bits(x[c0 + c]);
        if (mode == DOT_SHIFTED) gemv_dot_rows(y, w, xb, cols, c0, n, r0, r1, DOT_SHIFTED);
        else if (mode == DOT_HALVES) gemv_dot_rows(y, w, xb, cols, c0, n, r0, r1, DOT_HALVES);
        else gemv_dot_rows(y, w, xb, cols, c0, n, r0, r1, DOT_ALIGNED);
    }
}
#endif

void hk_gemv_bf16_dot(float *y, const uint16_t *w, const float *x, size_t cols, size_t r0, size_t r1) {
#if defined(__x86_64__)
    if (hk_level() >= HK_LEVEL_BF16) { gemv_dot_avx512bf16(y, w, x, cols, r0, r1); return; }
#endif
    gemv_dot_portable(y, w, x, cols, r0, r1);
}
