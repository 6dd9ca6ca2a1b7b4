/*
 * kernels.c: bf16/f16 conversions and GEMV kernels with run-time dispatch (the AVX2 and AVX-512
 * variants are in kernels_avx2.c and kernels_avx512.c).
 * GEMV is memory-bound: each variant streams a weight row once and keeps x in cache, with four
 * independent accumulators per row to hide FMA latency.
 */
#include "hmst_kernels.h"

#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#define HK_X86 1
#endif

static atomic_int forced_max = -1;
static atomic_int cpu_level = -1;

static int detect(void) {
#if HK_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512dq")) {
        if (__builtin_cpu_supports("avx512bf16")) return HK_LEVEL_BF16;
        return HK_LEVEL_AVX512;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return HK_LEVEL_AVX2;
#endif
    return HK_LEVEL_PORTABLE;
}

int hk_level(void) {
    int l = atomic_load(&cpu_level);
    if (l < 0) {
        l = detect();
        atomic_store(&cpu_level, l);
    }
    int f = atomic_load(&forced_max);
    return (f >= 0 && f < l) ? f : l;
}

void hk_set_max_level(int level) { atomic_store(&forced_max, level); }

/* ---- AVX-512 GEMV rows per pass -------------------------------------------------------------
 * Measured in one process, the two shapes alternating (hmst-bench gemv and decode-ab --gemv-rows
 * 1,4; the benchmarks/results/...-zen5.jsonl files): on AMD Zen 5 (family 26) one sequential
 * stream per thread decoded 11-26% faster with bf16 weights, as one row did for the AVX2
 * kernels on Zen 3, while with f32 weights four rows were as fast or faster (up to 1.6x on a
 * 1536 x 4096 matrix).
 * On AMD Zen 4 (family 25 with AVX-512, session 24; benchmarks/results/decode-ab-zen4.jsonl) one
 * row was faster for f32 too: decode 1.41-1.46x on dense512 and moe512 (2 threads, in one process).
 * So AMD CPUs read bf16 rows one at a time, f32 rows one at a time on family 25 and four at a
 * time on later families. Intel CPUs keep four for both: the one-row shape has not been compared
 * there yet. */
static atomic_int gemv_rows_forced = 0;
static atomic_int gemv_rows_amd = -1;  /* 0: not AMD, 1: AMD, 2: AMD family 25 */

static int gemv_rows_default(int kind) {
    int amd = atomic_load(&gemv_rows_amd);
    if (amd < 0) {
        amd = 0;
#if HK_X86
        __builtin_cpu_init();
        if (__builtin_cpu_is("amd")) {
            unsigned a, b, c, d;
            __cpuid(1, a, b, c, d);
            unsigned family = (a >> 8) & 0xf;
            if (family == 0xf) family += (a >> 20) & 0xff;
            amd = family == 25 ? 2 : 1;
        }
#endif
        atomic_store(&gemv_rows_amd, amd);
    }
    if (kind == 2) return 1;   /* f16: see hk_gemv_rows in hmst_kernels.h */
    return amd == 2 || (amd && kind == 1) ? 1 : 4;
}

int hk_gemv_rows(int kind) {
    int f = atomic_load(&gemv_rows_forced);
    return f == 1 || f == 4 ? f : gemv_rows_default(kind);
}

void hk_set_gemv_rows(int rows) { atomic_store(&gemv_rows_forced, rows == 1 || rows == 4 ? rows : 0); }

/* ---- conversions --------------------------------------------------------------------------- */

static inline float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* IEEE half -> f32, exactly, in integer arithmetic (the _Float16 cast is a libgcc call on
 * baseline x86-64, about 80x slower): normals move their exponent bias from 15 to 127,
 * subnormals are their 10-bit significand times 2^-24, infinities and NaN keep their payload
 * (quieted, as F16C's vcvtph2ps does). */
static inline float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, em = h & 0x7fffu, u;
    if (em >= 0x7c00u) {
        u = sign | 0x7f800000u | (em & 0x3ffu) << 13 | (em & 0x3ffu ? 0x400000u : 0);
    } else if (em >= 0x0400u) {
        u = sign | ((em << 13) + (112u << 23));
    } else {
        float f = (float)em * 0x1p-24f;
        memcpy(&u, &f, 4);
        u |= sign;
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

void hk_bf16_to_f32(float *out, const uint16_t *in, size_t n) {
    size_t i = 0;
#if HK_X86
    /* widen 16 (8) bf16 at a time: zero-extend to 32 bits and shift into the high half */
    if (hk_level() >= HK_LEVEL_AVX512) {
        extern void hk_bf16_to_f32_avx512(float *, const uint16_t *, size_t);
        hk_bf16_to_f32_avx512(out, in, n & ~(size_t)15);
        i = n & ~(size_t)15;
    } else if (hk_level() >= HK_LEVEL_AVX2) {
        extern void hk_bf16_to_f32_avx2(float *, const uint16_t *, size_t);
        hk_bf16_to_f32_avx2(out, in, n & ~(size_t)7);
        i = n & ~(size_t)7;
    }
#endif
    for (; i < n; i++) out[i] = bf16_to_f32(in[i]);
}

void hk_f32_to_bf16(uint16_t *out, const float *in, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = f32_to_bf16(in[i]);
}

/* IEEE half conversions: F16C instructions 8 at a time where the CPU has them (kernels_avx2.c),
 * else f16_to_f32 above to widen and the compiler's _Float16 to narrow, which rounds to
 * nearest-even and handles subnormals, infinities and NaN the same way. */
#if HK_X86
extern void hk_f16_to_f32_f16c(float *out, const uint16_t *in, size_t n);
extern void hk_f32_to_f16_f16c(uint16_t *out, const float *in, size_t n);

static int has_f16c(void) {
    __builtin_cpu_init();
    return hk_level() >= HK_LEVEL_AVX2 && __builtin_cpu_supports("f16c");
}
#endif

void hk_f16_to_f32(float *out, const uint16_t *in, size_t n) {
    size_t i = 0;
#if HK_X86
    if (has_f16c()) {
        hk_f16_to_f32_f16c(out, in, n);
        i = n & ~(size_t)7;
    }
#endif
    for (; i < n; i++) out[i] = f16_to_f32(in[i]);
}

void hk_f32_to_f16(uint16_t *out, const float *in, size_t n) {
    size_t i = 0;
#if HK_X86
    if (has_f16c()) {
        hk_f32_to_f16_f16c(out, in, n);
        i = n & ~(size_t)7;
    }
#endif
    for (; i < n; i++) {
        _Float16 h = (_Float16)in[i];
        memcpy(&out[i], &h, 2);
    }
}

/* ---- GEMV ---------------------------------------------------------------------------------- */

/* The portable GEMV over weights of type T, LOAD(p) giving *p as f32: one row at a time, four
 * accumulators, (a0 + a1) + (a2 + a3). Expects y, w, x, cols, r0, r1 in scope. */
#define HK_PORTABLE_GEMV(T, LOAD) do {                                                             \
        for (size_t r = r0; r < r1; r++) {                                                         \
            const T *row = w + r * cols;                                                           \
            float a0 = 0, a1 = 0, a2 = 0, a3 = 0;                                                  \
            size_t c = 0;                                                                          \
            for (; c + 4 <= cols; c += 4) {                                                        \
                a0 += LOAD(row + c) * x[c];                                                        \
                a1 += LOAD(row + c + 1) * x[c + 1];                                                \
                a2 += LOAD(row + c + 2) * x[c + 2];                                                \
                a3 += LOAD(row + c + 3) * x[c + 3];                                                \
            }                                                                                      \
            for (; c < cols; c++) a0 += LOAD(row + c) * x[c];                                      \
            y[r] = (a0 + a1) + (a2 + a3);                                                          \
        }                                                                                          \
    } while (0)

static inline float load_f32(const float *p) { return *p; }
static inline float load_bf16(const uint16_t *p) { return bf16_to_f32(*p); }
static inline float load_f16(const uint16_t *p) { return f16_to_f32(*p); }

static void gemv_bf16_portable(float *y, const uint16_t *w, const float *x, size_t cols, size_t r0, size_t r1) {
    HK_PORTABLE_GEMV(uint16_t, load_bf16);
}

static void gemv_f32_portable(float *y, const float *w, const float *x, size_t cols, size_t r0, size_t r1) {
    HK_PORTABLE_GEMV(float, load_f32);
}

static void gemv_f16_portable(float *y, const uint16_t *w, const float *x, size_t cols, size_t r0, size_t r1) {
    HK_PORTABLE_GEMV(uint16_t, load_f16);
}

#if HK_X86
extern void hk_gemv_bf16_avx512(float *y, const uint16_t *w, const float *x, size_t cols, size_t r0, size_t r1);
extern void hk_gemv_f32_avx512(float *y, const float *w, const float *x, size_t cols, size_t r0, size_t r1);
extern void hk_gemv_bf16_avx2(float *y, const uint16_t *w, const float *x, size_t cols, size_t r0, size_t r1);
extern void hk_gemv_f32_avx2(float *y, const float *w, const float *x, size_t cols, size_t r0, size_t r1);
extern void hk_gemv_f16_avx512(float *y, const uint16_t *w, const float *x, size_t cols, size_t r0, size_t r1);
extern void hk_gemv_f16_avx2(float *y, const uint16_t *w, const float *x, size_t cols, size_t r0, size_t r1);
#endif

void hk_gemv_bf16(float *y, const uint16_t *w, const float *x, size_t cols, size_t r0, size_t r1) {
#if HK_X86
    int l = hk_level();
    if (l >= HK_LEVEL_AVX512) { hk_gemv_bf16_avx512(y, w, x, cols, r0, r1); return; }
    if (l >= HK_LEVEL_AVX2) { hk_gemv_bf16_avx2(y, w, x, cols, r0, r1); return; }
#endif
    gemv_bf16_portable(y, w, x, cols, r0, r1);
}

void hk_gemv_f32(float *y, const float *w, const float *x, size_t cols, size_t r0, size_t r1) {
#if HK_X86
    int l = hk_level();
    if (l >= HK_LEVEL_AVX512) { hk_gemv_f32_avx512(y, w, x, cols, r0, r1); return; }
    if (l >= HK_LEVEL_AVX2) { hk_gemv_f32_avx2(y, w, x, cols, r0, r1); return; }
#endif
    gemv_f32_portable(y, w, x, cols, r0, r1);
}

void hk_gemv_f16(float *y, const uint16_t *w, const float *x, size_t cols, size_t r0, size_t r1) {
#if HK_X86
    /* every AVX-512 CPU has F16C; AVX2 ones are checked */
    if (hk_level() >= HK_LEVEL_AVX512) { hk_gemv_f16_avx512(y, w, x, cols, r0, r1); return; }
    if (has_f16c()) { hk_gemv_f16_avx2(y, w, x, cols, r0, r1); return; }
#endif
    gemv_f16_portable(y, w, x, cols, r0, r1);
}

/* ---- decode GEMV tasks --------------------------------------------------------------------- */

void hk_gemv_task_run(void *tasks, int64_t i) {
    const hk_gemv_task *t = (const hk_gemv_task *)tasks + i;
    switch (t->kind) {
    case HK_GEMV_F32: hk_gemv_f32(t->y, (const float *)t->w, t->x, t->cols, t->r0, t->r1); break;
    case HK_GEMV_BF16: hk_gemv_bf16(t->y, (const uint16_t *)t->w, t->x, t->cols, t->r0, t->r1); break;
    case HK_GEMV_F16: hk_gemv_f16(t->y, (const uint16_t *)t->w, t->x, t->cols, t->r0, t->r1); break;
    case HK_GEMV_BF16_DOT: hk_gemv_bf16_dot(t->y, (const uint16_t *)t->w, t->x, t->cols, t->r0, t->r1); break;
    case HK_GEMV_Q8: hk_gemv_q8(t->y, (const int8_t *)t->w, t->scales, t->act, t->cols, t->r0, t->r1); break;
    case HK_GEMV_Q8_ROWS4:
        hk_gemv_q8_rows4(t->y, (const int8_t *)t->w, t->scales, t->act, t->rows, t->cols, t->r0, t->r1);
        break;
    default: break;
    }
}
