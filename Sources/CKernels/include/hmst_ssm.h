/*
 * hmst_ssm.h: the Mamba (selective state-space) kernels of ssm.c (internal): the causal depthwise
 * convolution with SiLU and the selective scan, each forward beside its backward. A kernel works
 * on the channels [d0, d1) only, so callers split Di over threads with no shared writes (except
 * where a comment says the caller must give each block its own buffer). All f32, row-major.
 * Dimension letters: T time, Di inner width, N state size, W conv width.
 * hmst_kernels.h includes this header; symbols are prefixed hk_ and stay local to libhmst.
 */
#ifndef HMST_SSM_H
#define HMST_SSM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Causal depthwise conv1d (kernel W) then SiLU, continuing from a carried state.
 *   u[t, d]  = b[d] + Σ_k w[d, k] · in(t - (W-1) + k, d),  in(s, d) = xin[s, d] for s >= 0 and
 *              state[d, (W-1) + s] for s < 0 (the W-1 inputs before this chunk, oldest first)
 *   xc[t, d] = silu(u[t, d])
 * xin: [T, ld_in] (columns [0, Di) are read)  w: [Di, W]  b: [Di] or NULL
 * u: [T, Di] or NULL (saved for the backward)  xc: [T, Di]
 * state: [Di, W-1], replaced by the last W-1 inputs of (state, xin) for channels [d0, d1). */
void hk_ssm_conv_forward(float *xc, float *u, float *state, const float *xin, size_t ld_in,
                         const float *w, const float *b, size_t T, size_t Di, size_t W, size_t d0, size_t d1);

/* Differentiates hk_ssm_conv_forward given dxc[T, Di] and the saved u[T, Di]:
 *   du = dxc · silu'(u),  db[d] += Σ_t du[t, d],  dw[d, k] += Σ_t du[t, d] · in(t - (W-1) + k, d),
 *   dxin[s, d] += Σ_k du[s + (W-1) - k, d] · w[d, k]  (s >= 0; no gradient flows into state0)
 * state0: [Di, W-1], the state the forward started from.  dxin: [T, ld_dx]  dw: [Di, W]
 * db: [Di] or NULL. */
void hk_ssm_conv_backward(float *dxin, size_t ld_dx, float *dw, float *db, const float *dxc, const float *u,
                          const float *xin, size_t ld_in, const float *state0, const float *w,
                          size_t T, size_t Di, size_t W, size_t d0, size_t d1);

/* Selective scan, continuing from h (the ssm state [Di, N], replaced by the final state):
 *   h_t[d, n] = exp(δ[t, d] A[d, n]) h_{t-1}[d, n] + (δ[t, d] B[t, n]) x[t, d]
 *   y[t, d]   = Σ_n C[t, n] h_t[d, n] + D[d] x[t, d]
 * x, delta: [T, Di]  A_log: [Di, N], A = -exp(A_log) < 0 (N <= 4096: a row of A lives on the stack)  D: [Di]
 * B, C: [T, N] with row stride ld_bc (views into x_proj's output)  y: [T, Di]. */
void hk_ssm_scan_forward(float *y, float *h, const float *x, const float *delta, const float *A_log,
                         const float *B, const float *C, size_t ld_bc, const float *D,
                         size_t T, size_t Di, size_t N, size_t d0, size_t d1);

/* Differentiates hk_ssm_scan_forward given dy[T, Di] and the state h0[Di, N] it started from.
 * The states h_t are recomputed per channel into work (no [T, Di, N] tensor is ever stored).
 *   dx, ddelta: [T, Di] +=   dA_log: [Di, N] += (through A = -exp(A_log): dA_log = dA ⊙ A)   dD: [Di] +=
 *   dB, dC: [T, N] += with row stride ld_dbc; every channel adds to every row, so concurrent
 *   blocks need their own dB/dC buffers (the caller sums them)
 *   work: [(T + 3) N] scratch for this call. No gradient flows into h0.
 *   dhT: [Di, N] dL/d(final state h_T) when a loss reads the state the scan leaves (the episodic
 *   memory's soft tokens), or NULL for zero: then the results are those of a loss on y alone. */
void hk_ssm_scan_backward(float *dx, float *ddelta, float *dA_log, float *dD, float *dB, float *dC, size_t ld_dbc,
                          float *work, const float *dy, const float *x, const float *delta, const float *A_log,
                          const float *B, const float *C, size_t ld_bc, const float *D, const float *h0,
                          const float *dhT, size_t T, size_t Di, size_t N, size_t d0, size_t d1);

/* exp(x) for x in [-87, 88], within 2 ulp of expf; a polynomial the compiler can vectorise
 * (the scan's hot loop calls it N times per token and channel). Below -87 it returns
 * exp(-87) ≈ 1.6e-38 instead of a smaller number, which no caller can tell from 0. */
float hk_ssm_exp(float x);

#ifdef __cplusplus
}
#endif

#endif
