/*
 * ops.c: the row-wise and elementwise ops of the transformer forward pass. Written as plain
 * loops over contiguous f32 that the compiler vectorises (-O3); the heavy lifting stays in
 * OpenBLAS and the GEMV kernels.
 */
#include <math.h>

#include "hmst_kernels.h"

void hk_rmsnorm(float *out, float *rstd, const float *x, const float *w, size_t rows, size_t C, float eps) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * C;
        float *o = out + r * C;
        double ss = 0; /* double so long rows do not lose the sum */
        float acc[8] = {0};
        size_t c = 0;
        for (; c + 8 <= C; c += 8)
            for (int k = 0; k < 8; k++) acc[k] += xr[c + k] * xr[c + k];
        for (int k = 0; k < 8; k++) ss += acc[k];
        for (; c < C; c++) ss += (double)xr[c] * xr[c];
        float s = (float)(1.0 / sqrt(ss / (double)C + (double)eps));
        if (rstd) rstd[r] = s;
        for (size_t j = 0; j < C; j++) o[j] = w[j] * (xr[j] * s);
    }
}

void hk_silu_mul_portable(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float z = a[i];
        out[i] = z / (1.0f + expf(-z)) * b[i];
    }
}

float hk_softmax_portable(float *x, size_t n) {
    if (n == 0) return -INFINITY;
    float m = x[0];
    for (size_t i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    if (m == -INFINITY) { /* every entry masked: uniform is the only sane answer */
        for (size_t i = 0; i < n; i++) x[i] = 1.0f / (float)n;
        return -INFINITY;
    }
    float sum = 0;
    for (size_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - m);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    for (size_t i = 0; i < n; i++) x[i] *= inv;
    return m + logf(sum);
}

void hk_rope(float *x, size_t T, size_t n_heads, size_t Dh, size_t ld, const float *cos_t, const float *sin_t) {
    size_t half = Dh / 2;
    for (size_t t = 0; t < T; t++) {
        const float *c = cos_t + t * half;
        const float *s = sin_t + t * half;
        for (size_t h = 0; h < n_heads; h++) {
            float *v = x + t * ld + h * Dh;
            for (size_t i = 0; i < half; i++) {
                float x1 = v[i], x2 = v[i + half];
                v[i] = x1 * c[i] - x2 * s[i];
                v[i + half] = x2 * c[i] + x1 * s[i];
            }
        }
    }
}

void hk_attend(float *out, float *scratch, const float *q, const float *K, const float *V, size_t n, size_t Dh, float scale) {
    hk_gemv_f32(scratch, K, q, Dh, 0, n);
    for (size_t s = 0; s < n; s++) scratch[s] *= scale;
    hk_softmax(scratch, n);
    for (size_t d = 0; d < Dh; d++) out[d] = 0;
    for (size_t s = 0; s < n; s++) hk_axpy(out, scratch[s], V + s * Dh, Dh);
}

void hk_axpy(float *out, float a, const float *x, size_t n) {
#if defined(__x86_64__)
    if (hk_level() >= HK_LEVEL_AVX2) {
        extern void hk_axpy_avx2(float *, float, const float *, size_t);
        hk_axpy_avx2(out, a, x, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) out[i] += a * x[i];
}
