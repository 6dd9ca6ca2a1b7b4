/*
 * chmst_blas.c: makes OpenBLAS run kernels that match the CPU, whatever the host process is.
 * Debian's OpenBLAS 0.3.21 is a DYNAMIC_ARCH build that picks its kernel family from CPUID once,
 * at load; on CPUs newer than its tables (Intel family 6 model 207, for one) it falls back to
 * Prescott (SSE3) kernels, 5-7x slower. A constructor here runs right after OpenBLAS's own (it
 * is a dependency of libhmst.so, so the loader initialises it first), compares the family in use
 * with what the CPU's instruction set allows and, when it is below, re-runs OpenBLAS's dynamic
 * initialisation with the right family. FAISS calls the same OpenBLAS, so it gains too.
 *
 * What the environment means (documented in hmst.h and the README):
 *   OPENBLAS_CORETYPE     OpenBLAS's own knob; a family below the CPU's capability is still
 *                         upgraded (so OPENBLAS_CORETYPE=Prescott reproduces a misdetection on
 *                         any machine and shows the fix), one at or above it is kept.
 *   HMST_BLAS_CORETYPE=keep   never switch: keep what OpenBLAS chose (a warning says so).
 *   HMST_BLAS_CORETYPE=NAME   use that OpenBLAS family (e.g. Haswell) if the CPU can run it.
 * The switch uses only OpenBLAS's exported gotoblas_dynamic_quit/_init, found with dlsym in
 * the very library that serves cblas_sgemm, so a BLAS without them is reported, not touched.
 *
 * The same constructor shortens how long OpenBLAS's idle worker threads spin (sched_yield in a
 * loop) after a threaded call before they sleep: 2^28 cycles by default, which measured 25-30 ms
 * of a core taken from hmst's own decode threads after every prompt (1.5x slower decode of a
 * small model for those milliseconds, Zen 5). hmst asks for 2^HMST_BLAS_THREAD_TIMEOUT (about
 * 0.3 ms), unless OPENBLAS_THREAD_TIMEOUT or GOTO_THREAD_TIMEOUT is set: OpenBLAS's own knob wins.
 */
#define _GNU_SOURCE
#include "chmst_blas.h"
#include "chmst.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Weak: resolved when OpenBLAS is linked (always, for libhmst and its tools); never called if not. */
extern char *openblas_get_corename(void) __attribute__((weak));

static struct chmst_blas_state state;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* ISA level of an OpenBLAS x86-64 kernel family: 1 SSE, 2 AVX, 3 AVX2+FMA, 4 AVX-512; 0 unknown. */
int chmst_blas_core_level(const char *name) {
    static const struct { const char *name; int level; } table[] = {
        {"Katmai", 1},      {"Coppermine", 1}, {"Northwood", 1},  {"Prescott", 1},   {"Banias", 1},
        {"Atom", 1},        {"Core2", 1},      {"Penryn", 1},     {"Dunnington", 1}, {"Nehalem", 1},
        {"Athlon", 1},      {"Opteron", 1},    {"Opteron_SSE3", 1}, {"Barcelona", 1}, {"Nano", 1},
        {"Bobcat", 1},      {"Sandybridge", 2}, {"Bulldozer", 2}, {"Piledriver", 2}, {"Steamroller", 2},
        {"Haswell", 3},     {"Excavator", 3},  {"Zen", 3},        {"SkylakeX", 4},   {"Cooperlake", 4},
        {"SapphireRapids", 4},
    };
    if (name == NULL) return 0;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcasecmp(name, table[i].name) == 0) return table[i].level;
    return 0;
}

/* The best family this CPU can run, from CPUID, with its level; NULL when nothing beats SSE. */
static const char *best_core(int *level) {
    *level = 1;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512cd")) {
        *level = 4;
        /* Cooperlake = SkylakeX's kernels plus the bf16 ones; same sgemm either way. */
        return __builtin_cpu_supports("avx512bf16") ? "Cooperlake" : "SkylakeX";
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        *level = 3;
        return __builtin_cpu_is("amd") ? "Zen" : "Haswell";
    }
    if (__builtin_cpu_supports("avx")) {
        *level = 2;
        return "Sandybridge";
    }
#endif
    return NULL;
}

static const char *current_core(void) {
    if (openblas_get_corename == NULL) return "";
    const char *n = openblas_get_corename();
    return n != NULL ? n : "";
}

/* Re-initialises OpenBLAS's kernel table as `name`. Returns 0 on success. */
static int switch_core(const char *name, char *why, size_t cap) {
    Dl_info info;
    if (openblas_get_corename == NULL || dladdr((void *)openblas_get_corename, &info) == 0 || info.dli_fname == NULL) {
        snprintf(why, cap, "the OpenBLAS library could not be located");
        return -1;
    }
    void *lib = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD);
    if (lib == NULL) {
        snprintf(why, cap, "dlopen(%s) failed", info.dli_fname);
        return -1;
    }
    void (*quit)(void) = (void (*)(void))dlsym(lib, "gotoblas_dynamic_quit");
    void (*init)(void) = (void (*)(void))dlsym(lib, "gotoblas_dynamic_init");
    if (quit == NULL || init == NULL) {
        dlclose(lib);
        snprintf(why, cap, "%s is not a DYNAMIC_ARCH build (no gotoblas_dynamic_init)", info.dli_fname);
        return -1;
    }
    /* gotoblas_dynamic_init reads OPENBLAS_CORETYPE. Hand it a private environment for the
     * call instead of setenv: setenv may move `environ` to the heap, and Swift's Linux runtime
     * finds argv by walking back from the process's original environment block. */
    char entry[64];
    snprintf(entry, sizeof entry, "OPENBLAS_CORETYPE=%s", name);
    char *private_env[] = {entry, NULL};
    char **saved = environ;
    environ = private_env;
    /* OpenBLAS's constructor has already started its worker threads, and a worker still starting
     * up reads the kernel table (its buffer allocation goes through it) while quit/init replace
     * it: about one process start in 80 crashed there. Stop the workers first (joined, so none is
     * mid-start); OpenBLAS starts them again on its first threaded call. */
    void (*stop_workers)(void) = (void (*)(void))dlsym(lib, "blas_thread_shutdown_");
    if (stop_workers != NULL) stop_workers();
    quit();
    init();
    environ = saved;
    dlclose(lib);
    if (strcasecmp(current_core(), name) != 0) {
        snprintf(why, cap, "OpenBLAS reports %s after asking for %s", current_core(), name);
        return -1;
    }
    return 0;
}

#define HMST_BLAS_THREAD_TIMEOUT 20

/* OpenBLAS reads OPENBLAS_THREAD_TIMEOUT once (openblas_read_env, at load) and applies it when it
 * starts its workers. Re-read the environment with the variable added (the rest as it is), then
 * stop the workers: OpenBLAS starts them again, with the short timeout, on its next threaded call. */
static void shorten_thread_timeout(struct chmst_blas_state *s) {
    Dl_info info;
    if (openblas_get_corename == NULL || dladdr((void *)openblas_get_corename, &info) == 0 || info.dli_fname == NULL) return;
    void *lib = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD);
    if (lib == NULL) return;
    void (*read_env)(void) = (void (*)(void))dlsym(lib, "openblas_read_env");
    int (*timeout)(void) = (int (*)(void))dlsym(lib, "openblas_thread_timeout");
    void (*stop_workers)(void) = (void (*)(void))dlsym(lib, "blas_thread_shutdown_");
    if (timeout != NULL) s->thread_timeout = timeout();
    if (read_env != NULL && timeout != NULL && stop_workers != NULL && getenv("OPENBLAS_THREAD_TIMEOUT") == NULL &&
        getenv("GOTO_THREAD_TIMEOUT") == NULL) {
        size_t n = 0;
        while (environ[n] != NULL) n++;
        char **env = malloc((n + 2) * sizeof *env);
        if (env != NULL) {
            char entry[48];
            snprintf(entry, sizeof entry, "OPENBLAS_THREAD_TIMEOUT=%d", HMST_BLAS_THREAD_TIMEOUT);
            memcpy(env, environ, n * sizeof *env);
            env[n] = entry;
            env[n + 1] = NULL;
            char **saved = environ;   /* (not setenv: see switch_core) */
            environ = env;
            read_env();
            environ = saved;
            free(env);
            if (timeout() == HMST_BLAS_THREAD_TIMEOUT) {
                stop_workers();
                s->thread_timeout = HMST_BLAS_THREAD_TIMEOUT;
                s->thread_timeout_set = 1;
            }
        }
    }
    if (s->thread_timeout == 0) s->thread_timeout = 28;   /* OpenBLAS's default when unset */
    dlclose(lib);
}

static void run_check(void) {
    struct chmst_blas_state *s = &state;
    chmst_copy_string(s->core_at_load, sizeof s->core_at_load, current_core());
    int best_level = 1;
    const char *best = best_core(&best_level);
    chmst_copy_string(s->best_core, sizeof s->best_core, best != NULL ? best : s->core_at_load);
    s->best_level = best_level;

    const char *setting = getenv("HMST_BLAS_CORETYPE");
    const char *forced_by_user = getenv("OPENBLAS_CORETYPE");
    int level = chmst_blas_core_level(s->core_at_load);
    char why[192] = "";

    if (setting != NULL && strcasecmp(setting, "keep") == 0) {
        s->action = CHMST_BLAS_KEPT;
    } else if (setting != NULL && setting[0] != '\0') {
        int want = chmst_blas_core_level(setting);
        if (want == 0 || want > best_level) {
            s->action = CHMST_BLAS_FAILED;
            snprintf(s->message, sizeof s->message,
                     "HMST_BLAS_CORETYPE=%s is %s; keeping OpenBLAS's %s", setting,
                     want == 0 ? "not an OpenBLAS x86-64 kernel family" : "beyond this CPU's instruction set",
                     s->core_at_load);
        } else if (strcasecmp(setting, s->core_at_load) == 0) {
            s->action = CHMST_BLAS_NONE;
        } else if (switch_core(setting, why, sizeof why) == 0) {
            s->action = CHMST_BLAS_SWITCHED;
            snprintf(s->message, sizeof s->message, "OpenBLAS kernels switched from %s to %s (HMST_BLAS_CORETYPE)",
                     s->core_at_load, current_core());
        } else {
            s->action = CHMST_BLAS_FAILED;
            snprintf(s->message, sizeof s->message, "could not switch OpenBLAS to %s: %s", setting, why);
        }
    } else if (level == 0 || best == NULL || level >= best_level) {
        s->action = CHMST_BLAS_NONE; /* unknown family (leave it alone) or already right */
    } else if (switch_core(best, why, sizeof why) == 0) {
        s->action = CHMST_BLAS_SWITCHED;
        snprintf(s->message, sizeof s->message,
                 "OpenBLAS chose %s kernels%s, below this CPU's instruction set; switched to %s "
                 "(set HMST_BLAS_CORETYPE=keep to keep OpenBLAS's choice)",
                 s->core_at_load, forced_by_user != NULL ? " (from OPENBLAS_CORETYPE)" : "", current_core());
    } else {
        s->action = CHMST_BLAS_FAILED;
        snprintf(s->message, sizeof s->message,
                 "OpenBLAS runs %s kernels, below this CPU's instruction set (%s), and hmst could not switch: %s; "
                 "start the process with OPENBLAS_CORETYPE=%s",
                 s->core_at_load, best, why, best);
    }
    chmst_copy_string(s->core, sizeof s->core, current_core());
    int now = chmst_blas_core_level(s->core);
    s->below_capability = (now != 0 && now < best_level) ? 1 : 0;
    if (s->action == CHMST_BLAS_KEPT && s->below_capability)
        snprintf(s->message, sizeof s->message,
                 "OpenBLAS runs %s kernels, below this CPU's instruction set (%s is available), because "
                 "HMST_BLAS_CORETYPE=keep; GEMMs run several times slower than they could",
                 s->core, s->best_core);
    shorten_thread_timeout(s);
    int log_level = s->below_capability || s->action == CHMST_BLAS_FAILED ? HMST_LOG_WARN : HMST_LOG_INFO;
    if (s->message[0] != '\0' && log_level >= chmst_log_get_level()) chmst_log_emit(log_level, s->message);
}

const struct chmst_blas_state *chmst_blas_check(void) {
    pthread_once(&once, run_check);
    return &state;
}

/* Runs once when libhmst (or a tool linking CHMST) is loaded, after OpenBLAS's own constructor,
 * before the host can call anything: no BLAS call of ours is in flight during the switch. */
__attribute__((constructor)) static void chmst_blas_at_load(void) { (void)chmst_blas_check(); }
