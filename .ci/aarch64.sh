#!/usr/bin/env bash
# CI: the C++ k-NN core builds and is exact on a CPU without x86 intrinsics.
# Cross-compiles cpp/tests/exactness_main.cpp (the core without the Python
# binding, with its own plain SGEMM) for aarch64, runs it under qemu-user, and
# runs the same driver natively (which also checks the x86 kernels this CPU
# has). Installs Debian's g++-aarch64-linux-gnu and qemu-user when they are
# missing. Fails (non-zero exit) if a build fails or a case differs from the
# brute-force float64 reference.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v aarch64-linux-gnu-g++ >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends g++-aarch64-linux-gnu qemu-user >/dev/null
fi

SOURCES="cpp/tests/exactness_main.cpp cpp/knn.cpp cpp/duplicates.cpp cpp/fused_scan.cpp
         cpp/spatial_order.cpp cpp/rescoring.cpp cpp/cpu.cpp cpp/fma_rate.cpp cpp/kept.cpp cpp/parallel.cpp"
FLAGS="-std=c++17 -O2 -ffp-contract=off -Wall -Wextra -Werror -Icpp -pthread"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# shellcheck disable=SC2086
aarch64-linux-gnu-g++ $FLAGS -static $SOURCES -o "$OUT/exactness-aarch64"
echo "aarch64 (qemu-user):"
qemu-aarch64 "$OUT/exactness-aarch64"

# shellcheck disable=SC2086
${CXX:-g++} $FLAGS $SOURCES -o "$OUT/exactness-native"
echo "native ($(uname -m)):"
"$OUT/exactness-native"
