/* check.h: the few macros the C host tests share. Each CHECK counts; main() ends with
 * check_summary(), which prints "N passed, M failed" and returns the exit code. */
#ifndef HMST_TEST_CHECK_H
#define HMST_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (cond) {                                                                          \
            check_passed++;                                                                  \
        } else {                                                                             \
            check_failed++;                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s (last error: \"%s\")\n", __FILE__,     \
                    __LINE__, #cond, hmst_last_error());                                     \
        }                                                                                    \
    } while (0)

/* status equality with a readable failure */
#define CHECK_STATUS(expr, want)                                                             \
    do {                                                                                     \
        int check_rc_ = (expr);                                                              \
        if (check_rc_ == (want)) {                                                           \
            check_passed++;                                                                  \
        } else {                                                                             \
            check_failed++;                                                                  \
            fprintf(stderr, "%s:%d: %s returned %s, want %s (last error: \"%s\")\n",        \
                    __FILE__, __LINE__, #expr, hmst_status_string(check_rc_),                \
                    hmst_status_string(want), hmst_last_error());                            \
        }                                                                                    \
    } while (0)

static int check_summary(const char *suite) {
    printf("%s: %d passed, %d failed\n", suite, check_passed, check_failed);
    return check_failed == 0 ? 0 : 1;
}

#endif
