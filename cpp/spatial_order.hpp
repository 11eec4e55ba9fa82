// A spatial order of the rows, so that each tile block of the k-NN pass holds
// points that are close together.
//
// Why: a row's candidate list only rejects a point once it holds closer ones.
// When the blocks are spatially coherent, the diagonal tiles (a block against
// itself) and then the tiles of nearby blocks fill every list with near-final
// candidates, and the remaining tiles pass almost no threshold test, which is
// what keeps the selection cheap next to the distance arithmetic.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

#include "knn.hpp"
#include "parallel.hpp"

namespace idest {

namespace detail {

template <class T>
double sqdist_to(const T* x, const std::vector<double>& p) {
    double s = 0.0;
    for (size_t j = 0; j < p.size(); ++j) {
        const double d = double(x[j]) - p[j];
        s += d * d;
    }
    return s;
}

// Position in [lo, hi) of the row of `order` farthest from p.
template <class T>
int64_t farthest(const MatrixView& m, const std::vector<int64_t>& order, int64_t lo, int64_t hi,
                 const std::vector<double>& p) {
    int64_t best = lo;
    double best_d = -1.0;
    for (int64_t i = lo; i < hi; ++i) {
        const double d = sqdist_to(row_ptr<T>(m, order[i]), p);
        if (d > best_d) best_d = d, best = i;
    }
    return best;
}

template <class T>
std::vector<double> row_copy(const MatrixView& m, int64_t i) {
    const T* x = row_ptr<T>(m, i);
    return std::vector<double>(x, x + m.n_cols);
}

}  // namespace detail

// Row indices in the order of the leaves of a random-projection-style tree:
// each node's rows are split at the median of their projection on the line
// through two far-apart rows (the farthest row from any one, and the farthest
// from that: a cheap stand-in for the principal axis), down to `leaf` rows.
// The nodes of each level are split in parallel. O(n D log(n / leaf)) time,
// O(n) extra memory; deterministic.
template <class T>
std::vector<int64_t> spatial_order(const MatrixView& m, int64_t leaf, int n_threads) {
    std::vector<int64_t> order(m.n_rows);
    std::iota(order.begin(), order.end(), int64_t(0));
    std::vector<std::pair<int64_t, int64_t>> level{{0, m.n_rows}};
    while (!level.empty()) {
        std::vector<std::pair<int64_t, int64_t>> next(2 * level.size(), {0, 0});
        parallel_for(int64_t(level.size()), n_threads, [&](int64_t node, int) {
            const auto [lo, hi] = level[node];
            if (hi - lo <= leaf) return;
            const auto first = detail::row_copy<T>(m, order[lo]);
            const auto a = detail::row_copy<T>(m, order[detail::farthest<T>(m, order, lo, hi, first)]);
            const auto b = detail::row_copy<T>(m, order[detail::farthest<T>(m, order, lo, hi, a)]);
            std::vector<std::pair<double, int64_t>> keyed;
            keyed.reserve(hi - lo);
            for (int64_t i = lo; i < hi; ++i) {
                const T* x = row_ptr<T>(m, order[i]);
                double key = 0.0;
                for (int64_t j = 0; j < m.n_cols; ++j) key += double(x[j]) * (b[j] - a[j]);
                keyed.emplace_back(key, order[i]);
            }
            const int64_t mid = (hi - lo) / 2;
            std::nth_element(keyed.begin(), keyed.begin() + mid, keyed.end());
            for (int64_t i = lo; i < hi; ++i) order[i] = keyed[i - lo].second;
            next[2 * node] = {lo, lo + mid};
            next[2 * node + 1] = {lo + mid, hi};
        });
        level.clear();
        for (const auto& node : next)
            if (node.second - node.first > leaf) level.push_back(node);
    }
    return order;
}

}  // namespace idest
