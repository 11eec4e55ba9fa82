// Large work buffers kept between searches of the k-NN core.
//
// Why: a search allocates its layouts, lists and copies afresh (about 10 MB at
// 20,000 x 20), and large blocks come from the system as untouched pages,
// each faulted in at its first write. On a virtual machine that returns freed
// pages to its host, those faults cost several microseconds each: about 2,000
// of them took 12 % of a 20,000 x 20 search. Blocks of at least kKeptMinBytes
// that the core frees are therefore kept (at most kKeptMaxBytes in all, for
// the life of the process) and handed to the next request they fit.
#pragma once

#include <cstddef>
#include <vector>

namespace idest {

constexpr size_t kKeptMinBytes = size_t(64) << 10;
constexpr size_t kKeptMaxBytes = size_t(64) << 20;

// A block and the size it was allocated for (what kept_free takes back).
struct KeptBlock {
    void* address;
    size_t bytes;
};

// A block of at least `bytes` (malloc's alignment): a kept one that fits (at
// most twice as large), else a new one. Throws std::bad_alloc.
void* kept_allocate(size_t bytes);

// Keeps the block (allocated for `bytes`) while the kept total allows, else
// frees it.
void kept_free(void* block, size_t bytes) noexcept;

// std::allocator's behaviour with blocks from kept_allocate.
template <class T>
struct KeptAllocator {
    using value_type = T;
    KeptAllocator() = default;
    template <class U>
    KeptAllocator(const KeptAllocator<U>&) noexcept {}
    T* allocate(size_t n) { return static_cast<T*>(kept_allocate(n * sizeof(T))); }
    void deallocate(T* block, size_t n) noexcept { kept_free(block, n * sizeof(T)); }
    template <class U>
    bool operator==(const KeptAllocator<U>&) const noexcept { return true; }
    template <class U>
    bool operator!=(const KeptAllocator<U>&) const noexcept { return false; }
};

template <class T>
using KeptVector = std::vector<T, KeptAllocator<T>>;

}  // namespace idest
