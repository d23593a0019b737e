#!/usr/bin/env bash
# test.sh [--sanitize|--fuzz] - build, then run every test (ctest). With
# --sanitize the same suite runs under AddressSanitizer and UBSan; with
# --fuzz each libFuzzer target runs for a bounded time over its corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/build.sh "$@"
# The JS references (tokenizers, the openai client), from the lock file:
# installed again when the lock file is newer than what npm installed.
if [ tests/js/package-lock.json -nt tests/js/node_modules/.package-lock.json ]; then
  (cd tests/js && npm ci --no-audit --no-fund)
fi
dir=build
[ "${1:-}" = "--sanitize" ] && dir=build-asan
[ "${1:-}" = "--fuzz" ] && dir=build-fuzz
ctest --test-dir "$dir" --output-on-failure --label-exclude gpu
