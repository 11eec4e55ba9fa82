// Per-row candidate lists of the float32 pass, shared by the two tile kernels
// (SGEMM + scans in knn.cpp, the fused kernel in fused_scan.cpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace idest {

// The `width` smallest approximate squared distances offered to each query
// row, sorted ascending (ties keep the earlier arrival). `worst[row]` is the
// threshold a point must beat to enter: the list's last entry once it is full,
// +inf before. The threshold only falls, so every point outside a full list was
// at least as far as its final entry (the certificate's premise).
class CandidateLists {
  public:
    const int width;
    std::vector<float> worst;

    CandidateLists(int64_t n_rows, int w)
        : width(w),
          worst(n_rows, std::numeric_limits<float>::infinity()),
          dist_(size_t(n_rows) * w),
          idx_(size_t(n_rows) * w),
          count_(n_rows, 0) {}

    void insert(int64_t row, float d, int64_t j) {
        float* cd = dist_.data() + row * width;
        int64_t* ci = idx_.data() + row * width;
        const int n = std::min(count_[row], width - 1);  // a full list drops its last entry
        int pos = 0;  // entries <= d: ties keep the earlier arrival
        for (int i = 0; i < n; ++i) pos += cd[i] <= d;
        std::memmove(cd + pos + 1, cd + pos, size_t(n - pos) * sizeof(float));
        std::memmove(ci + pos + 1, ci + pos, size_t(n - pos) * sizeof(int64_t));
        cd[pos] = d;
        ci[pos] = j;
        count_[row] = n + 1;
        if (count_[row] == width) worst[row] = cd[width - 1];
    }

    // Copies the row's indices to out[0..width), -1 past its entries, and
    // returns how many entries it holds (width when full).
    int finish(int64_t row, int64_t* out) const {
        const int n = count_[row];
        for (int j = 0; j < width; ++j) out[j] = j < n ? idx_[size_t(row) * width + j] : -1;
        return n;
    }

  private:
    std::vector<float> dist_;
    std::vector<int64_t> idx_;
    std::vector<int> count_;
};

}  // namespace idest
