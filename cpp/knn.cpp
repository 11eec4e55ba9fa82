// Exact k-NN: float32 tiles (SGEMM or the fused kernel) + per-row selection +
// float64 certificate.
// See knn.hpp for the contract; the numerical argument is written out at
// `certified_lower_bound` below.
#include "knn.hpp"

#include "candidate_lists.hpp"
#include "fused_scan.hpp"
#include "parallel.hpp"
#include "spatial_order.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <utility>
#include <vector>

namespace idest {
namespace {

// ------------------------------------------------------- exact distances ---

// Squared Euclidean distance from direct differences, accumulated in float64
// (four partial sums for instruction-level parallelism). Identical rows give
// exactly 0.0.
template <class T>
__attribute__((target_clones("avx2", "default")))
double exact_sqdist(const T* x, const T* y, int64_t dim) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t j = 0;
    for (; j + 4 <= dim; j += 4) {
        const double d0 = double(x[j]) - double(y[j]);
        const double d1 = double(x[j + 1]) - double(y[j + 1]);
        const double d2 = double(x[j + 2]) - double(y[j + 2]);
        const double d3 = double(x[j + 3]) - double(y[j + 3]);
        s0 += d0 * d0;
        s1 += d1 * d1;
        s2 += d2 * d2;
        s3 += d3 * d3;
    }
    for (; j < dim; ++j) {
        const double d = double(x[j]) - double(y[j]);
        s0 += d * d;
    }
    return (s0 + s1) + (s2 + s3);
}

// ------------------------------------------------------ float32 tiles ---

struct Scaling {
    std::vector<double> mean;      // column means of the reference set
    double scale = 1.0;            // power of two: scaled values lie in (-1, 1)
    std::vector<double> sq_norm;   // |x - mean|^2 per query row, unscaled
};

// Column means of the reference rows and max |x - mean| over both sets. The
// scale is a power of two, so scaling is exact and only rounding to float32
// perturbs the values (that error enters the certificate).
template <class T>
Scaling compute_scaling(const MatrixView& query, const MatrixView& ref, bool self,
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
    auto max_abs = [&](const MatrixView& m, std::vector<double>* norms) {
        const int64_t n_chunks = (m.n_rows + chunk - 1) / chunk;
        std::vector<double> partial(n_chunks, 0.0);
        parallel_for(n_chunks, n_threads, [&](int64_t c, int) {
            double best = 0.0;
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
                if (norms) (*norms)[i] = sq;
            }
            // Python validates its input; this guards direct callers of the core.
            if (!finite) throw std::invalid_argument("the input holds nan or inf values");
            partial[c] = best;
        });
        return *std::max_element(partial.begin(), partial.end());
    };
    s.sq_norm.assign(query.n_rows, 0.0);
    double m = max_abs(query, &s.sq_norm);
    // A separate reference set is always scanned, even when it shares the
    // query's buffer (a query that is a view of the reference).
    if (!self) m = std::max(m, max_abs(ref, nullptr));
    if (m > 0.0) {
        int e = 0;
        std::frexp(m, &e);  // m = f * 2^e with f in [0.5, 1)
        s.scale = std::ldexp(1.0, -e);
    }
    return s;
}

// Converts rows order[row0 .. row0 + n) (rows row0.. when order is null) to
// centred, scaled float32 and their squared norms (accumulated in float64,
// rounded to float32).
template <class T>
void load_block(const MatrixView& m, const int64_t* order, int64_t row0, int64_t n,
                const Scaling& s, float* out, float* norms) {
    const int64_t dim = m.n_cols;
    for (int64_t i = 0; i < n; ++i) {
        const T* x = row_ptr<T>(m, order ? order[row0 + i] : row0 + i);
        float* o = out + i * dim;
        double sq = 0.0;
        for (int64_t j = 0; j < dim; ++j) {
            const float v = float((double(x[j]) - s.mean[j]) * s.scale);
            o[j] = v;
            sq += double(v) * double(v);
        }
        norms[i] = float(sq);
    }
}

// A set's centred, scaled float32 rows in a spatial visiting order, held whole
// (4 D bytes per point: at most 256 at the D <= kFusedMaxDim where the fused
// kernel is chosen by default), with the mean row of each block of `block`
// positions.
struct OrderedRows {
    std::vector<int64_t> order;  // position -> row of the input
    std::vector<float> rows;     // by position, row-major
    std::vector<float> norms;    // squared norms by position
    std::vector<std::vector<double>> centroids;
};

template <class T>
OrderedRows ordered_rows(const MatrixView& m, const Scaling& s, int64_t block, int n_threads) {
    const int64_t n = m.n_rows, dim = m.n_cols, chunk = 1024;
    auto convert = [&](const int64_t* order, std::vector<float>& rows, std::vector<float>& norms) {
        rows.resize(size_t(n) * dim);
        norms.resize(n);
        parallel_for((n + chunk - 1) / chunk, n_threads, [&](int64_t c, int) {
            load_block<T>(m, order, c * chunk, std::min(chunk, n - c * chunk), s,
                          rows.data() + c * chunk * dim, norms.data() + c * chunk);
        });
    };
    OrderedRows o;
    convert(nullptr, o.rows, o.norms);  // input order, to find the visiting order
    o.order = spatial_order(o.rows.data(), n, dim, /*leaf=*/32, n_threads);
    convert(o.order.data(), o.rows, o.norms);  // converted again: one copy at a time
    const int64_t n_blocks = (n + block - 1) / block;
    o.centroids.assign(n_blocks, std::vector<double>(dim, 0.0));
    parallel_for(n_blocks, n_threads, [&](int64_t b, int) {
        const int64_t end = std::min(n, (b + 1) * block);
        for (int64_t p = b * block; p < end; ++p)
            for (int64_t j = 0; j < dim; ++j) o.centroids[b][j] += double(o.rows[p * dim + j]);
        for (auto& v : o.centroids[b]) v /= double(end - b * block);
    });
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
__attribute__((target_clones("avx2", "default")))
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
__attribute__((target_clones("avx2", "default")))
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
// |e| <= D u |x||y| (SGEMM's, and the fused kernel's FMA chain) and the
// rounding of norms and sums, the true scaled
// squared distance t obeys |a - t| <= c (|x|^2 + |y|^2) with c = (2D + 32) u,
// u = 2^-24 (a generous form of the bound, Higham ch. 3). Using
// |y|^2 <= 2|x|^2 + 2t gives t >= (worst - 3 c |x|^2) / (1 + 2 c); an absolute
// term covers float32 subnormals. The bound is about twice the error actually
// possible, a slack that also covers the float64 rounding of exact_sqdist.
double certified_lower_bound(float worst, double sq_norm_unscaled, const Scaling& s,
                             int64_t dim) {
    if (!std::isfinite(worst)) return std::numeric_limits<double>::infinity();
    const double u = std::ldexp(1.0, -24);
    const double c = (2.0 * double(dim) + 32.0) * u;
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
// tile is computed.
void fused_diagonal(const float* rows, const float* norms, int64_t p0, int64_t n, int64_t dim,
                    PackedColumns& packed, CandidateLists& lists) {
    constexpr int64_t kDiagonalLeaf = 64;
    if (n <= kDiagonalLeaf) {
        packed.pack(rows + p0 * dim, norms + p0, n, dim);
        fused_scan(rows + p0 * dim, norms + p0, n, p0, packed, p0, dim, false, true, lists);
        return;
    }
    const int64_t half = n / 2;
    fused_diagonal(rows, norms, p0, half, dim, packed, lists);
    fused_diagonal(rows, norms, p0 + half, n - half, dim, packed, lists);
    packed.pack(rows + (p0 + half) * dim, norms + p0 + half, n - half, dim);
    fused_scan(rows + p0 * dim, norms + p0, half, p0, packed, p0 + half, dim, true, true, lists);
}

template <class T>
void candidates_impl(const MatrixView& query, const MatrixView& ref, const KnnOptions& opt,
                     SgemmFn sgemm, int64_t* cand_idx, double* lower_bound, int64_t* progress) {
    const bool self = opt.exclude_self;
    const int64_t dim = ref.n_cols;
    const int width = opt.n_candidates;
    const Scaling s = compute_scaling<T>(query, ref, opt.exclude_self, opt.n_threads);

    bool fused = opt.kernel == TileKernel::kFused;
    if (fused && !fused_scan_supported())
        throw std::invalid_argument("the fused tile kernel needs a CPU with AVX2 and FMA");
    if (opt.kernel == TileKernel::kAuto) fused = dim <= kFusedMaxDim && fused_scan_supported();

    // Tile sides: never fewer blocks than threads when the data allows it.
    const int64_t nq = query.n_rows, nr = ref.n_rows;
    int64_t bq = std::min(opt.block_rows, std::max<int64_t>(64, (nq + opt.n_threads - 1) / opt.n_threads));
    if (self) bq = std::min(opt.block_rows, std::max<int64_t>(64, (nq + 2 * opt.n_threads - 1) / (2 * opt.n_threads)));
    const int64_t br = self ? bq : opt.block_rows;
    const int64_t n_qblocks = (nq + bq - 1) / bq;
    const int64_t n_rblocks = (nr + br - 1) / br;

    // With the fused kernel, rows are visited in a spatial order
    // (spatial_order.hpp) and lists are kept by position in that order, mapped
    // back at the end. At larger D the selection is a small share of the work
    // and the ordering and scattered row reads cost more than they save
    // (20,000 x 768: +17 %), so the SGEMM path keeps the input order.
    OrderedRows qset, rset;
    if (fused) {
        qset = ordered_rows<T>(query, s, bq, opt.n_threads);
        if (!self) rset = ordered_rows<T>(ref, s, br, opt.n_threads);
    }
    const OrderedRows& rsrc = self ? qset : rset;
    auto position_to_row = [&](const OrderedRows& o, int64_t p) { return fused ? o.order[p] : p; };
    auto block_distance = [&](int64_t bi, int64_t bj) {
        if (!fused) return 0.0;
        return exact_sqdist(qset.centroids[bi].data(), rsrc.centroids[bj].data(), dim);
    };

    // Work items. Self search: the upper-triangular tiles (bi <= bj) of the
    // symmetric distance matrix, each updating both its rows and its columns
    // (half the distance work), the diagonal tiles first, then (in spatial
    // order) by distance between block centroids, so near-final candidates
    // arrive early. Otherwise one item per query block, which visits the
    // reference blocks nearest first.
    std::vector<std::pair<int64_t, int64_t>> tiles;  // self search only
    if (self) {
        std::vector<std::pair<double, std::pair<int64_t, int64_t>>> keyed;
        for (int64_t bi = 0; bi < n_qblocks; ++bi)
            for (int64_t bj = bi; bj < n_qblocks; ++bj)
                keyed.push_back({bi == bj ? -1.0 : block_distance(bi, bj), {bi, bj}});
        std::stable_sort(keyed.begin(), keyed.end(),
                         [](const auto& x, const auto& y) { return x.first < y.first; });
        for (const auto& kt : keyed) tiles.push_back(kt.second);
    }
    const int64_t n_items = self ? int64_t(tiles.size()) : n_qblocks;
    if (progress) {
        __atomic_store_n(&progress[0], int64_t(0), __ATOMIC_RELAXED);
        __atomic_store_n(&progress[1], self ? n_items : n_items * n_rblocks, __ATOMIC_RELAXED);
    }

    CandidateLists lists(nq, width);
    std::vector<std::mutex> block_locks(self ? n_qblocks : 0);
    TileQueue queue(std::move(tiles), n_qblocks);

    struct Workspace {
        std::vector<float> a, b, g, na, nb;
        PackedColumns packed;
        int64_t cached_a = -1;
    };
    const int n_threads = int(std::max<int64_t>(1, std::min<int64_t>(opt.n_threads, n_items)));
    std::vector<Workspace> ws(n_threads);
    for (auto& w : ws) {
        if (fused) continue;  // reads the converted rows below
        w.a.resize(size_t(bq) * dim);
        w.b.resize(size_t(br) * dim);
        w.g.resize(size_t(bq) * br);
        w.na.resize(bq);
        w.nb.resize(br);
    }

    // One tile: query positions q0.. against reference positions r0...
    auto process_tile = [&](Workspace& w, int64_t bi, int64_t bj) {
        const int64_t q0 = bi * bq, nqa = std::min(bq, nq - q0);
        const int64_t r0 = bj * br, nrb = std::min(br, nr - r0);
        const bool diagonal = self && bi == bj;
        const float *amat, *anorm, *bmat, *bnorm;
        if (fused) {
            amat = qset.rows.data() + q0 * dim;
            anorm = qset.norms.data() + q0;
            bmat = rsrc.rows.data() + r0 * dim;
            bnorm = rsrc.norms.data() + r0;
        } else {
            if (w.cached_a != bi) {
                load_block<T>(query, nullptr, q0, nqa, s, w.a.data(), w.na.data());
                w.cached_a = bi;
            }
            amat = bmat = w.a.data();
            anorm = bnorm = w.na.data();
            if (!diagonal) {
                load_block<T>(ref, nullptr, r0, nrb, s, w.b.data(), w.nb.data());
                bmat = w.b.data();
                bnorm = w.nb.data();
            }
        }
        // In self search the tile's rows and columns are both query rows: the
        // selection holds the locks of both blocks (std::lock: no lock-order
        // deadlock); the SGEMM itself runs unlocked.
        auto lock_blocks = [&] {
            std::unique_lock<std::mutex> rows_guard, cols_guard;
            if (!self) return std::make_pair(std::move(rows_guard), std::move(cols_guard));
            rows_guard = std::unique_lock<std::mutex>(block_locks[bi], std::defer_lock);
            if (diagonal) {
                rows_guard.lock();
            } else {
                cols_guard = std::unique_lock<std::mutex>(block_locks[bj], std::defer_lock);
                std::lock(rows_guard, cols_guard);
            }
            return std::make_pair(std::move(rows_guard), std::move(cols_guard));
        };
        if (fused && diagonal) {
            const auto guard = lock_blocks();
            fused_diagonal(qset.rows.data(), qset.norms.data(), q0, nqa, dim, w.packed, lists);
        } else if (fused) {
            w.packed.pack(bmat, bnorm, nrb, dim);
            const auto guard = lock_blocks();
            fused_scan(amat, anorm, nqa, q0, w.packed, r0, dim, self, self, lists);
        } else {
            // G (nqa x nrb, row-major) = -2 A B^T, via column-major G^T = -2 B A^T.
            const int m = int(nrb), n = int(nqa), kk = int(dim), ld = int(dim), ldc = int(nrb);
            const float alpha = -2.0f, beta = 0.0f;
            sgemm("T", "N", &m, &n, &kk, &alpha, bmat, &ld, amat, &ld, &beta, w.g.data(), &ldc);
            const auto guard = lock_blocks();
            for (int64_t r = 0; r < nqa; ++r)  // rows update the query positions q0..
                scan_row(w.g.data() + r * nrb, bnorm, anorm[r], nrb, r0, q0 + r,
                         self ? q0 + r : -1, lists);
            if (self && !diagonal)  // columns update the positions r0.. (symmetry)
                for (int64_t r = 0; r < nqa; ++r)
                    scan_columns(w.g.data() + r * nrb, bnorm, anorm[r], nrb, r0, q0 + r, lists);
        }
        if (progress) __atomic_fetch_add(&progress[0], int64_t(1), __ATOMIC_RELAXED);
    };

    parallel_for(n_items, n_threads, [&](int64_t t, int tid) {
        if (self) {
            const auto tile = queue.take();
            process_tile(ws[tid], tile.first, tile.second);
            queue.release(tile);
            return;
        }
        const int64_t bi = t;  // a query block against every reference block
        std::vector<std::pair<double, int64_t>> near;
        for (int64_t b = 0; b < n_rblocks; ++b) near.emplace_back(block_distance(bi, b), b);
        std::stable_sort(near.begin(), near.end());
        for (const auto& [d2, b] : near) process_tile(ws[tid], bi, b);
    });

    const int64_t available = nr - (self ? 1 : 0);
    const double inf = std::numeric_limits<double>::infinity();
    for (int64_t p = 0; p < nq; ++p) {
        const int64_t i = position_to_row(qset, p);
        int64_t* out = cand_idx + i * width;
        const int n = lists.finish(p, out);
        for (int j = 0; j < n; ++j) out[j] = position_to_row(rsrc, out[j]);
        // Every point was offered to every list, so a list that is not full
        // met a non-finite approximation: certify nothing, search exhaustively.
        // A full list that holds every point leaves nothing outside it.
        if (n < width) lower_bound[i] = -inf;
        else if (width == available) lower_bound[i] = inf;
        else lower_bound[i] = certified_lower_bound(lists.worst[p], s.sq_norm[i], s, dim);
    }
}

// k smallest (squared distance, index) pairs, sorted; ties by lower index.
void take_smallest(std::vector<std::pair<double, int64_t>>& v, int k) {
    const auto kk = std::min<size_t>(size_t(k), v.size());
    std::partial_sort(v.begin(), v.begin() + kk, v.end());
    v.resize(kk);
}

template <class T>
int64_t refine_impl(const MatrixView& query, const MatrixView& ref, bool self, int k,
                    const int64_t* cand_idx, int width, const double* lower_bound, int n_threads,
                    double* distances, int64_t* indices) {
    const int64_t dim = ref.n_cols, nq = query.n_rows, nr = ref.n_rows;
    const int64_t chunk = 64;
    std::atomic<int64_t> fallbacks{0};
    parallel_for((nq + chunk - 1) / chunk, n_threads, [&](int64_t c, int) {
        std::vector<std::pair<double, int64_t>> v;
        const int64_t end = std::min(nq, (c + 1) * chunk);
        for (int64_t i = c * chunk; i < end; ++i) {
            const T* x = row_ptr<T>(query, i);
            v.clear();
            for (int j = 0; j < width; ++j) {
                const int64_t id = cand_idx[i * width + j];
                if (id >= 0) v.emplace_back(exact_sqdist(x, row_ptr<T>(ref, id), dim), id);
            }
            take_smallest(v, k);
            if (int64_t(v.size()) < k || !(v[k - 1].first < lower_bound[i])) {
                ++fallbacks;  // exhaustive float64 search of this row
                v.clear();
                v.reserve(nr);
                for (int64_t id = 0; id < nr; ++id)
                    if (!(self && id == i)) v.emplace_back(exact_sqdist(x, row_ptr<T>(ref, id), dim), id);
                take_smallest(v, k);
            }
            for (int j = 0; j < k; ++j) {
                distances[i * k + j] = std::sqrt(v[j].first);
                indices[i * k + j] = v[j].second;
            }
        }
    });
    return fallbacks.load();
}

}  // namespace

void knn_candidates(const MatrixView& query, const MatrixView& ref, const KnnOptions& opt,
                    SgemmFn sgemm, int64_t* cand_idx, double* lower_bound, int64_t* progress) {
    if (query.is_float64)
        candidates_impl<double>(query, ref, opt, sgemm, cand_idx, lower_bound, progress);
    else
        candidates_impl<float>(query, ref, opt, sgemm, cand_idx, lower_bound, progress);
}

int64_t refine_candidates(const MatrixView& query, const MatrixView& ref, bool exclude_self,
                          int k, const int64_t* cand_idx, int n_candidates,
                          const double* lower_bound, int n_threads, double* distances,
                          int64_t* indices) {
    if (query.is_float64)
        return refine_impl<double>(query, ref, exclude_self, k, cand_idx, n_candidates,
                                   lower_bound, n_threads, distances, indices);
    return refine_impl<float>(query, ref, exclude_self, k, cand_idx, n_candidates, lower_bound,
                              n_threads, distances, indices);
}

}  // namespace idest
