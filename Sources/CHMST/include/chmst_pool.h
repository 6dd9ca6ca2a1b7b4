/*
 * chmst_pool.h: hmst's own worker pool (internal). A fixed set of pthreads that run
 * "task i of n" jobs for Swift loops. One job at a time: a caller that finds the pool busy
 * (another host thread, or a nested call from inside a task) runs its tasks inline, so there is
 * no deadlock and no oversubscription.
 */
#ifndef CHMST_POOL_H
#define CHMST_POOL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*chmst_task_fn)(void *ctx, int64_t task);

/* Total threads including the caller (>= 1). Resizing waits for a running job to finish.
 * Returns 0 or -1 if worker threads could not be created (the pool then has fewer). */
int chmst_pool_set_threads(int n);
int chmst_pool_get_threads(void);

/* Runs fn(ctx, i) for i in 0..<n_tasks on up to max_threads threads (the caller included),
 * returning when all have finished. Tasks are handed out dynamically in index order. */
void chmst_pool_run(int64_t n_tasks, int max_threads, chmst_task_fn fn, void *ctx);

/* Pins the worker threads: worker i runs on the CPUs cpus[offsets[s]..offsets[s+1]) with
 * s = i % n_sets (NUMA placement spreads workers over nodes or keeps them on one). Later
 * resizes keep the pinning. n_sets == 0 unpins (every CPU of the process mask). Returns the
 * number of workers that could not be pinned. */
int chmst_pool_pin(const int32_t *cpus, const int32_t *offsets, int n_sets);

/* CPUs worker i may run on, written to cpus (up to cap); returns the count, or -1. */
int chmst_pool_worker_cpus(int worker, int32_t *cpus, int cap);

#ifdef __cplusplus
}
#endif

#endif
