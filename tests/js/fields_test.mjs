// fields_test.mjs FLASHLM MODEL_DIR TOKENIZER_DIR FIELDS_JSON - every field of
// vLLM's CompletionRequest and ChatCompletionRequest (the list in
// tests/fixtures/vllm_request_fields.json), one request per entry with its
// example value, to a real `flashlm serve` over HTTP: a refused one must be
// a 400 naming the field; an honoured one must show its effect (each has a
// check below, and an honoured field without one fails). Then the response
// details (random ids, created, /version, /ping) and generation_config.json's
// defaults on a second server.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import OpenAI from "openai";
import { waitReady } from "./serve_util.mjs";

const [bin, modelDir, tokDir, fieldsFile] = process.argv.slice(2);
const port = 16001 + (process.pid % 4000) * 2;
const base = `http://127.0.0.1:${port}`;
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "none", maxRetries: 0 });
const fields = JSON.parse(fs.readFileSync(fieldsFile, "utf8")).fields;
const EOS = 151645, IM_START = 151644;
let server;

function serve(dir, p, extra = [], stderr = "inherit") {
  return spawn(bin, ["serve", dir, "--load-format", "dummy", "--tokenizer", tokDir, "--port", String(p),
    "--host", "127.0.0.1", "--served-model-name", "tiny", "--max-model-len", "512", "--block-size", "16",
    "--max-num-seqs", "64", ...extra], { stdio: ["ignore", "inherit", stderr] });
}

before(async () => {
  // tool_choice "auto" (tools' default) needs the flags; no request without tools is parsed
  server = serve(modelDir, port, ["--enable-auto-tool-choice", "--tool-call-parser", "hermes"]);
  await waitReady(base);
});
after(() => { if (server.exitCode === null) server.kill("SIGKILL"); });

async function post(p, body, b = base) {
  const r = await fetch(`${b}${p}`, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* SSE or plain */ }
  return { status: r.status, json, text };
}

const PROMPT = "Hello world, this is";
const MESSAGES = [{ role: "user", content: "Hi" }];
const baseBody = {
  completions: { model: "tiny", prompt: PROMPT, max_tokens: 8, temperature: 0, ignore_eos: true },
  chat: { model: "tiny", messages: MESSAGES, max_tokens: 8, temperature: 0, ignore_eos: true },
};
const route = (ep) => (ep === "chat" ? "/v1/chat/completions" : "/v1/completions");

// one request: the base body with extra over it (undefined deletes a key)
async function send(ep, extra = {}) {
  const body = { ...baseBody[ep], ...extra };
  for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
  const r = await post(route(ep), body);
  assert.equal(r.status, 200, `${JSON.stringify(extra)}: ${r.text}`);
  return r.json;
}
const textOf = (ep, res, i = 0) => (ep === "chat" ? res.choices[i].message.content : res.choices[i].text);

// the generated ids and their logprobs (top: [{id, lp}]), through
// return_tokens_as_token_ids
async function steps(ep, extra = {}, top = 20) {
  const lpField = ep === "chat" ? { logprobs: true, top_logprobs: top } : { logprobs: top };
  const res = await send(ep, { ...lpField, return_tokens_as_token_ids: true, ...extra });
  const idOf = (t) => { const m = /^token_id:(\d+)$/.exec(t); assert.ok(m, t); return Number(m[1]); };
  if (ep === "chat")
    return { res, steps: res.choices[0].logprobs.content.map((e) => ({ id: idOf(e.token), lp: e.logprob,
      top: e.top_logprobs.map((t) => ({ id: idOf(t.token), lp: t.logprob })) })) };
  const l = res.choices[0].logprobs;
  return { res, steps: l.tokens.map((t, i) => ({ id: idOf(t), lp: l.token_logprobs[i],
    top: Object.entries(l.top_logprobs[i]).map(([k, v]) => ({ id: idOf(k), lp: v })) })) };
}

async function promptIds(ep, extra = {}) {
  const body = ep === "chat" ? { messages: extra.messages ?? MESSAGES, tools: extra.tools }
    : { prompt: extra.prompt ?? PROMPT };
  const r = await post("/tokenize", body);
  assert.equal(r.status, 200, r.text);
  return r.json.tokens;
}

const baselines = {};
async function baseline(ep) {
  baselines[ep] ??= await send(ep);
  return baselines[ep];
}
async function sameAsBaseline(ep, extra) {
  assert.equal(textOf(ep, await send(ep, extra)), textOf(ep, await baseline(ep)));
}

// greedy with penalties: each chosen token maximises the penalised raw logprob
async function penaltyCheck(ep, freq, pres) {
  const { steps: s } = await steps(ep, { frequency_penalty: freq, presence_penalty: pres, max_tokens: 12 });
  const counts = new Map();
  let changed = 0;
  for (const st of s) {
    const score = (id, lp) => lp - freq * (counts.get(id) ?? 0) - pres * (counts.has(id) ? 1 : 0);
    const best = Math.max(...st.top.map((t) => score(t.id, t.lp)));
    assert.ok(score(st.id, st.lp) >= best - 1e-4, `token ${st.id} is not the penalised argmax`);
    if (st.id !== st.top[0].id) changed++;
    counts.set(st.id, (counts.get(st.id) ?? 0) + 1);
  }
  return changed;
}

// Structured output: a sampled reply (EOS allowed) that verify accepts; a
// JSON reply that ends must parse as an object (random weights may spend
// the tokens on whitespace: then only its start is checked).
async function constrained(ep, extra, verify) {
  for (let seed = 0; seed < 3; seed++) {
    const res = await send(ep, { ...extra, temperature: 1, seed, max_tokens: 48, ignore_eos: undefined });
    verify(textOf(ep, res), res.choices[0].finish_reason);
  }
}
const isObjectStart = (t, finish) => {
  assert.ok(t.startsWith("{"), t);
  if (finish === "stop") {
    const v = JSON.parse(t);
    assert.ok(typeof v === "object" && v !== null && !Array.isArray(v), t);
  }
};
const matchesWhole = (re) => (t, finish) => {
  assert.equal(finish, "stop", t);
  assert.match(t, new RegExp(`^(?:${re})$`));
};

// A check a field: (ep, example) => assertions on a visible effect.
const checks = {
  model: async (ep) => assert.equal((await send(ep, { model: "tiny" })).model, "tiny"),
  prompt: async (ep) => assert.equal((await send(ep)).usage.prompt_tokens, (await promptIds(ep)).length),
  messages: async (ep, ex) => {
    const res = await send(ep, { messages: ex });
    const asString = ex.map((m) => ({ ...m, content: Array.isArray(m.content)
      ? m.content.map((p) => p.text).join("\n") : m.content }));
    const ref = await send(ep, { messages: asString });
    assert.equal(res.usage.prompt_tokens, (await promptIds(ep, { messages: asString })).length);
    assert.equal(textOf(ep, res), textOf(ep, ref));
  },
  frequency_penalty: async (ep, ex) => { await penaltyCheck(ep, ex, 0); },
  presence_penalty: async (ep, ex) => { await penaltyCheck(ep, 0, ex); },
  repetition_penalty: async (ep, ex) => {
    // a penalty of ~0 multiplies the positive logits of seen tokens enormously
    const seen = new Set(await promptIds(ep));
    const { steps: s } = await steps(ep, { repetition_penalty: ex }, 0);
    for (const st of s) { assert.ok(seen.has(st.id), `token ${st.id} was never seen`); seen.add(st.id); }
  },
  logit_bias: async (ep, ex) => {
    const { steps: s } = await steps(ep, { logit_bias: ex }, 0);
    for (const st of s) assert.equal(String(st.id), Object.keys(ex)[0]);
  },
  max_tokens: async (ep, ex) => assert.equal((await send(ep, { max_tokens: ex })).usage.completion_tokens, ex),
  max_completion_tokens: async (ep, ex) => {
    assert.equal((await send(ep, { max_completion_tokens: ex })).usage.completion_tokens, ex);
    // both given: max_completion_tokens wins (vLLM)
    assert.equal((await send(ep, { max_tokens: 8, max_completion_tokens: ex })).usage.completion_tokens, ex);
  },
  n: async (ep, ex) => assert.equal((await send(ep, { n: ex, temperature: 1 })).choices.length, ex),
  seed: async (ep, ex) => {
    const a = await send(ep, { seed: ex, temperature: 1 }), b = await send(ep, { seed: ex, temperature: 1 });
    assert.equal(textOf(ep, a), textOf(ep, b));
    const c = await send(ep, { temperature: 1 }), d = await send(ep, { temperature: 1 });
    assert.notEqual(textOf(ep, c), textOf(ep, d), "unseeded draws should differ");
  },
  stop: async (ep) => {
    const full = textOf(ep, await send(ep, { max_tokens: 12 }));
    const stop = full.slice(3, 6);
    const res = await send(ep, { max_tokens: 12, stop: [stop] });
    assert.equal(textOf(ep, res), full.slice(0, full.indexOf(stop)));
    assert.equal(res.choices[0].stop_reason, stop);
  },
  include_stop_str_in_output: async (ep) => {
    const full = textOf(ep, await send(ep, { max_tokens: 12 }));
    const stop = full.slice(3, 6);
    const res = await send(ep, { max_tokens: 12, stop: [stop], include_stop_str_in_output: true });
    assert.equal(textOf(ep, res), full.slice(0, full.indexOf(stop) + stop.length));
  },
  stream: async (ep) => {
    const body = { ...baseBody[ep], stream: true };
    const s = ep === "chat" ? await client.chat.completions.create(body) : await client.completions.create(body);
    let text = "";
    for await (const c of s) for (const ch of c.choices) text += ep === "chat" ? (ch.delta.content ?? "") : ch.text;
    assert.equal(text, textOf(ep, await baseline(ep)));
  },
  stream_options: async (ep, ex) => {
    const r = await post(route(ep), { ...baseBody[ep], stream: true, stream_options: ex });
    const chunks = r.text.split("\n\n").filter((l) => l.startsWith("data: {")).map((l) => JSON.parse(l.slice(6)));
    assert.equal(chunks.at(-1).usage.completion_tokens, 8);
    const bad = await post(route(ep), { ...baseBody[ep], stream_options: ex }); // without stream
    assert.equal(bad.status, 400);
  },
  temperature: async (ep, ex) => {
    const a = await send(ep, { temperature: ex }), b = await send(ep, { temperature: 1, top_k: 1 });
    assert.equal(textOf(ep, a), textOf(ep, b));
  },
  top_p: async (ep, ex) => sameAsBaseline(ep, { temperature: 1, top_p: ex }),
  top_k: async (ep, ex) => sameAsBaseline(ep, { temperature: 1, top_k: ex }),
  min_p: async (ep, ex) => sameAsBaseline(ep, { temperature: 1, min_p: ex }),
  user: async (ep, ex) => sameAsBaseline(ep, { user: ex }),
  best_of: async (ep, ex) => sameAsBaseline(ep, { best_of: ex }),
  stop_token_ids: async (ep) => {
    const { steps: s } = await steps(ep, {}, 0);
    const id = s[2].id, at = s.findIndex((st) => st.id === id);
    const res = await send(ep, { stop_token_ids: [id] });
    assert.equal(res.choices[0].finish_reason, "stop");
    assert.equal(res.choices[0].stop_reason, id);
    assert.equal(res.usage.completion_tokens, at + 1);
  },
  ignore_eos: async (ep) => {
    const bias = { [EOS]: 100 };
    assert.equal((await send(ep, { logit_bias: bias, ignore_eos: true })).usage.completion_tokens, 8);
    const stopped = await send(ep, { logit_bias: bias, ignore_eos: false });
    assert.equal(stopped.usage.completion_tokens, 1);
    assert.equal(stopped.choices[0].finish_reason, "stop");
  },
  min_tokens: async (ep, ex) => {
    const res = await send(ep, { logit_bias: { [EOS]: 100 }, ignore_eos: false, min_tokens: ex });
    assert.equal(res.usage.completion_tokens, ex + 1);
    assert.equal(res.choices[0].finish_reason, "stop");
  },
  skip_special_tokens: async (ep, ex) => {
    const bias = { logit_bias: { [IM_START]: 100 }, max_tokens: 2 };
    assert.ok(textOf(ep, await send(ep, { ...bias, skip_special_tokens: ex })).includes("<|im_start|>"));
    assert.ok(!textOf(ep, await send(ep, bias)).includes("<|im_start|>"));
  },
  spaces_between_special_tokens: async (ep, ex) => sameAsBaseline(ep, { spaces_between_special_tokens: ex }),
  truncate_prompt_tokens: async (ep, ex) => {
    const res = await send(ep, { truncate_prompt_tokens: ex });
    assert.equal(res.usage.prompt_tokens, ex);
    const ids = (await promptIds(ep)).slice(-ex);
    assert.equal(textOf(ep, res), textOf("completions", await send("completions", { prompt: ids })));
  },
  allowed_token_ids: async (ep, ex) => {
    const { steps: s } = await steps(ep, { allowed_token_ids: ex, temperature: 1 }, 0);
    for (const st of s) assert.ok(ex.includes(st.id), `token ${st.id} is not allowed`);
  },
  prompt_logprobs: async (ep, ex) => {
    // the prompt logprobs of tokens the model generated greedily are their
    // logprobs when generated (rank 1, the same top alternatives)
    const p = await promptIds(ep);
    const { steps: g } = await steps(ep, {}, ex);
    const res = await send("completions", { prompt: [...p, ...g.map((s) => s.id)], max_tokens: 1,
      prompt_logprobs: ex });
    const plp = res.choices[0].prompt_logprobs;
    assert.equal(plp.length, p.length + g.length);
    assert.equal(plp[0], null);
    g.forEach((s, i) => {
      const d = plp[p.length + i];
      const keys = Object.keys(d).length; // the top ex, and the token when it is not among them
      assert.ok(keys >= Math.max(ex, 1) && keys <= ex + 1);
      assert.ok(Math.abs(d[String(s.id)].logprob - s.lp) < 1e-3, `${d[String(s.id)].logprob} vs ${s.lp}`);
      assert.equal(d[String(s.id)].rank, 1);
      s.top.forEach((t, k) => {
        assert.ok(Math.abs(d[String(t.id)].logprob - t.lp) < 1e-3);
        assert.equal(d[String(t.id)].rank, k + 1);
      });
    });
    // every entry: its own token, ranks consistent with the values
    for (const d of plp.slice(1)) {
      const es = Object.values(d);
      for (const e of es) assert.ok(e.logprob <= 0 && e.rank >= 1 && typeof e.decoded_token === "string");
    }
    if (ep === "chat") { // at the top of the chat response, for its prompt
      const c = await send(ep, { prompt_logprobs: ex });
      assert.equal(c.prompt_logprobs.length, c.usage.prompt_tokens);
      const ref = await send("completions", { prompt: p, prompt_logprobs: ex });
      assert.deepEqual(c.prompt_logprobs, ref.choices[0].prompt_logprobs);
    }
    assert.equal((await post(route(ep), { ...baseBody[ep], prompt_logprobs: ex, stream: true })).status, 400);
  },
  add_special_tokens: async (ep, ex) => {
    // Qwen3's tokenizer adds no BOS: the count is /tokenize's with the same flag
    const res = await send(ep, { add_special_tokens: ex });
    if (ep === "completions") {
      const r = await post("/tokenize", { prompt: PROMPT, add_special_tokens: ex });
      assert.equal(res.usage.prompt_tokens, r.json.tokens.length);
    } else {
      assert.equal(res.usage.prompt_tokens, (await promptIds(ep)).length);
    }
  },
  response_format: async (ep, ex) => (ex.type === "text" ? sameAsBaseline(ep, { response_format: ex })
    : constrained(ep, { response_format: ex }, isObjectStart)),
  guided_json: async (ep, ex) => constrained(ep, { guided_json: ex }, isObjectStart),
  guided_regex: async (ep, ex) => constrained(ep, { guided_regex: ex }, matchesWhole(ex)),
  guided_choice: async (ep, ex) => constrained(ep, { guided_choice: ex }, (t) => assert.ok(ex.includes(t), t)),
  guided_grammar: async (ep, ex) => constrained(ep, { guided_grammar: ex }, (t) => assert.equal(t, "a")),
  guided_decoding_backend: async (ep, ex) =>
    constrained(ep, { guided_decoding_backend: ex, guided_regex: "[0-9]{3}" }, matchesWhole("[0-9]{3}")),
  structured_outputs: async (ep, ex) => {
    const verify = ex.json || ex.json_object ? isObjectStart : ex.regex ? matchesWhole(ex.regex)
      : ex.choice ? (t) => assert.ok(ex.choice.includes(t), t) : matchesWhole("a[b-c]");
    await constrained(ep, { structured_outputs: ex }, verify);
  },
  priority: async (ep, ex) => sameAsBaseline(ep, { priority: ex }),
  request_id: async (ep, ex) =>
    assert.equal((await send(ep, { request_id: ex })).id, `${ep === "chat" ? "chatcmpl" : "cmpl"}-${ex}`),
  return_tokens_as_token_ids: async (ep) => {
    const { res, steps: s } = await steps(ep, {}, 1);
    const r = await post("/detokenize", { tokens: s.map((st) => st.id) });
    assert.equal(r.json.prompt, textOf(ep, res));
  },
  echo: async (ep) => {
    if (ep === "chat") {
      const msgs = [...MESSAGES, { role: "assistant", content: "Sure:" }];
      const res = await send(ep, { messages: msgs, echo: true });
      const plain = await send(ep, { messages: msgs });
      assert.equal(textOf(ep, res), "Sure:" + textOf(ep, plain));
      await sameAsBaseline(ep, { echo: true }); // the final message is the user's: nothing echoed
      return;
    }
    const res = await send(ep, { echo: true });
    assert.equal(textOf(ep, res), PROMPT + textOf(ep, await baseline(ep)));
    // with logprobs: the prompt's tokens first, the first without a logprob
    const p = await promptIds(ep);
    const lp = (await send(ep, { echo: true, logprobs: 2 })).choices[0].logprobs;
    const plp = (await send(ep, { prompt_logprobs: 2 })).choices[0].prompt_logprobs;
    assert.equal(lp.tokens.length, p.length + 8);
    assert.equal(lp.token_logprobs[0], null);
    assert.equal(lp.top_logprobs[0], null);
    for (let j = 1; j < p.length; j++) assert.equal(lp.token_logprobs[j], plp[j][String(p[j])].logprob);
    assert.equal(lp.tokens.slice(0, p.length).join(""), PROMPT);
    assert.equal(lp.text_offset[0], 0);
  },
  logprobs: async (ep, ex) => {
    const res = await send(ep, { logprobs: ex });
    if (ep === "chat") assert.equal(res.choices[0].logprobs.content.length, 8);
    else for (const t of res.choices[0].logprobs.top_logprobs) assert.ok(Object.keys(t).length <= ex);
  },
  top_logprobs: async (ep, ex) => {
    const res = await send(ep, { logprobs: true, top_logprobs: ex });
    for (const e of res.choices[0].logprobs.content) assert.equal(e.top_logprobs.length, ex);
    assert.equal((await post(route(ep), { ...baseBody[ep], top_logprobs: ex })).status, 400);
  },
  tools: async (ep, ex) => {
    // the tools reach the template: Qwen3's writes them in a system message
    const a = await send(ep, { tools: ex });
    assert.ok(a.usage.prompt_tokens > (await baseline(ep)).usage.prompt_tokens + 20);
    assert.equal(a.usage.prompt_tokens, (await promptIds(ep, { tools: ex })).length);
  },
  tool_choice: async (ep, ex) => sameAsBaseline(ep, { tool_choice: ex }),
  parallel_tool_calls: async (ep, ex) => sameAsBaseline(ep, { parallel_tool_calls: ex }),
  include_reasoning: async (ep, ex) => sameAsBaseline(ep, { include_reasoning: ex }),
  reasoning_effort: async (ep, ex) => {
    // "none" turns the template's enable_thinking off: Qwen3's empty think block
    const a = await send(ep, { reasoning_effort: ex });
    const b = await send(ep, { chat_template_kwargs: { enable_thinking: false } });
    assert.notEqual(a.usage.prompt_tokens, (await baseline(ep)).usage.prompt_tokens);
    assert.equal(a.usage.prompt_tokens, b.usage.prompt_tokens);
  },
  chat_template_kwargs: async (ep, ex) => {
    const a = await send(ep, { chat_template_kwargs: ex });
    assert.equal(a.usage.prompt_tokens, (await baseline(ep)).usage.prompt_tokens + 4); // "<think>\n\n</think>\n\n"
  },
  add_generation_prompt: async (ep, ex) => {
    const a = await send(ep, { add_generation_prompt: ex });
    const ref = await send("completions", { prompt: "<|im_start|>user\nHi<|im_end|>\n", add_special_tokens: false });
    assert.equal(a.usage.prompt_tokens, ref.usage.prompt_tokens);
    assert.equal(textOf(ep, a), textOf("completions", ref));
  },
  continue_final_message: async (ep, ex) => {
    // the prompt ends with the final message's content (Qwen3's template
    // puts an empty think block before the last assistant turn)
    const msgs = [...MESSAGES, { role: "assistant", content: "The answer is" }];
    const a = await send(ep, { messages: msgs, continue_final_message: ex, add_generation_prompt: false });
    const ref = await send("completions", { add_special_tokens: false,
      prompt: "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nThe answer is" });
    assert.equal(a.usage.prompt_tokens, ref.usage.prompt_tokens);
    assert.equal(textOf(ep, a), textOf("completions", ref));
    // add_generation_prompt left true: refused as vLLM
    const bad = await post(route(ep), { ...baseBody[ep], messages: msgs, continue_final_message: true });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.param, "continue_final_message");
  },
};

for (const f of fields) {
  const name = `${f.endpoint} ${f.field}=${JSON.stringify(f.example)}: ${f.decision}`;
  test(name, async () => {
    if (f.decision === "refused") {
      const r = await post(route(f.endpoint), { ...baseBody[f.endpoint], [f.field]: f.example });
      assert.equal(r.status, 400, r.text);
      const e = r.json.error;
      assert.ok(e.param?.startsWith(f.field) || e.message.includes(f.field), `${e.param}: ${e.message}`);
      return;
    }
    assert.equal(f.decision, "honoured");
    const check = checks[f.field];
    assert.ok(check, `no check for the honoured field ${f.field}`);
    await check(f.endpoint, f.example);
  });
}

test("response ids are random (cmpl-/chatcmpl- and 32 hex digits), created is the request's time", async () => {
  const ids = new Set();
  for (const ep of ["completions", "chat"]) {
    for (let i = 0; i < 3; i++) {
      const t0 = Math.floor(Date.now() / 1000);
      const res = await send(ep, { max_tokens: 1 });
      assert.match(res.id, ep === "chat" ? /^chatcmpl-[0-9a-f]{32}$/ : /^cmpl-[0-9a-f]{32}$/);
      ids.add(res.id);
      assert.ok(res.created >= t0 - 1 && // time() reads the coarse clock
                res.created <= Math.floor(Date.now() / 1000) + 1);
    }
  }
  assert.equal(ids.size, 6);
});

test("/version and /ping", async () => {
  const v = await fetch(`${base}/version`);
  assert.equal(v.status, 200);
  assert.match((await v.json()).version, /^\d+\.\d+\.\d+/);
  assert.equal((await fetch(`${base}/ping`)).status, 200);
  assert.equal((await fetch(`${base}/ping`, { method: "POST" })).status, 200);
});

test("generation_config.json: defaults for unset fields, logged at start-up", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "flashlm-genconfig-"));
  fs.copyFileSync(path.join(modelDir, "config.json"), path.join(dir, "config.json"));
  fs.writeFileSync(path.join(dir, "generation_config.json"),
    JSON.stringify({ temperature: 0.0, top_k: 1, max_new_tokens: 4, eos_token_id: EOS }));
  const p2 = port + 1, b2 = `http://127.0.0.1:${p2}`;
  const s2 = serve(dir, p2, [], "pipe");
  let log = "";
  s2.stderr.on("data", (d) => { log += d; });
  try {
    await waitReady(b2);
    assert.match(log, /Default sampling parameters have been overridden by the model's Hugging Face generation config/);
    assert.match(log, /temperature=0, top_k=1, max_tokens=4/);
    const body = { messages: MESSAGES, ignore_eos: true };
    const a = await post("/v1/chat/completions", body, b2), b = await post("/v1/chat/completions", body, b2);
    assert.equal(a.json.usage.completion_tokens, 4); // max_new_tokens as the default
    assert.equal(a.json.choices[0].message.content, b.json.choices[0].message.content); // greedy by default
    const greedy = await send("chat", { max_tokens: 4 }); // the same dummy weights, greedy
    assert.equal(a.json.choices[0].message.content, textOf("chat", greedy));
    // max_new_tokens caps a larger max_tokens, as vLLM's get_max_tokens
    assert.equal((await post("/v1/chat/completions", { ...body, max_tokens: 10 }, b2)).json.usage.completion_tokens, 4);
    // a field the request sets wins
    const hot = await post("/v1/completions", { prompt: PROMPT, temperature: 1, top_k: -1, seed: 3, max_tokens: 4,
      ignore_eos: true }, b2);
    const ref = await send("completions", { temperature: 1, seed: 3, max_tokens: 4 });
    assert.equal(hot.json.choices[0].text, textOf("completions", ref));
  } finally {
    s2.kill("SIGKILL");
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
