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
// groups [g0, g1). `a` holds the block's rows (dimension-major, zero-padded to the kernel's row
// count) with their norms (+inf for padding).
using RowBlockFn = void (*)(const TileRows& a, int rows, int64_t row0, const PackedColumns& cols,
                            int64_t g0, int64_t g1, int64_t col0, int64_t dim, bool symmetric,
                            bool skip_self, CandidateLists& lists);

#if IDEST_X86
#define IDEST_AVX2 "avx2,fma"
#define IDEST_AVX512 "avx512f,avx512bw,avx512dq,avx512vl"

// Offers the entries of one rows x 16 block that passed a threshold (rare once
// the lists have filled) to the candidate lists, entry by entry: for each row,
// the columns whose bit is set in hits[r], each also to its column's list when
// `symmetric`. Kept out of line: the rare path stays out of the kernel loop's
// registers.
__attribute__((noinline))
void offer_entries(const float (*d)[kFusedGroup], const unsigned* hits, int rows, int64_t row0,
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

// The same offers list by list, for the AVX-512 selection
// (CandidateLists::offer_avx512, vector_insertable() lists): each row its
// entries, then (symmetric) each column its entries, one call per list. Which
// entries beat each side's threshold is found by vector compares, and the
// column side's entries are collected in one pass over the rows' hits.
// Measured against offer_entries (one thread, k = 10, the benchmark data, with
// the early exit; before the vector compares, which took 2-5 % more off the
// search): 1.07 against 1.12 s at 100,000 x 20, 87 against 94 ms at 20,000 x 20.
__attribute__((target(IDEST_AVX512), noinline))
void offer_lists(const float (*d)[kFusedGroup], const unsigned* hits, int rows, int64_t row0,
                 int64_t col0, int64_t n_cols, bool symmetric, bool skip_self,
                 CandidateLists& lists) {
    CandidateLists::Offer e[kFusedGroup];
    const unsigned columns = n_cols >= kFusedGroup ? 0xFFFFu : (1u << n_cols) - 1u;  // not padding
    for (int r = 0; r < rows; ++r) {
        const int64_t row = row0 + r;
        unsigned bits = hits[r] & columns;
        if (!bits) continue;
        bits &= _mm512_cmp_ps_mask(_mm512_load_ps(d[r]), _mm512_set1_ps(lists.worst[row]),
                                   _CMP_LT_OQ);
        if (skip_self && row >= col0 && row < col0 + kFusedGroup) bits &= ~(1u << (row - col0));
        int n = 0;
        for (; bits; bits &= bits - 1) {
            const int c = __builtin_ctz(bits);
            e[n++] = {d[r][c], int32_t(col0 + c)};
        }
        if (n) lists.offer_avx512(row, e, n);
    }
    if (!symmetric) return;
    // the columns' thresholds (+inf past the tile's columns, which are not read)
    const __m512 cw = _mm512_mask_loadu_ps(_mm512_set1_ps(kInf), __mmask16(columns),
                                           lists.worst.data() + col0);
    CandidateLists::Offer by_column[kFusedGroup][kRowsMax];
    int count[kFusedGroup] = {};
    unsigned any = 0;
    for (int r = 0; r < rows; ++r) {
        unsigned bits = hits[r] & columns;
        if (!bits) continue;
        bits &= _mm512_cmp_ps_mask(_mm512_load_ps(d[r]), cw, _CMP_LT_OQ);
        any |= bits;
        for (; bits; bits &= bits - 1) {
            const int c = __builtin_ctz(bits);
            by_column[c][count[c]++] = {d[r][c], int32_t(row0 + r)};
        }
    }
    for (; any; any &= any - 1) {
        const int c = __builtin_ctz(any);
        lists.offer_avx512(col0 + c, by_column[c], count[c]);
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

// Adds coordinates [j0, j1) of the block's dot products: the block's rows `a`
// (dimension-major: value j of row r at a[j * rows + r], so every broadcast is
// one base register and an offset) against one packed group `b`.
__attribute__((target(IDEST_AVX2), always_inline)) inline void accumulate_avx2(
    __m256 (&acc)[kRowsAvx2][2], const float* a, const float* b, int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
        const __m256 b0 = _mm256_load_ps(b + j * kFusedGroup);
        const __m256 b1 = _mm256_load_ps(b + j * kFusedGroup + 8);
        for (int r = 0; r < kRowsAvx2; ++r) {
            const __m256 x = _mm256_broadcast_ss(a + j * kRowsAvx2 + r);
            acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
        }
    }
}

// The threshold tests of one block (AVX2: two registers per row): the
// approximate squared distances d = (|x|^2 + |y|^2) - 2 x.y of the dot
// products `acc`, against the rows' thresholds and, for a symmetric tile, the
// columns' at `cwp` (null: not symmetric; loaded here, after the
// accumulation, where AVX2 has registers to spare). Fills d and the rows' hit
// masks; returns their union. With the norms of leading coordinates it is the
// early-exit test.
__attribute__((target(IDEST_AVX2), always_inline)) inline unsigned tests_avx2(
    const __m256 (&acc)[kRowsAvx2][2], const float* xn, const float* yn, int rows, int64_t row0,
    const float* cwp, const CandidateLists& lists, __m256 (&d)[kRowsAvx2][2],
    unsigned (&hits)[kRowsAvx2]) {
    const bool symmetric = cwp != nullptr;
    const __m256 two = _mm256_set1_ps(2.0f);
    const __m256 yn0 = _mm256_load_ps(yn), yn1 = _mm256_load_ps(yn + 8);
    __m256 cw[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    if (symmetric) cw[0] = _mm256_loadu_ps(cwp), cw[1] = _mm256_loadu_ps(cwp + 8);
    unsigned any = 0;
    for (int r = 0; r < kRowsAvx2; ++r) {
        const __m256 x = _mm256_set1_ps(xn[r]);
        const __m256 w = _mm256_set1_ps(r < rows ? lists.worst[row0 + r] : kInf);
        d[r][0] = _mm256_fnmadd_ps(two, acc[r][0], _mm256_add_ps(x, yn0));
        d[r][1] = _mm256_fnmadd_ps(two, acc[r][1], _mm256_add_ps(x, yn1));
        __m256 m0 = _mm256_cmp_ps(d[r][0], w, _CMP_LT_OQ);
        __m256 m1 = _mm256_cmp_ps(d[r][1], w, _CMP_LT_OQ);
        if (symmetric) {
            m0 = _mm256_or_ps(m0, _mm256_cmp_ps(d[r][0], cw[0], _CMP_LT_OQ));
            m1 = _mm256_or_ps(m1, _mm256_cmp_ps(d[r][1], cw[1], _CMP_LT_OQ));
        }
        hits[r] = unsigned(_mm256_movemask_ps(m0)) | unsigned(_mm256_movemask_ps(m1)) << 8;
        any |= hits[r];
    }
    return any;
}

__attribute__((target(IDEST_AVX2)))
void row_block_avx2(const TileRows& a, int rows, int64_t row0, const PackedColumns& cols,
                    int64_t g0, int64_t g1, int64_t col0, int64_t dim, bool symmetric,
                    bool skip_self, CandidateLists& lists) {
    constexpr int kRows = kRowsAvx2;
    for (int64_t g = g0; g < g1; ++g) {
        const float* b = cols.values.data() + g * dim * kFusedGroup;
        const int64_t c0 = g * kFusedGroup;
        alignas(32) float tail[kFusedGroup];
        const float* cw = symmetric ? column_thresholds(lists, cols, col0, c0, tail) : nullptr;
        __m256 acc[kRows][2];
        for (int r = 0; r < kRows; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
        __m256 d[kRows][2];
        unsigned hits[kRows];
        accumulate_avx2(acc, a.values, b, 0, a.prefix);
        if (a.prefix > 0 && !tests_avx2(acc, a.prefix_norms, cols.prefix_norms.data() + c0, rows,
                                        row0, cw, lists, d, hits))
            continue;  // no pair of the block can beat a threshold
        accumulate_avx2(acc, a.values, b, a.prefix, dim);
        if (tests_avx2(acc, a.norms, cols.norms.data() + c0, rows, row0, cw, lists, d, hits)) {
            alignas(32) float out[kRows][kFusedGroup];
            for (int r = 0; r < kRows; ++r) {
                _mm256_store_ps(out[r], d[r][0]);
                _mm256_store_ps(out[r] + 8, d[r][1]);
            }
            offer_entries(out, hits, rows, row0, col0 + c0, cols.n - c0, symmetric, skip_self,
                          lists);
        }
    }
}

// The same accumulation with one 16-float register per row.
__attribute__((target(IDEST_AVX512), always_inline)) inline void accumulate_avx512(
    __m512 (&acc)[kRowsAvx512], const float* a, const float* b, int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
        const __m512 bj = _mm512_load_ps(b + j * kFusedGroup);
        for (int r = 0; r < kRowsAvx512; ++r)
            acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(a[j * kRowsAvx512 + r]), bj, acc[r]);
    }
}

// The same tests with one 16-float register per row, comparing straight into
// mask registers.
__attribute__((target(IDEST_AVX512), always_inline)) inline unsigned tests_avx512(
    const __m512 (&acc)[kRowsAvx512], const float* xn, const float* yn, int rows, int64_t row0,
    const float* cwp, const CandidateLists& lists, __m512 (&d)[kRowsAvx512],
    unsigned (&hits)[kRowsAvx512]) {
    const bool symmetric = cwp != nullptr;
    const __m512 two = _mm512_set1_ps(2.0f), y = _mm512_load_ps(yn);
    const __m512 cw = symmetric ? _mm512_loadu_ps(cwp) : _mm512_setzero_ps();
    unsigned any = 0;
    for (int r = 0; r < kRowsAvx512; ++r) {
        const __m512 w = _mm512_set1_ps(r < rows ? lists.worst[row0 + r] : kInf);
        d[r] = _mm512_fnmadd_ps(two, acc[r], _mm512_add_ps(_mm512_set1_ps(xn[r]), y));
        __mmask16 m = _mm512_cmp_ps_mask(d[r], w, _CMP_LT_OQ);
        if (symmetric) m |= _mm512_cmp_ps_mask(d[r], cw, _CMP_LT_OQ);
        hits[r] = m;
        any |= m;
    }
    return any;
}

// The AVX-512 block: 12 FMA chains of 16 lanes.
__attribute__((target(IDEST_AVX512)))
void row_block_avx512(const TileRows& a, int rows, int64_t row0, const PackedColumns& cols,
                      int64_t g0, int64_t g1, int64_t col0, int64_t dim, bool symmetric,
                      bool skip_self, CandidateLists& lists) {
    constexpr int kRows = kRowsAvx512;
    const auto offer = lists.vector_insertable() ? offer_lists : offer_entries;
    for (int64_t g = g0; g < g1; ++g) {
        const float* b = cols.values.data() + g * dim * kFusedGroup;
        const int64_t c0 = g * kFusedGroup;
        alignas(64) float tail[kFusedGroup];
        const float* cw = symmetric ? column_thresholds(lists, cols, col0, c0, tail) : nullptr;
        __m512 acc[kRows];
        for (int r = 0; r < kRows; ++r) acc[r] = _mm512_setzero_ps();
        __m512 d[kRows];
        unsigned hits[kRows];
        accumulate_avx512(acc, a.values, b, 0, a.prefix);
        if (a.prefix > 0 && !tests_avx512(acc, a.prefix_norms, cols.prefix_norms.data() + c0,
                                          rows, row0, cw, lists, d, hits))
            continue;  // no pair of the block can beat a threshold
        accumulate_avx512(acc, a.values, b, a.prefix, dim);
        if (tests_avx512(acc, a.norms, cols.norms.data() + c0, rows, row0, cw, lists, d, hits)) {
            alignas(64) float out[kRows][kFusedGroup];
            for (int r = 0; r < kRows; ++r) _mm512_store_ps(out[r], d[r]);
            offer(out, hits, rows, row0, col0 + c0, cols.n - c0, symmetric, skip_self, lists);
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

void PackedColumns::pack(const TileRows& rows, int64_t n_rows, int64_t dim) {
    const int64_t groups = (n_rows + kFusedGroup - 1) / kFusedGroup;
    const bool early_exit = rows.prefix > 0;
    n = n_rows;
    values.assign(size_t(groups * kFusedGroup * dim), 0.0f);
    norms.assign(size_t(groups * kFusedGroup), kInf);
    if (early_exit) prefix_norms.assign(size_t(groups * kFusedGroup), kInf);
    for (int64_t i = 0; i < n_rows; ++i) {
        float* out = values.data() + (i / kFusedGroup) * dim * kFusedGroup + i % kFusedGroup;
        for (int64_t j = 0; j < dim; ++j) out[j * kFusedGroup] = rows.values[i * dim + j];
        norms.data()[i] = rows.norms[i];
        if (early_exit) prefix_norms.data()[i] = rows.prefix_norms[i];
    }
}

void fused_scan(FusedIsa isa, const TileRows& a, int64_t n_rows, int64_t row0,
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
    if (a.prefix < 0 || a.prefix >= dim || (a.prefix > 0 && !(a.prefix_norms && cols.prefix_norms.data())))
        throw std::logic_error("fused_scan: an early exit needs 0 < prefix < dim and prefix norms");
    const int64_t groups = (cols.n + kFusedGroup - 1) / kFusedGroup;
    // The tile's rows in register blocks, each dimension-major and zero-padded
    // (accumulate_*), made once per tile.
    const int64_t n_blocks = (n_rows + block_rows - 1) / block_rows;
    thread_local std::vector<float> blocks;
    blocks.resize(size_t(n_blocks * block_rows * dim));
    for (int64_t b = 0; b < n_blocks; ++b) {
        const int rows = int(std::min<int64_t>(block_rows, n_rows - b * block_rows));
        const float* in = a.values + b * block_rows * dim;
        float* out = blocks.data() + b * block_rows * dim;
        for (int64_t j = 0; j < dim; ++j, out += block_rows) {
            for (int r = 0; r < rows; ++r) out[r] = in[r * dim + j];
            for (int r = rows; r < block_rows; ++r) out[r] = 0.0f;
        }
    }
    // Column chunks of about 16 KB of packed values stay in L1 while every row
    // block of the tile passes over them.
    const int64_t chunk = std::max<int64_t>(1, 16384 / (dim * kFusedGroup * 4));
    for (int64_t g0 = 0; g0 < groups; g0 += chunk) {
        const int64_t g1 = std::min(groups, g0 + chunk);
        for (int64_t i0 = 0; i0 < n_rows; i0 += block_rows) {
            const int rows = int(std::min<int64_t>(block_rows, n_rows - i0));
            float norms[kRowsMax], prefix_norms[kRowsMax];
            for (int r = 0; r < block_rows; ++r) {
                norms[r] = r < rows ? a.norms[i0 + r] : kInf;
                prefix_norms[r] = r < rows && a.prefix > 0 ? a.prefix_norms[i0 + r] : kInf;
            }
            const TileRows block{blocks.data() + i0 * dim, norms, prefix_norms, a.prefix};
            row_block(block, rows, row0 + i0, cols, g0, g1, col0, dim, symmetric, skip_self,
                      lists);
        }
    }
}

}  // namespace idest
