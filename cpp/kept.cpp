// See kept.hpp.
#include "kept.hpp"

#include <cstdlib>
#include <mutex>
#include <new>

#include "parallel.hpp"

namespace idest {
namespace {

// Never destroyed: numpy may free an answer array (kept_free) while the
// process exits, after static objects are destroyed.
struct Kept {
    std::mutex lock;
    std::vector<KeptBlock> blocks;
    size_t total = 0;
};

Kept& kept() {
    static Kept* const state = new Kept;
    return *state;
}

// fork() while another thread holds the lock would leave it held in the child.
void lock_for_fork() { kept().lock.lock(); }
void unlock_after_fork() { kept().lock.unlock(); }
const bool kept_fork_handlers = (at_fork(lock_for_fork, unlock_after_fork, unlock_after_fork), true);

}  // namespace

void* kept_allocate(size_t bytes) {
    if (bytes >= kKeptMinBytes) {
        Kept& k = kept();
        std::lock_guard<std::mutex> guard(k.lock);
        size_t best = k.blocks.size();
        for (size_t b = 0; b < k.blocks.size(); ++b) {
            const size_t size = k.blocks[b].bytes;
            if (size >= bytes && size <= 2 * bytes &&
                (best == k.blocks.size() || size < k.blocks[best].bytes))
                best = b;
        }
        if (best < k.blocks.size()) {
            void* const address = k.blocks[best].address;
            k.total -= k.blocks[best].bytes;
            k.blocks[best] = k.blocks.back();
            k.blocks.pop_back();
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
        Kept& k = kept();
        std::lock_guard<std::mutex> guard(k.lock);
        if (k.total + bytes <= kKeptMaxBytes) {
            try {
                k.blocks.push_back({block, bytes});
                k.total += bytes;
                return;
            } catch (...) {  // no room to note it: free it
            }
        }
    }
    std::free(block);
}

}  // namespace idest
