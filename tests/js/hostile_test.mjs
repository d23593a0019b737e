// hostile_test.mjs FLASHLM MODEL_DIR TOKENIZER_DIR CORPUS_DIR - a real
// `flashlm serve` driven as a hostile client would: raw sockets for what no
// HTTP client sends (smuggling-shaped heads, control bytes, %00, slow and
// idle connections by the thousand, early hang-ups), the openai client for
// what must still work beside them, and the HTTP corpus (tests/fuzz/corpus/
// http): every file sent raw must get one HTTP answer or a close,
// never a crash. Under ASan the last test's exit code 0 also says
// LeakSanitizer found nothing over everything sent before it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import OpenAI from "openai";
import { sleep, waitReady } from "./serve_util.mjs";

const [bin, modelDir, tokDir, corpusDir] = process.argv.slice(2);
const vocabSize = JSON.parse(fs.readFileSync(path.join(modelDir, "config.json"))).vocab_size;
// a template that prints the contents alone, so that a chat can render to nothing
const templateFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "flashlm-hostile-")), "t.jinja");
fs.writeFileSync(templateFile, "{% for m in messages %}{{ m.content }}{% endfor %}");
// below the ephemeral ports (32768 and up), which the thousands of client
// sockets of these tests use and may still hold for a while
const port = 24000 + (process.pid % 4000) * 2;
const base = `http://127.0.0.1:${port}`;
const key = "test-key";
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0 });
let server, exited;


before(async () => {
  server = spawn(bin, ["serve", modelDir, "--load-format", "dummy", "--tokenizer", tokDir,
    "--port", String(port), "--host", "127.0.0.1", "--served-model-name", "tiny", "--api-key", key,
    "--max-model-len", "512", "--block-size", "16", "--max-num-seqs", "64",
    "--max-connections-per-client", "3000", "--chat-template", templateFile],
    { stdio: ["ignore", "inherit", "inherit"] });
  exited = new Promise((resolve) => server.on("exit", (code, sig) => resolve({ code, sig })));
  await waitReady(base);
});

after(() => {
  if (server.exitCode === null) server.kill("SIGKILL");
});

// Sends bytes on a fresh connection; resolves with the first status code (or
// null), the whole answer, whether the server closed, and how long it took.
function rawHttp(bytes, { wait = 3000, from } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const sock = net.connect({ port, host: "127.0.0.1", localAddress: from });
    let data = Buffer.alloc(0);
    let done = false;
    const finish = (closed) => {
      if (done) return;
      done = true;
      sock.destroy();
      const text = data.toString("latin1");
      const m = /^(?:HTTP\/1\.1 1\d\d [^\r]*\r\n\r\n)*HTTP\/1\.[01] (\d{3}) /.exec(text);
      resolve({ status: m ? Number(m[1]) : null, text, closed, ms: Date.now() - t0 });
    };
    sock.on("connect", () => sock.write(bytes));
    sock.on("data", (d) => { data = Buffer.concat([data, d]); });
    sock.on("close", () => finish(true));
    sock.on("error", () => finish(true));
    setTimeout(() => finish(false), wait);
  });
}

async function metric(name) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`vllm:${name}{`));
  return line ? Number(line.split(" ").pop()) : NaN;
}

async function drained() {
  for (let i = 0; i < 100; i++) {
    if (await metric("num_requests_running") === 0 && await metric("num_requests_waiting") === 0 &&
        await metric("kv_cache_usage_perc") === 0) return true;
    await sleep(100);
  }
  return false;
}

const post = (pathName, body, headers = {}) => fetch(`${base}${pathName}`, { method: "POST",
  headers: { "Content-Type": "application/json", Authorization: `Bearer ${key}`, ...headers },
  body: typeof body === "string" ? body : JSON.stringify(body) });

async function stillUp() {
  assert.equal((await fetch(`${base}/health`)).status, 200, "the server is still up");
}

test("item 1: bans on every token are a 400, not a crash", async () => {
  const tok = await (await post("/tokenize", { prompt: "hi" })).json();
  const ids = Array.from({ length: vocabSize }, (_, i) => i);
  const r = await post("/v1/completions", { prompt: tok.tokens, max_tokens: 4, min_tokens: 1,
    temperature: 1, stop_token_ids: ids });
  assert.equal(r.status, 400);
  assert.match((await r.json()).error.message, /bans every token/);
  const r2 = await post("/v1/completions", { prompt: "x", max_tokens: 2, min_tokens: 3 });
  assert.equal(r2.status, 400);
  assert.equal((await r2.json()).error.param, "min_tokens");
  await stillUp();
});

test("item 2: 1,500 idle and 200 slow connections lock nobody out", async () => {
  const idle = [];
  for (let i = 0; i < 1500; i++) {
    const s = net.connect({ port, host: "127.0.0.1" });
    s.on("error", () => {});
    idle.push(s);
  }
  const slow = [];
  for (let i = 0; i < 200; i++) {
    const s = net.connect({ port, host: "127.0.0.1" });
    s.on("error", () => {});
    slow.push(s);
  }
  const head = "POST /v1/completions HTTP/1.1\r\nHost: x\r\n";
  let at = 0;
  const dribble = setInterval(() => {
    for (const s of slow) if (!s.destroyed) s.write(head[at % head.length]);
    at++;
  }, 500);
  await sleep(500);
  try {
    const runs = await Promise.all(Array.from({ length: 60 }, async (_, i) => {
      const stream = await client.completions.create({ model: "tiny", prompt: `req ${i}`, max_tokens: 6,
        temperature: 0, ignore_eos: true, stream: true, stream_options: { include_usage: true } });
      let usage = null;
      for await (const c of stream) usage = c.usage ?? usage;
      return usage.completion_tokens;
    }));
    for (const n of runs) assert.equal(n, 6);
    // the slow heads never complete: each is answered 408 and closed within the head timeout
    const closedSlow = await new Promise((resolve) => {
      let closed = 0;
      for (const s of slow) s.on("close", () => { if (++closed === slow.length) resolve(closed); });
      setTimeout(() => resolve(closed), 13000);
    });
    assert.equal(closedSlow, slow.length, "slow heads are cut after the head timeout");
    // idle connections that never sent a byte close after the keep-alive timeout
    const closedIdle = idle.filter((s) => s.destroyed || s.readyState === "closed").length;
    assert.equal(closedIdle, idle.length, "idle connections close after the keep-alive timeout");
  } finally {
    clearInterval(dribble);
    for (const s of [...idle, ...slow]) s.destroy();
  }
  await stillUp();
});

test("item 2: over the per-client cap a connection gets 503, others still served", async () => {
  const held = [];
  for (let i = 0; i < 3000; i++) {
    const s = net.connect({ port, host: "127.0.0.1" });
    s.on("error", () => {});
    held.push(s);
  }
  await sleep(1000);
  const over = await rawHttp("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  assert.equal(over.status, 503);
  assert.match(over.text, /this client holds as many connections/);
  // another address of the loopback is another client
  const other = await rawHttp("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", { from: "127.0.0.2" });
  assert.equal(other.status, 200);
  for (const s of held) s.destroy();
  await sleep(300);
  await stillUp();
});

test("items 3 and 5: leaking and oversized requests (LeakSanitizer judges at exit)", async () => {
  // /tokenize with messages past max_model_len (the token buffer leaked)
  const long = "word ".repeat(2000);
  for (let i = 0; i < 5; i++) {
    const r = await post("/tokenize", { messages: [{ role: "user", content: long }], max_tokens: 5,
      stop: ["x", "y"] });
    assert.equal(r.status, 400);
    const r2 = await post("/v1/chat/completions", { messages: [{ role: "user", content: long }], stop: ["x"] });
    assert.equal(r2.status, 400);
  }
  // stop strings parsed, then a later field is bad (the stop strings leaked)
  const r3 = await post("/v1/completions", { prompt: "x", stop: ["a", "b"], seed: "nope" });
  assert.equal(r3.status, 400);
  // a chat template that renders to nothing (the stream leaked)
  const r4 = await post("/v1/chat/completions", { messages: [{ role: "user", content: "" }], max_tokens: 2 });
  assert.equal(r4.status, 400);
  assert.match((await r4.json()).error.message, /empty/);
  // chat_template_kwargs may not replace the validated messages
  const r5 = await post("/v1/chat/completions", { messages: [{ role: "user", content: "hi" }],
    chat_template_kwargs: { messages: [{ role: "user", content: 7 }] }, max_tokens: 2 });
  assert.equal(r5.status, 400);
  assert.match((await r5.json()).error.message, /may not set 'messages'/);
  // one body of 6,000 prompts, and 2,000 x n=128: refused as a whole, nothing queued
  const many = await post("/v1/completions", { prompt: Array.from({ length: 6000 }, () => [1, 2]), max_tokens: 2 });
  assert.equal(many.status, 400);
  assert.match((await many.json()).error.message, /sequences/);
  const wide = await post("/v1/completions", { prompt: Array.from({ length: 2000 }, () => [1]), n: 128, max_tokens: 2 });
  assert.equal(wide.status, 400);
  assert.equal(await metric("num_requests_waiting"), 0);
  // 4,000 prompts fit; their client leaves at once: all aborted, quickly
  const ctl = new AbortController();
  const big = fetch(`${base}/v1/completions`, { method: "POST", signal: ctl.signal,
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${key}` },
    body: JSON.stringify({ prompt: Array.from({ length: 4000 }, (_, i) => [1 + (i % 50), 2]),
      max_tokens: 50, ignore_eos: true }) }).catch(() => null);
  let queued = 0;
  try {
    for (let i = 0; i < 200 && queued < 1000; i++) {
      await sleep(50);
      queued = await metric("num_requests_waiting") + await metric("num_requests_running");
    }
  } finally {
    ctl.abort();
  }
  await big;
  assert.ok(queued >= 1000, `the 4,000 prompts were queued (${queued} seen)`);
  assert.ok(await drained(), "the queue drains");
  await stillUp();
});

test("item 4: a non-streamed request stops when its client leaves", async () => {
  const before = await metric("generation_tokens_total");
  const ctl = new AbortController();
  const p = post("/v1/completions", { prompt: "A long story", max_tokens: 400, temperature: 0,
    ignore_eos: true }).catch(() => null);
  const cut = fetch(`${base}/v1/completions`, { method: "POST", signal: ctl.signal,
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${key}` },
    body: JSON.stringify({ prompt: "Another long story", max_tokens: 450, temperature: 0, ignore_eos: true }) })
    .catch(() => null);
  await sleep(300);
  ctl.abort();
  await cut;
  await p;
  assert.ok(await drained(), "nothing runs on");
  const generated = (await metric("generation_tokens_total")) - before;
  assert.ok(generated < 400 + 450, `generated ${generated}: the cut request ran on`);
});

test("item 7: smuggling-shaped and malformed heads get 400 and a closed connection", async () => {
  const body = '{"prompt":"x","max_tokens":1}';
  const auth = `Authorization: Bearer ${key}\r\n`;
  const cases = [
    ["CL with TE", `POST /v1/completions HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: ${body.length}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n`, 400],
    ["space before colon", `POST /v1/completions HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n`, 400],
    ["two Content-Lengths", `POST /v1/completions HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: ${body.length}\r\nContent-Length: 3\r\n\r\n${body}`, 400],
    ["NUL in a value", `GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n`, 400],
    ["no Host on 1.1", "GET /health HTTP/1.1\r\n\r\n", 400],
    ["%00 in the path", "GET /health%00.json HTTP/1.1\r\nHost: x\r\n\r\n", 400],
    ["%00 before a route", `POST /v1/completions%00 HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: ${body.length}\r\n\r\n${body}`, 400],
    ["line folding", "GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400],
    ["bare CR", "GET /health HTTP/1.1\rHost: x\r\n\r\n", 400],
    ["HTTP/2.0", "GET /health HTTP/2.0\r\nHost: x\r\n\r\n", 505],
    ["gzip coding", `POST /v1/completions HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: gzip\r\n\r\n`, 501],
    ["a chunk size followed by more", "POST /tokenize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5 6\r\nhello\r\n0\r\n\r\n", 400],
    ["a head of 20 kB", `GET /health HTTP/1.1\r\nHost: x\r\nX-A: ${"a".repeat(20000)}\r\n\r\n`, 431],
  ];
  for (const [name, bytes, status] of cases) {
    const r = await rawHttp(bytes);
    assert.equal(r.status, status, name);
    assert.ok(r.closed, `${name}: connection closed`);
    assert.equal((r.text.match(/HTTP\/1\.[01] \d{3} [A-Z]/g) || []).length, 1, `${name}: one answer only`);
  }
  // 4,096 query parameters: answered, with a status
  const q = Array.from({ length: 4096 }, (_, i) => `a${i}=1`).join("&").slice(0, 15000);
  assert.equal((await rawHttp(`GET /health?${q} HTTP/1.1\r\nHost: x\r\n\r\n`)).status, 200);
  // a chunked body is decoded
  const chunked = await rawHttp(`POST /v1/completions HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\n${body.slice(0, 5)}\r\n${(body.length - 5).toString(16)}\r\n${body.slice(5)}\r\n0\r\n\r\n`, { wait: 10000 });
  assert.equal(chunked.status, 200);
  // HTTP/1.0 keep-alive is confirmed, so the client may send the next request
  const ten = await rawHttp("GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /health HTTP/1.0\r\n\r\n");
  assert.equal((ten.text.match(/HTTP\/1\.0 200 OK/g) || []).length, 2);
  assert.match(ten.text, /connection: keep-alive/);
  // two pipelined requests on one connection: two answers, in order
  const two = await rawHttp("GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  assert.deepEqual([...two.text.matchAll(/HTTP\/1\.1 (\d{3}) [A-Z]/g)].map((m) => Number(m[1])), [200, 404]);
  await stillUp();
});

test("item 8: the key before the route and before the body; unauthenticated work is small", async () => {
  // a head announcing 8 MiB and no key: 401 at once, the body never read
  const r = await rawHttp(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: ${8 << 20}\r\n\r\n`);
  assert.equal(r.status, 401);
  assert.ok(r.closed && r.ms < 2000);
  const unknown = await fetch(`${base}/v1/nothing`);
  assert.equal(unknown.status, 401);
  // /tokenize needs no key, but without one its body is small
  const big = JSON.stringify({ prompt: "word ".repeat(100000) });
  const noKey = await fetch(`${base}/tokenize`, { method: "POST", body: big });
  assert.equal(noKey.status, 413);
  const withKey = await post("/tokenize", big);
  assert.equal(withKey.status, 200);
  assert.equal((await fetch(`${base}/tokenize`, { method: "POST", body: JSON.stringify({ prompt: "hi" }) })).status, 200);
});

test("the HTTP corpus: one answer or a close for every file, the server stays up", async () => {
  const files = fs.readdirSync(corpusDir).sort();
  assert.ok(files.length >= 20);
  for (const f of files) {
    const bytes = fs.readFileSync(path.join(corpusDir, f));
    const r = await rawHttp(bytes, { wait: 800 });
    assert.ok(r.status !== null || r.text === "", `${f}: an HTTP answer or nothing`);
    if (r.status !== null) assert.ok(r.status >= 200 && r.status < 600, `${f}: status ${r.status}`);
  }
  await stillUp();
});

test("SIGTERM after all of it: exit 0 (and, under ASan, no leak)", async () => {
  server.kill("SIGTERM");
  const { code, sig } = await exited;
  assert.equal(sig, null);
  assert.equal(code, 0);
});
