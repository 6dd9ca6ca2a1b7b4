/*
 * chmst_pool.c: the worker pool behind HMSTCore's parallel loops. Workers sleep on a condition
 * variable between jobs and spin briefly after one, so back-to-back jobs (one per layer during
 * decode) do not pay a futex wake each. The caller likewise spins briefly for the workers to
 * finish before it sleeps. Both spins are bounded (SPIN_ITERATIONS pauses, about 30 us on the
 * Xeon these were measured on), so an idle process goes to sleep and burns no CPU.
 *
 * A worker takes part in a job only if it shows up before the caller has run out of tasks: once
 * the caller's own loop ends it closes the job and waits only for the workers that joined. A
 * worker that is asleep or preempted (a shared machine: other processes on our cores) then
 * costs nothing instead of holding the caller until the scheduler runs it; the job just runs on
 * fewer threads. Which thread runs which task never changes results (tasks are independent).
 */
#define _GNU_SOURCE
#include "chmst_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define SPIN_ITERATIONS 2000

typedef struct {
    pthread_mutex_t run_lock; /* held by the caller that owns the current job */
    pthread_mutex_t m;
    pthread_cond_t cv_work, cv_done;
    pthread_t *threads;
    int n_workers; /* threads besides the caller */
    int stop;
    atomic_uint_fast64_t generation;
    /* current job */
    chmst_task_fn fn;
    void *ctx;
    int64_t n_tasks;
    int job_workers; /* workers taking part: indices 0..<job_workers */
    int caller_waiting; /* the caller sleeps on cv_done (guarded by m) */
    int joined;         /* workers taking part in the current job (guarded by m) */
    int closed;         /* the caller has run out of tasks: no more workers join (guarded by m) */
    atomic_int_fast64_t next;
    atomic_int finished;
    uint64_t start_generation; /* generation when the current workers were created */
} pool_t;

static pool_t pool;

/* the pinning plan, applied to workers when they are created */
static cpu_set_t *pin_sets = NULL;
static int pin_n_sets = 0;

static int apply_pin(int i) {
    if (pin_n_sets == 0 || i >= pool.n_workers) return 0;
    return pthread_setaffinity_np(pool.threads[i], sizeof(cpu_set_t), &pin_sets[i % pin_n_sets]) == 0 ? 0 : 1;
}

static pool_t pool = {
    .run_lock = PTHREAD_MUTEX_INITIALIZER,
    .m = PTHREAD_MUTEX_INITIALIZER,
    .cv_work = PTHREAD_COND_INITIALIZER,
    .cv_done = PTHREAD_COND_INITIALIZER,
};

static void run_tasks(chmst_task_fn fn, void *ctx, int64_t n) {
    for (;;) {
        int64_t i = atomic_fetch_add(&pool.next, 1);
        if (i >= n) break;
        fn(ctx, i);
    }
}

static void *worker_main(void *arg) {
    int index = (int)(intptr_t)arg;
    /* Not atomic_load(&pool.generation): a job may already have been posted by the time this
     * thread runs, and it must take part in that job, not wait for the next one. */
    uint64_t seen = pool.start_generation;
    for (;;) {
        /* spin a little for the next job before sleeping */
        for (int s = 0; s < SPIN_ITERATIONS && atomic_load(&pool.generation) == seen; s++) {
#if defined(__x86_64__)
            __builtin_ia32_pause();
#endif
        }
        pthread_mutex_lock(&pool.m);
        while (atomic_load(&pool.generation) == seen && !pool.stop) pthread_cond_wait(&pool.cv_work, &pool.m);
        if (pool.stop) {
            pthread_mutex_unlock(&pool.m);
            return NULL;
        }
        seen = atomic_load(&pool.generation);
        int take_part = index < pool.job_workers && !pool.closed;
        if (take_part) pool.joined++;
        chmst_task_fn fn = pool.fn;
        void *ctx = pool.ctx;
        int64_t n = pool.n_tasks;
        pthread_mutex_unlock(&pool.m);
        if (!take_part) continue;
        run_tasks(fn, ctx, n);
        /* the last of the joined workers wakes the caller if it went to sleep (joined is final
         * by then: the caller closes the job before it sleeps) */
        pthread_mutex_lock(&pool.m);
        if (atomic_fetch_add(&pool.finished, 1) + 1 == pool.joined && pool.caller_waiting) pthread_cond_signal(&pool.cv_done);
        pthread_mutex_unlock(&pool.m);
    }
}

static void stop_workers_locked(void) {
    pthread_mutex_lock(&pool.m);
    pool.stop = 1;
    pthread_cond_broadcast(&pool.cv_work);
    pthread_mutex_unlock(&pool.m);
    for (int i = 0; i < pool.n_workers; i++) pthread_join(pool.threads[i], NULL);
    free(pool.threads);
    pool.threads = NULL;
    pool.n_workers = 0;
    pool.stop = 0;
}

int chmst_pool_set_threads(int n) {
    if (n < 1) n = 1;
    pthread_mutex_lock(&pool.run_lock);
    int status = 0;
    if (n - 1 != pool.n_workers) {
        stop_workers_locked();
        int want = n - 1;
        pool.start_generation = atomic_load(&pool.generation);
        if (want > 0) {
            pool.threads = calloc((size_t)want, sizeof(pthread_t));
            if (pool.threads == NULL) want = 0, status = -1;
            for (int i = 0; i < want; i++) {
                if (pthread_create(&pool.threads[i], NULL, worker_main, (void *)(intptr_t)i) != 0) {
                    status = -1;
                    break;
                }
                pool.n_workers = i + 1;
                /* a name lets tools find the workers in /proc/PID/task/<tid>/comm (tools/numa-vm) */
                char name[16];
                snprintf(name, sizeof name, "hmst-w%d", i);
                pthread_setname_np(pool.threads[i], name);
                apply_pin(i);
            }
        }
    }
    pthread_mutex_unlock(&pool.run_lock);
    return status;
}

int chmst_pool_get_threads(void) {
    pthread_mutex_lock(&pool.run_lock);
    int n = pool.n_workers + 1;
    pthread_mutex_unlock(&pool.run_lock);
    return n;
}

void chmst_pool_run(int64_t n_tasks, int max_threads, chmst_task_fn fn, void *ctx) {
    if (n_tasks <= 0 || fn == NULL) return;
    if (max_threads <= 1 || n_tasks == 1 || pthread_mutex_trylock(&pool.run_lock) != 0) {
        for (int64_t i = 0; i < n_tasks; i++) fn(ctx, i);
        return;
    }
    int workers = pool.n_workers;
    if (workers > max_threads - 1) workers = max_threads - 1;
    if (workers > n_tasks - 1) workers = (int)(n_tasks - 1);
    if (workers <= 0) {
        pthread_mutex_unlock(&pool.run_lock);
        for (int64_t i = 0; i < n_tasks; i++) fn(ctx, i);
        return;
    }
    pthread_mutex_lock(&pool.m);
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n_tasks = n_tasks;
    pool.job_workers = workers;
    atomic_store(&pool.next, 0);
    atomic_store(&pool.finished, 0);
    pool.joined = 0;
    pool.closed = 0;
    atomic_fetch_add(&pool.generation, 1);
    pthread_cond_broadcast(&pool.cv_work);
    pthread_mutex_unlock(&pool.m);

    run_tasks(fn, ctx, n_tasks);

    /* every task is taken: close the job and wait for the workers that joined it */
    pthread_mutex_lock(&pool.m);
    pool.closed = 1;
    int joined = pool.joined;
    pthread_mutex_unlock(&pool.m);
    /* they usually finish within microseconds of the caller: spin before sleeping */
    for (int s = 0; s < SPIN_ITERATIONS && atomic_load(&pool.finished) < joined; s++) {
#if defined(__x86_64__)
        __builtin_ia32_pause();
#endif
    }
    if (atomic_load(&pool.finished) < joined) {
        pthread_mutex_lock(&pool.m);
        pool.caller_waiting = 1;
        while (atomic_load(&pool.finished) < joined) pthread_cond_wait(&pool.cv_done, &pool.m);
        pool.caller_waiting = 0;
        pthread_mutex_unlock(&pool.m);
    }
    pthread_mutex_unlock(&pool.run_lock);
}

int chmst_pool_pin(const int32_t *cpus, const int32_t *offsets, int n_sets) {
    pthread_mutex_lock(&pool.run_lock);
    free(pin_sets);
    pin_sets = NULL;
    pin_n_sets = 0;
    int failed = 0;
    if (n_sets > 0 && cpus != NULL && offsets != NULL) {
        pin_sets = calloc((size_t)n_sets, sizeof(cpu_set_t));
        if (pin_sets != NULL) {
            for (int s = 0; s < n_sets; s++) {
                CPU_ZERO(&pin_sets[s]);
                for (int32_t k = offsets[s]; k < offsets[s + 1]; k++)
                    if (cpus[k] >= 0 && cpus[k] < CPU_SETSIZE) CPU_SET(cpus[k], &pin_sets[s]);
            }
            pin_n_sets = n_sets;
        }
    }
    if (pin_n_sets > 0) {
        for (int i = 0; i < pool.n_workers; i++) failed += apply_pin(i);
    } else {
        cpu_set_t all;
        CPU_ZERO(&all);
        if (sched_getaffinity(0, sizeof all, &all) != 0) CPU_ZERO(&all);
        for (int i = 0; i < pool.n_workers; i++)
            failed += pthread_setaffinity_np(pool.threads[i], sizeof all, &all) == 0 ? 0 : 1;
    }
    pthread_mutex_unlock(&pool.run_lock);
    return failed;
}

int chmst_pool_worker_cpus(int worker, int32_t *cpus, int cap) {
    pthread_mutex_lock(&pool.run_lock);
    int n = -1;
    if (worker >= 0 && worker < pool.n_workers) {
        cpu_set_t set;
        if (pthread_getaffinity_np(pool.threads[worker], sizeof set, &set) == 0) {
            n = 0;
            for (int c = 0; c < CPU_SETSIZE; c++)
                if (CPU_ISSET(c, &set)) {
                    if (n < cap && cpus) cpus[n] = c;
                    n++;
                }
        }
    }
    pthread_mutex_unlock(&pool.run_lock);
    return n;
}
