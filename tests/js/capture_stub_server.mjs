// capture_stub_server.mjs PORT LOG - a stand-in OpenAI server for the
// benchmark client's request and goodput tests. Every completion request's
// path, headers and body go to LOG, one JSON line each. /v1/completions and
// /v1/chat/completions stream 4 tokens (text, or chat deltas after a role
// delta) and a usage event; a request whose x-request-id ends in an even
// number waits 300 ms before its first token, the others none (so a TTFT
// objective of 150 ms is met by exactly the odd ones). /tokenize is absent
// (404): the client counts with its local tokenizer.
import fs from "node:fs";
import http from "node:http";

const log = process.argv[3];
http.createServer((req, res) => {
  let body = "";
  req.on("data", (d) => (body += d));
  req.on("end", () => {
    let parsed = null;
    try { parsed = JSON.parse(body); } catch { /* logged as null */ }
    const chat = req.url === "/v1/chat/completions";
    if (req.url !== "/v1/completions" && !chat) {
      res.writeHead(404, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ error: { message: "Not Found", type: "NotFoundError", param: null, code: 404 } }));
      return;
    }
    fs.appendFileSync(log, JSON.stringify({ path: req.url, headers: req.headers, body: parsed }) + "\n");
    const id = req.headers["x-request-id"] || "";
    const m = /(\d+)$/.exec(id);
    const delay = m && Number(m[1]) % 2 === 0 ? 300 : 0;
    res.writeHead(200, { "Content-Type": "text/event-stream" });
    const event = (o) => res.write(`data: ${JSON.stringify(o)}\n\n`);
    const piece = (i) => chat
      ? { choices: [{ index: 0, delta: i < 0 ? { role: "assistant", content: "" } : { content: ` t${i}` }, finish_reason: i === 3 ? "length" : null }] }
      : { choices: [{ index: 0, text: ` t${i}`, finish_reason: i === 3 ? "length" : null }] };
    setTimeout(() => {
      let i = chat ? -1 : 0;
      const tick = setInterval(() => {
        if (i < 4) {
          event(piece(i));
          i++;
        } else {
          clearInterval(tick);
          event({ choices: [], usage: { prompt_tokens: 8, completion_tokens: 4, total_tokens: 12 } });
          res.end("data: [DONE]\n\n");
        }
      }, 5);
    }, delay);
  });
}).listen(Number(process.argv[2]), "127.0.0.1");
