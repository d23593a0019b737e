#!/usr/bin/env bash
# test.sh [--sanitize] - build, then run every test (ctest). With
# --sanitize the same suite runs under AddressSanitizer and UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/build.sh "$@"
# The JS references (tokenizer, later the openai client), from the lock file.
[ -d tests/js/node_modules ] || (cd tests/js && npm ci --no-audit --no-fund)
dir=build
[ "${1:-}" = "--sanitize" ] && dir=build-asan
ctest --test-dir "$dir" --output-on-failure --label-exclude gpu
