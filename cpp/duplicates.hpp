// Exactly equal rows, found before the search so that each is searched once.
//
// Data with many copies of one row (dead units, padding: all-zero rows) would
// otherwise defeat the candidate pass: a row with more copies than candidates
// cannot be certified and is searched exhaustively in float64. knn_search
// (knn.hpp) instead searches the distinct rows and expands each group with its
// zero distances and the tie rule, which gives the same answer as the search of
// every row (see expand_row in duplicates.cpp for the argument).
#pragma once

#include <cstdint>
#include <vector>

#include "knn.hpp"

namespace idest {

// Groups of rows equal element by element (-0.0 equals 0.0: such rows have the
// same exact distance to every point). Groups are numbered by their lowest row,
// so group g's representative first[g] increases with g.
struct RowGroups {
    KeptVector<int64_t> group_of;  // row -> group
    KeptVector<int64_t> first;     // group -> its lowest row
    KeptVector<int64_t> start;     // group g's rows: members[start[g] .. start[g + 1])
    KeptVector<int64_t> members;   // ascending within each group

    int64_t n_groups() const { return int64_t(first.size()); }
};

// Hashes every row (in parallel) and finds each row's first equal row through
// a hash table, comparing rows of equal hash element by element. O(N D).
RowGroups group_equal_rows(const MatrixView& m, int n_threads);

}  // namespace idest
