// Batched exact squared distances and the stable sort of (distance, index)
// pairs; see rescoring.hpp.
#include "rescoring.hpp"

#if IDEST_X86
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstring>

namespace idest {
namespace {

// The eight partial sums of one pair, added as exact_sqdist adds them, after
// the coordinates past the last multiple of 8 (lane 0).
template <class T>
double finish_sum(double* s, const double* x, const T* y, int64_t j, int64_t dim) {
    for (; j < dim; ++j) {
        const double d = x[j] - double(y[j]);
        s[0] += d * d;
    }
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

template <class T>
void batch_portable(const double* const* x, const void* const* y, int64_t dim, double* out) {
    for (int p = 0; p < kSqdistBatch; ++p)
        out[p] = exact_sqdist(x[p], static_cast<const T*>(y[p]), dim);
}

#if IDEST_X86
// Lanes 0-3 and 4-7 of the eight partial sums in two registers per pair.
template <class T>
__attribute__((target("avx2"))) void batch_avx2(const double* const* x, const void* const* y,
                                                int64_t dim, double* out) {
    constexpr int P = kSqdistBatch;
    const T* yp[P];
    __m256d lo[P], hi[P];
    for (int p = 0; p < P; ++p) {
        yp[p] = static_cast<const T*>(y[p]);
        lo[p] = hi[p] = _mm256_setzero_pd();
    }
    int64_t j = 0;
    for (; j + 8 <= dim; j += 8)
        for (int p = 0; p < P; ++p) {
            __m256d y0, y1;
            if constexpr (sizeof(T) == 8) {
                y0 = _mm256_loadu_pd(yp[p] + j);
                y1 = _mm256_loadu_pd(yp[p] + j + 4);
            } else {
                y0 = _mm256_cvtps_pd(_mm_loadu_ps(yp[p] + j));
                y1 = _mm256_cvtps_pd(_mm_loadu_ps(yp[p] + j + 4));
            }
            const __m256d d0 = _mm256_sub_pd(_mm256_loadu_pd(x[p] + j), y0);
            const __m256d d1 = _mm256_sub_pd(_mm256_loadu_pd(x[p] + j + 4), y1);
            lo[p] = _mm256_add_pd(lo[p], _mm256_mul_pd(d0, d0));
            hi[p] = _mm256_add_pd(hi[p], _mm256_mul_pd(d1, d1));
        }
    for (int p = 0; p < P; ++p) {
        double s[8];
        _mm256_storeu_pd(s, lo[p]);
        _mm256_storeu_pd(s + 4, hi[p]);
        out[p] = finish_sum(s, x[p], yp[p], j, dim);
    }
}

// The eight partial sums of a pair in one register.
template <class T>
__attribute__((target("avx512f"))) void batch_avx512(const double* const* x,
                                                     const void* const* y, int64_t dim,
                                                     double* out) {
    constexpr int P = kSqdistBatch;
    const T* yp[P];
    __m512d acc[P];
    for (int p = 0; p < P; ++p) {
        yp[p] = static_cast<const T*>(y[p]);
        acc[p] = _mm512_setzero_pd();
    }
    int64_t j = 0;
    for (; j + 8 <= dim; j += 8)
        for (int p = 0; p < P; ++p) {
            __m512d yv;
            if constexpr (sizeof(T) == 8)
                yv = _mm512_loadu_pd(yp[p] + j);
            else  // (maskz: GCC 12 warns about _mm512_cvtps_pd's undefined source)
                yv = _mm512_maskz_cvtps_pd(0xff, _mm256_loadu_ps(yp[p] + j));
            const __m512d d = _mm512_sub_pd(_mm512_loadu_pd(x[p] + j), yv);
            acc[p] = _mm512_add_pd(acc[p], _mm512_mul_pd(d, d));
        }
    for (int p = 0; p < P; ++p) {
        double s[8];
        _mm512_storeu_pd(s, acc[p]);
        out[p] = finish_sum(s, x[p], yp[p], j, dim);
    }
}
#endif

}  // namespace

SqdistBatchFn sqdist_batch_kernel(bool float64) {
#if IDEST_X86
    if (cpu_has_avx512()) return float64 ? batch_avx512<double> : batch_avx512<float>;
    if (cpu_has_avx2_fma()) return float64 ? batch_avx2<double> : batch_avx2<float>;
#endif
    return float64 ? batch_portable<double> : batch_portable<float>;
}

void sort_by_distance(uint64_t* d2, int64_t* id, int64_t n, std::vector<uint64_t>& tmp_d2,
                      std::vector<int64_t>& tmp_id) {
    if (n < kInsertionSortMax) {
        for (int64_t i = 1; i < n; ++i) {
            const uint64_t key = d2[i];
            const int64_t v = id[i];
            int64_t t = i;
            for (; t > 0 && (d2[t - 1] > key || (d2[t - 1] == key && id[t - 1] > v)); --t)
                d2[t] = d2[t - 1], id[t] = id[t - 1];
            d2[t] = key;
            id[t] = v;
        }
        return;
    }
    uint32_t count[8][256] = {};
    for (int64_t i = 0; i < n; ++i) {
        const uint64_t key = d2[i];
        for (int b = 0; b < 8; ++b) ++count[b][(key >> (8 * b)) & 0xff];
    }
    tmp_d2.resize(size_t(n));
    tmp_id.resize(size_t(n));
    uint64_t *src_d = d2, *dst_d = tmp_d2.data();
    int64_t *src_i = id, *dst_i = tmp_id.data();
    for (int b = 0; b < 8; ++b) {
        uint32_t* c = count[b];
        if (c[(d2[0] >> (8 * b)) & 0xff] == uint32_t(n)) continue;  // a byte every key shares
        uint32_t sum = 0;
        for (int v = 0; v < 256; ++v) {
            const uint32_t here = c[v];
            c[v] = sum;
            sum += here;
        }
        for (int64_t i = 0; i < n; ++i) {
            const uint32_t to = c[(src_d[i] >> (8 * b)) & 0xff]++;
            dst_d[to] = src_d[i];
            dst_i[to] = src_i[i];
        }
        std::swap(src_d, dst_d);
        std::swap(src_i, dst_i);
    }
    if (src_d != d2) {
        std::memcpy(d2, src_d, size_t(n) * sizeof(uint64_t));
        std::memcpy(id, src_i, size_t(n) * sizeof(int64_t));
    }
}

}  // namespace idest
