// Exact k-nearest-neighbour search: plain C++ with pointer-and-size interfaces.
//
// The search has the two steps of a BLAS k-NN (as in faiss): a blocked distance
// step d^2 ~= |x|^2 - 2 x.y + |y|^2 on float32 tiles (by SGEMM, or at small D by
// the fused kernel of fused_scan.hpp, which tests candidates in registers), and
// a per-row selection of candidates (candidate_lists.hpp) that never holds an
// N x N matrix. A third step makes the result exact: every candidate is
// re-scored from direct differences accumulated in float64, and a per-row
// certificate proves that no point outside the candidate list can be closer
// than the k-th chosen one; rows whose certificate fails (ties, exact or
// within float32 round-off, that run past the list's end) are searched again
// with longer lists (kWiden) while those stay short next to the reference
// set, else exhaustively in float64. Exactly equal
// rows are grouped first (duplicates.hpp), so that many copies of one row cost
// one search.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "fused_scan.hpp"

namespace idest {

// Fortran-ABI SGEMM, as exported by scipy.linalg.cython_blas.
using SgemmFn = void (*)(const char*, const char*, const int*, const int*, const int*,
                         const float*, const float*, const int*, const float*, const int*,
                         const float*, float*, const int*);

// Fortran-ABI DSYEV (symmetric eigendecomposition), as exported by
// scipy.linalg.cython_lapack.
using SyevFn = void (*)(char*, char*, int*, double*, int*, double*, double*, int*, int*);

// A read-only row-major matrix of float32 or float64 values; rows may be strided
// (numpy memmaps, torch views), columns are contiguous. With `row_index`, row i
// of the view is row row_index[i] of the data (a subset without a copy).
struct MatrixView {
    const void* data = nullptr;
    int64_t n_rows = 0;
    int64_t n_cols = 0;
    int64_t row_stride = 0;  // in elements
    bool is_float64 = false;
    const int64_t* row_index = nullptr;
};

template <class T>
inline const T* row_ptr(const MatrixView& m, int64_t i) {
    return static_cast<const T*>(m.data) + (m.row_index ? m.row_index[i] : i) * m.row_stride;
}

// How the float32 pass computes a tile: SGEMM into a distance tile that is then
// scanned (any D, any CPU), or the fused register-blocked kernel
// (fused_scan.hpp; x86-64 with AVX2 + FMA or AVX-512). kFused takes the widest
// instruction set the CPU has; kAuto takes it for D <= kFusedMaxDim.
enum class TileKernel { kAuto, kSgemm, kFused, kFusedAvx2, kFusedAvx512 };
constexpr int64_t kFusedMaxDim = 64;

// The instruction set of the fused kernel that `kernel` runs: the one it names,
// or for kAuto and kFused the widest this CPU has (AVX-512, else AVX2); none
// for kSgemm. Whether the CPU has a named one is fused_scan_supported's question.
std::optional<FusedIsa> fused_isa_for(TileKernel kernel);

// Rows whose candidates cannot be certified because ties run past the end of
// their lists are searched again with kWiden times as many entries beyond k
// (search_rows, knn_search): k + 8, then k + 64, k + 512, ... The margin grows,
// not k: a tie level is as large as it is whatever k (widening the whole list
// 8-fold at k = 89 on integer data searched 18,000 rows at k = 721, 5,832
// wide, for what k + 64 settles).
constexpr int64_t kWiden = 8;
// ... in chunks of at most kWideEntries list entries (about 24 bytes each:
// the candidate list's 8 and the answer's 16; 100 MiB in all).
constexpr int64_t kWideEntries = int64_t(1) << 22;

struct KnnOptions {
    int k = 1;                  // neighbours returned per query
    int n_candidates = 1;       // candidates kept per query by the float32 pass (>= k)
    int n_threads = 1;          // worker threads (each calls a single-threaded SGEMM)
    int64_t block_rows = 2048;  // rows per tile side (the fused kernel's: twice as many)
    bool exclude_self = false;  // query == reference: row i never returns index i
    TileKernel kernel = TileKernel::kAuto;
    // The fused kernel's early exit (fused_scan.hpp): the search rotates the
    // data to its principal axes (found with `syev`; none without it) and
    // tests the first `prefix_dims` of them before the rest. -1: chosen from
    // the spectrum (principal_axes in knn.cpp); 0: no rotation, no early exit;
    // 0 < p < D: that many (for tests and measurements).
    SyevFn syev = nullptr;
    int prefix_dims = -1;
    // Set to non-zero by another thread to stop the search: checked before every
    // tile, which then throws Cancelled (no partial result is returned).
    const int64_t* cancel = nullptr;
};

// Thrown by a search whose KnnOptions::cancel flag was set.
struct Cancelled : std::runtime_error {
    Cancelled() : std::runtime_error("the k-NN search was cancelled") {}
};

// The whole search: groups exactly equal rows, runs search_rows on the
// distinct rows, and expands the groups (a row whose expansion reaches the
// end of its group's list at a tie is expanded again from a search of its
// group with longer lists, kWiden). Writes
// Euclidean distances and indices (n_query x k, ascending, ties by the lower
// index; with exclude_self row i never lists i) and returns how many
// exhaustive float64 searches it made (of rows, or of the rows standing for
// groups of equal rows). `opt.n_candidates - opt.k` is the candidate
// margin kept beyond k. `progress` as in search_rows.
int64_t knn_search(const MatrixView& query, const MatrixView& ref, const KnnOptions& opt,
                   SgemmFn sgemm, double* distances, int64_t* indices, int64_t* progress);

// The search of every row as it is (no grouping of equal rows): the float32
// candidate pass, then the exact float64 re-scoring of each row's candidates
// with its certificate (rows that fail it are searched again with wider
// lists, or exhaustively: see the top of this file). Output
// as in knn_search, squared distances with `squared`; returns the number of
// exhaustive rows. `progress` (may be null; zeros at the start): every pass
// over tiles, second searches included, adds its tiles to progress[1] and
// counts them in progress[0] as they finish.
int64_t search_rows(const MatrixView& query, const MatrixView& ref, const KnnOptions& opt,
                    SgemmFn sgemm, bool squared, double* distances, int64_t* indices,
                    int64_t* progress);

// The tile between two disjoint shards of a sharded self search: for every
// row of `a` its k nearest rows of `b`, and for every row of `b` its k nearest
// rows of `a`, from one float32 pass over the a x b tiles (each tile updates
// both sides' candidate lists, as the self search's off-diagonal tiles do),
// then each side's re-scoring and certificate as in search_rows. SGEMM tiles
// whatever opt.kernel says, opt.exclude_self ignored, no grouping of equal
// rows (a row with more exact duplicates than its list holds falls back to
// the exhaustive search). Writes a's Euclidean answers (n_a x min(k, n_b))
// and b's (n_b x min(k, n_a)); returns each side's number of exhaustive rows.
// opt.n_candidates >= k is the width of both sides' lists.
std::pair<int64_t, int64_t> pair_search(const MatrixView& a, const MatrixView& b,
                                        const KnnOptions& opt, SgemmFn sgemm, double* dist_a,
                                        int64_t* idx_a, double* dist_b, int64_t* idx_b);

// Exact float64 re-scoring of candidate lists. Output distances are Euclidean (not
// squared), sorted ascending with ties broken by the lower index. Rows whose k-th
// exact squared distance is not strictly below `lower_bound` are searched
// exhaustively. Returns how many rows needed that fallback. With `squared`, the
// output distances are the squared ones.
int64_t refine_candidates(const MatrixView& query, const MatrixView& ref, bool exclude_self,
                          int k, const int64_t* cand_idx, int n_candidates,
                          const double* lower_bound, int n_threads, double* distances,
                          int64_t* indices, bool squared = false);

// Exhaustive float64 searches of query rows `rows` (Euclidean distances and
// indices written to their rows of the n_query x k output), on n_threads
// threads, stopped by `cancel` as KnnOptions::cancel; returns their number.
int64_t exhaustive_rows(const MatrixView& query, const MatrixView& ref, bool exclude_self, int k,
                        const std::vector<int64_t>& rows, int n_threads, const int64_t* cancel,
                        double* distances, int64_t* indices);

}  // namespace idest
