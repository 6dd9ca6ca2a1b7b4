/*
 * ssm.c: the Mamba kernels declared in hmst_ssm.h: causal depthwise conv + SiLU and the
 * selective scan, forward and backward side by side. Plain loops over contiguous N (the state
 * axis) that the compiler vectorises at -O3; the GEMMs around them stay in OpenBLAS (Swift side).
 * Math: Gu & Dao, "Mamba" (arXiv:2312.00752), Algorithm 2, as HF transformers' torch path
 * computes it (discretised A = exp(δA), B̄x = (δB)x, zero-order hold for A only).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "hmst_ssm.h"

/* Cephes-style expf: 2^k · p(r) with k = round(x / ln 2) and |r| <= ln2 / 2. Rounding uses the
 * 1.5·2^23 trick and 2^k is built from bits, so the whole function vectorises without libm. */
static inline float ssm_exp(float x) {
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

void hk_ssm_scan_forward(float *y, float *h, const float *x, const float *delta, const float *A_log,
                         const float *B, const float *C, size_t ld_bc, const float *D,
                         size_t T, size_t Di, size_t N, size_t d0, size_t d1) {
    float Ad[N]; /* this channel's A = -exp(A_log); N <= 4096 (MambaConfig), so at most 16 KiB */
    for (size_t d = d0; d < d1; d++) {
        float *hd = h + d * N;
        for (size_t n = 0; n < N; n++) Ad[n] = -expf(A_log[d * N + n]);
        for (size_t t = 0; t < T; t++) {
            const float dt = delta[t * Di + d], xv = x[t * Di + d];
            const float *Bt = B + t * ld_bc, *Ct = C + t * ld_bc;
            float acc[8] = {0};
            size_t n = 0;
            for (; n + 8 <= N; n += 8) {
                for (size_t k = 0; k < 8; k++) {
                    float hv = ssm_exp(dt * Ad[n + k]) * hd[n + k] + (dt * Bt[n + k]) * xv;
                    hd[n + k] = hv;
                    acc[k] += hv * Ct[n + k];
                }
            }
            float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
            for (; n < N; n++) {
                float hv = ssm_exp(dt * Ad[n]) * hd[n] + (dt * Bt[n]) * xv;
                hd[n] = hv;
                s += hv * Ct[n];
            }
            y[t * Di + d] = s + D[d] * xv;
        }
    }
}

void hk_ssm_scan_backward(float *dx, float *ddelta, float *dA_log, float *dD, float *dB, float *dC, size_t ld_dbc,
                          float *work, const float *dy, const float *x, const float *delta, const float *A_log,
                          const float *B, const float *C, size_t ld_bc, const float *D, const float *h0,
                          size_t T, size_t Di, size_t N, size_t d0, size_t d1) {
    float *hs = work;          /* [T, N]: h_t of the current channel */
    float *g = work + T * N;   /* [N]: dL/dh_t, flowing backwards in time */
    float Ad[N];               /* this channel's A = -exp(A_log), at most 16 KiB */
    for (size_t d = d0; d < d1; d++) {
        for (size_t n = 0; n < N; n++) Ad[n] = -expf(A_log[d * N + n]);
        /* recompute h_t exactly as the forward did */
        const float *hp = h0 + d * N;
        for (size_t t = 0; t < T; t++) {
            const float dt = delta[t * Di + d], xv = x[t * Di + d];
            const float *Bt = B + t * ld_bc;
            float *ht = hs + t * N;
            for (size_t n = 0; n < N; n++) ht[n] = ssm_exp(dt * Ad[n]) * hp[n] + (dt * Bt[n]) * xv;
            hp = ht;
        }
        for (size_t n = 0; n < N; n++) g[n] = 0;
        float *dAd = dA_log + d * N;
        float dDd = 0;
        for (size_t t = T; t-- > 0;) {
            const float dt = delta[t * Di + d], xv = x[t * Di + d], dyv = dy[t * Di + d];
            const float *Bt = B + t * ld_bc, *Ct = C + t * ld_bc;
            const float *ht = hs + t * N, *hprev = t > 0 ? hs + (t - 1) * N : h0 + d * N;
            float *dBt = dB + t * ld_dbc, *dCt = dC + t * ld_dbc;
            float gB = 0, gAa = 0; /* Σ_n g B, Σ_n g h_{t-1} a A */
            for (size_t n = 0; n < N; n++) {
                /* y_t = Σ C h_t: dh_t gets dy C, dC gets dy h_t */
                float gn = g[n] + dyv * Ct[n];
                dCt[n] += dyv * ht[n];
                /* h_t = a h_{t-1} + (δ B) x with a = exp(δ A) */
                float a = ssm_exp(dt * Ad[n]);
                gB += gn * Bt[n];
                dBt[n] += gn * (dt * xv);
                float ga = gn * hprev[n] * a; /* dL/d(δA) */
                gAa += ga * Ad[n];
                dAd[n] += ga * dt * Ad[n];     /* d(δA)/dA_log = δ A */
                g[n] = gn * a;
            }
            ddelta[t * Di + d] += gB * xv + gAa;
            dx[t * Di + d] += dyv * D[d] + gB * dt;
            dDd += dyv * xv;
        }
        dD[d] += dDd;
    }
}
