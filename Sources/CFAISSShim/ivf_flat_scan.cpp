// ivf_flat_scan.cpp: hmst's own IVF-Flat list scan (see ivf_flat_scan.h). Debian's libfaiss is
// a generic SSE build; the scan is where an IVF-Flat search spends its time, so hmst scans the
// lists with CKernels' AVX-512 kernels (portable elsewhere) and a k-entry heap of its own.
#include "ivf_flat_scan.h"
#include "hmst_faiss_shim.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/invlists/InvertedLists.h>
#include <hmst_ivf_scan.h>

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <type_traits>
#include <typeinfo>
#include <vector>

// libgomp's entry point for a parallel region (what gcc emits for `#pragma omp parallel`),
// declared here because Swift's clang does not see gcc's omp.h; libfaiss.a already needs it.
extern "C" void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);

namespace hmstfs {

namespace {

// Keeps the k best (distance, id) pairs seen; "better" is smaller for L2, larger for IP.
// A binary heap with the worst kept pair on top, so a candidate is one comparison away from
// rejection. Ties keep the earlier pair (the list and storage order FAISS scans in).
template <bool kLargerIsBetter>
struct TopK {
    float *dis;
    int64_t *ids;
    int64_t k;
    int64_t size = 0;

    static bool worse(float a, float b) { return kLargerIsBetter ? a < b : a > b; }

    bool admits(float d) const { return size < k || worse(dis[0], d); }

    void push(float d, int64_t id) {
        int64_t i;
        if (size < k) {
            i = size++;  // sift up from the new leaf
            while (i > 0) {
                int64_t p = (i - 1) / 2;
                if (!worse(d, dis[p])) break;
                dis[i] = dis[p];
                ids[i] = ids[p];
                i = p;
            }
            dis[i] = d;
            ids[i] = id;
        } else {
            sift_down(d, id, size);
        }
    }

    // Puts (d, id) at the root of the heap [0, n) and sifts it down.
    void sift_down(float d, int64_t id, int64_t n) {
        int64_t i = 0;
        for (;;) {
            int64_t c = 2 * i + 1;
            if (c >= n) break;
            if (c + 1 < n && worse(dis[c + 1], dis[c])) c++;
            if (!worse(dis[c], d)) break;
            dis[i] = dis[c];
            ids[i] = ids[c];
            i = c;
        }
        dis[i] = d;
        ids[i] = id;
    }

    // Sorts in place, best first (pops the worst to the back, no allocation), and pads to k
    // with (-1, the worst possible distance) as FAISS does.
    void finish() {
        for (int64_t end = size - 1; end > 0; end--) {
            float d = dis[end];
            int64_t id = ids[end];
            dis[end] = dis[0];
            ids[end] = ids[0];
            sift_down(d, id, end);
        }
        for (int64_t i = size; i < k; i++) {
            dis[i] = kLargerIsBetter ? -FLT_MAX : FLT_MAX;
            ids[i] = -1;
        }
    }
};

constexpr size_t kBlock = 256;  // vectors per kernel call: the distances stay in L1

// Scans vectors [begin, end) of the sequence the query's probed lists make, in probe order
// (coarse_row[0 .. nprobe) are its lists, closest first), into top. The whole sequence is
// [0, SIZE_MAX); a slice of it is what one thread scans when a query's lists are split.
template <bool kIP>
void scan_lists(const faiss::IndexIVFFlat *index, const faiss::InvertedLists *lists, const float *q,
                const int64_t *coarse_row, int64_t nprobe, size_t begin, size_t end, TopK<kIP> &top) {
    const size_t d = (size_t)index->d;
    float block[kBlock];
    size_t offset = 0;  // where the current list starts in the sequence
    for (int64_t p = 0; p < nprobe && offset < end; p++) {
        int64_t list = coarse_row[p];
        if (list < 0) continue;  // fewer lists than nprobe
        size_t size = lists->list_size((size_t)list);
        size_t lo = std::max(begin, offset), hi = std::min(end, offset + size);
        if (lo < hi) {
            const float *x = reinterpret_cast<const float *>(lists->get_codes((size_t)list));
            const int64_t *ids = lists->get_ids((size_t)list);
            for (size_t s = lo - offset; s < hi - offset; s += kBlock) {
                size_t m = std::min(kBlock, hi - offset - s);
                if (kIP) hk_inner_many(block, q, x + s * d, m, d);
                else hk_l2sqr_many(block, q, x + s * d, m, d);
                for (size_t j = 0; j < m; j++)
                    if (top.admits(block[j])) top.push(block[j], ids[s + j]);
            }
        }
        offset += size;
    }
}

// Queries [q0, q1): coarse[i * nprobe ...] are their lists, closest first.
template <bool kIP>
void scan_range(const faiss::IndexIVFFlat *index, const faiss::InvertedLists *lists, int64_t q0, int64_t q1,
                const float *queries, int64_t k, int64_t nprobe, const int64_t *coarse, float *distances,
                int64_t *labels) {
    for (int64_t qi = q0; qi < q1; qi++) {
        TopK<kIP> top{distances + qi * k, labels + qi * k, k};
        scan_lists<kIP>(index, lists, queries + qi * (int64_t)index->d, coarse + qi * nprobe, nprobe, 0, SIZE_MAX, top);
        top.finish();
    }
}

// The lists of queries [q0, q1), closest first, when the quantizer is an exact flat index:
// hmst ranks the centroids itself with the direct formula FAISS's flat quantizer uses for
// small batches (below its BLAS threshold), in portable code there. Ranking per query keeps
// the whole search in one parallel region. Only where can_assign(index); else FAISS assigns.
bool can_assign(const faiss::IndexIVFFlat *index) {
    auto *flat = dynamic_cast<const faiss::IndexFlat *>(index->quantizer);
    return flat != nullptr && flat->metric_type == index->metric_type && flat->d == index->d &&
           (size_t)flat->ntotal == index->nlist;
}

void own_assign(const faiss::IndexIVFFlat *index, int64_t q0, int64_t q1, const float *queries, int64_t nprobe,
                int64_t *coarse, float *scratch) {
    auto *flat = static_cast<const faiss::IndexFlat *>(index->quantizer);
    const size_t d = (size_t)index->d, nlist = (size_t)flat->ntotal;
    const float *centroids = flat->get_xb();
    float *dis = scratch, *best_dis = scratch + nlist;  // [nlist], [nprobe]
    const bool ip = index->metric_type == faiss::METRIC_INNER_PRODUCT;
    for (int64_t qi = q0; qi < q1; qi++) {
        const float *q = queries + qi * (int64_t)d;
        int64_t *best = coarse + qi * nprobe;
        if (ip) {
            hk_inner_many(dis, q, centroids, nlist, d);
            TopK<true> top{best_dis, best, nprobe};
            for (size_t c = 0; c < nlist; c++)
                if (top.admits(dis[c])) top.push(dis[c], (int64_t)c);
            top.finish();
        } else {
            hk_l2sqr_many(dis, q, centroids, nlist, d);
            TopK<false> top{best_dis, best, nprobe};
            for (size_t c = 0; c < nlist; c++)
                if (top.admits(dis[c])) top.push(dis[c], (int64_t)c);
            top.finish();
        }
    }
}

// Runs f(slot, i0, i1) over [0, count) in chunks of `grain` items that up to `threads` libgomp
// threads take from a shared counter; slot (0 .. threads) is the thread's, for scratch of its own.
template <class F>
void parallel_chunks(int64_t count, int64_t grain, int threads, F &&f) {
    struct Ctx {
        std::atomic<int64_t> next{0};
        std::atomic<int> slots{0};
        int64_t count, grain;
        std::remove_reference_t<F> *f;
    } ctx{{0}, {0}, count, grain, &f};
    auto body = [](void *raw) {
        auto *c = static_cast<Ctx *>(raw);
        int slot = c->slots.fetch_add(1);
        for (;;) {
            int64_t i0 = c->next.fetch_add(c->grain, std::memory_order_relaxed);
            if (i0 >= c->count) return;
            (*c->f)(slot, i0, std::min(c->count, i0 + c->grain));
        }
    };
    int64_t t = std::max<int64_t>(1, std::min<int64_t>(threads, (count + grain - 1) / grain));
    if (t == 1) body(&ctx);
    else GOMP_parallel(body, &ctx, (unsigned)t, 0);
}

// Fewer queries than threads (one query above all): FAISS scans each query on one thread.
// Here each query's probed vectors are cut into contiguous slices of the sequence its lists
// make (probe order), threads scan the slices into top-k rows of their own, and the rows are
// merged per query in slice order, so ties keep the earlier pair as a sequential scan would.
// A query is cut only into slices of at least kSplitMin floats of distance work (a libgomp
// fork and join costs a few microseconds). Returns false, doing nothing, where no query is
// worth cutting; coarse holds every query's lists already.
constexpr size_t kSplitMin = 1 << 15;

template <bool kIP>
bool split_search(const faiss::IndexIVFFlat *index, int64_t n, const float *queries, int64_t k, int64_t nprobe,
                  int threads, const int64_t *coarse, float *distances, int64_t *labels) {
    const faiss::InvertedLists *lists = index->invlists;
    const size_t d = (size_t)index->d;
    struct Item {
        int64_t query;
        size_t begin, end;
    };
    std::vector<Item> items;
    const int64_t per_query = std::max<int64_t>(1, threads / n);
    for (int64_t qi = 0; qi < n; qi++) {
        size_t total = 0;
        for (int64_t p = 0; p < nprobe; p++) {
            int64_t list = coarse[qi * nprobe + p];
            if (list >= 0) total += lists->list_size((size_t)list);
        }
        int64_t slices = std::min<int64_t>(per_query, std::max<int64_t>(1, (int64_t)(total * d / kSplitMin)));
        for (int64_t s = 0; s < slices; s++)
            items.push_back({qi, total * (size_t)s / (size_t)slices, total * (size_t)(s + 1) / (size_t)slices});
    }
    if ((int64_t)items.size() == n) return false;
    std::vector<float> part_dis(items.size() * (size_t)k);
    std::vector<int64_t> part_ids(items.size() * (size_t)k);
    parallel_chunks((int64_t)items.size(), 1, threads, [&](int, int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; i++) {
            const Item &item = items[(size_t)i];
            TopK<kIP> top{part_dis.data() + i * k, part_ids.data() + i * k, k};
            scan_lists<kIP>(index, lists, queries + item.query * (int64_t)d, coarse + item.query * nprobe, nprobe,
                            item.begin, item.end, top);
            top.finish();
        }
    });
    // items are in query order, each query's slices in sequence order
    size_t i = 0;
    for (int64_t qi = 0; qi < n; qi++) {
        TopK<kIP> top{distances + qi * k, labels + qi * k, k};
        for (; i < items.size() && items[i].query == qi; i++) {
            const float *dis = part_dis.data() + i * (size_t)k;
            const int64_t *ids = part_ids.data() + i * (size_t)k;
            for (int64_t j = 0; j < k && ids[j] >= 0; j++)
                if (top.admits(dis[j])) top.push(dis[j], ids[j]);
        }
        top.finish();
    }
    return true;
}

// Batched calls, list by list. In a batch many queries probe the same list (benchmarks/
// vector_search.py's 1,000 queries at nprobe 8 probe 211 of 256 lists, about 38 queries a list),
// and a query-by-query scan streams each list from memory once per query. Here a batch's (query,
// probe) pairs are grouped by list; each list is read in blocks small enough to stay in L1 while
// every query probing it computes its distances to the block (four queries a kernel pass,
// hk_l2sqr_many4: the one-query kernel's values bit for bit), into that pair's row of a distance
// buffer. A second pass pushes each query's rows into its top-k in probe order. The distances and
// the order are the query-by-query scan's, so the answers are identical, ties included. Queries
// go in rounds whose rows fit kGroupedFloats.
constexpr size_t kGroupedFloats = size_t(1) << 23;  // 32 MB of distances a round
constexpr size_t kGroupedBlockBytes = 16384;          // vectors a kernel call reads: L1-sized
constexpr size_t kGroupedItemVectors = 2048;          // a work item: one list's queries, this many vectors

// Whether a batch shares lists enough for the grouped scan: at least two queries a thread, and
// on average two probes of every list. HMST_IVF_GROUPED=0 in the environment turns it off (for measuring it against the
// query-by-query scan in one build); tests set both through hmstfs_set_ivf_grouped.
std::atomic<int> grouped_mode{-1};
std::atomic<int64_t> grouped_round_floats{0};

bool grouped_applies(const faiss::IndexIVFFlat *index, int64_t n, int64_t nprobe, int threads) {
    static const bool by_environment = [] {
        const char *v = std::getenv("HMST_IVF_GROUPED");
        return v == nullptr || std::strcmp(v, "0") != 0;
    }();
    int mode = grouped_mode.load(std::memory_order_relaxed);
    bool enabled = mode < 0 ? by_environment : mode != 0;
    return enabled && n >= 2 * (int64_t)threads && n * nprobe >= 2 * (int64_t)index->nlist;
}

template <bool kIP>
void grouped_search(const faiss::IndexIVFFlat *index, int64_t n, const float *queries, int64_t k, int64_t nprobe,
                    int threads, const int64_t *coarse, float *distances, int64_t *labels) {
    const faiss::InvertedLists *lists = index->invlists;
    const size_t d = (size_t)index->d, nlist = index->nlist;
    const size_t block = std::max<size_t>(4, kGroupedBlockBytes / (d * sizeof(float)));
    auto size_of = [&](int64_t list) { return list < 0 ? size_t(0) : lists->list_size((size_t)list); };
    std::vector<size_t> rows, order, count(nlist + 1);
    struct Item {
        int64_t list;
        size_t e0, e1, s0, s1;  // pairs order[e0 .. e1) over vectors [s0, s1) of the list
    };
    std::vector<Item> items;
    std::unique_ptr<float[]> buffer;
    size_t capacity = 0;
    const int64_t round_override = grouped_round_floats.load(std::memory_order_relaxed);
    const size_t round_floats = round_override > 0 ? (size_t)round_override : kGroupedFloats;
    for (int64_t q0 = 0; q0 < n;) {
        // this round: queries [q0, q1), pair (q, p) at (q - q0) * nprobe + p, its row at rows[pair]
        int64_t q1 = q0;
        size_t total = 0;
        rows.clear();
        while (q1 < n) {
            const size_t mark = rows.size(), before = total;
            for (int64_t p = 0; p < nprobe; p++) {
                rows.push_back(total);
                total += size_of(coarse[q1 * nprobe + p]);
            }
            if (q1 > q0 && total > round_floats) {  // the next round takes it
                rows.resize(mark);
                total = before;
                break;
            }
            q1++;
        }
        if (total > capacity) {
            buffer.reset(new float[total]);
            capacity = total;
        }
        float *dis = buffer.get();
        // pairs by list (counting sort, stable: query order within a list)
        const int64_t *pair_list = coarse + q0 * nprobe;
        const size_t pairs = rows.size();
        std::fill(count.begin(), count.end(), 0);
        for (size_t e = 0; e < pairs; e++)
            if (pair_list[e] >= 0) count[(size_t)pair_list[e] + 1]++;
        for (size_t l = 0; l < nlist; l++) count[l + 1] += count[l];
        order.resize(count[nlist]);
        {
            std::vector<size_t> at(count.begin(), count.end() - 1);
            for (size_t e = 0; e < pairs; e++)
                if (pair_list[e] >= 0) order[at[(size_t)pair_list[e]]++] = e;
        }
        items.clear();
        for (size_t l = 0; l < nlist; l++) {
            size_t size = lists->list_size(l);
            if (count[l] == count[l + 1] || size == 0) continue;
            for (size_t s = 0; s < size; s += kGroupedItemVectors)
                items.push_back({(int64_t)l, count[l], count[l + 1], s, std::min(size, s + kGroupedItemVectors)});
        }
        parallel_chunks((int64_t)items.size(), 1, threads, [&](int, int64_t i0, int64_t i1) {
            for (int64_t i = i0; i < i1; i++) {
                const Item &it = items[(size_t)i];
                const float *x = reinterpret_cast<const float *>(lists->get_codes((size_t)it.list));
                for (size_t s = it.s0; s < it.s1; s += block) {
                    size_t m = std::min(block, it.s1 - s);
                    auto query = [&](size_t e) { return queries + (q0 + (int64_t)(order[e] / (size_t)nprobe)) * (int64_t)d; };
                    size_t e = it.e0;
                    for (; e + 4 <= it.e1; e += 4) {  // four queries a pass: each vector loaded once for them
                        const float *q4[4] = {query(e), query(e + 1), query(e + 2), query(e + 3)};
                        float *out4[4] = {dis + rows[order[e]] + s, dis + rows[order[e + 1]] + s,
                                          dis + rows[order[e + 2]] + s, dis + rows[order[e + 3]] + s};
                        if (kIP) hk_inner_many4(out4, q4, x + s * d, m, d);
                        else hk_l2sqr_many4(out4, q4, x + s * d, m, d);
                    }
                    for (; e < it.e1; e++) {
                        if (kIP) hk_inner_many(dis + rows[order[e]] + s, query(e), x + s * d, m, d);
                        else hk_l2sqr_many(dis + rows[order[e]] + s, query(e), x + s * d, m, d);
                    }
                }
            }
        });
        parallel_chunks(q1 - q0, 16, threads, [&](int, int64_t i0, int64_t i1) {
            for (int64_t i = i0; i < i1; i++) {
                int64_t qi = q0 + i;
                TopK<kIP> top{distances + qi * k, labels + qi * k, k};
                for (int64_t p = 0; p < nprobe; p++) {
                    int64_t list = coarse[qi * nprobe + p];
                    size_t size = size_of(list);
                    if (size == 0) continue;
                    const float *r = dis + rows[(size_t)(i * nprobe + p)];
                    const int64_t *ids = lists->get_ids((size_t)list);
                    for (size_t j = 0; j < size; j++)
                        if (top.admits(r[j])) top.push(r[j], ids[j]);
                }
                top.finish();
            }
        });
        q0 = q1;
    }
}

}  // namespace

bool own_scan_applies(const faiss::IndexIVFFlat *index) {
    if (index == nullptr || typeid(*index) != typeid(faiss::IndexIVFFlat)) return false;
    if (index->metric_type != faiss::METRIC_L2 && index->metric_type != faiss::METRIC_INNER_PRODUCT) return false;
    if (index->code_size != sizeof(float) * (size_t)index->d) return false;
    return dynamic_cast<const faiss::ArrayInvertedLists *>(index->invlists) != nullptr;
}

void own_ivf_flat_search(const faiss::IndexIVFFlat *index, int64_t n, const float *queries, int64_t k,
                         int64_t nprobe, int threads, float *distances, int64_t *labels) {
    if (n <= 0) return;
    nprobe = std::max<int64_t>(1, std::min<int64_t>(nprobe, (int64_t)index->nlist));
    std::vector<int64_t> coarse((size_t)(n * nprobe));
    const bool flat_quantizer = can_assign(index);
    if (!flat_quantizer) {
        std::vector<float> coarse_dis((size_t)(n * nprobe));
        index->quantizer->search(n, queries, nprobe, coarse_dis.data(), coarse.data());
    }
    const bool ip = index->metric_type == faiss::METRIC_INNER_PRODUCT;
    // one scratch row per thread for the centroid distances
    const size_t row = (size_t)index->nlist + (size_t)nprobe;
    bool assign = flat_quantizer;
    if (n < threads) {
        if (assign) {
            std::vector<float> ranks(row);
            own_assign(index, 0, n, queries, nprobe, coarse.data(), ranks.data());
            assign = false;
        }
        if (ip ? split_search<true>(index, n, queries, k, nprobe, threads, coarse.data(), distances, labels)
               : split_search<false>(index, n, queries, k, nprobe, threads, coarse.data(), distances, labels))
            return;
    }
    constexpr int64_t kChunk = 16;
    std::vector<float> scratch(assign ? row * (size_t)std::max(1, threads) : 0);
    auto assign_chunk = [&](int slot, int64_t q0, int64_t q1) {
        if (assign) own_assign(index, q0, q1, queries, nprobe, coarse.data(), scratch.data() + row * (size_t)slot);
    };
    if (grouped_applies(index, n, nprobe, threads)) {
        if (assign) parallel_chunks(n, kChunk, threads, assign_chunk);
        if (ip) grouped_search<true>(index, n, queries, k, nprobe, threads, coarse.data(), distances, labels);
        else grouped_search<false>(index, n, queries, k, nprobe, threads, coarse.data(), distances, labels);
        return;
    }
    // Threads take chunks of kChunk queries from a shared counter rather than fixed shares: on a
    // busy machine a descheduled thread then delays its one chunk, not half the batch. Each
    // chunk is assigned and scanned in the same region, so the batch costs one fork and join, on
    // libgomp's threads (the pool FAISS uses), not a second pool competing with its workers,
    // which spin for a while after each region.
    parallel_chunks(n, kChunk, threads, [&](int slot, int64_t q0, int64_t q1) {
        assign_chunk(slot, q0, q1);
        if (ip) scan_range<true>(index, index->invlists, q0, q1, queries, k, nprobe, coarse.data(), distances, labels);
        else scan_range<false>(index, index->invlists, q0, q1, queries, k, nprobe, coarse.data(), distances, labels);
    });
}

}  // namespace hmstfs

extern "C" void hmstfs_set_ivf_grouped(int mode, int64_t round_floats) {
    hmstfs::grouped_mode.store(mode < 0 ? -1 : mode != 0);
    hmstfs::grouped_round_floats.store(round_floats);
}
