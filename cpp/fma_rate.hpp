// The machine's float32 multiply-add rate: the arithmetic bound of the fused
// tile kernel (fused_scan.hpp), measured rather than taken from a data sheet.
//
// A self search of N points in D dimensions does at least N (N - 1) / 2 * D
// multiply-adds (the upper triangle of the dot products), so at small D, where
// nothing else has to cost much, its time is bounded below by
// N (N - 1) D / fma_rate(...) seconds (2 flops per multiply-add). The
// benchmarks report each small-D search as a multiple of that bound.
#pragma once

#include "fused_scan.hpp"

namespace idest {

// Float32 flops per second (2 per lane of a fused multiply-add) reached by
// n_threads threads running at once, each on independent chains of `isa`'s
// widest FMA instruction held in registers (no memory traffic): the peak the
// fused kernel's register blocks can approach. Runs for about `seconds`.
// Throws std::invalid_argument when this build or CPU lacks `isa`.
double fma_rate(FusedIsa isa, int n_threads, double seconds);

}  // namespace idest
