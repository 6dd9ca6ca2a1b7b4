/*
 * cpu_rates.c: a short measurement of this core's peak arithmetic rates, in GFLOP/s per core:
 * f32 FMA (vfmadd231ps on the widest vectors the CPU has) and bf16 dot products (vdpbf16ps).
 * Each loop keeps 12 independent accumulators so that latency hides behind throughput; the
 * best of several short runs is kept. What the numbers decide (mixed precision's compute type)
 * and where they are reported lives in Swift (System/ComputeRates.swift); benchmarks compare
 * GEMM rates with the FMA peak.
 */
#include "hmst_kernels.h"

#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define HK_X86 1
#endif

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

enum { ACC = 12 };

#if HK_X86
__attribute__((target("avx512f"))) static double fma512(long iters) {
    __m512 acc[ACC];
    for (int i = 0; i < ACC; i++) acc[i] = _mm512_set1_ps(0.001f * (float)i);
    const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-6f);
    double t0 = now_s();
    for (long it = 0; it < iters; it++) {
        for (int i = 0; i < ACC; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
        __asm__ volatile("" : "+v"(acc[0]), "+v"(acc[1]), "+v"(acc[2]), "+v"(acc[3]), "+v"(acc[4]),
                         "+v"(acc[5]), "+v"(acc[6]), "+v"(acc[7]), "+v"(acc[8]), "+v"(acc[9]),
                         "+v"(acc[10]), "+v"(acc[11]));
    }
    double dt = now_s() - t0;
    volatile float sink = 0;
    for (int i = 0; i < ACC; i++) sink += _mm512_reduce_add_ps(acc[i]);
    (void)sink;
    return (double)iters * ACC * 32.0 / dt * 1e-9;
}

__attribute__((target("avx2,fma"))) static double fma256(long iters) {
    __m256 acc[ACC];
    for (int i = 0; i < ACC; i++) acc[i] = _mm256_set1_ps(0.001f * (float)i);
    const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(1e-6f);
    double t0 = now_s();
    for (long it = 0; it < iters; it++) {
        for (int i = 0; i < ACC; i++) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
        __asm__ volatile("" : "+x"(acc[0]), "+x"(acc[1]), "+x"(acc[2]), "+x"(acc[3]), "+x"(acc[4]),
                         "+x"(acc[5]), "+x"(acc[6]), "+x"(acc[7]), "+x"(acc[8]), "+x"(acc[9]),
                         "+x"(acc[10]), "+x"(acc[11]));
    }
    double dt = now_s() - t0;
    volatile float sink = 0;
    float tmp[8];
    for (int i = 0; i < ACC; i++) {
        _mm256_storeu_ps(tmp, acc[i]);
        sink += tmp[0];
    }
    (void)sink;
    return (double)iters * ACC * 16.0 / dt * 1e-9;
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static double dpbf16(long iters) {
    __m512 acc[ACC];
    for (int i = 0; i < ACC; i++) acc[i] = _mm512_set1_ps(0.001f * (float)i);
    const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80); /* 1.0 */
    const __m512bh b = (__m512bh)_mm512_set1_epi16(0x3580); /* ~1e-6 */
    double t0 = now_s();
    for (long it = 0; it < iters; it++) {
        for (int i = 0; i < ACC; i++) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
        __asm__ volatile("" : "+v"(acc[0]), "+v"(acc[1]), "+v"(acc[2]), "+v"(acc[3]), "+v"(acc[4]),
                         "+v"(acc[5]), "+v"(acc[6]), "+v"(acc[7]), "+v"(acc[8]), "+v"(acc[9]),
                         "+v"(acc[10]), "+v"(acc[11]));
    }
    double dt = now_s() - t0;
    volatile float sink = 0;
    for (int i = 0; i < ACC; i++) sink += _mm512_reduce_add_ps(acc[i]);
    (void)sink;
    /* 32 bf16 pairs per instruction, a multiply and an add each */
    return (double)iters * ACC * 64.0 / dt * 1e-9;
}
#endif

/* Best of `reps` runs of `iters` iterations. */
static double best_of(double (*f)(long), long iters, int reps) {
    double best = 0;
    for (int r = 0; r < reps; r++) {
        double g = f(iters);
        if (g > best) best = g;
    }
    return best;
}

void hk_measure_rates(double *fma_gflops, double *bf16_gflops) {
    double fma = 0, bf = 0;
#if HK_X86
    __builtin_cpu_init();
    /* ~1.2M instructions a run: well under a millisecond at a few GHz */
    const long iters = 100000;
    if (__builtin_cpu_supports("avx512f")) {
        (void)fma512(iters / 4); /* wake the wide units up before timing */
        fma = best_of(fma512, iters, 5);
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        (void)fma256(iters / 4);
        fma = best_of(fma256, iters, 5);
    }
    if (__builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl")) {
        (void)dpbf16(iters / 4);
        bf = best_of(dpbf16, iters, 5);
    }
#endif
    if (fma_gflops != NULL) *fma_gflops = fma;
    if (bf16_gflops != NULL) *bf16_gflops = bf;
}
