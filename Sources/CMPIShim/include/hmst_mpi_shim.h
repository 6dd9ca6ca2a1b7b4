/*
 * hmst_mpi_shim.h: OpenMPI, loaded at run time.
 *
 * Why it exists: data-parallel training (HMSTCore/Train/Distributed) needs MPI only when a
 * run is started by mpirun or a host hands in its communicator; a single process must neither
 * link nor find libmpi. So nothing here is linked against MPI: hmstmpi_load() dlopens
 * Debian's libmpi.so.40 (OpenMPI 4.x ABI) and resolves the few functions and predefined
 * objects we use with dlsym. In OpenMPI, MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM ... are the
 * addresses of global objects (ompi_mpi_comm_world ...), so dlsym gives the handles directly.
 * MPICH's ABI (integer handles) is not supported.
 *
 * Handles are passed as void * (OpenMPI's MPI_Comm and MPI_Request are pointers). Every call
 * returns an MPI error code (0 = success) after hmstmpi_load() succeeded; the communicators
 * we use get MPI_ERRORS_RETURN, so failures come back as codes instead of aborting.
 * Symbols are prefixed hmstmpi_ and stay local to libhmst. Not thread-safe: one thread
 * (the training thread) makes every MPI call (MPI_THREAD_FUNNELED).
 */
#ifndef HMST_MPI_SHIM_H
#define HMST_MPI_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Datatypes and reductions the shim knows. */
enum { HMSTMPI_FLOAT = 0, HMSTMPI_DOUBLE = 1 };
enum { HMSTMPI_SUM = 0, HMSTMPI_MAX = 1, HMSTMPI_MIN = 2 };

/* Loads libmpi (the copy already in the process if a host loaded it, else libmpi.so.40,
 * or the path in $HMST_MPI_LIBRARY) and resolves every symbol. Returns 0, or -1 with a
 * reason in err[cap]. Idempotent. */
int hmstmpi_load(char *err, size_t cap);

/* 1 when libmpi is loaded. */
int hmstmpi_loaded(void);

/* MPI_Init_thread(MPI_THREAD_FUNNELED) unless MPI is already initialised (by a host);
 * *we_initialized says whether we did (then hmstmpi_finalize is ours to call). */
int hmstmpi_init(int *we_initialized);
int hmstmpi_finalize(void);
/* After a collective's deadline passed with its request still posted: hmstmpi_finalize and
 * hmstmpi_comm_free do nothing from then on (either would progress the abandoned request). */
void hmstmpi_mark_abandoned(void);
/* Whether comm is MPI_COMM_NULL. */
int hmstmpi_comm_is_null(void *comm);

/* MPI_COMM_WORLD's handle. */
void *hmstmpi_comm_world(void);

/* MPI_Comm_dup + MPI_ERRORS_RETURN on the copy: the library's own communicator, so our
 * collectives never match a host's messages. */
int hmstmpi_comm_dup(void *comm, void **out);
int hmstmpi_comm_free(void **comm);
int hmstmpi_comm_rank(void *comm, int *rank);
int hmstmpi_comm_size(void *comm, int *size);

/* Non-blocking collectives; completion through hmstmpi_test. In-place all-reduce. */
int hmstmpi_iallreduce_inplace(void *buf, int count, int dtype, int op, void *comm, void **request);
int hmstmpi_ibcast(void *buf, int count, int dtype, int root, void *comm, void **request);
int hmstmpi_ibarrier(void *comm, void **request);
/* *done = 1 when the request completed (and was freed). */
int hmstmpi_test(void **request, int *done);

/* Ends every process of the communicator's job (mpirun's ranks included). */
int hmstmpi_abort(void *comm, int code);

/* MPI_Error_string into out[cap]. */
void hmstmpi_error_string(int code, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
