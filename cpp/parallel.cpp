// See parallel.hpp.
#include "parallel.hpp"

#include <chrono>
#include <condition_variable>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

namespace idest {
namespace {

// How long a kept thread, or the caller waiting for them, polls before it
// sleeps on a condition variable. Waking a sleeping thread took 20-40
// microseconds on a virtual machine (measured: 40 per parallel loop of two
// threads against 52-75 for starting a thread), most of what keeping them
// should save; the loops of one search follow each other closely.
constexpr auto kPoll = std::chrono::microseconds(200);

// Polls `done` (yielding the CPU between polls) for at most kPoll.
template <class Done>
bool poll(Done done) {
    const auto until = std::chrono::steady_clock::now() + kPoll;
    for (int i = 0;; ++i) {
        if (done()) return true;
        if (i % 16 == 15 && std::chrono::steady_clock::now() > until) return false;
        std::this_thread::yield();
    }
}

// Threads 1, 2, ... that wait for the next call's work (each call bumps
// `generation_`; the threads numbered below its n_threads run it).
class KeptThreads {
  public:
    std::mutex busy;  // held by the caller for a whole call

    // Under `busy`.
    void run(int n_threads, void (*work)(void*, int), void* context) {
        while (int(threads_.size()) < n_threads - 1) {
            const int tid = int(threads_.size()) + 1;
            threads_.emplace_back([this, tid] { serve(tid); });
            threads_.back().detach();  // never joined: they wait until the process ends
        }
        {
            std::lock_guard<std::mutex> guard(lock_);
            work_ = work;
            context_ = context;
            n_threads_ = n_threads;
            remaining_.store(n_threads - 1);
            generation_.fetch_add(1);
        }
        wake_.notify_all();
        work(context, 0);
        if (poll([&] { return remaining_.load() == 0; })) return;
        std::unique_lock<std::mutex> guard(lock_);
        done_.wait(guard, [&] { return remaining_.load() == 0; });
    }

  private:
    void serve(int tid) {
        for (uint64_t seen = 0;;) {
            if (!poll([&] { return generation_.load() != seen; })) {
                std::unique_lock<std::mutex> guard(lock_);
                wake_.wait(guard, [&] { return generation_.load() != seen; });
            }
            void (*work)(void*, int);
            void* context;
            int n_threads;
            {
                std::lock_guard<std::mutex> guard(lock_);  // the call's fields, as set
                seen = generation_.load();
                work = work_;
                context = context_;
                n_threads = n_threads_;
            }
            if (tid >= n_threads) continue;
            work(context, tid);
            if (remaining_.fetch_sub(1) == 1) {
                std::lock_guard<std::mutex> guard(lock_);  // the caller waits under it
                done_.notify_one();
            }
        }
    }

    std::mutex lock_;
    std::condition_variable wake_, done_;
    std::vector<std::thread> threads_;
    void (*work_)(void*, int) = nullptr;
    void* context_ = nullptr;
    int n_threads_ = 0;
    std::atomic<int> remaining_{0};
    std::atomic<uint64_t> generation_{0};
};

// The process's kept threads, made on first use and never destroyed (their
// threads wait until the process ends). A child made by fork() has none of
// them (only the forking thread lives on): it forgets them, leaving the
// object to leak untouched (its locks may have been held at the fork), and
// makes its own.
std::atomic<KeptThreads*> kept_threads{nullptr};

void forget_kept_threads() { kept_threads.store(nullptr); }

KeptThreads* kept() {
    KeptThreads* k = kept_threads.load(std::memory_order_acquire);
    if (k) return k;
    static std::atomic<bool> registered{false};
    if (!registered.exchange(true)) at_fork(nullptr, nullptr, forget_kept_threads);
    auto* fresh = new KeptThreads;
    if (kept_threads.compare_exchange_strong(k, fresh)) return fresh;
    delete fresh;  // another thread made them first
    return k;
}

}  // namespace

void at_fork(void (*prepare)(), void (*parent)(), void (*child)()) {
#if defined(__unix__) || defined(__APPLE__)
    pthread_atfork(prepare, parent, child);
#else
    (void)prepare, (void)parent, (void)child;
#endif
}

bool run_on_kept_threads(int n_threads, void (*work)(void*, int), void* context) {
    KeptThreads* k = kept();
    std::unique_lock<std::mutex> busy(k->busy, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    k->run(n_threads, work, context);
    return true;
}

}  // namespace idest
