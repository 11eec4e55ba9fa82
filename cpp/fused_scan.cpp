// AVX2 + FMA implementation of the fused tile kernel; see fused_scan.hpp.
#include "fused_scan.hpp"

#include <immintrin.h>

#include <algorithm>
#include <limits>

namespace idest {
namespace {

constexpr int kRows = 6;  // query rows per register block: 6 x 2 accumulators

constexpr float kInf = std::numeric_limits<float>::infinity();

// Offers the entries of one 6 x 16 block that passed a threshold (rare once
// the lists have filled) to the candidate lists: for each row, only the
// columns whose bit is set in hits[r]. Kept out of line: the rare path stays
// out of the kernel loop's registers.
__attribute__((noinline))
void offer_block(const float (&d)[kRows][kFusedGroup], const unsigned (&hits)[kRows], int rows,
                 int64_t row0, int64_t col0, int64_t n_cols, bool symmetric, bool skip_self,
                 CandidateLists& lists) {
    for (int r = 0; r < rows; ++r) {
        const int64_t row = row0 + r;
        for (unsigned bits = hits[r]; bits; bits &= bits - 1) {
            const int c = __builtin_ctz(bits);
            const int64_t col = col0 + c;
            if (c >= n_cols) break;  // padding of the last group
            const float v = d[r][c];
            if (v < lists.worst[row] && !(skip_self && col == row)) lists.insert(row, v, col);
            if (symmetric && v < lists.worst[col]) lists.insert(col, v, row);
        }
    }
}

// Rows [i0, i0 + kRows) against groups [g0, g1). `a` points at row i0
// (zero-padded to kRows rows), `an` holds their norms (+inf for padding).
__attribute__((target("avx2,fma")))
void row_block(const float* a, const float* an, int rows, int64_t row0, const PackedColumns& cols,
               int64_t g0, int64_t g1, int64_t col0, int64_t dim, bool symmetric, bool skip_self,
               CandidateLists& lists) {
    const __m256 two = _mm256_set1_ps(2.0f);
    for (int64_t g = g0; g < g1; ++g) {
        const float* b = cols.values.data() + g * dim * kFusedGroup;
        __m256 acc[kRows][2];
        for (int r = 0; r < kRows; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
        for (int64_t j = 0; j < dim; ++j) {
            const __m256 b0 = _mm256_load_ps(b + j * kFusedGroup);
            const __m256 b1 = _mm256_load_ps(b + j * kFusedGroup + 8);
            for (int r = 0; r < kRows; ++r) {
                const __m256 x = _mm256_broadcast_ss(a + r * dim + j);
                acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
            }
        }
        // d = (|x|^2 + |y|^2) - 2 x.y, tested against the row thresholds and,
        // for a symmetric tile, the column thresholds.
        const int64_t c0 = g * kFusedGroup;
        const __m256 yn0 = _mm256_load_ps(cols.norms.data() + c0);
        const __m256 yn1 = _mm256_load_ps(cols.norms.data() + c0 + 8);
        __m256 cw0 = _mm256_setzero_ps(), cw1 = _mm256_setzero_ps();
        if (symmetric) {
            // A partial last group must not read thresholds past its columns
            // (they may belong to a block another thread is updating).
            alignas(32) float tail[kFusedGroup];
            const float* w = lists.worst.data() + col0 + c0;
            if (cols.n - c0 < kFusedGroup) {
                for (int64_t c = 0; c < kFusedGroup; ++c) tail[c] = c < cols.n - c0 ? w[c] : kInf;
                w = tail;
            }
            cw0 = _mm256_loadu_ps(w);
            cw1 = _mm256_loadu_ps(w + 8);
        }
        __m256 d[kRows][2];
        unsigned hits[kRows];
        unsigned any = 0;
        for (int r = 0; r < kRows; ++r) {
            const __m256 xn = _mm256_set1_ps(an[r]);
            const __m256 w = _mm256_set1_ps(r < rows ? lists.worst[row0 + r] : kInf);
            d[r][0] = _mm256_fnmadd_ps(two, acc[r][0], _mm256_add_ps(xn, yn0));
            d[r][1] = _mm256_fnmadd_ps(two, acc[r][1], _mm256_add_ps(xn, yn1));
            __m256 m0 = _mm256_cmp_ps(d[r][0], w, _CMP_LT_OQ);
            __m256 m1 = _mm256_cmp_ps(d[r][1], w, _CMP_LT_OQ);
            if (symmetric) {
                m0 = _mm256_or_ps(m0, _mm256_cmp_ps(d[r][0], cw0, _CMP_LT_OQ));
                m1 = _mm256_or_ps(m1, _mm256_cmp_ps(d[r][1], cw1, _CMP_LT_OQ));
            }
            hits[r] = unsigned(_mm256_movemask_ps(m0)) | unsigned(_mm256_movemask_ps(m1)) << 8;
            any |= hits[r];
        }
        if (any) {
            alignas(32) float out[kRows][kFusedGroup];
            for (int r = 0; r < kRows; ++r) {
                _mm256_store_ps(out[r], d[r][0]);
                _mm256_store_ps(out[r] + 8, d[r][1]);
            }
            offer_block(out, hits, rows, row0, col0 + c0, cols.n - c0, symmetric, skip_self,
                        lists);
        }
    }
}

}  // namespace

bool fused_scan_supported() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

void AlignedFloats::assign(size_t n, float value) {
    constexpr size_t kAlign = 64 / sizeof(float);
    storage_.assign(n + kAlign, value);
    const auto address = reinterpret_cast<uintptr_t>(storage_.data());
    data_ = storage_.data() + (kAlign - (address / sizeof(float)) % kAlign) % kAlign;
}

void PackedColumns::pack(const float* rows, const float* row_norms, int64_t n_rows, int64_t dim) {
    const int64_t groups = (n_rows + kFusedGroup - 1) / kFusedGroup;
    n = n_rows;
    values.assign(size_t(groups * kFusedGroup * dim), 0.0f);
    norms.assign(size_t(groups * kFusedGroup), kInf);
    for (int64_t i = 0; i < n_rows; ++i) {
        float* out = values.data() + (i / kFusedGroup) * dim * kFusedGroup + i % kFusedGroup;
        for (int64_t j = 0; j < dim; ++j) out[j * kFusedGroup] = rows[i * dim + j];
        norms.data()[i] = row_norms[i];
    }
}

void fused_scan(const float* a, const float* a_norms, int64_t n_rows, int64_t row0,
                const PackedColumns& cols, int64_t col0, int64_t dim, bool symmetric,
                bool skip_self, CandidateLists& lists) {
    const int64_t groups = (cols.n + kFusedGroup - 1) / kFusedGroup;
    // Column chunks of about 16 KB of packed values stay in L1 while every row
    // block of the tile passes over them.
    const int64_t chunk = std::max<int64_t>(1, 16384 / (dim * kFusedGroup * 4));
    std::vector<float> tail(size_t(kRows * dim), 0.0f);
    for (int64_t g0 = 0; g0 < groups; g0 += chunk) {
        const int64_t g1 = std::min(groups, g0 + chunk);
        for (int64_t i0 = 0; i0 < n_rows; i0 += kRows) {
            const int rows = int(std::min<int64_t>(kRows, n_rows - i0));
            float norms[kRows];
            for (int r = 0; r < kRows; ++r) norms[r] = r < rows ? a_norms[i0 + r] : kInf;
            const float* block = a + i0 * dim;
            if (rows < kRows) {
                std::copy_n(block, rows * dim, tail.data());
                block = tail.data();
            }
            row_block(block, norms, rows, row0 + i0, cols, g0, g1, col0, dim, symmetric,
                      skip_self, lists);
        }
    }
}

}  // namespace idest
