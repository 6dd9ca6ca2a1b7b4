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

#endif
