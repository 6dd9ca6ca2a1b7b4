/*
 * rows.c: the row reductions of training's backward passes, which in Swift ran one element at a
 * time (a float sum is never reordered, so it is never vectorised):
 *   hk_rmsnorm_backward   dx += r·w⊙dy − r³·⟨w⊙dy, x⟩/C · x,  dw += dy⊙x·r   per row
 *   hk_softmax_backward   d = p ⊙ (d − ⟨p, d⟩)                                one softmax row
 *   hk_dot                ⟨a, b⟩
 * Each body is plain C, compiled three times: for AVX-512, for AVX2 and for the baseline, with
 * reassociation allowed inside so the compiler keeps several partial sums in vector registers;
 * hk_level() picks one, as for every other kernel. The sums' order therefore differs between
 * levels (and from a sequential loop) by rounding.
 */
#include "hmst_kernels.h"

#define HK_ROWS_BODIES(SUFFIX, ATTR)                                                                              \
    static ATTR float dot_##SUFFIX(const float *a, const float *b, size_t n) {                                  \
        _Pragma("clang fp reassociate(on)")                                                                      \
        float s = 0;                                                                                             \
        for (size_t i = 0; i < n; i++) s += a[i] * b[i];                                                         \
        return s;                                                                                                \
    }                                                                                                            \
    static ATTR void softmax_backward_##SUFFIX(float *d, const float *p, size_t n) {                             \
        float s = dot_##SUFFIX(p, d, n);                                                                         \
        for (size_t i = 0; i < n; i++) d[i] = p[i] * (d[i] - s);                                                 \
    }                                                                                                            \
    static ATTR void rmsnorm_backward_##SUFFIX(float *dx, float *dw, const float *dy, const float *x, const float *w, \
                                               const float *rstd, size_t rows, size_t C) {                       \
        for (size_t n = 0; n < rows; n++) {                                                                      \
            const float *xr = x + n * C, *dyr = dy + n * C;                                                      \
            float *dxr = dx + n * C, r = rstd[n];                                                                \
            float s = 0;                                                                                         \
            {                                                                                                    \
                _Pragma("clang fp reassociate(on)")                                                              \
                for (size_t c = 0; c < C; c++) s += w[c] * dyr[c] * xr[c];                                       \
            }                                                                                                    \
            float k = r * r * r * s / (float)C;                                                                  \
            for (size_t c = 0; c < C; c++) {                                                                     \
                dxr[c] += r * w[c] * dyr[c] - k * xr[c];                                                         \
                dw[c] += dyr[c] * xr[c] * r;                                                                     \
            }                                                                                                    \
        }                                                                                                        \
    }

HK_ROWS_BODIES(portable, )
#if defined(__x86_64__)
HK_ROWS_BODIES(avx2, __attribute__((target("avx2,fma"))))
HK_ROWS_BODIES(avx512, __attribute__((target("avx512f,avx512vl,fma"))))
#define HK_ROWS_PICK(CALL)                                                        \
    do {                                                                          \
        if (hk_level() >= HK_LEVEL_AVX512) { return CALL(avx512); }              \
        if (hk_level() >= HK_LEVEL_AVX2) { return CALL(avx2); }                  \
        return CALL(portable);                                                    \
    } while (0)
#else
#define HK_ROWS_PICK(CALL) return CALL(portable)
#endif

#define HK_DOT(S) dot_##S(a, b, n)
float hk_dot(const float *a, const float *b, size_t n) { HK_ROWS_PICK(HK_DOT); }

#define HK_SMB(S) softmax_backward_##S(d, p, n)
void hk_softmax_backward(float *d, const float *p, size_t n) { HK_ROWS_PICK(HK_SMB); }

#define HK_RMSB(S) rmsnorm_backward_##S(dx, dw, dy, x, w, rstd, rows, C)
void hk_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd, size_t rows,
                         size_t C) {
    HK_ROWS_PICK(HK_RMSB);
}
