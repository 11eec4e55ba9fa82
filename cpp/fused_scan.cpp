// The fused tile kernel (see fused_scan.hpp): a portable driver and two x86-64
// register blocks, AVX2 + FMA and AVX-512, compiled with target attributes and
// chosen at run time. Other targets compile the driver only; fused_scan_supported
// is false there and the search takes the SGEMM path.
#include "fused_scan.hpp"

#include "cpu.hpp"
#include "parallel.hpp"

#if IDEST_X86
#include <immintrin.h>
#endif

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace idest {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
// Query rows per register block, both kernels: 6 rows x 2 registers (16
// columns of AVX2, 32 of AVX-512) make 12 accumulators.
constexpr int kRows = 6;
constexpr int64_t kGroupAvx2 = 16;
constexpr int64_t kGroupAvx512 = 32;

// Signature shared by the register blocks: rows [row0, row0 + rows) against
// groups [g0, g1). `a` holds the block's rows (dimension-major, zero-padded
// to kRows) with their half norms (-inf for padding).
using RowBlockFn = void (*)(const TileRows& a, int rows, int64_t row0, const ColumnView& cols,
                            int64_t g0, int64_t g1, int64_t col0, int64_t dim, bool symmetric,
                            bool skip_self, CandidateLists& lists);

#if IDEST_X86
#define IDEST_AVX2 "avx2,fma"
#define IDEST_AVX512 "avx512f,avx512bw,avx512dq,avx512vl"

// Offers the entries of one block (rows x group columns, d[r * group + c])
// that passed a threshold (rare once the lists have filled) to the candidate
// lists, entry by entry: for each row, the columns whose bit is set in
// hits[r], each also to its column's list when `symmetric`. Kept out of line:
// the rare path stays out of the kernel loop's registers.
__attribute__((noinline))
void offer_entries(const float* d, int64_t group, const unsigned* hits, int rows, int64_t row0,
                   int64_t col0, int64_t n_cols, bool symmetric, bool skip_self,
                   CandidateLists& lists) {
    for (int r = 0; r < rows; ++r) {
        const int64_t row = row0 + r;
        for (unsigned bits = hits[r]; bits; bits &= bits - 1) {
            const int c = __builtin_ctz(bits);
            const int64_t col = col0 + c;
            if (c >= n_cols) break;  // padding of the last group
            const float v = d[r * group + c];
            if (v < lists.worst[row] && !(skip_self && col == row)) lists.insert(row, v, col);
            if (symmetric && v < lists.worst[col]) lists.insert(col, v, row);
        }
    }
}

// The columns of a 32-entry row `d` below the thresholds in `lo` (columns
// 0-15) and `hi` (16-31), as a bit mask.
__attribute__((target(IDEST_AVX512), always_inline)) inline unsigned below(const float* d, __m512 lo,
                                                                          __m512 hi) {
    return unsigned(_mm512_cmp_ps_mask(_mm512_load_ps(d), lo, _CMP_LT_OQ)) |
           unsigned(_mm512_cmp_ps_mask(_mm512_load_ps(d + 16), hi, _CMP_LT_OQ)) << 16;
}

// Entries of one row from which offer_lists merges them (merge_avx512)
// instead of inserting them one by one.
constexpr int kMergeEntries = 8;

// The same offers list by list, for the AVX-512 selection
// (CandidateLists::offer_avx512, vector_insertable() lists): each row its
// entries, then (symmetric) each column its entries, one call per list.
// Which entries beat each side's threshold is found for every row first, by
// vector compares; each row's entries are packed by compress instructions
// and each column's gathered without a branch per row, so that the only
// branches left are one per list offered to (most blocks offer to one or
// two lists, one entry each, where loops over the bits of every row
// mispredicted their exits).
__attribute__((target(IDEST_AVX512), noinline))
void offer_lists(const float* d, int64_t group, const unsigned* hits, int rows, int64_t row0,
                 int64_t col0, int64_t n_cols, bool symmetric, bool skip_self,
                 CandidateLists& lists) {
    (void)group;  // kGroupAvx512: two registers per row
    const unsigned columns = n_cols >= kGroupAvx512 ? ~0u : (1u << n_cols) - 1u;  // not padding
    // the columns' thresholds (+inf past the tile's columns, which are not read);
    // a symmetric tile's rows and columns are other lists, so the rows' offers
    // below leave them as they are
    const __m512 inf = _mm512_set1_ps(kInf);
    __m512 cw_lo = inf, cw_hi = inf;
    if (symmetric) {
        cw_lo = _mm512_mask_loadu_ps(inf, __mmask16(columns), lists.worst.data() + col0);
        cw_hi = _mm512_mask_loadu_ps(inf, __mmask16(columns >> 16), lists.worst.data() + col0 + 16);
    }
    // rows offered entries one by one (rows_offered) or, many, merged (merging)
    unsigned to_row[kRows], to_column[kRows], rows_offered = 0, merging = 0, any = 0;
    for (int r = 0; r < rows; ++r) {
        const unsigned bits = hits[r] & columns;
        const __m512 w = _mm512_set1_ps(lists.worst[row0 + r]);
        to_row[r] = bits & below(d + r * kGroupAvx512, w, w);
        const int64_t self = row0 + r - col0;
        if (skip_self && self >= 0 && self < kGroupAvx512) to_row[r] &= ~(1u << self);
        const bool many = __builtin_popcount(to_row[r]) >= kMergeEntries;
        merging |= unsigned(many) << r;
        rows_offered |= unsigned(to_row[r] != 0 && !many) << r;
        to_column[r] = symmetric ? bits & below(d + r * kGroupAvx512, cw_lo, cw_hi) : 0u;
        any |= to_column[r];
    }
    const __m512i index_lo = _mm512_add_epi32(
        _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
        _mm512_set1_epi32(int32_t(col0)));
    const __m512i index_hi = _mm512_add_epi32(index_lo, _mm512_set1_epi32(16));
    alignas(64) float ed[kGroupAvx512];  // a row's entries (<= 16 + 16 lanes stored)
    alignas(64) int32_t ej[kGroupAvx512];
    while (merging) {  // two at a time
        const int r = __builtin_ctz(merging);
        merging &= merging - 1;
        const __m512* dr = reinterpret_cast<const __m512*>(d + r * kGroupAvx512);
        if (!merging) {
            lists.merge_avx512<1>({row0 + r}, {dr[0]}, {dr[1]}, {to_row[r]}, int32_t(col0));
            break;
        }
        const int s = __builtin_ctz(merging);
        merging &= merging - 1;
        const __m512* ds = reinterpret_cast<const __m512*>(d + s * kGroupAvx512);
        lists.merge_avx512<2>({row0 + r, row0 + s}, {dr[0], ds[0]}, {dr[1], ds[1]},
                              {to_row[r], to_row[s]}, int32_t(col0));
    }
    for (; rows_offered; rows_offered &= rows_offered - 1) {
        const int r = __builtin_ctz(rows_offered);
        const unsigned mine = to_row[r];
        const __m512 d_lo = _mm512_load_ps(d + r * kGroupAvx512);
        const __m512 d_hi = _mm512_load_ps(d + r * kGroupAvx512 + 16);
        const int n_lo = __builtin_popcount(mine & 0xFFFFu);
        _mm512_store_ps(ed, _mm512_maskz_compress_ps(__mmask16(mine), d_lo));
        _mm512_store_si512(ej, _mm512_maskz_compress_epi32(__mmask16(mine), index_lo));
        _mm512_storeu_ps(ed + n_lo, _mm512_maskz_compress_ps(__mmask16(mine >> 16), d_hi));
        _mm512_storeu_si512(ej + n_lo, _mm512_maskz_compress_epi32(__mmask16(mine >> 16), index_hi));
        lists.offer_avx512(row0 + r, ed, ej, __builtin_popcount(mine));
    }
    for (; any; any &= any - 1) {
        const int c = __builtin_ctz(any);
        int n = 0;
        for (int r = 0; r < rows; ++r) {  // every row written, the offered ones kept
            ed[n] = d[r * kGroupAvx512 + c];
            ej[n] = int32_t(row0 + r);
            n += int(to_column[r] >> c & 1u);
        }
        lists.offer_avx512(col0 + c, ed, ej, n);
    }
}

// The column thresholds of group columns [c0, c0 + cols.group) of a
// symmetric tile. A partial last group must not read thresholds past its
// columns (they may belong to a block another thread is updating): they read
// +inf instead.
const float* column_thresholds(const CandidateLists& lists, const ColumnView& cols,
                               int64_t col0, int64_t c0, float* tail) {
    const float* w = lists.worst.data() + col0 + c0;
    if (cols.n - c0 >= cols.group) return w;
    for (int64_t c = 0; c < cols.group; ++c) tail[c] = c < cols.n - c0 ? w[c] : kInf;
    return tail;
}

// The thresholds of rows [row0, row0 + rows) into w[0..kRows), -inf for the
// padding rows (which then pass no test). Only a block's own offers lower
// them while it runs (its columns are other rows), so it reads them again
// after each.
void row_thresholds(const CandidateLists& lists, int64_t row0, int rows, float (&w)[kRows]) {
    for (int r = 0; r < kRows; ++r) w[r] = r < rows ? lists.worst[row0 + r] : -kInf;
}

// Adds coordinates [j0, j1) of the block's dot products: the block's rows `a`
// (dimension-major: value j of row r at a[j * kRows + r], so every broadcast is
// one base register and an offset) against one packed group `b`.
__attribute__((target(IDEST_AVX2), always_inline)) inline void accumulate_avx2(
    __m256 (&acc)[kRows][2], const float* a, const float* b, int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
        const __m256 b0 = _mm256_load_ps(b + j * kGroupAvx2);
        const __m256 b1 = _mm256_load_ps(b + j * kGroupAvx2 + 8);
        for (int r = 0; r < kRows; ++r) {
            const __m256 x = _mm256_broadcast_ss(a + j * kRows + r);
            acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
        }
    }
}

// Adds the half norms x[r] + y[c] (TileRows) to every accumulator.
__attribute__((target(IDEST_AVX2), always_inline)) inline void add_norms_avx2(
    __m256 (&acc)[kRows][2], const float* x, const float* y) {
    const __m256 y0 = _mm256_load_ps(y), y1 = _mm256_load_ps(y + 8);
    for (int r = 0; r < kRows; ++r) {
        const __m256 xr = _mm256_broadcast_ss(x + r);
        acc[r][0] = _mm256_add_ps(acc[r][0], _mm256_add_ps(xr, y0));
        acc[r][1] = _mm256_add_ps(acc[r][1], _mm256_add_ps(xr, y1));
    }
}

// The block test: whether some pair's distance d = -2 acc beats its row's
// threshold w[r] or (symmetric tiles: `cwp`, else null) its column's. For
// the rows, w[r] - d = 2 acc + w[r] in one FMA, whose rounded result has the
// exact sign, and one max-reduction over the rows; for the columns, the
// smallest distance of each column, -2 max_r acc (the max picks, never
// rounds). About half the work of comparing every row's distances with both
// thresholds, which a block that drops out does not need. 2 acc + w is nan
// where a list that is not full (w = +inf) meets a padding column (acc =
// -inf), a lane where no row can pass; the max still skips nans (x86's max
// returns its second operand when either is nan, and m starts at -inf), so
// that no nan could ever hide another row's pass.
__attribute__((target(IDEST_AVX2), always_inline)) inline bool any_below_avx2(
    const __m256 (&acc)[kRows][2], const float (&w)[kRows], const float* cwp) {
    const __m256 two = _mm256_set1_ps(2.0f);
    __m256 below = _mm256_setzero_ps();
    for (int h = 0; h < 2; ++h) {
        __m256 m = _mm256_set1_ps(-kInf);
        for (int r = 0; r < kRows; ++r)  // max(x, m) is m when x is nan (see above)
            m = _mm256_max_ps(_mm256_fmadd_ps(acc[r][h], two, _mm256_broadcast_ss(&w[r])), m);
        below = _mm256_or_ps(below, _mm256_cmp_ps(m, _mm256_setzero_ps(), _CMP_GT_OQ));
        if (cwp) {
            const __m256 top = _mm256_max_ps(_mm256_max_ps(_mm256_max_ps(acc[0][h], acc[1][h]),
                                                           _mm256_max_ps(acc[2][h], acc[3][h])),
                                             _mm256_max_ps(acc[4][h], acc[5][h]));
            below = _mm256_or_ps(below, _mm256_cmp_ps(_mm256_mul_ps(top, _mm256_set1_ps(-2.0f)),
                                                      _mm256_loadu_ps(cwp + 8 * h), _CMP_LT_OQ));
        }
    }
    return _mm256_movemask_ps(below) != 0;
}

// The threshold tests of a block that passed any_below (AVX2: two registers
// per row): the squared distances d = -2 acc, stored to d[r * 16 + c],
// against each row's threshold and, for a symmetric tile, each column's at
// `cwp` (null: not symmetric). Fills the rows' hit masks; returns their union.
__attribute__((target(IDEST_AVX2), always_inline)) inline unsigned tests_avx2(
    const __m256 (&acc)[kRows][2], const float (&wr)[kRows], const float* cwp, float* d,
    unsigned (&hits)[kRows]) {
    const __m256 minus_two = _mm256_set1_ps(-2.0f);
    unsigned any = 0;
    for (int r = 0; r < kRows; ++r) {
        const __m256 w = _mm256_set1_ps(wr[r]);
        hits[r] = 0;
        for (int h = 0; h < 2; ++h) {
            const __m256 dr = _mm256_mul_ps(acc[r][h], minus_two);
            _mm256_store_ps(d + r * kGroupAvx2 + 8 * h, dr);
            __m256 m = _mm256_cmp_ps(dr, w, _CMP_LT_OQ);
            if (cwp) m = _mm256_or_ps(m, _mm256_cmp_ps(dr, _mm256_loadu_ps(cwp + 8 * h), _CMP_LT_OQ));
            hits[r] |= unsigned(_mm256_movemask_ps(m)) << (8 * h);
        }
        any |= hits[r];
    }
    return any;
}

__attribute__((target(IDEST_AVX2)))
void row_block_avx2(const TileRows& a, int rows, int64_t row0, const ColumnView& cols,
                    int64_t g0, int64_t g1, int64_t col0, int64_t dim, bool symmetric,
                    bool skip_self, CandidateLists& lists) {
    const int64_t lead_dims = a.prefix > 0 ? a.prefix : dim;
    float w[kRows];
    row_thresholds(lists, row0, rows, w);
    for (int64_t g = g0; g < g1; ++g) {
        const float* b = cols.values + g * dim * kGroupAvx2;
        const int64_t c0 = g * kGroupAvx2;
        alignas(32) float tail[kGroupAvx2];
        const float* cw = symmetric ? column_thresholds(lists, cols, col0, c0, tail) : nullptr;
        __m256 acc[kRows][2];
        for (int r = 0; r < kRows; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
        add_norms_avx2(acc, a.lead, cols.lead + c0);
        accumulate_avx2(acc, a.values, b, 0, lead_dims);
        if (!any_below_avx2(acc, w, cw)) continue;
        if (a.prefix > 0) {  // the early exit did not apply: the other coordinates
            add_norms_avx2(acc, a.rest, cols.rest + c0);
            accumulate_avx2(acc, a.values, b, a.prefix, dim);
            if (!any_below_avx2(acc, w, cw)) continue;
        }
        alignas(32) float d[kRows * kGroupAvx2];
        unsigned hits[kRows];
        if (tests_avx2(acc, w, cw, d, hits)) {
            offer_entries(d, kGroupAvx2, hits, rows, row0, col0 + c0, cols.n - c0, symmetric,
                          skip_self, lists);
            row_thresholds(lists, row0, rows, w);
        }
    }
}

// acc += (x broadcast) * b, the broadcast folded into the multiply-add as a
// memory operand ({1to16}). Written out because compilers load a value that
// two FMAs share once, by a separate broadcast, which on Zen 4 costs a vector
// instruction of its own: the register block below spent 13 % more time per
// block that way (in isolation, D = 20, 7 leading axes, every block failing).
__attribute__((target(IDEST_AVX512), always_inline)) inline void fmadd_broadcast(__m512& acc,
                                                                                const float* x,
                                                                                __m512 b) {
    asm("vfmadd231ps %[x]%{1to16%}, %[b], %[acc]" : [acc] "+v"(acc) : [b] "v"(b), [x] "m"(*x));
}

// The same with 32 columns per group, in two 16-float registers per row: two
// vector loads and six broadcasts per coordinate for twelve FMAs. Measured in
// isolation (20 coordinates, every block failing its test; AMD EPYC, Zen 5),
// 1.01 cycles per twelve FMAs against 1.37 for 12 rows x 16 columns, whose
// twelve broadcasts per coordinate made it load-bound.
__attribute__((target(IDEST_AVX512), always_inline)) inline void accumulate_avx512(
    __m512 (&acc)[kRows][2], const float* a, const float* b, int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
        const __m512 b0 = _mm512_load_ps(b + j * kGroupAvx512);
        const __m512 b1 = _mm512_load_ps(b + j * kGroupAvx512 + 16);
        for (int r = 0; r < kRows; ++r) {
            fmadd_broadcast(acc[r][0], a + j * kRows + r, b0);
            fmadd_broadcast(acc[r][1], a + j * kRows + r, b1);
        }
    }
}

// acc = (x broadcast) + y: the accumulators' start, minus half the two
// points' leading norms.
__attribute__((target(IDEST_AVX512), always_inline)) inline void start_norms_avx512(
    __m512 (&acc)[kRows][2], const float* x, const float* y) {
    const __m512 y0 = _mm512_load_ps(y), y1 = _mm512_load_ps(y + 16);
    for (int r = 0; r < kRows; ++r) {
        asm("vaddps %[x]%{1to16%}, %[y], %[acc]" : [acc] "=v"(acc[r][0]) : [y] "v"(y0), [x] "m"(x[r]));
        asm("vaddps %[x]%{1to16%}, %[y], %[acc]" : [acc] "=v"(acc[r][1]) : [y] "v"(y1), [x] "m"(x[r]));
    }
}

__attribute__((target(IDEST_AVX512), always_inline)) inline void add_norms_avx512(
    __m512 (&acc)[kRows][2], const float* x, const float* y) {
    const __m512 y0 = _mm512_load_ps(y), y1 = _mm512_load_ps(y + 16);
    for (int r = 0; r < kRows; ++r) {
        const __m512 xr = _mm512_set1_ps(x[r]);
        acc[r][0] = _mm512_add_ps(acc[r][0], _mm512_add_ps(xr, y0));
        acc[r][1] = _mm512_add_ps(acc[r][1], _mm512_add_ps(xr, y1));
    }
}

// _mm512_max_ps through its zero-masked form, which is the same instruction:
// GCC 12 warns that the plain one reads an undefined register.
__attribute__((target(IDEST_AVX512), always_inline)) inline __m512 max_avx512(__m512 a, __m512 b) {
    return _mm512_maskz_max_ps(0xFFFF, a, b);
}

__attribute__((target(IDEST_AVX512), always_inline)) inline bool any_below_avx512(
    const __m512 (&acc)[kRows][2], const float (&w)[kRows], const float* cwp) {
    const __m512 two = _mm512_set1_ps(2.0f);
    __mmask16 below = 0;
    for (int h = 0; h < 2; ++h) {
        __m512 m = _mm512_set1_ps(-kInf);
        for (int r = 0; r < kRows; ++r)  // max(x, m) is m when x is nan (see any_below_avx2)
            m = max_avx512(_mm512_fmadd_ps(acc[r][h], two, _mm512_set1_ps(w[r])), m);
        below |= _mm512_cmp_ps_mask(m, _mm512_setzero_ps(), _CMP_GT_OQ);
        if (cwp) {
            const __m512 top = max_avx512(max_avx512(max_avx512(acc[0][h], acc[1][h]),
                                                           max_avx512(acc[2][h], acc[3][h])),
                                             max_avx512(acc[4][h], acc[5][h]));
            below |= _mm512_cmp_ps_mask(_mm512_mul_ps(top, _mm512_set1_ps(-2.0f)),
                                        _mm512_loadu_ps(cwp + 16 * h), _CMP_LT_OQ);
        }
    }
    return below != 0;
}

// The same tests with two 16-float registers per row, comparing straight into
// mask registers.
__attribute__((target(IDEST_AVX512), always_inline)) inline unsigned tests_avx512(
    const __m512 (&acc)[kRows][2], const float (&wr)[kRows], const float* cwp, float* d,
    unsigned (&hits)[kRows]) {
    const __m512 minus_two = _mm512_set1_ps(-2.0f);
    unsigned any = 0;
    for (int r = 0; r < kRows; ++r) {
        const __m512 w = _mm512_set1_ps(wr[r]);
        hits[r] = 0;
        for (int h = 0; h < 2; ++h) {
            const __m512 dr = _mm512_mul_ps(acc[r][h], minus_two);
            _mm512_store_ps(d + r * kGroupAvx512 + 16 * h, dr);
            __mmask16 m = _mm512_cmp_ps_mask(dr, w, _CMP_LT_OQ);
            if (cwp) m |= _mm512_cmp_ps_mask(dr, _mm512_loadu_ps(cwp + 16 * h), _CMP_LT_OQ);
            hits[r] |= unsigned(m) << (16 * h);
        }
        any |= hits[r];
    }
    return any;
}

// The AVX-512 block: 12 FMA chains of 16 lanes.
__attribute__((target(IDEST_AVX512)))
void row_block_avx512(const TileRows& a, int rows, int64_t row0, const ColumnView& cols,
                      int64_t g0, int64_t g1, int64_t col0, int64_t dim, bool symmetric,
                      bool skip_self, CandidateLists& lists) {
    const auto offer = lists.vector_insertable() ? offer_lists : offer_entries;
    const int64_t lead_dims = a.prefix > 0 ? a.prefix : dim;
    float w[kRows];
    row_thresholds(lists, row0, rows, w);
    for (int64_t g = g0; g < g1; ++g) {
        const float* b = cols.values + g * dim * kGroupAvx512;
        const int64_t c0 = g * kGroupAvx512;
        alignas(64) float tail[kGroupAvx512];
        const float* cw = symmetric ? column_thresholds(lists, cols, col0, c0, tail) : nullptr;
        __m512 acc[kRows][2];
        start_norms_avx512(acc, a.lead, cols.lead + c0);
        accumulate_avx512(acc, a.values, b, 0, lead_dims);
        if (!any_below_avx512(acc, w, cw)) continue;
        if (a.prefix > 0) {  // the early exit did not apply: the other coordinates
            add_norms_avx512(acc, a.rest, cols.rest + c0);
            accumulate_avx512(acc, a.values, b, a.prefix, dim);
            if (!any_below_avx512(acc, w, cw)) continue;
        }
        alignas(64) float d[kRows * kGroupAvx512];
        unsigned hits[kRows];
        if (tests_avx512(acc, w, cw, d, hits)) {
            offer(d, kGroupAvx512, hits, rows, row0, col0 + c0, cols.n - c0, symmetric, skip_self,
                  lists);
            row_thresholds(lists, row0, rows, w);
        }
    }
}
#endif

}  // namespace

bool fused_scan_supported(FusedIsa isa) {
    return isa == FusedIsa::kAvx512 ? cpu_has_avx512() : cpu_has_avx2_fma();
}

int64_t fused_group(FusedIsa isa) { return isa == FusedIsa::kAvx512 ? kGroupAvx512 : kGroupAvx2; }

void AlignedFloats::assign(size_t n, float value) {
    constexpr size_t kAlign = 64 / sizeof(float);
    storage_.assign(n + kAlign, value);
    const auto address = reinterpret_cast<uintptr_t>(storage_.data());
    data_ = storage_.data() + (kAlign - (address / sizeof(float)) % kAlign) % kAlign;
}

void PackedColumns::pack(FusedIsa isa, const TileRows& rows, int64_t n_rows, int64_t dim,
                         int n_threads) {
    group = fused_group(isa);
    prefix = rows.prefix;
    const int64_t groups = (n_rows + group - 1) / group;
    n = n_rows;
    values.assign(size_t(groups * group * dim), 0.0f);
    lead.assign(size_t(groups * group), -kInf);
    if (prefix > 0) rest.assign(size_t(groups * group), 0.0f);
    parallel_for(groups, n_threads, [&](int64_t g, int) {
        float* out = values.data() + g * dim * group;
        for (int64_t i = g * group; i < std::min(n_rows, (g + 1) * group); ++i) {
            for (int64_t j = 0; j < dim; ++j) out[j * group + i % group] = rows.values[i * dim + j];
            lead.data()[i] = rows.lead[i];
            if (prefix > 0) rest.data()[i] = rows.rest[i];
        }
    });
}

ColumnView PackedColumns::view(int64_t first, int64_t count, int64_t dim) const {
    if (first % group || first < 0 || count < 0 || first + count > n)
        throw std::logic_error("PackedColumns::view: the points must start a group and lie inside");
    return {values.data() + first * dim, lead.data() + first,
            prefix > 0 ? rest.data() + first : nullptr, count, group, prefix};
}

void PackedRows::pack(const ColumnView& points, int64_t dim) {
    n = points.n;
    lead.assign(points.lead, points.lead + n);
    rest.assign(points.rest, points.rest + (points.rest ? n : 0));
    prefix = points.prefix;
    const int64_t n_blocks = (n + kRows - 1) / kRows;
    blocks.resize(size_t(n_blocks * kRows * dim));
    for (int64_t b = 0; b < n_blocks; ++b) {
        float* out = blocks.data() + b * kRows * dim;
        for (int r = 0; r < kRows; ++r) {
            const int64_t i = b * kRows + r, group = points.group;
            if (i >= n) {  // padding
                for (int64_t j = 0; j < dim; ++j) out[j * kRows + r] = 0.0f;
                continue;
            }
            const float* in = points.values + (i / group) * dim * group + i % group;
            for (int64_t j = 0; j < dim; ++j) out[j * kRows + r] = in[j * group];
        }
    }
}

void fused_scan(FusedIsa isa, const PackedRows& a, int64_t row0, const ColumnView& cols,
                int64_t col0, int64_t dim, bool symmetric, bool skip_self, CandidateLists& lists) {
    RowBlockFn row_block = nullptr;
#if IDEST_X86
    row_block = isa == FusedIsa::kAvx512 ? row_block_avx512 : row_block_avx2;
#endif
    if (!row_block || !fused_scan_supported(isa))
        throw std::invalid_argument("fused_scan: this CPU or build lacks the instruction set");
    if (cols.group != fused_group(isa))
        throw std::logic_error("fused_scan: the columns are packed for the other kernel");
    const int64_t prefix = a.prefix;
    if (prefix != cols.prefix || prefix < 0 || prefix >= dim || (prefix > 0 && !cols.rest))
        throw std::logic_error("fused_scan: an early exit needs 0 < prefix < dim and both half norms");
    const int64_t groups = (cols.n + cols.group - 1) / cols.group;
    // Column chunks of about 16 KB of packed values stay in L1 while every row
    // block of the tile passes over them.
    const int64_t chunk = std::max<int64_t>(1, 16384 / (dim * cols.group * 4));
    for (int64_t g0 = 0; g0 < groups; g0 += chunk) {
        const int64_t g1 = std::min(groups, g0 + chunk);
        for (int64_t i0 = 0; i0 < a.n; i0 += kRows) {
            const int rows = int(std::min<int64_t>(kRows, a.n - i0));
            float lead[kRows], rest[kRows];  // padding rows: -inf, never offered
            for (int r = 0; r < kRows; ++r) {
                lead[r] = r < rows ? a.lead[size_t(i0 + r)] : -kInf;
                rest[r] = r < rows && prefix > 0 ? a.rest[size_t(i0 + r)] : 0.0f;
            }
            const TileRows block{a.blocks.data() + i0 * dim, lead, rest, prefix};
            row_block(block, rows, row0 + i0, cols, g0, g1, col0, dim, symmetric, skip_self,
                      lists);
        }
    }
}

}  // namespace idest
