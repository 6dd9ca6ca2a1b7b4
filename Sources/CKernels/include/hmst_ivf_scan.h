/*
 * hmst_ivf_scan.h: distances from one query to a run of stored vectors, the inner loop of an
 * IVF-Flat list scan (CFAISSShim's own scan; FAISS keeps training, assignment and storage).
 * An AVX-512F or AVX2 variant is picked at run time (hk_level()), else a portable loop; both give
 * the same values up to float summation order. Symbols are prefixed hk_ and stay local.
 */
#ifndef HMST_IVF_SCAN_H
#define HMST_IVF_SCAN_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* out[i] = sum_j (q[j] - x[i*Dk + j])^2, for i in [0, n).  q: [Dk]  x: [n, Dk]  ->  out: [n] */
void hk_l2sqr_many(float *out, const float *q, const float *x, size_t n, size_t Dk);
/* out[i] = sum_j q[j] * x[i*Dk + j].  q: [Dk]  x: [n, Dk]  ->  out: [n] */
void hk_inner_many(float *out, const float *q, const float *x, size_t n, size_t Dk);
/* Four queries against the same vectors, each vector read once for the four:
 * out[r][i] = hk_l2sqr_many's (hk_inner_many's) value for q[r] and vector i, bit for bit. */
void hk_l2sqr_many4(float *const out[4], const float *const q[4], const float *x, size_t n, size_t Dk);
void hk_inner_many4(float *const out[4], const float *const q[4], const float *x, size_t n, size_t Dk);
/* The portable variants, for tests that compare them with the dispatched ones. */
void hk_l2sqr_many_portable(float *out, const float *q, const float *x, size_t n, size_t Dk);
void hk_inner_many_portable(float *out, const float *q, const float *x, size_t n, size_t Dk);

#ifdef __cplusplus
}
#endif

#endif
