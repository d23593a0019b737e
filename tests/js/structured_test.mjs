// structured_test.mjs FLASHLM MODEL_DIR TOKENIZER_DIR - structured output
// end to end: a real `flashlm serve` (random weights, the real Qwen3
// vocabulary) sampled at temperature 1 through the official openai client.
// Every output of a JSON schema with enum, integer ranges, a boolean, a
// nested object, an array with maxItems, strings with maxLength and an
// optional anyOf must parse and validate against the schema (checked by a
// validator written here from the keywords' definitions), 100 of 100;
// regex, choice and EBNF outputs must match; n > 1 and streaming too; bad
// schemas are 400s naming what they refuse.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import OpenAI from "openai";
import { waitReady } from "./serve_util.mjs";

const [bin, modelDir, tokDir] = process.argv.slice(2);
const port = 16001 + (process.pid % 4000) * 2;
const base = `http://127.0.0.1:${port}`;
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "none", maxRetries: 0 });
let server;

before(async () => {
  server = spawn(bin, ["serve", modelDir, "--load-format", "dummy", "--tokenizer", tokDir,
    "--port", String(port), "--host", "127.0.0.1", "--served-model-name", "tiny",
    "--max-model-len", "1024", "--max-num-seqs", "64"], { stdio: ["ignore", "inherit", "inherit"] });
  await waitReady(base);
});

after(() => {
  if (server.exitCode === null) server.kill("SIGKILL");
});

const schema = {
  type: "object",
  properties: {
    name: { type: "string", maxLength: 10 },
    kind: { enum: ["cat", "dog", "bird"] },
    age: { type: "integer", minimum: 0, maximum: 120 },
    active: { type: "boolean" },
    address: {
      type: "object",
      properties: { city: { type: "string", maxLength: 8 }, zip: { type: "integer", minimum: 10000, maximum: 99999 } },
      required: ["city", "zip"],
    },
    tags: { type: "array", items: { type: "string", maxLength: 5 }, maxItems: 3 },
    note: { anyOf: [{ type: "string", maxLength: 6 }, { type: "null" }] },
  },
  required: ["name", "kind", "age", "active", "address", "tags"],
};

// The schema's keywords, from their definitions (JSON Schema 2020-12), with
// xgrammar's strict default: no properties beyond those listed.
function validate(v, s, where = "$") {
  const fail = (why) => { throw new Error(`${where}: ${why} (${JSON.stringify(v)})`); };
  if (s.anyOf) {
    const errors = [];
    for (const alt of s.anyOf) {
      try { validate(v, alt, where); return; } catch (e) { errors.push(e.message); }
    }
    fail(`matches no anyOf branch: ${errors.join("; ")}`);
  }
  if (s.enum) {
    if (!s.enum.some((e) => JSON.stringify(e) === JSON.stringify(v))) fail("not in enum");
    return;
  }
  switch (s.type) {
    case "object": {
      if (typeof v !== "object" || v === null || Array.isArray(v)) fail("not an object");
      for (const r of s.required ?? []) if (!(r in v)) fail(`lacks required ${r}`);
      for (const [k, x] of Object.entries(v)) {
        if (!(k in s.properties)) fail(`has ${k}, not a property`);
        validate(x, s.properties[k], `${where}.${k}`);
      }
      return;
    }
    case "array":
      if (!Array.isArray(v)) fail("not an array");
      if (s.maxItems !== undefined && v.length > s.maxItems) fail("too many items");
      v.forEach((x, i) => validate(x, s.items, `${where}[${i}]`));
      return;
    case "string":
      if (typeof v !== "string") fail("not a string");
      if (s.maxLength !== undefined && [...v].length > s.maxLength) fail("longer than maxLength");
      return;
    case "integer":
      if (!Number.isInteger(v)) fail("not an integer");
      if (s.minimum !== undefined && v < s.minimum) fail("below minimum");
      if (s.maximum !== undefined && v > s.maximum) fail("above maximum");
      return;
    case "boolean":
      if (typeof v !== "boolean") fail("not a boolean");
      return;
    case "null":
      if (v !== null) fail("not null");
      return;
    default:
      throw new Error(`the test's validator lacks type ${s.type}`);
  }
}

test("validator: rejects what the schema forbids", () => {
  const good = { name: "a", kind: "cat", age: 3, active: true, address: { city: "x", zip: 12345 }, tags: [] };
  validate(good, schema);
  const bad = [
    { ...good, kind: "cow" }, { ...good, age: 121 }, { ...good, age: 1.5 }, { ...good, name: "abcdefghijk" },
    { ...good, tags: ["a", "b", "c", "d"] }, { ...good, extra: 1 }, { ...good, address: { city: "x" } },
    { ...good, note: 3 }, { ...good, active: "yes" },
  ];
  for (const b of bad) assert.throws(() => validate(b, schema));
});

const responseFormat = { type: "json_schema", json_schema: { name: "pet", schema, strict: true } };

test("json_schema: 100 of 100 outputs at temperature 1 parse and validate", async () => {
  const results = await Promise.all(Array.from({ length: 100 }, (_, i) =>
    client.chat.completions.create({
      model: "tiny", messages: [{ role: "user", content: `Describe pet number ${i} as JSON.` }],
      temperature: 1, seed: i, max_tokens: 600, response_format: responseFormat,
      // compact JSON (xgrammar's ", " and ": "): random weights would otherwise spend every token on whitespace
      structured_outputs: { disable_any_whitespace: true },
    })));
  let valid = 0, tokens = 0, withNote = 0;
  for (const r of results) {
    const c = r.choices[0];
    assert.equal(c.finish_reason, "stop", c.message.content);
    const v = JSON.parse(c.message.content);
    validate(v, schema);
    assert.match(c.message.content, /^\{"name": "/); // the schema's order, xgrammar's separators
    valid++;
    tokens += r.usage.completion_tokens;
    withNote += "note" in v;
  }
  assert.equal(valid, 100);
  console.log(`  100/100 valid, ${tokens / 100} tokens each on average, ${withNote} with the optional note`);
  assert.ok(withNote > 0 && withNote < 100); // the optional property is sampled both ways
});

test("json_schema: whitespace_pattern and n > 1 through guided_json, streamed and not", async () => {
  const req = { model: "tiny", prompt: "JSON:", temperature: 1, seed: 7, n: 4, max_tokens: 600,
    guided_json: schema, guided_whitespace_pattern: " ?" };
  const full = await client.completions.create(req);
  assert.equal(full.choices.length, 4);
  for (const c of full.choices) {
    assert.equal(c.finish_reason, "stop");
    validate(JSON.parse(c.text), schema);
    assert.doesNotMatch(c.text, /\s\s|\n/); // at most one space wherever whitespace goes
  }
  const stream = await client.completions.create({ ...req, stream: true });
  const texts = ["", "", "", ""];
  for await (const chunk of stream) for (const c of chunk.choices) texts[c.index] += c.text;
  assert.deepEqual(texts, full.choices.map((c) => c.text));
});

test("regex, choice and EBNF outputs match", async () => {
  const regex = "[a-z]{2,6}-\\d{3}(\\.[A-Z]{1,4})?";
  const grammar = 'root ::= "(" num (", " num){0,3} ")"\nnum ::= [1-9] [0-9]{0,2}\n';
  const choices = ["alpha", "beta gamma", "δ"];
  const ask = (extra, i) => client.completions.create({ model: "tiny", prompt: `try ${i}`, temperature: 1, seed: i,
    max_tokens: 100, ...extra });
  const runs = await Promise.all(Array.from({ length: 20 }, (_, i) => Promise.all([
    ask({ structured_outputs: { regex } }, i), ask({ guided_choice: choices }, i),
    ask({ structured_outputs: { choice: choices } }, i), ask({ structured_outputs: { grammar } }, i),
    ask({ guided_regex: "\\d+(,\\d+)*" , max_tokens: 400 }, i),
  ])));
  const seen = new Set();
  for (const [r, gc, sc, g, d] of runs) {
    for (const x of [r, gc, sc, g, d]) assert.equal(x.choices[0].finish_reason, "stop", x.choices[0].text);
    assert.match(r.choices[0].text, new RegExp(`^${regex}$`));
    assert.ok(choices.includes(gc.choices[0].text), gc.choices[0].text);
    assert.ok(choices.includes(sc.choices[0].text), sc.choices[0].text);
    assert.match(g.choices[0].text, /^\([1-9][0-9]{0,2}(, [1-9][0-9]{0,2}){0,3}\)$/);
    assert.match(d.choices[0].text, /^\d+(,\d+)*$/);
    seen.add(gc.choices[0].text);
  }
  assert.equal(seen.size, 3); // at temperature 1 each choice comes up
});

test("json_object: outputs that end are JSON objects", async () => {
  const results = await Promise.all(Array.from({ length: 10 }, (_, i) => client.chat.completions.create({
    model: "tiny", messages: [{ role: "user", content: "JSON please" }], temperature: 1, seed: 100 + i,
    max_tokens: 300, response_format: { type: "json_object" }, structured_outputs: { whitespace_pattern: "" },
  })));
  let ended = 0;
  for (const r of results) {
    const text = r.choices[0].message.content;
    assert.ok(text.startsWith("{"), text);
    if (r.choices[0].finish_reason !== "stop") continue;
    const v = JSON.parse(text);
    assert.ok(typeof v === "object" && v !== null && !Array.isArray(v));
    ended++;
  }
  console.log(`  ${ended}/10 json_object outputs ended within 300 tokens, all objects`);
});

test("refusals name the field and what in it is unsupported", async () => {
  const cases = [
    [{ structured_outputs: { json: { type: "integer", multipleOf: 3 } } }, "structured_outputs", "multipleOf"],
    [{ response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "string", format: "email" } } } },
      "response_format", "format 'email'"],
    [{ structured_outputs: { regex: "(a)\\1" } }, "structured_outputs", "backreferences"],
    [{ guided_grammar: "start: \"a\"" }, "guided_grammar", "Lark"],
    [{ structured_outputs: { regex: "a", choice: ["a"] } }, "structured_outputs", "both constrain"],
    [{ structured_outputs: { json: {} }, response_format: { type: "json_object" } }, "response_format", "both constrain"],
    [{ structured_outputs: { choice: ["a"] }, guided_regex: "a" }, "structured_outputs", "guided_"],
    [{ structured_outputs: { jsonn: {} } }, "structured_outputs", "jsonn"],
    [{ guided_decoding_backend: "outlines", guided_regex: "a" }, "guided_decoding_backend", "xgrammar"],
    [{ structured_outputs: { regex: "a", whitespace_pattern: " " } }, "structured_outputs", "JSON constraints only"],
    [{ response_format: { type: "json_schema", json_schema: { schema: {} } } }, "response_format", "name"],
  ];
  for (const [extra, param, needle] of cases) {
    const r = await fetch(`${base}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", prompt: "x", max_tokens: 4, ...extra }) });
    assert.equal(r.status, 400, JSON.stringify(extra));
    const body = await r.json();
    assert.equal(body.error.param, param, JSON.stringify(body));
    assert.ok(body.error.message.includes(needle), body.error.message);
  }
});
