#!/usr/bin/env bash
# bench_serve_test.sh FLASHLM FIXTURES TOKENIZER - `flashlm bench serve`
# against a real `flashlm serve` (32 prompts of 64:16: exact totals, no
# failures, the result block line by line in the seed's layout, the saved
# JSON with --save-detailed), then against a stub that fails every third
# request (failures counted, kept out of the figures, the run failed).
# Prints
# "N passed, N failed".
set -u
bin=$1
fx=$2
tok=$3
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
port=$((12000 + $$ % 4000)) # below the ephemeral ports (32768 and up)
passed=0
failed=0
check() { # check NAME CONDITION...
    local name=$1; shift
    if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $name"; fi
}
cleanup() { kill "$server" 2>/dev/null; kill "$stub" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

"$bin" serve "$fx/tiny-qwen3-realvocab" --load-format dummy --tokenizer "$tok" --port "$port" \
    --host 127.0.0.1 --served-model-name tiny --max-model-len 512 --block-size 16 2>"$tmp/serve.log" &
server=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done

"$bin" bench serve --port "$port" --model tiny --tokenizer "$tok" --num-prompts 32 \
    --random-input-len 64 --random-output-len 16 --save-result --save-detailed --result-filename "$tmp/r.json" \
    >"$tmp/out" 2>"$tmp/err"
check "bench exits 0" test $? -eq 0
check "successful 32" grep -qx 'Successful requests:                     32        ' "$tmp/out"
check "input tokens 32 x 64" grep -qx 'Total input tokens:                      2048      ' "$tmp/out"
check "generated 32 x 16" grep -qx 'Total generated tokens:                  512       ' "$tmp/out"
check "no failures" bash -c "! grep -q 'Failed requests' '$tmp/out'"
# every line: the banner, a dashed metric header, or a 40-column label and a value
layout='^(=+ Serving Benchmark Result =+|-+[A-Za-z0-9 (.)-]+-+|=+|.{40} [0-9]+(\.[0-9]{2})? *)$'
check "block layout" bash -c "grep -Evc '$layout' '$tmp/out' | grep -qx 0"
check "banner is 50 wide" bash -c "head -1 '$tmp/out' | awk '{exit length(\$0) != 50}'"
check "seed's labels in order" bash -c "grep -o '^[A-Z][A-Za-z0-9 ()./]*:' '$tmp/out' | tr -d '\n' | grep -q \
'^Successful requests:Benchmark duration (s):Total input tokens:Total generated tokens:Request throughput (req/s):Output token throughput (tok/s):Peak output token throughput (tok/s):Peak concurrent requests:Total Token throughput (tok/s):Mean TTFT (ms):Median TTFT (ms):P99 TTFT (ms):Mean TPOT (ms):Median TPOT (ms):P99 TPOT (ms):Mean ITL (ms):Median ITL (ms):P99 ITL (ms):\$'"
check "saved JSON" node -e "
const r = require('$tmp/r.json');
if (r.completed !== 32 || r.total_output_tokens !== 512 || r.input_lens.some((n) => n !== 64) ||
    r.output_lens.some((n) => n !== 16) || typeof r.mean_ttft_ms !== 'number' || r.errors.some((e) => e)) process.exit(1);"
printf '{"prompt": "Hello there", "output_tokens": 5}\n{"prompt": "A second prompt"}\n{"prompt": "Three", "output_tokens": 2}\n' >"$tmp/p.jsonl"
"$bin" bench serve --port "$port" --model tiny --tokenizer "$tok" --dataset-name custom \
    --dataset-path "$tmp/p.jsonl" --num-prompts 10 --random-output-len 3 --request-rate 50 \
    --percentile-metrics ttft,e2el --metric-percentiles 50,90 >"$tmp/out3" 2>&1
check "custom dataset: 3 prompts, 5 + 3 + 2 tokens" bash -c "grep -qx 'Successful requests:                     3         ' '$tmp/out3' &&
    grep -qx 'Total generated tokens:                  10        ' '$tmp/out3'"
check "chosen metrics and percentiles" bash -c "grep -q '^P90 E2EL (ms):' '$tmp/out3' && ! grep -q 'TPOT' '$tmp/out3'"
kill "$server"
wait "$server" 2>/dev/null

node "$here/js/stub_server.mjs" "$port" &
stub=$!
sleep 0.5
"$bin" bench serve --port "$port" --model tiny --tokenizer "$tok" --num-prompts 9 \
    --random-input-len 8 --random-output-len 4 --max-concurrency 2 --request-rate 200 --burstiness 0.5 \
    --ready-check-timeout-sec 0 >"$tmp/out2" 2>"$tmp/err2"
check "failures fail the run" test $? -eq 1
check "6 successful" grep -qx 'Successful requests:                     6         ' "$tmp/out2"
check "3 failed" grep -qx 'Failed requests:                         3         ' "$tmp/out2"
check "max concurrency shown" grep -q '^Maximum request concurrency:             2 ' "$tmp/out2"
check "only successes counted" grep -qx 'Total generated tokens:                  24        ' "$tmp/out2"
check "errors reported" grep -q 'HTTP 500: .*injected failure' "$tmp/err2"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
