#!/usr/bin/env bash
# bench_serve_vllm_test.sh FLASHLM FIXTURES TOKENIZER - `flashlm bench serve`
# as vLLM's `vllm bench serve`: against a real `flashlm serve` of tiny Qwen3,
# --backend openai-chat's result block in the seed's layout, the sharegpt,
# sonnet and prefix_repetition datasets' prompt counts and token totals,
# the saved JSON's keys exactly vLLM's (the per-request arrays only with
# --save-detailed), a wrong endpoint and a dead server failing the run;
# against js/capture_stub_server.mjs, the request bodies and headers as
# vLLM sends them (no ignore_eos unless asked or random, temperature 0
# unless given, sampling flags and --extra-body, x-request-id, the ready
# check and warm-ups), goodput on known TTFTs, --label/--result-dir/
# --metadata; and every new flag's bad value refused naming the flag.
# Prints "N passed, N failed".
set -u
bin=$1
fx=$2
tok=$3
here=$(cd "$(dirname "$0")" && pwd)
data=$fx/bench
tmp=$(mktemp -d)
port=$((16000 + $$ % 4000)) # below the ephemeral ports (32768 and up)
passed=0
failed=0
server=
stub=
check() { # check NAME CONDITION...
    local name=$1; shift
    if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $name"; fi
}
line() { # line FILE LABEL VALUE: the block's 40-column label, then the value padded to 10
    grep -qx "$(printf '%-40s %-10s' "$2" "$3")" "$1"
}
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; [ -n "$stub" ] && kill "$stub" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
bench() { "$bin" bench serve --port "$port" --model tiny --tokenizer "$tok" --ready-check-timeout-sec 30 "$@"; }

"$bin" serve "$fx/tiny-qwen3-realvocab" --load-format dummy --tokenizer "$tok" --port "$port" \
    --host 127.0.0.1 --served-model-name tiny --max-model-len 512 --block-size 16 2>"$tmp/serve.log" &
server=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done

# --backend openai-chat: /v1/chat/completions by default, the seed's block
bench --backend openai-chat --ready-check-timeout-sec 0 --num-prompts 16 --random-input-len 32 --random-output-len 8 >"$tmp/chat" 2>"$tmp/chat.err"
check "openai-chat exits 0" test $? -eq 0
check "openai-chat: 16 successful" line "$tmp/chat" "Successful requests:" 16
check "openai-chat: 16 x 32 input tokens" line "$tmp/chat" "Total input tokens:" 512
check "openai-chat: 16 x 8 generated" line "$tmp/chat" "Total generated tokens:" 128
layout='^(=+ Serving Benchmark Result =+|-+[A-Za-z0-9 (.)-]+-+|=+|.{40} [0-9]+(\.[0-9]{2})? *)$'
check "openai-chat: block layout" bash -c "grep -Evc '$layout' '$tmp/chat' | grep -qx 0"
check "openai-chat: the seed's labels in order" bash -c "grep -o '^[A-Z][A-Za-z0-9 ()./]*:' '$tmp/chat' | tr -d '\n' | grep -q \
'^Successful requests:Benchmark duration (s):Total input tokens:Total generated tokens:Request throughput (req/s):Output token throughput (tok/s):Peak output token throughput (tok/s):Peak concurrent requests:Total Token throughput (tok/s):Mean TTFT (ms):Median TTFT (ms):P99 TTFT (ms):Mean TPOT (ms):Median TPOT (ms):P99 TPOT (ms):Mean ITL (ms):Median ITL (ms):P99 ITL (ms):\$'"

# sharegpt: 4 usable conversations of 9 (one turn, no conversations, a 1-token
# prompt, a 1-token reply, a 2021-token prompt dropped): prompts 15+14+13+13,
# replies 23+19+18+14 tokens
sg=$data/sharegpt_synthetic.json
bench --dataset-name sharegpt --dataset-path "$sg" --num-prompts 4 --ignore-eos >"$tmp/sg1" 2>&1
check "sharegpt: 4 prompts, 55 + 74 tokens" bash -c "$(declare -f line); line '$tmp/sg1' 'Successful requests:' 4 &&
    line '$tmp/sg1' 'Total input tokens:' 55 && line '$tmp/sg1' 'Total generated tokens:' 74"
bench --dataset-name sharegpt --dataset-path "$sg" --num-prompts 9 --no-oversample --sharegpt-output-len 5 \
    >"$tmp/sg2" 2>&1
check "sharegpt: --sharegpt-output-len keeps the 1-token reply: 5 prompts, 70 + 25 tokens" \
    bash -c "$(declare -f line); line '$tmp/sg2' 'Successful requests:' 5 &&
    line '$tmp/sg2' 'Total input tokens:' 70 && line '$tmp/sg2' 'Total generated tokens:' 25"
bench --dataset-name sharegpt --dataset-path "$sg" --num-prompts 10 --sharegpt-output-len 3 >"$tmp/sg3" 2>&1
check "sharegpt: oversampled to --num-prompts" line "$tmp/sg3" "Successful requests:" 10

# sonnet: prompts of at most --sonnet-input-len tokens in the chat template
bench --dataset-name sonnet --dataset-path "$data/sonnet_synthetic.txt" --num-prompts 5 --sonnet-input-len 120 \
    --sonnet-prefix-len 60 --sonnet-output-len 6 --ignore-eos --save-result --save-detailed \
    --result-filename "$tmp/sonnet.json" >"$tmp/son" 2>&1
check "sonnet: 5 prompts of 100 to 120 tokens, 6 generated each" node -e "
const r = require('$tmp/sonnet.json');
if (r.completed !== 5 || r.input_lens.length !== 5 || r.input_lens.some((n) => n > 120 || n < 100) ||
    r.output_lens.some((n) => n !== 6)) process.exit(1);"

# prefix_repetition: 3 prefixes x (7 / 3 = 2) prompts of 20 + 10 tokens
bench --dataset-name prefix_repetition --num-prompts 7 --prefix-repetition-num-prefixes 3 \
    --prefix-repetition-prefix-len 20 --prefix-repetition-suffix-len 10 --prefix-repetition-output-len 4 \
    --ignore-eos --save-result --save-detailed --result-filename "$tmp/rep.json" >"$tmp/rep" 2>&1
check "prefix_repetition: 6 prompts of 30 tokens, 4 generated each" node -e "
const r = require('$tmp/rep.json');
if (r.completed !== 6 || r.total_input_tokens !== 180 || r.total_output_tokens !== 24 ||
    r.input_lens.some((n) => n !== 30)) process.exit(1);"

# the saved JSON: exactly vLLM's keys, in its order
keys='date endpoint_type backend label model_id tokenizer_id num_prompts request_rate burstiness max_concurrency duration completed failed total_input_tokens total_output_tokens request_throughput request_goodput output_throughput total_token_throughput'
detailed='input_lens output_lens ttfts itls generated_texts errors'
tail_keys='max_output_tokens_per_s max_concurrent_requests mean_ttft_ms median_ttft_ms std_ttft_ms p99_ttft_ms mean_tpot_ms median_tpot_ms std_tpot_ms p99_tpot_ms mean_itl_ms median_itl_ms std_itl_ms p99_itl_ms'
bench --num-prompts 4 --random-input-len 16 --random-output-len 4 --save-result --result-filename "$tmp/plain.json" \
    >/dev/null 2>&1
check "saved JSON: vLLM's keys, no per-request arrays" node -e "
const r = require('$tmp/plain.json');
if (Object.keys(r).join(' ') !== '$keys $tail_keys') { console.log(Object.keys(r).join(' ')); process.exit(1); }
if (r.backend !== 'openai' || r.endpoint_type !== 'openai' || r.label !== null || r.request_rate !== 'inf' ||
    r.max_concurrency !== null || r.request_goodput !== null || r.num_prompts !== 4 || r.completed !== 4) process.exit(1);"
bench --num-prompts 4 --random-input-len 16 --random-output-len 4 --save-result --save-detailed \
    --result-filename "$tmp/detailed.json" >/dev/null 2>&1
check "saved JSON with --save-detailed: the per-request arrays too" node -e "
const r = require('$tmp/detailed.json');
if (Object.keys(r).join(' ') !== '$keys $detailed $tail_keys') { console.log(Object.keys(r).join(' ')); process.exit(1); }
if (r.input_lens.some((n) => n !== 16) || r.output_lens.some((n) => n !== 4) || r.itls.some((l) => l.length !== 3) ||
    r.errors.some((e) => e !== '') || r.generated_texts.length !== 4) process.exit(1);"

# a wrong endpoint: every request fails, counted, and the run fails
bench --endpoint /v1/chat/completions --ready-check-timeout-sec 0 --num-prompts 3 --random-input-len 8 \
    --random-output-len 2 >"$tmp/wrong" 2>"$tmp/wrong.err"
check "wrong endpoint exits non-zero" test $? -ne 0
check "wrong endpoint: 3 failed requests" line "$tmp/wrong" "Failed requests:" 3
check "wrong endpoint: the server's error shown" grep -q "HTTP 400" "$tmp/wrong.err"
bench --endpoint /v1/chat/completions --ready-check-timeout-sec 1 --num-prompts 3 --random-input-len 8 \
    --random-output-len 2 >"$tmp/wrong2" 2>"$tmp/wrong2.err"
check "wrong endpoint with the ready check: exits non-zero naming it" bash -c \
    "[ $? -ne 0 ] && grep -q 'Initial test run failed' '$tmp/wrong2.err'"
kill "$server"
wait "$server" 2>/dev/null
server=

# a dead server
bench --ready-check-timeout-sec 0 --num-prompts 3 --random-input-len 8 --random-output-len 2 \
    >"$tmp/dead" 2>"$tmp/dead.err"
check "dead server exits non-zero" test $? -ne 0
check "dead server: 3 failed requests" line "$tmp/dead" "Failed requests:" 3
bench --ready-check-timeout-sec 1 --num-prompts 3 --random-input-len 8 --random-output-len 2 \
    >"$tmp/dead2" 2>"$tmp/dead2.err"
check "dead server with the ready check: exits non-zero" bash -c \
    "[ $? -ne 0 ] && grep -q 'Initial test run failed' '$tmp/dead2.err'"

# the capture stub: what is sent
node "$here/js/capture_stub_server.mjs" "$port" "$tmp/log" &
stub=$!
for _ in $(seq 50); do [ -n "$(curl -s "http://127.0.0.1:$port/" 2>/dev/null)" ] && break; sleep 0.1; done
: >"$tmp/log"
bench --dataset-name sharegpt --dataset-path "$sg" --num-prompts 4 --num-warmups 2 --request-id-prefix myrun- \
    >"$tmp/s1" 2>&1
check "stub: sharegpt run exits 0" test $? -eq 0
check "stub: vLLM's completions body, no ignore_eos, temperature 0" node -e "
const reqs = require('fs').readFileSync('$tmp/log', 'utf8').trim().split('\n').map(JSON.parse);
const main = reqs.filter((r) => r.headers['x-request-id']), other = reqs.filter((r) => !r.headers['x-request-id']);
if (reqs.length !== 7 || main.length !== 4 || other.length !== 3) process.exit(1);  // ready check + 2 warm-ups
const ids = main.map((r) => r.headers['x-request-id']).sort().join(',');
if (ids !== 'myrun-0,myrun-1,myrun-2,myrun-3') process.exit(2);
for (const r of reqs) {
  const b = r.body;
  if (r.path !== '/v1/completions' || 'ignore_eos' in b || b.temperature !== 0 || b.repetition_penalty !== 1 ||
      b.logprobs !== null || b.stream !== true || b.stream_options.include_usage !== true ||
      typeof b.prompt !== 'string' || !(b.max_tokens > 0) || b.model !== 'tiny') process.exit(3);
}"
: >"$tmp/log"
bench --num-prompts 2 --random-input-len 8 --random-output-len 4 --ready-check-timeout-sec 0 >/dev/null 2>&1
check "stub: the random dataset sends ignore_eos" node -e "
const reqs = require('fs').readFileSync('$tmp/log', 'utf8').trim().split('\n').map(JSON.parse);
if (reqs.length !== 2 || reqs.some((r) => r.body.ignore_eos !== true || r.body.max_tokens !== 4)) process.exit(1);"
: >"$tmp/log"
bench --dataset-name sharegpt --dataset-path "$sg" --num-prompts 2 --ready-check-timeout-sec 0 --ignore-eos \
    --temperature 0.5 --top-p 0.75 --top-k 5 --min-p 0.25 --extra-body '{"top_k": 7, "seed": 3}' \
    --served-model-name served --header x-test=yes >/dev/null 2>&1
check "stub: sampling flags, --extra-body over them, --ignore-eos, --header, --served-model-name" node -e "
const reqs = require('fs').readFileSync('$tmp/log', 'utf8').trim().split('\n').map(JSON.parse);
if (reqs.length !== 2) process.exit(1);
for (const r of reqs) {
  const b = r.body;
  if (b.temperature !== 0.5 || b.top_p !== 0.75 || b.top_k !== 7 || b.min_p !== 0.25 || b.seed !== 3 ||
      b.ignore_eos !== true || b.model !== 'served' || r.headers['x-test'] !== 'yes') process.exit(2);
}"
: >"$tmp/log"
bench --backend openai-chat --dataset-name sharegpt --dataset-path "$sg" --num-prompts 3 --ready-check-timeout-sec 0 \
    >"$tmp/c1" 2>&1
check "stub: openai-chat run, 3 successful" line "$tmp/c1" "Successful requests:" 3
check "stub: vLLM's chat body" node -e "
const reqs = require('fs').readFileSync('$tmp/log', 'utf8').trim().split('\n').map(JSON.parse);
if (reqs.length !== 3) process.exit(1);
for (const r of reqs) {
  const b = r.body, m = b.messages;
  if (r.path !== '/v1/chat/completions' || m.length !== 1 || m[0].role !== 'user' || m[0].content.length !== 1 ||
      m[0].content[0].type !== 'text' || typeof m[0].content[0].text !== 'string' || !(b.max_completion_tokens > 0) ||
      'max_tokens' in b || b.temperature !== 0 || b.stream !== true || 'ignore_eos' in b) process.exit(2);
}"

# goodput: requests 0, 2, 4 wait 300 ms for their first token, 1, 3, 5 none
bench --num-prompts 6 --random-input-len 8 --random-output-len 4 --ready-check-timeout-sec 0 \
    --goodput ttft:150 tpot:1000 --save-result --result-filename "$tmp/good.json" >"$tmp/g1" 2>&1
check "goodput: the line printed" grep -q '^Request goodput (req/s):' "$tmp/g1"
check "goodput: 3 of 6 requests meet ttft:150" node -e "
const r = require('$tmp/good.json');
if (Math.round(r.request_goodput * r.duration) !== 3) process.exit(1);"
bench --num-prompts 6 --random-input-len 8 --random-output-len 4 --ready-check-timeout-sec 0 \
    --goodput e2el:0.001 --save-result --result-filename "$tmp/good0.json" >/dev/null 2>&1
check "goodput: none meets e2el:0.001" node -e "if (require('$tmp/good0.json').request_goodput !== 0) process.exit(1);"

# --label, --result-dir, --metadata, vLLM's file name
bench --num-prompts 2 --random-input-len 8 --random-output-len 4 --ready-check-timeout-sec 0 --label mine \
    --max-concurrency 2 --save-result --result-dir "$tmp/res" --metadata version=1 " tp = 2 " >/dev/null 2>&1
check "--result-dir and vLLM's file name" bash -c "ls '$tmp/res' | grep -Eqx 'mine-infqps-concurrency2-tiny-[0-9]{8}-[0-9]{6}\.json'"
check "--label and --metadata in the JSON" node -e "
const fs = require('fs'), f = fs.readdirSync('$tmp/res')[0], r = JSON.parse(fs.readFileSync('$tmp/res/' + f));
if (r.label !== 'mine' || r.version !== '1' || r.tp !== '2' || r.max_concurrency !== 2) process.exit(1);"
check "no progress bar when stderr is not a terminal" bash -c "! grep -q '\[=' '$tmp/c1'"
if command -v script >/dev/null; then # a terminal: the bar, unless --disable-tqdm
    tty_run="$bin bench serve --port $port --model tiny --tokenizer $tok --num-prompts 3 --random-input-len 8 \
--random-output-len 4 --ready-check-timeout-sec 0"
    script -qec "$tty_run" /dev/null >"$tmp/tty1" 2>&1
    script -qec "$tty_run --disable-tqdm" /dev/null >"$tmp/tty2" 2>&1
    check "a progress bar on a terminal" grep -q '\] 3/3' "$tmp/tty1"
    check "--disable-tqdm: none" bash -c "grep -q 'Successful requests' '$tmp/tty2' && ! grep -q '\] 3/3' '$tmp/tty2'"
fi

# every new flag's bad value refused, naming the flag
refuse() { # refuse FLAG ARGS...: exits 1 and names FLAG
    local flag=$1; shift
    "$bin" bench serve --model tiny --tokenizer "$tok" --port "$port" "$@" >"$tmp/bad" 2>&1
    local rc=$?
    check "refused: $* (naming $flag)" bash -c "[ $rc -eq 1 ] && grep -q -- '$flag' '$tmp/bad'"
}
refuse --backend --backend tgi
refuse --goodput --goodput foo:1
refuse --goodput --goodput ttft
refuse --goodput --goodput ttft:-1
refuse --goodput --goodput ttft:abc
refuse --extra-body --extra-body '[1]'
refuse --extra-body --extra-body 'nope'
refuse --temperature --temperature -1
refuse --top-p --top-p 2
refuse --top-k --top-k x
refuse --min-p --min-p 2
refuse --frequency-penalty --frequency-penalty 5
refuse --presence-penalty --presence-penalty x
refuse --repetition-penalty --repetition-penalty 0
refuse --num-warmups --num-warmups -1
refuse --ready-check-timeout-sec --ready-check-timeout-sec x
refuse --metadata --metadata novalue
refuse --header --header novalue
refuse --percentile-metrics --percentile-metrics ttft,foo
refuse --metric-percentiles --metric-percentiles 101
refuse --dataset-name --dataset-name hf
refuse --dataset-path --dataset-name sharegpt
refuse --dataset-path --dataset-path "$sg"
refuse --sharegpt-output-len --sharegpt-output-len 0
refuse --sonnet-input-len --sonnet-input-len 0
refuse --sonnet-output-len --sonnet-output-len x
refuse --sonnet-prefix-len --sonnet-prefix-len -1
refuse --prefix-repetition-prefix-len --prefix-repetition-prefix-len -1
refuse --prefix-repetition-suffix-len --prefix-repetition-suffix-len x
refuse --prefix-repetition-num-prefixes --prefix-repetition-num-prefixes 0
refuse --prefix-repetition-output-len --prefix-repetition-output-len 0
refuse --num-prompts --dataset-name prefix_repetition --num-prompts 3
refuse --save-detailed --save-detailed
refuse --endpoint --endpoint /v1/embeddings
refuse --endpoint --backend openai-chat --endpoint /v1/completions
refuse --random-range-ratio --random-range-ratio 1
refuse --random-batch-size --random-batch-size 2
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
