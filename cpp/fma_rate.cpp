// See fma_rate.hpp.
#include "fma_rate.hpp"

#include "cpu.hpp"
#include "parallel.hpp"

#if IDEST_X86
#include <immintrin.h>
#endif

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <vector>

namespace idest {
namespace {

// Independent accumulators per thread: enough to cover the FMA latency (4-5
// cycles) times the FMA ports (2) of current x86-64 cores, and few enough to
// stay in registers with the two operands (16 ymm registers without AVX-512).
constexpr int kChains = 12;

// Runs `iterations` rounds of kChains multiply-adds; returns a value that
// depends on all of them, so the compiler keeps every one.
using ChainsFn = float (*)(int64_t iterations);

#if IDEST_X86
__attribute__((target("avx512f"))) float chains_avx512(int64_t iterations) {
    const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-6f);
    __m512 acc[kChains];
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(float(c));
    for (int64_t i = 0; i < iterations; ++i)
        for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], x, y);
    __m512 sum = acc[0];
    for (int c = 1; c < kChains; ++c) sum = _mm512_add_ps(sum, acc[c]);
    alignas(64) float lanes[16];  // not _mm512_reduce_add_ps: GCC 12 warns inside it
    _mm512_store_ps(lanes, sum);
    float total = 0.0f;
    for (float v : lanes) total += v;
    return total;
}

__attribute__((target("avx2,fma"))) float chains_avx2(int64_t iterations) {
    const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-6f);
    __m256 acc[kChains];
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_ps(float(c));
    for (int64_t i = 0; i < iterations; ++i)
        for (int c = 0; c < kChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], x, y);
    __m256 sum = acc[0];
    for (int c = 1; c < kChains; ++c) sum = _mm256_add_ps(sum, acc[c]);
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, sum);
    float total = 0.0f;
    for (float v : lanes) total += v;
    return total;
}
#endif

// Wall seconds of n_threads threads each running chains(iterations) at once.
double timed(ChainsFn chains, int n_threads, int64_t iterations) {
    std::vector<float> sink(size_t(n_threads), 0.0f);
    const auto start = std::chrono::steady_clock::now();
    parallel_for(n_threads, n_threads, [&](int64_t t, int) { sink[size_t(t)] = chains(iterations); });
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    volatile float keep = 0.0f;
    for (float v : sink) keep = keep + v;
    return seconds;
}

}  // namespace

double fma_rate(FusedIsa isa, int n_threads, double seconds) {
    ChainsFn chains = nullptr;
    int lanes = 0;
#if IDEST_X86
    if (isa == FusedIsa::kAvx512) chains = chains_avx512, lanes = 16;
    else chains = chains_avx2, lanes = 8;
#endif
    if (!chains || !fused_scan_supported(isa))
        throw std::invalid_argument("fma_rate: this CPU or build lacks the instruction set");
    n_threads = std::max(1, n_threads);
    // Calibrate on a short run (which also wakes the cores up), then time one
    // run of about `seconds`.
    int64_t iterations = 1 << 16;
    double t = timed(chains, n_threads, iterations);
    while (t < 0.01) iterations *= 4, t = timed(chains, n_threads, iterations);
    iterations = std::max<int64_t>(iterations, int64_t(double(iterations) * seconds / t));
    t = timed(chains, n_threads, iterations);
    return 2.0 * lanes * kChains * double(iterations) * n_threads / t;
}

}  // namespace idest
