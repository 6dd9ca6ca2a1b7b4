/*
 * hk_gemm.h: what the GEMM files share (internal, not part of the module's headers).
 */
#ifndef HK_GEMM_H
#define HK_GEMM_H

#include <stddef.h>
#include <stdint.h>

/* The calling thread's packing buffers, at least a_n and b_n 32-bit words, 64-byte aligned,
 * grown on demand and freed when the thread exits (gemm_bf16.c). One GEMM at a time per thread
 * uses them. 0, or -1 when they could not be grown. */
int hk_thread_scratch(size_t a_n, size_t b_n, uint32_t **a, uint32_t **b);

/* The int8 row-quad layout (hk_q8_pack_rows4, q8_0.c), read by the int8 GEMV and by gemm_wt.c's
 * packer. Offsets of row r's value at column c (the 64 values of a row's 64-column chunk are
 * contiguous, so any c inside one chunk works) and of its block b's scale, in a row-quad matrix
 * of `rows` rows, `cols` columns, nb = cols / 32 blocks a row. Rows past the last whole quad stay
 * row-major. */
static inline size_t hk_rq_value(size_t r, size_t c, size_t rows, size_t cols) {
    if (r >= (rows & ~(size_t)3)) return r * cols + c;
    return (r & ~(size_t)3) * cols + (c / 64) * 256 + (r & 3) * 64 + c % 64;
}

static inline size_t hk_rq_scale(size_t r, size_t b, size_t rows, size_t nb) {
    if (r >= (rows & ~(size_t)3)) return r * nb + b;
    size_t j = b & ~(size_t)15, n = nb - j < 16 ? nb - j : 16;
    return (r & ~(size_t)3) * nb + 4 * j + (r & 3) * n + (b - j);
}

/* int8 weights with a scale per 32 (Q8_0) as a GEMM's packer reads them: a matrix of `rows` rows
 * and `cols` columns, row-major (rows4 = 0) or in the row-quad layout; the packer's row n is the
 * matrix's row r0 + n (a thread's share of the rows). */
typedef struct {
    const int8_t *q;
    const float *scales;
    size_t rows, cols, r0;
    int rows4;
} hk_q8_src;

/* Fills *s for rows [r0, r0 + n) of a Q8_0 matrix of `rows` rows and `cols` columns: 0, or -1 when
 * the columns are not whole blocks of 32, the range runs past the matrix, or a row-quad matrix's
 * columns are not a multiple of 64 (what both int8 GEMM entries decline). */
static inline int hk_q8_src_init(hk_q8_src *s, const int8_t *q, const float *scales, size_t rows, size_t cols, size_t r0,
                                 size_t n, int rows4) {
    if (cols % 32 != 0 || r0 > rows || n > rows - r0 || (rows4 && !hk_q8_packable(rows, cols))) return -1;
    *s = (hk_q8_src){q, scales, rows, cols, r0, rows4};
    return 0;
}

/* The values of the packer's row n from column c, and their block's scale in *scale: c a multiple
 * of the loads' 8 or 16 lanes (or a single value), so what is read lies in one block of 32. */
static inline const int8_t *hk_q8_at(const hk_q8_src *s, size_t n, size_t c, float *scale) {
    size_t r = s->r0 + n, nb = s->cols / 32;
    if (s->rows4) {
        *scale = s->scales[hk_rq_scale(r, c / 32, s->rows, nb)];
        return s->q + hk_rq_value(r, c, s->rows, s->cols);
    }
    *scale = s->scales[r * nb + c / 32];
    return s->q + r * s->cols + c;
}

#endif
