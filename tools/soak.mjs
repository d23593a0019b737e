// soak.mjs FLASHLM MODEL_DIR TOKENIZER_DIR [SECONDS] - the hostile soak of
// issue 13: one `flashlm serve` (the tiny dummy model on the CPU) holds
// 2,000 slow clients (a header byte every 5 s from 127.0.0.2, reconnecting
// when cut) while 300 clients stream completions over the openai client,
// cutting 30% of them at a random point, for SECONDS (default 300). Prints
// a JSON summary and exits 1 unless every request that was not cut was
// served, RSS at the end is within 5% of RSS after the warm-up, the server
// ends with 0 running and waiting requests and 0% KV usage, and SIGTERM
// exits 0 (under ASan: no sanitizer or leak report). Run from tests/js's
// node_modules: node tools/soak.mjs build/flashlm tests/fixtures/tiny-qwen3-realvocab TOK_DIR
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import { createRequire } from "node:module";

const require = createRequire(new URL("../tests/js/package.json", import.meta.url));
const { default: OpenAI } = await import(require.resolve("openai"));

const [bin, modelDir, tokDir, secondsArg] = process.argv.slice(2);
const seconds = Number(secondsArg || 300);
const port = 8000 + (process.pid % 4000); // below the ephemeral ports
const base = `http://127.0.0.1:${port}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const server = spawn(bin, ["serve", modelDir, "--load-format", "dummy", "--tokenizer", tokDir, "--port",
  String(port), "--host", "0.0.0.0", "--served-model-name", "tiny", "--max-model-len", "512",
  "--block-size", "16", "--max-num-seqs", "128"], { stdio: ["ignore", "ignore", "pipe"] });
let serverLog = "";
server.stderr.on("data", (d) => { serverLog += d; if (serverLog.length > 1e6) serverLog = serverLog.slice(-5e5); });
const exited = new Promise((resolve) => server.on("exit", (code, sig) => resolve({ code, sig })));
for (let i = 0; ; i++) {
  try { if ((await fetch(`${base}/health`)).status === 200) break; } catch { /* loading */ }
  if (i > 600) throw new Error("the server did not start");
  await sleep(100);
}

const rss = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${server.pid}/status`, "utf8"))[1]);
async function metric(name) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`flashlm:${name}`));
  return line ? Number(line.split(" ").pop()) : NaN;
}

let running = true;
const stats = { served: 0, cut: 0, failed: 0, failures: [], slowConnects: 0 };

// 2,000 slow clients: one header byte every 5 s, a new connection when cut
const head = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";
function slowClient(i) {
  if (!running) return;
  stats.slowConnects++;
  const s = net.connect({ port, host: "127.0.0.1", localAddress: "127.0.0.2" });
  let at = 0;
  const t = setInterval(() => { if (!s.destroyed) s.write(head[at++ % head.length]); }, 5000);
  s.on("error", () => {});
  s.on("close", () => { clearInterval(t); setTimeout(() => slowClient(i), 100 + Math.random() * 900); });
}
for (let i = 0; i < 2000; i++) setTimeout(() => slowClient(i), i * 2);

// 300 streaming clients, 30% cut at a random chunk
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "none", maxRetries: 0, timeout: 120000 });
async function streamer(i) {
  while (running) {
    const maxTokens = 10 + Math.floor(Math.random() * 50);
    /* a cut lands mid-stream: the openai client can hang on an abort that
     * comes after the server has sent everything */
    const cutAt = Math.random() < 0.3 ? 1 + Math.floor(Math.random() * (maxTokens - 5)) : -1;
    const controller = new AbortController();
    let chunks = 0, usage = null;
    try {
      const stream = await client.completions.create({ model: "tiny", prompt: `soak ${i} ${Math.random()}`,
        max_tokens: maxTokens, temperature: 0.8, ignore_eos: true, stream: true,
        stream_options: { include_usage: true } }, { signal: controller.signal });
      for await (const c of stream) {
        if (c.usage) usage = c.usage;
        if (++chunks === cutAt) controller.abort();
      }
      if (cutAt > 0 && chunks >= cutAt) { stats.cut++; continue; }
      if (!usage || usage.completion_tokens !== maxTokens) throw new Error(`usage ${JSON.stringify(usage)}`);
      stats.served++;
    } catch (e) {
      if (cutAt > 0 && controller.signal.aborted) { stats.cut++; continue; }
      stats.failed++;
      if (stats.failures.length < 10) stats.failures.push(String(e.message || e));
    }
  }
}
let active = 0;
const streamers = Array.from({ length: 300 }, async (_, i) => { active++; await streamer(i); active--; });
const progress = setInterval(async () => console.error(`soak: ${JSON.stringify({ ...stats, failures: undefined })} `
  + `active ${active} running ${await metric("num_requests_running")} waiting ${await metric("num_requests_waiting")}`), 10000);

console.error("soak: server up, clients started");
const warmup = Math.min(60, seconds / 5);
await sleep(warmup * 1000);
const rssWarm = rss();
const samples = [];
const sampler = setInterval(() => samples.push(rss()), 10000);
await sleep((seconds - warmup) * 1000);
running = false;
console.error("soak: stopping clients", JSON.stringify(stats).slice(0, 300));
clearInterval(sampler);
await Promise.all(streamers);
console.error("soak: clients done");
clearInterval(progress);
await sleep(3000); // the slow clients' sockets close, the engine drains
const rssEnd = rss();
const end = { running: await metric("num_requests_running"), waiting: await metric("num_requests_waiting"),
  kv: await metric("kv_cache_usage_perc") };
server.kill("SIGTERM");
const { code, sig } = await exited;
const sanitizer = /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/.test(serverLog);
const summary = { seconds, ...stats, rssWarmKB: rssWarm, rssEndKB: rssEnd, rssMaxKB: Math.max(...samples, rssEnd),
  rssChange: (rssEnd - rssWarm) / rssWarm, end, exit: { code, sig }, sanitizer };
console.log(JSON.stringify(summary, null, 1));
if (sanitizer) console.log(serverLog.slice(-4000));
const ok = stats.failed === 0 && stats.served > 0 && Math.abs(summary.rssChange) <= 0.05 && end.running === 0 &&
  end.waiting === 0 && end.kv === 0 && code === 0 && sig === null && !sanitizer;
console.log(ok ? "soak: passed" : "soak: FAILED");
process.exit(ok ? 0 : 1);
