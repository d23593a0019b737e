// stub_server.mjs PORT - a stand-in server for the benchmark client's failure
// test: every third completion answers 500, the others stream 4 tokens and a
// usage event; /tokenize is absent (404), so the client falls back to its
// local tokenizer.
import http from "node:http";

let count = 0;
http.createServer((req, res) => {
  let body = "";
  req.on("data", (d) => (body += d));
  req.on("end", () => {
    if (req.url !== "/v1/completions") {
      res.writeHead(404, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ error: { message: "Not Found", type: "NotFoundError", param: null, code: 404 } }));
      return;
    }
    if (++count % 3 === 0) {
      res.writeHead(500, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ error: { message: "injected failure", type: "InternalError", param: null, code: 500 } }));
      return;
    }
    res.writeHead(200, { "Content-Type": "text/event-stream" });
    let i = 0;
    const tick = setInterval(() => {
      if (i < 4) {
        res.write(`data: ${JSON.stringify({ choices: [{ index: 0, text: ` t${i}`, finish_reason: i === 3 ? "length" : null }] })}\n\n`);
        i++;
      } else {
        clearInterval(tick);
        res.write(`data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: 8, completion_tokens: 4, total_tokens: 12 } })}\n\n`);
        res.end("data: [DONE]\n\n");
      }
    }, 5);
  });
}).listen(Number(process.argv[2]), "127.0.0.1");
