/*
 * chmst.h: C support for the Swift side of libhmst (internal, never installed).
 * Owns what Swift cannot express well: the thread-local last-error buffer, the log sink shared
 * by all threads, and CPU feature detection. Symbols are prefixed chmst_ and stay local to
 * libhmst (the version script exports hmst_* only).
 */
#ifndef CHMST_H
#define CHMST_H

#include <stddef.h>
#include <stdint.h>
#include "hmst.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Thread-local last error. The message is copied (truncated to 4095 bytes). */
void chmst_set_error(const char *message);
const char *chmst_get_error(void);
void chmst_clear_error(void);

/* Log sink: callback + user data + threshold, all thread-safe. */
void chmst_log_set(hmst_log_callback callback, void *user_data);
void chmst_log_set_level(int level);
int chmst_log_get_level(void);
void chmst_log_emit(int level, const char *message);

/* enum hmst_simd_flag bits of the running CPU. */
uint64_t chmst_cpu_features(void);

/* The CPU the calling thread runs on, or -1. */
int chmst_current_cpu(void);

/* Number of CPUs in this process's affinity mask (>= 1). */
int chmst_cpu_count(void);
/* The CPUs the calling thread may run on: writes up to cap ids, returns how many (-1: error). */
int chmst_thread_cpus(int32_t *cpus, int cap);

/* Copies `src` into dst[cap] with NUL termination and truncation (cap >= 1). */
void chmst_copy_string(char *dst, size_t cap, const char *src);

/* Layout facts of public structs, computed by the C compiler (the ABI truth). */
size_t chmst_sizeof_system_info(void);
/* Smallest struct_size hmst_system_info() accepts: through the version field. */
size_t chmst_system_info_min_size(void);

#ifdef __cplusplus
}
#endif

#endif
