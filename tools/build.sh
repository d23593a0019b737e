#!/usr/bin/env bash
# build.sh [--sanitize] - configure and build flashlm, warnings as errors.
# Plain: build/ (RelWithDebInfo). --sanitize: build-asan/ with ASan+UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build
flags=(-DFLASHLM_WERROR=ON)
if [ "${1:-}" = "--sanitize" ]; then
  dir=build-asan
  flags+=(-DFLASHLM_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
fi
cmake -S . -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
