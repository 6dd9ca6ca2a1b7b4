/*
 * adam8bit.c: blockwise 8-bit Adam state (the scheme of Dettmers et al., "8-bit Optimizers via
 * Block-wise Quantization"): each block of 256 moments is scaled by its absolute maximum and
 * stored as the index of the nearest value of a 256-entry dynamic map. The maps spend their
 * codes evenly over 7 decades (1e-6 .. 1) with a linear fraction inside each decade, more
 * codes in the larger decades; the signed map (first moment) mirrors its codes around 0, the
 * unsigned one (second moment, never negative) spends the sign bit on finer fractions.
 */
#include "hmst_kernels.h"

#include <math.h>
#include <string.h>

void hk_dynamic_map(float *map, int is_signed) {
    int n = 0;
    for (int i = 0; i < 7; i++) {
        /* decade i spans [0.1, 1] * 10^(i-6); it gets 2^i codes (signed) or 2^(i+1) (unsigned),
         * each the midpoint of an equal slice of the decade */
        int items = is_signed ? 1 << i : 1 << (i + 1);
        float scale = powf(10.0f, (float)(i - 6));
        for (int j = 0; j < items; j++) {
            float lo = 0.1f + 0.9f * (float)j / (float)items, hi = 0.1f + 0.9f * (float)(j + 1) / (float)items;
            float v = scale * 0.5f * (lo + hi);
            map[n++] = v;
            if (is_signed) map[n++] = -v;
        }
    }
    map[n++] = 0.0f;
    map[n++] = 1.0f; /* 254 + 2 = 256 */
    /* insertion sort: ascending */
    for (int i = 1; i < 256; i++) {
        float x = map[i];
        int j = i - 1;
        while (j >= 0 && map[j] > x) { map[j + 1] = map[j]; j--; }
        map[j + 1] = x;
    }
}

/* Index of the map value nearest x (map ascending, 256 entries). */
static inline uint8_t nearest(const float *map, float x) {
    int lo = 0;
    for (int step = 128; step > 0; step >>= 1)
        if (map[lo + step - 1] < x) lo += step; /* first index with map[i] >= x, capped at 255 */
    if (lo > 0 && fabsf(x - map[lo - 1]) <= fabsf(map[lo] - x)) lo--;
    return (uint8_t)lo;
}

void hk_quant_table(uint8_t *table, const float *map) {
    for (uint32_t hi = 0; hi < 65536; hi++) {
        uint32_t u = (hi << 16) | 0x8000u; /* the middle of the bucket of floats sharing these top bits */
        float x;
        memcpy(&x, &u, 4);
        table[hi] = isnan(x) ? 0 : nearest(map, fminf(1.0f, fmaxf(-1.0f, x)));
    }
}

/* nearest() through the table: the bucket's code is within one of the nearest (buckets are
 * 2^-7 wide relative, narrower than the gap between codes), so one step either way is exact. */
static inline uint8_t nearest_fast(const float *map, const uint8_t *table, float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    int i = table[u >> 16];
    float d = fabsf(x - map[i]);
    if (i < 255 && fabsf(x - map[i + 1]) < d) return (uint8_t)(i + 1);
    if (i > 0 && fabsf(x - map[i - 1]) <= d) return (uint8_t)(i - 1); /* ties go down, as in nearest() */
    return (uint8_t)i;
}

void hk_quantize_blockwise(uint8_t *q, float *absmax, const float *x, size_t n, const float *map, const uint8_t *table) {
    for (size_t b = 0; b * HK_QBLOCK < n; b++) {
        size_t lo = b * HK_QBLOCK, hi = lo + HK_QBLOCK < n ? lo + HK_QBLOCK : n;
        float m = 0;
        for (size_t i = lo; i < hi; i++) m = fmaxf(m, fabsf(x[i]));
        absmax[b] = m;
        float d = m > 0 ? m : 1.0f; /* divide, not multiply by 1/m: 1/m overflows for tiny m */
        for (size_t i = lo; i < hi; i++) q[i] = table ? nearest_fast(map, table, x[i] / d) : nearest(map, x[i] / d);
    }
}

void hk_dequantize_blockwise(float *x, const uint8_t *q, const float *absmax, size_t n, const float *map) {
    for (size_t i = 0; i < n; i++) x[i] = map[q[i]] * absmax[i / HK_QBLOCK];
}

void hk_adam8bit_update(float *p, const float *g, uint8_t *mq, uint8_t *vq, float *m_absmax, float *v_absmax,
                        size_t block_begin, size_t block_end, size_t n, const float *map_m, const float *map_v,
                        const uint8_t *table_m, const uint8_t *table_v, const hk_adam_params *a) {
    float m[HK_QBLOCK], v[HK_QBLOCK];
    for (size_t b = block_begin; b < block_end; b++) {
        size_t lo = b * HK_QBLOCK, hi = lo + HK_QBLOCK < n ? lo + HK_QBLOCK : n, len = hi - lo;
        float mmax = 0, vmax = 0;
        for (size_t i = 0; i < len; i++) {
            float gi = g[lo + i] * a->grad_scale;
            float mi = a->beta1 * map_m[mq[lo + i]] * m_absmax[b] + (1 - a->beta1) * gi;
            float vi = a->beta2 * map_v[vq[lo + i]] * v_absmax[b] + (1 - a->beta2) * gi * gi;
            m[i] = mi;
            v[i] = vi;
            mmax = fmaxf(mmax, fabsf(mi));
            vmax = fmaxf(vmax, vi);
            float mhat = mi / a->bc1, vhat = vi / a->bc2;
            p[lo + i] -= a->lr * (mhat / (sqrtf(vhat) + a->eps) + a->weight_decay * p[lo + i]);
        }
        m_absmax[b] = mmax;
        v_absmax[b] = vmax;
        float dm = mmax > 0 ? mmax : 1.0f, dv = vmax > 0 ? vmax : 1.0f;
        for (size_t i = 0; i < len; i++) {
            mq[lo + i] = nearest_fast(map_m, table_m, m[i] / dm);
            vq[lo + i] = nearest_fast(map_v, table_v, v[i] / dv);
        }
    }
}
