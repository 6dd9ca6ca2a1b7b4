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
 *    status, and memory the library cannot get is HMST_STATUS_OUT_OF_MEMORY. A size_t count or
 *    length of 2^63 or more is refused like any other out-of-range value; a capacity that large
 *    just means room enough. An out-pointer documented as "may be NULL" changes nothing about
 *    what the call does. (Genuine memory corruption by the host is outside this promise.)
 *  - Handles are opaque pointers created by hmst_<object>_create/_load and released by
 *    hmst_<object>_free. Passing NULL to any _free is a no-op.
 *  - Versioned structs. Every params or info struct starts with `uint32_t struct_size`.
 *    Params structs come from hmst_<object>_default_params(), which fills struct_size; info
 *    structs are filled by the library up to the struct_size the host set. New fields are only
 *    ever appended: a struct with an older struct_size is read with today's defaults for the
 *    fields it lacks, and host source written for an older header compiles and works unchanged.
 *    A host *binary* built against an older header must be rebuilt when a params struct it
 *    gets from a _default_params() function has grown (those return today's layout by value,
 *    which is larger than the space the old binary made for it). Grown during 0.1:
 *    hmst_generate_params, hmst_trainer_params, hmst_memory_trainer_params.
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
    /* Appended later: a host built against the shorter struct gets only the fields above. */
    char blas_core_at_load[32];     /* the family OpenBLAS chose when it loaded */
    char blas_core_best[32];        /* the best family this CPU's instruction set allows */
    int32_t blas_below_capability;  /* 1 if blas_core is below that (see HMST_BLAS_CORETYPE) */
    int32_t mixed_precision_bf16;   /* 1 if mixed-precision training computes in bf16 here, 0 = f32 */
    double fma_gflops;              /* measured f32 FMA peak of one core, GFLOP/s (0: no AVX2+FMA) */
    double bf16_gflops;             /* measured bf16 dot-product peak of one core (0: no AVX512-BF16) */
    /* Appended later still. */
    char kernels[32];               /* hmst's own f32/bf16 kernels (GEMV, exp, attention, IVF scan):
                                       "avx512-bf16", "avx512", "avx2" or "portable" */
    char int8_kernels[32];          /* the int8 GEMV: "avx512-vnni", "avx2" or "portable" */
    /* Appended in session 13. */
    int32_t bf16_weight_compute_bf16; /* 1 if bf16 weights are multiplied in bf16 in prefill's GEMMs here
                                         (activations rounded to bf16), 0 = widened to f32 (HMST_BF16_WEIGHT_COMPUTE) */
    /* Appended in session 19. */
    int32_t bf16_decode_compute_bf16; /* the same for decode's GEMVs: 1 wherever the CPU has AVX512-BF16 (a GEMV
                                         is bound by loads, not by the dot products' rate), unless
                                         HMST_BF16_WEIGHT_COMPUTE=f32 */
    /* Appended in session 31. */
    int32_t f32_gemm_hmst;          /* 1 if f32 GEMMs (prompts with f32 weights, f32 training) run on hmst's own
                                       kernel (AVX-512, or AVX2 with FMA and F16C, where a start-up measurement
                                       found it at least OpenBLAS's rate), 0 = OpenBLAS's sgemm
                                       (HMST_F32_GEMM=hmst|openblas) */
    int32_t f32_gemm_hmst_16bit;    /* the same for prompts with f16 weights or bf16 weights widened to f32
                                       (hmst's kernel widens them as it packs them; chosen at 0.9 of
                                       OpenBLAS's rate, which needs them widened into scratch first) */
};

/* Fills *out up to out->struct_size bytes, which the host sets first (at least offsetof the
 * field after struct_size plus its size, i.e. 20 bytes). The first call in a process measures
 * the FMA and bf16 rates and hmst's f32 GEMM against OpenBLAS's (a few milliseconds; the first
 * prompt or training step measures them otherwise). Thread-safe.
 *
 * OpenBLAS kernels: Debian's OpenBLAS picks its kernel family from CPUID when it loads and falls
 * back to SSE3 ("Prescott") kernels on CPUs newer than its tables, several times slower. When
 * libhmst loads it compares that family with the CPU's instruction set and, if it is below,
 * re-initialises OpenBLAS with the best family (SkylakeX/Cooperlake for AVX-512, Haswell or Zen
 * for AVX2, Sandybridge for AVX), for hmst's GEMMs and FAISS's alike (one OpenBLAS per process:
 * the host's own calls into it gain too). OPENBLAS_CORETYPE is still honoured when it is not
 * below the CPU (OPENBLAS_CORETYPE=Prescott therefore reproduces a misdetection and its fix on
 * any machine). HMST_BLAS_CORETYPE=keep leaves OpenBLAS's choice alone (a warning is logged when
 * it is below the CPU); HMST_BLAS_CORETYPE=<family> asks for that family. blas_core_at_load,
 * blas_core and blas_below_capability report what happened; the JSON adds the message. libhmst
 * also shortens how long OpenBLAS's idle workers spin before they sleep (2^20 cycles instead of
 * 2^28; kept as given when OPENBLAS_THREAD_TIMEOUT is set), since the spin took a core from the
 * decode after every prompt; the JSON's blas_thread_timeout_log2_cycles says which applies.
 * Mixed precision: bf16 dot products are used only where they beat f32 FMA by 1.25x (measured);
 * HMST_MIXED_PRECISION_COMPUTE=bf16|f32 overrides the choice. */
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

/* ---------------------------------------------------------------------------------------------
 * Models
 *
 * A model is a checkpoint directory as the Hugging Face ecosystem lays it out: config.json
 * (MixtralConfig), model.safetensors (or shards + model.safetensors.index.json) and optionally
 * tokenizer.json. Weights are memory-mapped read-only: f32 tensors are used in place, bf16 and
 * f16 tensors as bf16 (f16 is converted). A loaded model is immutable and may be shared by any
 * number of contexts on any threads.
 * ------------------------------------------------------------------------------------------- */

typedef struct hmst_model hmst_model;     /* opaque */
typedef struct hmst_context hmst_context; /* opaque: KV cache, workspace, history, trace */

/* Where the pages of the mapped weights live (enum values of hmst_model_params.numa). */
enum hmst_numa_strategy {
    HMST_NUMA_DISABLED = 0,   /* plain mmap, no policy calls (default) */
    HMST_NUMA_DISTRIBUTE = 1, /* pages dealt over all nodes (2 MiB blocks in place, page by
                               * page when copied), threads spread over nodes */
    HMST_NUMA_ISOLATE = 2,    /* pages and threads on the calling thread's node */
    HMST_NUMA_NUMACTL = 3     /* keep the process policy (run under numactl) */
};

/* Load progress in [0, 1]. Return false to cancel: the load then fails with
 * HMST_STATUS_CANCELLED and nothing is leaked. Called on the loading thread. */
typedef bool (*hmst_progress_callback)(float progress, void *user_data);

struct hmst_model_params {
    uint32_t struct_size;           /* set by hmst_model_default_params() */
    int32_t numa;                   /* enum hmst_numa_strategy */
    bool numa_copy;                 /* with DISTRIBUTE/ISOLATE: copy weights into memory bound
                                     * with the policy instead of faulting the map in place */
    bool prefetch;                  /* madvise(MADV_WILLNEED) the weights */
    bool mlock;                     /* lock the weights in RAM; failure is only a warning */
    bool load_tokenizer;            /* read tokenizer.json if present (default true) */
    hmst_progress_callback progress;
    void *progress_user_data;
    /* appended in API 1.x (hosts built before see the defaults) */
    bool check_tensors;             /* scan every weight for NaN/Inf at load: BAD_FORMAT naming the
                                     * tensor and its first bad element (touches every page) */
    int32_t weights;                /* enum hmst_weight_type: how matrices are held (default as stored) */
};

/* Defaults: NUMA disabled, no prefetch, no mlock, tokenizer loaded, no tensor check, weights as
 * stored. Thread-safe. */
HMST_API struct hmst_model_params hmst_model_default_params(void);

/* Loads the checkpoint directory at `path` (or a llama.cpp .gguf file, see "GGUF import" below).
 * params may be NULL for the defaults. Every tensor
 * header is validated before any weight is touched; a malformed checkpoint gives
 * HMST_STATUS_BAD_FORMAT (or NOT_FOUND for a missing file) with the exact problem. NUMA requests
 * that the system refuses degrade to plain mmap with a warning (see hmst_model_info_json).
 * Thread-safe. Release with hmst_model_free after freeing its contexts. */
HMST_API int hmst_model_load(const char *path, const struct hmst_model_params *params, hmst_model **out_model);

/* A model with random weights (normal(0, 0.02), norms 1) in one of the presets "nano", "micro",
 * "tiny", "small", "base", "large", clearly untrained; with no tokenizer unless one is saved
 * beside it later. Thread-safe. */
HMST_API int hmst_model_init_random(const char *preset, uint64_t seed, hmst_model **out_model);

/* Writes the model as a checkpoint directory (config.json, model.safetensors, and
 * tokenizer.json if the model has a tokenizer), each file atomically. dtype: "f32", "bf16",
 * "f16" (IEEE half; a weight beyond ±65504 fails the save with HMST_STATUS_INVALID_ARGUMENT),
 * "int8" (Q8_0 blocks: see "int8 weights" below) or "int8-rows4" (the same blocks, the decode
 * matrices in the row-quad order hmst's int8 GEMV reads, so loading maps them without a copy;
 * other readers must reorder them, see "int8 weights").
 * Thread-safe (the model is read-only). */
HMST_API int hmst_model_save(const hmst_model *model, const char *dir, const char *dtype);

/* NULL is a no-op. Free every context of the model first. Not thread-safe with other use of
 * the same model. */
HMST_API void hmst_model_free(hmst_model *model);

/* Shape and size facts of a loaded model. */
struct hmst_model_info {
    uint32_t struct_size;      /* set by the host: sizeof(struct hmst_model_info) */
    int32_t n_vocab;           /* V */
    int32_t n_embd;            /* C */
    int32_t n_layer;           /* L */
    int32_t n_head;            /* H */
    int32_t n_head_kv;         /* KV */
    int32_t head_dim;          /* Dh */
    int32_t n_ff;              /* F, per expert */
    int32_t n_expert;          /* E */
    int32_t n_expert_used;     /* K */
    int32_t n_ctx_train;       /* max_position_embeddings */
    int64_t n_params;          /* total parameters */
    int64_t n_params_active;   /* parameters one token touches */
    int32_t has_tokenizer;     /* 1 if a tokenizer is attached */
    int32_t eos_token;         /* end-of-text id, or -1 */
    double load_ms;            /* wall time of hmst_model_load */
    int32_t numa_applied;      /* enum hmst_numa_strategy actually in effect */
    int32_t weights_bf16;      /* 1 if the matrices are held as bf16 */
};

/* Fills *out up to out->struct_size bytes (at least 8). Thread-safe. */
HMST_API int hmst_model_info(const hmst_model *model, struct hmst_model_info *out);

/* The config, parameter counts, tensor list and load report (placement, warnings) as JSON,
 * with the buffer protocol of this header. Thread-safe. */
HMST_API int hmst_model_info_json(const hmst_model *model, char *buf, size_t cap, size_t *n_out);

/* ---------------------------------------------------------------------------------------------
 * Tokenization (with the model's tokenizer)
 * ------------------------------------------------------------------------------------------- */

/* Encodes text[0..text_len) (any bytes; invalid UTF-8 is kept losslessly) into token ids,
 * with the buffer protocol (cap in ids). HMST_STATUS_UNSUPPORTED if the model has no tokenizer.
 * Thread-safe. */
HMST_API int hmst_tokenize(const hmst_model *model, const char *text, size_t text_len, int32_t *out, size_t cap,
                           size_t *n_out);

/* Decodes ids into bytes (not NUL-terminated; cap in bytes). An id outside the vocabulary is
 * HMST_STATUS_INVALID_ARGUMENT. Thread-safe. */
HMST_API int hmst_detokenize(const hmst_model *model, const int32_t *tokens, size_t n_tokens, char *out, size_t cap,
                             size_t *n_out);

/* ---------------------------------------------------------------------------------------------
 * Contexts: evaluation and generation
 * ------------------------------------------------------------------------------------------- */

struct hmst_context_params {
    uint32_t struct_size;  /* set by hmst_context_default_params() */
    int32_t n_ctx;         /* context length in tokens; 0 = the model's n_ctx_train */
    int32_t n_batch;       /* most tokens per forward pass (prompts are chunked); default 256 */
    int32_t n_threads;     /* threads for this context; 0 = hmst_get_n_threads() */
    bool trace_routes;     /* record the experts every token used (hmst_context_route_trace) */
    /* appended in API 1.x (hosts built before see the default) */
    int32_t kv_type;       /* enum hmst_kv_type: KV cache storage (default f32) */
};

/* Defaults: n_ctx 0, n_batch 256, n_threads 0, no trace, f32 KV cache. Thread-safe. */
HMST_API struct hmst_context_params hmst_context_default_params(void);

/* Creates a context over `model` (which must outlive it). params may be NULL. Thread-safe. */
HMST_API int hmst_context_new(hmst_model *model, const struct hmst_context_params *params, hmst_context **out_ctx);

/* NULL is a no-op. Not thread-safe with other use of the same context. */
HMST_API void hmst_context_free(hmst_context *ctx);

/* Forgets all tokens (KV cache, history, route trace). One thread per context. */
HMST_API int hmst_context_reset(hmst_context *ctx);

/* Number of tokens in the context (the next token's position). One thread per context. */
HMST_API int hmst_context_n_past(const hmst_context *ctx, int32_t *out_n);

/* The context's tokens (positions 0 ..< n_past: the prompts evaluated and the tokens generated),
 * with the buffer protocol of hmst_tokenize. One thread per context. */
HMST_API int hmst_context_tokens(const hmst_context *ctx, int32_t *out, size_t cap, size_t *n_out);

/* Forgets positions >= n (0 <= n <= n_past): the KV cache, the tokens and the route trace end
 * at n, and the next hmst_context_eval or hmst_generate continues from there (e.g. to try
 * another continuation of a shared prompt, or to drop a reply). The logits are gone until the
 * next evaluation. One thread per context. */
HMST_API int hmst_context_rewind(hmst_context *ctx, int32_t n);

/* Appends tokens[0..n) to the context and runs the model over them. With all_logits, logits
 * are kept for every token (n must be <= n_batch); otherwise only for the last. Fails without
 * changing the context on bad ids or when n_past + n > n_ctx. One thread per context. */
HMST_API int hmst_context_eval(hmst_context *ctx, const int32_t *tokens, size_t n, bool all_logits);

/* Copies the logits of row `row` of the last eval (0-based; -1 = the last row) into out[V]
 * (cap in floats). One thread per context. */
HMST_API int hmst_context_get_logits(const hmst_context *ctx, int32_t row, float *out, size_t cap, size_t *n_out);

/* Experts and gates of every token in the context (positions 0 ..< n_past), when the context was
 * created with trace_routes: experts[N][n_layer][n_expert_used] and gates likewise (cap in
 * elements, both arrays the same size; either may be NULL to skip it). *n_out = N * L * K.
 * One thread per context. */
HMST_API int hmst_context_route_trace(const hmst_context *ctx, int32_t *experts, float *gates, size_t cap,
                                      size_t *n_out);

/* Sampling settings. temperature 0 = greedy. */
struct hmst_sampling_params {
    uint32_t struct_size;       /* set by hmst_sampling_default_params() */
    float temperature;          /* default 0.8 */
    int32_t top_k;              /* default 50; 0 = off */
    float top_p;                /* default 0.9; 1 = off */
    float min_p;                /* default 0; keep p >= min_p * p_max */
    float repetition_penalty;   /* default 1 (off) */
    int32_t repeat_last_n;      /* default 64 */
    uint64_t seed;              /* default 0; same seed + settings + prompt = same text */
};

/* Thread-safe. */
HMST_API struct hmst_sampling_params hmst_sampling_default_params(void);

/* Called with every generated token and its bytes (piece is not NUL-terminated and may hold
 * part of a UTF-8 sequence). Return false to stop generation. Runs on the generating thread.
 * It may read its context (hmst_context_get_logits, hmst_context_n_past); hmst_context_eval,
 * hmst_context_reset, hmst_context_rewind or hmst_generate on that context from inside it return
 * HMST_STATUS_INVALID_ARGUMENT (the generation is using the cache they would change). */
typedef bool (*hmst_token_callback)(int32_t token, const char *piece, size_t piece_len, void *user_data);

enum hmst_stop_reason {
    HMST_STOP_MAX_TOKENS = 0,
    HMST_STOP_EOS = 1,
    HMST_STOP_STRING = 2,
    HMST_STOP_CALLBACK = 3,
    HMST_STOP_CONTEXT_FULL = 4,
    /* json_object, grammar or json_schema allows no token of the vocabulary here (or the
     * grammar became too ambiguous): the text is unfinished */
    HMST_STOP_NO_CONTINUATION = 5
};

struct hmst_generate_params {
    uint32_t struct_size;                 /* set by hmst_generate_default_params() */
    int32_t max_tokens;                   /* default 50 */
    struct hmst_sampling_params sampling;
    const char *const *stop;              /* n_stop NUL-terminated stop strings, or NULL */
    size_t n_stop;
    bool ignore_eos;                      /* keep going past the end-of-text token */
    hmst_token_callback on_token;         /* optional streaming callback */
    void *user_data;
    /* Appended (an older struct_size leaves them 0, off). OpenAI's penalties over the last
     * sampling.repeat_last_n tokens of the context (prompt included, as llama.cpp), after the
     * repetition penalty: logit -= count * frequency_penalty + (count > 0) * presence_penalty.
     * Any finite value; negative ones favour repeats. */
    float frequency_penalty;              /* default 0 */
    float presence_penalty;               /* default 0 */
    /* Appended: added to these tokens' logits before the penalties (OpenAI's logit_bias: -100
     * all but bans a token, 100 all but forces it, -INFINITY bans it). n_logit_bias ids (each
     * below the vocabulary; a repeated id: the last bias) and their biases (no NaN, no +inf). */
    const int32_t *logit_bias_tokens;     /* default NULL */
    const float *logit_bias;              /* default NULL */
    size_t n_logit_bias;                  /* default 0; at most 65536 */
    /* Appended: the text is one JSON object (RFC 8259): every token that cannot extend it is
     * masked before sampling, end-of-text too until it is closed; generation stops when it
     * closes (HMST_STOP_EOS). max_tokens may still cut it short; where no token can extend it,
     * HMST_STOP_NO_CONTINUATION. */
    bool json_object;                     /* default false */
    /* Appended: the text is a sentence of `grammar`, in llama.cpp's GBNF notation (it starts at
     * the rule `root`), or one JSON value that the JSON Schema `json_schema` (its JSON text)
     * accepts (the keywords enforced are in the README; others that constrain are refused).
     * Tokens that cannot continue it are masked before sampling, end-of-text too until it is
     * whole; generation stops when nothing can follow (HMST_STOP_EOS), or when no token of
     * the vocabulary can continue it (HMST_STOP_NO_CONTINUATION: unfinished). At most one of
     * json_object, grammar and json_schema. Text that cannot be read is
     * HMST_STATUS_INVALID_ARGUMENT naming the line and column, or the keyword and where. */
    const char *grammar;                  /* default NULL; UTF-8, NUL-terminated */
    const char *json_schema;              /* default NULL; UTF-8, NUL-terminated */
};

/* Thread-safe. */
HMST_API struct hmst_generate_params hmst_generate_default_params(void);

/* The GBNF grammar that hmst_generate uses for a JSON Schema (llama.cpp's
 * json_schema_to_grammar), NUL-terminated in buf with the buffer protocol; a schema that cannot
 * be converted is HMST_STATUS_INVALID_ARGUMENT saying why. hmst_grammar_check reads GBNF text
 * and says what is wrong with it. Both thread-safe. */
HMST_API int hmst_json_schema_to_grammar(const char *json_schema, char *buf, size_t cap, size_t *n_out);
HMST_API int hmst_grammar_check(const char *grammar);

struct hmst_generation_stats {
    uint32_t struct_size;         /* set by the host */
    int32_t prompt_tokens;
    int32_t generated_tokens;
    int32_t stop_reason;          /* enum hmst_stop_reason */
    double load_ms;               /* the model's load time */
    double prompt_ms;
    double generate_ms;           /* from the first sampled token to the end */
    double time_to_first_token_ms;
    double prompt_tokens_per_second;
    double tokens_per_second;     /* decode speed */
    /* Appended: prompt tokens the context already held and kept (hmst_chat_generate's prompt
     * caching), not evaluated again; prompt_tokens counts the ones evaluated. */
    int32_t cached_tokens;
};

/* Tokenizes `prompt` (NUL-terminated), appends it to the context and generates. The text is
 * kept in the context: fetch it with hmst_context_last_output. stats may be NULL (else its
 * struct_size must be set). Needs a tokenizer. One thread per context. */
HMST_API int hmst_generate(hmst_context *ctx, const char *prompt, const struct hmst_generate_params *params,
                           struct hmst_generation_stats *stats);

/* Chat. A model's chat template is its checkpoint's chat_template.jinja, chat_template.json
 * (transformers' {"chat_template": ...} or hmst's pattern form), tokenizer_config.json's
 * "chat_template", or a GGUF file's tokenizer.chat_template, else hmst's built-in
 * "System: / User: / Assistant:" patterns. Jinja templates are rendered as Hugging Face
 * transformers renders them (jinja2's sandbox, trim_blocks and lstrip_blocks) with messages,
 * add_generation_prompt, bos_token, eos_token, tools and the caller's template variables.
 * messages_json: a JSON array of {"role", "content", ...} (content a string, null, or text parts
 * [{"type": "text", "text": ...}]; other members such as tool_calls reach the template as
 * given). The messages' text is literal: special tokens a user types in it are plain text in
 * hmst_chat_tokenize and hmst_chat_generate; the text of hmst_chat_apply_template cannot carry
 * that distinction, so pass it to hmst_generate only when the messages are trusted. A template's
 * own refusal (raise_exception) and malformed messages are HMST_STATUS_INVALID_ARGUMENT saying
 * why; a template that does not parse is HMST_STATUS_BAD_FORMAT naming its line. */
struct hmst_chat_params {
    uint32_t struct_size;                 /* set by hmst_chat_default_params() */
    bool add_generation_prompt;           /* default true: end with the assistant's turn opening */
    const char *tools_json;               /* default NULL; a JSON array of OpenAI-style tools */
    const char *template_vars_json;       /* default NULL; a JSON object of extra template variables
                                             (e.g. {"enable_thinking": false}) */
    /* Appended. Tool calling, with tools_json (OpenAI's [{"type": "function", "function":
     * {"name", "description", "parameters"}}]): the calls are written in the syntax of the
     * model's template: <tool_call>{...}</tool_call> (Hermes, Qwen), [TOOL_CALLS] (Mistral), a
     * JSON reply (Llama 3.x); a template with another syntax gets the tools as transformers gives
     * them; a template that does not mention tools gets hmst's generic format (the tools and a
     * JSON reply format described in the system message, the reply held to it by a grammar).
     * hmst_chat_generate parses the reply: hmst_context_last_output holds its text for the user
     * and hmst_context_last_tool_calls the calls (a reply naming a function that is not among
     * the tools stays text); on_token sees the raw reply, call syntax included. tool_choice:
     * NULL or "auto" (free text until the reply starts a call: <tool_call>, [TOOL_CALLS] before
     * a JSON list, a Llama 3 reply opening with <|python_tag|> or {"name"; from there a grammar
     * holds it to calls of the tools, arguments following their schemas), "none" (the tools
     * are left out), "required" (a grammar holds the reply to calls of the tools: up to 16 in
     * Hermes' and Mistral's syntaxes with parallel_tool_calls, else one), or one function as
     * JSON {"type": "function", "function": {"name":
     * "..."}}. Where a grammar holds the whole reply (required, a function, and auto in the
     * generic format) params->json_object, grammar and json_schema must be unset; under auto
     * they may be set, and then hold the whole reply instead (calls still parsed from it). */
    const char *tool_choice;              /* default NULL (auto) */
    bool parallel_tool_calls;             /* default true; false keeps the first call */
};

/* Thread-safe. */
HMST_API struct hmst_chat_params hmst_chat_default_params(void);

/* The rendered prompt, NUL-terminated in buf with the buffer protocol. params may be NULL
 * (defaults). Thread-safe. */
HMST_API int hmst_chat_apply_template(const hmst_model *model, const char *messages_json, const struct hmst_chat_params *params,
                                      char *buf, size_t cap, size_t *n_out);

/* The rendered prompt's token ids (the template's special tokens as tokens, the messages'
 * text literal), with the buffer protocol of hmst_tokenize. Thread-safe. */
HMST_API int hmst_chat_tokenize(const hmst_model *model, const char *messages_json, const struct hmst_chat_params *params,
                                int32_t *out, size_t cap, size_t *n_out);

/* Renders the messages with the model's chat template and generates the assistant's reply,
 * which ends at the model's end-of-turn tokens (its end-of-text token, every eos_token_id of
 * config.json and generation_config.json, a GGUF's end-of-turn ids, and special tokens such as
 * <|im_end|> and <|eot_id|>) unless params->ignore_eos. The context becomes the conversation
 * and the reply: whatever it held before is replaced, except the longest prefix it shares
 * with the rendered conversation, whose KV cache is kept (prompt caching: the next turn of a
 * conversation evaluates only its new messages; stats->cached_tokens counts what was kept).
 * The cached rows were computed in other batches, so logits may differ from a fresh context's
 * in the last bits; call hmst_context_reset first for a fresh one. chat_params may be NULL; its
 * add_generation_prompt is ignored (a reply always follows the opening). Fetch the reply with
 * hmst_context_last_output. One thread per context. */
HMST_API int hmst_chat_generate(hmst_context *ctx, const char *messages_json, const struct hmst_chat_params *chat_params,
                                const struct hmst_generate_params *params, struct hmst_generation_stats *stats);

/* The text of the last hmst_generate or hmst_chat_generate (bytes, NUL-terminated in buf; cap counts the NUL), with
 * the stop string cut off (with tools: the reply's text without its calls). One thread per context. */
HMST_API int hmst_context_last_output(const hmst_context *ctx, char *buf, size_t cap, size_t *n_out);

/* The tool calls of the last hmst_chat_generate with tools, as a JSON array of OpenAI's
 * message.tool_calls ([{"id", "type": "function", "function": {"name", "arguments"}}], arguments
 * as JSON text), NUL-terminated in buf with the buffer protocol; "[]" when the reply made none
 * (text that does not parse as a call stays in hmst_context_last_output). One thread per context. */
HMST_API int hmst_context_last_tool_calls(const hmst_context *ctx, char *buf, size_t cap, size_t *n_out);

/* ---------------------------------------------------------------------------------------------
 * Tokenizers (standalone; a model's own tokenizer is used through hmst_tokenize)
 *
 * Byte-level BPE as GPT-2 and Hugging Face tokenizers' ByteLevel do it, stored as HF
 * tokenizer.json. Encoding takes any bytes (invalid UTF-8 included) and decoding gives them
 * back exactly. A tokenizer is immutable after load/train: all functions but _free are
 * thread-safe on a shared handle.
 * ------------------------------------------------------------------------------------------- */

typedef struct hmst_tokenizer hmst_tokenizer; /* opaque */

/* Loads a tokenizer.json (path to the file, or to a directory that holds one). Malformed
 * files give HMST_STATUS_BAD_FORMAT naming the problem; valid files of a kind hmst does not
 * run (WordPiece, normalizers...) give HMST_STATUS_UNSUPPORTED. Thread-safe. */
HMST_API int hmst_tokenizer_load(const char *path, hmst_tokenizer **out_tokenizer);

struct hmst_tokenizer_train_params {
    uint32_t struct_size;                 /* set by hmst_tokenizer_train_default_params() */
    int32_t vocab_size;                   /* default 8192, special tokens included */
    int32_t min_frequency;                /* default 2: rarer pairs are not merged */
    const char *const *special_tokens;    /* default NULL: "<|endoftext|>", "<|pad|>" */
    size_t n_special_tokens;
    hmst_progress_callback progress;      /* optional; return false to cancel */
    void *progress_user_data;
};

/* Thread-safe. */
HMST_API struct hmst_tokenizer_train_params hmst_tokenizer_train_default_params(void);

/* Trains on text files, deterministically (the same files and options give the same
 * tokenizer; merges match HF tokenizers' BpeTrainer). params may be NULL. Thread-safe. */
HMST_API int hmst_tokenizer_train(const char *const *files, size_t n_files,
                                  const struct hmst_tokenizer_train_params *params, hmst_tokenizer **out_tokenizer);

/* Writes tokenizer.json atomically. Thread-safe. */
HMST_API int hmst_tokenizer_save(const hmst_tokenizer *tokenizer, const char *path);

/* NULL is a no-op. */
HMST_API void hmst_tokenizer_free(hmst_tokenizer *tokenizer);

/* Encodes text[0..text_len) into ids (buffer protocol, cap in ids). Thread-safe. */
HMST_API int hmst_tokenizer_encode(const hmst_tokenizer *tokenizer, const char *text, size_t text_len, int32_t *out,
                                   size_t cap, size_t *n_out);

/* Decodes ids into bytes (not NUL-terminated; cap in bytes). Thread-safe. */
HMST_API int hmst_tokenizer_decode(const hmst_tokenizer *tokenizer, const int32_t *tokens, size_t n_tokens, char *out,
                                   size_t cap, size_t *n_out);

/* Number of ids (vocabulary plus added tokens). Thread-safe. */
HMST_API int hmst_tokenizer_vocab_size(const hmst_tokenizer *tokenizer, int32_t *out_size);

/* The piece of an id as written in tokenizer.json (byte-level characters, e.g. "Ġthe"; added
 * tokens as their content), NUL-terminated into buf (cap counts the NUL). Thread-safe. */
HMST_API int hmst_tokenizer_id_to_piece(const hmst_tokenizer *tokenizer, int32_t id, char *buf, size_t cap,
                                        size_t *n_out);

/* The id of a piece written as in tokenizer.json; HMST_STATUS_NOT_FOUND if absent. Thread-safe. */
HMST_API int hmst_tokenizer_piece_to_id(const hmst_tokenizer *tokenizer, const char *piece, int32_t *out_id);

/* ---------------------------------------------------------------------------------------------
 * Memory
 *
 * Semantic memory: a FAISS vector store (any index_factory description) with stable 64-bit ids,
 * text and source per entry, lazy IVF training (exact search until 39 vectors per list exist,
 * then train, migrate and keep serving), removal without rebuild and atomic, versioned
 * directories. Episodic memory: a bounded buffer of recent texts, each compressed by a Mamba
 * selective SSM into a state vector of state_size values and retrieved by cosine similarity.
 * Consolidation moves important episodic entries (access count, recency, the model's surprise,
 * caller importance) into semantic memory as base-model embeddings.
 *
 * Both memories are thread-safe: any number of threads may search while others add, remove,
 * save or consolidate. A model passed with a memory must have the hidden size the memory was
 * made for (the semantic dimension, the episodic input size) and a tokenizer for text calls.
 * ------------------------------------------------------------------------------------------- */

typedef struct hmst_semantic hmst_semantic;         /* opaque */
typedef struct hmst_episodic hmst_episodic;         /* opaque */
typedef struct hmst_consolidator hmst_consolidator; /* opaque: a background consolidation thread */

enum hmst_metric {
    HMST_METRIC_COSINE = 0,        /* vectors normalised on add and query; score = cosine, higher is closer */
    HMST_METRIC_INNER_PRODUCT = 1, /* score = dot product, higher is closer */
    HMST_METRIC_L2 = 2             /* score = squared L2 distance, lower is closer */
};

/* One search result; id is -1 (score NaN) past the last result when fewer than k exist. */
struct hmst_memory_hit {
    int64_t id;
    float score;
};

/* The pooled embedding of text (the mean of the model's final-norm hidden states, unit length),
 * the vectors consolidation stores: out[n_embd]. cap counts floats; *n_out receives n_embd
 * (BUFFER_TOO_SMALL when cap is smaller). The text is literal: special tokens written in it
 * ("<|endoftext|>") are characters, here and wherever memories embed or encode text. Thread-safe. */
HMST_API int hmst_model_embed(const hmst_model *model, const char *text, float *out, size_t cap, size_t *n_out);

struct hmst_semantic_params {
    uint32_t struct_size;           /* set by hmst_semantic_default_params() */
    int32_t dim;                    /* required: vector dimension (n_embd to store model embeddings) */
    const char *index_description;  /* default "IVF4096,Flat" (see benchmarks/README.md); any index_factory string */
    int32_t metric;                 /* enum hmst_metric, default COSINE */
    int32_t nprobe;                 /* default 32: IVF lists searched when a search passes 0 */
};

/* Thread-safe. */
HMST_API struct hmst_semantic_params hmst_semantic_default_params(void);
/* Thread-safe. */
HMST_API int hmst_semantic_create(const struct hmst_semantic_params *params, hmst_semantic **out);
/* Loads a directory written by hmst_semantic_save: NOT_FOUND, BAD_FORMAT (corrupt or
 * inconsistent files, checksums) or UNSUPPORTED (newer format). Thread-safe. */
HMST_API int hmst_semantic_load(const char *dir, hmst_semantic **out);
/* Writes atomically: a crash leaves the previous or the new memory, never a mix. Searches go on
 * meanwhile. Thread-safe. */
HMST_API int hmst_semantic_save(hmst_semantic *memory, const char *dir);
/* A memory records the model whose embeddings its text vectors are (a sample of that model's
 * weights, saved with it), made by the text add, embedding or consolidation that first fills it
 * (an empty memory takes any model; vectors added bare before that count as that model's).
 * *_add_text, *_search_text, consolidation and dense or hybrid *_retrieve with another model
 * (other weights: retrained, another checkpoint; a bf16, f16 or int8 copy of the same weights
 * still matches) are INVALID_ARGUMENT naming it; lexical *_retrieve uses no model and is not
 * checked; memories saved before that record existed are not checked. This call makes *out a
 * new memory with the same entries (ids, texts, sources, owners) embedded by `model` (its
 * retriever projection when it has one, so the dimension may change), in an index of the same
 * description; `memory` is unchanged. Entries without text (bare vectors) are
 * INVALID_ARGUMENT, named. One forward per 32 texts. Thread-safe. */
HMST_API int hmst_semantic_reencode(hmst_semantic *memory, const hmst_model *model, hmst_semantic **out);
/* NULL is a no-op. Not concurrently with other calls on the same memory. */
HMST_API void hmst_semantic_free(hmst_semantic *memory);
/* Adds n vectors [n, dim]. ids: NULL to assign new ones, else n unused ids >= 0. texts: NULL or
 * n strings (NULL entries mean ""). source: NULL or a label for all n. out_ids (may be NULL):
 * receives the n ids. NaN/inf values, a duplicate id or n <= 0 are INVALID_ARGUMENT and add
 * nothing. Thread-safe. */
HMST_API int hmst_semantic_add(hmst_semantic *memory, const float *vectors, int64_t n, const int64_t *ids,
                               const char *const *texts, const char *source, int64_t *out_ids);
/* Embeds text with the model (hmst_model_embed) and adds it. Thread-safe. */
HMST_API int hmst_semantic_add_text(hmst_semantic *memory, const hmst_model *model, const char *text, const char *source,
                                    int64_t *out_id);
/* queries [n, dim] -> out[n * k], best first per query. nprobe 0 = the memory's default.
 * k <= 0 is INVALID_ARGUMENT; searching an empty memory is NOT_FOUND. Thread-safe. Runs on
 * hmst_set_n_threads threads: batches split by query; for IVF-Flat indexes a call with fewer
 * queries than threads (one query) also splits each query's probed lists over the threads. */
HMST_API int hmst_semantic_search(hmst_semantic *memory, const float *queries, int64_t n, int32_t k, int32_t nprobe,
                                  struct hmst_memory_hit *out);
/* Embeds text and searches: out[k]; *n_out (may be NULL) receives how many are valid. Thread-safe. */
HMST_API int hmst_semantic_search_text(hmst_semantic *memory, const hmst_model *model, const char *text, int32_t k,
                                       int32_t nprobe, struct hmst_memory_hit *out, int32_t *n_out);
/* Removes the ids present; *n_removed (may be NULL) receives how many were. Thread-safe. */
HMST_API int hmst_semantic_remove(hmst_semantic *memory, const int64_t *ids, int64_t n, int64_t *n_removed);
/* The text of entry id, NUL-terminated (buffer rule as hmst_system_info_json); NOT_FOUND for an
 * unknown id. Thread-safe. */
HMST_API int hmst_semantic_get_text(hmst_semantic *memory, int64_t id, char *buf, size_t cap, size_t *n_out);
/* Off by default: the add that reaches the IVF training threshold trains, migrates and swaps
 * before it returns (about a minute at 160k x 256 entries). On: that add only snapshots, and a
 * library thread trains while adds and searches go on (the exact index serves meanwhile); a
 * process must call hmst_semantic_wait_training (or save later) to keep the trained index.
 * Not saved with the memory. Thread-safe. */
HMST_API int hmst_semantic_set_background_training(hmst_semantic *memory, bool enabled);
/* Blocks until no training is in progress. Thread-safe. */
HMST_API int hmst_semantic_wait_training(hmst_semantic *memory);
/* Count, dimension, description, metric, phase (exact/training/ready), nlist, nprobe, index
 * bytes... as JSON (buffer rule as hmst_system_info_json). Thread-safe. */
HMST_API int hmst_semantic_stats_json(hmst_semantic *memory, char *buf, size_t cap, size_t *n_out);

struct hmst_episodic_params {
    uint32_t struct_size;           /* set by hmst_episodic_default_params() */
    int32_t max_entries;            /* default 1000: the least important (then oldest) entry is evicted beyond */
    int32_t state_size;             /* default 256: SSM state size N, the key dimension */
    int32_t max_tokens;             /* default 8192: tokens kept per entry (the most recent), encoded in windows of the model context */
    uint64_t seed;                  /* default 0: initial SSM weights (unused when the model has a trained
                                       episodic SSM, episodic_soft_tokens.*: that mixer is used, and
                                       state_size must be its N) */
};

/* Thread-safe. */
HMST_API struct hmst_episodic_params hmst_episodic_default_params(void);
/* An empty memory for texts encoded by `model` (its n_embd is the SSM's input size). When the
 * model's soft tokens read the whole SSM state (input "state_readout"), the memory also keeps each
 * text entry's state features for them (saved with it), and its add/search calls then need that
 * model (another model is INVALID_ARGUMENT: re-encode with `hmst memory reencode`). Thread-safe. */
HMST_API int hmst_episodic_create(const hmst_model *model, const struct hmst_episodic_params *params, hmst_episodic **out);
/* As hmst_semantic_load / hmst_semantic_save. Thread-safe. */
HMST_API int hmst_episodic_load(const char *dir, hmst_episodic **out);
HMST_API int hmst_episodic_save(hmst_episodic *memory, const char *dir);
/* As hmst_semantic_reencode: the memory records the model its keys were encoded by (at
 * hmst_episodic_create, or its first text add), and text calls with another model are
 * INVALID_ARGUMENT. *out: the same entries (ids, texts, times, importance, owners) encoded by
 * `model`'s SSM (its trained episodic mixer when it has one); `memory` is unchanged. Entries
 * added with a precomputed key are encoded from their text too; one without text is
 * INVALID_ARGUMENT, named. Thread-safe. */
HMST_API int hmst_episodic_reencode(hmst_episodic *memory, const hmst_model *model, hmst_episodic **out);
/* NULL is a no-op. Not concurrently with other calls on the same memory. */
HMST_API void hmst_episodic_free(hmst_episodic *memory);
/* Encodes text (base model, then the SSM) and stores it with importance in [0, 1] (clamped).
 * Thread-safe. */
HMST_API int hmst_episodic_add_text(hmst_episodic *memory, const hmst_model *model, const char *text, float importance,
                                    int64_t *out_id);
/* Stores a precomputed key[n_key] (n_key == state_size) with its text (no state features: such an
 * entry is given to the model as text only). Thread-safe. */
HMST_API int hmst_episodic_add_key(hmst_episodic *memory, const float *key, size_t n_key, const char *text, float importance,
                                   int64_t *out_id);
/* The k most similar entries to text (or to key[n_key]), best first, into out[k]; *n_out (may
 * be NULL) receives how many are valid. Each hit's access count grows. Thread-safe. */
HMST_API int hmst_episodic_search_text(hmst_episodic *memory, const hmst_model *model, const char *text, int32_t k,
                                       struct hmst_memory_hit *out, int32_t *n_out);
HMST_API int hmst_episodic_search_key(hmst_episodic *memory, const float *key, size_t n_key, int32_t k,
                                      struct hmst_memory_hit *out, int32_t *n_out);
/* Thread-safe. */
HMST_API int hmst_episodic_remove(hmst_episodic *memory, const int64_t *ids, int64_t n, int64_t *n_removed);
/* Thread-safe. */
HMST_API int hmst_episodic_get_text(hmst_episodic *memory, int64_t id, char *buf, size_t cap, size_t *n_out);
/* Count, capacity, state size and every entry's id, access count, surprise, importance and
 * timestamp as JSON (buffer rule as hmst_system_info_json). Thread-safe. */
HMST_API int hmst_episodic_stats_json(hmst_episodic *memory, char *buf, size_t cap, size_t *n_out);

struct hmst_consolidate_params {
    uint32_t struct_size;           /* set by hmst_consolidate_default_params() */
    double threshold;               /* default 0.5: entries scoring at least this move */
    int32_t max_per_run;            /* default 256 */
    bool remove_from_episodic;      /* default true */
    double half_life_seconds;       /* default 3600: recency halves every half life */
};

/* Thread-safe. */
HMST_API struct hmst_consolidate_params hmst_consolidate_default_params(void);
/* One consolidation pass; *n_moved (may be NULL) receives how many entries moved. Searches on
 * both memories go on meanwhile. Thread-safe. */
HMST_API int hmst_consolidate(hmst_episodic *episodic, hmst_semantic *semantic, const hmst_model *model,
                              const struct hmst_consolidate_params *params, int32_t *n_moved);
/* Starts a thread running a pass every interval_seconds (finite, in (0, 1e9]). The memories and
 * model stay alive until hmst_consolidator_stop. Thread-safe. */
HMST_API int hmst_consolidator_start(hmst_episodic *episodic, hmst_semantic *semantic, const hmst_model *model,
                                     const struct hmst_consolidate_params *params, double interval_seconds,
                                     hmst_consolidator **out);
/* Stops the thread (a pass in progress finishes first), reports the passes run and entries moved
 * (either may be NULL) and frees the handle. NULL is a no-op. Thread-safe. */
HMST_API void hmst_consolidator_stop(hmst_consolidator *consolidator, int32_t *n_passes, int32_t *n_moved);

/* ---------------------------------------------------------------------------------------------
 * Training
 *
 * Pre-training on a token dataset written by `hmst preprocess` (or hmst's data tools): random
 * windows, AdamW with decoupled weight decay, global-norm clipping, warmup + cosine decay in
 * optimizer steps, evaluation with early stopping, best_model/, final/ and periodic
 * checkpoints plus metrics.jsonl in output_dir. A trainer is used by one thread at a time.
 * ------------------------------------------------------------------------------------------- */

typedef struct hmst_trainer hmst_trainer; /* opaque */

/* Passed to the progress callback after every optimizer step. */
struct hmst_train_progress {
    uint32_t struct_size;       /* sizeof(struct hmst_train_progress) of the library */
    int32_t step;               /* optimizer steps done */
    int32_t total_steps;
    int32_t epoch;              /* 1-based */
    double loss;                /* mean training loss of the step (cross-entropy + balancing) */
    double learning_rate;
    double tokens_per_second;
    double eta_seconds;
    double val_loss;            /* NaN unless this step evaluated */
};

/* Return false to stop training (final/ is saved with the state to resume from). Called on the
 * training thread. */
typedef bool (*hmst_train_progress_callback)(const struct hmst_train_progress *progress, void *user_data);

struct hmst_trainer_params {
    uint32_t struct_size;           /* set by hmst_trainer_default_params() */
    const char *train_data;         /* required: a token dataset directory */
    const char *val_data;           /* optional: a token dataset directory for evaluation */
    const char *output_dir;         /* required */
    const char *model_size;         /* preset of a new model: "nano" (default: micro with 2 layers), "micro", "tiny", ... */
    const char *init_from;          /* optional: start from this checkpoint instead */
    const char *resume_from;        /* optional: final/ or checkpoint-epoch-N/ with trainer state */
    int32_t epochs;                 /* default 1 */
    int32_t batch_size;             /* default 4 */
    int32_t seq_len;                /* default 256 */
    int32_t steps_per_epoch;        /* default 0: one pass over the training tokens */
    int32_t grad_accum_steps;       /* default 1 */
    int32_t eval_every;             /* default 0: at the end of each epoch */
    int32_t eval_windows;           /* default 64 */
    int32_t patience;               /* default 0: never stop early */
    int32_t save_every;             /* default 0: no periodic checkpoints */
    float learning_rate;            /* default 1e-3 */
    float weight_decay;             /* default 0.1 */
    float grad_clip;                /* default 1.0 */
    uint64_t seed;                  /* default 0 */
    hmst_train_progress_callback progress;
    void *user_data;
    /* appended later: a host built with an older header (smaller struct_size) gets the defaults */
    bool mixed_precision;           /* default false: bf16 matmuls, f32 accumulation and master weights */
    bool gradient_checkpointing;    /* default false: recompute each layer's activations in backward */
    bool use_8bit_optimizer;        /* default false: blockwise 8-bit AdamW state (about 1/4 the memory) */
    const struct hmst_data_parallel_params *data_parallel; /* default NULL: one process (see below) */
    /* appended later: */
    double time_budget_seconds;     /* default 0: epochs decide; > 0: train for this many seconds
                                     * (evaluations and checkpoints not counted), as many passes
                                     * as fit, warmup and decay following the share of the budget
                                     * spent; ends with an evaluation */
    float warmup_fraction;          /* default 0.05: share of the run spent warming up, in [0, 1) */
    float min_learning_rate;        /* default -1: learning_rate / 10; the rate the cosine decays to */
    /* appended in 0.1 (an older struct_size means false): */
    bool force;                     /* default false: an output_dir holding an earlier run (metrics.jsonl, loss.svg,
                                       final/, best_model/, checkpoint-epoch-N/) is refused with
                                       HMST_ERR_INVALID_ARGUMENT unless resume_from continues it; true: that
                                       run's files are removed first (never this run's inputs) */
};

/* Thread-safe. */
HMST_API struct hmst_trainer_params hmst_trainer_default_params(void);

/* Opens the data, builds or loads the model, optionally resumes. Thread-safe. */
HMST_API int hmst_trainer_create(const struct hmst_trainer_params *params, hmst_trainer **out_trainer);

/* One optimizer step; *out_loss (may be NULL) receives its loss. */
HMST_API int hmst_trainer_step(hmst_trainer *trainer, double *out_loss);

/* Mean validation loss in nats per token over eval_windows windows. */
HMST_API int hmst_trainer_evaluate(hmst_trainer *trainer, double *out_val_loss);

/* Runs the remaining steps of every epoch with evaluation, checkpoints and the progress
 * callback. *out_steps (may be NULL) receives the steps done in total. */
HMST_API int hmst_trainer_run(hmst_trainer *trainer, int32_t *out_steps);

/* Writes a loadable checkpoint with the trainer state (for resume_from) into dir. */
HMST_API int hmst_trainer_save(hmst_trainer *trainer, const char *dir);

/* NULL is a no-op. */
HMST_API void hmst_trainer_free(hmst_trainer *trainer);

/* ---------------------------------------------------------------------------------------------
 * Evaluation
 *
 * lm-evaluation-harness-style tasks on local files: a task is a JSON description {"name",
 * "output_type": "loglikelihood" | "multiple_choice" | "generate_until" | "loglikelihood_rolling",
 * "data": JSONL path relative to the description, "until": [...], "max_gen_tokens": N}; items are
 * JSONL lines {"id", "prompt", "target", "choices", "gold", "memory": [...]} ("text" for rolling).
 * Prompts use the memory layout <mem>fact</mem>...<q>question<a> (plain "Fact: ...\nQuestion: ...\n
 * Answer:" for a tokenizer without those markers). Memory conditions: OFF (none), ON (the k texts
 * retrieved from memory_dir for the prompt), ORACLE (the item's gold memories), DELETED (as ON,
 * with every entry whose text is a gold memory left out; memory_dir is never modified). Metrics
 * per task and condition with a 95% percentile-bootstrap interval: acc and answer_nll and
 * perplexity (loglikelihood), acc, acc_norm and answer_nll (multiple_choice), exact_match and
 * answer_nll (generate_until), bits_per_byte, byte_perplexity, word_perplexity and
 * token_perplexity (loglikelihood_rolling). Nothing is downloaded.
 * ------------------------------------------------------------------------------------------- */

enum hmst_eval_condition {
    HMST_EVAL_CONDITION_OFF = 1,
    HMST_EVAL_CONDITION_ON = 2,
    HMST_EVAL_CONDITION_ORACLE = 4,
    HMST_EVAL_CONDITION_DELETED = 8
};

struct hmst_eval_params {
    uint32_t struct_size;           /* set by hmst_eval_default_params() */
    const char *const *task_paths;  /* n_tasks task description files; required */
    size_t n_tasks;
    const char *memory_dir;         /* default NULL: a memory directory (episodic/, semantic/) for ON and DELETED */
    uint32_t conditions;            /* default HMST_EVAL_CONDITION_OFF: OR of hmst_eval_condition values,
                                     * run and reported in the order off, on, oracle, deleted */
    int32_t k;                      /* default 4: memories retrieved per item */
    int32_t limit;                  /* default 0: every item; N: the first N items of each task */
    uint64_t seed;                  /* default 0: bootstrap seed */
    int32_t bootstrap_resamples;    /* default 1000 */
    int32_t n_ctx;                  /* default 0: the model's context, at most 4096 tokens */
    const char *report_path;        /* default NULL: also write the JSON report here (atomically) */
    const char *items_path;         /* default NULL: write one JSON line per item and condition here */
    /* Appended later (a host built against the shorter struct gets the defaults): */
    int32_t retrieval_mode;         /* default HMST_RETRIEVAL_HYBRID: how ON and DELETED retrieve
                                     * (enum hmst_retrieval_mode: hybrid BM25 + vectors, dense, lexical) */
    /* appended in 0.1 (issue 11; an older struct_size means the defaults): */
    float dense_weight;             /* default 1: hybrid, the weight of the dense rank in the fusion */
    float lexical_weight;           /* default 1: hybrid, the weight of the BM25 rank (finite, >= 0) */
    /* appended in 0.1 (issue 11; an older struct_size means the default): */
    float min_coverage;             /* default 0: ON and DELETED drop retrieved entries covering less than this
                                     * share of the query's idf-weighted terms (see hmst_retrieval_params) */
};

/* Thread-safe. */
HMST_API struct hmst_eval_params hmst_eval_default_params(void);

/* Runs the tasks under the conditions and writes the JSON report, NUL-terminated, to buf
 * ({"format": "hmst-eval-report", "settings": {...}, "tasks": {NAME: {"output_type", "file",
 * "n_items", "conditions": {COND: {METRIC: {"value", "ci95": [low, high], "n"}}}}}, "seconds"}).
 * cap counts bytes including the NUL; *n_out receives the length without it. If cap is too
 * small: HMST_STATUS_BUFFER_TOO_SMALL, nothing written to buf, but the run happened (and wrote
 * report_path and items_path if set): read report_path rather than running again; a few KiB
 * per task and condition is enough. Bad task files are HMST_STATUS_NOT_FOUND or
 * HMST_STATUS_BAD_FORMAT naming the file, line and field. Thread-safe: the model is read-only
 * and each call has its own context; memory_dir is only read. */
HMST_API int hmst_eval_run(const hmst_model *model, const struct hmst_eval_params *params, char *buf, size_t cap,
                           size_t *n_out);
/* ---- retrieval: dense, lexical (BM25) and hybrid search over both memories ----------------
 * Each memory keeps, beside its vectors, a BM25 index over its entries' texts (rebuilt from the
 * stored texts on load; nothing extra on disk). Terms: maximal runs of ASCII letters, digits and
 * non-ASCII UTF-8 bytes, ASCII lowercased, English function and question words dropped (README,
 * "Retrieval"). BM25 with k1 = 1.2, b = 0.75 by default. Hybrid mode fuses the dense and the
 * lexical top n_candidates by weighted reciprocal rank: score = w_dense / (rrf_k + rank_dense)
 * + w_lexical / (rrf_k + rank_lexical), ranks 1-based, a part that missed the document adds 0.
 *
 * A checkpoint may carry a retrieval projection (retriever.safetensors + retriever.json, made by
 * `hmst train-retriever`): then every text call of the semantic memory (add_text, search_text,
 * retrieve, consolidation) embeds documents and queries through it (its dim, which defaults to
 * n_embd, must be the memory's), while hmst_model_embed stays the plain pooled embedding. A
 * semantic memory records which embedder built its text vectors ("pooled" or "projected-<hash>",
 * saved with it) and refuses, with INVALID_ARGUMENT, a model that embeds otherwise.
 * ------------------------------------------------------------------------------------------- */

enum hmst_retrieval_mode {
    HMST_RETRIEVAL_HYBRID = 0,   /* both parts, fused by reciprocal rank */
    HMST_RETRIEVAL_DENSE = 1,    /* vectors only (as hmst_semantic_search_text / hmst_episodic_search_text) */
    HMST_RETRIEVAL_LEXICAL = 2   /* BM25 only; needs no model */
};

struct hmst_retrieval_params {
    uint32_t struct_size;   /* set by hmst_retrieval_default_params() */
    int32_t mode;           /* enum hmst_retrieval_mode, default HYBRID */
    int32_t k;              /* hits wanted, default 5 (1...1048576) */
    int32_t n_candidates;   /* hybrid: each part's top n fused, default 50 (at least k are used) */
    float rrf_k;            /* default 60 */
    float dense_weight;     /* hybrid: weight of the dense reciprocal rank, default 1 */
    float lexical_weight;   /* hybrid: weight of the lexical reciprocal rank, default 1 */
    float bm25_k1;          /* default 1.2 */
    float bm25_b;           /* default 0.75, in [0, 1] */
    int32_t nprobe;         /* semantic dense part: IVF lists probed, 0 = the memory's default */
    /* appended in 0.1 (an older struct_size means the default): */
    float min_coverage;     /* default 0 (keep every hit), in [0, 1]: drop hits whose text holds less than this
                             * share of the query's terms weighted by their idf over the memory (or the owner's
                             * entries), idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5)), terms no entry holds
                             * weighing 0; a hit about another entity than the query's lacks its rare name. Before the k best are taken, from
                             * each part's n_candidates in every mode; needs the query text in every mode. */
};

/* One retrieval result with the score of each part. score ranks the hits: the fused RRF score
 * (hybrid), the dense score (dense: cosine or inner product, higher is closer; squared L2,
 * lower is closer) or the BM25 score (lexical). A part that did not return this entry among
 * its candidates (or was not run) has rank 0 and score NaN. */
struct hmst_retrieval_hit {
    int64_t id;
    float score;
    float dense_score;
    float lexical_score;
    int32_t dense_rank;     /* 1-based rank among the dense candidates, 0 when absent */
    int32_t lexical_rank;   /* 1-based rank among the lexical candidates, 0 when absent */
};

/* Thread-safe. */
HMST_API struct hmst_retrieval_params hmst_retrieval_default_params(void);

/* Retrieves the params->k best entries (params NULL: defaults) for a query text. The dense part
 * uses `query` (n_query = the memory's dimension) when not NULL, else embeds `text` with
 * `model` (which may be NULL in lexical mode); the lexical part uses `text` (required unless
 * the mode is DENSE and `query` is given). Writes the hits, best first, to out[cap] and their
 * count to *n_out (0 for an empty memory or no match); if cap is smaller than that count,
 * returns BUFFER_TOO_SMALL with *n_out set and writes nothing to out. INVALID_ARGUMENT for bad
 * params, a missing part, a wrong n_query or model size. Thread-safe: runs with searches,
 * blocks adds and removes for its duration. */
HMST_API int hmst_semantic_retrieve(hmst_semantic *memory, const hmst_model *model, const char *text,
                                    const float *query, size_t n_query, const struct hmst_retrieval_params *params,
                                    struct hmst_retrieval_hit *out, size_t cap, size_t *n_out);

/* As hmst_semantic_retrieve for the episodic memory: the dense part encodes `text` with `model`
 * through the memory's SSM (model may be NULL in lexical mode). The returned entries' access
 * counts grow by one, as with hmst_episodic_search_text. Thread-safe. */
HMST_API int hmst_episodic_retrieve(hmst_episodic *memory, const hmst_model *model, const char *text,
                                    const struct hmst_retrieval_params *params, struct hmst_retrieval_hit *out,
                                    size_t cap, size_t *n_out);

/* ---------------------------------------------------------------------------------------------
 * Stage 2 memory fine-tuning
 *
 * Teaches a pre-trained checkpoint to answer from retrieved memories laid out as
 * `<mem>fact</mem>...<q>question<a> answer</a>`: the five markers are added to its tokenizer
 * as special tokens (embedding and LM head grow by five rows, initialised to the mean row;
 * a checkpoint that has them is used as is). Examples come from facts_dir/facts.jsonl and
 * facts_dir/train.jsonl (`hmst facts generate`): the gold fact among distractors, distractors
 * only, or no memory (answer: the fact, or " unknown" when it cannot be known), with the loss
 * on answer tokens only; a share lm_fraction of the steps is plain language modelling on
 * train_data to bound forgetting. output_dir receives final/ (a checkpoint with the trainer
 * state, for resume_from), metrics.jsonl and loss.svg. A memory trainer is used by one thread
 * at a time.
 * ------------------------------------------------------------------------------------------- */

typedef struct hmst_memory_trainer hmst_memory_trainer; /* opaque */

/* Held-out questions (split "heldout") in four settings: oracle (the gold fact alone in memory),
 * on (gold among k-1 distractors), off (no memory), deleted (the same distractors, gold
 * removed). nll_*: nats per answer token (answer and </a>, teacher-forced); exact_match_*: the
 * fraction of questions greedy decoding answers exactly. */
struct hmst_memory_eval {
    uint32_t struct_size;       /* the host sets sizeof(struct hmst_memory_eval) */
    int32_t n_questions;
    double nll_oracle, nll_on, nll_off, nll_deleted;
    double exact_match_oracle, exact_match_on, exact_match_off, exact_match_deleted;
};

/* Passed to the progress callback after every optimizer step. */
struct hmst_memory_train_progress {
    uint32_t struct_size;       /* sizeof(struct hmst_memory_train_progress) of the library */
    int32_t step;               /* optimizer steps done */
    int32_t total_steps;
    bool lm_step;               /* this step was plain language modelling, not a memory batch */
    double loss;                /* the step's loss: answer tokens, or all tokens for an LM step */
    double learning_rate;
    double tokens_per_second;
    double eta_seconds;
    bool evaluated;             /* eval holds this step's evaluation */
    struct hmst_memory_eval eval;
    double val_loss;            /* NaN unless evaluated with val_data */
    double val_bits_per_byte;   /* NaN unless evaluated with val_data */
};

/* Return false to stop (final/ is saved with the state to resume from). Called on the training
 * thread. */
typedef bool (*hmst_memory_train_progress_callback)(const struct hmst_memory_train_progress *progress, void *user_data);

struct hmst_memory_trainer_params {
    uint32_t struct_size;           /* set by hmst_memory_trainer_default_params() */
    const char *checkpoint;         /* required: the pre-trained checkpoint directory */
    const char *facts_dir;          /* required: facts.jsonl and train.jsonl */
    const char *train_data;         /* pre-training token dataset; required when lm_fraction > 0 */
    const char *val_data;           /* optional: token dataset for validation loss and bits per byte */
    const char *output_dir;         /* required */
    const char *resume_from;        /* optional: output_dir/final of an earlier run */
    int32_t steps;                  /* default 1000 */
    int32_t batch_size;             /* default 8 */
    int32_t seq_len;                /* default 128: LM windows (and the longest memory example) */
    int32_t memory_seq_len;         /* default 96: memory example rows, at most seq_len (0: seq_len) */
    int32_t grad_accum_steps;       /* default 1 */
    int32_t k;                      /* default 4: memories per example */
    int32_t eval_every;             /* default 0: evaluate at the end only */
    int32_t eval_questions;         /* default 200 held-out questions (0: all) */
    float learning_rate;            /* default 3e-4 */
    float weight_decay;             /* default 0.1 */
    float grad_clip;                /* default 1.0 */
    float lm_fraction;              /* default 0.5, in [0, 1) */
    uint64_t seed;                  /* default 0 */
    hmst_memory_train_progress_callback progress;
    void *user_data;
    bool mixed_precision;           /* default false: bf16 matmuls, f32 accumulation and master weights */
    bool gradient_checkpointing;    /* default false */
    bool use_8bit_optimizer;        /* default false */
    const struct hmst_data_parallel_params *data_parallel; /* default NULL: one process (see below) */
    /* appended in 0.1 (an older struct_size means 0): */
    int32_t copy_head_key_size;     /* default 0: no copy head; > 0: train one with queries and keys of this
                                       size (1 ... 4096): a pointer from the answer to the memory tokens,
                                       mixed with the LM by a learned gate, saved as copy_head.safetensors
                                       and used by every context of the loaded model. A checkpoint that
                                       has one keeps training it. Not with data_parallel yet. */
    float copy_head_learning_rate;  /* default 0: learning_rate; the copy head's peak rate, same schedule */
    /* appended in 0.1 (issue 11; an older struct_size means 0, 0.25, 0): */
    int32_t episodic_soft_tokens;   /* default 0: none; K in 1 ... 8: train the episodic tier's soft tokens, K
                                       embeddings per memory projected from its SSM state (see
                                       episodic_soft_input), with the SSM; a share episodic_fraction of the
                                       memory examples gives its memories only that way. Saved as
                                       episodic_soft_tokens.*; a checkpoint that has them keeps training them.
                                       Not with data_parallel. */
    float episodic_fraction;        /* default 0.25, in [0, 1] */
    float episodic_learning_rate;   /* default 0: learning_rate; the soft tokens' peak rate, same schedule */
    /* appended in 0.1 (issue 11, reading the whole state; an older struct_size means the defaults): */
    int32_t episodic_soft_input;    /* what fresh soft tokens read of the SSM state: HMST_EPISODIC_STATE_READOUT
                                       (default: K learned readouts of the whole state, whose mixer reads
                                       hidden states plus embeddings; an episodic memory made for the model
                                       stores them per entry) or HMST_EPISODIC_POOLED_KEY (the retrieval key) */
    bool episodic_copy;             /* default true: with a copy head, each soft row names a token through
                                       the LM head that the copy head may copy */
    int32_t episodic_pretrain_steps;/* read-out pre-training of fresh soft tokens before the first step
                                       (16 facts a step, every fact not held out; 0: none) */
    float episodic_readout;         /* weight of the read-out loss in Stage 2 (soft row k, read by the LM head,
                                       names the k-th token of its fact's value; 0: none) */
    /* appended in 0.1 (issue 11, the curriculum; an older struct_size means the defaults): */
    float gold_weight;              /* default 0.5: share of memory examples with the gold fact among distractors */
    float distractors_only_weight;  /* default 0.25: distractors only (the parametric answer, or "unknown";
                                       see distractor_distillation) */
    float no_memory_weight;         /* default 0.25: no memory (the three are normalised; not all 0) */
    int32_t questions_per_example;  /* default 1: gold examples ask up to this many questions (1 ... k) after one
                                       memory block, each about another of its memories */
    float hard_distractors;         /* default 0: share of distractors about the same entity or relation, in [0, 1] */
    float retrieved_distractors;    /* default 0: share of memory blocks that are what a search of the question over
                                       the training facts returns, in rank order (what retrieval gives at
                                       evaluation), in [0, 1] */
    int32_t retrieved_by;           /* default HMST_RETRIEVAL_LEXICAL (BM25); HMST_RETRIEVAL_DENSE and
                                       HMST_RETRIEVAL_HYBRID rank with the checkpoint's retrieval projection
                                       (hmst train-retriever), which must be there */
    /* appended in 0.1 (issue 11, the deleted gap; an older struct_size means the default): */
    float copy_gate_target_weight;  /* default 8: weight λ of the copy gate's target, −λ·log(1 − gate) on answer
                                       tokens the memory does not hold, so that the gate closes when the fact
                                       is missing or deleted (0: none; only with a copy head) */
    /* appended in 0.1 (issue 11; an older struct_size means the default): */
    float retrieved_lexical_weight; /* default 1: with retrieved_by HYBRID, the weight of the BM25 rank in the
                                       search's fusion (the dense rank's is 1): what evaluation retrieves with */
    /* appended in 0.1 (issue 11, the deleted gap; an older struct_size means the default): */
    float distractor_distillation;  /* default 0.5: share of distractors-only examples that ask for the real answer
                                       and train each of its positions towards the model's own prediction
                                       without the memories (a KL to the same model, same step, no gradient)
                                       instead of a hard target, in [0, 1] */
    /* appended in 0.1 (issue 11, the deleted gap; an older struct_size means the default): */
    float distilled_gate_target_weight; /* default 0: weight λ of the copy gate's target on the answers of
                                       distractor_distillation's examples, whose KL already pulls the gate
                                       shut with weight 1; finite and >= 0 (only with a copy head) */
    /* appended in 0.1 (issue 11, the deleted gap; an older struct_size means the default): */
    float copy_gate_open_weight;    /* default 0: weight μ of the copy gate's opening target, −μ·log(gate) on
                                       answer tokens the memory holds: the other side of the closing targets
                                       above; finite and >= 0 (only with a copy head) */
    /* appended in 0.1 (issue 11, the deleted gap; an older struct_size means the default): */
    int32_t copy_gate_agreement_rank; /* default 0: rank of the copy gate's agreement term, which compares the
                                       answer's state with the memory the pointer reads (a fresh copy head's
                                       bilinear (P·h)·(R·c), P and R of this many rows); 0 (none) ... 1024 */
    /* appended in 0.1 (issue 11, the deleted gap; an older struct_size means the default): */
    bool copy_gate_lexical_overlap; /* default false: give a fresh copy head's gate the tokens each memory entry
                                       shares with the question (a learned weight per token id), so it can tell
                                       the asked entity's entry from a look-alike */
    /* appended in 0.1 (issue 11, the deleted gap; an older struct_size means the default): */
    bool copy_gate_missing_terms;   /* default false: with copy_gate_lexical_overlap, also a learned weight per
                                       token id over the question's tokens a memory entry lacks, so an entry
                                       missing the asked relation or entity can close the gate */
    /* appended in 0.1 (issue 11, the deleted gap; an older struct_size means the default): */
    float copy_gate_lexical_scale;  /* default 1: with copy_gate_lexical_overlap, a fixed scale s of the overlap's
                                       per-token weights (o = s·Σ), so their sparse updates move the gate as a
                                       learning rate s times the head's would; in (0, 10000] */
    /* appended in 0.1 (an older struct_size means false): */
    bool force;                     /* default false: an output_dir holding an earlier run is refused unless
                                       resume_from continues it; true: that run's files are removed first
                                       (see hmst_trainer_params.force) */
};
#define HMST_EPISODIC_STATE_READOUT 0
#define HMST_EPISODIC_POOLED_KEY 1

/* Thread-safe. */
HMST_API struct hmst_memory_trainer_params hmst_memory_trainer_default_params(void);

/* Loads the checkpoint (adding the markers if needed), the facts and the data; optionally
 * resumes. Thread-safe. */
HMST_API int hmst_memory_trainer_create(const struct hmst_memory_trainer_params *params,
                                        hmst_memory_trainer **out_trainer);

/* One optimizer step; *out_loss and *out_lm_step (either may be NULL) receive its loss and
 * whether it was a plain language-modelling step. */
HMST_API int hmst_memory_trainer_step(hmst_memory_trainer *trainer, double *out_loss, bool *out_lm_step);

/* Evaluates the held-out questions into *out_eval (its struct_size set by the host). */
HMST_API int hmst_memory_trainer_evaluate(hmst_memory_trainer *trainer, struct hmst_memory_eval *out_eval);

/* Runs the remaining steps with evaluation, metrics and the progress callback, then saves
 * output_dir/final. *out_steps (may be NULL) receives the steps done in total. */
HMST_API int hmst_memory_trainer_run(hmst_memory_trainer *trainer, int32_t *out_steps);

/* Writes a loadable checkpoint (with the markers) and the trainer state into dir. */
HMST_API int hmst_memory_trainer_save(hmst_memory_trainer *trainer, const char *dir);

/* NULL is a no-op. */
HMST_API void hmst_memory_trainer_free(hmst_memory_trainer *trainer);

/* ---- int8 weights, tensor checks, GGUF import ------------------------------------------------
 *
 * int8 weights: projection matrices (embedding, attention, experts, LM head) whose width is a
 * multiple of 32 are held as blocks of 32 int8 values with one f32 scale each (the Q8_0 block
 * of GGUF); norms and the router stay f32. Decode quantizes the activation vector the same way
 * once per token and sums in int32 (AVX-512 VNNI, AVX2 or portable C, chosen at run time);
 * prefill dequantizes into f32 and uses sgemm. On disk (hmst_model_save(..., "int8") or
 * `hmst quantize IN OUT --dtype int8`): `X.weight` I8 [rows, cols] plus `X.weight_scale` F32
 * [rows, cols / 32], and config.json's "quantization": {"method": "q8_0", "block_size": 32, ...}.
 * With "int8-rows4" the entry adds "layout": "rows4": every I8 matrix but the embedding whose
 * rows >= 4 and cols % 64 == 0 keeps its shape but holds its bytes in the row-quad order (rows in
 * groups of four; per group, each 64-column chunk of row 0, 1, 2, 3 in turn; the scales per run
 * of up to 16 blocks likewise; the last rows % 4 rows row-major). Such files load without the
 * reordering copy that AVX-512 VNNI CPUs otherwise make of every decode matrix at load (the
 * mapping is used in place, --numa placement included); every CPU can read them.
 *
 * GGUF import: hmst_model_load accepts a path ending in ".gguf" (llama.cpp's format, version 3,
 * architecture "llama", dense or with experts): F32, F16, BF16 and Q8_0 tensors, and its
 * byte-level BPE tokenizer (tokenizer.ggml.model "gpt2"). */

/* Values of hmst_context_params.kv_type. bf16 halves the cache's memory and the bytes each
 * decode step reads at long contexts; keys and values are rounded to bf16 as they are stored. */
enum hmst_kv_type {
    HMST_KV_F32 = 0,
    HMST_KV_BF16 = 1
};

/* Values of hmst_model_params.weights. */
enum hmst_weight_type {
    HMST_WEIGHTS_AS_STORED = 0, /* f32, bf16, f16 and int8 used in place */
    HMST_WEIGHTS_F32 = 1,       /* every matrix widened/dequantized to f32 */
    HMST_WEIGHTS_BF16 = 2,      /* matrices rounded to bf16 */
    HMST_WEIGHTS_INT8 = 3,      /* matrices quantized to int8 Q8_0 blocks at load */
    HMST_WEIGHTS_F16 = 4        /* matrices rounded to IEEE half (a value beyond ±65504 fails the load) */
};

/* ------------------------------------------------------------------------------------------
 * The HMST engine: per-query orchestration through memory (the seed's HMSTInferenceEngine).
 *
 * For each query the engine encodes the query with the base model, probes the memory tiers
 * (hybrid retrieval) for their signals, lets the meta-controller make five decisions (early
 * exit, episodic access, semantic retrieval, expert selection, verification), gives the chosen
 * memories to the model in the Stage 2 layout (<mem>fact</mem>...<q>question<a>), generates the
 * answer at the chosen depth and expert count, and, when verification was chosen, scores it
 * with the critic: below the confidence threshold it retries once with both memories at full
 * compute, then abstains ("I am not sure."). A Stage 2 model's own "unknown" answer is also an
 * abstention.
 *
 * The controller (controller/) and critic (critic/) are stored in the checkpoint directory and
 * loaded by hmst_model_load when present (a controller or critic trained for another model is
 * an error there). Without a controller the engine uses the "full" policy (both memories +
 * verification); without a critic, confidence is the answer tokens' geometric-mean probability
 * and is flagged as not calibrated.
 * ------------------------------------------------------------------------------------------ */

typedef struct hmst_engine hmst_engine; /* opaque */

struct hmst_engine_params {
    uint32_t struct_size;        /* set by hmst_engine_default_params() */
    int32_t k;                   /* memories given to the model; default 4 */
    int32_t exit_layer;          /* layer early exit reads from; 0 = the controller's, else half the depth */
    int32_t selected_experts;    /* experts per token under expert selection; default 1 */
    float confidence_threshold;  /* default 0.5 */
    bool retry_with_memory;      /* default true */
    int32_t n_ctx;               /* 0 = min(2048, the model's) */
    int32_t n_threads;           /* 0 = the library's */
    int32_t episodic_retrieval;  /* enum hmst_retrieval_mode of the episodic tier; default
                                  * HMST_RETRIEVAL_LEXICAL: its dense part (SSM-state cosine) finds a
                                  * fact from a question far less often than BM25 (README) */
};

/* Thread-safe. */
HMST_API struct hmst_engine_params hmst_engine_default_params(void);

/* The decisions, in the order of hmst_engine_result.decisions. */
enum hmst_engine_decision {
    HMST_DECISION_EARLY_EXIT = 0,
    HMST_DECISION_EPISODIC = 1,
    HMST_DECISION_SEMANTIC = 2,
    HMST_DECISION_EXPERT_SELECTION = 3,
    HMST_DECISION_VERIFY = 4
};

struct hmst_engine_result {
    uint32_t struct_size;          /* set by the caller to sizeof(struct hmst_engine_result) */
    char answer[1024];             /* what the engine says (the abstain text when it abstained), truncated */
    char model_answer[1024];       /* the model's last answer before any abstention */
    bool abstained;
    bool retried;                  /* verification asked for a second attempt with memory */
    float confidence;              /* P(correct) */
    bool confidence_calibrated;    /* true: the critic's calibrated probability */
    bool decisions[5];             /* enum hmst_engine_decision order */
    float probabilities[5];        /* the policy's P(yes) per decision (0/1 for a fixed policy) */
    int32_t n_citations;           /* memories given; their text, tier, id and score are in the JSON */
    int32_t n_tokens;              /* answer tokens; their ids and log-probs are in the JSON */
    int32_t prompt_tokens;         /* every prompt token run (query encoding, attempts) */
    int32_t generated_tokens;
    double matmul_flops;           /* 2 x multiply-adds of the model projections run */
    int64_t vectors_scanned;       /* by the dense searches */
    int64_t ssm_tokens_encoded;
    int32_t critic_calls;
    double stage_ms[6];            /* encode, retrieve, control, generate, verify, total */
};

/* Called with each answer token of every attempt: its id, bytes (not NUL-terminated) and
 * log-probability. Return false to stop that attempt. Runs on the querying thread. */
typedef bool (*hmst_engine_token_callback)(int32_t token, const char *piece, size_t piece_len,
                                           float logprob, void *user_data);
/* Called once at the end with the result and its JSON (NUL-terminated, json_len bytes; both
 * valid only during the call). Runs on the querying thread. */
typedef void (*hmst_engine_result_callback)(const struct hmst_engine_result *result, const char *json,
                                            size_t json_len, void *user_data);

struct hmst_engine_query_params {
    uint32_t struct_size;                 /* set by hmst_engine_query_default_params() */
    const char *policy;                   /* NULL or "auto" (controller, else full), "controller", "full",
                                             "none", or decisions joined by '+': "episodic+semantic+verify" */
    int32_t max_tokens;                   /* default 16; cut to the room the prompt leaves in the
                                             context (the JSON's "max_tokens" and "finish_reason":
                                             "stop", "length" or "cancelled" say so) */
    float temperature;                    /* default 0 (greedy) */
    uint64_t seed;                        /* default 0 */
    hmst_engine_token_callback on_token;  /* optional */
    hmst_engine_result_callback on_result;/* optional: the result as JSON (citations, log-probs, cost) */
    void *user_data;
    /* Appended after the fields above: a caller built before it passes a struct_size that
     * ends before it, and gets NULL. The memory scope: NULL = every entry of both tiers (one user);
     * else only entries of this owner ("" = the entries added without an owner, which is
     * every entry added through this API) are retrieved, scored, counted in the
     * controller's signals, given to the model and cited, in both tiers and both retrieval
     * parts (dense and lexical, whose BM25 statistics are then the owner's alone): another
     * owner's entries cannot change the answer, the decisions or the citations. The cost
     * (vectors_scanned) still counts the whole tier the dense search ranked. Copied during
     * the call. */
    const char *owner;
};

/* Thread-safe. */
HMST_API struct hmst_engine_query_params hmst_engine_query_default_params(void);

/* An engine over a model (with its controller and critic, if loaded) and memory tiers (either
 * may be NULL). The engine holds its own references: they may be freed before it. Errors: the
 * model has no tokenizer, a memory built with another model or embedder (dimension or name),
 * bad params. Thread-safe. */
HMST_API int hmst_engine_create(const hmst_model *model, hmst_semantic *semantic, hmst_episodic *episodic,
                                        const struct hmst_engine_params *params, hmst_engine **out_engine);

/* Thread-safe; NULL is ignored. */
HMST_API void hmst_engine_free(hmst_engine *engine);

/* Answers one query. out_result (may be NULL) receives the result up to its struct_size. Errors:
 * an empty query, "controller" without a trained controller, an unknown policy, a query too
 * long for the context, an owner longer than 4096 bytes. Thread-safe: queries on one engine run
 * one at a time (use one engine per thread for parallel queries; the model with its controller
 * and critic, and the memories, can be shared); asking the same engine again from one of this
 * query's callbacks returns INVALID_ARGUMENT. params->owner scopes the query's memory (see
 * struct hmst_engine_query_params). The query and the memories given to the model are literal
 * text: special tokens written in them ("<|endoftext|>", "</mem>") are characters, not tokens. */
HMST_API int hmst_engine_ask(hmst_engine *engine, const char *query, const struct hmst_engine_query_params *params,
                                     struct hmst_engine_result *out_result);

/* Whether the engine has a trained controller / a critic. Thread-safe. */
HMST_API int hmst_engine_info(const hmst_engine *engine, bool *has_controller, bool *has_critic, int32_t *exit_layer);
/* ---- Data-parallel training over MPI ------------------------------------------------------
 *
 * A trainer (hmst_trainer or hmst_memory_trainer) can be one rank of a data-parallel job: every
 * rank holds the whole model and optimizer, computes the gradient of its batch_size rows of a
 * global batch of batch_size x ranks rows, and the gradients are summed with an all-reduce
 * before the identical optimizer step on every rank (effective batch: batch_size x
 * grad_accum_steps x ranks; the schedule counts optimizer steps). Rank r reads rows
 * r*batch_size ..< (r+1)*batch_size of each global batch drawn from the one seeded stream, so
 * 2 ranks x batch B see the windows 1 process x batch 2B sees. Rank 0 alone writes metrics and
 * checkpoints; the others return from hmst_trainer_save without writing.
 *
 * MPI is OpenMPI (Debian's libopenmpi3, libmpi.so.40), loaded with dlopen when a trainer asks
 * for it: libhmst does not link MPI and a single process never needs it. Under MPI every
 * call on a trainer (create, step, evaluate, run, save) is collective: every rank makes it,
 * in the same order, with the same trainer params (but for paths) and the same data. This is
 * checked: create reduces the params' values and a sampled fingerprint of the data (and the
 * facts corpus of a memory trainer), and each collective call first agrees on the call and the
 * step; a difference fails with HMST_STATUS_INVALID_ARGUMENT on every rank, naming the field or
 * the call (a memory trainer's evaluations run on each rank alone and are not collective). A
 * rank whose create fails on its own (a missing file, a bad checkpoint, a state to resume from
 * that is not there) makes every rank's create fail at once: that rank returns its error, the
 * others INVALID_ARGUMENT naming it (no wait for the collective timeout).
 * A collective that does not complete within collective_timeout_s (a rank died or stalled)
 * fails with HMST_STATUS_INTERNAL and a message naming it; the trainer is then unusable and
 * the host should end the job (MPI_Abort), since the other ranks may wait. After such a
 * timeout libhmst keeps the abandoned collective's buffers and no longer finalizes MPI or
 * frees its communicators (MPI could still write into them). */

/* Values of hmst_data_parallel_params.mode. */
enum hmst_data_parallel_mode {
    HMST_DATA_PARALLEL_NONE = 0,      /* one process */
    HMST_DATA_PARALLEL_MPI_WORLD = 1, /* MPI_COMM_WORLD (MPI initialised here unless the host did) */
    HMST_DATA_PARALLEL_MPI_COMM = 2   /* the host's communicator mpi_comm (MPI initialised by the host) */
};

struct hmst_data_parallel_params {
    uint32_t struct_size;           /* set by hmst_data_parallel_default_params(); the whole struct */
    int32_t mode;                   /* enum hmst_data_parallel_mode; default NONE */
    void *mpi_comm;                 /* MODE_MPI_COMM: an OpenMPI MPI_Comm (a pointer), not MPI_COMM_NULL;
                                     * duplicated, not kept */
    double collective_timeout_s;    /* default 300: longest wait for an all-reduce or broadcast; finite, >= 0.001 */
    int32_t bucket_mb;              /* default 16: MiB of gradients per all-reduce bucket, 1 ... 4096 */
    bool numa_rank;                 /* default false: bind this rank's threads and memory to NUMA node
                                     * (local rank mod nodes); do it before loading anything else */
};

/* Thread-safe. */
HMST_API struct hmst_data_parallel_params hmst_data_parallel_default_params(void);

/* This trainer's rank and the number of ranks (0 and 1 for one process). Either out pointer
 * may be NULL. Thread-safe. */
HMST_API int hmst_trainer_get_rank(const hmst_trainer *trainer, int32_t *out_rank, int32_t *out_ranks);

/* The same for a memory trainer. Thread-safe. */
HMST_API int hmst_memory_trainer_get_rank(const hmst_memory_trainer *trainer, int32_t *out_rank, int32_t *out_ranks);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* HMST_H */
