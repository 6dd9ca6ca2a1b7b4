/*
 * hmst_kernels.h: the numeric kernels OpenBLAS does not provide (internal).
 * bf16 storage: conversions and a bf16-weight GEMV/GEMM for decode and prefill; each has
 * AVX2 and AVX-512 (F / BF16) variants picked at run time from the CPU's features and a portable
 * C fallback with identical results up to float rounding order. All pointers are row-major.
 * Symbols are prefixed hk_ and stay local to libhmst.
 */
#ifndef HMST_KERNELS_H
#define HMST_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Which variant the dispatcher uses; each level includes the ones below it. */
enum {
    HK_LEVEL_PORTABLE = 0, /* plain C at the baseline ISA (SSE2 on x86-64) */
    HK_LEVEL_AVX2 = 1,     /* AVX2 + FMA: 8-wide f32 (Haswell and later, Zen 1-3) */
    HK_LEVEL_AVX512 = 2,   /* AVX-512 F/BW/VL/DQ: 16-wide f32 (Skylake-SP and later, Zen 4) */
    HK_LEVEL_BF16 = 3      /* AVX-512 with the BF16 dot-product instructions */
};
int hk_level(void);
/* Forces a level no higher than the CPU supports (tests compare variants); -1 = automatic. */
void hk_set_max_level(int level);

/* bf16 (raw uint16 bits) -> f32: out[n] = in[n] << 16 */
void hk_bf16_to_f32(float *out, const uint16_t *in, size_t n);
/* f32 -> bf16 with round-to-nearest-even (NaN stays NaN) */
void hk_f32_to_bf16(uint16_t *out, const float *in, size_t n);
/* IEEE half -> f32 */
void hk_f16_to_f32(float *out, const uint16_t *in, size_t n);
/* f32 -> IEEE half, round-to-nearest-even, overflow to inf */
void hk_f32_to_f16(uint16_t *out, const float *in, size_t n);

/* y[rows] = W[rows, cols] (bf16) · x[cols] (f32), for rows in [row_begin, row_end). */
void hk_gemv_bf16(float *y, const uint16_t *w, const float *x, size_t cols, size_t row_begin, size_t row_end);

/* y[rows] = W[rows, cols] (IEEE half) · x[cols] (f32), for rows in [row_begin, row_end): each
 * weight widened to f32 exactly (F16C's vcvtph2ps where the CPU has it) and summed in f32, so the
 * result is the f32 GEMV's over the widened matrix up to the order of the sums. */
void hk_gemv_f16(float *y, const uint16_t *w, const float *x, size_t cols, size_t row_begin, size_t row_end);

/* y[rows] = W[rows, cols] (f32) · x[cols], for rows in [row_begin, row_end). */
void hk_gemv_f32(float *y, const float *w, const float *x, size_t cols, size_t row_begin, size_t row_end);

/* How many weight rows the AVX-512 GEMVs stream per pass: 4 (four rows share each load of x)
 * or 1 (one sequential stream, four accumulators), for the f32 (kind 0), bf16 (1) or f16 (2)
 * kernel. Each row's value is the same either way. The default comes from the CPU and the
 * weight type (kernels.c: 1 for bf16 on AMD and for f32 on AMD family 25, else 4; 1 for f16 on
 * every CPU: on Zen 4 four f16 rows decoded at 0.4-0.6x of one from memory, 1.1x from cache,
 * and it is untried elsewhere); benchmarks force 1 or 4 for all with hk_set_gemv_rows, and
 * hk_set_gemv_rows(0) restores the defaults. The AVX2 GEMVs always read one row per pass. */
int hk_gemv_rows(int kind);

/* y[rows] = W[rows, cols] (bf16) · bf16(x), for rows in [row_begin, row_end): x rounded to bf16
 * (nearest even) and every product summed in f32; vdpbf16ps when hk_level() >= HK_LEVEL_BF16,
 * a portable loop otherwise (the same products, summed in another order). Decode's GEMV where
 * bf16 weights are multiplied in bf16 (ComputeRates.bf16WeightCompute). */
void hk_gemv_bf16_dot(float *y, const uint16_t *w, const float *x, size_t cols, size_t row_begin, size_t row_end);
void hk_set_gemv_rows(int rows);


/* Mixed-precision matmul (gemm_bf16.c), row-major like cblas_sgemm:
 * C[M, N] = alpha * op(A)[M, K] · op(B)[K, N] + beta * C, where op(X) = Xᵀ when trans is
 * non-zero (A is then stored [K, M], B [N, K]). Both operands are rounded to bf16 (nearest
 * even) and products are accumulated in f32: vdpbf16ps when hk_level() >= HK_LEVEL_BF16, a portable
 * kernel otherwise. beta == 0 ignores C's old contents. Single-threaded and reentrant: callers
 * split M or N across threads. Returns 0, or -1 when scratch memory cannot be allocated. */
int hk_gemm_bf16(int transA, int transB, size_t M, size_t N, size_t K, float alpha, const float *A, size_t lda,
                 const float *B, size_t ldb, float beta, float *C, size_t ldc);

/* The same product against weights already stored as bf16: C[M, N] = A[M, K] · Wᵀ, W[N, K] bf16 rows
 * ldw elements apart (a linear layer's out = x · Wᵀ). A is rounded to bf16 as above; W is used as
 * stored. beta = 0, alpha = 1. Single-threaded and reentrant; returns 0 or -1 as above. */
int hk_gemm_bf16_wt(size_t M, size_t N, size_t K, const float *A, size_t lda, const uint16_t *W, size_t ldw, float *C,
                    size_t ldc);
/* The same product against int8 weights with a scale per 32 (Q8_0): C[M, N] = A[M, K] ·
 * W[r0 .. r0+N)ᵀ, q and scales holding `rows` rows of K columns (K % 32 == 0), row-major or (rows4)
 * in the row-quad layout, as hk_gemm_f32_q8 takes them. Each weight is dequantized and rounded to
 * bf16 as it is packed, to hk_q8_dequantize_bf16's value: C equals hk_gemm_bf16_wt's over those
 * bf16 rows, bit for bit. 0, -1 as above, or HK_GEMM_WT_UNAVAILABLE for a K, range or layout
 * that does not fit. */
int hk_gemm_bf16_q8(size_t M, size_t N, size_t K, const float *A, size_t lda, const int8_t *q, const float *scales, size_t rows,
                    size_t r0, int rows4, float *C, size_t ldc);

/* Prefill's product in f32 against stored weights (gemm_wt.c): C[M, N] = A[M, K] · Wᵀ, W[N, K] rows
 * ldw elements apart of type wtype (HK_WT_*), each weight widened exactly to f32 as it is packed,
 * every product and sum in f32; C is written, not read. AVX-512 or AVX2 + FMA + F16C
 * (hk_gemm_f32_level): 0, -1 when the packing scratch could not be allocated (C untouched),
 * HK_GEMM_WT_UNAVAILABLE on other CPUs or for another wtype (the caller uses OpenBLAS). */
enum { HK_WT_F32 = 0, HK_WT_BF16 = 1, HK_WT_F16 = 2, HK_GEMM_WT_UNAVAILABLE = -2 };
int hk_gemm_f32_wt(size_t M, size_t N, size_t K, const float *A, size_t lda, const void *W, int wtype, size_t ldw,
                   float *C, size_t ldc);

/* The same kernel as a general f32 GEMM, row-major like cblas_sgemm: C = alpha · op(A) op(B) +
 * beta · C, op = ᵀ when transA / transB is non-zero (A is then stored [K, M], B [N, K]); C is not
 * read when beta = 0, and alpha = 0 or K = 0 leaves beta · C without reading A or B. Training's
 * f32 GEMMs (Train/Matmul.swift). Returns as hk_gemm_f32_wt. */
int hk_gemm_f32(int transA, int transB, size_t M, size_t N, size_t K, float alpha, const float *A, size_t lda, const float *B,
                size_t ldb, float beta, float *C, size_t ldc);
/* The same product against int8 weights with a scale per 32 (Q8_0), for CPUs whose prompts run
 * in f32: C[M, N] = A[M, K] · W[r0 .. r0+N)ᵀ, where q and scales hold a matrix of `rows` rows and K
 * columns (K % 32 == 0) row-major (rows4 = 0) or in the row-quad layout (rows4 = 1,
 * hk_q8_pack_rows4). Each weight is dequantized as hk_q8_dequantize does (scale · value, one
 * rounding) while its panel is packed, so C equals hk_gemm_f32_wt's over the dequantized f32 rows,
 * bit for bit, without writing them anywhere. Returns as hk_gemm_f32_wt; HK_GEMM_WT_UNAVAILABLE
 * also for a K, r0 + N or layout that does not fit. */
int hk_gemm_f32_q8(size_t M, size_t N, size_t K, const float *A, size_t lda, const int8_t *q, const float *scales, size_t rows,
                   size_t r0, int rows4, float *C, size_t ldc);
/* Which kernel these entries run at the current level: 2 AVX-512, 1 AVX2 + FMA + F16C, 0 none. */
int hk_gemm_f32_level(void);

/* ---- peak rates of this core (cpu_rates.c) ------------------------------------------------- */

/* Measures, on the calling thread, f32 FMA and bf16 dot-product throughput in GFLOP/s (0 when
 * the CPU lacks the instructions: FMA needs AVX2+FMA, bf16 AVX512-BF16). Takes a few ms. */
void hk_measure_rates(double *fma_gflops, double *bf16_gflops);

/* ---- blockwise 8-bit optimizer state (adam8bit.c) ------------------------------------------ */

enum { HK_QBLOCK = 256 };

/* The 256-value dynamic quantisation map, ascending, within [-1, 1] (signed) or [0, 1]. */
void hk_dynamic_map(float *map, int is_signed);
/* table[65536]: for the floats sharing each value of their top 16 bits, a map index within one
 * of the nearest; hk_adam8bit_update refines it exactly. */
void hk_quant_table(uint8_t *table, const float *map);
/* q[n] = nearest map index of x / absmax of its block; absmax: [ceil(n / 256)]. table: NULL
 * (binary search) or hk_quant_table's table for the map (the same result, faster). */
void hk_quantize_blockwise(uint8_t *q, float *absmax, const float *x, size_t n, const float *map, const uint8_t *table);
/* x[n] = map[q] * absmax of the block */
void hk_dequantize_blockwise(float *x, const uint8_t *q, const float *absmax, size_t n, const float *map);

typedef struct {
    float beta1, beta2, eps, lr, weight_decay;
    float bc1, bc2;    /* bias corrections 1 - beta^t */
    float grad_scale;  /* gradients are used as g * grad_scale (clipping, accumulation mean) */
} hk_adam_params;

/* One f32 AdamW step over n elements: m, v updated in place, p -= lr (m̂ / (√v̂ + eps) + wd p). */
void hk_adamw_update(float *p, const float *g, float *m, float *v, size_t n, const hk_adam_params *a);

/* Σ x² over x[0..n), in blocks of `block` values (block > 0): each block summed in f32 (four
 * vector accumulators under AVX-512 or AVX2, one scalar otherwise), the block sums added in double
 * in order. The gradient norm's pass: the same inputs give the same sum on a given machine. */
double hk_sumsq_blocks(const float *x, size_t n, size_t block);

/* One AdamW step over blocks [block_begin, block_end) of an n-element tensor whose moments are
 * stored 8-bit: dequantise m (signed map) and v (unsigned map), update them with g, update p
 * with the f32 moments, requantise with fresh block maxima. Blocks are independent. */
void hk_adam8bit_update(float *p, const float *g, uint8_t *mq, uint8_t *vq, float *m_absmax, float *v_absmax,
                        size_t block_begin, size_t block_end, size_t n, const float *map_m, const float *map_v,
                        const uint8_t *table_m, const uint8_t *table_v, const hk_adam_params *a);

/* ---- elementwise and row ops (ops.c), all f32 ---------------------------------------------- */

/* out[r, :] = w * x[r, :] / sqrt(mean(x[r, :]^2) + eps) for r < rows; rstd[r] saved if non-NULL.
 * x: [rows, C]  w: [C]  out: [rows, C] (may alias x)  rstd: [rows] */
void hk_rmsnorm(float *out, float *rstd, const float *x, const float *w, size_t rows, size_t C, float eps);

/* out[i] = silu(a[i]) * b[i], silu(z) = z / (1 + exp(-z)).  out may alias a or b. */
void hk_silu_mul(float *out, const float *a, const float *b, size_t n);

/* In-place numerically stable softmax of x[n]; returns the log of the normaliser plus max
 * (the log-sum-exp), useful for losses. */
float hk_softmax(float *x, size_t n);

/* Rotary embedding, HF rotate_half layout: for each row (one head of one token) and i < Dh/2,
 * (x[i], x[i+Dh/2]) is rotated by angle pos * inv_freq[i].
 * x: [T, n_heads, Dh] with row stride ld (>= n_heads*Dh) between tokens
 * cos_t, sin_t: [T, Dh/2] precomputed for the tokens' positions */
void hk_rope(float *x, size_t T, size_t n_heads, size_t Dh, size_t ld, const float *cos_t, const float *sin_t);

/* One query of causal attention over n keys of one KV head:
 * scores[s] = scale * q·K[s], p = softmax(scores), out = Σ_s p[s] V[s].
 * q: [Dh]  K, V: [n, Dh] contiguous  out: [Dh]  scratch: [n] (receives p) */
void hk_attend(float *out, float *scratch, const float *q, const float *K, const float *V, size_t n, size_t Dh, float scale);

/* hk_attend over a bf16 cache (attend_bf16.c).  K, V: [n, Dh] bf16 contiguous */
void hk_attend_bf16(float *out, float *scratch, const float *q, const uint16_t *K, const uint16_t *V, size_t n, size_t Dh,
                    float scale);

/* Differentiates hk_silu_mul: da = dh · b · σ(a)(1 + a(1 − σ(a))),  db = dh · silu(a). */
void hk_swiglu_backward(float *da, float *db, const float *dh, const float *a, const float *b, size_t n);

/* out[i] += a * x[i] */
void hk_axpy(float *out, float a, const float *x, size_t n);
/* rows.c: training's backward row reductions (vectorised sums; the order of a sum differs
 * between CPU levels by rounding). */
/* ⟨a, b⟩ over n elements */
float hk_dot(const float *a, const float *b, size_t n);
/* one softmax row's backward in place: d = p ⊙ (d − ⟨p, d⟩) */
void hk_softmax_backward(float *d, const float *p, size_t n);
/* RMSNorm backward over rows of C: dx += r·w⊙dy − r³·⟨w⊙dy, x⟩/C·x and dw += dy⊙x·r (r = rstd[row]) */
void hk_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd, size_t rows,
                         size_t C);


/* ---- int8 weights, Q8_0 blocks (q8_0.c) ----------------------------------------------------- */

/* Values per block; every quantized row length is a multiple of it. */
enum { HK_Q8_BLOCK = 32 };

/* Which GEMV variant runs: 0 portable, 1 AVX2 (vpmaddubsw/vpmaddwd), 2 AVX-512 VNNI (vpdpbusd). */
int hk_q8_level(void);
/* Forces a level no higher than the CPU supports (tests compare variants); -1 = automatic. */
void hk_q8_set_max_level(int level);

/* Blockwise: scales[b] = max|x[block b]| / 127, q = round-half-even(x / scales[b]) in [-127, 127]
 * (all-zero blocks: scale 0, q 0).  x: [n]  q: [n]  scales: [n / 32]; n % 32 == 0. */
void hk_q8_quantize(int8_t *q, float *scales, const float *x, size_t n);
/* out[n] = scales[i / 32] * q[i] */
void hk_q8_dequantize(float *out, const int8_t *q, const float *scales, size_t n);

/* Bytes of the quantized-activation buffer for a vector of n (% 32 == 0) values; the buffer
 * must be 64-byte aligned. hk_q8_quantize_act fills it from x[n] (once per token). */
size_t hk_q8_act_bytes(size_t n);
void hk_q8_quantize_act(void *act, const float *x, size_t n);

/* y[r] = Σ_b scales[r, b] · s_x[b] · Σ_{i in b} W[r, i] q_x[i]  for rows in [row_begin, row_end).
 * W: [rows, cols] int8 in [-127, 127]  scales: [rows, cols / 32]  act: hk_q8_quantize_act of x[cols] */
void hk_gemv_q8(float *y, const int8_t *w, const float *scales, const void *act, size_t cols, size_t row_begin,
                size_t row_end);

/* The row-quad layout: the same values and scales, reordered so that the decode GEMV reads one
 * sequential stream. Rows go in groups of four; group g (rows 4g..4g+3) takes values
 * [4g·cols, (4g+4)·cols) as, for each 64-column chunk k, row 0's chunk k, row 1's, row 2's, row
 * 3's (256 bytes), and scales [4g·nb, (4g+4)·nb) (nb = cols / 32) as, for each run of up to 16
 * blocks starting at block j (n = min(16, nb - j) blocks), row 0's n scales, row 1's, row 2's,
 * row 3's. The last rows % 4 rows stay row-major where they are. For cols % 64 == 0 and rows >= 4. */
int hk_q8_packable(size_t rows, size_t cols);
/* Row-major (hk_q8_quantize's layout) -> row-quad for rows [row_begin, row_end) (ranges of
 * several calls may run in parallel), and a whole matrix back. Buffers do not overlap. */
void hk_q8_pack_rows4(int8_t *pq, float *ps, const int8_t *q, const float *s, size_t rows, size_t cols, size_t row_begin,
                      size_t row_end);
void hk_q8_unpack_rows4(int8_t *q, float *s, const int8_t *pq, const float *ps, size_t rows, size_t cols);
/* Rows [row_begin, row_end) of a row-quad matrix as f32, row-major, into out[(end - begin) * cols]. */
void hk_q8_dequantize_rows4(float *out, const int8_t *pq, const float *ps, size_t rows, size_t cols, size_t row_begin,
                            size_t row_end);
/* Row-major q[n] with scales[n / 32] as bf16, rounded to nearest even: the values
 * hk_gemm_bf16_q8 multiplies (it computes them as it packs; this is their definition, for tests). */
void hk_q8_dequantize_bf16(uint16_t *out, const int8_t *q, const float *scales, size_t n);
/* hk_gemv_q8 over a row-quad matrix of `rows` rows; the same integer block sums, summed in f32 in
 * another order. Any [row_begin, row_end) works; begins that are multiples of 4 and values
 * 64-byte aligned run fastest (AVX-512 VNNI, four rows at a time; otherwise row by row). */
void hk_gemv_q8_rows4(float *y, const int8_t *pq, const float *ps, const void *act, size_t rows, size_t cols,
                      size_t row_begin, size_t row_end);

/* ---- decode GEMV tasks (kernels.c) ---------------------------------------------------------- */

/* One task of a decode GEMV batch: y[r] = W[r, :] · x for r in [r0, r1), W of the given kind.
 * Plain data, so a batch runs on hmst's pool with a C callback and no Swift reference counting
 * per task (tasks are a few microseconds each; two threads touching one reference count cost
 * about 2% of a decode step). */
enum {
    HK_GEMV_F32 = 0,        /* w: float */
    HK_GEMV_BF16 = 1,       /* w: uint16_t, widened to f32 (hk_gemv_bf16) */
    HK_GEMV_BF16_DOT = 2,   /* w: uint16_t, bf16 dot products (hk_gemv_bf16_dot) */
    HK_GEMV_Q8 = 3,         /* w: int8_t row-major with scales; act: hk_q8_quantize_act of x */
    HK_GEMV_Q8_ROWS4 = 4,   /* w: int8_t row-quad with scales; act as above */
    HK_GEMV_F16 = 5,        /* w: uint16_t IEEE half, widened to f32 (hk_gemv_f16) */
};

typedef struct {
    float *y;
    const void *w;
    const float *scales;
    const float *x;
    const void *act;
    int64_t kind;
    size_t rows, cols, r0, r1;
} hk_gemv_task;

/* Runs ((const hk_gemv_task *)tasks)[i]; the signature of a pool task (chmst_task_fn). */
void hk_gemv_task_run(void *tasks, int64_t i);

/* ---- NaN / Inf scans (q8_0.c) --------------------------------------------------------------- */

/* Index of the first NaN or ±Inf in x[n], or (size_t)-1 when all are finite. */
size_t hk_find_nonfinite_f32(const float *x, size_t n);
/* The same over 16-bit floats: bf16 when is_bf16, IEEE half otherwise. */
size_t hk_find_nonfinite_16(const uint16_t *x, size_t n, int is_bf16);
/* Index of the first x[i] == value, or (size_t)-1 (int8 weights must not hold -128). */
size_t hk_find_i8_value(const int8_t *x, size_t n, int8_t value);

#ifdef __cplusplus
}
#endif

/* The Mamba conv and selective-scan kernels (ssm.c). */
#include "hmst_ssm.h"

#endif
