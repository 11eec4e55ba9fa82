// The fused tile kernel for small dimensions: distances and the candidate
// threshold test in one register-blocked pass, so no distance tile is written.
//
// At small D a GEMM does little work per output (2D flops) and the SGEMM + scan
// path spends most of its time writing the tile and reading it back twice. The
// fused kernel keeps a block of 6 rows' dot products in twelve vector
// registers (6 x 16 with AVX2 + FMA, 6 x 32 with AVX-512), accumulated onto
// minus half the norms so that they hold -d / 2 (TileRows below), tests them
// against the rows' (and, for a symmetric tile, the columns') current
// thresholds there; only blocks holding a hit leave the registers. x86-64
// only: other CPUs use the SGEMM path.
//
// Early exit: when the coordinates are principal axes (knn.cpp rotates the
// data when a few axes carry most of the variance), the squared distance over
// the first `prefix` coordinates bounds the full one from below. A block
// computes those coordinates first and drops out when none of its pairs beats
// a threshold there; on data whose spectrum decays most blocks of a search
// are far apart and stop after a fraction of the work.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "candidate_lists.hpp"

namespace idest {

// The instruction sets the kernel is written for.
enum class FusedIsa { kAvx2, kAvx512 };

// True when this build and the running CPU run the kernel with `isa`.
bool fused_scan_supported(FusedIsa isa);

// Reference points per packed group of the kernel with `isa`: 16 (two AVX2
// registers) or 32 (two AVX-512 registers).
int64_t fused_group(FusedIsa isa);

// A float buffer whose data starts on a 64-byte boundary, so no 32-byte
// vector load of a packed group straddles two cache lines.
class AlignedFloats {
  public:
    AlignedFloats() = default;
    AlignedFloats(AlignedFloats&&) = default;  // moves keep the buffer (and data_)
    AlignedFloats& operator=(AlignedFloats&&) = default;
    AlignedFloats(const AlignedFloats&) = delete;  // a copy would point into the source
    AlignedFloats& operator=(const AlignedFloats&) = delete;

    void assign(size_t n, float value);
    const float* data() const { return data_; }
    float* data() { return data_; }

  private:
    KeptVector<float> storage_;
    float* data_ = nullptr;
};

// Reference rows in the kernel's layout: groups of fused_group(isa) points,
// each group dimension-major (the values of one coordinate contiguous). The tail
// group is padded with zero coordinates and -inf half norms, which never pass
// a test.
//
// The kernel accumulates a pair's dot product onto minus half its squared
// norms, -(|x|^2 + |y|^2) / 2 + x.y = -d / 2, so that d = -2 acc is exact from
// the accumulator and the smallest distance of a block is one max-reduction
// away (fused_scan.cpp). Rows of a tile: row-major values and the halved,
// negated squared norms of their leading `prefix` coordinates (`lead`) and of
// the others (`rest`); without an early exit (`prefix` == 0) `lead` covers
// every coordinate and `rest` is null. Each half norm is a float64 sum
// rounded to float32 (the certificate's error analysis, knn.cpp).
struct TileRows {
    const float* values = nullptr;
    const float* lead = nullptr;
    const float* rest = nullptr;
    int64_t prefix = 0;
};

// A run of packed points (below): `n` points from `values`, `lead` and
// `rest` on, in groups of `group`. Every group but the last is whole; the
// last group's points past `n` are padding or points of a longer run, which
// the kernel computes and never offers.
struct ColumnView {
    const float* values = nullptr;
    const float* lead = nullptr;
    const float* rest = nullptr;  // null without an early exit
    int64_t n = 0;
    int64_t group = 0;
    int64_t prefix = 0;  // the early exit's leading coordinates (0: none)
};

struct PackedColumns {
    AlignedFloats values;
    AlignedFloats lead;  // -|y_lead|^2 / 2 per point (-inf for padding)
    AlignedFloats rest;  // -|y_rest|^2 / 2 (with an early exit)
    int64_t n = 0;
    int64_t group = 0;  // points per group
    int64_t prefix = 0;

    // The first n_rows of `rows` (centred, scaled float32, with their half
    // norms), for the kernel with `isa`, on up to n_threads threads.
    void pack(FusedIsa isa, const TileRows& rows, int64_t n_rows, int64_t dim, int n_threads);

    // Points [first, first + count) (`first` a multiple of `group`).
    ColumnView view(int64_t first, int64_t count, int64_t dim) const;
};

// Query rows in the kernel's register blocks (fused_scan.cpp): each block of
// rows dimension-major and zero-padded, with the rows' half norms.
struct PackedRows {
    KeptVector<float> blocks;
    KeptVector<float> lead, rest;  // (rest: with an early exit)
    int64_t n = 0;
    int64_t prefix = 0;

    // The rows of `points`.
    void pack(const ColumnView& points, int64_t dim);
};

// One tile: the query rows `a` (positions row0..) against the packed
// reference points `cols` (positions col0.., packed from rows with the same
// prefix).
// Each approximate squared distance below a row's threshold is offered to that
// row's list (skipping the point itself when `skip_self`); with `symmetric`
// (self search, off-diagonal tile) it is also offered to the column's list.
// The caller holds whatever locks protect the lists of those rows and columns,
// and has checked fused_scan_supported(isa).
void fused_scan(FusedIsa isa, const PackedRows& a, int64_t row0, const ColumnView& cols,
                int64_t col0, int64_t dim, bool symmetric, bool skip_self, CandidateLists& lists);

}  // namespace idest
