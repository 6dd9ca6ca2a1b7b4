/*
 * hmst.h: the C interface of libhmst, the Hierarchical Memory-State Transformer runtime.
 *
 * This header is the whole public contract. Everything a host needs to call the library is
 * documented here; if you had to read the Swift sources to call a function, that is a bug.
 *
 * Conventions (they hold for every function below unless its comment says otherwise):
 *
 *  - Status codes. Every fallible call returns an `int` holding a value of enum hmst_status:
 *    HMST_STATUS_OK (0) on success, a negative value on failure. The reason for the last failure
 *    on the calling thread is in hmst_last_error(). Results go to `out_*` parameters, which are
 *    written only on success.
 *  - Never fatal. No argument, file or data can make the library abort the host process: NULL
 *    pointers, negative or oversized counts, wrong lengths and malformed files come back as a
 *    status. (Genuine memory corruption by the host is outside this promise.)
 *  - Handles are opaque pointers created by hmst_<object>_create/_load and released by
 *    hmst_<object>_free. Passing NULL to any _free is a no-op.
 *  - Versioned structs. Every params or info struct starts with `uint32_t struct_size`.
 *    Params structs come from hmst_<object>_default_params(), which fills struct_size; info
 *    structs are filled by the library up to the struct_size the host set. New fields are only
 *    ever appended, so a host built against an older header keeps working.
 *  - Bulk data goes through caller-owned buffers: a pointer, a capacity in elements and a
 *    `size_t *n_out` that receives the needed count. If the capacity is too small the call
 *    returns HMST_STATUS_BUFFER_TOO_SMALL, writes the needed count to *n_out and nothing else,
 *    so the host can allocate and retry. The library never returns memory the host must free;
 *    returned strings are static or owned by a handle, as each comment says.
 *  - Thread-safety is stated per function. The baseline: global functions are thread-safe; a
 *    model is immutable after load and can be shared; a context, memory or trainer handle is
 *    used by one thread at a time.
 *  - Logging. The library never writes to stdout. Diagnostics go to the callback installed
 *    with hmst_log_set(); without one, warnings and errors go to stderr.
 *  - Symbols. libhmst exports only the `hmst_` names declared in this header.
 */
#ifndef HMST_H
#define HMST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define HMST_API __attribute__((visibility("default")))
#else
#define HMST_API
#endif

/* The version of this header. hmst_version() reports the library's. */
#define HMST_VERSION_MAJOR 0
#define HMST_VERSION_MINOR 1
#define HMST_VERSION_PATCH 0
#define HMST_VERSION_STRING "0.1.0"

/* Bumped whenever a function signature, enum value or struct layout changes incompatibly
 * (appending fields to a versioned struct is compatible and does not bump it). A host should
 * compare hmst_abi_version() with HMST_ABI_VERSION at start-up. */
#define HMST_ABI_VERSION 1

/* ---------------------------------------------------------------------------------------------
 * Status codes and errors
 * ------------------------------------------------------------------------------------------- */

enum hmst_status {
    HMST_STATUS_OK = 0,
    HMST_STATUS_INVALID_ARGUMENT = -1, /* NULL where not allowed, bad count, size or value */
    HMST_STATUS_BUFFER_TOO_SMALL = -2, /* *n_out holds the needed count; nothing else written */
    HMST_STATUS_IO = -3,               /* open, read, write, rename, mmap or fsync failed */
    HMST_STATUS_BAD_FORMAT = -4,       /* a file or data is malformed; the message says where */
    HMST_STATUS_OUT_OF_MEMORY = -5,    /* an allocation failed; nothing was changed */
    HMST_STATUS_UNSUPPORTED = -6,      /* valid request this build or machine cannot do */
    HMST_STATUS_CANCELLED = -7,        /* a host callback asked to stop */
    HMST_STATUS_NOT_FOUND = -8,        /* a named file, tensor, id or key does not exist */
    HMST_STATUS_INTERNAL = -99         /* a bug in hmst: please report the message */
};

/* Static English name of a status ("OK", "INVALID_ARGUMENT", ...), "UNKNOWN" for other values.
 * Thread-safe. Never NULL. */
HMST_API const char *hmst_status_string(int status);

/* The message of the last failure on the calling thread, or "" if the thread has none. The
 * string is owned by the library and stays valid until the calling thread's next hmst_ call.
 * Thread-safe (each thread has its own). Never NULL. */
HMST_API const char *hmst_last_error(void);

/* Clears the calling thread's last error. Thread-safe. */
HMST_API void hmst_clear_error(void);

/* ---------------------------------------------------------------------------------------------
 * Versions
 * ------------------------------------------------------------------------------------------- */

/* "MAJOR.MINOR.PATCH" of the library, static storage. Thread-safe. Never NULL. */
HMST_API const char *hmst_version(void);

/* HMST_ABI_VERSION the library was built with. Thread-safe. */
HMST_API int hmst_abi_version(void);

/* sizeof() of a public struct as the library was compiled, by its name without `struct`
 * ("hmst_system_info", ...), so bindings can check their layouts at load time. Returns 0 for
 * NULL or an unknown name. Thread-safe. */
HMST_API size_t hmst_sizeof(const char *struct_name);

/* ---------------------------------------------------------------------------------------------
 * Logging
 * ------------------------------------------------------------------------------------------- */

enum hmst_log_level {
    HMST_LOG_DEBUG = 0,
    HMST_LOG_INFO = 1,
    HMST_LOG_WARN = 2,
    HMST_LOG_ERROR = 3,
    HMST_LOG_NONE = 4 /* as a threshold: log nothing */
};

/* Receives each message at or above the threshold. `message` is valid only during the call and
 * has no trailing newline. The callback may be called from any thread, including library worker
 * threads, and concurrently: it must be thread-safe and must not call back into hmst. */
typedef void (*hmst_log_callback)(int level, const char *message, void *user_data);

/* Installs `callback` (NULL restores the default: warnings and errors to stderr). The previous
 * callback may still be running on another thread when this returns. Thread-safe. */
HMST_API void hmst_log_set(hmst_log_callback callback, void *user_data);

/* Sets the threshold (enum hmst_log_level; default HMST_LOG_WARN). Returns
 * HMST_STATUS_INVALID_ARGUMENT for a value outside HMST_LOG_DEBUG..HMST_LOG_NONE. Thread-safe. */
HMST_API int hmst_log_set_level(int level);

/* ---------------------------------------------------------------------------------------------
 * System information and threads
 * ------------------------------------------------------------------------------------------- */

/* Bits of hmst_system_info.simd_flags: what the CPU running the library supports. */
enum hmst_simd_flag {
    HMST_SIMD_SSE42 = 1 << 0,
    HMST_SIMD_AVX = 1 << 1,
    HMST_SIMD_AVX2 = 1 << 2,
    HMST_SIMD_FMA = 1 << 3,
    HMST_SIMD_F16C = 1 << 4,
    HMST_SIMD_AVX512F = 1 << 5,
    HMST_SIMD_AVX512BW = 1 << 6,
    HMST_SIMD_AVX512VL = 1 << 7,
    HMST_SIMD_AVX512VNNI = 1 << 8,
    HMST_SIMD_AVX512BF16 = 1 << 9
};

/* Filled by hmst_system_info(). Strings are NUL-terminated (truncated if longer). */
struct hmst_system_info {
    uint32_t struct_size;           /* set by the host: sizeof(struct hmst_system_info) */
    char version[16];               /* hmst_version() */
    int32_t abi_version;            /* hmst_abi_version() */
    int32_t n_cpus;                 /* CPUs this process may run on (affinity mask) */
    int32_t n_threads;              /* the thread count set by hmst_set_n_threads() */
    int32_t blas_threads;           /* OpenBLAS's current thread count */
    char blas_core[32];             /* OpenBLAS kernel family, e.g. "SkylakeX" */
    char blas_config[128];          /* openblas_get_config() */
    uint64_t simd_flags;            /* enum hmst_simd_flag bits */
    char simd_names[128];           /* the same, as space-separated names */
    int32_t numa_available;         /* 1 if the kernel and libnuma support NUMA, else 0 */
    int32_t numa_nodes;             /* configured NUMA nodes (1 if NUMA is unavailable) */
    int32_t numa_policy_permitted;  /* 1 if mbind/set_mempolicy work here (not EPERM) */
    char faiss_version[16];         /* FAISS the library is linked with, "MAJOR.MINOR.PATCH" */
};

/* Fills *out up to out->struct_size bytes, which the host sets first (at least offsetof the
 * field after struct_size plus its size, i.e. 20 bytes). Thread-safe. */
HMST_API int hmst_system_info(struct hmst_system_info *out);

/* The same information (plus details that do not fit the struct) as a JSON object, written as
 * a NUL-terminated string to buf. cap counts bytes including the NUL; *n_out receives the
 * length without the NUL. buf may be NULL when cap is 0 (size query). Thread-safe. */
HMST_API int hmst_system_info_json(char *buf, size_t cap, size_t *n_out);

/* Sets the number of threads every pool in the library uses: OpenBLAS, OpenMP (FAISS) and
 * hmst's own workers. n in 1..1024; 0 means "all CPUs this process may run on". The default
 * is that, or the HMST_NUM_THREADS environment variable if set. Contexts created later may
 * override it for their own work. Thread-safe, but calls that are running keep the count they
 * started with. */
HMST_API int hmst_set_n_threads(int32_t n);

/* The current thread count (>= 1). Thread-safe. */
HMST_API int32_t hmst_get_n_threads(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* HMST_H */
