// server_test.mjs FLASHLM MODEL_DIR TOKENIZER_DIR - end-to-end tests of a real
// `flashlm serve` process over loopback, with the official openai client:
// completions and chat, streamed and not (streamed text equals the
// non-streamed text), n > 1, seeds, stop strings, logprobs, 100 concurrent
// streams, 100 more with half cut by the client (then the KV cache must
// drain to 0%), the malformed-request suite, 503 while the model loads, and
// shutdown on SIGTERM.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import OpenAI from "openai";
import { sleep, waitReady } from "./serve_util.mjs";

const [bin, modelDir, tokDir] = process.argv.slice(2);
// below the ephemeral ports (32768 and up), which client sockets use
const port = 16000 + (process.pid % 4000) * 2;
const base = `http://127.0.0.1:${port}`;
const key = "test-key";
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0 });
let server;
let exited;


before(async () => {
  server = spawn(bin, ["serve", modelDir, "--load-format", "dummy", "--tokenizer", tokDir,
    "--port", String(port), "--host", "127.0.0.1", "--served-model-name", "tiny", "--api-key", key,
    "--max-model-len", "512", "--block-size", "16", "--max-num-seqs", "64"],
    { stdio: ["ignore", "inherit", "inherit"] });
  exited = new Promise((resolve) => server.on("exit", (code) => resolve(code)));
  await waitReady(base);
});

after(async () => {
  if (server.exitCode === null) server.kill("SIGKILL");
});

const greedy = { temperature: 0, max_tokens: 12, ignore_eos: true };

async function streamText(params) {
  const stream = await client.completions.create({ ...params, stream: true,
    stream_options: { include_usage: true } });
  let text = "";
  let usage = null;
  for await (const chunk of stream) {
    for (const c of chunk.choices) text += c.text;
    if (chunk.usage) usage = chunk.usage;
  }
  return { text, usage };
}

test("completions: streamed text equals non-streamed text, usage counts", async () => {
  const prompt = "The capital of France is";
  const full = await client.completions.create({ model: "tiny", prompt, ...greedy });
  assert.equal(full.object, "text_completion");
  assert.equal(full.choices.length, 1);
  assert.equal(full.choices[0].finish_reason, "length");
  assert.equal(full.usage.completion_tokens, 12);
  const tok = await (await fetch(`${base}/tokenize`, { method: "POST",
    body: JSON.stringify({ prompt }) })).json();
  assert.equal(full.usage.prompt_tokens, tok.count);
  const streamed = await streamText({ model: "tiny", prompt, ...greedy });
  assert.equal(streamed.text, full.choices[0].text);
  assert.equal(streamed.usage.completion_tokens, 12);
  const detok = await (await fetch(`${base}/detokenize`, { method: "POST",
    body: JSON.stringify({ tokens: tok.tokens }) })).json();
  assert.equal(detok.prompt, prompt);
});

test("chat: streamed equals non-streamed; a list of token ids as prompt", async () => {
  const messages = [{ role: "system", content: "Be brief." }, { role: "user", content: "Hello there" }];
  const full = await client.chat.completions.create({ model: "tiny", messages, ...greedy });
  assert.equal(full.object, "chat.completion");
  assert.equal(full.choices[0].message.role, "assistant");
  const stream = await client.chat.completions.create({ model: "tiny", messages, ...greedy, stream: true });
  let text = "";
  let role = null;
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      role ??= c.delta.role;
      text += c.delta.content ?? "";
    }
  }
  assert.equal(role, "assistant");
  assert.equal(text, full.choices[0].message.content);
  const ids = await client.completions.create({ model: "tiny", prompt: [9707, 11, 1879], ...greedy });
  assert.equal(ids.usage.prompt_tokens, 3);
});

test("n > 1, seeds", async () => {
  const params = { model: "tiny", prompt: "Once upon a time", max_tokens: 10, temperature: 1.0, ignore_eos: true };
  const a = await client.completions.create({ ...params, n: 2, seed: 7 });
  assert.equal(a.choices.length, 2);
  assert.equal(a.usage.completion_tokens, 20);
  const b = await client.completions.create({ ...params, n: 2, seed: 7 });
  assert.deepEqual(b.choices.map((c) => c.text), a.choices.map((c) => c.text));
  const c = await client.completions.create({ ...params, seed: 8 });
  assert.notEqual(c.choices[0].text, a.choices[0].text);
});

test("stop strings end the text before the match", async () => {
  const prompt = "Counting: one two three";
  const full = (await client.completions.create({ model: "tiny", prompt, ...greedy, max_tokens: 16 })).choices[0].text;
  const cut = Math.floor(full.length / 2);
  const stop = full.slice(cut, cut + 3);
  assert.ok(stop.length === 3);
  const first = full.indexOf(stop);
  for (const stream of [false, true]) {
    const text = stream ? (await streamText({ model: "tiny", prompt, ...greedy, max_tokens: 16, stop: [stop] })).text
      : (await client.completions.create({ model: "tiny", prompt, ...greedy, max_tokens: 16, stop: [stop] })).choices[0].text;
    assert.equal(text, full.slice(0, first));
  }
  const r = await client.completions.create({ model: "tiny", prompt, ...greedy, max_tokens: 16, stop });
  assert.equal(r.choices[0].finish_reason, "stop");
});

test("logprobs: chat and completions shapes", async () => {
  const chat = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "Hi" }],
    ...greedy, max_tokens: 3, logprobs: true, top_logprobs: 2 });
  const content = chat.choices[0].logprobs.content;
  assert.equal(content.length, 3);
  assert.equal(content[0].top_logprobs.length, 2);
  assert.ok(content[0].logprob <= 0);
  assert.equal(content[0].top_logprobs[0].logprob, content[0].logprob); /* greedy: the top one */
  const comp = await client.completions.create({ model: "tiny", prompt: "Hi", ...greedy, max_tokens: 3, logprobs: 2 });
  assert.equal(comp.choices[0].logprobs.tokens.length, 3);
  assert.equal(comp.choices[0].logprobs.token_logprobs.length, 3);
});

async function metric(name) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`vllm:${name}{`));
  return Number(line.split(" ").pop());
}

test("100 concurrent streams, then 100 with half cut mid-stream", async () => {
  const run = async (i, cut) => {
    const controller = new AbortController();
    /* a cut request asks for 400 tokens: only an abort stops it early */
    const stream = await client.completions.create({ model: "tiny", prompt: `Request ${i} says`,
      max_tokens: cut ? 400 : 8, temperature: 0.8, seed: i, ignore_eos: true, stream: true,
      stream_options: { include_usage: true } }, { signal: controller.signal });
    let chunks = 0;
    let usage = null;
    try {
      for await (const chunk of stream) {
        if (chunk.choices.length) chunks++;
        if (chunk.usage) usage = chunk.usage;
        if (cut && chunks === 2) controller.abort();
      }
    } catch (e) {
      if (!cut) throw e;
      return null;
    }
    return usage;
  };
  const usages = await Promise.all(Array.from({ length: 100 }, (_, i) => run(i, false)));
  for (const u of usages) assert.equal(u.completion_tokens, 8);
  const before = await metric("generation_tokens_total");
  await Promise.all(Array.from({ length: 100 }, (_, i) => run(100 + i, i % 2 === 0)));
  assert.equal((await fetch(`${base}/health`)).status, 200);
  let usage = 1;
  for (let i = 0; i < 100 && usage !== 0; i++) {
    await sleep(100);
    usage = await metric("kv_cache_usage_perc");
  }
  assert.equal(usage, 0);
  assert.equal(await metric("num_requests_running"), 0);
  /* 50 finished x 8 tokens, and the 50 cut ones stopped far short of 400 */
  const generated = (await metric("generation_tokens_total")) - before;
  assert.ok(generated < 50 * 8 + 50 * 200, `generated ${generated} tokens: the cut requests ran on`);
  assert.ok((await metric("time_to_first_token_seconds_count")) >= 100);
});

async function raw(path, { body, headers = {}, method = "POST", auth = true } = {}) {
  const h = { "Content-Type": "application/json", ...headers };
  if (auth) h.Authorization = `Bearer ${key}`;
  const res = await fetch(`${base}${path}`, { method, headers: h, body });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json };
}

test("malformed requests get the documented status and error JSON", async () => {
  const ok = JSON.stringify({ model: "tiny", prompt: "hi", max_tokens: 2 });
  const cases = [
    ["bad JSON", "/v1/completions", { body: "{not json" }, 400, null],
    ["not an object", "/v1/completions", { body: "[1, 2]" }, 400, null],
    ["wrong type", "/v1/completions", { body: JSON.stringify({ model: "tiny", prompt: "x", max_tokens: "ten" }) }, 400, "max_tokens"],
    ["negative max_tokens", "/v1/completions", { body: JSON.stringify({ model: "tiny", prompt: "x", max_tokens: -5 }) }, 400, "max_tokens"],
    ["temperature out of range", "/v1/completions", { body: JSON.stringify({ prompt: "x", temperature: -1 }) }, 400, "temperature"],
    ["too long", "/v1/completions", { body: JSON.stringify({ prompt: "x", max_tokens: 600 }) }, 400, "max_tokens"],
    ["prompt missing", "/v1/completions", { body: JSON.stringify({ model: "tiny" }) }, 400, "prompt"],
    ["token id out of range", "/v1/completions", { body: JSON.stringify({ prompt: [1, 999999] }) }, 400, "prompt"],
    ["messages missing", "/v1/chat/completions", { body: JSON.stringify({ model: "tiny" }) }, 400, "messages"],
    ["bad stop", "/v1/completions", { body: JSON.stringify({ prompt: "x", stop: [1] }) }, 400, "stop"],
    ["unknown model", "/v1/completions", { body: JSON.stringify({ model: "gpt-9", prompt: "x" }) }, 404, "model"],
    ["huge body", "/v1/completions", { body: JSON.stringify({ prompt: "x".repeat(9 << 20) }) }, 413, null],
    ["invalid UTF-8", "/v1/completions", { body: Buffer.from([0x7b, 0x22, 0x70, 0x72, 0x6f, 0x6d, 0x70, 0x74, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]) }, 400, null],
    ["missing auth", "/v1/completions", { body: ok, auth: false }, 401, null],
    ["wrong key", "/v1/completions", { body: ok, auth: false, headers: { Authorization: "Bearer nope" } }, 401, null],
    ["unknown route", "/v1/nothing", { body: ok }, 404, null],
    ["wrong method", "/v1/completions", { method: "GET", body: undefined }, 405, null],
  ];
  for (const [name, path, opts, status, param] of cases) {
    const r = await raw(path, opts);
    assert.equal(r.status, status, name);
    assert.ok(r.json && r.json.error && typeof r.json.error.message === "string", `${name}: error JSON`);
    assert.equal(r.json.error.code, status, name);
    if (param) assert.equal(r.json.error.param, param, name);
    assert.equal((await fetch(`${base}/health`)).status, 200, `${name}: still up`);
  }
  const good = await raw("/v1/completions", { body: ok });
  assert.equal(good.status, 200);
});

test("while the model loads: 503 with error JSON; SIGTERM then exits 0; a FIFO config is refused", async () => {
  // a full-size dummy model takes seconds to fill on the CPU: time to knock
  const port2 = port + 1, base2 = `http://127.0.0.1:${port2}`;
  const loading = spawn(bin, ["serve", "Qwen/Qwen3-0.6B", "--load-format", "dummy", "--tokenizer", tokDir,
    "--port", String(port2), "--host", "127.0.0.1", "--served-model-name", "tiny", "--max-model-len", "512",
    "--block-size", "16", "--device", "cpu"], { stdio: ["ignore", "inherit", "inherit"] });
  const gone = new Promise((resolve) => loading.on("exit", (code, sig) => resolve({ code, sig })));
  try {
    let health = null;
    for (let i = 0; i < 300 && !health; i++) {
      try { health = await fetch(`${base2}/health`); } catch { await sleep(50); }
    }
    assert.ok(health, "the server listens while loading");
    assert.equal(health.status, 503);
    assert.match((await health.json()).error.message, /loading/);
    const loadingClient = new OpenAI({ baseURL: `${base2}/v1`, apiKey: "none", maxRetries: 0 });
    await assert.rejects(loadingClient.completions.create({ model: "tiny", prompt: "x", max_tokens: 2 }),
      (e) => e.status === 503 && /loading/.test(e.message));
  } finally {
    // SIGTERM during the load: a clean exit, not death by the signal (OpenBLAS's
    // threads, made before main, used to take its default action)
    loading.kill("SIGTERM");
  }
  const { code, sig } = await gone;
  assert.equal(sig, null, "not killed by the signal");
  assert.equal(code, 0);
  // a named pipe as config.json would block the load forever: refused at once
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "flashlm-fifo-"));
  for (const name of fs.readdirSync(modelDir))
    if (name !== "config.json") fs.symlinkSync(path.resolve(modelDir, name), path.join(dir, name));
  execFileSync("mkfifo", [path.join(dir, "config.json")]);
  const fifo = spawn(bin, ["serve", dir, "--load-format", "dummy", "--tokenizer", tokDir, "--port",
    String(port2), "--host", "127.0.0.1"], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  fifo.stderr.on("data", (d) => { stderr += d; });
  const fifoExit = await new Promise((resolve) => fifo.on("exit", (c) => resolve(c)));
  fs.rmSync(dir, { recursive: true, force: true });
  assert.equal(fifoExit, 1);
  assert.match(stderr, /config\.json: not a regular file/);
});

test("SIGTERM with a stream in flight: the stream ends cleanly, exit 0", async () => {
  const stream = await client.completions.create({ model: "tiny", prompt: "A long story", max_tokens: 450,
    temperature: 0, ignore_eos: true, stream: true });
  let chunks = 0;
  let finish = null;
  for await (const chunk of stream) {
    if (++chunks === 2) server.kill("SIGTERM");
    for (const c of chunk.choices) finish = c.finish_reason ?? finish;
  }
  assert.equal(finish, "abort");
  assert.ok(chunks < 450);
  assert.equal(await exited, 0);
});
