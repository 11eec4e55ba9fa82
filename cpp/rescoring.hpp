// Exact float64 re-scoring of candidates: the contract's squared distance,
// computed several pairs at a time, and the sort of (distance, index) pairs.
//
// The contract's squared distance (exact_sqdist) sums (x_j - y_j)^2 in float64
// over eight partial sums, lane l taking the coordinates j = l (mod 8). One
// such sum is a chain of dependent additions: latency-bound. The batched
// kernels below compute kSqdistBatch pairs at once, each in exactly that order
// (so bit for bit the same value), which keeps the floating-point units busy;
// they take the query row already converted to float64 (exact) and read each
// reference row once per pair. No multiply-add is fused anywhere (the build
// uses -ffp-contract=off): fusing would change the rounding.
#pragma once

#include <cstdint>
#include <vector>

#include "cpu.hpp"
#include "knn.hpp"

namespace idest {

// Squared Euclidean distance from direct differences, accumulated in float64
// (eight partial sums: two AVX2 registers of four doubles, for instruction-level
// parallelism). Identical rows give exactly 0.0.
template <class T, class U>
IDEST_CLONES double exact_sqdist(const T* x, const U* y, int64_t dim) {
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= dim; j += 8)
        for (int l = 0; l < 8; ++l) {
            const double d = double(x[j + l]) - double(y[j + l]);
            s[l] += d * d;
        }
    for (; j < dim; ++j) {
        const double d = double(x[j]) - double(y[j]);
        s[0] += d * d;
    }
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

// Pairs per call of a batched kernel.
constexpr int kSqdistBatch = 4;

// out[p] = exact_sqdist(x[p], y[p], dim) for p < kSqdistBatch, bit for bit;
// x rows are float64, y rows float32 or float64 (the reference's type).
using SqdistBatchFn = void (*)(const double* const* x, const void* const* y, int64_t dim,
                               double* out);

// The widest batched kernel this CPU runs (AVX-512, AVX2, or portable C++) for
// reference rows of float64 (`float64`) or float32 values.
SqdistBatchFn sqdist_batch_kernel(bool float64);

// Fewer pairs than this are sorted by insertion (see sort_by_distance).
constexpr int64_t kInsertionSortMax = 64;

// Sorts the pairs (d2[i], id[i]), i < n, by d2 ascending, ties by the lower
// index (the contract's tie rule). Below kInsertionSortMax pairs, by
// insertion on (d2, id), in any input order (cheap on nearly sorted input,
// such as a candidate list in approximate order); from kInsertionSortMax on,
// the pairs must arrive in ascending index order: an LSD radix sort by d2's
// bytes (stable, skipping the bytes every key shares). d2 holds the bits of
// non-negative float64 values (+0.0, finite or +inf), whose order as
// unsigned integers is their numeric order. `tmp_d2`, `tmp_id` are scratch
// (resized as needed).
void sort_by_distance(uint64_t* d2, int64_t* id, int64_t n, std::vector<uint64_t>& tmp_d2,
                      std::vector<int64_t>& tmp_id);

}  // namespace idest
