// Per-row candidate lists of the float32 pass, shared by the two tile kernels
// (SGEMM + scans in knn.cpp, the fused kernel in fused_scan.cpp).
#pragma once

#include "cpu.hpp"
#include "kept.hpp"

#if IDEST_X86
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>

namespace idest {

// Memory lent to candidate lists instead of their own: row r's distances at
// dist + slot(r) * stride, its indices at idx + slot(r) * stride (4-byte
// elements), slot(r) = slot_of[r] (r when null). The search lends its output
// rows at large k (see CandidateSearch in knn.cpp), which are larger than a
// list: the lists then cost no memory of their own.
struct ListMemory {
    float* dist = nullptr;
    int32_t* idx = nullptr;
    int64_t stride = 0;
    const int64_t* slot_of = nullptr;
};

// For each query row, the `width` smallest approximate squared distances
// offered to it, and a threshold `worst[row]` that a point must beat (strictly)
// to be offered at all. The threshold only falls, and every point that leaves
// a list leaves with a distance >= the threshold set at that moment, so every
// point outside the final list was at least as far as the final threshold
// (the certificate's premise); after finish(), that threshold is the largest
// kept distance.
//
// Two layouts, chosen by width:
// - small widths (k around 10): a sorted insertion list; the threshold is its
//   last entry once full and tightens at every insertion. O(width) per
//   insertion, which is cheap at this size and keeps the threshold tight.
// - larger widths: an unsorted buffer of `capacity` = width + width / 2
//   entries, compacted to its `width` smallest by partial selection
//   (a bucket selection, see compact) when it fills; the threshold is then the width-th
//   smallest. Each compaction costs O(capacity) and frees width / 2 slots: O(1)
//   amortised per insertion, where the sorted list costs O(k) (quadratic in k
//   over a row's life).
class CandidateLists {
  public:
    // Largest width kept as a sorted list. Measured (one thread, CPU time,
    // k = 10, width 18): the buffer costs 25 % more at 20,000 x 20 (fused
    // kernel) and 4 % more at 10,000 x 256 (SGEMM); at width 125 the two are
    // within noise of each other (0.80 vs 0.85 s at 10,000 x 256); at
    // k = 1,000 the buffer is 2-3x faster.
    static constexpr int kSortedMaxWidth = 32;

    const int width;
    KeptVector<float> worst;

    // Slots a row of width w takes (the unsorted buffer holds more than w).
    static int capacity_for(int w) { return w <= kSortedMaxWidth ? w : w + std::max(w / 2, 16); }

    // Reference indices are kept as int32: n_ref < 2^31.
    CandidateLists(int64_t n_rows, int w, int64_t n_ref, ListMemory lent = {})
        : width(w),
          worst(n_rows, std::numeric_limits<float>::infinity()),
          sorted_(w <= kSortedMaxWidth),
          capacity_(capacity_for(w)),
          count_(n_rows, 0) {
        if (n_ref > std::numeric_limits<int32_t>::max())
            throw std::length_error("the k-NN core handles at most 2^31 - 1 reference points");
        if (lent.dist) {
            if (lent.stride < capacity_) throw std::logic_error("lent list memory is too small");
            memory_ = lent;
            return;
        }
        own_dist_.resize(size_t(n_rows) * capacity_);
        own_idx_.resize(own_dist_.size());
        memory_ = {own_dist_.data(), own_idx_.data(), capacity_, nullptr};
    }

    // Offers (d, j) to `row`; the caller has checked d < worst[row].
    void insert(int64_t row, float d, int64_t j) {
        float* cd = row_dist(row);
        int32_t* ci = row_idx(row);
        int& n = count_[row];
        if (!sorted_) {
            cd[n] = d;
            ci[n] = int32_t(j);
            if (++n == capacity_) compact(row);
            return;
        }
        n = std::min(n, width - 1);  // a full list drops its last entry
        // Shift the entries > d up by one, from the end (ties keep the earlier
        // arrival): a list of at most kSortedMaxWidth entries, where an inline
        // loop costs less than two library memmove calls.
        int pos = n;
        for (; pos > 0 && cd[pos - 1] > d; --pos) {
            cd[pos] = cd[pos - 1];
            ci[pos] = ci[pos - 1];
        }
        cd[pos] = d;
        ci[pos] = int32_t(j);
        if (++n == width) worst[row] = cd[width - 1];
    }

#if IDEST_X86
    // Whether offer_avx512 takes this layout: a sorted list of at most 32.
    bool vector_insertable() const { return sorted_ && width <= 32; }

    // Inserts each entry (d[i], j[i]), i < n_offers, into `row` that beats its
    // threshold when its turn comes, as insert() would, for vector_insertable() lists on a CPU
    // with AVX-512 (the fused AVX-512 kernel's selection). The list is loaded
    // once into two registers of 16 lanes, the lanes past its entries holding
    // +inf, and stored once. Per entry d: the lanes holding entries > d form a
    // suffix (the list is sorted, ties keep the earlier arrival), and d beats
    // the threshold when lane width - 1 is among them (+inf while the list is
    // not full); the suffix moves up one lane and d takes its first lane. All
    // of it in mask registers: each entry's latency is a compare and a few
    // mask and blend steps (one that went through general registers ran
    // twice as long per entry).
    __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
    void offer_avx512(int64_t row, const float* d, const int32_t* j, int n_offers) {
        if (width <= 16) return offer_run</*kWide=*/false>(row, d, j, n_offers);
        offer_run</*kWide=*/true>(row, d, j, n_offers);
    }

    // Merges up to 32 entries into each of the N lists `rows` at once, for
    // vector_insertable() lists on a CPU with AVX-512: for list p, the
    // distances d_lo[p] (columns 0-15) and d_hi[p] (16-31) of the lanes set
    // in lanes[p], lane c being reference point col0 + c; every entry offered
    // is below its list's threshold (so finite: a +inf lane would be stored,
    // with an index that may not exist). Each list
    // afterwards holds the `width` smallest of itself and its entries, as
    // offer_avx512 would leave it, up to the order of equal distances (which
    // the re-scoring settles). Branch-free: the entries are sorted by a
    // bitonic network and merged with the list by a bitonic merge, about 45
    // compare-exchange steps of one register, where offer_avx512 spends a
    // dependent compare-and-shift (and, while a list fills, an unpredictable
    // branch) on each entry: the choice for rows offered many entries at
    // once, as in the first square of a diagonal tile, where every list
    // starts empty. The steps form one chain per register, so N lists are
    // merged side by side, their steps interleaved.
    template <int N>
    __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
    void merge_avx512(const int64_t (&rows)[N], const __m512 (&d_lo)[N], const __m512 (&d_hi)[N],
                      const uint32_t (&lanes)[N], int32_t col0) {
        const __m512 inf = _mm512_set1_ps(std::numeric_limits<float>::infinity());
        const __m512i reverse = reversed_lane_numbers();
        // (index_hi from index_lo: col0 + 16 itself could pass the int32 range)
        const __m512i index_lo = _mm512_add_epi32(lane_numbers(), _mm512_set1_epi32(col0));
        const __m512i index_hi = _mm512_add_epi32(index_lo, _mm512_set1_epi32(16));
        Run fresh[N], list[N];
        int n[N];
        for (int p = 0; p < N; ++p)  // the new entries, +inf in the lanes not offered
            fresh[p] = {_mm512_mask_mov_ps(inf, __mmask16(lanes[p]), d_lo[p]),
                        _mm512_mask_mov_ps(inf, __mmask16(lanes[p] >> 16), d_hi[p]),
                        index_lo, index_hi};
        sort_registers(fresh);
        merge_registers(fresh);  // each run's two sorted halves into one run of 32
        if (width <= 16) return merge_short(rows, fresh, lanes);
        for (int p = 0; p < N; ++p) {
            n[p] = count_[rows[p]];
            list[p] = load_run(rows[p]);
            // The 32 smallest of two ascending runs: lane by lane the smaller of
            // one run and the other reversed, a bitonic sequence, then sorted.
            const __m512 rlo = _mm512_maskz_permutexvar_ps(0xFFFF, reverse, fresh[p].hi);
            const __m512 rhi = _mm512_maskz_permutexvar_ps(0xFFFF, reverse, fresh[p].lo);
            const __m512i rjlo = _mm512_maskz_permutexvar_epi32(0xFFFF, reverse, fresh[p].jhi);
            const __m512i rjhi = _mm512_maskz_permutexvar_epi32(0xFFFF, reverse, fresh[p].jlo);
            const __mmask16 take_lo = _mm512_cmp_ps_mask(rlo, list[p].lo, _CMP_LT_OQ);
            const __mmask16 take_hi = _mm512_cmp_ps_mask(rhi, list[p].hi, _CMP_LT_OQ);
            list[p].lo = _mm512_mask_mov_ps(list[p].lo, take_lo, rlo);
            list[p].jlo = _mm512_mask_mov_epi32(list[p].jlo, take_lo, rjlo);
            list[p].hi = _mm512_mask_mov_ps(list[p].hi, take_hi, rhi);
            list[p].jhi = _mm512_mask_mov_epi32(list[p].jhi, take_hi, rjhi);
        }
        merge_registers(list, /*bitonic=*/true);
        for (int p = 0; p < N; ++p)
            store_run(rows[p], list[p], std::min(n[p] + __builtin_popcount(lanes[p]), width));
    }
#endif

    // Reduces the row to its `width` smallest entries, copies their indices to
    // out[0..width), -1 past its entries, and returns how many it holds. A row
    // that holds `width` entries and has a finite worst[row] certifies that
    // every other point was offered at a distance >= worst[row]; a finite
    // threshold is missing only where an approximation was not finite.
    int finish(int64_t row, int64_t* out) {
        if (!sorted_ && count_[row] > width) compact(row);
        const int n = count_[row];
        const int32_t* ci = row_idx(row);
        for (int j = 0; j < width; ++j) out[j] = j < n ? ci[j] : -1;
        return n;
    }

  private:
    size_t slot(int64_t row) const {
        return size_t(memory_.slot_of ? memory_.slot_of[row] : row) * size_t(memory_.stride);
    }
    float* row_dist(int64_t row) { return memory_.dist + slot(row); }
    int32_t* row_idx(int64_t row) { return memory_.idx + slot(row); }

    // Keeps the row's `width` smallest entries, by a bucket selection: the
    // entries' range [lo, hi] is cut into kBuckets equal buckets (a monotone
    // map, so every entry of a higher bucket is >= every entry of a lower
    // one); the buckets below the one that holds the width-th smallest are
    // kept whole, and that bucket's few entries are split by nth_element (in
    // a per-thread scratch). Three passes over the buffer, where nth_element
    // over all of it costs several passes of pair moves (measured: compaction
    // was 19 % of a k = 4,000 search at 10,000 x 256 with nth_element).
    void compact(int64_t row) {
        float* cd = row_dist(row);
        int32_t* ci = row_idx(row);
        const int n = count_[row];
        float lo = cd[0], hi = cd[0];
        for (int i = 1; i < n; ++i) lo = std::min(lo, cd[i]), hi = std::max(hi, cd[i]);
        thread_local std::vector<std::pair<float, int32_t>> scratch;
        int kept = 0, tied = 0;
        if (hi > lo && std::isfinite(double(hi) - double(lo))) {
            constexpr int kBuckets = 1024;
            const double scale = kBuckets / (double(hi) - double(lo));
            auto bucket = [&](float d) {
                return int(std::min(double(kBuckets - 1), (double(d) - double(lo)) * scale));
            };
            uint32_t hist[kBuckets] = {};
            for (int i = 0; i < n; ++i) ++hist[bucket(cd[i])];
            int boundary = 0;
            for (uint32_t below = 0; below + hist[boundary] < uint32_t(width); ++boundary)
                below += hist[boundary];
            scratch.resize(size_t(hist[boundary]) + 1);
            // Branch-free (which side an entry falls on is unpredictable); in
            // place: the write position never passes i.
            for (int i = 0; i < n; ++i) {
                const float d = cd[i];
                const int32_t id = ci[i];
                const int b = bucket(d);
                cd[kept] = d;
                ci[kept] = id;
                kept += b < boundary;
                scratch[tied] = {d, id};
                tied += b == boundary;
            }
        } else {  // one value (or a range too wide for the buckets): select among all
            scratch.resize(size_t(n));
            for (int i = 0; i < n; ++i) scratch[tied++] = {cd[i], ci[i]};
        }
        scratch.resize(size_t(tied));
        const int need = width - kept;
        std::nth_element(scratch.begin(), scratch.begin() + (need - 1), scratch.end(),
                         [](const auto& x, const auto& y) { return x.first < y.first; });
        for (int i = 0; i < need; ++i) cd[kept + i] = scratch[i].first, ci[kept + i] = scratch[i].second;
        worst[row] = scratch[need - 1].first;  // the largest kept; every dropped entry is >= it
        count_[row] = width;
    }

#if IDEST_X86
    // 32 (distance, index) pairs in four registers: lanes 0-15, then 16-31.
    struct Run {
        __m512 lo, hi;
        __m512i jlo, jhi;
    };

    // Lane numbers 0..15, and 15..0.
    __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"), always_inline))
    static __m512i lane_numbers() {
        return _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    }
    __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"), always_inline))
    static __m512i reversed_lane_numbers() {
        return _mm512_set_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    }

    // A vector_insertable() list as a run: its count_[row] entries, +inf (and
    // index 0) in the lanes past them.
    __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"), always_inline))
    Run load_run(int64_t row, bool wide = true) {
        const float* cd = row_dist(row);
        const int32_t* ci = row_idx(row);
        const int n = count_[row];
        const uint32_t held = n >= 32 ? ~0u : (1u << n) - 1u;
        const __m512 inf = _mm512_set1_ps(std::numeric_limits<float>::infinity());
        if (!wide)  // (a list of at most 16)
            return {_mm512_mask_loadu_ps(inf, __mmask16(held), cd), inf,
                    _mm512_maskz_loadu_epi32(__mmask16(held), ci), _mm512_setzero_si512()};
        return {_mm512_mask_loadu_ps(inf, __mmask16(held), cd),
                _mm512_mask_loadu_ps(inf, __mmask16(held >> 16), cd + 16),
                _mm512_maskz_loadu_epi32(__mmask16(held), ci),
                _mm512_maskz_loadu_epi32(__mmask16(held >> 16), ci + 16)};
    }

    // Stores the first `held` (<= width) lanes of `r` as the list of `row`,
    // and its threshold once the list is full (lane width - 1, from the
    // registers).
    __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"), always_inline))
    void store_run(int64_t row, const Run& r, int held, bool wide = true) {
        float* cd = row_dist(row);
        int32_t* ci = row_idx(row);
        const uint32_t stored = held >= 32 ? ~0u : (1u << held) - 1u;
        _mm512_mask_storeu_ps(cd, __mmask16(stored), r.lo);
        _mm512_mask_storeu_epi32(ci, __mmask16(stored), r.jlo);
        if (wide) {
            _mm512_mask_storeu_ps(cd + 16, __mmask16(stored >> 16), r.hi);
            _mm512_mask_storeu_epi32(ci + 16, __mmask16(stored >> 16), r.jhi);
        }
        count_[row] = held;
        if (held == width)
            worst[row] = _mm512_cvtss_f32(_mm512_maskz_permutexvar_ps(
                0xFFFF, _mm512_set1_epi32((width - 1) % 16), width - 1 < 16 ? r.lo : r.hi));
    }

    // One compare-exchange step of a bitonic network within a register:
    // lane l and lane l ^ stride trade places when out of order, the lanes
    // of `low` (those whose partner is above them in an ascending block)
    // keeping the smaller distance. Both lanes of a pair reach the same
    // decision, so the step permutes (ties stay).
    __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"), always_inline))
    static void exchange(__m512& d, __m512i& j, int stride, __mmask16 low) {
        const __m512i partner = _mm512_xor_si512(lane_numbers(), _mm512_set1_epi32(stride));
        const __m512 pd = _mm512_maskz_permutexvar_ps(0xFFFF, partner, d);
        const __m512i pj = _mm512_maskz_permutexvar_epi32(0xFFFF, partner, j);
        const __mmask16 take = (_mm512_cmp_ps_mask(pd, d, _CMP_LT_OQ) & low) |
                               (_mm512_cmp_ps_mask(pd, d, _CMP_GT_OQ) & __mmask16(~low));
        d = _mm512_mask_mov_ps(d, take, pd);
        j = _mm512_mask_mov_epi32(j, take, pj);
    }

    // The lanes l (of 16) that keep the smaller of a step with `stride` in
    // bitonic blocks of `size` lanes: ascending blocks (l & size == 0) keep it
    // below, descending ones above.
    static constexpr __mmask16 low_lanes(int size, int stride) {
        unsigned mask = 0;
        for (int l = 0; l < 16; ++l)
            if (((l & stride) == 0) == ((l & size) == 0)) mask |= 1u << l;
        return __mmask16(mask);
    }

    // Sorts each register of the runs ascending (Batcher's bitonic sort),
    // the 2N registers' steps interleaved.
    template <int N>
    __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"), always_inline))
    static void sort_registers(Run (&r)[N]) {
        for (int size = 2; size <= 16; size *= 2)
            for (int stride = size / 2; stride >= 1; stride /= 2)
                for (int p = 0; p < N; ++p) {
                    exchange(r[p].lo, r[p].jlo, stride, low_lanes(size, stride));
                    exchange(r[p].hi, r[p].jhi, stride, low_lanes(size, stride));
                }
    }

    // Sorts runs whose two registers are each ascending (or, `bitonic`,
    // whose 32 lanes form a bitonic sequence): without `bitonic` the high
    // register is reversed first, which makes the 32 lanes bitonic. Then the
    // bitonic merge: a step between the registers, four within each.
    template <int N>
    __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"), always_inline))
    static void merge_registers(Run (&runs)[N], bool bitonic = false) {
        for (Run& r : runs) {
            if (!bitonic) {
                r.hi = _mm512_maskz_permutexvar_ps(0xFFFF, reversed_lane_numbers(), r.hi);
                r.jhi = _mm512_maskz_permutexvar_epi32(0xFFFF, reversed_lane_numbers(), r.jhi);
            }
            const __mmask16 swap = _mm512_cmp_ps_mask(r.hi, r.lo, _CMP_LT_OQ);
            const __m512 lo = _mm512_mask_mov_ps(r.lo, swap, r.hi);
            const __m512i jlo = _mm512_mask_mov_epi32(r.jlo, swap, r.jhi);
            r.hi = _mm512_mask_mov_ps(r.hi, swap, r.lo);
            r.jhi = _mm512_mask_mov_epi32(r.jhi, swap, r.jlo);
            r.lo = lo;
            r.jlo = jlo;
        }
        for (int stride = 8; stride >= 1; stride /= 2)
            for (Run& r : runs) {
                exchange(r.lo, r.jlo, stride, low_lanes(32, stride));
                exchange(r.hi, r.jhi, stride, low_lanes(32, stride));
            }
    }
#endif

#if IDEST_X86
    // offer_avx512's steps, on both register pairs of the run (kWide) or,
    // for lists of at most 16, on the low pair alone (the lanes past the list
    // are never stored).
    template <bool kWide>
    __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"), always_inline))
    void offer_run(int64_t row, const float* d, const int32_t* j, int n_offers) {
        const int n = count_[row];
        Run list = load_run(row, kWide);
        const __mmask32 last = __mmask32(1u << (width - 1));
        int inserted = 0;
        for (int i = 0; i < n_offers; ++i) {
            const __m512 v = _mm512_set1_ps(d[i]);
            __mmask32 above = _mm512_cmp_ps_mask(list.lo, v, _CMP_GT_OQ);
            if constexpr (kWide)
                above = _mm512_kunpackw(_mm512_cmp_ps_mask(list.hi, v, _CMP_GT_OQ), __mmask16(above));
            if (!_kortestz_mask32_u8(above & last, 0)) {
                // every lane moved up one: shifted[i] = old[i - 1] (maskz forms:
                // GCC 12 warns that the plain ones read an undefined register)
                const __m512i blo = _mm512_castps_si512(list.lo);
                const __m512 slo = _mm512_castsi512_ps(_mm512_maskz_alignr_epi32(0xFFFF, blo, blo, 15));
                const __m512i sjlo = _mm512_maskz_alignr_epi32(0xFFFF, list.jlo, list.jlo, 15);
                const __mmask32 moved = _kshiftli_mask32(above, 1);
                const __mmask32 slot = _kxor_mask32(above, moved);
                const __mmask16 mlo = __mmask16(moved), slo_m = __mmask16(slot);
                const __m512i vj = _mm512_set1_epi32(j[i]);
                if constexpr (kWide) {
                    const __m512i bhi = _mm512_castps_si512(list.hi);
                    const __m512 shi = _mm512_castsi512_ps(_mm512_maskz_alignr_epi32(0xFFFF, bhi, blo, 15));
                    const __m512i sjhi = _mm512_maskz_alignr_epi32(0xFFFF, list.jhi, list.jlo, 15);
                    const __mmask16 mhi = __mmask16(_kshiftri_mask32(moved, 16));
                    const __mmask16 shi_m = __mmask16(_kshiftri_mask32(slot, 16));
                    list.hi = _mm512_mask_mov_ps(_mm512_mask_mov_ps(list.hi, mhi, shi), shi_m, v);
                    list.jhi = _mm512_mask_mov_epi32(_mm512_mask_mov_epi32(list.jhi, mhi, sjhi), shi_m, vj);
                }
                list.lo = _mm512_mask_mov_ps(_mm512_mask_mov_ps(list.lo, mlo, slo), slo_m, v);
                list.jlo = _mm512_mask_mov_epi32(_mm512_mask_mov_epi32(list.jlo, mlo, sjlo), slo_m, vj);
                ++inserted;
            }
        }
        if (inserted) store_run(row, list, std::min(n + inserted, width), kWide);
    }

    // The list step of merge_avx512 for lists of at most 16: the 16 smallest
    // of the list and the sorted fresh run (whose low register holds its 16
    // smallest), by one bitonic merge step and four in-register steps.
    template <int N>
    __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"), always_inline))
    void merge_short(const int64_t (&rows)[N], const Run (&fresh)[N], const uint32_t (&lanes)[N]) {
        Run list[N];
        for (int p = 0; p < N; ++p) {
            list[p] = load_run(rows[p], /*wide=*/false);
            const __m512 r = _mm512_maskz_permutexvar_ps(0xFFFF, reversed_lane_numbers(), fresh[p].lo);
            const __m512i rj = _mm512_maskz_permutexvar_epi32(0xFFFF, reversed_lane_numbers(), fresh[p].jlo);
            const __mmask16 take = _mm512_cmp_ps_mask(r, list[p].lo, _CMP_LT_OQ);
            list[p].lo = _mm512_mask_mov_ps(list[p].lo, take, r);
            list[p].jlo = _mm512_mask_mov_epi32(list[p].jlo, take, rj);
        }
        for (int stride = 8; stride >= 1; stride /= 2)
            for (Run& r : list) exchange(r.lo, r.jlo, stride, low_lanes(32, stride));
        for (int p = 0; p < N; ++p)
            store_run(rows[p], list[p], std::min(count_[rows[p]] + __builtin_popcount(lanes[p]), width),
                      /*wide=*/false);
    }
#endif

    const bool sorted_;
    const int capacity_;
    KeptVector<float> own_dist_;
    KeptVector<int32_t> own_idx_;
    ListMemory memory_;
    KeptVector<int> count_;
};

}  // namespace idest
