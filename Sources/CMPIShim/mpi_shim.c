/* OpenMPI through dlopen/dlsym: see include/hmst_mpi_shim.h for why. */
#define _GNU_SOURCE
#include "hmst_mpi_shim.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* OpenMPI 4.x constants (mpi.h): MPI_THREAD_FUNNELED = 1, MPI_STATUS_IGNORE = NULL,
 * MPI_MAX_ERROR_STRING = 256. */
#define OMPI_THREAD_FUNNELED 1
#define OMPI_MAX_ERROR_STRING 256

typedef void *mpi_handle;

static void *lib;
static int (*p_initialized)(int *);
static int (*p_finalized)(int *);
static int (*p_init_thread)(int *, char ***, int, int *);
static int (*p_finalize)(void);
static int (*p_comm_dup)(mpi_handle, mpi_handle *);
static int (*p_comm_free)(mpi_handle *);
static int (*p_comm_rank)(mpi_handle, int *);
static int (*p_comm_size)(mpi_handle, int *);
static int (*p_comm_set_errhandler)(mpi_handle, mpi_handle);
static int (*p_iallreduce)(const void *, void *, int, mpi_handle, mpi_handle, mpi_handle, mpi_handle *);
static int (*p_ibcast)(void *, int, mpi_handle, int, mpi_handle, mpi_handle *);
static int (*p_ibarrier)(mpi_handle, mpi_handle *);
static int (*p_test)(mpi_handle *, int *, void *);
static int (*p_abort)(mpi_handle, int);
static int (*p_error_string)(int, char *, int *);
static mpi_handle o_comm_world, o_comm_null, o_float, o_double, o_sum, o_max, o_min, o_errors_return, o_in_place;

static void *sym(const char *name, char *err, size_t cap, int *failed) {
    void *p = dlsym(lib, name);
    if (!p && !*failed) {
        snprintf(err, cap, "libmpi has no symbol %s (hmst needs OpenMPI 4.x, Debian's libopenmpi3)", name);
        *failed = 1;
    }
    return p;
}

/* A predefined handle (MPI_COMM_WORLD, MPI_DOUBLE, MPI_MAX, ...): an object, not a function.
 * A host executable built with mpicc that names one holds it by copy relocation: libmpi
 * initialises that copy at MPI_Init (through its GOT) and leaves its own definition, which
 * dlsym(lib, ...) returns, as it was: MPI_MAX found that way had no reduction functions and
 * libnbc called NULL (Tests/mpi/host_comm.c). The global scope's definition comes first. */
static void *obj(const char *name, char *err, size_t cap, int *failed) {
    void *p = dlsym(RTLD_DEFAULT, name);
    return p ? p : sym(name, err, cap, failed);
}

int hmstmpi_load(char *err, size_t cap) {
    if (lib) return 0;
    const char *path = getenv("HMST_MPI_LIBRARY");
    void *h = NULL;
    if (path && *path) {
        h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    } else {
        /* a host that uses MPI already has it loaded: take that copy */
        h = dlopen("libmpi.so.40", RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
        /* RTLD_GLOBAL: OpenMPI's plugins resolve libmpi's symbols from the global scope */
        if (!h) h = dlopen("libmpi.so.40", RTLD_NOW | RTLD_GLOBAL);
    }
    if (!h) {
        const char *e = dlerror();
        snprintf(err, cap, "cannot load OpenMPI (%s): %s; install Debian's openmpi-bin and libopenmpi-dev",
                 path && *path ? path : "libmpi.so.40", e ? e : "unknown error");
        return -1;
    }
    lib = h;
    int failed = 0;
    *(void **)&p_initialized = sym("MPI_Initialized", err, cap, &failed);
    *(void **)&p_finalized = sym("MPI_Finalized", err, cap, &failed);
    *(void **)&p_init_thread = sym("MPI_Init_thread", err, cap, &failed);
    *(void **)&p_finalize = sym("MPI_Finalize", err, cap, &failed);
    *(void **)&p_comm_dup = sym("MPI_Comm_dup", err, cap, &failed);
    *(void **)&p_comm_free = sym("MPI_Comm_free", err, cap, &failed);
    *(void **)&p_comm_rank = sym("MPI_Comm_rank", err, cap, &failed);
    *(void **)&p_comm_size = sym("MPI_Comm_size", err, cap, &failed);
    *(void **)&p_comm_set_errhandler = sym("MPI_Comm_set_errhandler", err, cap, &failed);
    *(void **)&p_iallreduce = sym("MPI_Iallreduce", err, cap, &failed);
    *(void **)&p_ibcast = sym("MPI_Ibcast", err, cap, &failed);
    *(void **)&p_ibarrier = sym("MPI_Ibarrier", err, cap, &failed);
    *(void **)&p_test = sym("MPI_Test", err, cap, &failed);
    *(void **)&p_abort = sym("MPI_Abort", err, cap, &failed);
    *(void **)&p_error_string = sym("MPI_Error_string", err, cap, &failed);
    o_comm_world = obj("ompi_mpi_comm_world", err, cap, &failed);
    o_comm_null = obj("ompi_mpi_comm_null", err, cap, &failed);
    o_float = obj("ompi_mpi_float", err, cap, &failed);
    o_double = obj("ompi_mpi_double", err, cap, &failed);
    o_sum = obj("ompi_mpi_op_sum", err, cap, &failed);
    o_max = obj("ompi_mpi_op_max", err, cap, &failed);
    o_min = obj("ompi_mpi_op_min", err, cap, &failed);
    o_errors_return = obj("ompi_mpi_errors_return", err, cap, &failed);
    if (failed) {
        dlclose(h);
        lib = NULL;
        return -1;
    }
    /* OpenMPI's MPI_IN_PLACE is ((void *) 1) */
    o_in_place = (mpi_handle)1;
    return 0;
}

int hmstmpi_loaded(void) { return lib != NULL; }

int hmstmpi_init(int *we_initialized) {
    int flag = 0, rc = p_initialized(&flag);
    *we_initialized = 0;
    if (rc != 0 || flag) return rc;
    int provided = 0;
    rc = p_init_thread(NULL, NULL, OMPI_THREAD_FUNNELED, &provided);
    if (rc == 0) *we_initialized = 1;
    return rc;
}

/* Set when a collective was abandoned (its deadline passed with the request still posted):
 * MPI_Finalize, or freeing the communicator, would progress it into buffers the process may
 * have freed since, so neither happens after that. */
static int abandoned;
void hmstmpi_mark_abandoned(void) { abandoned = 1; }

int hmstmpi_finalize(void) {
    int flag = 0;
    p_finalized(&flag);
    return flag || abandoned ? 0 : p_finalize();
}

int hmstmpi_comm_is_null(void *comm) { return comm == o_comm_null; }

void *hmstmpi_comm_world(void) { return o_comm_world; }

int hmstmpi_comm_dup(void *comm, void **out) {
    /* errors on the host's communicator during the dup itself return codes too */
    mpi_handle c = NULL;
    int rc = p_comm_dup(comm, &c);
    if (rc != 0) return rc;
    rc = p_comm_set_errhandler(c, o_errors_return);
    if (rc != 0) { p_comm_free(&c); return rc; }
    *out = c;
    return 0;
}

int hmstmpi_comm_free(void **comm) {
    /* after MPI_Finalize (a host's, say mpi4py's at exit, before a trainer is collected)
     * MPI_Comm_free aborts the job: the communicator is gone with MPI anyway */
    int flag = 0;
    p_finalized(&flag);
    return flag || abandoned ? 0 : p_comm_free(comm);
}
int hmstmpi_comm_rank(void *comm, int *rank) { return p_comm_rank(comm, rank); }
int hmstmpi_comm_size(void *comm, int *size) { return p_comm_size(comm, size); }

static mpi_handle dtype_of(int d) { return d == HMSTMPI_DOUBLE ? o_double : o_float; }
static mpi_handle op_of(int o) { return o == HMSTMPI_MAX ? o_max : o == HMSTMPI_MIN ? o_min : o_sum; }

int hmstmpi_iallreduce_inplace(void *buf, int count, int dtype, int op, void *comm, void **request) {
    return p_iallreduce(o_in_place, buf, count, dtype_of(dtype), op_of(op), comm, request);
}

int hmstmpi_ibcast(void *buf, int count, int dtype, int root, void *comm, void **request) {
    return p_ibcast(buf, count, dtype_of(dtype), root, comm, request);
}

int hmstmpi_ibarrier(void *comm, void **request) { return p_ibarrier(comm, request); }

int hmstmpi_test(void **request, int *done) { return p_test(request, done, NULL); }

int hmstmpi_abort(void *comm, int code) { return p_abort(comm, code); }

void hmstmpi_error_string(int code, char *out, size_t cap) {
    if (cap == 0) return;
    char buf[OMPI_MAX_ERROR_STRING + 1] = {0};
    int len = 0;
    if (lib && p_error_string(code, buf, &len) == 0) {
        snprintf(out, cap, "%s", buf);
    } else {
        snprintf(out, cap, "MPI error %d", code);
    }
}
