// The thread pool of the k-NN core: one parallel loop with dynamic scheduling.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace idest {

// Runs fn(item, thread_id) for item in [0, n_items) on n_threads threads with
// dynamic scheduling. The first exception thrown by a worker is rethrown here
// after every thread has joined (hnswlib's pattern), so C++ errors surface in
// Python instead of terminating the process.
template <class Fn>
void parallel_for(int64_t n_items, int n_threads, Fn fn) {
    n_threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(n_threads, n_items)));
    std::atomic<int64_t> next{0};
    std::exception_ptr error = nullptr;
    std::mutex error_lock;
    auto work = [&](int tid) {
        try {
            for (int64_t i = next++; i < n_items; i = next++) fn(i, tid);
        } catch (...) {
            std::lock_guard<std::mutex> guard(error_lock);
            if (!error) error = std::current_exception();
            next = n_items;
        }
    };
    if (n_threads == 1) {
        work(0);
    } else {
        std::vector<std::thread> pool;
        pool.reserve(n_threads);
        for (int t = 0; t < n_threads; ++t) pool.emplace_back(work, t);
        for (auto& th : pool) th.join();
    }
    if (error) std::rethrow_exception(error);
}

}  // namespace idest
