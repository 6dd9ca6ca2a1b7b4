/* test_data_parallel.c: the data-parallel params of the trainer API (one process: the MPI path
 * is exercised under mpirun by Tests/mpi/test_data_parallel.sh) and the single commit point
 * of training checkpoints: checkpoint.json written last, a directory with foreign files not
 * replaced, and resume refusing a directory whose parts come from different saves. */
#include <hmst.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"

#ifndef FIXTURE_DIR
#define FIXTURE_DIR "build/fixtures"
#endif

#define OUT "/tmp/hmst-ctest-dp"

static int copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    int ok = in && out;
    char buf[1 << 16];
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, n, out) == n;
    if (in) fclose(in);
    if (out) fclose(out);
    return ok;
}

int main(void) {
    hmst_log_set_level(HMST_LOG_ERROR);
    if (system("rm -rf " OUT) != 0) return 1;

    struct hmst_data_parallel_params dp = hmst_data_parallel_default_params();
    CHECK(dp.struct_size == sizeof dp && dp.mode == HMST_DATA_PARALLEL_NONE && dp.mpi_comm == NULL);
    CHECK(dp.collective_timeout_s == 300 && dp.bucket_mb == 16 && !dp.numa_rank);

    struct hmst_trainer_params p = hmst_trainer_default_params();
    CHECK(p.data_parallel == NULL);
    p.train_data = FIXTURE_DIR "/data";
    p.output_dir = OUT;
    p.seq_len = 16;
    p.batch_size = 2;
    p.steps_per_epoch = 4;
    p.learning_rate = 1e-3f;
    p.data_parallel = &dp;
    hmst_trainer *t = NULL;

    /* bad data-parallel params name the field */
    dp.mode = 7;
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "hmst_data_parallel_mode") != NULL);
    dp.mode = HMST_DATA_PARALLEL_MPI_COMM;
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "mpi_comm is NULL") != NULL);
    dp.mode = HMST_DATA_PARALLEL_NONE;
    dp.collective_timeout_s = 0;
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "collective_timeout_s") != NULL);
    dp.collective_timeout_s = 1.0 / 0.0;   /* infinite: refused as not finite, not as "must be > 0" */
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "finite") != NULL);
    dp.collective_timeout_s = 60;
    dp.bucket_mb = 0;
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    dp.bucket_mb = 16;
    /* a struct_size that stops before mode would leave the mode the host set at NONE: one
     * process where the host asked for MPI (this struct has had every field from the start) */
    dp.mode = HMST_DATA_PARALLEL_MPI_WORLD;
    dp.struct_size = 4;
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "struct_size is 4") != NULL);
    dp.struct_size = sizeof dp;
    dp.mode = HMST_DATA_PARALLEL_NONE;

    /* one process: rank 0 of 1 */
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_OK);
    if (!t) return check_summary("test_data_parallel");
    int32_t rank = -1, ranks = -1;
    CHECK_STATUS(hmst_trainer_get_rank(t, &rank, &ranks), HMST_STATUS_OK);
    CHECK(rank == 0 && ranks == 1);
    CHECK_STATUS(hmst_trainer_get_rank(t, NULL, NULL), HMST_STATUS_OK);
    CHECK_STATUS(hmst_trainer_get_rank(NULL, &rank, &ranks), HMST_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(hmst_memory_trainer_get_rank(NULL, &rank, &ranks), HMST_STATUS_INVALID_ARGUMENT);

    /* the commit point: two saves of different steps; the manifest names every part */
    double loss = 0;
    CHECK_STATUS(hmst_trainer_step(t, &loss), HMST_STATUS_OK);
    CHECK_STATUS(hmst_trainer_save(t, OUT "/a"), HMST_STATUS_OK);
    CHECK(access(OUT "/a/checkpoint.json", F_OK) == 0);
    CHECK_STATUS(hmst_trainer_step(t, &loss), HMST_STATUS_OK);
    CHECK_STATUS(hmst_trainer_save(t, OUT "/b"), HMST_STATUS_OK);
    CHECK_STATUS(hmst_trainer_save(t, OUT "/b"), HMST_STATUS_OK); /* replacing a checkpoint is fine */
    /* a directory with files a checkpoint does not write is never replaced */
    CHECK(system("mkdir -p " OUT "/mine && echo keep > " OUT "/mine/notes.txt") == 0);
    CHECK_STATUS(hmst_trainer_save(t, OUT "/mine"), HMST_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(hmst_last_error(), "notes.txt") != NULL);
    CHECK(access(OUT "/mine/notes.txt", F_OK) == 0);
    hmst_trainer_free(t);
    t = NULL;

    /* resume from a whole checkpoint works; from a mix of two saves it is refused */
    p.resume_from = OUT "/a";
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_OK);
    hmst_trainer_free(t);
    t = NULL;
    CHECK(copy_file(OUT "/b/optimizer.safetensors", OUT "/a/optimizer.safetensors"));
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_BAD_FORMAT);
    CHECK(strstr(hmst_last_error(), "do not belong together") != NULL);
    CHECK(strstr(hmst_last_error(), "optimizer.safetensors") != NULL);
    /* without the manifest nothing proves the parts belong together */
    CHECK(unlink(OUT "/b/checkpoint.json") == 0);
    p.resume_from = OUT "/b";
    CHECK_STATUS(hmst_trainer_create(&p, &t), HMST_STATUS_BAD_FORMAT);
    CHECK(strstr(hmst_last_error(), "no checkpoint.json") != NULL);
    CHECK(t == NULL);
    return check_summary("test_data_parallel");
}
