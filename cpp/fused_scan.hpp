// The fused tile kernel for small dimensions: distances and the candidate
// threshold test in one register-blocked pass, so no distance tile is written.
//
// At small D a GEMM does little work per output (2D flops) and the SGEMM + scan
// path spends most of its time writing the tile and reading it back twice. The
// fused kernel keeps a block of dot products in vector registers (6 x 16 with
// AVX2 + FMA, 12 x 16 with AVX-512), completes the approximate squared
// distances |x|^2 + |y|^2 - 2 x.y there and compares them with the rows' (and,
// for a symmetric tile, the columns') current thresholds; only blocks holding a
// hit leave the registers. x86-64 only: other CPUs use the SGEMM path.
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

// Reference points per packed group (two AVX registers, one AVX-512 register).
constexpr int64_t kFusedGroup = 16;

// The instruction sets the kernel is written for.
enum class FusedIsa { kAvx2, kAvx512 };

// True when this build and the running CPU run the kernel with `isa`.
bool fused_scan_supported(FusedIsa isa);

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
    std::vector<float> storage_;
    float* data_ = nullptr;
};

// Reference rows in the kernel's layout: groups of kFusedGroup points, each
// group dimension-major (the 16 values of one coordinate contiguous). The tail
// group is padded with zero coordinates and +inf norms, which never pass a test.
// Rows of a tile: row-major values, squared norms, and (with an early exit,
// `prefix` > 0) the squared norms of their first `prefix` coordinates.
struct TileRows {
    const float* values = nullptr;
    const float* norms = nullptr;
    const float* prefix_norms = nullptr;
    int64_t prefix = 0;
};

struct PackedColumns {
    AlignedFloats values;
    AlignedFloats norms;
    AlignedFloats prefix_norms;  // squared norms of the first `prefix` coordinates
    int64_t n = 0;

    // The first n_rows of `rows` (centred, scaled float32, with their norms and,
    // with an early exit, their prefix norms).
    void pack(const TileRows& rows, int64_t n_rows, int64_t dim);
};

// One tile: query rows [row0, row0 + n_rows) of `a` against the packed
// reference points [col0, col0 + cols.n) (packed with prefix norms when
// a.prefix > 0).
// Each approximate squared distance below a row's threshold is offered to that
// row's list (skipping the point itself when `skip_self`); with `symmetric`
// (self search, off-diagonal tile) it is also offered to the column's list.
// The caller holds whatever locks protect the lists of those rows and columns,
// and has checked fused_scan_supported(isa).
void fused_scan(FusedIsa isa, const TileRows& a, int64_t n_rows, int64_t row0,
                const PackedColumns& cols, int64_t col0, int64_t dim, bool symmetric,
                bool skip_self, CandidateLists& lists);

}  // namespace idest
