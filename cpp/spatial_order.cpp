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

// The row of rows 0, step, 2 step, ... < n farthest from p.
const float* farthest(const float* rows, int64_t n, int64_t step, int64_t dim, const float* p) {
    const float* best = rows;
    float best_d = -1.0f;
    for (int64_t i = 0; i < n; i += step) {
        const float d = reduce<false>(rows + i * dim, p, dim);
        if (d > best_d) best_d = d, best = rows + i * dim;
    }
    return best;
}

// Splits the node rows[0, n) (with the input row of each, `order`) in two
// along the line through two far-apart rows, in place, and returns the size
// of the first part: the rows projecting below the median of a sample of the
// projections, then as many of those projecting at it as bring the part
// closest to n / 2 (rows distinct in the input may round to equal float32
// rows, or project alike). The sample's median instead of the exact one: the
// parts differ in size by a few per cent, and one partition pass replaces the
// selection that took most of the time.
int64_t split(float* rows, int64_t* order, int64_t n, int64_t dim) {
    constexpr int64_t kSample = 255;
    const int64_t step = std::max<int64_t>(1, n / kSample);
    const float* a = farthest(rows, n, step, dim, rows);
    const float* b = farthest(rows, n, step, dim, a);
    std::vector<float> direction(dim);
    for (int64_t j = 0; j < dim; ++j) direction[j] = b[j] - a[j];
    std::vector<float> key(n);
    for (int64_t i = 0; i < n; ++i) key[i] = reduce<true>(rows + i * dim, direction.data(), dim);
    std::vector<float> sample;
    for (int64_t i = 0; i < n; i += step) sample.push_back(key[i]);
    std::nth_element(sample.begin(), sample.begin() + sample.size() / 2, sample.end());
    const float pivot = sample[sample.size() / 2];
    // Hoare's partition of rows[first, n): the rows whose key passes `front`
    // to the front, swapped whole; returns where the others begin.
    auto partition = [&](int64_t first, auto front) {
        int64_t lo = first, hi = n - 1;
        while (true) {
            while (lo <= hi && front(key[lo])) ++lo;
            while (lo <= hi && !front(key[hi])) --hi;
            if (lo >= hi) return lo;
            std::swap(key[lo], key[hi]);
            std::swap(order[lo], order[hi]);
            std::swap_ranges(rows + lo * dim, rows + (lo + 1) * dim, rows + hi * dim);
        }
    };
    const int64_t below = partition(0, [&](float v) { return v < pivot; });
    if (below >= n / 2) return below;  // >= 1 (n >= 2); < n: the pivot is a key
    // few rows below: the rows at the pivot (at least one) next, to even the parts
    const int64_t at = partition(below, [&](float v) { return v == pivot; });
    return std::min(at, std::max(below, n / 2));
}

}  // namespace

KeptVector<int64_t> spatial_order(float* rows, int64_t n, int64_t dim, int64_t leaf,
                                   int n_threads) {
    KeptVector<int64_t> order(n);
    std::iota(order.begin(), order.end(), int64_t(0));
    std::vector<std::pair<int64_t, int64_t>> level;
    if (n > leaf) level.emplace_back(0, n);
    while (!level.empty()) {
        std::vector<std::pair<int64_t, int64_t>> next(2 * level.size(), {0, 0});
        parallel_for(int64_t(level.size()), n_threads, [&](int64_t node, int) {
            const auto [lo, hi] = level[node];
            const int64_t mid = lo + split(rows + lo * dim, order.data() + lo, hi - lo, dim);
            next[2 * node] = {lo, mid};
            next[2 * node + 1] = {mid, hi};
        });
        level.clear();
        for (const auto& node : next)
            if (node.second - node.first > leaf) level.push_back(node);
    }
    return order;
}

}  // namespace idest
