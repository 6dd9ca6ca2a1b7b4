/*
 * chmst.c: thread-local last error, the shared log sink and CPU feature detection.
 * Swift owns every exported function; this file only holds state that needs C semantics.
 */
#define _GNU_SOURCE
#include "chmst.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define CHMST_ERROR_CAP 4096

static _Thread_local char tls_error[CHMST_ERROR_CAP];

void chmst_set_error(const char *message) {
    chmst_copy_string(tls_error, sizeof tls_error, message ? message : "");
}

const char *chmst_get_error(void) { return tls_error; }

void chmst_clear_error(void) { tls_error[0] = '\0'; }

void chmst_copy_string(char *dst, size_t cap, const char *src) {
    if (dst == NULL || cap == 0) return;
    if (src == NULL) src = "";
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* ---- log sink ------------------------------------------------------------------------------ */

static pthread_mutex_t log_mutex = PTHREAD_MUTEX_INITIALIZER;
static hmst_log_callback log_callback = NULL;
static void *log_user_data = NULL;
static atomic_int log_level = HMST_LOG_WARN;

void chmst_log_set(hmst_log_callback callback, void *user_data) {
    pthread_mutex_lock(&log_mutex);
    log_callback = callback;
    log_user_data = user_data;
    pthread_mutex_unlock(&log_mutex);
}

void chmst_log_set_level(int level) { atomic_store(&log_level, level); }

int chmst_log_get_level(void) { return atomic_load(&log_level); }

void chmst_log_emit(int level, const char *message) {
    if (level < atomic_load(&log_level) || level >= HMST_LOG_NONE) return;
    /* copy the pair under the lock, call outside it so a slow callback never blocks setters */
    pthread_mutex_lock(&log_mutex);
    hmst_log_callback cb = log_callback;
    void *ud = log_user_data;
    pthread_mutex_unlock(&log_mutex);
    if (message == NULL) message = "";
    if (cb != NULL) {
        cb(level, message, ud);
        return;
    }
    static const char *names[] = {"debug", "info", "warning", "error"};
    fprintf(stderr, "hmst %s: %s\n", names[level < 0 ? 0 : level], message);
}

/* ---- CPU --------------------------------------------------------------------------------- */

uint64_t chmst_cpu_features(void) {
    uint64_t f = 0;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2")) f |= HMST_SIMD_SSE42;
    if (__builtin_cpu_supports("avx")) f |= HMST_SIMD_AVX;
    if (__builtin_cpu_supports("avx2")) f |= HMST_SIMD_AVX2;
    if (__builtin_cpu_supports("fma")) f |= HMST_SIMD_FMA;
    if (__builtin_cpu_supports("f16c")) f |= HMST_SIMD_F16C;
    if (__builtin_cpu_supports("avx512f")) f |= HMST_SIMD_AVX512F;
    if (__builtin_cpu_supports("avx512bw")) f |= HMST_SIMD_AVX512BW;
    if (__builtin_cpu_supports("avx512vl")) f |= HMST_SIMD_AVX512VL;
    if (__builtin_cpu_supports("avx512vnni")) f |= HMST_SIMD_AVX512VNNI;
    if (__builtin_cpu_supports("avx512bf16")) f |= HMST_SIMD_AVX512BF16;
#endif
    return f;
}

int chmst_cpu_count(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    return 1;
}

int chmst_thread_cpus(int32_t *cpus, int cap) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return -1;
    int n = 0;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set)) {
            if (n < cap && cpus) cpus[n] = c;
            n++;
        }
    return n;
}

size_t chmst_sizeof_system_info(void) { return sizeof(struct hmst_system_info); }

size_t chmst_system_info_min_size(void) { return offsetof(struct hmst_system_info, abi_version); }

int chmst_current_cpu(void) { return sched_getcpu(); }
