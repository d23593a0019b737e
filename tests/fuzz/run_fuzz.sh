#!/usr/bin/env bash
# run_fuzz.sh FUZZER CORPUS SECONDS [more libFuzzer flags] - one bounded run
# of a libFuzzer target over its committed corpus (read only: new inputs go
# to a temporary directory). Fails on any crash, hang (over 10 s an input),
# leak or sanitizer report; prints the executions made.
set -euo pipefail
fuzzer=$1 corpus=$2 seconds=$3
shift 3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -max_len=65536 \
  -print_final_stats=1 "$@" "$work" "$corpus" 2>"$work/log" || { tail -60 "$work/log"; exit 1; }
grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$work/log"
