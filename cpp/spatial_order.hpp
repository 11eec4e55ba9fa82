// A spatial order of the rows, so that each tile block of the k-NN pass holds
// points that are close together.
//
// Why: a row's candidate list only rejects a point once it holds closer ones.
// When the blocks are spatially coherent, the diagonal tiles (a block against
// itself, nearest halves first) and then the tiles of nearby blocks fill every
// list with near-final candidates, and the remaining tiles pass almost no
// threshold test, which keeps the selection cheap next to the distance work.
#pragma once

#include <cstdint>
#include <vector>

#include "kept.hpp"

namespace idest {

// Reorders the rows of `rows` (n x dim, row-major float32) in place into the
// order of the leaves of a random-projection-style tree, and returns the input
// row at each position: each node's rows are split at (about) the median of
// their projection on the line through two far-apart rows (among a sample of
// 255 of the node's rows, the farthest from its first and the farthest from
// that: a cheap stand-in for the principal axis), down to `leaf` rows. The
// nodes of a level are split in parallel; each node's rows stay contiguous,
// so every pass over them reads memory in order (reading them through an
// index instead cost 3-4x more at 100,000 x 20). O(n D log(n / leaf)) time;
// deterministic.
KeptVector<int64_t> spatial_order(float* rows, int64_t n, int64_t dim, int64_t leaf,
                                   int n_threads);

}  // namespace idest
