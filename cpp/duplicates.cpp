// Grouping of equal rows and the search over distinct rows (knn_search); see
// duplicates.hpp.
#include "duplicates.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <utility>

#include "parallel.hpp"

namespace idest {
namespace {

// FNV-style hash of a row's values in four interleaved chains (value j in
// chain j % 4, so the multiplications overlap), combined at the end.
template <class T>
uint64_t row_hash(const T* x, int64_t dim) {
    using Bits = std::conditional_t<sizeof(T) == 8, uint64_t, uint32_t>;
    uint64_t h[4] = {0xcbf29ce484222325ull, 0x84222325cbf29ce4ull, 0x9e3779b97f4a7c15ull,
                     0xc2b2ae3d27d4eb4full};
    for (int64_t j = 0; j < dim; ++j) {
        const T v = x[j] + T(0);  // -0.0 + 0.0 == +0.0: equal values hash alike
        Bits bits;
        std::memcpy(&bits, &v, sizeof(T));
        uint64_t& c = h[j & 3];
        c = (c ^ uint64_t(bits)) * 0x100000001b3ull;
        c ^= c >> 32;
    }
    uint64_t out = uint64_t(dim);
    for (const uint64_t c : h) out = (out ^ c) * 0x9e3779b97f4a7c15ull, out ^= out >> 29;
    return out;
}

template <class T>
bool rows_equal(const T* x, const T* y, int64_t dim) {
    for (int64_t j = 0; j < dim; ++j)
        if (!(x[j] == y[j])) return false;
    return true;
}

// rep[i]: the first row equal to row i (i itself when none is earlier). Each
// row, in ascending order, is looked up in an open-addressing table of the
// rows that represent a group (keyed by hash, at most half full, `Slot`-wide
// entries) and joins the group it equals, or represents a new one. Measured
// against sorting the rows by hash: 1.0 against 1.9 ms at 20,000 x 20 (two
// threads), where the sort's indirect comparisons miss the cache.
template <class Slot, class T>
void first_equal_rows(const MatrixView& m, const KeptVector<uint64_t>& hash,
                      KeptVector<int64_t>& rep) {
    const int64_t n = m.n_rows, dim = m.n_cols;
    int bits = 1;
    while ((int64_t(1) << bits) < 2 * n) ++bits;
    const int64_t size = int64_t(1) << bits;
    KeptVector<Slot> table(size_t(size), Slot(-1));
    for (int64_t i = 0; i < n; ++i) {
        rep[i] = i;
        // slot: the high bits of a multiplicative (Fibonacci) hash of the hash
        int64_t s = int64_t((hash[i] * 0x9e3779b97f4a7c15ull) >> (64 - bits));
        for (;; s = (s + 1) & (size - 1)) {
            const int64_t r = table[s];
            if (r < 0) {
                table[s] = Slot(i);
                break;
            }
            if (hash[r] == hash[i] && rows_equal(row_ptr<T>(m, i), row_ptr<T>(m, r), dim)) {
                rep[i] = r;
                break;
            }
        }
    }
}

template <class T>
RowGroups group_impl(const MatrixView& m, int n_threads) {
    const int64_t n = m.n_rows, dim = m.n_cols, chunk = 4096;
    KeptVector<uint64_t> hash(n);
    parallel_for((n + chunk - 1) / chunk, n_threads, [&](int64_t c, int) {
        for (int64_t i = c * chunk; i < std::min(n, (c + 1) * chunk); ++i)
            hash[i] = row_hash(row_ptr<T>(m, i), dim);
    });
    KeptVector<int64_t> rep(n);
    if (n <= std::numeric_limits<int32_t>::max())
        first_equal_rows<int32_t, T>(m, hash, rep);
    else
        first_equal_rows<int64_t, T>(m, hash, rep);
    RowGroups g;
    g.group_of.resize(n);
    for (int64_t i = 0; i < n; ++i) {
        if (rep[i] == i) {
            g.group_of[i] = g.n_groups();
            g.first.push_back(i);
        } else {
            g.group_of[i] = g.group_of[rep[i]];  // rep[i] < i: numbered already
        }
    }
    g.start.assign(g.n_groups() + 1, 0);
    for (int64_t i = 0; i < n; ++i) ++g.start[g.group_of[i] + 1];
    std::partial_sum(g.start.begin(), g.start.end(), g.start.begin());
    g.members.resize(n);
    KeptVector<int64_t> fill(g.start.begin(), g.start.end() - 1);
    for (int64_t i = 0; i < n; ++i) g.members[fill[g.group_of[i]]++] = i;
    return g;
}

// Expands the answer of query row i from the exact search of the distinct rows.
//
// `levels` lists (squared distance, reference group) pairs in ascending order:
// for a self search the row's own group at 0.0 first, then the exact distinct
// neighbours of its group, which are the `n_listed` nearest groups (the
// others being at least as far as the last listed one). The contract orders
// points by (exact squared distance, index); every member of a group has the
// group's distance, so the answer is, level by level (groups at one exact
// distance), the members of the level's groups in index order (the row itself
// skipped). This is complete for every level that ends before the list does;
// a level that reaches the list's end may miss unlisted groups at the same
// distance, unless every group is listed. Such a row (exact float64 ties at
// the list's end: common on integer-valued data) returns false, to be
// expanded again from a longer list (knn_search).
bool expand_row(const std::vector<std::pair<double, int64_t>>& levels, bool every_group_listed,
                const RowGroups& groups, bool self, int64_t i, int k, double* distances,
                int64_t* indices, std::vector<int64_t>& level) {
    int filled = 0;
    for (size_t pos = 0; pos < levels.size() && filled < k;) {
        size_t end = pos;
        while (end < levels.size() && levels[end].first == levels[pos].first) ++end;
        const int need = k - filled;
        level.clear();
        for (size_t t = pos; t < end; ++t) {  // a group's first `need` members suffice
            const int64_t h = levels[t].second;
            int taken = 0;
            for (int64_t p = groups.start[h]; p < groups.start[h + 1] && taken < need; ++p) {
                if (self && groups.members[p] == i) continue;
                level.push_back(groups.members[p]);
                ++taken;
            }
        }
        std::sort(level.begin(), level.end());
        const double d = std::sqrt(levels[pos].first);
        for (size_t t = 0; t < level.size() && filled < k; ++t, ++filled) {
            distances[filled] = d;
            indices[filled] = level[t];
        }
        if (filled == k && end == levels.size() && !every_group_listed) return false;
        pos = end;
    }
    return filled == k;
}

// The expansion of a grouped search's rows (knn_search): each row from its
// group's answer row of (squared distance, group) pairs (expand_row), and the
// rows that fail from wider searches of their groups (widen).
struct GroupExpansion {
    const MatrixView& query;
    const MatrixView& distinct_r;  // the reference groups' first rows
    const RowGroups& qg;           // the query rows' groups
    const RowGroups& ref_groups;
    const bool self;
    const KnnOptions& opt;
    const SgemmFn sgemm;
    const int64_t available;  // reference groups a row may list
    double* const distances;
    int64_t* const indices;
    int64_t* const progress;  // as in search_rows

    // Expands rows[0, n_rows) (all rows when null) from `width` pairs per
    // answer row, group g's at row slot[g] - slot0 of dist / idx (g when
    // `slot` is empty); returns the rows that failed, ascending.
    std::vector<int64_t> expand(const int64_t* rows, int64_t n_rows, int width,
                                const double* dist, const int64_t* idx,
                                const std::vector<int64_t>& slot, int64_t slot0) const {
        constexpr int64_t kChunk = 256;
        std::vector<int64_t> failed;
        std::mutex lock;
        parallel_for((n_rows + kChunk - 1) / kChunk, opt.n_threads, [&](int64_t c, int) {
            std::vector<std::pair<double, int64_t>> levels;
            std::vector<int64_t> level, mine;
            for (int64_t r = c * kChunk; r < std::min(n_rows, (c + 1) * kChunk); ++r) {
                const int64_t i = rows ? rows[r] : r;
                const int64_t g = qg.group_of[i];
                const int64_t s = slot.empty() ? g : slot[g] - slot0;
                levels.clear();
                if (self) levels.emplace_back(0.0, g);
                for (int j = 0; j < width; ++j)  // (a wider search lists the group itself)
                    if (!(self && idx[s * width + j] == g))
                        levels.emplace_back(dist[s * width + j], idx[s * width + j]);
                const bool all = int64_t(levels.size()) - (self ? 1 : 0) == available;
                if (!expand_row(levels, all, ref_groups, self, i, opt.k, distances + i * opt.k,
                                indices + i * opt.k, level))
                    mine.push_back(i);
            }
            std::lock_guard<std::mutex> guard(lock);
            failed.insert(failed.end(), mine.begin(), mine.end());
        });
        std::sort(failed.begin(), failed.end());
        return failed;
    }

    struct Round {
        std::vector<int64_t> failed;  // rows that failed again, ascending
        int64_t groups = 0;           // groups searched
        int64_t fallbacks = 0;        // of them, searched exhaustively
    };

    // Expands `pending` rows from a non-self search of their groups' first
    // rows for `width` groups (a self search asks for one more and drops the
    // group itself), in chunks of at most kWideEntries list entries.
    Round widen(const std::vector<int64_t>& pending, int64_t width) const {
        std::vector<int64_t> slot(qg.n_groups(), -1), groups;
        for (const int64_t i : pending)
            if (slot[qg.group_of[i]] < 0) {
                slot[qg.group_of[i]] = int64_t(groups.size());
                groups.push_back(qg.group_of[i]);
            }
        std::vector<int64_t> data_rows(groups.size());
        for (size_t j = 0; j < groups.size(); ++j) data_rows[j] = qg.first[groups[j]];
        KnnOptions wopt = opt;
        wopt.exclude_self = false;
        wopt.k = int(width + (self ? 1 : 0));
        wopt.n_candidates =
            int(std::min<int64_t>(wopt.k + (opt.n_candidates - opt.k), distinct_r.n_rows));
        const int64_t n = int64_t(groups.size());
        const int64_t per_chunk = std::max<int64_t>(1, kWideEntries / wopt.n_candidates);
        std::vector<std::vector<int64_t>> rows_of((n + per_chunk - 1) / per_chunk);
        for (const int64_t i : pending) rows_of[slot[qg.group_of[i]] / per_chunk].push_back(i);
        Round round;
        round.groups = n;
        for (int64_t g0 = 0; g0 < n; g0 += per_chunk) {
            MatrixView part = query;
            part.row_index = data_rows.data() + g0;
            part.n_rows = std::min(per_chunk, n - g0);
            std::vector<double> dist(size_t(part.n_rows) * wopt.k);
            std::vector<int64_t> idx(dist.size());
            round.fallbacks +=
                search_rows(part, distinct_r, wopt, sgemm, true, dist.data(), idx.data(), progress);
            const auto& rows = rows_of[g0 / per_chunk];
            const auto failed = expand(rows.data(), int64_t(rows.size()), wopt.k, dist.data(),
                                       idx.data(), slot, g0);
            round.failed.insert(round.failed.end(), failed.begin(), failed.end());
        }
        std::sort(round.failed.begin(), round.failed.end());
        return round;
    }
};

}  // namespace

RowGroups group_equal_rows(const MatrixView& m, int n_threads) {
    return m.is_float64 ? group_impl<double>(m, n_threads) : group_impl<float>(m, n_threads);
}

int64_t knn_search(const MatrixView& query, const MatrixView& ref, const KnnOptions& opt,
                   SgemmFn sgemm, double* distances, int64_t* indices, int64_t* progress) {
    if (query.row_index || ref.row_index)
        throw std::invalid_argument("knn_search: the views must not be row subsets");
    const bool self = opt.exclude_self;
    const RowGroups ref_groups = group_equal_rows(ref, opt.n_threads);
    const RowGroups query_groups = self ? RowGroups() : group_equal_rows(query, opt.n_threads);
    const RowGroups& qg = self ? ref_groups : query_groups;
    if (ref_groups.n_groups() == ref.n_rows && qg.n_groups() == query.n_rows)
        return search_rows(query, ref, opt, sgemm, false, distances, indices, progress);

    // Search the distinct rows (the lowest row of each group, without a copy)
    // for one group more than k needs, so that the k-th point is reached
    // before the list's end except at exact ties.
    MatrixView distinct_q = query, distinct_r = ref;
    distinct_q.row_index = qg.first.data();
    distinct_q.n_rows = qg.n_groups();
    distinct_r.row_index = ref_groups.first.data();
    distinct_r.n_rows = ref_groups.n_groups();
    const int64_t available = ref_groups.n_groups() - (self ? 1 : 0);
    KnnOptions dopt = opt;
    dopt.k = int(std::min<int64_t>(opt.k + 1, available));
    dopt.n_candidates = int(std::min<int64_t>(dopt.k + (opt.n_candidates - opt.k), available));
    const int kd = dopt.k;
    std::vector<double> dd(size_t(distinct_q.n_rows) * std::max(kd, 0));
    std::vector<int64_t> di(dd.size());
    int64_t fallbacks = 0;
    if (kd > 0)
        fallbacks = search_rows(distinct_q, distinct_r, dopt, sgemm, true, dd.data(), di.data(),
                                progress);
    else if (progress)  // a single distinct point: nothing to search
        progress[0] = progress[1] = 1;

    // Expand every row; a row whose tie level reaches its list's end is
    // expanded again from wider searches of its group (GroupExpansion::widen),
    // where it used to be searched exhaustively: on 20,000 rows of integer
    // coordinates 0-9 in D = 8 (k = 10, a few duplicates) 13,102 rows were,
    // 1.4 s of a 1.5 s search. The rounds stop when the lists would reach half
    // the groups, or after a search that left more than one group in ten to
    // the exhaustive search (near-ties within float32 round-off, which longer
    // lists do not settle); the rows left are searched exhaustively. (Rounds
    // that expanded few rows are no reason to stop: exact tie levels larger
    // than the list give way to the next, 8 times as long.)
    const GroupExpansion expansion{query, distinct_r, qg,        ref_groups, self,    opt,
                                   sgemm, available,  distances, indices,    progress};
    std::vector<int64_t> pending = expansion.expand(nullptr, query.n_rows, kd, dd.data(),
                                                    di.data(), {}, 0);
    dd = {};
    di = {};
    bool paid = 10 * fallbacks <= distinct_q.n_rows;  // else widening was in vain already
    for (int64_t width = kd; paid && !pending.empty();) {
        width = opt.k + kWiden * std::max<int64_t>(1, width - opt.k);
        if (width >= available / 2) break;
        const auto round = expansion.widen(pending, width);
        fallbacks += round.fallbacks;
        paid = 10 * round.fallbacks <= round.groups;
        pending = round.failed;
    }
    fallbacks += exhaustive_rows(query, ref, self, opt.k, pending, opt.n_threads, opt.cancel,
                                 distances, indices);
    return fallbacks;
}

}  // namespace idest
