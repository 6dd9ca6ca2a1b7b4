// ivf_flat_scan.h (internal to CFAISSShim): hmst's own IVF-Flat search. FAISS trains the
// index, assigns stored vectors to lists and stores them; this picks each query's lists (the
// direct distances FAISS's flat quantizer computes for small batches, with hmst's kernel; other
// quantizers: FAISS's own search), scans them with CKernels' runtime-dispatched distance
// kernels and keeps the best k per query, in libgomp parallel regions: one, or for a batch
// scanned list by list one to pick its lists and two a round (distances, then top-k).
#ifndef HMST_IVF_FLAT_SCAN_H
#define HMST_IVF_FLAT_SCAN_H

#include <cstdint>

namespace faiss { struct IndexIVFFlat; }

namespace hmstfs {

// True when own_ivf_flat_search can serve this index: exactly an IndexIVFFlat (no subclass),
// L2 or inner product, lists held in memory (ArrayInvertedLists).
bool own_scan_applies(const faiss::IndexIVFFlat *index);

// As faiss::IndexIVF::search with SearchParametersIVF{nprobe}: queries [n, d] ->
// distances [n, k] (ascending for L2, descending for IP), labels [n, k], -1 and +-FLT_MAX
// where fewer than k vectors were found. Batches whose queries share lists are scanned list by
// list (each list read once for every query probing it, the same answers); other batches are
// split over `threads` libgomp threads in chunks of 16 queries; with fewer queries than threads
// (a single query), each query's probed vectors are cut into slices that threads scan and merge,
// so one query's latency falls too. Up to 32 MB of scratch for a batched call.
// Throws what FAISS's quantizer throws.
void own_ivf_flat_search(const faiss::IndexIVFFlat *index, int64_t n, const float *queries, int64_t k,
                         int64_t nprobe, int threads, float *distances, int64_t *labels);

}  // namespace hmstfs

#endif
