/* search_c.c: hmst_semantic_search timed from C, for benchmarks/vector_search.py.
 *
 *   search_c MEMORY_DIR QUERIES.f32 NQ DIM K NPROBE THREADS OUT_IDS.i64
 *
 * Loads a memory saved by the driver, searches the NQ queries [NQ, DIM] (float32, raw) as one
 * batch (repeated for >= 1 s) and one query per call (repeated for >= 1 s), writes the batched
 * result ids [NQ, K] (int64, raw) for the driver's recall, and prints one JSON line. */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "hmst.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int fail(const char *what) {
    fprintf(stderr, "search_c: %s: %s\n", what, hmst_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr, "usage: search_c MEMORY_DIR QUERIES.f32 NQ DIM K NPROBE THREADS OUT_IDS.i64\n");
        return 2;
    }
    long nq = atol(argv[3]), dim = atol(argv[4]);
    int k = atoi(argv[5]), nprobe = atoi(argv[6]), threads = atoi(argv[7]);
    float *q = malloc(sizeof(float) * (size_t)(nq * dim));
    struct hmst_memory_hit *hits = malloc(sizeof(struct hmst_memory_hit) * (size_t)(nq * k));
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)(nq * k));
    FILE *f = fopen(argv[2], "rb");
    if (!q || !hits || !ids || !f || fread(q, sizeof(float), (size_t)(nq * dim), f) != (size_t)(nq * dim)) {
        fprintf(stderr, "search_c: cannot read %s\n", argv[2]);
        return 1;
    }
    fclose(f);
    hmst_semantic *mem = NULL;
    if (hmst_semantic_load(argv[1], &mem) != HMST_STATUS_OK) return fail("load");
    if (hmst_set_n_threads(threads) != HMST_STATUS_OK) return fail("set_n_threads");
    if (hmst_semantic_search(mem, q, nq, k, nprobe, hits) != HMST_STATUS_OK) return fail("warm-up search");

    /* best of three windows of >= 0.4 s each, as the Python sides */
    double batched_qps = 0, single_qps = 0;
    for (int w = 0; w < 3; w++) {
        long batches = 0;
        double t0 = now_s(), t1;
        do {
            if (hmst_semantic_search(mem, q, nq, k, nprobe, hits) != HMST_STATUS_OK) return fail("batched search");
            batches++;
            t1 = now_s();
        } while (t1 - t0 < 0.4);
        double qps = (double)(batches * nq) / (t1 - t0);
        if (qps > batched_qps) batched_qps = qps;
    }
    for (long i = 0; i < nq * k; i++) ids[i] = hits[i].id;

    for (int w = 0; w < 3; w++) {
        long singles = 0;
        double t0 = now_s(), t1;
        do {
            for (long i = 0; i < nq; i++) {
                if (hmst_semantic_search(mem, q + i * dim, 1, k, nprobe, hits + i * k) != HMST_STATUS_OK)
                    return fail("single search");
            }
            singles += nq;
            t1 = now_s();
        } while (t1 - t0 < 0.4);
        double qps = (double)singles / (t1 - t0);
        if (qps > single_qps) single_qps = qps;
    }

    f = fopen(argv[8], "wb");
    if (!f || fwrite(ids, sizeof(int64_t), (size_t)(nq * k), f) != (size_t)(nq * k) || fclose(f) != 0) {
        fprintf(stderr, "search_c: cannot write %s\n", argv[8]);
        return 1;
    }
    printf("{\"batched_qps\": %.1f, \"single_qps\": %.1f}\n", batched_qps, single_qps);
    hmst_semantic_free(mem);
    free(q); free(hits); free(ids);
    return 0;
}
