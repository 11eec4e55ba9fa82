// The fused tile kernel (see fused_scan.hpp): a portable driver and two x86-64
// register blocks, AVX2 + FMA and AVX-512, compiled with target attributes and
// chosen at run time. Other targets compile the driver only; fused_scan_supported
// is false there and the search takes the SGEMM path.
#include "fused_scan.hpp"

#include "cpu.hpp"

#if IDEST_X86
#include <immintrin.h>
#endif

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace idest {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr int kRowsAvx2 = 6;     // query rows per register block: 6 x 2 accumulators
constexpr int kRowsAvx512 = 12;  // 12 accumulators of 16 floats
constexpr int kRowsMax = kRowsAvx512;

// Signature shared by the register blocks: rows [row0, row0 + kRows) against
// groups [g0, g1). `a` points at the block's rows (zero-padded to the kernel's
// row count), `an` holds their norms (+inf for padding).
using RowBlockFn = void (*)(const float* a, const float* an, int rows, int64_t row0,
                            const PackedColumns& cols, int64_t g0, int64_t g1, int64_t col0,
                            int64_t dim, bool symmetric, bool skip_self, CandidateLists& lists);

#if IDEST_X86
// Offers the entries of one rows x 16 block that passed a threshold (rare once
// the lists have filled) to the candidate lists: for each row, only the
// columns whose bit is set in hits[r]. Kept out of line: the rare path stays
// out of the kernel loop's registers.
__attribute__((noinline))
void offer_block(const float (*d)[kFusedGroup], const unsigned* hits, int rows, int64_t row0,
                 int64_t col0, int64_t n_cols, bool symmetric, bool skip_self,
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

// The column thresholds of group columns [c0, c0 + 16) of a symmetric tile. A
// partial last group must not read thresholds past its columns (they may
// belong to a block another thread is updating): they read +inf instead.
const float* column_thresholds(const CandidateLists& lists, const PackedColumns& cols,
                               int64_t col0, int64_t c0, float* tail) {
    const float* w = lists.worst.data() + col0 + c0;
    if (cols.n - c0 >= kFusedGroup) return w;
    for (int64_t c = 0; c < kFusedGroup; ++c) tail[c] = c < cols.n - c0 ? w[c] : kInf;
    return tail;
}

__attribute__((target("avx2,fma")))
void row_block_avx2(const float* a, const float* an, int rows, int64_t row0,
                    const PackedColumns& cols, int64_t g0, int64_t g1, int64_t col0, int64_t dim,
                    bool symmetric, bool skip_self, CandidateLists& lists) {
    constexpr int kRows = kRowsAvx2;
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
            alignas(32) float tail[kFusedGroup];
            const float* w = column_thresholds(lists, cols, col0, c0, tail);
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

// The same block with one 16-float register per row: 12 FMA chains of
// 16 lanes, and comparisons straight into mask registers.
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
void row_block_avx512(const float* a, const float* an, int rows, int64_t row0,
                      const PackedColumns& cols, int64_t g0, int64_t g1, int64_t col0,
                      int64_t dim, bool symmetric, bool skip_self, CandidateLists& lists) {
    constexpr int kRows = kRowsAvx512;
    const __m512 two = _mm512_set1_ps(2.0f);
    for (int64_t g = g0; g < g1; ++g) {
        const float* b = cols.values.data() + g * dim * kFusedGroup;
        __m512 acc[kRows];
        for (int r = 0; r < kRows; ++r) acc[r] = _mm512_setzero_ps();
        for (int64_t j = 0; j < dim; ++j) {
            const __m512 bj = _mm512_load_ps(b + j * kFusedGroup);
            for (int r = 0; r < kRows; ++r)
                acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(a[r * dim + j]), bj, acc[r]);
        }
        const int64_t c0 = g * kFusedGroup;
        const __m512 yn = _mm512_load_ps(cols.norms.data() + c0);
        __m512 cw = _mm512_setzero_ps();
        if (symmetric) {
            alignas(64) float tail[kFusedGroup];
            cw = _mm512_loadu_ps(column_thresholds(lists, cols, col0, c0, tail));
        }
        __m512 d[kRows];
        unsigned hits[kRows];
        unsigned any = 0;
        for (int r = 0; r < kRows; ++r) {
            const __m512 w = _mm512_set1_ps(r < rows ? lists.worst[row0 + r] : kInf);
            d[r] = _mm512_fnmadd_ps(two, acc[r], _mm512_add_ps(_mm512_set1_ps(an[r]), yn));
            __mmask16 m = _mm512_cmp_ps_mask(d[r], w, _CMP_LT_OQ);
            if (symmetric) m |= _mm512_cmp_ps_mask(d[r], cw, _CMP_LT_OQ);
            hits[r] = m;
            any |= m;
        }
        if (any) {
            alignas(64) float out[kRows][kFusedGroup];
            for (int r = 0; r < kRows; ++r) _mm512_store_ps(out[r], d[r]);
            offer_block(out, hits, rows, row0, col0 + c0, cols.n - c0, symmetric, skip_self,
                        lists);
        }
    }
}
#endif

}  // namespace

bool fused_scan_supported(FusedIsa isa) {
    return isa == FusedIsa::kAvx512 ? cpu_has_avx512() : cpu_has_avx2_fma();
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

void fused_scan(FusedIsa isa, const float* a, const float* a_norms, int64_t n_rows, int64_t row0,
                const PackedColumns& cols, int64_t col0, int64_t dim, bool symmetric,
                bool skip_self, CandidateLists& lists) {
    RowBlockFn row_block = nullptr;
    int block_rows = 0;
#if IDEST_X86
    if (isa == FusedIsa::kAvx512) row_block = row_block_avx512, block_rows = kRowsAvx512;
    else row_block = row_block_avx2, block_rows = kRowsAvx2;
#endif
    if (!row_block || !fused_scan_supported(isa))
        throw std::invalid_argument("fused_scan: this CPU or build lacks the instruction set");
    const int64_t groups = (cols.n + kFusedGroup - 1) / kFusedGroup;
    // Column chunks of about 16 KB of packed values stay in L1 while every row
    // block of the tile passes over them.
    const int64_t chunk = std::max<int64_t>(1, 16384 / (dim * kFusedGroup * 4));
    std::vector<float> tail(size_t(kRowsMax * dim), 0.0f);
    for (int64_t g0 = 0; g0 < groups; g0 += chunk) {
        const int64_t g1 = std::min(groups, g0 + chunk);
        for (int64_t i0 = 0; i0 < n_rows; i0 += block_rows) {
            const int rows = int(std::min<int64_t>(block_rows, n_rows - i0));
            float norms[kRowsMax];
            for (int r = 0; r < block_rows; ++r) norms[r] = r < rows ? a_norms[i0 + r] : kInf;
            const float* block = a + i0 * dim;
            if (rows < block_rows) {
                std::copy_n(block, rows * dim, tail.data());
                block = tail.data();
            }
            row_block(block, norms, rows, row0 + i0, cols, g0, g1, col0, dim, symmetric,
                      skip_self, lists);
        }
    }
}

}  // namespace idest
