/* test_api.c: every exported function, called correctly and with NULLs, garbage values and
 * wrong sizes. Each misuse must come back as a status with a message, never a crash; run
 * under AddressSanitizer and UBSan by `make test`. */
#include <hmst.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"

static int log_calls;
static int log_last_level = -1;
static char log_last_message[256];

static void capture_log(int level, const char *message, void *user_data) {
    (void)user_data;
    log_calls++;
    log_last_level = level;
    snprintf(log_last_message, sizeof log_last_message, "%s", message);
}

static void test_status_and_errors(void) {
    const int known[] = {HMST_STATUS_OK, HMST_STATUS_INVALID_ARGUMENT, HMST_STATUS_BUFFER_TOO_SMALL,
                         HMST_STATUS_IO, HMST_STATUS_BAD_FORMAT, HMST_STATUS_OUT_OF_MEMORY,
                         HMST_STATUS_UNSUPPORTED, HMST_STATUS_CANCELLED, HMST_STATUS_NOT_FOUND,
                         HMST_STATUS_INTERNAL};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        const char *s = hmst_status_string(known[i]);
        CHECK(s != NULL && strcmp(s, "UNKNOWN") != 0 && s[0] != '\0');
    }
    CHECK(strcmp(hmst_status_string(HMST_STATUS_OK), "OK") == 0);
    CHECK(strcmp(hmst_status_string(HMST_STATUS_BAD_FORMAT), "BAD_FORMAT") == 0);
    const int garbage[] = {1, -9, -98, -100, 42, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++)
        CHECK(strcmp(hmst_status_string(garbage[i]), "UNKNOWN") == 0);

    hmst_clear_error();
    CHECK(hmst_last_error() != NULL && hmst_last_error()[0] == '\0');
    CHECK_STATUS(hmst_set_n_threads(-1), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "-1") != NULL);
    hmst_clear_error();
    CHECK(hmst_last_error()[0] == '\0');
    /* a successful call clears the previous failure */
    CHECK_STATUS(hmst_set_n_threads(-1), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_set_n_threads(1), HMST_STATUS_OK);
    CHECK(hmst_last_error()[0] == '\0');
}

static void test_versions(void) {
    CHECK(hmst_abi_version() == HMST_ABI_VERSION);
    CHECK(strcmp(hmst_version(), HMST_VERSION_STRING) == 0);
    CHECK(hmst_sizeof("hmst_system_info") == sizeof(struct hmst_system_info));
    CHECK(hmst_sizeof(NULL) == 0);
    CHECK(hmst_sizeof("") == 0);
    CHECK(hmst_sizeof("struct hmst_system_info") == 0);
    CHECK(hmst_sizeof("hmst_no_such_struct") == 0);
    char junk[64];
    for (size_t i = 0; i < sizeof junk - 1; i++) junk[i] = (char)(0x80 + (i * 37) % 127);
    junk[sizeof junk - 1] = '\0';
    CHECK(hmst_sizeof(junk) == 0); /* invalid UTF-8 */
}

static void test_logging(void) {
    CHECK_STATUS(hmst_log_set_level(-1), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_log_set_level(5), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_log_set_level(INT_MAX), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_log_set_level(INT_MIN), HMST_STATUS_INVALID_ARGUMENT);

    hmst_log_set(capture_log, NULL);
    CHECK_STATUS(hmst_log_set_level(HMST_LOG_INFO), HMST_STATUS_OK);
    log_calls = 0;
    CHECK_STATUS(hmst_set_n_threads(2), HMST_STATUS_OK); /* logs at INFO */
    CHECK(log_calls >= 1);
    CHECK(log_last_level == HMST_LOG_INFO);
    CHECK(strstr(log_last_message, "thread") != NULL);

    CHECK_STATUS(hmst_log_set_level(HMST_LOG_NONE), HMST_STATUS_OK);
    log_calls = 0;
    CHECK_STATUS(hmst_set_n_threads(1), HMST_STATUS_OK);
    CHECK(log_calls == 0);

    hmst_log_set(NULL, NULL); /* back to stderr */
    CHECK_STATUS(hmst_log_set_level(HMST_LOG_WARN), HMST_STATUS_OK);
}

static void test_system_info(void) {
    CHECK_STATUS(hmst_system_info(NULL), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "out") != NULL);

    struct hmst_system_info info;
    memset(&info, 0, sizeof info);
    CHECK_STATUS(hmst_system_info(&info), HMST_STATUS_INVALID_ARGUMENT); /* struct_size 0 */
    CHECK(strstr(hmst_last_error(), "struct_size") != NULL);
    info.struct_size = 19;
    CHECK_STATUS(hmst_system_info(&info), HMST_STATUS_INVALID_ARGUMENT);

    /* An old host that knows only struct_size + version: nothing past that may be written. */
    memset(&info, 0xAB, sizeof info);
    info.struct_size = 20;
    CHECK_STATUS(hmst_system_info(&info), HMST_STATUS_OK);
    CHECK(strcmp(info.version, HMST_VERSION_STRING) == 0);
    CHECK(info.abi_version == (int32_t)0xABABABAB);
    CHECK(info.struct_size == 20);

    /* A newer host with a bigger struct: the tail stays as it was. */
    unsigned char bigger[sizeof(struct hmst_system_info) + 64];
    memset(bigger, 0xCD, sizeof bigger);
    struct hmst_system_info *p = (struct hmst_system_info *)(void *)bigger;
    p->struct_size = (uint32_t)sizeof bigger;
    CHECK_STATUS(hmst_system_info(p), HMST_STATUS_OK);
    CHECK(bigger[sizeof bigger - 1] == 0xCD && bigger[sizeof(struct hmst_system_info)] == 0xCD);

    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    CHECK_STATUS(hmst_system_info(&info), HMST_STATUS_OK);
    CHECK(info.abi_version == HMST_ABI_VERSION);
    CHECK(info.n_cpus >= 1);
    CHECK(info.n_threads >= 1);
    CHECK(info.blas_threads >= 1);
    CHECK(info.blas_core[0] != '\0');
    CHECK(strstr(info.blas_config, "OpenBLAS") != NULL);
    CHECK(info.numa_nodes >= 1);
    CHECK(info.numa_available == 0 || info.numa_available == 1);
    CHECK(info.numa_policy_permitted == 0 || info.numa_policy_permitted == 1);
    CHECK(strchr(info.faiss_version, '.') != NULL);
    /* The OpenBLAS kernels in use must match this CPU (libhmst switches them at load when
     * OpenBLAS misdetects the CPU); this fails on a machine where that did not work. */
    CHECK(info.blas_core_at_load[0] != '\0' && info.blas_core_best[0] != '\0');
    CHECK(info.blas_below_capability == 0);
    if (!(info.blas_below_capability == 0)) fprintf(stderr, "  blas_core %s below %s\n", info.blas_core, info.blas_core_best);
    CHECK(info.mixed_precision_bf16 == 0 || info.mixed_precision_bf16 == 1);
    if (info.simd_flags & HMST_SIMD_FMA) CHECK(info.fma_gflops > 1.0);
    if (info.simd_flags & HMST_SIMD_AVX512BF16) CHECK(info.bf16_gflops > 1.0);
    else CHECK(info.bf16_gflops == 0.0 && info.mixed_precision_bf16 == 0 && info.bf16_weight_compute_bf16 == 0 &&
               info.bf16_decode_compute_bf16 == 0);
    CHECK(info.bf16_weight_compute_bf16 == 0 || info.bf16_weight_compute_bf16 == 1);
    /* decode's GEMVs take bf16 dot products wherever the CPU has them (no override in this test's environment) */
    if (getenv("HMST_BF16_WEIGHT_COMPUTE") == NULL)
        CHECK(info.bf16_decode_compute_bf16 == ((info.simd_flags & HMST_SIMD_AVX512BF16) ? 1 : 0));
    /* hmst's f32 GEMM needs AVX-512 or AVX2 with FMA and F16C; where it runs for f32 weights it
     * runs for 16-bit ones too */
    CHECK(info.f32_gemm_hmst == 0 || info.f32_gemm_hmst == 1);
    CHECK(info.f32_gemm_hmst_16bit == 0 || info.f32_gemm_hmst_16bit == 1);
    const uint64_t gemm_simd = HMST_SIMD_AVX2 | HMST_SIMD_FMA | HMST_SIMD_F16C;
    if ((info.simd_flags & gemm_simd) != gemm_simd) CHECK(info.f32_gemm_hmst == 0 && info.f32_gemm_hmst_16bit == 0);
    CHECK(info.f32_gemm_hmst <= info.f32_gemm_hmst_16bit);
#if defined(__x86_64__)
    CHECK((info.simd_flags & HMST_SIMD_SSE42) != 0);
    CHECK(((info.simd_flags & HMST_SIMD_AVX2) != 0) == (strstr(info.simd_names, "avx2") != NULL));
    /* hmst's own kernels use what the CPU has: never the portable loops on an AVX2 or AVX-512 CPU */
    if (info.simd_flags & HMST_SIMD_AVX512BF16) CHECK(strcmp(info.kernels, "avx512-bf16") == 0);
    else if (info.simd_flags & HMST_SIMD_AVX512BW) CHECK(strcmp(info.kernels, "avx512") == 0);
    else if ((info.simd_flags & HMST_SIMD_AVX2) && (info.simd_flags & HMST_SIMD_FMA)) CHECK(strcmp(info.kernels, "avx2") == 0);
    if (info.simd_flags & HMST_SIMD_AVX512VNNI) CHECK(strcmp(info.int8_kernels, "avx512-vnni") == 0);
    else if (info.simd_flags & HMST_SIMD_AVX2) CHECK(strcmp(info.int8_kernels, "avx2") == 0);
    fprintf(stderr, "  kernels %s, int8 %s\n", info.kernels, info.int8_kernels);
#endif
}

static void test_system_info_json(void) {
    size_t n = 12345;
    CHECK_STATUS(hmst_system_info_json(NULL, 0, NULL), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_system_info_json(NULL, 16, &n), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_system_info_json(NULL, 0, &n), HMST_STATUS_BUFFER_TOO_SMALL);
    CHECK(n > 10 && n < 100000);
    char *buf = malloc(n + 1);
    CHECK(buf != NULL);
    if (buf == NULL) return;
    /* exactly n bytes: no room for the NUL, so nothing is written */
    memset(buf, 'x', n + 1);
    size_t n2 = 0;
    CHECK_STATUS(hmst_system_info_json(buf, n, &n2), HMST_STATUS_BUFFER_TOO_SMALL);
    CHECK(n2 == n);
    CHECK(buf[0] == 'x' && buf[n - 1] == 'x');
    CHECK(strstr(hmst_last_error(), "too small") != NULL);
    CHECK_STATUS(hmst_system_info_json(buf, n + 1, &n2), HMST_STATUS_OK);
    CHECK(n2 == n && strlen(buf) == n);
    CHECK_STATUS(hmst_system_info_json(buf, SIZE_MAX, &n2), HMST_STATUS_OK); /* a cap past 2^63 is room enough */
    CHECK(n2 == n && strlen(buf) == n);
    CHECK(buf[0] == '{' && buf[n - 1] == '}');
    CHECK(strstr(buf, "\"faiss_version\"") != NULL);
    CHECK(strstr(buf, "\"numa_policy_permitted\"") != NULL);
    free(buf);
    char small[4] = "abc";
    CHECK_STATUS(hmst_system_info_json(small, 1, &n2), HMST_STATUS_BUFFER_TOO_SMALL);
    CHECK(small[0] == 'a');
}

static void test_threads(void) {
    const int32_t bad[] = {-1, -1024, 1025, 100000, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_STATUS(hmst_set_n_threads(bad[i]), HMST_STATUS_INVALID_ARGUMENT);
        CHECK(hmst_get_n_threads() >= 1);
    }
    CHECK_STATUS(hmst_set_n_threads(1), HMST_STATUS_OK);
    CHECK(hmst_get_n_threads() == 1);
    struct hmst_system_info info = {.struct_size = sizeof info};
    CHECK_STATUS(hmst_system_info(&info), HMST_STATUS_OK);
    CHECK(info.n_threads == 1 && info.blas_threads == 1);
    CHECK_STATUS(hmst_set_n_threads(3), HMST_STATUS_OK);
    CHECK(hmst_get_n_threads() == 3);
    CHECK_STATUS(hmst_system_info(&info), HMST_STATUS_OK);
    CHECK(info.n_threads == 3 && info.blas_threads == 3);
    CHECK_STATUS(hmst_set_n_threads(0), HMST_STATUS_OK);
    CHECK(hmst_get_n_threads() >= 1);
}

/* Pseudo-random garbage through every integer/pointer parameter. */
static void test_garbage(void) {
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 2000; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        int32_t v = (int32_t)(uint32_t)s;
        int rc = hmst_set_n_threads(v);
        CHECK(rc == HMST_STATUS_OK || rc == HMST_STATUS_INVALID_ARGUMENT);
        CHECK(rc != HMST_STATUS_OK || (v >= 0 && v <= 1024));
        if (rc == HMST_STATUS_OK) hmst_set_n_threads(1);
        rc = hmst_log_set_level(v);
        CHECK(rc == HMST_STATUS_OK || rc == HMST_STATUS_INVALID_ARGUMENT);
        CHECK(hmst_status_string(v) != NULL);
        size_t n = 0;
        char buf[8];
        rc = hmst_system_info_json(buf, (size_t)(s % 8), &n);
        CHECK(rc == HMST_STATUS_BUFFER_TOO_SMALL);
    }
    hmst_log_set_level(HMST_LOG_WARN);
}

int main(void) {
    test_status_and_errors();
    test_versions();
    test_logging();
    test_system_info();
    test_system_info_json();
    test_threads();
    test_garbage();
    return check_summary("test_api");
}
