// Per-row candidate lists of the float32 pass, shared by the two tile kernels
// (SGEMM + scans in knn.cpp, the fused kernel in fused_scan.cpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <utility>
#include <vector>

namespace idest {

// For each query row, the `width` smallest approximate squared distances
// offered to it, and a threshold `worst[row]` that a point must beat (strictly)
// to be offered at all. The threshold only falls, and every point that leaves
// a list leaves with a distance >= the threshold set at that moment, so every
// point outside the final list was at least as far as the final threshold
// (the certificate's premise); after finish(), that threshold is the largest
// kept distance.
//
// Two layouts, chosen by width:
// - small widths (k around 10): a sorted insertion list; the threshold is its
//   last entry once full and tightens at every insertion. O(width) per
//   insertion, which is cheap at this size and keeps the threshold tight.
// - larger widths: an unsorted buffer of `capacity` = width + width / 2
//   entries, compacted to its `width` smallest by partial selection
//   (std::nth_element) when it fills; the threshold is then the width-th
//   smallest. Each compaction costs O(capacity) and frees width / 2 slots: O(1)
//   amortised per insertion, where the sorted list costs O(k) (quadratic in k
//   over a row's life).
class CandidateLists {
  public:
    // Largest width kept as a sorted list. Measured (one thread, CPU time,
    // k = 10, width 18): the buffer costs 25 % more at 20,000 x 20 (fused
    // kernel) and 4 % more at 10,000 x 256 (SGEMM); at width 125 the two are
    // within noise of each other (0.80 vs 0.85 s at 10,000 x 256); at
    // k = 1,000 the buffer is 2-3x faster.
    static constexpr int kSortedMaxWidth = 32;

    const int width;
    std::vector<float> worst;

    // Reference indices are kept as int32: n_ref < 2^31.
    CandidateLists(int64_t n_rows, int w, int64_t n_ref)
        : width(w),
          worst(n_rows, std::numeric_limits<float>::infinity()),
          sorted_(w <= kSortedMaxWidth),
          capacity_(sorted_ ? w : w + std::max(w / 2, 16)),
          dist_(size_t(n_rows) * capacity_),
          idx_(size_t(n_rows) * capacity_),
          count_(n_rows, 0) {
        if (n_ref > std::numeric_limits<int32_t>::max())
            throw std::length_error("the k-NN core handles at most 2^31 - 1 reference points");
    }

    // Offers (d, j) to `row`; the caller has checked d < worst[row].
    void insert(int64_t row, float d, int64_t j) {
        float* cd = dist_.data() + size_t(row) * capacity_;
        int32_t* ci = idx_.data() + size_t(row) * capacity_;
        int& n = count_[row];
        if (!sorted_) {
            cd[n] = d;
            ci[n] = int32_t(j);
            if (++n == capacity_) compact(row);
            return;
        }
        n = std::min(n, width - 1);  // a full list drops its last entry
        int pos = 0;  // entries <= d (contiguous floats: vectorised); ties keep the earlier arrival
        for (int i = 0; i < n; ++i) pos += cd[i] <= d;
        std::memmove(cd + pos + 1, cd + pos, size_t(n - pos) * sizeof(float));
        std::memmove(ci + pos + 1, ci + pos, size_t(n - pos) * sizeof(int32_t));
        cd[pos] = d;
        ci[pos] = int32_t(j);
        if (++n == width) worst[row] = cd[width - 1];
    }

    // Reduces the row to its `width` smallest entries, copies their indices to
    // out[0..width), -1 past its entries, and returns how many it holds. A row
    // that holds `width` entries and has a finite worst[row] certifies that
    // every other point was offered at a distance >= worst[row]; a finite
    // threshold is missing only where an approximation was not finite.
    int finish(int64_t row, int64_t* out) {
        if (!sorted_ && count_[row] > width) compact(row);
        const int n = count_[row];
        const int32_t* ci = idx_.data() + size_t(row) * capacity_;
        for (int j = 0; j < width; ++j) out[j] = j < n ? ci[j] : -1;
        return n;
    }

  private:
    // Partial selection of the row's `width` smallest (in a per-thread scratch
    // of pairs, written back in place).
    void compact(int64_t row) {
        float* cd = dist_.data() + size_t(row) * capacity_;
        int32_t* ci = idx_.data() + size_t(row) * capacity_;
        const int n = count_[row];
        thread_local std::vector<std::pair<float, int32_t>> scratch;
        scratch.resize(n);
        for (int i = 0; i < n; ++i) scratch[i] = {cd[i], ci[i]};
        std::nth_element(scratch.begin(), scratch.begin() + (width - 1), scratch.end(),
                         [](const auto& x, const auto& y) { return x.first < y.first; });
        for (int i = 0; i < width; ++i) cd[i] = scratch[i].first, ci[i] = scratch[i].second;
        worst[row] = cd[width - 1];  // the largest kept; every dropped entry is >= it
        count_[row] = width;
    }

    const bool sorted_;
    const int capacity_;
    std::vector<float> dist_;
    std::vector<int32_t> idx_;
    std::vector<int> count_;
};

}  // namespace idest
