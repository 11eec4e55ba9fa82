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

// Runs work(context, t) for t = 1 .. n_threads - 1 on threads kept for the
// next call, and work(context, 0) on the calling thread; returns when all
// have returned. A search at 20,000 x 20 makes about twenty parallel loops;
// starting and joining threads took 50-80 microseconds a loop, waking kept
// threads from sleep 40, and kept threads that poll for 200 microseconds
// before they sleep (parallel.cpp) about 1 (two threads, back-to-back empty
// loops): the search took 0.94 of the time (knn_paired.py, 100 pairs each
// way). Returns false, having run nothing, while another call holds the
// threads (concurrent searches from several Python threads, or a parallel
// loop inside a parallel loop): the caller then starts threads of its own.
// A child process made by fork() starts with no kept threads (pthread_atfork).
// `work` must not throw.
bool run_on_kept_threads(int n_threads, void (*work)(void*, int), void* context);

// Registers fork() handlers (pthread_atfork) for state that a child must not
// inherit as it is (held locks, threads that do not exist there); a no-op
// where the platform has no fork().
void at_fork(void (*prepare)(), void (*parent)(), void (*child)());

// Runs fn(item, thread_id) for item in [0, n_items) on n_threads threads (the
// caller and n_threads - 1 others, kept between calls) with dynamic
// scheduling. The first exception thrown by a worker is rethrown here after
// every thread has finished (hnswlib's pattern), so C++ errors surface in
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
    using Work = decltype(work);
    const auto call = [](void* w, int tid) { (*static_cast<Work*>(w))(tid); };
    if (n_threads == 1 || !run_on_kept_threads(n_threads, call, &work)) {
        std::vector<std::thread> pool;
        pool.reserve(n_threads - 1);
        for (int t = 1; t < n_threads; ++t) pool.emplace_back(work, t);
        work(0);
        for (auto& th : pool) th.join();
    }
    if (error) std::rethrow_exception(error);
}

}  // namespace idest
