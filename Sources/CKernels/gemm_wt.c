/*
 * gemm_wt.c: prefill's product against a linear layer's stored weights, in f32:
 * C[M, N] = A[M, K] · Wᵀ, W[N, K] rows of f32, bf16 or f16 weights, or of int8 weights with a
 * scale per 32 (Q8_0, row-major or hmst's row-quad layout: hk_gemm_f32_q8).
 *
 * OpenBLAS's sgemm needs f32 weights, so 16-bit weights were first widened (int8 weights
 * dequantized) into a scratch matrix (a pass that wrote and re-read the whole layer), and sgemm
 * then packed that copy, packed A and cleared C before its kernel ran. Here each weight is widened
 * exactly (an int8 one dequantized as hk_q8_dequantize does) as its panel is packed, A is read
 * where it lies (its rows are broadcast one value at a time) and the first depth block writes C
 * without reading it.
 *
 * Blocking (GotoBLAS's order, without packing A): for each block of WNC = 128 weight rows and
 * each depth block of WKC = 512, the rows are transposed into panels [kc][NR] of f32 (square
 * transposes in registers; 256 KiB in all, held in L2); then every MR-row tile of A runs against
 * each panel, A's tile staying in L1 across the panels and C written a row segment at a time.
 * AVX-512: an 8 x 32 micro-kernel (16 zmm accumulators; per k two panel loads and eight
 * broadcasts of A for sixteen FMAs). On Zen 4, one thread, this ran 106-113 GFLOP/s over shapes of
 * 128-2048 tokens x 256-2048 rows x 512-1536 deep (OpenBLAS 99-107); one panel reused down all of
 * A's rows (the first version) fell to 96-97 as C outgrew L2. AVX2 + FMA (+ F16C): a 6 x 16
 * micro-kernel (12 ymm accumulators); on Zen 4 it ran 108-113 GFLOP/s where OpenBLAS's Haswell
 * and Zen kernels ran 99-111 (no AVX2-only CPU measured yet). Elsewhere hk_gemm_f32_wt returns
 * HK_GEMM_WT_UNAVAILABLE and the caller widens for OpenBLAS.
 *
 * A stored [K, M] (training's weight gradients dyᵀ·x) is the one case that packs A: read where it
 * lies, a tile's kc values of one column lie lda apart, and for the LM head's gradient (lda 4096,
 * a 16 KiB stride) they all fall into one L1 set and a few L2 sets, so every broadcast came from
 * L3 (62-72 GFLOP/s against OpenBLAS's 137-147 on the Intel model 207). Up to 128 columns at a
 * time are copied into tiles [kc][MR] (whole lines, each page touched once), and when N is at most
 * 2 · WNC the panels cover all of N so A is copied once per depth block: 140-143 GFLOP/s on the
 * head, 102-152 on the experts' dyᵀ·x (OpenBLAS 151-160 in the same runs; noisy host).
 */
#include "hmst_kernels.h"
#include "hk_gemm.h"

#include <string.h>

enum { WMR = 8, WNR = 32, WKC = 512, WNC = 128, WMCT = 128 };

#if defined(__x86_64__)
#include <immintrin.h>
#define HK_WT __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,f16c,fma")))

/* int8 weights (hk_gemm_f32_q8): the packer's W points to an hk_q8_src (hk_gemm.h). */
enum { WT_Q8 = 16 };

/* The weight at (row n, column c) of W (rows ldw elements apart) widened to f32, exactly (bf16
 * and f16 are subsets of f32; an int8 weight is its scale times its value, one rounding, as
 * hk_q8_dequantize computes it). */
static __attribute__((target("f16c"))) inline float weight_at(const void *W, int wtype, size_t n, size_t c, size_t ldw) {
    switch (wtype) {
    case HK_WT_BF16: {
        uint32_t u = (uint32_t)((const uint16_t *)W)[n * ldw + c] << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    case HK_WT_F16: return _cvtsh_ss(((const uint16_t *)W)[n * ldw + c]);
    case WT_Q8: {
        float scale;
        const int8_t *v = hk_q8_at(W, n, c, &scale);
        return scale * (float)*v;
    }
    default: return ((const float *)W)[n * ldw + c];
    }
}

/* 16 consecutive weights of row n from column c, widened. */
static HK_WT inline __m512 weights16(const void *W, int wtype, size_t n, size_t c, size_t ldw) {
    switch (wtype) {
    case HK_WT_BF16:
        return _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)((const uint16_t *)W + n * ldw + c))), 16));
    case HK_WT_F16: return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)W + n * ldw + c)));
    case WT_Q8: {
        float scale;
        const int8_t *v = hk_q8_at(W, n, c, &scale);
        return _mm512_mul_ps(_mm512_set1_ps(scale), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)v))));
    }
    default: return _mm512_loadu_ps((const float *)W + n * ldw + c);
    }
}

/* r[i] lane j <- r[j] lane i: a 16 x 16 transpose in registers. */
static HK_WT inline void transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        u[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        u[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    /* u[4g + j], 128-bit lane L: column 4L + j of rows 4g .. 4g+3 */
    for (int j = 0; j < 4; j++) {
        __m512 a = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88), b = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xDD);
        __m512 c = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88), d = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xDD);
        r[j] = _mm512_shuffle_f32x4(a, c, 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(a, c, 0xDD);
        r[4 + j] = _mm512_shuffle_f32x4(b, d, 0x88);
        r[12 + j] = _mm512_shuffle_f32x4(b, d, 0xDD);
    }
}

/* W rows n0 .. n0+nc (nc <= NRV), depth k0 .. k0+kc -> panel[kc][NRV], widened; columns past nc
 * are zero. Whole groups of L rows (L: the vector's lanes) go L depths at a time through the
 * L x L transpose; a partial group and the depth tail past a multiple of L one weight at a time.
 * One definition for both instruction sets. */
#define HK_WT_PACK_PANEL(NAME, ATTR, VEC, L, NRV, LOAD, TRANSPOSE, STORE, ZERO)                                       \
    static ATTR void NAME(float *panel, const void *W, int wtype, size_t ldw, size_t n0, size_t nc, size_t k0, size_t kc) { \
        size_t kv = kc & ~(size_t)(L - 1);                                                                             \
        for (size_t g = 0; g < NRV; g += L) {                                                                          \
            size_t rows = nc > g ? (nc - g < L ? nc - g : L) : 0;                                                      \
            if (rows == L) {                                                                                           \
                for (size_t k = 0; k < kv; k += L) {                                                                   \
                    VEC r[L];                                                                                          \
                    for (int i = 0; i < L; i++) r[i] = LOAD(W, wtype, n0 + g + i, k0 + k, ldw);                       \
                    TRANSPOSE(r);                                                                                      \
                    for (int i = 0; i < L; i++) STORE(panel + (k + i) * NRV + g, r[i]);                                \
                }                                                                                                      \
            } else {                                                                                                   \
                for (size_t k = 0; k < kv; k++) STORE(panel + k * NRV + g, ZERO());                                    \
                for (size_t i = 0; i < rows; i++)                                                                      \
                    for (size_t k = 0; k < kv; k++) panel[k * NRV + g + i] = weight_at(W, wtype, n0 + g + i, k0 + k, ldw); \
            }                                                                                                          \
            for (size_t k = kv; k < kc; k++)                                                                           \
                for (size_t i = 0; i < L; i++) panel[k * NRV + g + i] = i < rows ? weight_at(W, wtype, n0 + g + i, k0 + k, ldw) : 0; \
        }                                                                                                              \
    }

HK_WT_PACK_PANEL(pack_panel, HK_WT, __m512, 16, WNR, weights16, transpose16, _mm512_store_ps, _mm512_setzero_ps)

/* B[K, N] row-major (hk_gemm_f32 without transB): rows k0 .. k0+kc, columns n0 .. n0+nc (nc <= 32)
 * -> panel[kc][32], a straight copy of each row's 32 columns; columns past nc are zero. */
static HK_WT void pack_panel_n(float *panel, const float *B, size_t ldb, size_t n0, size_t nc, size_t k0, size_t kc) {
    __mmask16 m0 = nc >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nc) - 1);
    __mmask16 m1 = nc >= 32 ? (__mmask16)0xffff : nc <= 16 ? 0 : (__mmask16)((1u << (nc - 16)) - 1);
    for (size_t k = 0; k < kc; k++) {
        const float *row = B + (k0 + k) * ldb + n0;
        _mm512_store_ps(panel + k * WNR, _mm512_maskz_loadu_ps(m0, row));
        _mm512_store_ps(panel + k * WNR + 16, _mm512_maskz_loadu_ps(m1, row + 16));
    }
}

/* C[mr, nr] = alpha · tile + (first ? beta · C : C) (C not read when first and beta = 0), where
 * tile = A · panel over kc, A's element (r, k) at A[r * rs + k * ks]: rs = lda, ks = 1 for A
 * stored [M, K], rs = 1, ks = lda for A stored [K, M]. mr <= 8, nr <= 32. */
#define HK_WT_MICRO(NAME, RS, KS)                                                                                     \
    static HK_WT void NAME(float *C, size_t ldc, const float *A, size_t lda, const float *panel, size_t kc, size_t mr,  \
                           size_t nr, float alpha, float beta, int first) {                                            \
        __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,  \
               c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00;                  \
        const size_t rs = (RS), ks = (KS);                                                                             \
        const float *a0 = A, *a4 = A + 4 * rs;                                                                         \
        const size_t r1 = rs, r2 = 2 * rs, r3 = 3 * rs;                                                                \
        for (size_t k = 0; k < kc; k++) {                                                                              \
            __m512 b0 = _mm512_load_ps(panel + k * WNR), b1 = _mm512_load_ps(panel + k * WNR + 16), a;                \
            const size_t o = k * ks;                                                                                   \
            HK_WT_ROW(a0, o, c00, c01) HK_WT_ROW(a0, o + r1, c10, c11) HK_WT_ROW(a0, o + r2, c20, c21)                 \
            HK_WT_ROW(a0, o + r3, c30, c31) HK_WT_ROW(a4, o, c40, c41) HK_WT_ROW(a4, o + r1, c50, c51)                 \
            HK_WT_ROW(a4, o + r2, c60, c61) HK_WT_ROW(a4, o + r3, c70, c71)                                            \
        }                                                                                                              \
        __m512 acc[WMR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}, {c60, c61}, {c70, c71}}; \
        store_tile(C, ldc, acc, mr, nr, alpha, beta, first);                                                           \
    }
#define HK_WT_ROW(P, O, X0, X1)         \
    a = _mm512_set1_ps(P[O]);           \
    X0 = _mm512_fmadd_ps(a, b0, X0);    \
    X1 = _mm512_fmadd_ps(a, b1, X1);

static HK_WT inline void store_tile(float *C, size_t ldc, __m512 acc[WMR][2], size_t mr, size_t nr, float alpha, float beta,
                                    int first) {
    __mmask16 m0 = nr >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? (__mmask16)0xffff : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(first ? beta : 1.0f);
    int readC = !(first && beta == 0);
    for (size_t r = 0; r < mr; r++) {
        float *c = C + r * ldc;
        __m512 lo = _mm512_mul_ps(va, acc[r][0]), hi = _mm512_mul_ps(va, acc[r][1]);
        if (readC) {
            lo = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, c), lo);
            hi = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, c + 16), hi);
        }
        _mm512_mask_storeu_ps(c, m0, lo);
        if (m1) _mm512_mask_storeu_ps(c + 16, m1, hi);
    }
}

HK_WT_MICRO(micro_rows, lda, 1)   /* A stored [M, K] */
HK_WT_MICRO(micro_cols, 1, lda)   /* A stored [K, M] */
#undef HK_WT_ROW
#undef HK_WT_MICRO


/* ---- AVX2 + FMA (F16C for f16 weights): a 6 x 16 micro-kernel over panels [kc][16] --------- */
#define HK_WT2 __attribute__((target("avx2,fma,f16c")))
enum { VMR = 6, VNR = 16 };

/* 8 consecutive weights of row n from column c, widened. */
static HK_WT2 inline __m256 weights8(const void *W, int wtype, size_t n, size_t c, size_t ldw) {
    switch (wtype) {
    case HK_WT_BF16:
        return _mm256_castsi256_ps(
            _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)W + n * ldw + c))), 16));
    case HK_WT_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)W + n * ldw + c)));
    case WT_Q8: {
        float scale;
        const int8_t *v = hk_q8_at(W, n, c, &scale);
        return _mm256_mul_ps(_mm256_set1_ps(scale), _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)v))));
    }
    default: return _mm256_loadu_ps((const float *)W + n * ldw + c);
    }
}

/* r[i] lane j <- r[j] lane i: an 8 x 8 transpose in registers. */
static HK_WT2 inline void transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int j = 0; j < 4; j++) {
        r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
        r[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
    }
}

HK_WT_PACK_PANEL(pack_panel2, HK_WT2, __m256, 8, VNR, weights8, transpose8, _mm256_store_ps, _mm256_setzero_ps)
#undef HK_WT_PACK_PANEL

/* The lanes below n of an 8-lane mask (n clamped to 0 .. 8). */
static HK_WT2 inline __m256i lanes8(size_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n > 8 ? 8 : n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static HK_WT2 void pack_panel_n2(float *panel, const float *B, size_t ldb, size_t n0, size_t nc, size_t k0, size_t kc) {
    __m256i m0 = lanes8(nc), m1 = lanes8(nc > 8 ? nc - 8 : 0);
    for (size_t k = 0; k < kc; k++) {
        const float *row = B + (k0 + k) * ldb + n0;
        _mm256_store_ps(panel + k * VNR, _mm256_maskload_ps(row, m0));
        _mm256_store_ps(panel + k * VNR + 8, _mm256_maskload_ps(row + 8, m1));
    }
}

static HK_WT2 inline void store_tile2(float *C, size_t ldc, __m256 acc[VMR][2], size_t mr, size_t nr, float alpha, float beta,
                                      int first) {
    __m256i m0 = lanes8(nr), m1 = lanes8(nr > 8 ? nr - 8 : 0);
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(first ? beta : 1.0f);
    int readC = !(first && beta == 0);
    for (size_t r = 0; r < mr; r++) {
        float *c = C + r * ldc;
        __m256 lo = _mm256_mul_ps(va, acc[r][0]), hi = _mm256_mul_ps(va, acc[r][1]);
        if (readC) {
            lo = _mm256_fmadd_ps(vb, _mm256_maskload_ps(c, m0), lo);
            hi = _mm256_fmadd_ps(vb, _mm256_maskload_ps(c + 8, m1), hi);
        }
        _mm256_maskstore_ps(c, m0, lo);
        if (nr > 8) _mm256_maskstore_ps(c + 8, m1, hi);
    }
}

#define HK_WT2_MICRO(NAME, RS, KS)                                                                                    \
    static HK_WT2 void NAME(float *C, size_t ldc, const float *A, size_t lda, const float *panel, size_t kc, size_t mr, \
                            size_t nr, float alpha, float beta, int first) {                                           \
        __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,  \
               c40 = c00, c41 = c00, c50 = c00, c51 = c00;                                                             \
        const size_t rs = (RS), ks = (KS);                                                                             \
        const float *a0 = A, *a3 = A + 3 * rs;                                                                         \
        const size_t r1 = rs, r2 = 2 * rs;                                                                             \
        for (size_t k = 0; k < kc; k++) {                                                                              \
            __m256 b0 = _mm256_load_ps(panel + k * VNR), b1 = _mm256_load_ps(panel + k * VNR + 8), a;                 \
            const size_t o = k * ks;                                                                                   \
            HK_WT2_ROW(a0, o, c00, c01) HK_WT2_ROW(a0, o + r1, c10, c11) HK_WT2_ROW(a0, o + r2, c20, c21)              \
            HK_WT2_ROW(a3, o, c30, c31) HK_WT2_ROW(a3, o + r1, c40, c41) HK_WT2_ROW(a3, o + r2, c50, c51)              \
        }                                                                                                              \
        __m256 acc[VMR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};                \
        store_tile2(C, ldc, acc, mr, nr, alpha, beta, first);                                                          \
    }
#define HK_WT2_ROW(P, O, X0, X1)        \
    a = _mm256_broadcast_ss(P + (O));   \
    X0 = _mm256_fmadd_ps(a, b0, X0);    \
    X1 = _mm256_fmadd_ps(a, b1, X1);

HK_WT2_MICRO(micro_rows2, lda, 1)
HK_WT2_MICRO(micro_cols2, 1, lda)
#undef HK_WT2_ROW
#undef HK_WT2_MICRO

/* The packers and micro-kernels of one instruction set, for the driver. */
typedef struct {
    size_t mr, nr;
    void (*pack_t)(float *, const void *, int, size_t, size_t, size_t, size_t, size_t);
    void (*pack_n)(float *, const float *, size_t, size_t, size_t, size_t, size_t);
    void (*micro_rows)(float *, size_t, const float *, size_t, const float *, size_t, size_t, size_t, float, float, int);
    void (*micro_cols)(float *, size_t, const float *, size_t, const float *, size_t, size_t, size_t, float, float, int);
} wt_isa;

static const wt_isa isa_avx512 = {WMR, WNR, pack_panel, pack_panel_n, micro_rows, micro_cols};
static const wt_isa isa_avx2 = {VMR, VNR, pack_panel2, pack_panel_n2, micro_rows2, micro_cols2};

/* The driver behind both entries: B is W[N, K] rows of wtype when transB, else f32 [K, N]. */
static int gemm_blocked(const wt_isa *isa, int transA, int transB, size_t M, size_t N, size_t K, float alpha, const float *A,
                        size_t lda, const void *B, int wtype, size_t ldb, float beta, float *C, size_t ldc) {
    size_t MR = isa->mr, NR = isa->nr, kcMax = K < WKC ? K : WKC;
    uint32_t *pa, *pb;
    /* a: the last rows of op(A) when M is not a multiple of MR, zero-padded to MR rows [MR][kc], or for A
     * stored [K, M] a block of WMCT of its columns as tiles [kc][MR]; b: one block of panels */
    /* A stored [K, M] is copied once per block of B's panels: up to 2 · WNC columns of B (a weight
     * gradient's N, 256 or 512 for the micro preset's dyᵀ·x) make one block, so A is copied once */
    size_t nbw = transA && N <= 2 * WNC ? (N + NR - 1) / NR * NR : WNC;
    if (hk_thread_scratch((transA ? WMCT : WMR) * kcMax, nbw * kcMax, &pa, &pb) != 0) return -1;
    float *tail = (float *)pa, *panels = (float *)pb;
    size_t mFull = M - M % MR;
    for (size_t nb = 0; nb < N; nb += nbw) {
        size_t ne = N - nb < nbw ? N : nb + nbw;
        for (size_t k0 = 0; k0 < K; k0 += WKC) {
            size_t kc = K - k0 < WKC ? K - k0 : WKC;
            int first = k0 == 0;
            for (size_t n0 = nb; n0 < ne; n0 += NR) {
                size_t nc = ne - n0 < NR ? ne - n0 : NR;
                if (transB) isa->pack_t(panels + (n0 - nb) * kc, B, wtype, ldb, n0, nc, k0, kc);
                else isa->pack_n(panels + (n0 - nb) * kc, B, ldb, n0, nc, k0, kc);
            }
            if (transA) {
                /* A stored [K, M], copied into tiles [kc][MR] (why: the file's head comment); the
                 * last tile is zero-padded */
                size_t mcb = WMCT / MR * MR;
                for (size_t mb = 0; mb < M; mb += mcb) {
                    size_t mc = M - mb < mcb ? M - mb : mcb, tiles = (mc + MR - 1) / MR;
                    size_t whole = mc / MR;
                    for (size_t k = 0; k < kc; k++) {
                        const float *src = A + (k0 + k) * lda + mb;
                        float *dst = tail + k * MR;
                        /* constant-size copies (one vector move each), not a call per tile */
                        if (MR == WMR) for (size_t t = 0; t < whole; t++) memcpy(dst + t * kc * WMR, src + t * WMR, WMR * sizeof(float));
                        else for (size_t t = 0; t < whole; t++) memcpy(dst + t * kc * VMR, src + t * VMR, VMR * sizeof(float));
                        if (whole < tiles)
                            for (size_t i = 0; i < MR; i++) dst[whole * kc * MR + i] = whole * MR + i < mc ? src[whole * MR + i] : 0;
                    }
                    for (size_t t = 0; t < tiles; t++) {
                        size_t m0 = mb + t * MR, mr = M - m0 < MR ? M - m0 : MR;
                        for (size_t n0 = nb; n0 < ne; n0 += NR)
                            isa->micro_cols(C + m0 * ldc + n0, ldc, tail + t * kc * MR, MR, panels + (n0 - nb) * kc, kc, mr,
                                            ne - n0 < NR ? ne - n0 : NR, alpha, beta, first);
                    }
                }
                continue;
            }
            for (size_t m0 = 0; m0 < mFull; m0 += MR)
                for (size_t n0 = nb; n0 < ne; n0 += NR) {
                    size_t nc = ne - n0 < NR ? ne - n0 : NR;
                    isa->micro_rows(C + m0 * ldc + n0, ldc, A + m0 * lda + k0, lda, panels + (n0 - nb) * kc, kc, MR, nc, alpha,
                                    beta, first);
                }
            if (mFull < M) {
                memset(tail, 0, MR * kc * sizeof(float));
                for (size_t r = mFull; r < M; r++) memcpy(tail + (r - mFull) * kc, A + r * lda + k0, kc * sizeof(float));
                for (size_t n0 = nb; n0 < ne; n0 += NR)
                    isa->micro_rows(C + mFull * ldc + n0, ldc, tail, kc, panels + (n0 - nb) * kc, kc, M - mFull,
                                    ne - n0 < NR ? ne - n0 : NR, alpha, beta, first);
            }
        }
    }
    return 0;
}
#endif

int hk_gemm_f32_level(void) {
#if defined(__x86_64__)
    if (hk_level() >= HK_LEVEL_AVX512) return 2;
    if (hk_level() >= HK_LEVEL_AVX2 && __builtin_cpu_supports("f16c")) return 1;
#endif
    return 0;
}

/* C = beta · C over M x N: what a product with no terms leaves (C not read when beta = 0). */
static void scale_c(size_t M, size_t N, float beta, float *C, size_t ldc) {
    for (size_t m = 0; m < M; m++) {
        float *c = C + m * ldc;
        if (beta == 0) memset(c, 0, N * sizeof(float));
        else if (beta != 1) for (size_t n = 0; n < N; n++) c[n] *= beta;
    }
}

static int gemm_entry(int transA, int transB, size_t M, size_t N, size_t K, float alpha, const float *A, size_t lda,
                      const void *B, int wtype, size_t ldb, float beta, float *C, size_t ldc) {
    if (wtype != HK_WT_F32 && !transB) return HK_GEMM_WT_UNAVAILABLE;
#if defined(__x86_64__)
    int level = hk_gemm_f32_level();
    const wt_isa *isa = level == 2 ? &isa_avx512 : level == 1 ? &isa_avx2 : NULL;
    if (isa) {
        if (M == 0 || N == 0) return 0;
        if (K == 0 || alpha == 0) {
            scale_c(M, N, beta, C, ldc);
            return 0;
        }
        return gemm_blocked(isa, transA, transB, M, N, K, alpha, A, lda, B, wtype, ldb, beta, C, ldc);
    }
#endif
    (void)transA; (void)M; (void)N; (void)K; (void)alpha; (void)A; (void)lda; (void)B; (void)ldb; (void)beta; (void)C;
    (void)ldc;
    return HK_GEMM_WT_UNAVAILABLE;
}

int hk_gemm_f32_wt(size_t M, size_t N, size_t K, const float *A, size_t lda, const void *W, int wtype, size_t ldw,
                   float *C, size_t ldc) {
    if (wtype != HK_WT_F32 && wtype != HK_WT_BF16 && wtype != HK_WT_F16) return HK_GEMM_WT_UNAVAILABLE;   /* int8: hk_gemm_f32_q8 */
    return gemm_entry(0, 1, M, N, K, 1, A, lda, W, wtype, ldw, 0, C, ldc);
}

int hk_gemm_f32(int transA, int transB, size_t M, size_t N, size_t K, float alpha, const float *A, size_t lda, const float *B,
                size_t ldb, float beta, float *C, size_t ldc) {
    return gemm_entry(transA, transB, M, N, K, alpha, A, lda, B, HK_WT_F32, ldb, beta, C, ldc);
}

int hk_gemm_f32_q8(size_t M, size_t N, size_t K, const float *A, size_t lda, const int8_t *q, const float *scales, size_t rows,
                   size_t r0, int rows4, float *C, size_t ldc) {
    hk_q8_src src;
    if (hk_q8_src_init(&src, q, scales, rows, K, r0, N, rows4) != 0) return HK_GEMM_WT_UNAVAILABLE;
    return gemm_entry(0, 1, M, N, K, 1, A, lda, &src, WT_Q8, K, 0, C, ldc);
}
