/*
 * hmst_faiss_shim.h: a small extern "C" API over FAISS's C++ library.
 *
 * Why it exists: Debian's libfaiss.a ships only the C++ API, and Swift's C++ interop aborts the
 * process on any C++ exception. Every function here catches every exception and turns it into
 * a status plus a message (read with hmstfs_last_error(), thread-local), so FAISS errors reach
 * hosts as hmst statuses, never as crashes. Only HMSTCore/Memory calls this module.
 *
 * Symbols are prefixed hmstfs_ and stay local to libhmst.
 */
#ifndef HMST_FAISS_SHIM_H
#define HMST_FAISS_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status values, mirroring enum hmst_status. */
enum {
    HMSTFS_OK = 0,
    HMSTFS_INVALID_ARGUMENT = -1,
    HMSTFS_IO = -3,
    HMSTFS_BAD_FORMAT = -4,
    HMSTFS_OUT_OF_MEMORY = -5,
    HMSTFS_INTERNAL = -99
};

/* Metrics, mirroring faiss::MetricType. */
enum { HMSTFS_METRIC_INNER_PRODUCT = 0, HMSTFS_METRIC_L2 = 1 };

typedef struct hmstfs_index hmstfs_index; /* owns a faiss::Index */

/* Message of the last failure on this thread ("" if none). Valid until the next shim call. */
const char *hmstfs_last_error(void);

/* "MAJOR.MINOR.PATCH" of the linked FAISS. Static storage. */
const char *hmstfs_version(void);

/* Sets/gets OpenMP's thread count, which FAISS uses for search, add and training. */
void hmstfs_set_omp_threads(int n);
int hmstfs_get_omp_threads(void);

/* faiss::index_factory(dim, description, metric), wrapped in an IndexIDMap when the index does
 * not take ids itself (flat indexes). */
int hmstfs_index_factory(int dim, const char *description, int metric, hmstfs_index **out);
void hmstfs_index_free(hmstfs_index *index);

int hmstfs_index_dim(const hmstfs_index *index);
int64_t hmstfs_index_ntotal(const hmstfs_index *index);
int hmstfs_index_is_trained(const hmstfs_index *index);

/* x: [n, dim] row-major float32. */
int hmstfs_index_train(hmstfs_index *index, int64_t n, const float *x);
/* x: [n, dim], ids: [n] */
int hmstfs_index_add_with_ids(hmstfs_index *index, int64_t n, const float *x, const int64_t *ids);
/* queries: [n, dim] -> distances: [n, k], labels: [n, k] (-1 where fewer than k results).
 * nprobe <= 0 keeps the index's own setting; it applies to IVF indexes only. */
int hmstfs_index_search(const hmstfs_index *index, int64_t n, const float *queries, int64_t k,
                        int nprobe, float *distances, int64_t *labels);
/* IVF-Flat indexes over L2 or inner product (lists in memory) are searched by hmst's own code
 * (ivf_flat_scan.cpp: CKernels' AVX-512 or portable kernel ranks the centroids, as FAISS's flat
 * quantizer does for small batches, and scans the lists), which returns FAISS's ids and
 * distances up to float rounding.
 * 0 turns it off process-wide so FAISS's scan serves (tests compare the two); default on. */
void hmstfs_set_own_ivf_scan(int on);
int hmstfs_get_own_ivf_scan(void);
/* For tests: whether batched calls to that scan go list by list (mode 1, where the batch shares
 * lists; 0: query by query; -1: the default, on unless HMST_IVF_GROUPED=0), and the distance
 * floats a round of it may hold (<= 0: the default, 8M). */
void hmstfs_set_ivf_grouped(int mode, int64_t round_floats);
/* Removes the given ids; *n_removed receives how many were present. */
int hmstfs_index_remove_ids(hmstfs_index *index, int64_t n, const int64_t *ids, int64_t *n_removed);
/* Reconstructs the stored vector of `id` into out[dim] (exact for flat, approximate for PQ). */
int hmstfs_index_reconstruct(const hmstfs_index *index, int64_t id, float *out);

/* What SemanticMemory needs to know about an index to drive lazy training and removal. */
typedef struct hmstfs_index_info {
    int64_t nlist;           /* IVF lists when the index is IVF at the top (nprobe applies), else 0 */
    int64_t min_train_count; /* vectors training should see: 39 per centroid of every k-means
                                inside (coarse quantizer, PQ sub-quantizers); 0 if trained */
    int supports_remove;     /* 1 when remove_ids works (IVF, flat codes), 0 for e.g. HNSW */
    int is_flat;             /* 1 for an IDMap over an exact IndexFlat (export_flat works) */
} hmstfs_index_info;
int hmstfs_index_get_info(const hmstfs_index *index, hmstfs_index_info *out);

/* Turns off polysemous training of PQ codebooks (IVFPQ, PQ), which index_factory enables unless
 * the description ends in "np". It only serves Hamming-filtered search, which hmst never asks
 * for, and costs seconds per sub-quantizer. Other indexes: no-op. Call before training. */
int hmstfs_index_skip_polysemous_training(hmstfs_index *index);

/* Bytes faiss::write_index would produce (a counting writer, nothing is copied): the size of
 * the index's vectors, codes, ids and structure. */
int hmstfs_index_serialized_size(const hmstfs_index *index, int64_t *out_bytes);

/* For an exact index (info.is_flat): copies every stored vector and its id, in storage order.
 * ids: [cap], x: [cap, dim]; fails with INVALID_ARGUMENT if cap < ntotal. *n_out = ntotal. */
int hmstfs_index_export_flat(const hmstfs_index *index, int64_t cap, int64_t *ids, float *x,
                             int64_t *n_out);

/* faiss::write_index / read_index on a path (the caller makes it atomic). */
int hmstfs_index_write(const hmstfs_index *index, const char *path);
int hmstfs_index_read(const char *path, hmstfs_index **out);

#ifdef __cplusplus
}
#endif

#endif
