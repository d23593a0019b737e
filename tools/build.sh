#!/usr/bin/env bash
# build.sh [--sanitize] - configure and build flashlm, warnings as errors.
# Plain: build/ (RelWithDebInfo). --sanitize: build-asan/ with ASan+UBSan.
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
cmake -S . -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
