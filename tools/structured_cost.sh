#!/usr/bin/env bash
# structured_cost.sh TOKENIZER_DIR [FLASHLM] - what structured output costs a
# token on this machine's GPU: `flashlm serve $MODEL --load-format dummy`
# (MODEL: Qwen/Qwen3-0.6B unless set) and `flashlm bench serve` (random prompts of 128 tokens, 64 out: too
# few for the schema's end, so every token is constrained) at concurrency 1
# and 64, each without and with a JSON schema of 20 properties in
# --extra-body (response_format json_schema, compact separators as
# structured_outputs.disable_any_whitespace asks). Prints the four mean
# TPOTs and the schema's ratio to the plain run at each concurrency.
set -uo pipefail
cd "$(dirname "$0")/.."
tok=$1
flashlm=${2:-build/flashlm}
model=${MODEL:-Qwen/Qwen3-0.6B}
port=8101
props=""
for i in $(seq 0 19); do
  case $((i % 4)) in
    0) p="{\"type\": \"string\", \"maxLength\": 12}" ;;
    1) p="{\"type\": \"integer\", \"minimum\": 0, \"maximum\": 9999}" ;;
    2) p="{\"type\": \"boolean\"}" ;;
    3) p="{\"enum\": [\"red\", \"green\", \"blue\"]}" ;;
  esac
  props+="${props:+, }\"field_$i\": $p"
done
schema="{\"type\": \"object\", \"properties\": {$props}, \"required\": [$(seq -s, 0 19 | sed 's/\([0-9]*\)/"field_\1"/g')]}"
body="{\"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"name\": \"cost\", \"schema\": $schema}}, \"structured_outputs\": {\"disable_any_whitespace\": true}}"
"$flashlm" serve "$model" --load-format dummy --tokenizer "$tok" --port $port --host 127.0.0.1 \
  >/tmp/structured_cost-server.log 2>&1 &
server=$!
for _ in $(seq 240); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  kill -0 $server 2>/dev/null || { cat /tmp/structured_cost-server.log; exit 1; }
  sleep 0.5
done
tpot() { # tpot CONCURRENCY PROMPTS [EXTRA BODY]
  "$flashlm" bench serve --port $port --host 127.0.0.1 --model "$model" --tokenizer "$tok" \
    --dataset-name random --random-input-len 128 --random-output-len 64 --num-prompts "$2" \
    --max-concurrency "$1" --seed 0 ${3:+--extra-body "$3"} | awk '/Mean TPOT/ { print $4 }'
}
rc=0
for c in 1 64; do
  n=$((c == 1 ? 16 : 256))
  plain=$(tpot $c $n)
  constrained=$(tpot $c $n "$body")
  [ -n "$plain" ] && [ -n "$constrained" ] || rc=1
  echo "concurrency $c: mean TPOT plain $plain ms, with the 20-property schema $constrained ms," \
       "ratio $(awk -v a="$constrained" -v b="$plain" 'BEGIN { if (b > 0) printf "%.3f", a / b }')"
done
kill $server
wait $server
exit $rc
