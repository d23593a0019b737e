// metrics_test.mjs FLASHLM MODEL_DIR TOKENIZER_DIR - /metrics of a real
// `flashlm serve` read the way vLLM's Grafana dashboard reads it, and the
// periodic stat line on stderr. The Prometheus text is parsed here (not by
// the server's code); histogram_quantile and rate are Prometheus's
// definitions, applied to the difference of two scrapes around a known set
// of requests: a "length" one, a "stop" one, an n = 2 one and a streamed
// one, whose usage the counters must add up to. FLASHLM_LOG_STATS_INTERVAL
// (a variable only tests set) makes the stat line come every 0.5 s.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import OpenAI from "openai";
import { sleep, waitReady } from "./serve_util.mjs";

const [bin, modelDir, tokDir] = process.argv.slice(2);
const port = 24000 + (process.pid % 4000) * 2;
const base = `http://127.0.0.1:${port}`;
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "none", maxRetries: 0 });
const MODEL = "tiny-metrics";
let server;
let stderr = "";

before(async () => {
  server = spawn(bin, ["serve", modelDir, "--load-format", "dummy", "--tokenizer", tokDir,
    "--port", String(port), "--host", "127.0.0.1", "--served-model-name", MODEL,
    "--max-model-len", "512", "--block-size", "16"],
    { stdio: ["ignore", "inherit", "pipe"], env: { ...process.env, FLASHLM_LOG_STATS_INTERVAL: "0.5" } });
  server.stderr.on("data", (d) => { stderr += d; process.stderr.write(d); });
  await waitReady(base);
});

after(() => {
  if (server.exitCode === null) server.kill("SIGKILL");
});

// ---- the text format (version 0.0.4) ----

function parseLabels(s) {
  const labels = {};
  const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)/y;
  let m;
  while (re.lastIndex < s.length && (m = re.exec(s)))
    labels[m[1]] = m[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
  assert.equal(re.lastIndex, s.length, `bad labels: {${s}}`);
  return labels;
}

function parseValue(s) {
  if (s === "+Inf") return Infinity;
  if (s === "-Inf") return -Infinity;
  if (s === "NaN") return NaN;
  assert.match(s, /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/, `bad value ${s}`);
  return Number(s);
}

// { types: name -> type, samples: [{ name, labels, value }] }; every sample
// must belong to a family declared by a TYPE line before it.
function parse(text) {
  const types = new Map();
  const samples = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    let m;
    if ((m = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line))) {
      assert.ok(!types.has(m[1]), `${m[1]} declared twice`);
      types.set(m[1], m[2]);
      continue;
    }
    if (line.startsWith("# HELP ") || line.startsWith("#")) continue;
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `bad sample line: ${line}`);
    const name = m[1];
    const family = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, "");
    assert.ok(types.has(family), `${name} has no TYPE line`);
    if (types.get(family) === "histogram") assert.notEqual(family, name, `${name}: a histogram sample needs a suffix`);
    if (types.get(family) === "counter") assert.match(name, /_total$/);
    samples.push({ name, labels: parseLabels(m[2] ?? ""), value: parseValue(m[3]) });
  }
  return { types, samples };
}

async function scrape() {
  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type"), /^text\/plain/);
  return parse(await res.text());
}

const matches = (labels, sel) => Object.entries(sel).every(([k, v]) => labels[k] === v);
const sel = { model_name: MODEL };

// sum(name{sel}) over the label sets that match
function sum(s, name, extra = {}) {
  const hits = s.samples.filter((x) => x.name === name && matches(x.labels, { ...sel, ...extra }));
  assert.ok(hits.length > 0, `no ${name}{model_name="${MODEL}"}`);
  return hits.reduce((a, x) => a + x.value, 0);
}

// sum by (le) (name_bucket{sel}): [[le, count], ...] in increasing le
function bucketsByLe(s, name) {
  const by = new Map();
  for (const x of s.samples)
    if (x.name === `${name}_bucket` && matches(x.labels, sel)) {
      assert.ok("le" in x.labels);
      const le = parseValue(x.labels.le);
      by.set(le, (by.get(le) ?? 0) + x.value);
    }
  return [...by.entries()].sort((a, b) => a[0] - b[0]);
}

// rate()'s numerator: the increase of a counter between two scrapes
// (monotonic: no resets within one server's life)
function increase(s0, s1, name, extra) {
  const d = sum(s1, name, extra) - sum(s0, name, extra);
  assert.ok(d >= 0, `${name} went down`);
  return d;
}

// Prometheus's histogram_quantile over cumulative buckets (promql/quantile.go):
// the rank q * total, the first bucket reaching it, linear inside it (the
// first bucket's lower edge 0); in the +Inf bucket, the last finite bound.
function histogramQuantile(q, buckets) {
  assert.ok(buckets.length >= 2 && buckets.at(-1)[0] === Infinity, "needs a +Inf bucket");
  for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i][1] >= buckets[i - 1][1], "buckets must be cumulative");
  const total = buckets.at(-1)[1];
  if (total === 0) return NaN;
  const rank = q * total;
  let i = buckets.findIndex(([, c]) => c >= rank);
  if (i === buckets.length - 1) return buckets.at(-2)[0];
  const [hi, cHi] = buckets[i];
  const [lo, cLo] = i === 0 ? [0, 0] : buckets[i - 1];
  return lo + (hi - lo) * (rank - cLo) / (cHi - cLo);
}

function deltaBuckets(s0, s1, name) {
  const b0 = new Map(bucketsByLe(s0, name)), b1 = bucketsByLe(s1, name);
  return b1.map(([le, c]) => [le, c - (b0.get(le) ?? 0)]);
}

// ---- the test ----

test("the dashboard's queries over a known set of requests", async () => {
  const s0 = await scrape();
  // every histogram: cumulative buckets with le, +Inf equal to _count
  for (const [name, type] of s0.types) {
    if (type !== "histogram") continue;
    const b = bucketsByLe(s0, name);
    assert.equal(b.at(-1)[0], Infinity, `${name} has no +Inf bucket`);
    assert.equal(b.at(-1)[1], sum(s0, `${name}_count`));
  }
  const t0 = Date.now();
  const seqs = []; // { prompt, completion, reason, maxTokens, ms }
  const timed = async (fn) => { const t = Date.now(); const r = await fn(); return [r, Date.now() - t]; };

  const [a, msA] = await timed(() => client.completions.create({ model: MODEL, prompt: "The metrics say",
    temperature: 0, max_tokens: 4, ignore_eos: true }));
  assert.equal(a.choices[0].finish_reason, "length");
  seqs.push({ prompt: a.usage.prompt_tokens, completion: 4, reason: "length", maxTokens: 4, ms: msA });

  // the same greedy prompt stops at the text it produced
  assert.ok(a.choices[0].text.length > 0);
  const [b, msB] = await timed(() => client.completions.create({ model: MODEL, prompt: "The metrics say",
    temperature: 0, max_tokens: 20, ignore_eos: true, stop: [a.choices[0].text] }));
  assert.equal(b.choices[0].finish_reason, "stop");
  seqs.push({ prompt: b.usage.prompt_tokens, completion: b.usage.completion_tokens, reason: "stop", maxTokens: 20, ms: msB });

  const [c, msC] = await timed(() => client.completions.create({ model: MODEL, prompt: "Two of them",
    temperature: 0.8, seed: 3, n: 2, max_tokens: 6, ignore_eos: true }));
  for (const ch of c.choices) assert.equal(ch.finish_reason, "length");
  // usage counts the prompt once; the engine ran it for each of the n sequences, as vLLM's counters count
  seqs.push({ prompt: c.usage.prompt_tokens, completion: 6, reason: "length", maxTokens: 6, ms: msC, n: 2 });
  seqs.push({ prompt: c.usage.prompt_tokens, completion: 6, reason: "length", maxTokens: 6, ms: msC });
  assert.equal(c.usage.completion_tokens, 12);

  let usage = null, reason = null;
  const [, msD] = await timed(async () => {
    const stream = await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "Hi" }],
      max_tokens: 5, ignore_eos: true, stream: true, stream_options: { include_usage: true } });
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      if (chunk.choices[0]?.finish_reason) reason = chunk.choices[0].finish_reason;
    }
  });
  assert.equal(reason, "length");
  seqs.push({ prompt: usage.prompt_tokens, completion: 5, reason: "length", maxTokens: 5, ms: msD });

  await sleep(200); // the engine thread publishes its stats after the step
  const s1 = await scrape();
  const wallSeconds = (Date.now() - t0) / 1000;

  // the labels the dashboard filters on, and the gauges at rest
  assert.equal(sum(s1, "vllm:num_requests_running"), 0);
  assert.equal(sum(s1, "vllm:num_requests_waiting"), 0);
  assert.equal(sum(s1, "vllm:kv_cache_usage_perc"), 0);
  assert.equal(sum(s1, "vllm:gpu_cache_usage_perc"), 0);
  assert.equal(s1.types.get("vllm:num_requests_running"), "gauge");
  assert.equal(s1.types.get("vllm:prompt_tokens_total"), "counter");
  assert.equal(s1.types.get("vllm:e2e_request_latency_seconds"), "histogram");
  const info = s1.samples.find((x) => x.name === "vllm:cache_config_info");
  assert.equal(info.labels.block_size, "16");
  assert.equal(info.value, 1);

  // rate(): counters rose by what the requests used
  const promptSum = seqs.reduce((t, s) => t + s.prompt, 0);
  const genSum = seqs.reduce((t, s) => t + s.completion, 0);
  assert.equal(increase(s0, s1, "vllm:prompt_tokens_total"), promptSum);
  assert.equal(increase(s0, s1, "vllm:generation_tokens_total"), genSum);
  assert.ok(increase(s0, s1, "vllm:prompt_tokens_total") / wallSeconds > 0);
  assert.equal(increase(s0, s1, "vllm:request_success_total", { finished_reason: "stop" }), 1);
  assert.equal(increase(s0, s1, "vllm:request_success_total", { finished_reason: "length" }), seqs.length - 1);
  assert.equal(increase(s0, s1, "vllm:request_success_total", { finished_reason: "abort" }), 0);
  assert.equal(increase(s0, s1, "vllm:request_success_total"), seqs.length);
  assert.ok(increase(s0, s1, "vllm:prefix_cache_queries_total") >= increase(s0, s1, "vllm:prefix_cache_hits_total"));
  assert.equal(increase(s0, s1, "vllm:num_preemptions_total"), 0);

  // per-request histograms: one observation a sequence, sums of what each had
  const count = (n) => increase(s0, s1, `${n}_count`), total = (n) => increase(s0, s1, `${n}_sum`);
  for (const h of ["vllm:e2e_request_latency_seconds", "vllm:time_to_first_token_seconds",
    "vllm:request_queue_time_seconds", "vllm:request_prefill_time_seconds", "vllm:request_decode_time_seconds",
    "vllm:request_inference_time_seconds", "vllm:request_prompt_tokens", "vllm:request_generation_tokens",
    "vllm:request_params_max_tokens", "vllm:request_time_per_output_token_seconds"])
    assert.equal(count(h), seqs.length, h);
  assert.equal(total("vllm:request_prompt_tokens"), promptSum);
  assert.equal(total("vllm:request_generation_tokens"), genSum);
  assert.equal(total("vllm:request_params_max_tokens"), seqs.reduce((t, s) => t + s.maxTokens, 0));
  assert.equal(count("vllm:request_params_n"), seqs.length - 1);
  assert.equal(total("vllm:request_params_n"), seqs.length);
  // a token after the first is one inter-token latency (and the older name has the same)
  assert.equal(count("vllm:inter_token_latency_seconds"), genSum - seqs.length);
  assert.equal(count("vllm:time_per_output_token_seconds"), genSum - seqs.length);
  assert.equal(total("vllm:time_per_output_token_seconds"), total("vllm:inter_token_latency_seconds"));
  // iteration tokens: every prompt and generated token in some step
  assert.equal(total("vllm:iteration_tokens_total"), promptSum + genSum);

  // the phases from one set of timestamps: queue + prefill is TTFT,
  // prefill + decode is inference, and e2e holds queue and inference
  const near = (x, y, what) => assert.ok(Math.abs(x - y) < 1e-6, `${what}: ${x} vs ${y}`);
  near(total("vllm:request_queue_time_seconds") + total("vllm:request_prefill_time_seconds"),
    total("vllm:time_to_first_token_seconds"), "queue + prefill = TTFT");
  near(total("vllm:request_prefill_time_seconds") + total("vllm:request_decode_time_seconds"),
    total("vllm:request_inference_time_seconds"), "prefill + decode = inference");
  assert.ok(total("vllm:e2e_request_latency_seconds") + 1e-9 >=
    total("vllm:request_queue_time_seconds") + total("vllm:request_inference_time_seconds"));
  near(total("vllm:request_decode_time_seconds") / 1, total("vllm:inter_token_latency_seconds"),
    "the decode phases are the inter-token gaps");

  // histogram_quantile(q, sum by (le) (rate(X_bucket{model_name}[...]))): the
  // server's e2e is inside each client's, so the p100 is at most the bound
  // of the bucket that holds the slowest client latency, and q rises with q
  const e2e = deltaBuckets(s0, s1, "vllm:e2e_request_latency_seconds");
  const slowest = Math.max(...seqs.map((s) => s.ms)) / 1000;
  const bound = e2e.find(([le]) => le >= slowest)[0];
  const qs = [0.5, 0.9, 0.99, 1].map((q) => histogramQuantile(q, e2e));
  for (let i = 0; i < qs.length; i++) {
    assert.ok(qs[i] >= 0 && qs[i] <= bound, `e2e p${qs[i]} within (0, ${bound}]`);
    if (i) assert.ok(qs[i] >= qs[i - 1]);
  }
  // the dashboard's mean: rate(_sum) / rate(_count)
  assert.ok(total("vllm:e2e_request_latency_seconds") / count("vllm:e2e_request_latency_seconds") <= slowest);
  for (const h of ["vllm:time_to_first_token_seconds", "vllm:time_per_output_token_seconds",
    "vllm:request_prompt_tokens", "vllm:request_generation_tokens"])
    assert.ok(histogramQuantile(0.99, deltaBuckets(s0, s1, h)) >= 0, h);
  // token counts are exact: the p100 of generated tokens lies in the bucket of the longest
  const gen = deltaBuckets(s0, s1, "vllm:request_generation_tokens");
  const maxGen = Math.max(...seqs.map((s) => s.completion));
  const upper = gen.find(([le]) => le >= maxGen)[0];
  const lower = gen.filter(([le]) => le < maxGen).at(-1)?.[0] ?? 0;
  const p100 = histogramQuantile(1, gen);
  assert.ok(p100 > lower && p100 <= upper, `p100 ${p100} in (${lower}, ${upper}]`);
});

test("the stat line every interval while there is work, one of zeros after, then quiet", async () => {
  const line = /^INFO flashlm: Engine 000: Avg prompt throughput: (\d+\.\d) tokens\/s, Avg generation throughput: (\d+\.\d) tokens\/s, Running: (\d+) reqs, Waiting: (\d+) reqs, GPU KV cache usage: (\d+\.\d)%, Prefix cache hit rate: (\d+\.\d)%$/;
  const lines = () => stderr.split("\n").filter((l) => l.includes("Engine 000:"));
  for (const l of lines()) assert.match(l, line);
  const before = lines().length;
  // 1.5 s of work: lines come while it runs
  const stream = await client.completions.create({ model: MODEL, prompt: "Keep going", max_tokens: 400,
    ignore_eos: true, stream: true });
  const t = Date.now();
  let tokens = 0;
  for await (const chunk of stream) {
    tokens++;
    if (Date.now() - t > 1500) break;
  }
  assert.ok(tokens > 0);
  await sleep(1600); // the abort, then an interval of nothing, then one more
  const during = lines().slice(before).map((l) => l.match(line));
  assert.ok(during.every(Boolean), lines().slice(before).join("\n"));
  assert.ok(during.some((m) => Number(m[2]) > 0), "a line with generation throughput");
  const last = during.at(-1);
  assert.equal(Number(last[1]) + Number(last[2]), 0, "the last line has no throughput");
  assert.equal(Number(last[3]), 0);
  const quiet = lines().length;
  await sleep(1500); // three intervals idle: nothing more
  assert.equal(lines().length, quiet);
});
