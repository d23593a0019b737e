#!/usr/bin/env bash
# gpu_cli_test.sh FLASHLM - the real binary on a GPU machine (run by
# tools/gpu_check.sh): the GPU is found and described, the README's job
# runs on it, seeded sampling repeats, and the GPU's start-up errors are one
# clear line (a backend that cannot run there, too little memory for the
# KV cache, more tensor-parallel ranks than GPUs, no NCCL). Prints "N passed, N failed" last; exit 1 on any failure.
set -u
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/expect.sh"
m=(Qwen/Qwen3-0.6B --load-format dummy)

expect_ok 'this model on the GPU, compute capability' "$bin" info "${m[@]}"
expect_ok '"token_ids":\[([0-9]+,){15}[0-9]+\],"finish_reason":"length"' \
    "$bin" generate "${m[@]}" --prompt-ids 9707,11,1879 --max-tokens 16 --temperature 0
sampled=(generate "${m[@]}" --prompt-ids 9707,11,1879 --max-tokens 8 --temperature 0.8 --top-p 0.9 --top-k 50 --seed 3)
"$bin" "${sampled[@]}" >"$tmp/first" 2>/dev/null
expect_ok "^$(sed 's/[][\\.*^$(){}?+|]/\\&/g' "$tmp/first")\$" "$bin" "${sampled[@]}"
expect_ok '"token_ids":\[([0-9]+,){3}[0-9]+\]' "$bin" generate tests/fixtures/tiny-qwen3 --device cpu \
    --prompt-ids 1,2,3 --max-tokens 4 --temperature 0
# the backend start-up logs is the runner's own: auto takes hopper here, and
# the portable one runs when named (by flag or environment)
expect_ok '^INFO flashlm: attention backend hopper$' \
    bash -c '"$0" generate "${@}" --prompt-ids 1 --max-tokens 2 2>&1 >/dev/null' "$bin" "${m[@]}"
expect_ok '^INFO flashlm: attention backend paged$' \
    bash -c '"$0" generate "${@}" --prompt-ids 1 --max-tokens 2 --attention-backend paged 2>&1 >/dev/null' "$bin" "${m[@]}"
expect_ok '^INFO flashlm: attention backend paged$' \
    bash -c 'FLASHLM_ATTENTION_BACKEND=paged "$0" generate "${@}" --prompt-ids 1 --max-tokens 2 2>&1 >/dev/null' "$bin" "${m[@]}"
expect_error "attention backend 'cpu' cannot run this model: runs on CPU, not CUDA \(backends that can: hopper, paged\)" \
    "$bin" generate "${m[@]}" --prompt-ids 1 --attention-backend cpu
# vLLM's batch defaults on an H200 (70 GiB or more): offline 16384 tokens a step, 1024 sequences
expect_ok '^INFO flashlm: max-num-batched-tokens 16384, max-num-seqs 1024$' \
    bash -c '"$0" generate "${@}" --prompt-ids 1 --max-tokens 2 2>&1 >/dev/null' "$bin" "${m[@]}"
# gpt-oss: both kernel sets take its windows and sinks, the runner its experts
expect_ok '^attention backend at start-up: hopper$' "$bin" info openai/gpt-oss-20b --load-format dummy
expect_ok '^INFO flashlm: attention backend paged$' \
    bash -c '"$0" generate "$1" --prompt-ids 1,2,3 --max-tokens 4 --attention-backend paged 2>&1 >/dev/null' \
    "$bin" tests/fixtures/tiny-gpt-oss
expect_error 'no GPU memory left for the KV cache: .* raise --gpu-memory-utilization \(now 0.01\)' \
    "$bin" generate "${m[@]}" --prompt-ids 1 --gpu-memory-utilization 0.01

# tensor parallelism over NCCL: no machine here has 16 GPUs, so 16 ranks are
# refused saying how many are visible, and a missing NCCL naming its path
expect_error 'tensor-parallel-size 16 needs 16 GPUs, and [0-9]+ (is|are) visible' \
    "$bin" generate "${m[@]}" --prompt-ids 1 -tp 16
expect_error 'cannot load NCCL \(/nonexistent/libnccl.so.2\): .* FLASHLM_NCCL_SO_PATH' \
    env FLASHLM_NCCL_SO_PATH=/nonexistent/libnccl.so.2 "$bin" generate "${m[@]}" --prompt-ids 1 -tp 2

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
