#!/usr/bin/env bash
# vllm_flags_test.sh FLASHLM FIXTURES QWEN3_TOKENIZER - vLLM's serve command
# lines against the real binary: each line of fixtures/vllm_serve_cmdlines.txt
# is served (the server answers /health, then SIGTERM stops it with exit 0)
# or refused (exit 1, one error line naming the flag), as the line says;
# then the --config FILE.yaml cases. Prints "N passed, N failed" last.
set -u
bin=$1
fx=$2
TOK=$3
LLAMA_TOK=$(dirname "$(dirname "$TOK")")/tokenizer-llama3/models
tmp=$(mktemp -d)
T=$tmp
M=$fx/tiny-qwen3-realvocab
trap 'kill "${pid:-}" 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "$0")/expect.sh"

# an IPv6 loopback (::1) on this machine? Without one, ::1 lines are skipped.
have_ipv6=0
grep -qi '^00000000000000000000000000000001 ' /proc/net/if_inet6 2>/dev/null && have_ipv6=1
[ $have_ipv6 = 1 ] || echo "SKIP: the ::1 lines (this machine has no IPv6 loopback)"

port=$((20000 + RANDOM % 12000)) # below the ephemeral ports (32768 and up), which other tests' clients hold

fail() {
    failed=$((failed + 1))
    echo "FAIL: $1"
    sed 's/^/  | /' "$tmp/err" | head -20
}

# stop PID: SIGTERM, at most 30 s to exit (then SIGKILL); returns its exit code.
stop() {
    kill -TERM "$1" 2>/dev/null
    local i
    for i in $(seq 1 150); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.2
    done
    kill -KILL "$1" 2>/dev/null
    wait "$1"
}

# healthy: /health answers 200 within 60 s (while $pid lives)
healthy() {
    local i code=000
    for i in $(seq 1 300); do
        code=$(curl -s -g -o /dev/null -w '%{http_code}' "http://$host:$port/health" 2>/dev/null)
        [ "$code" = 200 ] && return 0
        kill -0 $pid 2>/dev/null || break
        sleep 0.2
    done
    echo "  (no /health 200 at $host:$port, got $code)" >>"$tmp/err"
    return 1
}

# serves ARGS... : start, wait for /health 200, optionally ask for model $want,
# stop with SIGTERM and expect exit 0. $host is the address to reach it at.
serves() {
    local want=$1; shift
    "$bin" serve "$@" >"$tmp/out" 2>"$tmp/err" &
    pid=$!
    local ok=1 code
    if ! healthy; then
        ok=0
    elif [ -n "$want" ]; then
        local key=()
        for a in "$@"; do [ "${prev:-}" = --api-key ] && key=(-H "authorization: Bearer $a"); prev=$a; done
        code=$(curl -s -g -o "$tmp/body" -w '%{http_code}' "${key[@]}" -H 'content-type: application/json' \
            -d "{\"model\":\"$want\",\"prompt\":\"Hello\",\"max_tokens\":2}" "http://$host:$port/v1/completions")
        if [ "$code" != 200 ] || ! grep -q "\"model\":\"" "$tmp/body"; then
            ok=0
            { echo "  (a completion for model '$want' answered $code)"; cat "$tmp/body"; } >>"$tmp/err"
        fi
    fi
    stop $pid
    local rc=$?
    pid=
    [ $rc = 0 ] || { ok=0; echo "  (exit $rc after SIGTERM)" >>"$tmp/err"; }
    return $((1 - ok))
}

while IFS= read -r line; do
    case $line in '#'* | '') continue ;; esac
    expect=${line%% :: *}
    rest=${line#* :: }
    eval "args=($rest)"
    port=$((port + 1))
    host=127.0.0.1
    prev=
    for a in "${args[@]}"; do
        if [ "$prev" = --host ]; then
            case $a in *:*) host="[$a]" ;; *) host=$a ;; esac
        fi
        prev=$a
    done
    if [ "$host" = "[::1]" ] && [ $have_ipv6 = 0 ]; then
        continue
    fi
    args+=(--load-format dummy --device cpu --port "$port")
    case $expect in
    ok | ok:*)
        want=
        [ "$expect" != ok ] && want=${expect#ok:}
        if serves "$want" "${args[@]}"; then passed=$((passed + 1)); else fail "not served: $line"; fi
        ;;
    refused:*)
        expect_error "${expect#refused:}" timeout 60 "$bin" serve "${args[@]}"
        ;;
    *) fail "bad fixture line: $line" ;;
    esac
done <"$fx/vllm_serve_cmdlines.txt"

# gpt-oss replies in the harmony format: Qwen3's parsers are refused for it
expect_error "^flashlm serve: --reasoning-parser qwen3: GptOssForCausalLM replies in the harmony format" \
    timeout 60 "$bin" serve "$fx/tiny-gpt-oss-realvocab" --load-format dummy --device cpu --tokenizer "$TOK" \
    --reasoning-parser qwen3
expect_error "^flashlm serve: --tool-call-parser hermes: GptOssForCausalLM calls tools in the harmony format" \
    timeout 60 "$bin" serve "$fx/tiny-gpt-oss-realvocab" --load-format dummy --device cpu --tokenizer "$TOK" \
    --enable-auto-tool-choice --tool-call-parser hermes
# the reasoning parser needs the tokenizer's <think> tokens (Llama-3's has none)
expect_error "^flashlm serve: --reasoning-parser qwen3: the tokenizer has no <think> and </think> tokens" \
    timeout 60 "$bin" serve "$M" --load-format dummy --device cpu --tokenizer "$LLAMA_TOK" --reasoning-parser qwen3

# ---- --config FILE.yaml ----
port=$((port + 1))
cat >"$tmp/c.yaml" <<EOF
# flags as vLLM's config files have them: either spelling, lists, booleans
model: $M
tokenizer: $TOK
load_format: dummy
device: cpu
port: $port
served-model-name:
  - first
  - second
max_model_len: 256
trust-remote-code: true
enable_prefix_caching: false
enable_auto_tool_choice: true
tool-call-parser: hermes
EOF
host=127.0.0.1
# everything from the file: the model, the port, both names
if serves second --config "$tmp/c.yaml"; then passed=$((passed + 1)); else fail "--config: not served"; fi
# the command line wins: another port and one name; the file's names are replaced
port=$((port + 1))
if serves third --config="$tmp/c.yaml" --port $port --served-model-name third; then
    passed=$((passed + 1))
else
    fail "--config with the command line over it: not served"
fi
# (and the file's 'second' is no longer a name)
port=$((port + 1))
"$bin" serve --config "$tmp/c.yaml" --port $port --served-model-name third >/dev/null 2>&1 &
pid=$!
healthy
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
    -d '{"model":"second","prompt":"Hi","max_tokens":1}' "http://127.0.0.1:$port/v1/completions")
stop $pid; pid=
if [ "$code" = 404 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: --config's names not replaced ($code)"; fi
# a model on the command line wins over the file's
expect_error "/nonexistent-model" timeout 60 "$bin" serve /nonexistent-model --config "$tmp/c.yaml" --port $((port + 50))
printf 'port: [1\n' >"$tmp/bad.yaml"
expect_error "^flashlm serve: --config $tmp/bad.yaml: line 2: not valid YAML" timeout 60 "$bin" serve "$M" --config "$tmp/bad.yaml"
printf -- '- max-model-len\n- 5\n' >"$tmp/list.yaml"
expect_error "^flashlm serve: --config $tmp/list.yaml: line 1: the file must be a mapping" timeout 60 "$bin" serve "$M" --config "$tmp/list.yaml"
printf 'port: 8000\nmax_modle_len: 5\n' >"$tmp/typo.yaml"
expect_error "^flashlm serve: --config $tmp/typo.yaml: line 2: 'max-modle-len' is not a flag" timeout 60 "$bin" serve "$M" --config "$tmp/typo.yaml"
printf 'port: [1, 2]\n' >"$tmp/two.yaml"
expect_error "line 1: 'port' takes one value, not a list" timeout 60 "$bin" serve "$M" --config "$tmp/two.yaml"
printf 'enforce-eager: maybe\n' >"$tmp/bool.yaml"
expect_error "line 1: 'enforce-eager' takes true or false" timeout 60 "$bin" serve "$M" --config "$tmp/bool.yaml"
printf 'tensor_parallel_size: 3\n' >"$tmp/tp.yaml"
expect_error "^flashlm serve: --tensor-parallel-size 3 does not divide the model's 4 attention heads" timeout 60 "$bin" serve "$M" --load-format dummy --device cpu --tokenizer "$TOK" --config "$tmp/tp.yaml"
expect_error "^flashlm serve: --config: /nonexistent.yaml" timeout 60 "$bin" serve "$M" --config /nonexistent.yaml

# ---- CORS: vLLM's defaults (anything) and an explicit list ----
port=$((port + 1))
"$bin" serve "$M" --load-format dummy --device cpu --tokenizer "$TOK" --port $port --api-key k \
    --allowed-origins '["http://a.example"]' --allowed-methods '["POST"]' >/dev/null 2>"$tmp/err" &
pid=$!
healthy
pre() { # pre ORIGIN METHOD: the preflight's status and headers
    curl -s -i -X OPTIONS -H "Origin: $1" -H "Access-Control-Request-Method: $2" \
        -H 'Access-Control-Request-Headers: authorization' "http://127.0.0.1:$port/v1/completions" | tr -d '\r'
}
expect_ok '^access-control-allow-origin: http://a\.example$' pre http://a.example POST
expect_ok '^HTTP/1\.1 400 ' pre http://b.example POST
expect_ok '^Disallowed CORS method' pre http://a.example DELETE
get() { curl -s -i -H "Origin: $1" "http://127.0.0.1:$port/health" | tr -d '\r'; }
expect_ok '^access-control-allow-origin: http://a\.example$' get http://a.example
expect_ok '^HTTP/1\.1 200 ' get http://b.example
if get http://b.example | grep -qi '^access-control'; then
    failed=$((failed + 1)); echo "FAIL: CORS lines for an origin not allowed"
else
    passed=$((passed + 1))
fi
stop $pid; pid=
port=$((port + 1))
"$bin" serve "$M" --load-format dummy --device cpu --tokenizer "$TOK" --port $port >/dev/null 2>"$tmp/err" &
pid=$!
healthy
expect_ok '^access-control-allow-origin: \*$' pre http://any.example GET
stop $pid; pid=

# ---- the rest of the command line ----
expect_ok '^flashlm [0-9]+\.[0-9]+\.[0-9]+$' "$bin" serve --version
expect_ok '^flashlm [0-9]+\.[0-9]+\.[0-9]+$' "$bin" --version
expect_ok '^flashlm [0-9]+\.[0-9]+\.[0-9]+$' "$bin" generate --version
for f in --dtype --kv-cache-dtype --tensor-parallel-size --max-logprobs --generation-config \
         --enable-prefix-caching --config --enable-auto-tool-choice --tool-call-parser --reasoning-parser; do
    expect_ok "$f" "$bin" serve --help
done
# generate takes the engine flags too (not the server's)
expect_ok '"token_ids"' "$bin" generate "$M" --load-format dummy --device cpu --prompt-ids 5,6 --max-tokens 2 \
    -tp 1 --max_model_len 64 --trust-remote-code --dtype float32 --swap-space 4
expect_error "^flashlm generate: --tensor-parallel-size 3 does not divide the model's 4 attention heads" \
    "$bin" generate "$M" --load-format dummy --device cpu --prompt-ids 5 -tp 3
expect_error "^flashlm generate: --tensor-parallel-size: 0 is out of range" "$bin" generate "$M" --prompt-ids 5 -tp 0
expect_ok '"token_ids"' "$bin" generate "$M" --load-format dummy --device cpu --prompt-ids 5,6 --max-tokens 2 -tp 2
expect_error "^flashlm generate: --logprobs 5: more than --max-logprobs 3" \
    "$bin" generate "$M" --load-format dummy --prompt-ids 5 --logprobs 5 --max-logprobs 3
expect_error "^flashlm generate: --disable-log-requests: a flag of flashlm serve" "$bin" generate "$M" --prompt-ids 5 --disable-log-requests
# an accepted flag says why it changes nothing
expect_ok 'INFO flashlm: --swap-space 4 changes nothing here: there is no CPU swap' \
    bash -c '"$0" generate "$1" --load-format dummy --device cpu --prompt-ids 5 --max-tokens 1 --swap-space 4 2>&1' "$bin" "$M"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
