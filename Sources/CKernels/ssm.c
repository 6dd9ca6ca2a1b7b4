/*
 * ssm.c: the Mamba kernels declared in hmst_ssm.h: causal depthwise conv + SiLU and the
 * selective scan, forward and backward side by side. Plain loops over contiguous N (the state
 * axis) that the compiler vectorises at -O3; the GEMMs around them stay in OpenBLAS (Swift side).
 * Math: Gu & Dao, "Mamba" (arXiv:2312.00752), Algorithm 2, as HF transformers' torch path
 * computes it (discretised A = exp(δA), B̄x = (δB)x, zero-order hold for A only).
 * The scan has AVX2 and AVX-512 builds of the same source (target attributes, chosen at run
 * time); with FP contraction off and no reduction split across SIMD lanes, every build gives
 * bit-identical results, so the ISA changes only the speed.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "hmst_kernels.h"
#include "hmst_ssm.h"

#pragma STDC FP_CONTRACT OFF

#define SSM_INLINE static inline __attribute__((always_inline))

/* Cephes-style expf: 2^k · p(r) with k = round(x / ln 2) and |r| <= ln2 / 2. Rounding uses the
 * 1.5·2^23 trick and 2^k is built from bits, so the whole function vectorises without libm. */
SSM_INLINE float ssm_exp(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    const float shifter = 12582912.0f; /* 1.5 * 2^23 */
    float k = (x * 1.44269504088896341f + shifter) - shifter;
    float r = x - k * 0.693359375f;
    r = r - k * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float e = p * (r * r) + r + 1.0f;
    int32_t bits = ((int32_t)k + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return e * scale;
}

float hk_ssm_exp(float x) { return ssm_exp(x); }

static inline float sigmoidf(float v) { return 1.0f / (1.0f + expf(-v)); }

/* in(s, d) of the header: the chunk's input for s >= 0, the carried state before it. */
static inline float conv_in(const float *xin, size_t ld_in, const float *state, size_t W, long s, size_t d) {
    return s >= 0 ? xin[(size_t)s * ld_in + d] : state[d * (W - 1) + (size_t)((long)(W - 1) + s)];
}

void hk_ssm_conv_forward(float *xc, float *u, float *state, const float *xin, size_t ld_in,
                         const float *w, const float *b, size_t T, size_t Di, size_t W, size_t d0, size_t d1) {
    /* u[t, d] over the block; t outer so xin rows are read contiguously in d */
    for (size_t t = 0; t < T; t++) {
        float *xct = xc + t * Di;
        for (size_t d = d0; d < d1; d++) {
            float acc = 0;
            for (size_t k = 0; k < W; k++) {
                long s = (long)t + (long)k - (long)(W - 1);
                acc += w[d * W + k] * conv_in(xin, ld_in, state, W, s, d);
            }
            if (b) acc += b[d];
            if (u) u[t * Di + d] = acc;
            xct[d] = acc * sigmoidf(acc);
        }
    }
    /* state[d, j] <- the input at time T - (W-1) + j; ascending j reads only entries not yet
     * overwritten (j + T > j), so the shift is safe in place */
    if (W < 2) return;
    size_t S = W - 1;
    for (size_t d = d0; d < d1; d++) {
        float *st = state + d * S;
        for (size_t j = 0; j < S; j++) {
            long s = (long)T - (long)S + (long)j;
            st[j] = s >= 0 ? xin[(size_t)s * ld_in + d] : st[j + T];
        }
    }
}

void hk_ssm_conv_backward(float *dxin, size_t ld_dx, float *dw, float *db, const float *dxc, const float *u,
                          const float *xin, size_t ld_in, const float *state0, const float *w,
                          size_t T, size_t Di, size_t W, size_t d0, size_t d1) {
    for (size_t t = 0; t < T; t++) {
        for (size_t d = d0; d < d1; d++) {
            /* silu'(u) = σ(u)(1 + u(1 - σ(u))) */
            float uv = u[t * Di + d], s = sigmoidf(uv);
            float g = dxc[t * Di + d] * s * (1.0f + uv * (1.0f - s));
            if (db) db[d] += g;
            for (size_t k = 0; k < W; k++) {
                long src = (long)t + (long)k - (long)(W - 1);
                dw[d * W + k] += g * conv_in(xin, ld_in, state0, W, src, d);
                if (src >= 0) dxin[(size_t)src * ld_dx + d] += g * w[d * W + k];
            }
        }
    }
}

/* Σ a[i] b[i] in 8 interleaved partial sums (a fixed order the compiler can keep in SIMD lanes). */
SSM_INLINE float dot8(const float *restrict a, const float *restrict b, size_t n) {
    float acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (size_t k = 0; k < 8; k++) acc[k] += a[i + k] * b[i + k];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* One token of one channel: h_out[n] = exp(δ A[n]) h_in[n] + (δ B[n]) x  (h_out may not alias
 * h_in's neighbours, only h_in itself, which the in-place forward passes twice). */
SSM_INLINE void scan_update(float *h_out, const float *h_in, const float *restrict A, const float *restrict B,
                               float dt, float xv, size_t N) {
#pragma clang loop vectorize(enable)
    for (size_t n = 0; n < N; n++) h_out[n] = ssm_exp(dt * A[n]) * h_in[n] + (dt * B[n]) * xv;
}

SSM_INLINE void scan_forward(float *y, float *h, const float *x, const float *delta, const float *A_log,
                             const float *B, const float *C, size_t ld_bc, const float *D,
                             size_t T, size_t Di, size_t N, size_t d0, size_t d1, float *Ad) {
    for (size_t d = d0; d < d1; d++) {
        float *hd = h + d * N;
        for (size_t n = 0; n < N; n++) Ad[n] = -expf(A_log[d * N + n]);
        for (size_t t = 0; t < T; t++) {
            const float xv = x[t * Di + d];
            scan_update(hd, hd, Ad, B + t * ld_bc, delta[t * Di + d], xv, N);
            y[t * Di + d] = dot8(hd, C + t * ld_bc, N) + D[d] * xv;
        }
    }
}

#define SCAN_FORWARD_PARAMS float *y, float *h, const float *x, const float *delta, const float *A_log, \
    const float *B, const float *C, size_t ld_bc, const float *D, size_t T, size_t Di, size_t N, size_t d0, size_t d1, float *Ad
#define SCAN_FORWARD_ARGS y, h, x, delta, A_log, B, C, ld_bc, D, T, Di, N, d0, d1, Ad
static void scan_forward_portable(SCAN_FORWARD_PARAMS) { scan_forward(SCAN_FORWARD_ARGS); }
#if defined(__x86_64__)
__attribute__((target("avx2"))) static void scan_forward_avx2(SCAN_FORWARD_PARAMS) { scan_forward(SCAN_FORWARD_ARGS); }
__attribute__((target("avx512f"))) static void scan_forward_avx512(SCAN_FORWARD_PARAMS) { scan_forward(SCAN_FORWARD_ARGS); }
#endif

/* 2 AVX-512, 1 AVX2, 0 portable: the dispatcher's level, so a forced lower level is obeyed. */
static int scan_isa(void) {
#if defined(__x86_64__)
    if (hk_level() >= HK_LEVEL_AVX512) return 2;
    if (hk_level() >= HK_LEVEL_AVX2) return 1;
#endif
    return 0;
}

void hk_ssm_scan_forward(float *y, float *h, const float *x, const float *delta, const float *A_log,
                         const float *B, const float *C, size_t ld_bc, const float *D,
                         size_t T, size_t Di, size_t N, size_t d0, size_t d1) {
    float Ad[N]; /* this channel's A = -exp(A_log); N <= 4096 (MambaConfig), so at most 16 KiB */
    switch (scan_isa()) {
#if defined(__x86_64__)
    case 2: scan_forward_avx512(SCAN_FORWARD_ARGS); return;
    case 1: scan_forward_avx2(SCAN_FORWARD_ARGS); return;
#endif
    default: scan_forward_portable(SCAN_FORWARD_ARGS);
    }
}

/* One reverse step of one channel (see hk_ssm_scan_backward), the elementwise part:
 *   gn = g + dy C,  dC += dy h_t,  dB += gn (δ x),  ga = gn h_{t-1} a (a = exp(δ A)),
 *   dA_log += ga δ A,  g = gn a;  gn and ga A are kept for the two sums the caller takes. */
SSM_INLINE void scan_reverse(float *restrict g, float *restrict gn_out, float *restrict gaA_out,
                                float *restrict dA_log, float *restrict dB, float *restrict dC,
                                const float *restrict h_t, const float *restrict h_prev, const float *restrict A,
                                const float *restrict C, float dt, float xv, float dyv, size_t N) {
#pragma clang loop vectorize(enable)
    for (size_t n = 0; n < N; n++) {
        float gn = g[n] + dyv * C[n];
        dC[n] += dyv * h_t[n];
        float a = ssm_exp(dt * A[n]);
        dB[n] += gn * (dt * xv);
        float ga = gn * h_prev[n] * a; /* dL/d(δA) */
        dA_log[n] += ga * dt * A[n];   /* d(δA)/dA_log = δ A */
        gn_out[n] = gn;
        gaA_out[n] = ga * A[n];
        g[n] = gn * a;
    }
}

SSM_INLINE void scan_backward(float *dx, float *ddelta, float *dA_log, float *dD, float *dB, float *dC, size_t ld_dbc,
                              float *work, const float *dy, const float *x, const float *delta, const float *A_log,
                              const float *B, const float *C, size_t ld_bc, const float *D, const float *h0,
                              const float *dhT, size_t T, size_t Di, size_t N, size_t d0, size_t d1, float *Ad, float *ones) {
    float *hs = work;                 /* [T, N]: h_t of the current channel */
    float *g = work + T * N;          /* [N]: dL/dh_t, flowing backwards in time */
    float *gn = g + N, *gaA = gn + N; /* [N] each: per-step terms of the two sums */
    for (size_t n = 0; n < N; n++) ones[n] = 1;
    for (size_t d = d0; d < d1; d++) {
        for (size_t n = 0; n < N; n++) Ad[n] = -expf(A_log[d * N + n]);
        /* recompute h_t exactly as the forward did */
        const float *hp = h0 + d * N;
        for (size_t t = 0; t < T; t++) {
            scan_update(hs + t * N, hp, Ad, B + t * ld_bc, delta[t * Di + d], x[t * Di + d], N);
            hp = hs + t * N;
        }
        /* dL/dh_T: zero, or the gradient of a loss that reads the final state */
        if (dhT)
            for (size_t n = 0; n < N; n++) g[n] = dhT[d * N + n];
        else
            for (size_t n = 0; n < N; n++) g[n] = 0;
        float dDd = 0;
        for (size_t t = T; t-- > 0;) {
            const float dt = delta[t * Di + d], xv = x[t * Di + d], dyv = dy[t * Di + d];
            scan_reverse(g, gn, gaA, dA_log + d * N, dB + t * ld_dbc, dC + t * ld_dbc, hs + t * N,
                         t > 0 ? hs + (t - 1) * N : h0 + d * N, Ad, C + t * ld_bc, dt, xv, dyv, N);
            /* y_t = C·h_t + D x,  h_t = a h_{t-1} + (δ B) x:  dδ = Σ gn B x + Σ ga A,  dx = dy D + Σ gn B δ */
            float gB = dot8(gn, B + t * ld_bc, N), gAa = dot8(gaA, ones, N);
            ddelta[t * Di + d] += gB * xv + gAa;
            dx[t * Di + d] += dyv * D[d] + gB * dt;
            dDd += dyv * xv;
        }
        dD[d] += dDd;
    }
}

#define SCAN_BACKWARD_PARAMS float *dx, float *ddelta, float *dA_log, float *dD, float *dB, float *dC, size_t ld_dbc, \
    float *work, const float *dy, const float *x, const float *delta, const float *A_log, const float *B, const float *C, \
    size_t ld_bc, const float *D, const float *h0, const float *dhT, size_t T, size_t Di, size_t N, size_t d0, size_t d1, \
    float *Ad, float *ones
#define SCAN_BACKWARD_ARGS dx, ddelta, dA_log, dD, dB, dC, ld_dbc, work, dy, x, delta, A_log, B, C, ld_bc, D, h0, dhT, \
    T, Di, N, d0, d1, Ad, ones
static void scan_backward_portable(SCAN_BACKWARD_PARAMS) { scan_backward(SCAN_BACKWARD_ARGS); }
#if defined(__x86_64__)
__attribute__((target("avx2"))) static void scan_backward_avx2(SCAN_BACKWARD_PARAMS) { scan_backward(SCAN_BACKWARD_ARGS); }
__attribute__((target("avx512f"))) static void scan_backward_avx512(SCAN_BACKWARD_PARAMS) { scan_backward(SCAN_BACKWARD_ARGS); }
#endif

void hk_ssm_scan_backward(float *dx, float *ddelta, float *dA_log, float *dD, float *dB, float *dC, size_t ld_dbc,
                          float *work, const float *dy, const float *x, const float *delta, const float *A_log,
                          const float *B, const float *C, size_t ld_bc, const float *D, const float *h0,
                          const float *dhT, size_t T, size_t Di, size_t N, size_t d0, size_t d1) {
    float Ad[N], ones[N]; /* this channel's A = -exp(A_log), and 1s for a sum; at most 16 KiB each */
    switch (scan_isa()) {
#if defined(__x86_64__)
    case 2: scan_backward_avx512(SCAN_BACKWARD_ARGS); return;
    case 1: scan_backward_avx2(SCAN_BACKWARD_ARGS); return;
#endif
    default: scan_backward_portable(SCAN_BACKWARD_ARGS);
    }
}
