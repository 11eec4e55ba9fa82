// A standalone exactness check of the compiled k-NN core, without Python: the
// core (knn_search, and pair_search: both directions between two disjoint row
// sets) against a brute-force float64 search, index for index, on small
// random, clustered and duplicate-heavy data, for self and query/reference
// search, float32 and float64, every tile kernel this CPU runs (the fused
// ones also with their early exit on principal axes, forced), k from 1 to
// N - 1. It brings its own plain SGEMM, so it builds with nothing
// but a C++17 compiler: .ci/aarch64.sh cross-compiles it for aarch64 and runs
// it under qemu, and runs it natively. Exit status 0 when every case matches.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "candidate_lists.hpp"
#include "cpu.hpp"
#include "knn.hpp"

#if IDEST_X86
#include <immintrin.h>

#include <map>
#endif

namespace {

// Column-major C = alpha op(A) op(B) + beta C, Fortran ABI (what SciPy exports).
void reference_sgemm(const char* ta, const char* tb, const int* m, const int* n, const int* k,
                     const float* alpha, const float* a, const int* lda, const float* b,
                     const int* ldb, const float* beta, float* c, const int* ldc) {
    const bool at = *ta == 'T' || *ta == 't', bt = *tb == 'T' || *tb == 't';
    for (int j = 0; j < *n; ++j)
        for (int i = 0; i < *m; ++i) {
            float s = 0.0f;
            for (int l = 0; l < *k; ++l) {
                const float x = at ? a[l + i * *lda] : a[i + l * *lda];
                const float y = bt ? b[j + l * *ldb] : b[l + j * *ldb];
                s += x * y;
            }
            float& out = c[i + j * *ldc];
            out = *alpha * s + (*beta == 0.0f ? 0.0f : *beta * out);
        }
}

// DSYEV's contract for jobz = 'V' (eigenvalues ascending in w, eigenvector e
// in column e of a, column-major; a's lower triangle read, uplo = 'L' as the
// core calls it) by cyclic Jacobi rotations: the fused kernel's principal axes.
void reference_syev(char*, char*, int* n, double* a, int* lda, double* w, double*, int*,
                    int* info) {
    const int m = *n, ld = *lda;
    std::vector<double> s(size_t(m) * m), v(size_t(m) * m, 0.0);
    for (int j = 0; j < m; ++j)
        for (int i = 0; i < m; ++i) s[i + j * m] = i >= j ? a[i + j * ld] : a[j + i * ld];
    for (int i = 0; i < m; ++i) v[i + i * m] = 1.0;
    for (int sweep = 0; sweep < 100; ++sweep) {
        double off = 0.0, diag = 0.0;
        for (int j = 0; j < m; ++j)
            for (int i = 0; i < m; ++i) (i == j ? diag : off) += s[i + j * m] * s[i + j * m];
        if (off <= 1e-30 * diag) break;
        for (int p = 0; p < m; ++p)
            for (int q = p + 1; q < m; ++q) {
                const double apq = s[p + q * m];
                if (apq == 0.0) continue;
                const double theta = (s[q + q * m] - s[p + p * m]) / (2.0 * apq);
                const double t = (theta >= 0 ? 1.0 : -1.0) / (std::fabs(theta) + std::sqrt(theta * theta + 1.0));
                const double c = 1.0 / std::sqrt(t * t + 1.0), sn = t * c;
                for (int k = 0; k < m; ++k) {  // columns p, q, then rows p, q
                    const double kp = s[k + p * m], kq = s[k + q * m];
                    s[k + p * m] = c * kp - sn * kq;
                    s[k + q * m] = sn * kp + c * kq;
                }
                for (int k = 0; k < m; ++k) {
                    const double pk = s[p + k * m], qk = s[q + k * m];
                    s[p + k * m] = c * pk - sn * qk;
                    s[q + k * m] = sn * pk + c * qk;
                }
                for (int k = 0; k < m; ++k) {
                    const double kp = v[k + p * m], kq = v[k + q * m];
                    v[k + p * m] = c * kp - sn * kq;
                    v[k + q * m] = sn * kp + c * kq;
                }
            }
    }
    std::vector<int> order(m);
    for (int i = 0; i < m; ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](int x, int y) { return s[x + x * m] < s[y + y * m]; });
    for (int e = 0; e < m; ++e) {
        w[e] = s[order[e] + order[e] * m];
        for (int i = 0; i < m; ++i) a[i + e * ld] = v[i + order[e] * m];
    }
    *info = 0;
}

template <class T>
std::vector<T> make_data(const std::string& kind, int n, int dim, unsigned seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal;
    std::vector<T> x(size_t(n) * dim);
    if (kind == "random") {
        for (auto& v : x) v = T(normal(rng));
    } else if (kind == "clustered") {  // tight clusters far from the origin
        std::vector<double> centres(size_t(8) * dim);
        for (auto& v : centres) v = 1e3 + 100.0 * normal(rng);
        for (int i = 0; i < n; ++i)
            for (int j = 0; j < dim; ++j)
                x[size_t(i) * dim + j] = T(centres[size_t(i % 8) * dim + j] + 1e-3 * normal(rng));
    } else if (kind == "grid") {  // small integers: exact duplicates and ties
        std::uniform_int_distribution<int> digit(0, 2);
        for (auto& v : x) v = T(digit(rng));
    } else if (kind == "lattice") {  // distinct integer points: ties without duplicates
        int side = 1;  // side^3 >= n points of a cube, the rest of the coordinates 0
        while (side * side * side < n) ++side;
        std::vector<int> point(n);
        for (int i = 0; i < n; ++i) point[i] = i;
        std::shuffle(point.begin(), point.end(), rng);  // ties in no index order
        for (int i = 0; i < n; ++i)
            for (int j = 0, p = point[i]; j < std::min(dim, 3); ++j, p /= side)
                x[size_t(i) * dim + j] = T(p % side);
    } else {  // "duplicates": half all-zero rows, groups of 1 to 60 copies
        for (auto& v : x) v = T(normal(rng));
        for (int i = 0; i < n; i += 2)
            for (int j = 0; j < dim; ++j) x[size_t(i) * dim + j] = T(0);
        std::uniform_int_distribution<int> size(1, 60), row(0, n - 1);
        for (int g = 0; g < 6; ++g) {
            const int src = row(rng), copies = size(rng);
            for (int c = 0; c < copies; ++c) {
                const int dst = row(rng);
                for (int j = 0; j < dim; ++j) x[size_t(dst) * dim + j] = x[size_t(src) * dim + j];
            }
        }
    }
    return x;
}

// The contract, directly: exact float64 squared distances (the core's
// summation order), sorted by (distance, index).
template <class T>
void brute_force(const std::vector<T>& q, const std::vector<T>& r, int nq, int nr, int dim,
                 bool self, int k, std::vector<double>& dist, std::vector<int64_t>& idx) {
    dist.assign(size_t(nq) * k, 0.0);
    idx.assign(size_t(nq) * k, -1);
    std::vector<std::pair<double, int64_t>> v;
    for (int i = 0; i < nq; ++i) {
        v.clear();
        for (int j = 0; j < nr; ++j) {
            if (self && i == j) continue;
            double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            int l = 0;
            for (; l + 8 <= dim; l += 8)
                for (int t = 0; t < 8; ++t) {
                    const double d = double(q[size_t(i) * dim + l + t]) - double(r[size_t(j) * dim + l + t]);
                    s[t] += d * d;
                }
            for (; l < dim; ++l) {
                const double d = double(q[size_t(i) * dim + l]) - double(r[size_t(j) * dim + l]);
                s[0] += d * d;
            }
            v.emplace_back(((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])), j);
        }
        std::sort(v.begin(), v.end());
        for (int j = 0; j < k; ++j) {
            dist[size_t(i) * k + j] = std::sqrt(v[j].first);
            idx[size_t(i) * k + j] = v[j].second;
        }
    }
}

template <class T>
idest::MatrixView view(const std::vector<T>& x, int n, int dim) {
    idest::MatrixView m;
    m.data = x.data();
    m.n_rows = n;
    m.n_cols = dim;
    m.row_stride = dim;
    m.is_float64 = sizeof(T) == 8;
    return m;
}

int failures = 0, cases = 0;

// One case's output against the brute-force answer; prints the first mismatch.
bool matches(const std::vector<double>& dist, const std::vector<int64_t>& idx,
             const std::vector<double>& want_d, const std::vector<int64_t>& want_i, int k,
             const std::string& what) {
    for (size_t t = 0; t < idx.size(); ++t) {
        const bool same_d = std::fabs(dist[t] - want_d[t]) <= 1e-12 * want_d[t];
        if (idx[t] != want_i[t] || !same_d) {
            std::printf("FAIL %s: row %zu col %zu got (%g, %lld) want (%g, %lld)\n", what.c_str(),
                        t / k, t % k, dist[t], (long long)idx[t], want_d[t],
                        (long long)want_i[t]);
            return false;
        }
    }
    return true;
}

template <class T>
void check(const std::string& kind, int n, int dim, int k, bool self, idest::TileKernel kernel,
           const char* kernel_name, int threads, int prefix_dims = 0) {
    const int nr = self ? n : n / 2 + 3;
    const auto q = make_data<T>(kind, n, dim, 1);
    const auto r = self ? q : make_data<T>(kind, nr, dim, 2);
    const int available = nr - (self ? 1 : 0);
    k = std::min(k, available);
    idest::KnnOptions opt;
    opt.k = k;
    opt.n_candidates = std::min(available, k + std::max(8, k / 16));
    opt.n_threads = threads;
    opt.block_rows = 64;
    opt.exclude_self = self;
    opt.kernel = kernel;
    if (prefix_dims) opt.syev = reference_syev, opt.prefix_dims = prefix_dims;
    std::vector<double> dist(size_t(n) * k), want_d;
    std::vector<int64_t> idx(size_t(n) * k), want_i;
    int64_t progress[2] = {0, 0};
    const int64_t fallbacks =
        idest::knn_search(view(q, n, dim), self ? view(q, n, dim) : view(r, nr, dim), opt,
                          reference_sgemm, dist.data(), idx.data(), progress);
    brute_force(q, r, n, nr, dim, self, k, want_d, want_i);
    ++cases;
    char what[160];
    std::snprintf(what, sizeof what, "%s n=%d D=%d k=%d %s %s %s threads=%d prefix=%d",
                  kind.c_str(), n, dim, k, self ? "self" : "query", kernel_name,
                  sizeof(T) == 8 ? "float64" : "float32", threads, prefix_dims);
    if (progress[0] != progress[1]) std::printf("FAIL %s: %lld of %lld tiles\n", what,
                                                (long long)progress[0], (long long)progress[1]);
    // Gaussian points have no near-ties: a row searched again exhaustively
    // there means a list lost candidates (a threshold too tight), which the
    // answer alone would not show.
    const bool lost = kind == "random" && fallbacks > 0;
    if (lost) std::printf("FAIL %s: %lld rows fell back\n", what, (long long)fallbacks);
    if (progress[0] != progress[1] || lost || !matches(dist, idx, want_d, want_i, k, what))
        ++failures;
}

// The pair search between rows [0, na) and [na, n) of one data set (the
// sharded self search's pair task, duplicate groups straddling the split):
// each side against the brute-force search of the other set.
template <class T>
void check_pair(const std::string& kind, int n, int na, int dim, int k, int threads) {
    const auto x = make_data<T>(kind, n, dim, 3);
    const std::vector<T> a(x.begin(), x.begin() + size_t(na) * dim);
    const std::vector<T> b(x.begin() + size_t(na) * dim, x.end());
    const int nb = n - na, ka = std::min(k, nb), kb = std::min(k, na);
    idest::KnnOptions opt;
    opt.k = k;
    opt.n_candidates = std::min(std::max(na, nb), k + std::max(8, k / 16));
    opt.n_threads = threads;
    opt.block_rows = 64;
    std::vector<double> da(size_t(na) * ka), db(size_t(nb) * kb), want_d;
    std::vector<int64_t> ia(da.size()), ib(db.size()), want_i;
    idest::pair_search(view(a, na, dim), view(b, nb, dim), opt, reference_sgemm, da.data(),
                       ia.data(), db.data(), ib.data());
    char what[160];
    std::snprintf(what, sizeof what, "pair %s n=%d+%d D=%d k=%d %s threads=%d", kind.c_str(), na,
                  nb, dim, k, sizeof(T) == 8 ? "float64" : "float32", threads);
    ++cases;
    brute_force(a, b, na, nb, dim, false, ka, want_d, want_i);
    bool ok = matches(da, ia, want_d, want_i, ka, std::string(what) + " a->b");
    brute_force(b, a, nb, na, dim, false, kb, want_d, want_i);
    ok = ok && matches(db, ib, want_d, want_i, kb, std::string(what) + " b->a");
    failures += !ok;
}

}  // namespace

#if IDEST_X86
// CandidateLists::merge_avx512 against one insert() per entry: random widths,
// two lists partly filled, merged one at a time or side by side, random
// lanes, values on a coarse grid (many ties). The lists must hold the same
// distances, the same threshold, and only pairs that were held or offered,
// each index once (which of two equal distances stays is free). Returns the
// number of mismatching trials.
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
int check_merge() {
    std::mt19937 rng(7);
    int failed = 0;
    for (int trial = 0; trial < 20000; ++trial) {
        const int width = 1 + int(rng() % 32);
        // slots past `width` hold sentinels, which no list may touch
        std::vector<float> dist_a(64, 1e30f), dist_b(64);
        std::vector<int32_t> idx_a(64, -7), idx_b(64);
        idest::CandidateLists a(2, width, 1 << 20, {dist_a.data(), idx_a.data(), 32, nullptr});
        idest::CandidateLists b(2, width, 1 << 20, {dist_b.data(), idx_b.data(), 32, nullptr});
        const int levels = 1 + int(rng() % 40);
        auto value = [&] { return float(int(rng() % unsigned(levels))) * 0.25f - 1.0f; };
        std::map<int32_t, float> pairs[2];  // every pair held or offered, per list
        alignas(64) float d[2][32];
        uint32_t lanes[2] = {0, 0};
        for (int row = 0; row < 2; ++row) {
            const int held = int(rng() % unsigned(width + 1));
            for (int i = 0; i < held; ++i) {
                const float v = value();
                pairs[row][1000 + i] = v;
                if (v < a.worst[row]) a.insert(row, v, 1000 + i), b.insert(row, v, 1000 + i);
            }
            for (int c = 0; c < 32; ++c) {
                d[row][c] = value();
                pairs[row][5000 + c] = d[row][c];
                if (rng() % 3 && d[row][c] < a.worst[row]) lanes[row] |= 1u << c;  // as offer_lists
            }
            for (int c = 0; c < 32; ++c)
                if ((lanes[row] >> c & 1) && d[row][c] < b.worst[row])
                    b.insert(row, d[row][c], 5000 + c);
        }
        const __m512 lo0 = _mm512_load_ps(d[0]), hi0 = _mm512_load_ps(d[0] + 16);
        const __m512 lo1 = _mm512_load_ps(d[1]), hi1 = _mm512_load_ps(d[1] + 16);
        if (trial % 2) {
            a.merge_avx512<2>({0, 1}, {lo0, lo1}, {hi0, hi1}, {lanes[0], lanes[1]}, 5000);
        } else {
            a.merge_avx512<1>({0}, {lo0}, {hi0}, {lanes[0]}, 5000);
            a.merge_avx512<1>({1}, {lo1}, {hi1}, {lanes[1]}, 5000);
        }
        bool ok = true;
        for (int row = 0; row < 2; ++row) {
            int64_t out_a[32], out_b[32];
            const int n = a.finish(row, out_a);
            ok = ok && n == b.finish(row, out_b) &&
                 (a.worst[row] == b.worst[row] ||
                  (std::isinf(a.worst[row]) && std::isinf(b.worst[row])));
            for (int i = width; i < 32; ++i)
                ok = ok && dist_a[32 * row + i] == 1e30f && idx_a[32 * row + i] == -7;
            std::vector<int32_t> seen;
            for (int i = 0; ok && i < n; ++i) {
                const int32_t j = idx_a[32 * row + i];
                const auto it = pairs[row].find(j);
                ok = dist_a[32 * row + i] == dist_b[32 * row + i] && it != pairs[row].end() &&
                     it->second == dist_a[32 * row + i] &&
                     std::find(seen.begin(), seen.end(), j) == seen.end();
                seen.push_back(j);
            }
        }
        if (!ok && failed++ < 5)
            std::printf("FAIL merge_avx512: width %d, lanes %08x %08x, %s\n", width, lanes[0],
                        lanes[1], trial % 2 ? "side by side" : "one at a time");
    }
    return failed;
}
#endif

int main() {
    std::vector<std::pair<idest::TileKernel, const char*>> kernels = {
        {idest::TileKernel::kAuto, "auto"}, {idest::TileKernel::kSgemm, "sgemm"}};
    if (idest::cpu_has_avx2_fma()) kernels.push_back({idest::TileKernel::kFusedAvx2, "fused-avx2"});
    if (idest::cpu_has_avx512()) kernels.push_back({idest::TileKernel::kFusedAvx512, "fused-avx512"});
#if IDEST_X86
    if (idest::cpu_has_avx512()) {  // the AVX-512 selection's batched merge, first
        cases += 1;
        failures += check_merge() ? 1 : 0;
    } else {
        std::printf("merge_avx512 not checked: this CPU has no AVX-512\n");
    }
#endif
    std::printf("kernels:");
    for (const auto& kn : kernels) std::printf(" %s", kn.second);
    std::printf("\n");
    for (const auto& [kernel, name] : kernels)
        for (const std::string kind : {"random", "clustered", "grid", "lattice", "duplicates"})
            for (const auto& [n, dim] : {std::pair<int, int>{150, 5}, {301, 20}, {130, 67}})
                // widths k + 8 of 9, 15, 24 and 32: both halves of the AVX-512 sorted
                // list; 48 and all points: the unsorted buffer
                for (const int k : {1, 7, 16, 24, 40, 100000})
                    for (const bool self : {true, false}) {
                        const int threads = 1 + (k % 3);
                        check<float>(kind, n, dim, k, self, kernel, name, threads);
                        if (kind != "random") check<double>(kind, n, dim, k, self, kernel, name, threads);
                    }
    // Ties among distinct points with short lists on more points than 64 lists
    // hold (64 x width < N): the re-scoring's row-by-row path, which sorts each
    // list by (distance, index) from its approximate order (the cases above,
    // with fewer points, take the block path, which visits points in index order).
    for (const auto& [kernel, name] : kernels)
        for (const auto& [n, dim] : {std::pair<int, int>{2000, 3}, {2000, 8}})
            for (const int k : {1, 4})
                for (const bool self : {true, false}) {
                    check<float>("lattice", n, dim, k, self, kernel, name, 2);
                    check<double>("lattice", n, dim, k, self, kernel, name, 1);
                }
    // The fused kernel's early exit on principal axes, forced (at these sizes
    // the automatic rule leaves it off), on the axes of reference_syev.
    for (const auto& [kernel, name] : kernels)
        if (kernel == idest::TileKernel::kFusedAvx2 || kernel == idest::TileKernel::kFusedAvx512)
            for (const std::string kind : {"random", "clustered", "grid", "lattice", "duplicates"})
                for (const auto& [n, dim] : {std::pair<int, int>{150, 5}, {301, 20}, {130, 40}})
                    for (const int prefix : {1, dim / 2})
                        for (const int k : {1, 7, 40})
                            for (const bool self : {true, false}) {
                                const int threads = 1 + (k % 3);
                                check<float>(kind, n, dim, k, self, kernel, name, threads, prefix);
                                if (kind != "random")
                                    check<double>(kind, n, dim, k, self, kernel, name, threads,
                                                  prefix);
                            }
    for (const std::string kind : {"random", "clustered", "grid", "lattice", "duplicates"})
        for (const auto& [n, na, dim] : {std::tuple<int, int, int>{301, 150, 20}, {130, 17, 67},
                                         {200, 190, 5}})
            for (const int k : {1, 7, 40, 100000}) {
                const int threads = 1 + (k % 3);
                check_pair<float>(kind, n, na, dim, k, threads);
                if (kind != "random") check_pair<double>(kind, n, na, dim, k, threads);
            }
    std::printf("%d cases, %d failed\n", cases, failures);
    return failures ? 1 : 0;
}
