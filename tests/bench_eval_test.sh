#!/usr/bin/env bash
# bench_eval_test.sh FLASHLM FIXTURES TOKENIZER - `flashlm bench eval`
# against js/eval_stub_server.mjs, whose answers are known: 9 synthetic
# questions (quoted fields with commas, line breaks and quotes) x 2
# repeats: right, wrong, unparseable, an HTTP error, a timeout, junk, no
# content; the exact counts and accuracy, the JSON, the prompts and
# requests as the stub received them, the same results whatever the
# concurrency, a server that is down; every flag's refusal; then a real
# `flashlm serve` answering every request. Prints "N passed, N failed".
set -u
bin=$1
fx=$2
tok=$3
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
port=$((16000 + $$ % 4000)) # apart from bench_serve_test's ports, below the ephemeral ones
csv=$fx/eval/gpqa_synthetic.csv
source "$here/expect.sh"
check() { # check NAME CONDITION...
    local name=$1; shift
    if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $name"; fi
}
line() { printf '%-40s %-10s' "$1" "$2"; } # a line of the result block
has_line() { grep -qxF -- "$(line "$1" "$2")" "$3"; }
stub=
server=
cleanup() { [ -n "$stub" ] && kill "$stub" 2>/dev/null; [ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

node "$here/js/eval_stub_server.mjs" "$port" "$tmp/log.jsonl" &
stub=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/stats" >/dev/null && break; sleep 0.1; done

run_eval() { # run_eval OUT_PREFIX FLAGS...: the stub run, 2 repeats, timeout 1.5 s
    local prefix=$1; shift
    OPENAI_API_KEY=test-key "$bin" bench eval --port "$port" --model stub --dataset "$csv" --repeats 2 \
        --request-timeout 1.5 --reasoning-effort low --temperature 0.7 --max-tokens 512 "$@" \
        >"$tmp/$prefix.out" 2>"$tmp/$prefix.err"
}

run_eval a --seed 3 --max-concurrency 3 --output "$tmp/a.json"
check "exits 0 with failures" test $? -eq 0
check "questions" has_line 'Questions:' 9 "$tmp/a.out"
check "samples" has_line 'Samples:' 18 "$tmp/a.out"
check "correct: [correct], [correct-boxed], [slow-ok]" has_line 'Correct:' 6 "$tmp/a.out"
check "wrong" has_line 'Wrong answer:' 2 "$tmp/a.out"
check "unparseable" has_line 'No answer found:' 2 "$tmp/a.out"
check "failed: error, timeout, junk, no content" has_line 'Failed requests:' 8 "$tmp/a.out"
# 6 / 18; question means 1,1,0,0,0,0,0,0,1: sqrt(var(ddof 1) / 9) = sqrt(0.25 / 9)
check "accuracy and standard error" has_line 'Accuracy (%):' '33.33 ± 16.67' "$tmp/a.out"
check "reasoning effort shown" has_line 'Reasoning effort:' low "$tmp/a.out"
check "max concurrency shown" has_line 'Maximum request concurrency:' 3 "$tmp/a.out"
layout='^(=+ GPQA Eval Result =+|=+|.{40} .+)$'
check "block layout" bash -c "grep -Evc '$layout' '$tmp/a.out' | grep -qx 0 && head -1 '$tmp/a.out' | awk '{exit length(\$0) != 50}'"
check "the first 3 failures on stderr" bash -c "[ \$(grep -c '^sample [0-9]* (question [0-9]*, repeat [0-9]) failed: ' '$tmp/a.err') -eq 3 ]"
check "peak in flight within --max-concurrency 3" bash -c "curl -s http://127.0.0.1:$port/stats | grep -Eq '\"peak\":[23]}'"

# The JSON against the CSV's meaning written out here, and the requests as
# the stub logged them.
cat >"$tmp/check.mjs" <<'EOF'
import fs from "node:fs";
const [file, log] = process.argv.slice(2);
const r = JSON.parse(fs.readFileSync(file, "utf8"));
const sent = fs.readFileSync(log, "utf8").trim().split("\n").map((l) => JSON.parse(l));
const rows = [
  ['[correct] Which of these, if any, is "right"?', "Right, with a comma", 'No, "quoted"', "Also no", "Nope"],
  ["[correct-boxed] A question\nover two lines,\nwith commas.", "Right\nand a second line", 'x = "1, 2"', "y", "z"],
  ["[wrong] What is 6 x 7?", "Right: 42", "41", "43", "44"],
  ["[unparseable] Pick one.", "Right one", "Wrong one", "Other one", "Last one"],
  ...["http-error] The server fails this one.", "slow-timeout] The server is too slow for this one.",
      "junk] The server answers junk.", "no-content] The server runs out of tokens."].map((q) => ["[" + q, "Right", "Wrong 1", "Wrong 2", "Wrong 3"]),
  ["[slow-ok] Slow, but in time.", "Right", "Wrong, 1", "Wrong 2", "Wrong 3"],
];
const fail = (m) => { console.error(m); process.exit(1); };
const eq = (a, b, m) => { if (JSON.stringify(a) !== JSON.stringify(b)) fail(`${m}: ${JSON.stringify(a)} != ${JSON.stringify(b)}`); };
eq([r.eval, r.model, r.reasoning_effort, r.temperature, r.max_tokens, r.seed, r.repeats, r.max_concurrency, r.num_questions, r.num_samples],
   ["gpqa", "stub", "low", 0.7, 512, 3, 2, 3, 9, 18], "settings");
eq([r.correct, r.wrong, r.no_answer, r.failed], [6, 2, 2, 8], "counts");
if (Math.abs(r.accuracy - 1 / 3) > 1e-12 || Math.abs(r.std_error - 1 / 6) > 1e-12 || Math.abs(r.score_std - Math.sqrt(2) / 3) > 1e-12)
  fail("scores " + [r.accuracy, r.std_error, r.score_std]);
eq(r.results.length, 18, "results");
const tagOf = (q) => rows[q][0].match(/\[([a-z-]+)\]/)[1];
const prompts = sent.map((s) => s.body.messages[0].content);
r.results.forEach((s, i) => {
  eq([s.sample, s.question, s.repeat, s.line], [i, i % 9, Math.floor(i / 9), [2, 3, 7, 8, 9, 11, 12, 13, 14][i % 9]], `sample ${i} place`);
  eq([...s.permutation].sort(), [0, 1, 2, 3], `sample ${i} permutation`);
  eq(s.correct_letter, "ABCD"[s.permutation.indexOf(0)], `sample ${i} correct letter`);
  const row = rows[s.question], choice = (k) => row[1 + s.permutation[k]];
  const prompt = `${row[0]}\n\n(A) ${choice(0)}\n(B) ${choice(1)}\n(C) ${choice(2)}\n(D) ${choice(3)}\n\n` +
    "Express your final answer as the corresponding option 'A', 'B', 'C', or 'D'.";
  if (!prompts.includes(prompt)) fail(`sample ${i}: no request sent this prompt:\n${prompt}`);
  const tag = tagOf(s.question), next = "BCDA"["ABCD".indexOf(s.correct_letter)];
  const want = {
    "correct": [s.correct_letter, true, null], "correct-boxed": [s.correct_letter, true, null],
    "slow-ok": [s.correct_letter, true, null], "wrong": [next, false, null], "unparseable": [null, false, null],
    "http-error": [null, false, "HTTP 500: "], "slow-timeout": [null, false, "no complete reply within --request-timeout (1.5 s)"],
    "junk": [null, false, "the reply is not JSON"],
    "no-content": [null, false, "the reply has no answer text (choices[0].message.content is null; finish_reason length)"],
  }[tag];
  eq([s.extracted, s.correct, s.error === null ? null : s.error.slice(0, want[2]?.length)], want, `sample ${i} (${tag})`);
  if (want[2] === null && typeof s.response !== "string") fail(`sample ${i}: no response text`);
  if (want[2] !== null && s.response !== null) fail(`sample ${i}: a failure with a response`);
  if (tag === "unparseable" && s.response !== "I cannot\u0000 decide.") fail("unparseable response");
  if (tag === "no-content" && s.finish_reason !== "length") fail("finish_reason");
});
eq(sent.length, 18, "requests sent");
for (const s of sent) {
  eq([s.auth, s.body.model, s.body.reasoning_effort, s.body.temperature, s.body.max_tokens, s.body.messages.length, s.body.messages[0].role],
     ["Bearer test-key", "stub", "low", 0.7, 512, 1, "user"], "request");
}
EOF
check "result JSON and requests" node "$tmp/check.mjs" "$tmp/a.json" "$tmp/log.jsonl"

# The same seed gives the same samples at any concurrency; another seed
# other orders.
run_eval b --seed 3 --output "$tmp/b.json"
run_eval c --seed 4 --output "$tmp/c.json"
same='const f = (n) => JSON.parse(require("fs").readFileSync(n, "utf8")).results.map((s) => [s.permutation, s.extracted, s.correct, s.error]);'
check "same seed, all at once: same results" node -e "$same
if (JSON.stringify(f('$tmp/a.json')) !== JSON.stringify(f('$tmp/b.json'))) process.exit(1);"
check "another seed: other orders" node -e "$same
if (f('$tmp/a.json').every((s, i) => JSON.stringify(s[0]) === JSON.stringify(f('$tmp/c.json')[i][0]))) process.exit(1);"
check "another seed: the same counts" has_line 'Correct:' 6 "$tmp/c.out"

# Under a low open-file limit the requests wait their turn rather than fail.
(ulimit -n 72 && run_eval f --seed 3 --output "$tmp/f.json")
check "open-file limit: in flight capped" grep -qx "flashlm bench eval: at most 8 requests in flight (the open-file limit is 72)" "$tmp/f.err"
check "open-file limit: same results" node -e "$same
if (JSON.stringify(f('$tmp/a.json')) !== JSON.stringify(f('$tmp/f.json'))) process.exit(1);"

# --reasoning-effort none sends none, which this stub refuses: every request
# a counted 400 (and --base-url wins over --port)
run_eval d --reasoning-effort none --port 1 --base-url "http://127.0.0.1:$port"
check "effort none: not sent, 18 failed" has_line 'Failed requests:' 18 "$tmp/d.out"
check "effort none: the 400 reported" grep -q "HTTP 400: .*bad request field reasoning_effort" "$tmp/d.err"
check "effort none: accuracy 0" has_line 'Accuracy (%):' '0.00 ± 0.00' "$tmp/d.out"

run_eval g --endpoint /v1/nowhere
check "--endpoint: the stub's 404s" has_line 'Failed requests:' 18 "$tmp/g.out"
check "--endpoint: reported" grep -q "HTTP 404: " "$tmp/g.err"

kill "$stub"
wait "$stub" 2>/dev/null
stub=
run_eval e
check "server down: exits 0" test $? -eq 0
check "server down: 18 failed" has_line 'Failed requests:' 18 "$tmp/e.out"
check "server down: reported" grep -q "failed: Couldn't connect to server" "$tmp/e.err"

# Every flag's refusal, one line each.
expect_error "bench eval: --model is required" "$bin" bench eval --dataset "$csv"
expect_error "bench eval: --dataset is required" "$bin" bench eval --model m
expect_error "--model: not valid UTF-8" "$bin" bench eval --model $'\xff' --dataset "$csv"
expect_error "--reasoning-effort: 'extreme' is not one of low, medium, high, none" \
    "$bin" bench eval --model m --dataset "$csv" --reasoning-effort extreme
expect_error "--repeats: 0 is out of range" "$bin" bench eval --model m --dataset "$csv" --repeats 0
expect_error "--temperature: -1 is out of range" "$bin" bench eval --model m --dataset "$csv" --temperature -1
expect_error "--temperature: 'hot' is not a number" "$bin" bench eval --model m --dataset "$csv" --temperature hot
expect_error "--max-tokens: 0 is out of range" "$bin" bench eval --model m --dataset "$csv" --max-tokens 0
expect_error "--max-concurrency: 0 is out of range" "$bin" bench eval --model m --dataset "$csv" --max-concurrency 0
expect_error "--request-timeout: 0 is out of range" "$bin" bench eval --model m --dataset "$csv" --request-timeout 0
expect_error "--seed: -1 is out of range" "$bin" bench eval --model m --dataset "$csv" --seed -1
expect_error "--port: 0 is out of range" "$bin" bench eval --model m --dataset "$csv" --port 0
expect_error "option '--model' needs a value" "$bin" bench eval --dataset "$csv" --model
expect_error "unknown option '--n-repeats'" "$bin" bench eval --model m --dataset "$csv" --n-repeats 2
expect_error "unexpected argument 'extra'" "$bin" bench eval --model m --dataset "$csv" extra
expect_error "--dataset: .*/nonexistent.csv" "$bin" bench eval --model m --dataset "$tmp/nonexistent.csv"
expect_error "--output: cannot open '$tmp/no/dir.json' for writing" \
    "$bin" bench eval --model m --dataset "$csv" --output "$tmp/no/dir.json"
printf 'Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3\nq,a,b,c,d\n"q2,a,b,c,d\n' >"$tmp/open.csv"
expect_error "--dataset $tmp/open.csv: line 3: the quoted field 1 that starts here never ends" \
    "$bin" bench eval --model m --dataset "$tmp/open.csv"
printf 'Question,Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3\nq,a,b,c,d\n' >"$tmp/cols.csv"
expect_error "line 1: no column 'Correct Answer'" "$bin" bench eval --model m --dataset "$tmp/cols.csv"
printf 'Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3\nq,a,b,c\n' >"$tmp/short.csv"
expect_error "line 2: 4 fields, but the header has 5" "$bin" bench eval --model m --dataset "$tmp/short.csv"
expect_ok "--reasoning-effort" "$bin" bench eval --help
expect_ok "eval --model NAME --dataset" "$bin" bench --help

# flashlm's own server takes the requests as they are (dummy weights: the
# answers are noise, but every request is answered).
"$bin" serve "$fx/tiny-qwen3-realvocab" --load-format dummy --tokenizer "$tok" --port "$port" \
    --host 127.0.0.1 --served-model-name tiny --max-model-len 512 --block-size 16 2>"$tmp/serve.log" &
server=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
"$bin" bench eval --host 127.0.0.1 --port "$port" --model tiny --dataset "$csv" --repeats 1 --max-tokens 4 --temperature 0 \
    --output "$tmp/real.json" >"$tmp/real.out" 2>"$tmp/real.err"
check "flashlm serve: exits 0" test $? -eq 0
check "flashlm serve: 9 samples, none failed" bash -c "$(declare -f line has_line); has_line 'Samples:' 9 '$tmp/real.out' &&
    has_line 'Failed requests:' 0 '$tmp/real.out'"
check "flashlm serve: every sample has a response" node -e "
const r = JSON.parse(require('fs').readFileSync('$tmp/real.json', 'utf8'));
if (r.results.some((s) => typeof s.response !== 'string' || s.error !== null || s.completion_tokens !== 4)) process.exit(1);"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
