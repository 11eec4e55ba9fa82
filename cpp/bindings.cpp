// pybind11 binding of the k-NN core: converts arrays, checks shapes, allocates
// outputs, releases the GIL around the work. All validation of user input
// happens in Python (idest/neighbors.py); checks here guard the C++ contract.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "fma_rate.hpp"
#include "kept.hpp"
#include "knn.hpp"

namespace py = pybind11;
using idest::MatrixView;

namespace {

MatrixView view_of(const py::array& a, const char* name) {
    if (a.ndim() != 2 || a.shape(0) < 1 || a.shape(1) < 1)
        throw std::invalid_argument(std::string(name) + " must be 2-D with at least one row and column");
    const bool f64 = py::isinstance<py::array_t<double>>(a);
    const bool f32 = py::isinstance<py::array_t<float>>(a);
    if (!f64 && !f32) throw std::invalid_argument(std::string(name) + " must be float32 or float64");
    const auto item = py::ssize_t(f64 ? sizeof(double) : sizeof(float));
    if (a.shape(1) > 1 && a.strides(1) != item)
        throw std::invalid_argument(std::string(name) + " must have contiguous rows");
    if (a.strides(0) % item != 0 || a.strides(0) < 0)
        throw std::invalid_argument(std::string(name) + " has an unsupported row stride");
    MatrixView v;
    v.data = a.data();
    v.n_rows = a.shape(0);
    v.n_cols = a.shape(1);
    v.row_stride = a.shape(0) > 1 ? a.strides(0) / item : a.shape(1);
    v.is_float64 = f64;
    return v;
}

// A (rows, cols) answer array in a kept block (kept.hpp), which goes back to
// the kept blocks when the array is freed: the next search then writes its
// answer to pages already mapped (a 20,000 x 10 answer, float64 and int64, is
// 800 pages, each faulted in at its first write otherwise).
template <class T>
py::array_t<T> answer_array(py::ssize_t rows, py::ssize_t cols) {
    const size_t bytes = size_t(rows) * size_t(cols) * sizeof(T);
    auto* block = new idest::KeptBlock{nullptr, bytes};
    try {
        block->address = idest::kept_allocate(bytes);
    } catch (...) {
        delete block;
        throw;
    }
    py::capsule owner(block, [](void* p) {
        auto* b = static_cast<idest::KeptBlock*>(p);
        idest::kept_free(b->address, b->bytes);
        delete b;
    });
    return py::array_t<T>({rows, cols}, {cols * py::ssize_t(sizeof(T)), py::ssize_t(sizeof(T))},
                          static_cast<T*>(block->address), owner);
}

std::pair<MatrixView, MatrixView> views(const py::array& query, const py::object& ref) {
    MatrixView q = view_of(query, "query");
    MatrixView r = ref.is_none() ? q : view_of(ref.cast<py::array>(), "reference");
    if (q.n_cols != r.n_cols) throw std::invalid_argument("query and reference widths differ");
    if (q.is_float64 != r.is_float64) throw std::invalid_argument("query and reference dtypes differ");
    return {q, r};
}

// The routine behind a capsule of SciPy's Cython API
// (scipy.linalg.cython_blas / cython_lapack.__pyx_capi__[name]): a capsule named
// by the C signature of the Fortran routine, whose pointer is the routine itself.
template <class Fn>
Fn routine_from(const py::object& capsule) {
    auto* fn = reinterpret_cast<Fn>(PyCapsule_GetPointer(capsule.ptr(), PyCapsule_GetName(capsule.ptr())));
    if (!fn) throw py::error_already_set();
    return fn;
}

idest::SgemmFn sgemm_from(const py::capsule& capsule) {
    return routine_from<idest::SgemmFn>(capsule);
}

// DSYEV for the fused kernel's early exit; None: no early exit.
idest::SyevFn syev_from(const py::object& capsule) {
    return capsule.is_none() ? nullptr : routine_from<idest::SyevFn>(capsule);
}

idest::TileKernel tile_kernel(const std::string& name) {
    if (name == "auto") return idest::TileKernel::kAuto;
    if (name == "sgemm") return idest::TileKernel::kSgemm;
    if (name == "fused") return idest::TileKernel::kFused;
    if (name == "fused-avx2") return idest::TileKernel::kFusedAvx2;
    if (name == "fused-avx512") return idest::TileKernel::kFusedAvx512;
    throw std::invalid_argument(
        "kernel must be 'auto', 'sgemm', 'fused', 'fused-avx2' or 'fused-avx512', got '" + name +
        "'");
}

py::tuple knn(const py::array& query, const py::object& ref, int k, int n_candidates,
              int n_threads, int64_t block_rows, const py::capsule& sgemm_capsule,
              py::array_t<int64_t, py::array::c_style> progress, const std::string& kernel,
              const py::object& syev_capsule, int prefix_dims) {
    auto [q, r] = views(query, ref);
    const bool self = ref.is_none();
    const int64_t available = r.n_rows - (self ? 1 : 0);
    if (k < 1 || k > available) throw std::invalid_argument("k must be in [1, number of reference points]");
    n_candidates = int(std::min<int64_t>(std::max(n_candidates, k), available));
    if (progress.size() < 2) throw std::invalid_argument("progress must hold 2 int64 values");
    // an optional third value is the cancel flag (KnnOptions::cancel)
    idest::KnnOptions opt;
    opt.k = k;
    opt.n_candidates = n_candidates;
    opt.n_threads = std::max(1, n_threads);
    opt.block_rows = std::max<int64_t>(64, block_rows);
    opt.exclude_self = self;
    opt.kernel = tile_kernel(kernel);
    if (prefix_dims < -1 || prefix_dims >= q.n_cols)
        throw std::invalid_argument("prefix_dims must be -1 (auto), 0 (no early exit) or below the dimension");
    opt.syev = syev_from(syev_capsule);
    opt.prefix_dims = prefix_dims;
    const auto sgemm = sgemm_from(sgemm_capsule);

    auto dist = answer_array<double>(q.n_rows, k);
    auto idx = answer_array<int64_t>(q.n_rows, k);
    int64_t fallbacks = 0;
    // Raw pointers are taken while the GIL is held.
    int64_t* progress_ptr = progress.mutable_data();
    if (progress.size() >= 3) opt.cancel = progress_ptr + 2;
    double* dist_ptr = dist.mutable_data();
    int64_t* idx_ptr = idx.mutable_data();
    {
        py::gil_scoped_release release;
        fallbacks = idest::knn_search(q, r, opt, sgemm, dist_ptr, idx_ptr, progress_ptr);
    }
    return py::make_tuple(dist, idx, fallbacks);
}

py::tuple refine(const py::array& query, const py::object& ref, int k,
                 py::array_t<int64_t, py::array::c_style | py::array::forcecast> candidates,
                 py::array_t<double, py::array::c_style | py::array::forcecast> lower_bound,
                 int n_threads) {
    auto [q, r] = views(query, ref);
    if (candidates.ndim() != 2 || candidates.shape(0) != q.n_rows)
        throw std::invalid_argument("candidates must have shape (n_query, n_candidates)");
    if (lower_bound.ndim() != 1 || lower_bound.shape(0) != q.n_rows)
        throw std::invalid_argument("lower_bound must have shape (n_query,)");
    const int64_t available = r.n_rows - (ref.is_none() ? 1 : 0);
    if (k < 1 || k > available) throw std::invalid_argument("k must be in [1, number of reference points]");
    const auto* c = candidates.data();
    for (py::ssize_t i = 0; i < candidates.size(); ++i)
        if (c[i] < -1 || c[i] >= r.n_rows) throw std::invalid_argument("candidate index out of range");
    auto dist = answer_array<double>(q.n_rows, k);
    auto idx = answer_array<int64_t>(q.n_rows, k);
    int64_t fallbacks = 0;
    const double* bound_ptr = lower_bound.data();
    double* dist_ptr = dist.mutable_data();
    int64_t* idx_ptr = idx.mutable_data();
    const int width = int(candidates.shape(1));
    const bool self = ref.is_none();
    {
        py::gil_scoped_release release;
        fallbacks = idest::refine_candidates(q, r, self, k, c, width, bound_ptr,
                                             std::max(1, n_threads), dist_ptr, idx_ptr);
    }
    return py::make_tuple(dist, idx, fallbacks);
}

py::tuple pair_knn(const py::array& a, const py::array& b, int k, int n_candidates,
                   int n_threads, int64_t block_rows, const py::capsule& sgemm_capsule) {
    auto [va, vb] = views(a, b);
    if (k < 1) throw std::invalid_argument("k must be at least 1");
    const int64_t larger = std::max(va.n_rows, vb.n_rows);
    idest::KnnOptions opt;
    opt.k = k;
    opt.n_candidates = int(std::min<int64_t>(std::max(n_candidates, k), larger));
    opt.n_threads = std::max(1, n_threads);
    opt.block_rows = std::max<int64_t>(64, block_rows);
    const auto sgemm = sgemm_from(sgemm_capsule);
    const auto ka = py::ssize_t(std::min<int64_t>(k, vb.n_rows));
    const auto kb = py::ssize_t(std::min<int64_t>(k, va.n_rows));
    auto dist_a = answer_array<double>(va.n_rows, ka), dist_b = answer_array<double>(vb.n_rows, kb);
    auto idx_a = answer_array<int64_t>(va.n_rows, ka), idx_b = answer_array<int64_t>(vb.n_rows, kb);
    double* da = dist_a.mutable_data();
    double* db = dist_b.mutable_data();
    int64_t* ia = idx_a.mutable_data();
    int64_t* ib = idx_b.mutable_data();
    std::pair<int64_t, int64_t> fallbacks;
    {
        py::gil_scoped_release release;
        fallbacks = idest::pair_search(va, vb, opt, sgemm, da, ia, db, ib);
    }
    return py::make_tuple(py::make_tuple(dist_a, idx_a, fallbacks.first),
                          py::make_tuple(dist_b, idx_b, fallbacks.second));
}

double fma_rate(const std::string& kernel, int n_threads, double seconds) {
    const auto isa = idest::fused_isa_for(tile_kernel(kernel));
    if (!isa) throw std::invalid_argument("fma_rate measures a fused kernel's instruction set, not 'sgemm'");
    if (!(seconds > 0.0 && seconds <= 60.0)) throw std::invalid_argument("seconds must be in (0, 60]");
    py::gil_scoped_release release;
    return idest::fma_rate(*isa, std::max(1, n_threads), seconds);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "idest's compiled core: exact k-nearest-neighbour search";
    m.def("knn", &knn, py::arg("query"), py::arg("reference"), py::arg("k"),
          py::arg("n_candidates"), py::arg("n_threads"), py::arg("block_rows"),
          py::arg("sgemm"), py::arg("progress"), py::arg("kernel") = "auto",
          py::arg("syev") = py::none(), py::arg("prefix_dims") = -1,
          "Exact k-NN: float32 candidate pass, float64 re-scoring with a certificate.\n"
          "reference=None searches the query set against itself, excluding each point.\n"
          "Exactly equal rows are grouped and searched once.\n"
          "kernel: 'sgemm' (SGEMM tiles + scans, any CPU), 'fused' (register-blocked\n"
          "distances and threshold tests with the widest of AVX-512 and AVX2 + FMA the CPU\n"
          "has), 'fused-avx2' or 'fused-avx512' (that one), or 'auto' (fused for D <= 64\n"
          "where supported).\n"
          "syev: LAPACK DSYEV (scipy.linalg.cython_lapack capsule) for the fused kernel's\n"
          "early exit on principal axes; None: no early exit. prefix_dims: -1 chooses the\n"
          "leading axes from the spectrum, 0 turns the exit off, 0 < p < D forces p.\n"
          "Returns (distances float64 (n, k), indices int64 (n, k), n_fallback_rows).");
    m.def("refine", &refine, py::arg("query"), py::arg("reference"), py::arg("k"),
          py::arg("candidates"), py::arg("lower_bound"), py::arg("n_threads"),
          "Exact float64 re-scoring of candidate lists (-1 = empty slot). Rows whose k-th\n"
          "squared distance is not below lower_bound are searched exhaustively.\n"
          "Returns (distances, indices, n_fallback_rows).");
    m.def("pair_knn", &pair_knn, py::arg("a"), py::arg("b"), py::arg("k"),
          py::arg("n_candidates"), py::arg("n_threads"), py::arg("block_rows"), py::arg("sgemm"),
          "Exact k-NN of a's rows within b and of b's rows within a (disjoint row sets),\n"
          "from one float32 pass over the a x b SGEMM tiles that updates both sides' lists,\n"
          "then each side's float64 re-scoring with its certificate (as knn).\n"
          "Returns ((distances (n_a, min(k, n_b)), indices, n_fallback_rows),\n"
          "         (distances (n_b, min(k, n_a)), indices, n_fallback_rows)).");
    m.def("fma_rate", &fma_rate, py::arg("kernel") = "fused", py::arg("n_threads") = 1,
          py::arg("seconds") = 0.5,
          "Float32 flops per second (2 per FMA lane) of n_threads threads running\n"
          "independent chains of the fused kernel's FMA instruction in registers: the\n"
          "arithmetic bound of a small-D search (N (N - 1) D flops for a self search).\n"
          "kernel as for knn ('fused' or 'auto': the widest the CPU has).");
}
