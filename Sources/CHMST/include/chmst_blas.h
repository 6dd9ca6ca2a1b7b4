/*
 * chmst_blas.h: the OpenBLAS kernel family in use against the CPU's capability (chmst_blas.c).
 */
#ifndef CHMST_BLAS_H
#define CHMST_BLAS_H

#ifdef __cplusplus
extern "C" {
#endif

enum chmst_blas_action {
    CHMST_BLAS_NONE = 0,     /* OpenBLAS's choice was right (or unknown to us): untouched */
    CHMST_BLAS_SWITCHED = 1, /* switched to the CPU's best family (or HMST_BLAS_CORETYPE's) */
    CHMST_BLAS_KEPT = 2,     /* HMST_BLAS_CORETYPE=keep: left as OpenBLAS chose */
    CHMST_BLAS_FAILED = 3    /* a switch was wanted and could not be made; see message */
};

struct chmst_blas_state {
    char core_at_load[32];  /* what OpenBLAS chose when it loaded */
    char core[32];          /* what runs now */
    char best_core[32];     /* the best family this CPU's instruction set allows */
    int best_level;         /* its ISA level: 1 SSE, 2 AVX, 3 AVX2+FMA, 4 AVX-512 */
    int below_capability;   /* 1 if `core` is below best_level */
    int action;             /* enum chmst_blas_action */
    char message[320];      /* what was logged, or "" */
    int thread_timeout;     /* how long OpenBLAS's idle workers spin before they sleep: 2^n cycles
                               (OpenBLAS's OPENBLAS_THREAD_TIMEOUT); 0 when unknown */
    int thread_timeout_set; /* 1 if hmst shortened it at load (see chmst_blas.c) */
};

/* The check, run once per process (at load, by a constructor); later calls return its result. */
const struct chmst_blas_state *chmst_blas_check(void);

/* ISA level of an OpenBLAS x86-64 family name (case-insensitive); 0 if unknown. */
int chmst_blas_core_level(const char *name);

#ifdef __cplusplus
}
#endif

#endif
