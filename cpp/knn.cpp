// Exact k-NN: float32 tiles (SGEMM or the fused kernel) + per-row selection +
// float64 certificate.
// See knn.hpp for the contract; the numerical argument is written out at
// `certified_lower_bound` below.
#include "knn.hpp"

#include "candidate_lists.hpp"
#include "cpu.hpp"
#include "fused_scan.hpp"
#include "parallel.hpp"
#include "rescoring.hpp"
#include "spatial_order.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

namespace idest {
namespace {

// ------------------------------------------------------ float32 tiles ---

struct Scaling {
    std::vector<double> mean;      // column means of the reference set
    double scale = 1.0;            // power of two: scaled values lie in (-1, 1)
    double max_sq_norm = 0.0;      // largest |x - mean|^2 over both sets, unscaled
    KeptVector<double> sq_norm;    // |x - mean|^2 per query row (then per reference
                                   // row in a pair search), unscaled
    // Principal axes (fused kernel only, see principal_axes): row i holds
    // input coordinate i's components along the axes, largest variance first
    // (D x D, orthonormal); empty: the input axes. `prefix` leading axes are
    // the kernel's early-exit test (0: none).
    std::vector<double> axes;
    int64_t prefix = 0;
};

// The power of two that maps values of magnitude <= m into (-1, 1).
void set_scale(Scaling& s, double m) {
    if (m <= 0.0) return;
    int e = 0;
    std::frexp(m, &e);  // m = f * 2^e with f in [0.5, 1)
    s.scale = std::ldexp(1.0, -e);
}

// Column means of the reference rows and max |x - mean| over both sets. The
// scale is a power of two, so scaling is exact and only rounding to float32
// perturbs the values (that error enters the certificate). A pair search
// (`pair`) certifies the reference rows' lists too, so it needs their norms.
template <class T>
Scaling compute_scaling(const MatrixView& query, const MatrixView& ref, bool self, bool pair,
                        int n_threads) {
    const int64_t dim = ref.n_cols;
    const int64_t chunk = 4096;
    Scaling s;
    s.mean.assign(dim, 0.0);
    {
        const int64_t n_chunks = (ref.n_rows + chunk - 1) / chunk;
        std::vector<std::vector<double>> partial(n_chunks, std::vector<double>(dim, 0.0));
        parallel_for(n_chunks, n_threads, [&](int64_t c, int) {
            double* acc = partial[c].data();
            const int64_t end = std::min(ref.n_rows, (c + 1) * chunk);
            for (int64_t i = c * chunk; i < end; ++i) {
                const T* x = row_ptr<T>(ref, i);
                for (int64_t j = 0; j < dim; ++j) acc[j] += double(x[j]);
            }
        });
        for (const auto& p : partial)
            for (int64_t j = 0; j < dim; ++j) s.mean[j] += p[j];
        for (int64_t j = 0; j < dim; ++j) s.mean[j] /= double(ref.n_rows);
    }
    auto max_abs = [&](const MatrixView& m, double* norms) {
        const int64_t n_chunks = (m.n_rows + chunk - 1) / chunk;
        std::vector<double> partial(n_chunks, 0.0), partial_sq(n_chunks, 0.0);
        parallel_for(n_chunks, n_threads, [&](int64_t c, int) {
            double best = 0.0, best_sq = 0.0;
            bool finite = true;
            const int64_t end = std::min(m.n_rows, (c + 1) * chunk);
            for (int64_t i = c * chunk; i < end; ++i) {
                const T* x = row_ptr<T>(m, i);
                double sq = 0.0;
                for (int64_t j = 0; j < dim; ++j) {
                    const double v = double(x[j]) - s.mean[j];
                    best = std::max(best, std::fabs(v));
                    finite &= std::isfinite(v);
                    sq += v * v;
                }
                if (norms) norms[i] = sq;
                best_sq = std::max(best_sq, sq);
            }
            // Python validates its input; this guards direct callers of the core.
            if (!finite) throw std::invalid_argument("the input holds nan or inf values");
            partial[c] = best;
            partial_sq[c] = best_sq;
        });
        s.max_sq_norm = std::max(s.max_sq_norm, *std::max_element(partial_sq.begin(), partial_sq.end()));
        return *std::max_element(partial.begin(), partial.end());
    };
    s.sq_norm.assign(query.n_rows + (pair ? ref.n_rows : 0), 0.0);
    double m = max_abs(query, s.sq_norm.data());
    // A separate reference set is always scanned, even when it shares the
    // query's buffer (a query that is a view of the reference).
    if (!self) m = std::max(m, max_abs(ref, pair ? s.sq_norm.data() + query.n_rows : nullptr));
    set_scale(s, m);
    return s;
}

// When the early exit is taken: its leading axes must carry kExitVariance of
// the variance, be at most half of the axes, and leave at least
// kExitMinSkipped to skip (a block that stops there skips D - prefix of its D
// multiply-adds per pair for one extra threshold test). Measured (50,000
// points, k = 10, 2 threads, benchmarks/results/knn_early_exit.md): an
// 8-dimensional latent runs in 0.78x the time in D = 20 and 0.51x in D = 64, a
// spectrum falling as i^-2 over D = 64 in 0.58x (prefixes 4-16 do about as
// well); a spectrum falling as i^-1 (an intrinsically high-dimensional set)
// gains nothing at any prefix and loses up to 6 %, isotropic data up to 12 %,
// and this rule leaves both without the exit.
constexpr double kExitVariance = 0.95;
constexpr int64_t kExitMinSkipped = 8;
// ... and the search must be large enough to repay the rotation (2 N D^2
// float64 multiply-adds per set, against N^2 D float32 ones saved in part):
// at least kExitMinRowsPerAxis * D rows on each side (3,000 x 64 without this
// rule ran 1.8x slower with the exit).
constexpr int64_t kExitMinRowsPerAxis = 64;

// The fused kernel's early exit (fused_scan.hpp): rotates the search to the
// principal axes of the reference rows (the eigenvectors of their covariance,
// from at most 4,096 rows evenly spaced: the axes need not be exact to be
// orthonormal, and orthonormal is all the bound needs) when the rule above
// takes it (or to `forced` > 0 leading axes). The rotated values can reach
// |x - mean|, so the scale follows the largest norm. No `syev`: no rotation.
template <class T>
void principal_axes(const MatrixView& ref, int64_t n_query, Scaling& s, SyevFn syev, int forced) {
    const int64_t dim = ref.n_cols;
    if (!syev || forced == 0 || dim < 2) return;
    if (forced < 0 && std::min(n_query, ref.n_rows) < kExitMinRowsPerAxis * dim) return;
    const int64_t step = (ref.n_rows + 4095) / 4096;  // at most 4,096 rows
    std::vector<double> cov(size_t(dim * dim), 0.0), v(static_cast<size_t>(dim));
    for (int64_t i = 0; i < ref.n_rows; i += step) {
        const T* x = row_ptr<T>(ref, i);
        for (int64_t j = 0; j < dim; ++j) v[j] = double(x[j]) - s.mean[j];
        for (int64_t a = 0; a < dim; ++a)
            for (int64_t b = a; b < dim; ++b) cov[a * dim + b] += v[a] * v[b];  // upper triangle
    }
    // DSYEV on the row-major upper triangle, read as the column-major lower:
    // eigenvalues ascending, eigenvector e in column e (cov[e * dim + i]).
    char jobz = 'V', uplo = 'L';
    int n = int(dim), lwork = int(std::max<int64_t>(1, 3 * dim)), info = 0;
    std::vector<double> eigenvalues(static_cast<size_t>(dim)), work(static_cast<size_t>(lwork));
    syev(&jobz, &uplo, &n, cov.data(), &n, eigenvalues.data(), work.data(), &lwork, &info);
    if (info != 0) return;  // no rotation: the search is exact either way
    double total = 0.0;
    for (double e : eigenvalues) total += std::max(e, 0.0);
    // Values so large that their squares overflow (only direct callers of the
    // core pass them: Python rescales such data) get no rotation.
    bool finite = std::isfinite(total) && std::isfinite(s.max_sq_norm);
    for (double v : cov) finite = finite && std::isfinite(v);
    if (!finite) return;
    int64_t prefix = forced > 0 ? std::min<int64_t>(forced, dim - 1) : 0;
    if (prefix == 0 && total > 0.0) {
        double carried = 0.0;
        for (int64_t p = 1; p < dim; ++p) {
            carried += std::max(eigenvalues[size_t(dim - p)], 0.0);
            if (carried >= kExitVariance * total) {
                if (2 * p <= dim && dim - p >= kExitMinSkipped) prefix = p;
                break;
            }
        }
    }
    if (prefix == 0) return;
    s.axes.assign(size_t(dim * dim), 0.0);
    for (int64_t i = 0; i < dim; ++i)
        for (int64_t a = 0; a < dim; ++a) s.axes[i * dim + a] = cov[(dim - 1 - a) * dim + i];
    s.prefix = prefix;
    set_scale(s, std::sqrt(s.max_sq_norm));
}

// out = x A for one row x (D values) and a D x D row-major A, in float64 (rows
// of A in turn, so the inner loop runs over contiguous values and vectorises).
IDEST_CLONES
void rotate_row(const double* x, const double* a, int64_t dim, double* out) {
    std::fill(out, out + dim, 0.0);
    for (int64_t j = 0; j < dim; ++j) {
        const double xj = x[j];
        const double* row = a + j * dim;
        for (int64_t c = 0; c < dim; ++c) out[c] += xj * row[c];
    }
}

// Converts rows row0 .. row0 + n to centred, scaled float32 (rotated to the
// principal axes when the scaling has them) and, unless `norms` is null, their
// squared norms (accumulated in float64, rounded to float32).
template <class T>
void load_block(const MatrixView& m, int64_t row0, int64_t n, const Scaling& s, float* out,
                float* norms) {
    const int64_t dim = m.n_cols;
    const bool rotate = !s.axes.empty();
    std::vector<double> centred(rotate ? size_t(dim) : 0), rotated(centred.size());
    for (int64_t i = 0; i < n; ++i) {
        const T* x = row_ptr<T>(m, row0 + i);
        float* o = out + i * dim;
        if (!rotate) {
            for (int64_t j = 0; j < dim; ++j) o[j] = float((double(x[j]) - s.mean[j]) * s.scale);
        } else {
            for (int64_t j = 0; j < dim; ++j) centred[j] = double(x[j]) - s.mean[j];
            rotate_row(centred.data(), s.axes.data(), dim, rotated.data());
            for (int64_t a = 0; a < dim; ++a) o[a] = float(rotated[a] * s.scale);
        }
        if (!norms) continue;
        double sq = 0.0;
        for (int64_t j = 0; j < dim; ++j) sq += double(o[j]) * double(o[j]);
        norms[i] = float(sq);
    }
}

// A set's centred, scaled float32 rows in a spatial visiting order, in the
// fused kernel's layouts (fused_scan.hpp), made once for all tiles: every
// position packed as reference points (`columns`) and each tile block of
// `block` positions as query rows (`blocks`; 4 D bytes per point for each
// layout, at most 256 at the D <= kFusedMaxDim where the fused kernel is
// chosen by default), with the mean row of each block.
struct OrderedRows {
    KeptVector<int64_t> order;  // position -> row of the input
    std::vector<std::vector<double>> centroids;
    PackedColumns columns;
    std::vector<PackedRows> blocks;
};

// The inverse of a permutation: out[order[p]] = p (input row -> position).
KeptVector<int64_t> inverse(const KeptVector<int64_t>& order) {
    KeptVector<int64_t> out(order.size());
    for (size_t p = 0; p < order.size(); ++p) out[size_t(order[p])] = int64_t(p);
    return out;
}

// `as_rows`: pack the blocks (the query set); `as_columns`: keep the
// columns (the reference set; a self search's set is both).
template <class T>
OrderedRows ordered_rows(const MatrixView& m, const Scaling& s, int64_t block, int n_threads,
                         FusedIsa isa, bool as_rows, bool as_columns) {
    const int64_t n = m.n_rows, dim = m.n_cols, chunk = 1024, prefix = s.prefix;
    OrderedRows o;
    KeptVector<float> rows(size_t(n) * dim), lead(n), rest(prefix > 0 ? n : 0);
    parallel_for((n + chunk - 1) / chunk, n_threads, [&](int64_t c, int) {
        load_block<T>(m, c * chunk, std::min(chunk, n - c * chunk), s, rows.data() + c * chunk * dim,
                      nullptr);
    });
    // The visiting order, the rows moved into it as it is found (the rotation
    // keeps distances, so the order may be found on the rotated rows).
    o.order = spatial_order(rows.data(), n, dim, /*leaf=*/32, n_threads);
    const int64_t lead_dims = prefix > 0 ? prefix : dim;
    parallel_for((n + chunk - 1) / chunk, n_threads, [&](int64_t c, int) {
        for (int64_t p = c * chunk; p < std::min(n, (c + 1) * chunk); ++p) {
            const float* x = rows.data() + p * dim;
            double sum_lead = 0.0, sum_rest = 0.0;
            for (int64_t j = 0; j < lead_dims; ++j) sum_lead += double(x[j]) * double(x[j]);
            for (int64_t j = lead_dims; j < dim; ++j) sum_rest += double(x[j]) * double(x[j]);
            lead[p] = -0.5f * float(sum_lead);  // halving is exact (subnormals aside)
            if (prefix > 0) rest[p] = -0.5f * float(sum_rest);
        }
    });
    o.columns.pack(isa, {rows.data(), lead.data(), prefix > 0 ? rest.data() : nullptr, prefix}, n,
                   dim, n_threads);
    const int64_t n_blocks = (n + block - 1) / block;
    o.centroids.assign(n_blocks, std::vector<double>(dim, 0.0));
    if (as_rows) o.blocks.resize(n_blocks);
    parallel_for(n_blocks, n_threads, [&](int64_t b, int) {
        const int64_t end = std::min(n, (b + 1) * block);
        for (int64_t p = b * block; p < end; ++p)
            for (int64_t j = 0; j < dim; ++j) o.centroids[b][j] += double(rows[p * dim + j]);
        for (auto& v : o.centroids[b]) v /= double(end - b * block);
        if (as_rows) o.blocks[b].pack(o.columns.view(b * block, end - b * block, dim), dim);
    });
    if (!as_columns) o.columns = {};
    return o;
}

// Hands out the tiles of a self search in their order, but skips ahead (a
// little) past tiles whose blocks another thread holds: each tile locks its
// two blocks while it updates their lists.
class TileQueue {
  public:
    TileQueue(std::vector<std::pair<int64_t, int64_t>> tiles, int64_t n_blocks)
        : tiles_(std::move(tiles)), taken_(tiles_.size(), 0), busy_(n_blocks, 0) {}

    std::pair<int64_t, int64_t> take() {
        std::lock_guard<std::mutex> guard(lock_);
        while (first_ < tiles_.size() && taken_[first_]) ++first_;
        size_t pick = first_;
        const size_t end = std::min(tiles_.size(), first_ + kLookahead);
        for (size_t t = first_; t < end; ++t) {
            if (taken_[t]) continue;
            if (!busy_[tiles_[t].first] && !busy_[tiles_[t].second]) {
                pick = t;
                break;
            }
        }
        taken_[pick] = 1;
        ++busy_[tiles_[pick].first];
        ++busy_[tiles_[pick].second];
        return tiles_[pick];
    }

    void release(std::pair<int64_t, int64_t> tile) {
        std::lock_guard<std::mutex> guard(lock_);
        --busy_[tile.first];
        --busy_[tile.second];
    }

  private:
    static constexpr size_t kLookahead = 64;
    std::vector<std::pair<int64_t, int64_t>> tiles_;
    std::vector<char> taken_;
    std::vector<int> busy_;
    size_t first_ = 0;
    std::mutex lock_;
};

// Tile scans. The approximate squared distance of tile entry (r, c) is
// row_norm + col_norms[c] + g[c] with g = -2 x.y. Almost every entry fails its
// threshold once the lists have filled, so each scan tests chunks of kChunk
// entries with a branch-free reduction (vectorised; AVX2 where the CPU has it,
// chosen at run time) and walks a chunk entry by entry only when it holds a hit.
constexpr int64_t kChunk = 16;

// Row r of a tile against the candidate list of query `row` (whose threshold
// is the same for every column). `skip` is a column to ignore (the point itself).
IDEST_CLONES
void scan_row(const float* g, const float* col_norms, float row_norm, int64_t n, int64_t col0,
              int64_t row, int64_t skip, CandidateLists& lists) {
    for (int64_t c0 = 0; c0 < n; c0 += kChunk) {
        const int64_t m = std::min(kChunk, n - c0);
        const float w = lists.worst[row];
        int hit = 0;
        for (int64_t j = 0; j < m; ++j) hit |= (row_norm + col_norms[c0 + j] + g[c0 + j] < w);
        if (!hit) continue;
        for (int64_t c = c0; c < c0 + m; ++c) {
            const float d = row_norm + col_norms[c] + g[c];
            if (d < lists.worst[row] && col0 + c != skip) lists.insert(row, d, col0 + c);
        }
    }
}

// Row r of a tile seen as a column: entry c updates the candidate list of
// query col0 + c with the point `row` (symmetric self search).
IDEST_CLONES
void scan_columns(const float* g, const float* col_norms, float row_norm, int64_t n,
                  int64_t col0, int64_t row, CandidateLists& lists) {
    const float* thresholds = lists.worst.data() + col0;
    for (int64_t c0 = 0; c0 < n; c0 += kChunk) {
        const int64_t m = std::min(kChunk, n - c0);
        int hit = 0;
        for (int64_t j = 0; j < m; ++j)
            hit |= (row_norm + col_norms[c0 + j] + g[c0 + j] < thresholds[c0 + j]);
        if (!hit) continue;
        for (int64_t c = c0; c < c0 + m; ++c) {
            const float d = row_norm + col_norms[c] + g[c];
            if (d < thresholds[c]) lists.insert(col0 + c, d, row);
        }
    }
}

// Every reference point that is not a candidate had an approximate squared
// distance a >= worst (the list's last entry only decreases). With float32
// inputs rounded from the centred, scaled data, the dot-product error bound
// |e| <= D u |x||y| (SGEMM's) and the rounding of norms and sums, the true
// scaled squared distance t obeys |a - t| <= c (|x|^2 + |y|^2) with c = (2D + 32) u,
// u = 2^-24 (a generous form of the bound, Higham ch. 3). Using
// |y|^2 <= 2|x|^2 + 2t gives t >= (worst - 3 c |x|^2) / (1 + 2 c); an absolute
// term covers float32 subnormals. The bound is about twice the error actually
// possible, a slack that also covers the float64 rounding of exact_sqdist.
//
// The fused kernel (fused_scan.hpp) forms a = -2 acc, where acc starts at
// minus half the norms of the two points (each a float64 sum rounded to
// float32, halved: exact above the subnormals, which the absolute term
// covers) and takes one FMA per coordinate, with the rest
// norms added where an early exit's leading axes end: D + 1 roundings (D + 3
// with an exit) of partial sums bounded by (|x|^2 + |y|^2) / 2 + |x||y| <=
// |x|^2 + |y|^2, a relative u on each of the four half norms and the inputs'
// own rounding to float32, so |a - t| <= (2D + 16) u (|x|^2 + |y|^2) to first
// order, inside c (flushing subnormals, as some libraries set the CPU to do,
// moves each step by less than 2^-126, inside the absolute term). Its block
// test reads the sign of 2 acc + w, one rounding of an exact product and a
// float, which is the sign of the exact sum, and compares -2 max acc (exact)
// with the columns' thresholds: it drops no pair with a < w.
//
// A pair that the fused kernel's early exit dropped (fused_scan.hpp) was never
// given a full approximation, but its approximation a_p over the leading
// axes was >= worst, and t >= t_p >= a_p - c_p (|x_p|^2 + |y_p|^2) - r (|x|^2 +
// |y|^2), with c_p = (2p + 32) u, |x_p| <= |x| and r the rotation's term below
// (part of c), so t >= a_p - c (|x|^2 + |y|^2): the same inequality, so the
// same bound. The rotation to principal axes (float64, axes orthonormal to float64
// round-off) moves values and distances by far less than u, relative to the
// full norms; the term r = 8 D^1.5 float64 epsilons in c states it (measured
// orthogonality error of dsyev's axes at D = 64: 5e-15, r: 4.5e-13).
double certified_lower_bound(float worst, double sq_norm_unscaled, const Scaling& s,
                             int64_t dim) {
    if (!std::isfinite(worst)) return std::numeric_limits<double>::infinity();
    const double u = std::ldexp(1.0, -24);
    const double rotation =
        s.axes.empty() ? 0.0 : 8.0 * double(dim) * std::sqrt(double(dim)) * std::ldexp(1.0, -53);
    const double c = (2.0 * double(dim) + 32.0) * u + rotation;
    const double s2 = s.scale * s.scale;
    const double x2 = sq_norm_unscaled * s2;
    const double absolute = double(dim) * std::ldexp(1.0, -120);
    const double t = (double(worst) - 3.0 * c * x2 - absolute) / (1.0 + 2.0 * c);
    return t / s2;
}

// A diagonal tile of a spatially ordered self search, nearest pairs first:
// each half of the position range [p0, p0 + n) is done (recursively) before
// the pairs between the halves, down to squares of kDiagonalLeaf positions.
// Rows thus meet their nearest points first, so few later points pass their
// thresholds; and above the 64-point squares only the upper triangle of the
// tile is computed. The halves meet at a multiple of the packing group, so
// that each range starts a group of set.columns (p0 does).
void fused_diagonal(FusedIsa isa, const OrderedRows& set, int64_t p0, int64_t n, int64_t dim,
                    PackedRows& rows, CandidateLists& lists) {
    constexpr int64_t kDiagonalLeaf = 64;
    if (n <= kDiagonalLeaf) {
        const ColumnView square = set.columns.view(p0, n, dim);
        rows.pack(square, dim);
        fused_scan(isa, rows, p0, square, p0, dim, false, true, lists);
        return;
    }
    const int64_t group = set.columns.group;
    const int64_t half = std::max(group, (n / 2 + group / 2) / group * group);
    fused_diagonal(isa, set, p0, half, dim, rows, lists);
    fused_diagonal(isa, set, p0 + half, n - half, dim, rows, lists);
    rows.pack(set.columns.view(p0, half, dim), dim);
    fused_scan(isa, rows, p0, set.columns.view(p0 + half, n - half, dim), p0 + half, dim, true,
               true, lists);
}

// The fused kernel's tile side over KnnOptions::block_rows (plan_tiles).
constexpr int64_t kFusedTileScale = 2;

// The float32 candidate pass of one search, in three steps: plan the tiles
// (scaling, kernel, tile sides, visiting orders), run each tile (its distances
// and the list updates), certify each row (its candidates and the lower bound
// on every point outside them).
//
// A pair search (`pair`: a sharded self search's tile between two disjoint
// shards, see pair_search) is a self search's off-diagonal tiles between two
// row sets: each (query block, reference block) tile updates the query rows'
// lists and the reference rows' lists, which follow them (list nq + j is
// reference row j's, holding query rows). SGEMM tiles only.
template <class T>
class CandidateSearch {
  public:
    // `out_dist`, `out_idx` (n_query x opt.k) are the search's output, where
    // the lists live while they fit (large k); the re-scoring reads each row's
    // list (candidates()) before it writes the row's answer there. A pair
    // search has two outputs and keeps its lists apart (both null).
    CandidateSearch(const MatrixView& query, const MatrixView& ref, const KnnOptions& opt,
                    SgemmFn sgemm, int64_t* progress, double* out_dist, int64_t* out_idx,
                    bool pair = false)
        : query_(query),
          ref_(ref),
          opt_(opt),
          sgemm_(sgemm),
          progress_(progress),
          self_(opt.exclude_self),
          pair_(pair),
          dim_(ref.n_cols),
          nq_(query.n_rows),
          nr_(ref.n_rows),
          scaling_(compute_scaling<T>(query, ref, opt.exclude_self, pair, opt.n_threads)) {
        if (pair && (self_ || opt.kernel != TileKernel::kSgemm))
            throw std::logic_error("a pair search is a non-self search of SGEMM tiles");
        choose_kernel();
        plan_tiles();
        // The unsorted buffers of large widths live in the output rows (k
        // doubles, int64, hold 2k floats, int32), so that a large-k search
        // allocates nothing beyond its answer. Sorted lists (k <~ 24) are
        // offered a few entries per block, to the lists of neighbouring
        // positions: in their own memory in visiting order they share cache
        // lines (perf, 20,000 x 20, k = 10: offers 15.3 -> 12.0 % of the
        // samples), where in the output rows each is a line of its own.
        ListMemory lent;
        const int capacity = CandidateLists::capacity_for(opt.n_candidates);
        if (out_dist && capacity > CandidateLists::kSortedMaxWidth && capacity <= 2 * int64_t(opt.k))
            lent = {reinterpret_cast<float*>(out_dist), reinterpret_cast<int32_t*>(out_idx),
                    2 * int64_t(opt.k), fused_ ? qset_.order.data() : nullptr};
        // a pair search's lists hold rows of either set
        lists_.emplace(nq_ + (pair_ ? nr_ : 0), opt.n_candidates,
                       pair_ ? std::max(nq_, nr_) : nr_, lent);
    }

    // The tiles: every query row's candidate list and threshold.
    void run() {
        const int64_t n_items = tiled() ? int64_t(tiles_.size()) : n_qblocks_;
        if (progress_)  // (added: second searches add theirs to the same count)
            __atomic_fetch_add(&progress_[1], tiled() ? n_items : n_items * n_rblocks_,
                               __ATOMIC_RELAXED);
        const int n_threads = int(std::max<int64_t>(1, std::min<int64_t>(opt_.n_threads, n_items)));
        std::vector<Workspace> ws(n_threads);
        if (!fused_)  // the fused kernel reads the converted rows of qset_ / rset_
            for (auto& w : ws) w.allocate(bq_, br_, dim_);
        TileQueue queue(tiles_, int64_t(block_locks_.size()));
        parallel_for(n_items, n_threads, [&](int64_t t, int tid) {
            if (opt_.cancel && __atomic_load_n(opt_.cancel, __ATOMIC_RELAXED)) throw Cancelled();
            if (!tiled()) return run_query_block(ws[tid], t);
            const auto tile = queue.take();
            run_tile(ws[tid], tile.first, tile.second);
            queue.release(tile);
        });
        if (fused_) {
            qset_.columns = {};  // the layouts are not read again
            qset_.blocks = {};
            rset_.columns = {};
        }
    }

    // After run(): the rows the re-scoring reads (rescore's `scan`). Row t of
    // the query view is the t-th row re-scored, query row visit(t); the
    // candidates name rows of the reference view, reference rows ref_row(a).
    // When the lists are short, copies of the rows in visiting order: a row's
    // candidates, near it in the order, are then near it in memory, its list
    // is next to the previous row's, and a candidate's position is the row to
    // read (20,000 x 20, k = 10: the search took 0.96 of the time of mapping
    // each position to its row and back through an index, knn_paired.py, 100
    // pairs each way). Otherwise (no visiting order, or long lists: the
    // dense re-scoring reads the reference rows in index order) the inputs.
    std::pair<MatrixView, MatrixView> scan_views() {
        visiting_ = fused_ && lists_->width <= CandidateLists::kSortedMaxWidth;
        if (!visiting_) {
            if (fused_) position_of_ = inverse(qset_.order);
            return {query_, ref_};
        }
        const MatrixView q = in_order(query_, qset_.order, q_copy_);
        if (self_) return {q, q};
        return {q, in_order(ref_, rset_.order, r_copy_)};
    }

    int64_t visit(int64_t t) const { return visiting_ ? qset_.order[t] : t; }
    int64_t ref_row(int64_t a) const { return visiting_ ? ref_rows().order[a] : a; }

    // After run() (and, but for a pair search, scan_views(), whose rows it
    // names), once per re-scored row t (from any thread, each row once):
    // writes its candidates (rows of the reference view) to out[0..width),
    // returns their number n, and sets *bound to the certified lower bound on
    // the squared distance of every point outside them. In a pair search, row
    // nq + j is reference row j, whose candidates are query rows.
    int candidates(int64_t t, int64_t* out, double* bound) {
        const int64_t i = visit(t), p = visiting_ ? t : fused_ ? position_of_[i] : i;
        const int width = lists_->width;
        const int n = lists_->finish(p, out);
        if (fused_ && !visiting_)
            for (int j = 0; j < n; ++j) out[j] = ref_rows().order[out[j]];
        // (a pair search's list may be wider than the other set: it then holds all of it)
        const int64_t available = pair_ && i >= nq_ ? nq_ : nr_ - (self_ ? 1 : 0);
        const double inf = std::numeric_limits<double>::infinity();
        if (n == available) {
            *bound = inf;  // a list that holds every point leaves nothing outside
        } else if (n < width || !std::isfinite(lists_->worst[p])) {
            // Every point was offered to every list, so a list that is not full
            // (or never needed a threshold) met a non-finite approximation:
            // certify nothing, search exhaustively.
            *bound = -inf;
        } else {
            *bound = certified_lower_bound(lists_->worst[p], scaling_.sq_norm[i], scaling_, dim_);
        }
        return n;
    }

  private:
    struct Workspace {
        std::vector<float> a, b, g, na, nb;
        PackedRows rows;  // a diagonal tile's sub-squares (fused)
        int64_t cached_a = -1;

        void allocate(int64_t bq, int64_t br, int64_t dim) {
            a.resize(size_t(bq) * dim);
            b.resize(size_t(br) * dim);
            g.resize(size_t(bq) * br);
            na.resize(bq);
            nb.resize(br);
        }
    };

    void choose_kernel() {
        const auto isa = fused_isa_for(opt_.kernel);
        fused_ = isa.has_value();
        if (!fused_) return;
        isa_ = *isa;
        if (opt_.kernel == TileKernel::kAuto) {
            fused_ = dim_ <= kFusedMaxDim && fused_scan_supported(isa_);
            return;
        }
        if (!fused_scan_supported(isa_))
            throw std::invalid_argument(
                isa_ == FusedIsa::kAvx512
                    ? "the fused tile kernel 'fused-avx512' needs an x86-64 CPU with AVX-512"
                    : "the fused tile kernel needs an x86-64 CPU with AVX2 and FMA");
    }

    // Tile sides (never fewer blocks than threads when the data allows it),
    // the spatial visiting orders of the fused kernel, and the order of the
    // self search's tiles.
    //
    // The fused kernel's tiles are kFusedTileScale times block_rows a side:
    // they hold no distance matrix, and longer sides read each block's
    // layouts and lists from memory fewer times (20,000 x 20, k = 10, 2
    // threads, block_rows 1,024: 2,048-row tiles took 0.964-0.968 of the
    // time of 1,024-row ones, median of 30 interleaved pairs, twice; 4,096
    // 0.979; 100,000 x 20, 2,048: 0.941).
    void plan_tiles() {
        if (pair_) return plan_pair_tiles();
        const int64_t threads = opt_.n_threads;
        const int64_t side = fused_ ? kFusedTileScale * opt_.block_rows : opt_.block_rows;
        bq_ = std::min(side, std::max<int64_t>(64, (nq_ + threads - 1) / threads));
        if (self_)
            bq_ = std::min(side, std::max<int64_t>(64, (nq_ + 2 * threads - 1) / (2 * threads)));
        br_ = self_ ? bq_ : side;
        if (fused_) {  // reference blocks start groups of the packed points (fused_scan.hpp)
            const int64_t group = fused_group(isa_);
            bq_ = (bq_ + group - 1) / group * group;
            br_ = (br_ + group - 1) / group * group;
        }
        n_qblocks_ = (nq_ + bq_ - 1) / bq_;
        n_rblocks_ = (nr_ + br_ - 1) / br_;
        // With the fused kernel, rows are visited in a spatial order
        // (spatial_order.hpp) and lists are kept by position in that order,
        // mapped back by certify_row. At larger D the selection is a small
        // share of the work and the ordering and scattered row reads cost more
        // than they save (20,000 x 768: +17 %), so the SGEMM path keeps the
        // input order.
        if (fused_) {
            principal_axes<T>(ref_, nq_, scaling_, opt_.syev, opt_.prefix_dims);
            qset_ = ordered_rows<T>(query_, scaling_, bq_, opt_.n_threads, isa_, true, self_);
            if (!self_) rset_ = ordered_rows<T>(ref_, scaling_, br_, opt_.n_threads, isa_, false, true);
        }
        if (self_) block_locks_ = std::vector<std::mutex>(n_qblocks_);
        // Self search: the upper-triangular tiles (bi <= bj) of the symmetric
        // distance matrix, each updating both its rows and its columns (half
        // the distance work), the diagonal tiles first, then (in spatial
        // order) by distance between block centroids, so near-final candidates
        // arrive early. Otherwise one item per query block, which visits the
        // reference blocks nearest first (run_query_block).
        if (!self_) return;
        std::vector<std::pair<double, std::pair<int64_t, int64_t>>> keyed;
        for (int64_t bi = 0; bi < n_qblocks_; ++bi)
            for (int64_t bj = bi; bj < n_qblocks_; ++bj)
                keyed.push_back({bi == bj ? -1.0 : block_distance(bi, bj), {bi, bj}});
        std::stable_sort(keyed.begin(), keyed.end(),
                         [](const auto& x, const auto& y) { return x.first < y.first; });
        for (const auto& kt : keyed) tiles_.push_back(kt.second);
    }

    // A pair search: each set cut into equal blocks of at most block_rows (a
    // shard of 12,500 rows in 1,024-row blocks would otherwise end in a thin
    // 212-row block, a narrow SGEMM), and every (query block, reference
    // block) tile in row-major order (a thread keeps its converted query
    // block across a row of tiles). Reference block b takes lock
    // n_qblocks_ + b.
    void plan_pair_tiles() {
        auto side = [&](int64_t n) {
            const int64_t blocks = (n + opt_.block_rows - 1) / opt_.block_rows;
            return (n + blocks - 1) / blocks;
        };
        bq_ = side(nq_);
        br_ = side(nr_);
        n_qblocks_ = (nq_ + bq_ - 1) / bq_;
        n_rblocks_ = (nr_ + br_ - 1) / br_;
        block_locks_ = std::vector<std::mutex>(n_qblocks_ + n_rblocks_);
        for (int64_t bi = 0; bi < n_qblocks_; ++bi)
            for (int64_t bj = 0; bj < n_rblocks_; ++bj) tiles_.push_back({bi, n_qblocks_ + bj});
    }

    // Whether the work items are tiles from a TileQueue (self and pair searches)
    // rather than query blocks.
    bool tiled() const { return self_ || pair_; }

    const OrderedRows& ref_rows() const { return self_ ? qset_ : rset_; }

    double block_distance(int64_t bi, int64_t bj) const {
        if (!fused_) return 0.0;
        return exact_sqdist(qset_.centroids[bi].data(), ref_rows().centroids[bj].data(), dim_);
    }

    // A copy of m's rows in the visiting `order`, into `copy`, as a view.
    MatrixView in_order(const MatrixView& m, const KeptVector<int64_t>& order,
                        KeptVector<T>& copy) const {
        const int64_t n = m.n_rows, dim = m.n_cols, chunk = 1024;
        copy.resize(size_t(n * dim));
        parallel_for((n + chunk - 1) / chunk, opt_.n_threads, [&](int64_t c, int) {
            for (int64_t p = c * chunk; p < std::min(n, (c + 1) * chunk); ++p)
                std::copy_n(row_ptr<T>(m, order[p]), dim, copy.data() + p * dim);
        });
        MatrixView v = m;
        v.data = copy.data();
        v.row_stride = m.n_cols;
        v.row_index = nullptr;
        return v;
    }

    // A query block against every reference block, nearest first.
    void run_query_block(Workspace& w, int64_t bi) {
        std::vector<std::pair<double, int64_t>> near;
        for (int64_t b = 0; b < n_rblocks_; ++b) near.emplace_back(block_distance(bi, b), b);
        std::stable_sort(near.begin(), near.end());
        for (const auto& [d2, b] : near) run_tile(w, bi, b);
    }

    // In self search the tile's rows and columns are both query rows (in a
    // pair search both have lists): the selection holds the locks of both
    // blocks (std::lock: no lock-order deadlock); the distance computation
    // itself runs unlocked.
    std::pair<std::unique_lock<std::mutex>, std::unique_lock<std::mutex>> lock_blocks(
        int64_t bi, int64_t bj) {
        std::unique_lock<std::mutex> rows_guard, cols_guard;
        if (!tiled()) return {std::move(rows_guard), std::move(cols_guard)};
        rows_guard = std::unique_lock<std::mutex>(block_locks_[bi], std::defer_lock);
        if (bi == bj) {
            rows_guard.lock();
        } else {
            cols_guard = std::unique_lock<std::mutex>(block_locks_[bj], std::defer_lock);
            std::lock(rows_guard, cols_guard);
        }
        return {std::move(rows_guard), std::move(cols_guard)};
    }

    // One tile: query positions q0.. against reference positions r0.. (bj
    // numbers the lock of the reference block, see plan_pair_tiles).
    void run_tile(Workspace& w, int64_t bi, int64_t bj) {
        const int64_t q0 = bi * bq_, nqa = std::min(bq_, nq_ - q0);
        const int64_t r0 = (pair_ ? bj - n_qblocks_ : bj) * br_, nrb = std::min(br_, nr_ - r0);
        const bool diagonal = self_ && bi == bj;
        if (fused_ && diagonal) {
            const auto guard = lock_blocks(bi, bj);
            fused_diagonal(isa_, qset_, q0, nqa, dim_, w.rows, *lists_);
        } else if (fused_) {
            const auto guard = lock_blocks(bi, bj);
            fused_scan(isa_, qset_.blocks[bi], q0, ref_rows().columns.view(r0, nrb, dim_), r0, dim_,
                       self_, self_, *lists_);
        } else {
            sgemm_tile(w, bi, bj, q0, nqa, r0, nrb);
        }
        if (progress_) __atomic_fetch_add(&progress_[0], int64_t(1), __ATOMIC_RELAXED);
    }

    void sgemm_tile(Workspace& w, int64_t bi, int64_t bj, int64_t q0, int64_t nqa, int64_t r0,
                    int64_t nrb) {
        const bool diagonal = self_ && bi == bj;
        if (w.cached_a != bi) {
            load_block<T>(query_, q0, nqa, scaling_, w.a.data(), w.na.data());
            w.cached_a = bi;
        }
        const float* bmat = w.a.data();
        const float* bnorm = w.na.data();
        if (!diagonal) {
            load_block<T>(ref_, r0, nrb, scaling_, w.b.data(), w.nb.data());
            bmat = w.b.data();
            bnorm = w.nb.data();
        }
        // G (nqa x nrb, row-major) = -2 A B^T, via column-major G^T = -2 B A^T.
        const int m = int(nrb), n = int(nqa), kk = int(dim_), ld = int(dim_), ldc = int(nrb);
        const float alpha = -2.0f, beta = 0.0f;
        sgemm_("T", "N", &m, &n, &kk, &alpha, bmat, &ld, w.a.data(), &ld, &beta, w.g.data(), &ldc);
        const auto guard = lock_blocks(bi, bj);
        for (int64_t r = 0; r < nqa; ++r)  // rows update the query positions q0..
            scan_row(w.g.data() + r * nrb, bnorm, w.na[r], nrb, r0, q0 + r, self_ ? q0 + r : -1,
                     *lists_);
        if ((self_ && !diagonal) || pair_) {  // columns update their own lists (symmetry)
            const int64_t list0 = pair_ ? nq_ + r0 : r0;
            for (int64_t r = 0; r < nqa; ++r)
                scan_columns(w.g.data() + r * nrb, bnorm, w.na[r], nrb, list0, q0 + r, *lists_);
        }
    }

    const MatrixView& query_;
    const MatrixView& ref_;
    const KnnOptions& opt_;
    const SgemmFn sgemm_;
    int64_t* const progress_;
    const bool self_, pair_;
    const int64_t dim_, nq_, nr_;
    Scaling scaling_;
    std::optional<CandidateLists> lists_;  // made once the visiting order is known
    bool fused_ = false;
    FusedIsa isa_ = FusedIsa::kAvx2;
    int64_t bq_ = 0, br_ = 0, n_qblocks_ = 0, n_rblocks_ = 0;
    OrderedRows qset_, rset_;
    bool visiting_ = false;            // scan_views: re-score in visiting order
    KeptVector<int64_t> position_of_;  // fused, not visiting_: query row -> list position
    KeptVector<T> q_copy_, r_copy_;    // scan_views' copies

    std::vector<std::pair<int64_t, int64_t>> tiles_;  // self and pair searches only
    std::vector<std::mutex> block_locks_;              // self and pair searches only
};

// k smallest (squared distance, index) pairs, sorted; ties by lower index.
// Selection then sorting: O(n + k log k), where a partial sort's heap costs
// O(n log k) with poor constants at large k.
void take_smallest(std::vector<std::pair<double, int64_t>>& v, int k) {
    const auto kk = std::min<size_t>(size_t(k), v.size());
    if (kk < v.size()) std::nth_element(v.begin(), v.begin() + kk, v.end());
    v.resize(kk);
    std::sort(v.begin(), v.end());
}

// The exhaustive float64 search of query row i: its k answers (squared
// distances with `squared`, else Euclidean) to dist[0..k), idx[0..k); `v` is
// scratch.
template <class T>
void exhaustive_impl(const MatrixView& query, const MatrixView& ref, bool self, int64_t i, int k,
                     bool squared, std::vector<std::pair<double, int64_t>>& v, double* dist,
                     int64_t* idx) {
    const T* x = row_ptr<T>(query, i);
    v.clear();
    v.reserve(ref.n_rows);
    for (int64_t id = 0; id < ref.n_rows; ++id)
        if (!(self && id == i)) v.emplace_back(exact_sqdist(x, row_ptr<T>(ref, id), ref.n_cols), id);
    take_smallest(v, k);
    for (int j = 0; j < k; ++j) {
        dist[j] = squared ? v[j].first : std::sqrt(v[j].first);
        idx[j] = v[j].second;
    }
}

// Query rows re-scored together by the dense path (one bit each in a mask).
constexpr int64_t kRescoreBlock = 64;

// The float64 re-scoring of candidate lists (the third step of the search),
// per thread. Each row's scored candidates are sorted by (distance, index),
// the contract's order (sort_by_distance); pairs go to the batched kernel
// kSqdistBatch at a time. Two ways to visit the pairs:
// - sparse (short lists against many points: k ~ 10): row by row, in the
//   list's order (nearly sorted by distance already) or, for lists long
//   enough for the radix sort, in ascending index order;
// - dense (kRescoreBlock x width >= the number of reference points: large k):
//   a block of rows marks its candidates in one bit mask per reference point,
//   then walks the reference points in index order, each read once for every
//   row of the block that lists it (the rows, in float64, stay in cache).
// Rows whose full candidate lists failed their certificates, left to
// search_wider, and how many of them failed at an exact tie (the k-th exact
// distance equal to the list's last: a longer list reaches past such a tie,
// where near-ties within float32 round-off among more points than any list
// holds defeat every width).
struct Deferred {
    std::vector<int64_t> rows;
    int64_t exact_ties = 0;
};

template <class T>
class Rescorer {
  public:
    // Candidates are scored on the rows of `scan` (rescore's), rows that fail
    // their certificates searched exhaustively in `query` and `ref`. With
    // `defer_ties`, a row whose full list fails its certificate is not
    // searched exhaustively but left out of the answer and listed in
    // deferred() (search_wider searches it again).
    Rescorer(const MatrixView& query, const MatrixView& ref,
             const std::pair<MatrixView, MatrixView>& scan, bool self, int k, int width,
             bool squared, double* distances, int64_t* indices, bool defer_ties = false)
        : query_(query), ref_(ref), scan_query_(scan.first), scan_ref_(scan.second),
          self_(self), k_(k), width_(width), dim_(ref.n_cols),
          squared_(squared), distances_(distances), indices_(indices),
          kernel_(sqdist_batch_kernel(ref.is_float64)),
          dense_(kRescoreBlock * width >= ref.n_rows), defer_ties_(defer_ties) {}

    const Deferred& deferred() const { return deferred_; }

    // Rows per work item of the parallel loop.
    int64_t rows_per_item() const { return dense_ ? kRescoreBlock : 64; }

    // Re-scores the rows t in [i0, i1) of the scan (query row
    // source.visit(t)), whose candidates `source.candidates(t, out, &bound)`
    // writes (at most width rows of the scan's reference view, reference rows
    // source.ref_row(a)); returns how many rows fell back to the exhaustive
    // search.
    template <class Source>
    int64_t run(int64_t i0, int64_t i1, Source& source) {
        const int64_t nb = i1 - i0;
        xd_.resize(size_t(dense_ ? nb : 1) * dim_);
        d2_.resize(size_t(dense_ ? nb : 1) * width_);
        id_.resize(d2_.size());
        bound_.resize(size_t(nb));
        int64_t fallbacks = 0;
        if (!dense_) {
            at_.resize(size_t(width_));
            for (int64_t t = i0; t < i1; ++t) {
                to_float64(t, xd_.data());
                const int n = source.candidates(t, at_.data(), &bound_[0]);
                std::atomic_signal_fence(std::memory_order_seq_cst);  // see below
                if (n >= kInsertionSortMax) std::sort(at_.begin(), at_.begin() + n);
                for (int j = 0; j < n; ++j) {
                    id_[j] = source.ref_row(at_[j]);
                    add(xd_.data(), at_[j], &d2_[j]);
                }
                flush();
                fallbacks += finish_row(source.visit(t), d2_.data(), id_.data(), n, bound_[0]);
            }
            return fallbacks;
        }
        mask_.resize(size_t(scan_ref_.n_rows), 0);
        count_.assign(size_t(nb), 0);
        for (int64_t b = 0; b < nb; ++b) {
            to_float64(i0 + b, xd_.data() + b * dim_);
            int64_t* cand = id_.data() + b * width_;  // overwritten below, in scan order
            const int n = source.candidates(i0 + b, cand, &bound_[b]);
            for (int j = 0; j < n; ++j) mask_[cand[j]] |= uint64_t(1) << b;
        }
        // The candidates may have been read from the rows' output memory (as
        // float32 / int32, see CandidateSearch), which the answer overwrites
        // (as float64 / int64): no access may move across this point.
        std::atomic_signal_fence(std::memory_order_seq_cst);
        for (int64_t a = 0; a < scan_ref_.n_rows; ++a) {
            uint64_t bits = mask_[a];
            if (!bits) continue;
            mask_[a] = 0;
            const int64_t j = source.ref_row(a);
            for (; bits; bits &= bits - 1) {
                const int b = __builtin_ctzll(bits);
                const size_t slot = size_t(b) * width_ + count_[b]++;
                id_[slot] = j;
                add(xd_.data() + b * dim_, a, &d2_[slot]);
            }
        }
        flush();
        for (int64_t b = 0; b < nb; ++b)
            fallbacks += finish_row(source.visit(i0 + b), d2_.data() + b * width_,
                                    id_.data() + b * width_, count_[b], bound_[b]);
        return fallbacks;
    }

  private:
    void to_float64(int64_t t, double* out) const {  // exact
        const T* x = row_ptr<T>(scan_query_, t);
        for (int64_t j = 0; j < dim_; ++j) out[j] = double(x[j]);
    }

    // Queues the pair (x, row a of the scan's reference view); its squared
    // distance goes to *slot.
    void add(const double* x, int64_t a, uint64_t* slot) {
        x_[pending_] = x;
        y_[pending_] = row_ptr<T>(scan_ref_, a);
        slot_[pending_] = slot;
        if (++pending_ == kSqdistBatch) flush();
    }

    void flush() {
        if (!pending_) return;
        for (int p = pending_; p < kSqdistBatch; ++p) x_[p] = x_[0], y_[p] = y_[0];
        double out[kSqdistBatch];
        kernel_(x_, y_, dim_, out);
        for (int p = 0; p < pending_; ++p) std::memcpy(slot_[p], &out[p], sizeof(double));
        pending_ = 0;
    }

    // Sorts row i's n scored candidates (see sort_by_distance), certifies the
    // k-th (or searches the row exhaustively) and writes the answer.
    int64_t finish_row(int64_t i, uint64_t* d2, int64_t* id, int n, double bound) {
        sort_by_distance(d2, id, n, tmp_d2_, tmp_id_);
        double* dist = distances_ + i * k_;
        int64_t* idx = indices_ + i * k_;
        double kth = 0.0;
        if (n >= k_) std::memcpy(&kth, &d2[k_ - 1], sizeof(double));
        if (defer_ties_ && n == width_ && std::isfinite(bound) && !(kth < bound)) {
            deferred_.rows.push_back(i);  // a wider list may certify it
            deferred_.exact_ties += int(d2[n - 1] == d2[k_ - 1]);  // (float64 bits, >= 0)
            return 0;
        }
        if (n < k_ || !(kth < bound)) {  // exhaustive float64 search of this row
            exhaustive_impl<T>(query_, ref_, self_, i, k_, squared_, fallback_, dist, idx);
            return 1;
        }
        for (int j = 0; j < k_; ++j) {
            double v;
            std::memcpy(&v, &d2[j], sizeof(double));
            dist[j] = squared_ ? v : std::sqrt(v);
            idx[j] = id[j];
        }
        return 0;
    }

    const MatrixView& query_;
    const MatrixView& ref_;
    const MatrixView scan_query_, scan_ref_;
    const bool self_;
    const int k_, width_;
    const int64_t dim_;
    const bool squared_;
    double* const distances_;
    int64_t* const indices_;
    const SqdistBatchFn kernel_;
    const bool dense_;
    const bool defer_ties_;
    Deferred deferred_;
    std::vector<double> xd_;      // the rows being re-scored, in float64
    std::vector<uint64_t> mask_;  // dense: per reference point, the block rows listing it
    std::vector<int> count_;      // dense: pairs scored so far per block row
    std::vector<uint64_t> d2_;    // per row: squared distances (float64 bits) ...
    std::vector<int64_t> id_;     // ... and the candidates' indices
    std::vector<int64_t> at_;     // sparse: a row's candidates, as rows of the scan
    std::vector<double> bound_;   // per row: the certified lower bound outside its list
    std::vector<uint64_t> tmp_d2_;
    std::vector<int64_t> tmp_id_;
    std::vector<std::pair<double, int64_t>> fallback_;
    const double* x_[kSqdistBatch] = {};
    const void* y_[kSqdistBatch] = {};
    uint64_t* slot_[kSqdistBatch] = {};
    int pending_ = 0;
};

// Candidate lists given as an array (refine_candidates).
struct CandidateArray {
    const int64_t* idx;
    int width;
    const double* lower_bound;

    int64_t visit(int64_t t) const { return t; }
    int64_t ref_row(int64_t a) const { return a; }
    int candidates(int64_t t, int64_t* out, double* bound) const {
        int n = 0;
        for (int j = 0; j < width; ++j)
            if (idx[t * width + j] >= 0) out[n++] = idx[t * width + j];
        *bound = lower_bound[t];
        return n;
    }
};

// Re-scores every query row of `source` on n_threads threads.
// With `deferred`, rows whose full lists fail their certificates are listed
// there (in no particular order) instead of searched exhaustively.
template <class T, class Source>
int64_t rescore(const MatrixView& query, const MatrixView& ref,
                const std::pair<MatrixView, MatrixView>& scan, bool self, int k, int width,
                Source& source, int n_threads, double* distances, int64_t* indices,
                bool squared, Deferred* deferred = nullptr) {
    const int64_t nq = query.n_rows;
    Rescorer<T> probe(query, ref, scan, self, k, width, squared, distances, indices,
                      deferred != nullptr);
    const int64_t chunk = probe.rows_per_item(), n_items = (nq + chunk - 1) / chunk;
    const int threads = int(std::max<int64_t>(1, std::min<int64_t>(n_threads, n_items)));
    std::vector<Rescorer<T>> workers(threads, probe);
    std::atomic<int64_t> fallbacks{0};
    parallel_for(n_items, threads, [&](int64_t c, int tid) {
        fallbacks += workers[tid].run(c * chunk, std::min(nq, (c + 1) * chunk), source);
    });
    if (deferred)
        for (const auto& w : workers) {
            deferred->rows.insert(deferred->rows.end(), w.deferred().rows.begin(),
                                  w.deferred().rows.end());
            deferred->exact_ties += w.deferred().exact_ties;
        }
    return fallbacks.load();
}

// The float32 pass and the float64 re-scoring of `query` (search_rows
// without its second searches): rows whose full lists fail their
// certificates are listed in *deferred (ascending, their answers unwritten)
// when it is given, else searched exhaustively.
template <class T>
int64_t certified_search(const MatrixView& query, const MatrixView& ref, const KnnOptions& opt,
                         SgemmFn sgemm, bool squared, double* distances, int64_t* indices,
                         int64_t* progress, Deferred* deferred) {
    CandidateSearch<T> search(query, ref, opt, sgemm, progress, distances, indices);
    search.run();
    const int64_t fallbacks = rescore<T>(query, ref, search.scan_views(), opt.exclude_self, opt.k,
                                         opt.n_candidates, search, opt.n_threads, distances,
                                         indices, squared, deferred);
    if (deferred) std::sort(deferred->rows.begin(), deferred->rows.end());
    return fallbacks;
}

// Exhaustive float64 searches of query rows `rows`, on n_threads threads,
// checking `cancel` (KnnOptions) every 16 rows; returns their number.
template <class T>
int64_t search_exhaustively(const MatrixView& query, const MatrixView& ref, bool self, int k,
                            bool squared, const std::vector<int64_t>& rows, int n_threads,
                            const int64_t* cancel, double* distances, int64_t* indices) {
    const int64_t n = int64_t(rows.size()), chunk = 16;
    parallel_for((n + chunk - 1) / chunk, n_threads, [&](int64_t c, int) {
        if (cancel && __atomic_load_n(cancel, __ATOMIC_RELAXED)) throw Cancelled();
        std::vector<std::pair<double, int64_t>> v;
        for (int64_t r = c * chunk; r < std::min(n, (c + 1) * chunk); ++r)
            exhaustive_impl<T>(query, ref, self, rows[r], k, squared, v, distances + rows[r] * k,
                               indices + rows[r] * k);
    });
    return n;
}

// Second searches (search_wider): the first chunk of each round, kProbeRows
// rows, is a probe. When it certifies fewer than one row in ten, the round
// stops there: where most of its failures are exact ties, the next round
// probes a longer list (binary 13-D points at k = 20 need k + 512); where
// they are near-ties within float32 round-off (tight clusters of thousands
// of points), the rows go straight to the exhaustive search.
constexpr int64_t kProbeRows = 256;

// Rows whose full candidate lists failed their certificates (ties run past
// the list's end, as on integer-valued data: on 20,000 rows of integer
// coordinates 0-9 in D = 8, k = 10, 13,218 rows did, and their exhaustive
// searches took 1.35 s of 1.4) are searched again, as queries against every
// reference row, with kWiden times the margin beyond k, round after round
// while the lists stay below half the reference rows (longer lists cost as
// much as the exhaustive search, which takes the rows left then); a self
// search asks for one more and drops the row itself. Writes those rows'
// answers; returns the rows searched exhaustively.
template <class T>
int64_t search_wider(const MatrixView& query, const MatrixView& ref, const KnnOptions& opt,
                     SgemmFn sgemm, bool squared, double* distances, int64_t* indices,
                     int64_t* progress, std::vector<int64_t> rows) {
    const bool self = opt.exclude_self;
    KnnOptions wide = opt;
    wide.exclude_self = false;
    wide.k = int(std::min<int64_t>(opt.k + (self ? 1 : 0), ref.n_rows));
    int64_t margin = std::max(1, opt.n_candidates - opt.k), fallbacks = 0;
    std::vector<int64_t> data_rows, next;
    Deferred part_deferred;
    std::vector<double> dist;
    std::vector<int64_t> idx;
    while (!rows.empty()) {
        margin *= kWiden;
        if (wide.k + margin >= ref.n_rows / 2) break;
        wide.n_candidates = int(wide.k + margin);
        data_rows.resize(rows.size());  // the rows in the data, as row_ptr finds them
        for (size_t j = 0; j < rows.size(); ++j)
            data_rows[j] = query.row_index ? query.row_index[rows[j]] : rows[j];
        const int64_t n = int64_t(rows.size());
        const int64_t chunk = std::max<int64_t>(1, kWideEntries / wide.n_candidates);
        next.clear();
        for (int64_t c0 = 0, len = 0; c0 < n; c0 += len) {
            len = std::min(c0 == 0 ? std::min(kProbeRows, chunk) : chunk, n - c0);
            MatrixView part = query;
            part.row_index = data_rows.data() + c0;
            part.n_rows = len;
            dist.resize(size_t(len * wide.k));
            idx.resize(dist.size());
            part_deferred = {};
            fallbacks += certified_search<T>(part, ref, wide, sgemm, squared, dist.data(),
                                             idx.data(), progress, &part_deferred);
            for (size_t j = 0, d = 0; j < size_t(len); ++j) {
                const int64_t i = rows[c0 + j];
                if (d < part_deferred.rows.size() && part_deferred.rows[d] == int64_t(j)) {
                    next.push_back(i);
                    ++d;
                    continue;
                }
                int filled = 0;
                for (int t = 0; t < wide.k && filled < opt.k; ++t) {
                    if (self && idx[j * wide.k + t] == i) continue;
                    distances[i * opt.k + filled] = dist[j * wide.k + t];
                    indices[i * opt.k + filled] = idx[j * wide.k + t];
                    ++filled;
                }
            }
            if (c0 == 0 && 10 * int64_t(part_deferred.rows.size()) > 9 * len) {  // probe failed
                next.insert(next.end(), rows.begin() + len, rows.end());
                if (2 * part_deferred.exact_ties < int64_t(part_deferred.rows.size()))
                    margin = ref.n_rows;  // near-ties: no further round
                break;
            }
        }
        rows.swap(next);
    }
    return fallbacks + search_exhaustively<T>(query, ref, self, opt.k, squared, rows,
                                              opt.n_threads, opt.cancel, distances, indices);
}

template <class T>
int64_t search_rows_impl(const MatrixView& query, const MatrixView& ref, const KnnOptions& opt,
                         SgemmFn sgemm, bool squared, double* distances, int64_t* indices,
                         int64_t* progress) {
    Deferred deferred;
    const int64_t fallbacks = certified_search<T>(query, ref, opt, sgemm, squared, distances,
                                                  indices, progress, &deferred);
    return fallbacks + search_wider<T>(query, ref, opt, sgemm, squared, distances, indices,
                                       progress, std::move(deferred.rows));
}

// One side of a pair search's lists, as rows 0.. for rescore: the query
// rows' lists (offset 0) or the reference rows' (offset n_query).
template <class T>
struct PairSide {
    CandidateSearch<T>& search;
    int64_t offset;

    int64_t visit(int64_t t) const { return t; }
    int64_t ref_row(int64_t a) const { return a; }
    int candidates(int64_t t, int64_t* out, double* bound) {
        return search.candidates(offset + t, out, bound);
    }
};

template <class T>
std::pair<int64_t, int64_t> pair_search_impl(const MatrixView& a, const MatrixView& b,
                                             const KnnOptions& opt, SgemmFn sgemm,
                                             double* dist_a, int64_t* idx_a, double* dist_b,
                                             int64_t* idx_b) {
    CandidateSearch<T> search(a, b, opt, sgemm, nullptr, nullptr, nullptr, /*pair=*/true);
    search.run();
    PairSide<T> a_side{search, 0}, b_side{search, a.n_rows};
    const int ka = int(std::min<int64_t>(opt.k, b.n_rows));
    const int kb = int(std::min<int64_t>(opt.k, a.n_rows));
    return {rescore<T>(a, b, {a, b}, false, ka, opt.n_candidates, a_side, opt.n_threads, dist_a, idx_a,
                       false),
            rescore<T>(b, a, {b, a}, false, kb, opt.n_candidates, b_side, opt.n_threads, dist_b, idx_b,
                       false)};
}

}  // namespace

std::pair<int64_t, int64_t> pair_search(const MatrixView& a, const MatrixView& b,
                                        const KnnOptions& opt, SgemmFn sgemm, double* dist_a,
                                        int64_t* idx_a, double* dist_b, int64_t* idx_b) {
    if (a.row_index || b.row_index)
        throw std::invalid_argument("pair_search: the views must not be row subsets");
    KnnOptions popt = opt;
    popt.exclude_self = false;
    popt.kernel = TileKernel::kSgemm;
    if (a.is_float64)
        return pair_search_impl<double>(a, b, popt, sgemm, dist_a, idx_a, dist_b, idx_b);
    return pair_search_impl<float>(a, b, popt, sgemm, dist_a, idx_a, dist_b, idx_b);
}

int64_t search_rows(const MatrixView& query, const MatrixView& ref, const KnnOptions& opt,
                    SgemmFn sgemm, bool squared, double* distances, int64_t* indices,
                    int64_t* progress) {
    if (query.is_float64)
        return search_rows_impl<double>(query, ref, opt, sgemm, squared, distances, indices,
                                        progress);
    return search_rows_impl<float>(query, ref, opt, sgemm, squared, distances, indices,
                                   progress);
}

int64_t refine_candidates(const MatrixView& query, const MatrixView& ref, bool exclude_self,
                          int k, const int64_t* cand_idx, int n_candidates,
                          const double* lower_bound, int n_threads, double* distances,
                          int64_t* indices, bool squared) {
    CandidateArray source{cand_idx, n_candidates, lower_bound};
    if (query.is_float64)
        return rescore<double>(query, ref, {query, ref}, exclude_self, k, n_candidates, source, n_threads,
                               distances, indices, squared);
    return rescore<float>(query, ref, {query, ref}, exclude_self, k, n_candidates, source, n_threads,
                          distances, indices, squared);
}

int64_t exhaustive_rows(const MatrixView& query, const MatrixView& ref, bool exclude_self, int k,
                        const std::vector<int64_t>& rows, int n_threads, const int64_t* cancel,
                        double* distances, int64_t* indices) {
    if (query.is_float64)
        return search_exhaustively<double>(query, ref, exclude_self, k, false, rows, n_threads,
                                           cancel, distances, indices);
    return search_exhaustively<float>(query, ref, exclude_self, k, false, rows, n_threads,
                                      cancel, distances, indices);
}

std::optional<FusedIsa> fused_isa_for(TileKernel kernel) {
    switch (kernel) {
        case TileKernel::kSgemm: return std::nullopt;
        case TileKernel::kFusedAvx2: return FusedIsa::kAvx2;
        case TileKernel::kFusedAvx512: return FusedIsa::kAvx512;
        case TileKernel::kAuto:
        case TileKernel::kFused: break;
    }
    return fused_scan_supported(FusedIsa::kAvx512) ? FusedIsa::kAvx512 : FusedIsa::kAvx2;
}

}  // namespace idest
