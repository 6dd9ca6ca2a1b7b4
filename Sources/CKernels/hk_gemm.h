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

#endif
