#!/usr/bin/env bash
# install_deps.sh - the Debian packages flashlm builds and tests with.
# The one list of system dependencies; docs/architecture.md says why each.
set -euo pipefail
packages=(
  build-essential cmake pkg-config   # the C11 toolchain and build
  libopenblas-dev                    # CPU GEMMs
  libjansson-dev                     # JSON: config.json, safetensors headers, tokenizer.json
  libpcre2-dev                       # the tokenizer's pre-tokenizer regex (JIT, Unicode)
  libutf8proc-dev                    # the tokenizer's NFC normalizer
  libcurl4-openssl-dev               # the serving benchmark's client
  libyaml-dev                        # serve/generate --config FILE.yaml (vLLM's config files)
  curl                               # the benchmark test polls /health
  libcmocka-dev                      # the C test framework
  clang libclang-rt-14-dev           # the fuzz targets (libFuzzer, tools/test.sh --fuzz)
)
# node and npm run the test-side references (tests/js); a machine that has
# node from elsewhere keeps it.
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
