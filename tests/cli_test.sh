#!/usr/bin/env bash
# cli_test.sh FLASHLM FIXTURES QWEN3_TOKENIZER - the real binary, run as a user would.
# Each bad input must exit 1 with exactly one line on stderr naming the
# problem; good runs must exit 0 with the expected output. Prints
# "N passed, N failed" last.
set -u
bin=$1
fx=$2
tok=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/expect.sh"

q3=$fx/tiny-qwen3
mkdir "$tmp/notemplate"
cp "$tok/tokenizer.json" "$tmp/notemplate/"

# ---- working runs ----
expect_ok 'parameters: +596049920 \(596\.0M\)' "$bin" info Qwen/Qwen3-0.6B --load-format dummy
expect_ok 'KV bytes per token: +114688 ' "$bin" info --model Qwen/Qwen3-0.6B --load-format=dummy
expect_ok 'model\.layers\.27\.mlp\.down_proj\.weight +BF16 +\[1024, 3072\]' \
    "$bin" info Qwen/Qwen3-0.6B --load-format dummy
expect_ok 'llama3 scaling' "$bin" info "$fx/tiny-llama"
# gpt-oss-20b's published size: 20.91B parameters
expect_ok 'parameters: +20914757184 \(20914\.8M\)' "$bin" info openai/gpt-oss-20b --load-format dummy
expect_ok 'model\.layers\.23\.mlp\.experts\.gate_up_proj +BF16 +\[32, 2880, 5760\]' \
    "$bin" info openai/gpt-oss-20b --load-format dummy
expect_ok 'yarn \(factor 32, original context 4096' "$bin" info openai/gpt-oss-20b --load-format dummy
expect_ok '^usage: flashlm generate' "$bin" generate --help
expect_ok '^\{"prompt":0,"index":0,"token_ids":\[[0-9]+(,[0-9]+){7}\],"finish_reason":"length"\}$' \
    "$bin" generate "$q3" --prompt-ids 5,6,7 --max-tokens 8 --temperature 0
# the batch defaults on the CPU, and a flag over them
expect_ok '^INFO flashlm: max-num-batched-tokens 2048, max-num-seqs 256$' \
    bash -c '"$0" generate "$1" --device cpu --prompt-ids 5 --max-tokens 1 2>&1 >/dev/null' "$bin" "$q3"
expect_ok '^INFO flashlm: max-num-batched-tokens 512, max-num-seqs 3$' \
    bash -c '"$0" generate "$1" --device cpu --prompt-ids 5 --max-tokens 1 --max-num-batched-tokens 512 \
             --max-num-seqs 3 2>&1 >/dev/null' "$bin" "$q3"
expect_ok '"token_ids":\[[0-9]+(,[0-9]+){3}\]' "$bin" generate Qwen/Qwen3-0.6B --load-format dummy \
    --prompt-ids 9707,11,1879 --max-tokens 4 --temperature 0
expect_ok '^\{"prompt":0,"index":0,"token_ids":\[[0-9,]+\],"finish_reason":"length","text":".*"\}$' \
    "$bin" generate "$fx/tiny-qwen3-realvocab" --load-format dummy --tokenizer "$tok" --prompt 'Hi there' \
    --max-tokens 4 --temperature 0

expect_ok '"logprobs":\[\{"token_id":[0-9]+,"logprob":-[0-9.]+,"top_logprobs":\[\{"token_id":[0-9]+,"logprob":-?[0-9.]+\},\{' \
    "$bin" generate "$q3" --prompt-ids 5,6,7 --max-tokens 2 --temperature 0 --logprobs 2
expect_ok '^\{"prompt":0,"index":1,' "$bin" generate "$q3" --prompt-ids 5,6,7 --max-tokens 2 --n 2 --seed 3

# A prompt's output does not depend on what else is in the batch.
"$bin" generate "$q3" --prompt-ids 5,6,7 --max-tokens 12 --block-size 16 --temperature 0 |
    sed 's/"prompt":0/"prompt":1/' >"$tmp/alone"
printf '[100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115, 116]\n\n[5, 6, 7]\n' >"$tmp/prompts"
"$bin" generate "$q3" --prompts-file "$tmp/prompts" --max-tokens 12 --block-size 16 \
    --max-num-batched-tokens 5 --temperature 0 >"$tmp/batched"
if [ "$(sed -n 2p "$tmp/batched")" = "$(cat "$tmp/alone")" ] && [ "$(wc -l <"$tmp/batched")" -eq 2 ]; then
    passed=$((passed + 1))
else
    failed=$((failed + 1))
    echo "FAIL: batched output differs from the prompt run alone"
fi

# ---- bad flags and arguments ----
expect_error "unknown command 'frobnicate'" "$bin" frobnicate
expect_error "^flashlm info: no model given" "$bin" info
expect_error "unknown option '--bogus'" "$bin" info "$q3" --bogus
expect_error "option '--max-tokens' needs a value" "$bin" generate "$q3" --prompt-ids 1 --max-tokens
expect_error "--max-tokens: 'ten' is not an integer" "$bin" generate "$q3" --prompt-ids 1 --max-tokens ten
expect_error "--block-size: 48 is not one of 16, 32, 64, 128" "$bin" generate "$q3" --prompt-ids 1 --block-size 48
expect_error "--seed: -1 is out of range" "$bin" info "$q3" --seed -1
expect_error "--load-format: 'gguf' is not one of auto, safetensors, dummy" "$bin" info "$q3" --load-format gguf
expect_error "--prompt-ids: 'x' is not a token id" "$bin" generate "$q3" --prompt-ids 1,x
expect_error "prompt 1: prompt token 0 is 99999, outside the vocabulary \[0, 384\)" "$bin" generate "$q3" --prompt-ids 99999
expect_error "no prompts" "$bin" generate "$q3"
expect_error "prompt 1: this request needs 601 tokens \(1 prompt \+ 600 max_tokens\), more than max_model_len 512" \
    "$bin" generate "$q3" --prompt-ids 1 --max-tokens 600
expect_error "prompt 1: this request needs 3 KV blocks, more than the 2 the cache holds" \
    "$bin" generate "$q3" --prompt-ids 1 --max-tokens 40 --block-size 16 --num-gpu-blocks-override 2
expect_error "--temperature: 'hot' is not a number" "$bin" generate "$q3" --prompt-ids 1 --temperature hot
expect_error "--top-p: 0 is out of range" "$bin" generate "$q3" --prompt-ids 1 --top-p 0
expect_error "text prompts and stop strings need a tokenizer" "$bin" generate "$q3" --prompt hello
expect_error "--prompts-file: /nonexistent/p.txt: No such file" "$bin" generate "$q3" --prompts-file /nonexistent/p.txt
printf '[1, 2, 3]\n[4, five]\n' >"$tmp/badprompts"
expect_error "badprompts:2: 'five' is not a token id" "$bin" generate "$q3" --prompts-file "$tmp/badprompts"
expect_error "unexpected argument 'extra'" "$bin" info "$q3" extra
expect_error "model '/nonexistent/m': no such directory" "$bin" info /nonexistent/m
expect_error "runs with --load-format dummy" "$bin" generate Qwen/Qwen3-0.6B --prompt-ids 1
expect_error "unknown attention backend 'flash' \(this build has: auto, hopper, paged, cpu\)" \
    "$bin" generate "$q3" --prompt-ids 1 --attention-backend flash
# No GPU here (CI): asking for one is one clear error, and so is a bad name.
expect_error "--device cuda: (no CUDA GPU is usable|this flashlm was built without CUDA)" \
    "$bin" generate "$q3" --prompt-ids 1 --device cuda
expect_error "--device: 'tpu' is not one of auto, cuda, cpu" "$bin" generate "$q3" --prompt-ids 1 --device tpu
expect_error "attention backend 'paged' cannot run this model: runs on CUDA, not CPU" \
    "$bin" generate "$q3" --prompt-ids 1 --attention-backend paged
expect_error "unknown attention backend 'fa4'" env FLASHLM_ATTENTION_BACKEND=fa4 "$bin" generate "$q3" --prompt-ids 1
expect_ok '"token_ids":\[' env FLASHLM_ATTENTION_BACKEND=cpu "$bin" generate "$q3" --prompt-ids 1 --max-tokens 2
# the backend start-up logs is the runner's own (the one it calls)
expect_ok '^INFO flashlm: attention backend cpu$' \
    bash -c '"$0" generate "$1" --prompt-ids 1 --max-tokens 1 2>&1 >/dev/null' "$bin" "$q3"
expect_ok '^INFO flashlm: attention backend cpu$' \
    bash -c 'FLASHLM_ATTENTION_BACKEND=auto "$0" generate "$1" --prompt-ids 1 --max-tokens 1 2>&1 >/dev/null' "$bin" "$q3"
expect_ok '^  cpu +CPU; head sizes any even; block sizes 16, 32, 64, 128; causal' "$bin" info "$q3"
expect_ok '^attention backend at start-up: cpu$' "$bin" info "$q3"

# ---- tokenize ----
text=$'Hello, wörld 😀 <|im_end|>\n  x=1'
printf '%s' "$text" | "$bin" tokenize "$tok" >"$tmp/ids"
if [ "$(tr -d '\n' <"$tmp/ids" | "$bin" tokenize "$tok" --decode)" = "$text" ] &&
   grep -qE '^\[[0-9]+(, [0-9]+)+\]$' "$tmp/ids" && grep -q '151645' "$tmp/ids"; then
    passed=$((passed + 1))
else
    failed=$((failed + 1))
    echo "FAIL: tokenize then --decode does not give the text back"
fi
echo '[151644, 9707, 151645]' >"$tmp/sp"
expect_ok '^Hello$' sh -c "\"$bin\" tokenize \"$tok\" --decode --skip-special-tokens <\"$tmp/sp\"; echo"
echo '[{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}]' >"$tmp/msgs"
expect_ok '^<think>$' sh -c "\"$bin\" tokenize \"$tok\" --apply-chat-template --render-only --chat-template-kwargs '{\"enable_thinking\": false}' <\"$tmp/msgs\""
expect_ok '^\[151644, [0-9, ]+, 151644, 77091, 198\]$' sh -c "\"$bin\" tokenize \"$tok\" --apply-chat-template <\"$tmp/msgs\""
printf '{{ messages[0].content }}!' >"$tmp/tpl.jinja"
expect_ok '^S!$' sh -c "\"$bin\" tokenize \"$tok\" --apply-chat-template --render-only --chat-template \"$tmp/tpl.jinja\" <\"$tmp/msgs\"; echo"
printf '{%% for m in messages %%}{{ m.content | wordwrap }}{%% endfor %%}' >"$tmp/bad.jinja"
expect_error "bad.jinja: chat template cannot be used .*: line 1: the filter 'wordwrap' is not supported" \
    sh -c "\"$bin\" tokenize \"$tok\" --apply-chat-template --chat-template \"$tmp/bad.jinja\" <\"$tmp/msgs\""
printf '{{ raise_exception("no system role") }}' >"$tmp/raise.jinja"
expect_error "chat template: line 1: the chat template raised an error: no system role" \
    sh -c "\"$bin\" tokenize \"$tok\" --apply-chat-template --chat-template \"$tmp/raise.jinja\" <\"$tmp/msgs\""
expect_error "--chat-template: /nonexistent.jinja: cannot open" \
    sh -c "\"$bin\" tokenize \"$tok\" --apply-chat-template --chat-template /nonexistent.jinja <\"$tmp/msgs\""
expect_error "--chat-template-kwargs: not a JSON object" \
    sh -c "\"$bin\" tokenize \"$tok\" --apply-chat-template --chat-template-kwargs '[1]' <\"$tmp/msgs\""
expect_error "stdin is not a JSON array of messages" sh -c "echo '{}' | \"$bin\" tokenize \"$tok\" --apply-chat-template"
expect_error "--decode: element 1 is not a token id" sh -c "echo '[1, \"x\"]' | \"$bin\" tokenize \"$tok\" --decode"
expect_error "exclude each other" "$bin" tokenize "$tok" --decode --apply-chat-template
expect_error "/nonexistent/tokenizer.json: cannot open" sh -c "echo x | \"$bin\" tokenize /nonexistent"
expect_error "the tokenizer has no chat template" sh -c "echo '[]' | \"$bin\" tokenize \"$tmp/notemplate\" --apply-chat-template"

# ---- bad model files ----
mkdir "$tmp/m"
cp "$q3"/* "$tmp/m/"
head -c 100000 "$q3/model.safetensors" >"$tmp/m/model.safetensors"
expect_error "m/model.safetensors: tensor '.*': data_offsets .* \(file truncated\?\)" "$bin" info "$tmp/m"
cp "$q3/model.safetensors" "$tmp/m/"
sed -i 's/Qwen3ForCausalLM/MambaForCausalLM/' "$tmp/m/config.json"
expect_error "m/config.json: field 'architectures' names 'MambaForCausalLM', which is not supported" \
    "$bin" generate "$tmp/m" --prompt-ids 1
printf 'not json' >"$tmp/m/config.json"
expect_error "m/config.json: malformed JSON" "$bin" info "$tmp/m"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
