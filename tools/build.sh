#!/usr/bin/env bash
# build.sh [--sanitize|--fuzz] - configure and build flashlm, warnings as
# errors. Plain: build/ (RelWithDebInfo). --sanitize: build-asan/ with
# ASan+UBSan. --fuzz: build-fuzz/, the libFuzzer targets with clang.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build
flags=(-DFLASHLM_WERROR=ON)
if [ "${1:-}" = "--sanitize" ]; then
  dir=build-asan
  # CUDA code cannot run where the sanitizers run (no GPU in CI); the plain
  # build compiles it.
  flags+=(-DFLASHLM_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DFLASHLM_CUDA=OFF)
fi
if [ "${1:-}" = "--fuzz" ]; then
  dir=build-fuzz
  flags=(-DFLASHLM_FUZZ=ON -DFLASHLM_CUDA=OFF -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug)
fi
cmake -S . -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
