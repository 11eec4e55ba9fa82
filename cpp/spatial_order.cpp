// See spatial_order.hpp.
#include "spatial_order.hpp"

#include <algorithm>
#include <numeric>
#include <utility>

#include "parallel.hpp"

namespace idest {
namespace {

// Squared distance (or, with `dot`, dot product) of two float32 rows, in eight
// independent partial sums so that the compiler vectorises it.
template <bool dot>
float reduce(const float* x, const float* y, int64_t dim) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= dim; j += 8)
        for (int l = 0; l < 8; ++l) {
            const float v = dot ? x[j + l] * y[j + l] : (x[j + l] - y[j + l]) * (x[j + l] - y[j + l]);
            acc[l] += v;
        }
    for (; j < dim; ++j) acc[0] += dot ? x[j] * y[j] : (x[j] - y[j]) * (x[j] - y[j]);
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// The row of order[lo, hi) farthest from p.
const float* farthest(const float* rows, int64_t dim, const std::vector<int64_t>& order,
                      int64_t lo, int64_t hi, const float* p) {
    const float* best = rows + order[lo] * dim;
    float best_d = -1.0f;
    for (int64_t i = lo; i < hi; ++i) {
        const float* x = rows + order[i] * dim;
        const float d = reduce<false>(x, p, dim);
        if (d > best_d) best_d = d, best = x;
    }
    return best;
}

}  // namespace

std::vector<int64_t> spatial_order(const float* rows, int64_t n, int64_t dim, int64_t leaf,
                                   int n_threads) {
    std::vector<int64_t> order(n);
    std::iota(order.begin(), order.end(), int64_t(0));
    std::vector<std::pair<int64_t, int64_t>> level;
    if (n > leaf) level.emplace_back(0, n);
    while (!level.empty()) {
        std::vector<std::pair<int64_t, int64_t>> next(2 * level.size(), {0, 0});
        parallel_for(int64_t(level.size()), n_threads, [&](int64_t node, int) {
            const auto [lo, hi] = level[node];
            const float* a = farthest(rows, dim, order, lo, hi, rows + order[lo] * dim);
            const float* b = farthest(rows, dim, order, lo, hi, a);
            std::vector<float> direction(dim);
            for (int64_t j = 0; j < dim; ++j) direction[j] = b[j] - a[j];
            std::vector<std::pair<float, int64_t>> keyed;
            keyed.reserve(hi - lo);
            for (int64_t i = lo; i < hi; ++i)
                keyed.emplace_back(reduce<true>(rows + order[i] * dim, direction.data(), dim), order[i]);
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
