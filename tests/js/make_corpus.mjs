// make_corpus.mjs OUT FILE... - writes the files (gzip ones decompressed) as
// one corpus: per file a u32 little-endian byte length, then its bytes.
// The input of `flashlm bench tokenize` and bench_tokenize.mjs.
import fs from "node:fs";
import zlib from "node:zlib";

const parts = [];
let bytes = 0;
for (const file of process.argv.slice(3)) {
  let data = fs.readFileSync(file);
  if (file.endsWith(".gz")) data = zlib.gunzipSync(data);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(data.length);
  parts.push(len, data);
  bytes += data.length;
}
fs.writeFileSync(process.argv[2], Buffer.concat(parts));
console.log(`corpus: ${process.argv.length - 3} documents, ${(bytes / 1e6).toFixed(2)} MB`);
