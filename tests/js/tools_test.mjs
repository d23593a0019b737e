// tools_test.mjs PARROT_SERVE MODEL_DIR TOKENIZER_DIR - tool calls and
// reasoning end to end: a real `flashlm serve` (parrot_serve: flashlm's
// server over a scripted runner whose reply is the prompt's last message,
// token for token) with vLLM's --enable-auto-tool-choice --tool-call-parser
// hermes --reasoning-parser qwen3, driven by the official openai client.
//
// Each test writes the reply it wants as the user's message: the model
// (Qwen3's real vocabulary and chat template) then "writes" it, and the
// server must split it as vLLM does: <think>...</think> into
// reasoning_content, each <tool_call> block into an OpenAI tool call (id
// chatcmpl-tool-..., type function, arguments a JSON string as Python's
// json.dumps writes them), finish_reason "tool_calls"; streamed, in vLLM's
// delta shapes, which the client's own stream accumulator and tool runner
// must take.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import OpenAI from "openai";
import { waitReady } from "./serve_util.mjs";

const [bin, modelDir, tokDir] = process.argv.slice(2);
const port = 18000 + (process.pid % 4000) * 2;
const base = `http://127.0.0.1:${port}`;
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "none", maxRetries: 0 });
let server;

before(async () => {
  server = spawn(bin, [modelDir, "--load-format", "dummy", "--tokenizer", tokDir, "--port", String(port),
    "--host", "127.0.0.1", "--served-model-name", "tiny", "--max-model-len", "1024", "--block-size", "16",
    "--device", "cpu", "--enable-auto-tool-choice", "--tool-call-parser", "hermes", "--reasoning-parser", "qwen3"],
  { stdio: ["ignore", "inherit", "inherit"] });
  await waitReady(base);
});
after(() => { if (server.exitCode === null) server.kill("SIGKILL"); });

async function post(path, body) {
  const r = await fetch(`${base}${path}`, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body) });
  return { status: r.status, json: await r.json() };
}

const weatherTool = { type: "function", function: { name: "get_weather", description: "The weather in a city",
  parameters: { type: "object", properties: { city: { type: "string" }, days: { type: "integer" } },
    required: ["city"] } } };
const timeTool = { type: "function", function: { name: "get_time", parameters: { type: "object", properties: {} } } };
const tools = [weatherTool, timeTool];

// A reply as Qwen3 writes one: its thinking, then two calls (spaced and
// escaped as a model may write JSON; the server rewrites the arguments).
const THINKING = "\nThe user wants the weather and the time.\n";
const REPLY = `<think>${THINKING}</think>\n\n` +
  '<tool_call>\n{"name": "get_weather", "arguments": {"city":"Paris","days":2, "note": "caf\\u00e9"}}\n</tool_call>\n' +
  '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>';
const ARGS = ['{"city": "Paris", "days": 2, "note": "café"}', "{}"];
const says = (text, extra = {}) => ({ model: "tiny", messages: [{ role: "user", content: text }], tools, ...extra });

function assertCalls(calls, n = 2) {
  assert.equal(calls.length, n);
  const names = ["get_weather", "get_time"];
  for (let i = 0; i < n; i++) {
    assert.match(calls[i].id, /^chatcmpl-tool-[0-9a-f]{32}$/);
    assert.equal(calls[i].type, "function");
    assert.equal(calls[i].function.name, names[i]);
    assert.equal(calls[i].function.arguments, ARGS[i]);
  }
  assert.notEqual(calls[0].id, calls[1]?.id);
}

test("tool calls and reasoning_content, not streamed", async () => {
  const r = await client.chat.completions.create(says(REPLY));
  const choice = r.choices[0];
  assert.equal(choice.finish_reason, "tool_calls");
  assert.equal(choice.message.reasoning_content, THINKING);
  assert.equal(choice.message.content, null); // only whitespace outside the blocks: null, as vLLM
  assertCalls(choice.message.tool_calls);
  assert.deepEqual(JSON.parse(choice.message.tool_calls[0].function.arguments),
    { city: "Paris", days: 2, note: "café" });
});

test("tool calls and reasoning_content, streamed: vLLM's deltas", async () => {
  const stream = await client.chat.completions.create(says(REPLY, { stream: true }));
  let reasoning = "", content = "", finish = null, chunks = 0;
  const calls = [];
  for await (const chunk of stream) {
    chunks++;
    const c = chunk.choices[0];
    if (!c) continue;
    reasoning += c.delta.reasoning_content ?? "";
    content += c.delta.content ?? "";
    for (const d of c.delta.tool_calls ?? []) {
      if (d.id) { // a call's first delta: its id, type and name
        assert.equal(calls[d.index], undefined);
        assert.equal(d.type, "function");
        assert.ok(d.function.name);
        calls[d.index] = { id: d.id, type: d.type, function: { name: d.function.name, arguments: "" } };
      } else {
        assert.ok(calls[d.index], "a delta before the call's first");
        assert.equal(d.function.name, undefined);
      }
      calls[d.index].function.arguments += d.function.arguments ?? "";
    }
    if (c.finish_reason) finish = c.finish_reason;
  }
  assert.equal(reasoning, THINKING);
  assert.equal(content, "");
  assertCalls(calls);
  assert.equal(finish, "tool_calls");
  assert.ok(chunks > 20, "the arguments come in pieces");
  // the client's own accumulator takes the deltas as OpenAI's
  const final = await client.chat.completions.stream(says(REPLY)).finalChatCompletion();
  assertCalls(final.choices[0].message.tool_calls);
  assert.equal(final.choices[0].finish_reason, "tool_calls");
});

test("the client's tool runner: call, run the tool, send its result back, answer", async () => {
  // the second request's last message is the tool's result, which the
  // parrot repeats: the answer shows the result reached the prompt
  const seen = [];
  const runner = client.chat.completions.runTools({ model: "tiny", messages: [{ role: "user", content:
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>' }],
  tools: [{ type: "function", function: { name: "get_weather", parameters: weatherTool.function.parameters,
    parse: JSON.parse, function: (args) => { seen.push(args); return "12 C, rain"; } } }] });
  const answer = await runner.finalContent();
  assert.deepEqual(seen, [{ city: "Oslo" }]);
  assert.equal(answer, "<tool_response>\n12 C, rain\n</tool_response>");
});

test("the tool-call history reaches the template as vLLM hands it over", async () => {
  const first = await client.chat.completions.create(says(REPLY));
  const message = first.choices[0].message; // content null, arguments JSON strings
  const history = [{ role: "user", content: "Weather and time?" }, message,
    { role: "tool", tool_call_id: message.tool_calls[0].id, content: "sunny" },
    { role: "tool", tool_call_id: message.tool_calls[1].id, content: "noon" }];
  const r = await post("/tokenize", { model: "tiny", messages: history, tools });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const text = (await post("/detokenize", { model: "tiny", tokens: r.json.tokens })).json.prompt;
  const want = "<|im_start|>user\nWeather and time?<|im_end|>\n<|im_start|>assistant\n<think>\n" +
    THINKING.trim() + "\n</think>\n\n" +
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 2, "note": "café"}}\n</tool_call>\n' +
    '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call><|im_end|>\n' +
    "<|im_start|>user\n<tool_response>\nsunny\n</tool_response>\n<tool_response>\nnoon\n</tool_response><|im_end|>\n" +
    "<|im_start|>assistant\n";
  assert.ok(text.endsWith(want), text);
  // the tools, in the system message as vLLM dumps them (description null when absent)
  assert.ok(text.startsWith("<|im_start|>system\n# Tools\n\n"), text);
  assert.ok(text.includes('{"type": "function", "function": {"name": "get_time", "description": null, ' +
    '"parameters": {"type": "object", "properties": {}}}}'), text);
  const again = await client.chat.completions.create({ model: "tiny", messages: history, tools });
  assert.equal(again.choices[0].finish_reason, "stop");
});

test("reasoning alone: split streamed and not; cut off it stays reasoning", async () => {
  const text = "<think>\nTwo and two.\n</think>\n\nIt is 4.";
  const r = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: text }] });
  assert.equal(r.choices[0].message.reasoning_content, "\nTwo and two.\n");
  assert.equal(r.choices[0].message.content, "\n\nIt is 4.");
  assert.equal(r.choices[0].finish_reason, "stop");
  const stream = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: text }],
    stream: true });
  let reasoning = "", content = "";
  for await (const chunk of stream) {
    reasoning += chunk.choices[0]?.delta.reasoning_content ?? "";
    content += chunk.choices[0]?.delta.content ?? "";
  }
  assert.equal(reasoning, "\nTwo and two.\n");
  assert.equal(content, "\n\nIt is 4.");
  const cut = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: text }],
    max_tokens: 4 });
  assert.equal(cut.choices[0].finish_reason, "length");
  assert.equal(cut.choices[0].message.content, null);
  assert.ok(cut.choices[0].message.reasoning_content.length > 0);
  const hidden = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: text }],
    include_reasoning: false });
  assert.equal(hidden.choices[0].message.reasoning_content, null);
  assert.equal(hidden.choices[0].message.content, "\n\nIt is 4.");
});

test("thinking disabled by the template: the reply is all content", async () => {
  // enable_thinking false closes an empty think block in the prompt; vLLM
  // then reads the reply as content, tags and all
  const text = "Plain <think>not a block</think> answer.";
  const r = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: text }],
    chat_template_kwargs: { enable_thinking: false } });
  assert.equal(r.choices[0].message.content, text);
  assert.equal(r.choices[0].message.reasoning_content, null);
});

test("malformed tool-call text is never lost: vLLM's content", async () => {
  const bad = 'Checking. <tool_call>\n{"name": "get_weather", "arguments": {"city": Paris}}\n</tool_call>';
  const r = await client.chat.completions.create(says(bad));
  assert.equal(r.choices[0].finish_reason, "stop");
  assert.equal(r.choices[0].message.content, bad);
  assert.deepEqual(r.choices[0].message.tool_calls, []);
  // streamed: the block breaks before its name is known, so all of it is content
  const noName = 'Checking. <tool_call>\n{"nme": "x"}\n</tool_call>';
  const stream = await client.chat.completions.create(says(noName, { stream: true }));
  let content = "", finish = null;
  for await (const chunk of stream) {
    content += chunk.choices[0]?.delta.content ?? "";
    assert.equal(chunk.choices[0]?.delta.tool_calls, undefined);
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(content, noName);
  assert.equal(finish, "stop");
});

test("parallel_tool_calls false shows the first call; tool_choice none parses none", async () => {
  const one = await client.chat.completions.create(says(REPLY, { parallel_tool_calls: false }));
  assertCalls(one.choices[0].message.tool_calls, 1);
  const none = await client.chat.completions.create(says(REPLY, { tool_choice: "none" }));
  assert.equal(none.choices[0].finish_reason, "stop");
  assert.equal(none.choices[0].message.tool_calls, undefined);
  assert.ok(none.choices[0].message.content.startsWith("\n\n<tool_call>\n{\"name\": \"get_weather\""));
  assert.equal(none.choices[0].message.reasoning_content, THINKING);
});

test("tool_choice required and a named function are refused, naming tool_choice", async () => {
  for (const tool_choice of ["required", { type: "function", function: { name: "get_time" } }]) {
    await assert.rejects(client.chat.completions.create(says("x", { tool_choice })), (e) => {
      assert.equal(e.status, 400);
      assert.equal(e.param, "tool_choice");
      assert.match(e.message, /constrained decoding/);
      return true;
    });
  }
  const r = await post("/v1/chat/completions", says("x", { tool_choice: { type: "function",
    function: { name: "nope" } } }));
  assert.equal(r.status, 400);
  assert.match(r.json.error.message, /does not match any of the specified `tools`/);
});
