/* host_comm.c: a host program that already uses MPI trains inside its own communicator
 * (HMST_DATA_PARALLEL_MPI_COMM, ranks reversed by MPI_Comm_split so hmst must use that
 * communicator). Built with mpicc and run under mpirun -np 2 by Tests/mpi/test_python_mpi.sh. */
#include <hmst.h>
#include <mpi.h>
#include <stdio.h>

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank = 0, size = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm mine;
    MPI_Comm_split(MPI_COMM_WORLD, 0, size - 1 - rank, &mine);  /* reversed ranks: hmst must use this comm */
    struct hmst_data_parallel_params dp = hmst_data_parallel_default_params();
    dp.mode = HMST_DATA_PARALLEL_MPI_COMM;
    dp.mpi_comm = (void *)mine;
    dp.collective_timeout_s = 60;
    struct hmst_trainer_params p = hmst_trainer_default_params();
    p.train_data = argv[1];
    p.output_dir = argv[2];
    p.seq_len = 16;
    p.batch_size = 2;
    p.steps_per_epoch = 4;
    p.learning_rate = 1e-3f;
    p.data_parallel = &dp;
    hmst_trainer *t = NULL;
    int failed = 0;
    if (hmst_trainer_create(&p, &t) != HMST_STATUS_OK) {
        fprintf(stderr, "rank %d: create: %s\n", rank, hmst_last_error());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    int32_t r = -1, n = -1;
    hmst_trainer_get_rank(t, &r, &n);
    if (r != size - 1 - rank || n != size) { fprintf(stderr, "rank %d: hmst says rank %d of %d\n", rank, r, n); failed = 1; }
    double loss[2] = {0, 0}, lo[2], hi[2];
    for (int i = 0; i < 2; i++) {
        if (hmst_trainer_step(t, &loss[i]) != HMST_STATUS_OK) {
            fprintf(stderr, "rank %d: step: %s\n", rank, hmst_last_error());
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
    }
    /* the host's own collectives still work beside hmst's, and every rank saw the same losses */
    MPI_Allreduce(loss, lo, 2, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(loss, hi, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (lo[0] != hi[0] || lo[1] != hi[1]) { fprintf(stderr, "rank %d: losses differ across ranks\n", rank); failed = 1; }
    hmst_trainer_free(t);
    MPI_Comm_free(&mine);
    if (rank == 0) printf("host_comm: %d ranks in the host's communicator, losses %.4f %.4f %s\n", size, loss[0], loss[1], failed ? "FAIL" : "ok");
    int any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return any;
}
