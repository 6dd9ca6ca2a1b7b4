// faiss_shim.cpp: the extern "C" face of FAISS for hmst. Each entry point runs its body inside
// guard(), which maps every C++ exception to a status and a thread-local message.
#include "hmst_faiss_shim.h"
#include "ivf_flat_scan.h"

#include <faiss/Index.h>
#include <faiss/IVFlib.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexFlatCodes.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexPQ.h>
#include <faiss/impl/io.h>
#include <faiss/impl/FaissException.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <faiss/impl/IDSelector.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>

// libgomp's API, declared here because Swift's clang does not see gcc's omp.h; libfaiss.a is
// built with gcc's OpenMP and we link libgomp.
extern "C" {
void omp_set_num_threads(int);
int omp_get_max_threads(void);
}

// hmstfs_set_own_ivf_scan: hmst's IVF-Flat scan serves unless a test turns it off.
static std::atomic<bool> own_ivf_scan{true};

struct hmstfs_index {
    std::unique_ptr<faiss::Index> index;
};

namespace {

thread_local std::string tls_error;

void set_error(const std::string &message) { tls_error = message; }

template <typename F>
int guard(F &&body) {
    try {
        tls_error.clear();
        return body();
    } catch (const faiss::FaissException &e) {
        set_error(std::string("FAISS: ") + e.what());
        return HMSTFS_INVALID_ARGUMENT;
    } catch (const std::bad_alloc &) {
        set_error("FAISS: out of memory");
        return HMSTFS_OUT_OF_MEMORY;
    } catch (const std::exception &e) {
        set_error(std::string("FAISS: ") + e.what());
        return HMSTFS_INTERNAL;
    } catch (...) {
        set_error("FAISS: unknown C++ exception");
        return HMSTFS_INTERNAL;
    }
}

int fail(int status, const char *message) {
    set_error(message);
    return status;
}

// The IVF index inside (possibly under an IDMap), or nullptr.
faiss::IndexIVF *ivf_of(faiss::Index *index) {
    if (auto *ivf = dynamic_cast<faiss::IndexIVF *>(index)) return ivf;
    if (auto *map = dynamic_cast<faiss::IndexIDMap *>(index))
        return dynamic_cast<faiss::IndexIVF *>(map->index);
    return nullptr;
}

// The index under an IDMap wrapper, or the index itself.
const faiss::Index *unwrapped(const faiss::Index *index) {
    if (auto *map = dynamic_cast<const faiss::IndexIDMap *>(index)) return map->index;
    return index;
}

// An IOWriter that only counts, so the serialized size costs no copy.
struct CountingWriter : faiss::IOWriter {
    size_t bytes = 0;
    size_t operator()(const void *, size_t size, size_t nitems) override {
        bytes += size * nitems;
        return nitems;
    }
};

// FAISS's clustering warns below 39 training points per centroid (Clustering.h).
constexpr int64_t kMinPointsPerCentroid = 39;

}  // namespace

extern "C" {

const char *hmstfs_last_error(void) { return tls_error.c_str(); }

const char *hmstfs_version(void) {
#define HMSTFS_STR2(x) #x
#define HMSTFS_STR(x) HMSTFS_STR2(x)
    return HMSTFS_STR(FAISS_VERSION_MAJOR) "." HMSTFS_STR(FAISS_VERSION_MINOR) "." HMSTFS_STR(
        FAISS_VERSION_PATCH);
}

void hmstfs_set_omp_threads(int n) {
    if (n >= 1) omp_set_num_threads(n);
}

int hmstfs_get_omp_threads(void) { return omp_get_max_threads(); }

int hmstfs_index_factory(int dim, const char *description, int metric, hmstfs_index **out) {
    return guard([&]() -> int {
        if (out == nullptr || description == nullptr)
            return fail(HMSTFS_INVALID_ARGUMENT, "index_factory: NULL argument");
        if (dim <= 0) return fail(HMSTFS_INVALID_ARGUMENT, "index_factory: dim must be > 0");
        if (metric != HMSTFS_METRIC_INNER_PRODUCT && metric != HMSTFS_METRIC_L2)
            return fail(HMSTFS_INVALID_ARGUMENT, "index_factory: unknown metric");
        faiss::MetricType m = metric == HMSTFS_METRIC_L2 ? faiss::METRIC_L2 : faiss::METRIC_INNER_PRODUCT;
        std::unique_ptr<faiss::Index> index(faiss::index_factory(dim, description, m));
        // Flat indexes do not store ids: wrap them so every index takes stable 64-bit ids.
        if (ivf_of(index.get()) == nullptr && dynamic_cast<faiss::IndexIDMap *>(index.get()) == nullptr) {
            auto *map = new faiss::IndexIDMap(index.get());
            map->own_fields = true;
            index.release();
            index.reset(map);
        }
        auto *h = new hmstfs_index{std::move(index)};
        *out = h;
        return HMSTFS_OK;
    });
}

void hmstfs_index_free(hmstfs_index *index) { delete index; }

int hmstfs_index_dim(const hmstfs_index *index) { return index ? index->index->d : 0; }

int64_t hmstfs_index_ntotal(const hmstfs_index *index) { return index ? index->index->ntotal : 0; }

int hmstfs_index_is_trained(const hmstfs_index *index) {
    return index && index->index->is_trained ? 1 : 0;
}

int hmstfs_index_train(hmstfs_index *index, int64_t n, const float *x) {
    return guard([&]() -> int {
        if (index == nullptr || x == nullptr || n <= 0)
            return fail(HMSTFS_INVALID_ARGUMENT, "train: NULL argument or n <= 0");
        index->index->train(n, x);
        return HMSTFS_OK;
    });
}

int hmstfs_index_add_with_ids(hmstfs_index *index, int64_t n, const float *x, const int64_t *ids) {
    return guard([&]() -> int {
        if (index == nullptr || x == nullptr || ids == nullptr || n < 0)
            return fail(HMSTFS_INVALID_ARGUMENT, "add: NULL argument or n < 0");
        if (!index->index->is_trained) return fail(HMSTFS_INVALID_ARGUMENT, "add: index is not trained");
        index->index->add_with_ids(n, x, ids);
        return HMSTFS_OK;
    });
}

void hmstfs_set_own_ivf_scan(int on) { own_ivf_scan.store(on != 0); }
int hmstfs_get_own_ivf_scan(void) { return own_ivf_scan.load() ? 1 : 0; }

int hmstfs_index_search(const hmstfs_index *index, int64_t n, const float *queries, int64_t k,
                        int nprobe, float *distances, int64_t *labels) {
    return guard([&]() -> int {
        if (index == nullptr || queries == nullptr || distances == nullptr || labels == nullptr)
            return fail(HMSTFS_INVALID_ARGUMENT, "search: NULL argument");
        if (n < 0 || k <= 0) return fail(HMSTFS_INVALID_ARGUMENT, "search: n < 0 or k <= 0");
        faiss::Index *idx = index->index.get();
        if (own_ivf_scan.load(std::memory_order_relaxed)) {
            auto *flat = dynamic_cast<const faiss::IndexIVFFlat *>(idx);
            if (flat != nullptr && hmstfs::own_scan_applies(flat)) {
                hmstfs::own_ivf_flat_search(flat, n, queries, k, nprobe > 0 ? nprobe : (int64_t)flat->nprobe,
                                            std::max(1, omp_get_max_threads()), distances, labels);
                return HMSTFS_OK;
            }
        }
        if (nprobe > 0) {
            // only bare IVF indexes reach here: factory never wraps an IVF index in an IDMap
            if (auto *ivf = dynamic_cast<faiss::IndexIVF *>(idx)) {
                faiss::SearchParametersIVF params;
                params.nprobe = (size_t)nprobe;
                ivf->search(n, queries, k, distances, labels, &params);
                return HMSTFS_OK;
            }
        }
        idx->search(n, queries, k, distances, labels);
        return HMSTFS_OK;
    });
}

int hmstfs_index_remove_ids(hmstfs_index *index, int64_t n, const int64_t *ids, int64_t *n_removed) {
    return guard([&]() -> int {
        if (index == nullptr || ids == nullptr || n < 0 || n_removed == nullptr)
            return fail(HMSTFS_INVALID_ARGUMENT, "remove_ids: NULL argument or n < 0");
        faiss::IDSelectorBatch sel((size_t)n, ids);
        *n_removed = (int64_t)index->index->remove_ids(sel);
        return HMSTFS_OK;
    });
}

int hmstfs_index_reconstruct(const hmstfs_index *index, int64_t id, float *out) {
    return guard([&]() -> int {
        if (index == nullptr || out == nullptr) return fail(HMSTFS_INVALID_ARGUMENT, "reconstruct: NULL argument");
        index->index->reconstruct(id, out);
        return HMSTFS_OK;
    });
}

int hmstfs_index_get_info(const hmstfs_index *index, hmstfs_index_info *out) {
    return guard([&]() -> int {
        if (index == nullptr || out == nullptr) return fail(HMSTFS_INVALID_ARGUMENT, "get_info: NULL argument");
        const faiss::Index *idx = index->index.get();
        hmstfs_index_info info{};
        // nprobe reaches only a top-level IVF index (see hmstfs_index_search)
        if (auto *ivf = dynamic_cast<const faiss::IndexIVF *>(idx)) info.nlist = (int64_t)ivf->nlist;
        if (!idx->is_trained) {
            int64_t need = 0;
            if (auto *ivf = faiss::ivflib::try_extract_index_ivf(idx)) {
                need = kMinPointsPerCentroid * (int64_t)ivf->nlist;
                if (auto *ivfpq = dynamic_cast<const faiss::IndexIVFPQ *>(ivf))
                    need = std::max(need, kMinPointsPerCentroid * (int64_t)ivfpq->pq.ksub);
            } else if (auto *pq = dynamic_cast<const faiss::IndexPQ *>(unwrapped(idx))) {
                need = kMinPointsPerCentroid * (int64_t)pq->pq.ksub;
            } else {
                need = kMinPointsPerCentroid * 256;  // an unknown trainable index: a generous default
            }
            info.min_train_count = need;
        }
        const faiss::Index *inner = unwrapped(idx);
        info.supports_remove = (faiss::ivflib::try_extract_index_ivf(idx) != nullptr ||
                                dynamic_cast<const faiss::IndexFlatCodes *>(inner) != nullptr) ? 1 : 0;
        info.is_flat = (inner != idx && dynamic_cast<const faiss::IndexFlat *>(inner) != nullptr) ? 1 : 0;
        *out = info;
        return HMSTFS_OK;
    });
}

int hmstfs_index_skip_polysemous_training(hmstfs_index *index) {
    return guard([&]() -> int {
        if (index == nullptr) return fail(HMSTFS_INVALID_ARGUMENT, "skip_polysemous_training: NULL argument");
        faiss::Index *idx = index->index.get();
        if (auto *ivfpq = dynamic_cast<faiss::IndexIVFPQ *>(faiss::ivflib::try_extract_index_ivf(idx)))
            ivfpq->do_polysemous_training = false;
        if (auto *map = dynamic_cast<faiss::IndexIDMap *>(idx)) idx = map->index;
        if (auto *pq = dynamic_cast<faiss::IndexPQ *>(idx)) pq->do_polysemous_training = false;
        return HMSTFS_OK;
    });
}

int hmstfs_index_serialized_size(const hmstfs_index *index, int64_t *out_bytes) {
    return guard([&]() -> int {
        if (index == nullptr || out_bytes == nullptr)
            return fail(HMSTFS_INVALID_ARGUMENT, "serialized_size: NULL argument");
        CountingWriter writer;
        faiss::write_index(index->index.get(), &writer);
        *out_bytes = (int64_t)writer.bytes;
        return HMSTFS_OK;
    });
}

int hmstfs_index_export_flat(const hmstfs_index *index, int64_t cap, int64_t *ids, float *x,
                             int64_t *n_out) {
    return guard([&]() -> int {
        if (index == nullptr || n_out == nullptr || (cap > 0 && (ids == nullptr || x == nullptr)))
            return fail(HMSTFS_INVALID_ARGUMENT, "export_flat: NULL argument");
        auto *map = dynamic_cast<const faiss::IndexIDMap *>(index->index.get());
        auto *flat = map ? dynamic_cast<const faiss::IndexFlat *>(map->index) : nullptr;
        if (flat == nullptr) return fail(HMSTFS_INVALID_ARGUMENT, "export_flat: not an exact (IDMap over Flat) index");
        int64_t n = (int64_t)map->ntotal;
        if ((int64_t)map->id_map.size() != n || (int64_t)flat->ntotal != n)
            return fail(HMSTFS_INTERNAL, "export_flat: id map and vectors disagree");
        if (cap < n) return fail(HMSTFS_INVALID_ARGUMENT, "export_flat: buffer smaller than ntotal");
        if (n > 0) {
            std::memcpy(ids, map->id_map.data(), sizeof(int64_t) * (size_t)n);
            std::memcpy(x, flat->get_xb(), sizeof(float) * (size_t)n * (size_t)flat->d);
        }
        *n_out = n;
        return HMSTFS_OK;
    });
}

int hmstfs_index_write(const hmstfs_index *index, const char *path) {
    return guard([&]() -> int {
        if (index == nullptr || path == nullptr) return fail(HMSTFS_INVALID_ARGUMENT, "write: NULL argument");
        try {
            faiss::write_index(index->index.get(), path);
        } catch (const faiss::FaissException &e) {
            return fail(HMSTFS_IO, (std::string("FAISS write: ") + e.what()).c_str());
        }
        return HMSTFS_OK;
    });
}

int hmstfs_index_read(const char *path, hmstfs_index **out) {
    return guard([&]() -> int {
        if (path == nullptr || out == nullptr) return fail(HMSTFS_INVALID_ARGUMENT, "read: NULL argument");
        std::unique_ptr<faiss::Index> index;
        try {
            index.reset(faiss::read_index(path));
        } catch (const faiss::FaissException &e) {
            return fail(HMSTFS_BAD_FORMAT, (std::string("FAISS read: ") + e.what()).c_str());
        }
        *out = new hmstfs_index{std::move(index)};
        return HMSTFS_OK;
    });
}

}  // extern "C"
