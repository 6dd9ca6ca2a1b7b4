/* test_threads.c: the thread-safety promises of hmst.h. The last error is per thread, and the
 * functions documented as thread-safe can run concurrently from many host threads. */
#include <hmst.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "check.h"

#define N_THREADS 8
#define ROUNDS 300

static atomic_int failures;

static void fail_at(int line) {
    if (atomic_fetch_add(&failures, 1) < 5) fprintf(stderr, "test_threads.c:%d: failed (last error: \"%s\")\n", line, hmst_last_error());
}

static void *error_worker(void *arg) {
    int id = (int)(intptr_t)arg;
    for (int r = 0; r < ROUNDS; r++) {
        if (id % 2 == 0) {
            /* fail, then check our own message survives other threads' successes */
            int32_t bad = -1 - id;
            if (hmst_set_n_threads(bad) != HMST_STATUS_INVALID_ARGUMENT) fail_at(__LINE__);
            char want[16];
            snprintf(want, sizeof want, "%d", bad);
            if (strstr(hmst_last_error(), want) == NULL) fail_at(__LINE__);
        } else {
            size_t n = 0;
            if (hmst_system_info_json(NULL, 0, &n) != HMST_STATUS_BUFFER_TOO_SMALL) fail_at(__LINE__);
            char *buf = malloc(n + 1);
            if (buf == NULL || hmst_system_info_json(buf, n + 1, &n) != HMST_STATUS_OK) fail_at(__LINE__);
            else if (hmst_last_error()[0] != '\0') fail_at(__LINE__);
            free(buf);
        }
        if (r % 50 == 0 && hmst_set_n_threads(1 + (id % 3)) != HMST_STATUS_OK) fail_at(__LINE__);
        if (hmst_get_n_threads() < 1) fail_at(__LINE__);
    }
    return NULL;
}

int main(void) {
    pthread_t t[N_THREADS];
    for (int i = 0; i < N_THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, error_worker, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < N_THREADS; i++) pthread_join(t[i], NULL);
    CHECK(atomic_load(&failures) == 0);
    CHECK_STATUS(hmst_set_n_threads(0), HMST_STATUS_OK);
    return check_summary("test_threads");
}
