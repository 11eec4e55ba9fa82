// See kept.hpp.
#include "kept.hpp"

#include <cstdlib>
#include <mutex>
#include <new>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

namespace idest {
namespace {

struct Block {
    void* address;
    size_t bytes;
};

std::mutex kept_lock;
std::vector<Block> kept_blocks;
size_t kept_total = 0;

#if defined(__unix__) || defined(__APPLE__)
// fork() while another thread holds the lock would leave it held in the child.
void lock_for_fork() { kept_lock.lock(); }
void unlock_after_fork() { kept_lock.unlock(); }
const int kept_fork_handlers = pthread_atfork(lock_for_fork, unlock_after_fork, unlock_after_fork);
#endif

}  // namespace

void* kept_allocate(size_t bytes) {
    if (bytes >= kKeptMinBytes) {
        std::lock_guard<std::mutex> guard(kept_lock);
        size_t best = kept_blocks.size();
        for (size_t b = 0; b < kept_blocks.size(); ++b) {
            const size_t size = kept_blocks[b].bytes;
            if (size >= bytes && size <= 2 * bytes &&
                (best == kept_blocks.size() || size < kept_blocks[best].bytes))
                best = b;
        }
        if (best < kept_blocks.size()) {
            void* const address = kept_blocks[best].address;
            kept_total -= kept_blocks[best].bytes;
            kept_blocks[best] = kept_blocks.back();
            kept_blocks.pop_back();
            return address;
        }
    }
    void* const address = std::malloc(bytes ? bytes : 1);
    if (!address) throw std::bad_alloc();
    return address;
}

void kept_free(void* block, size_t bytes) noexcept {
    if (!block) return;
    if (bytes >= kKeptMinBytes) {
        std::lock_guard<std::mutex> guard(kept_lock);
        if (kept_total + bytes <= kKeptMaxBytes) {
            try {
                kept_blocks.push_back({block, bytes});
                kept_total += bytes;
                return;
            } catch (...) {  // no room to note it: free it
            }
        }
    }
    std::free(block);
}

}  // namespace idest
