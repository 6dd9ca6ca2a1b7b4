/* system_info.c: the smallest hmst host. Checks the ABI, prints what the library sees of the
 * machine, and shows the status/last-error convention on a deliberate mistake.
 *
 *   cc -std=c11 system_info.c $(pkg-config --cflags --libs hmst) -o system_info
 */
#include <hmst.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    if (hmst_abi_version() != HMST_ABI_VERSION) {
        fprintf(stderr, "libhmst ABI %d, header ABI %d: rebuild against the installed hmst.h\n",
                hmst_abi_version(), HMST_ABI_VERSION);
        return 1;
    }
    printf("libhmst %s (header %s)\n", hmst_version(), HMST_VERSION_STRING);

    struct hmst_system_info info = {.struct_size = sizeof info};
    int rc = hmst_system_info(&info);
    if (rc != HMST_STATUS_OK) {
        fprintf(stderr, "hmst_system_info: %s: %s\n", hmst_status_string(rc), hmst_last_error());
        return 1;
    }
    printf("cpus %d, threads %d, OpenBLAS %s (%d threads), FAISS %s\n", info.n_cpus, info.n_threads,
           info.blas_core, info.blas_threads, info.faiss_version);
    printf("simd: %s\n", info.simd_names);
    printf("numa: %d node(s), policy calls %s\n", info.numa_nodes,
           info.numa_policy_permitted ? "permitted" : "refused");

    /* Bulk output: ask for the size, allocate, fetch. */
    size_t n = 0;
    rc = hmst_system_info_json(NULL, 0, &n);
    if (rc != HMST_STATUS_BUFFER_TOO_SMALL) {
        fprintf(stderr, "size query: expected BUFFER_TOO_SMALL, got %s\n", hmst_status_string(rc));
        return 1;
    }
    char *json = malloc(n + 1);
    if (json == NULL) return 1;
    rc = hmst_system_info_json(json, n + 1, &n);
    if (rc == HMST_STATUS_OK) printf("json: %s\n", json);
    free(json);

    /* A mistake comes back as a status with a reason, never a crash. */
    rc = hmst_set_n_threads(-3);
    printf("hmst_set_n_threads(-3) -> %s: %s\n", hmst_status_string(rc), hmst_last_error());
    return rc == HMST_STATUS_INVALID_ARGUMENT ? 0 : 1;
}
