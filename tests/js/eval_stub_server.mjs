// eval_stub_server.mjs PORT LOG - a chat-completions server whose answers are
// known, for `flashlm bench eval`'s test. Each question of the synthetic CSV
// carries a tag that says how to answer it; the correct choice is the one
// whose text starts with "Right" (found in the prompt as "(X) Right"):
//   [correct]        "...\n**Answer:** X", X the correct letter
//   [correct-boxed]  "\boxed{X}"
//   [wrong]          "Answer: Y", Y the letter after the correct one
//   [unparseable]    text with no letter in it (and a NUL, which is text)
//   [http-error]     500
//   [slow-timeout]   the correct answer after 5 s (past the test's timeout)
//   [slow-ok]        the correct answer after 0.3 s
//   [junk]           200 with a body that is not JSON
//   [no-content]     200, content null, finish_reason "length"
// A request not shaped as gpt-oss's sampler sends it (model, one user
// message in the template, reasoning_effort, temperature, max_tokens) is a
// 400 naming what is wrong. Every request is logged to LOG as a JSON line;
// GET /stats answers the peak number of requests in flight.
import fs from "node:fs";
import http from "node:http";

const [port, log] = [Number(process.argv[2]), process.argv[3]];
const template = /^([\s\S]*)\n\n\(A\) ([\s\S]*)\n\(B\) ([\s\S]*)\n\(C\) ([\s\S]*)\n\(D\) ([\s\S]*)\n\nExpress your final answer as the corresponding option 'A', 'B', 'C', or 'D'\.$/;
let inFlight = 0;
let peak = 0;

function reply(res, status, body) {
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(typeof body === "string" ? body : JSON.stringify(body));
}

function completion(content, finish = "stop") {
  return {
    id: "chatcmpl-stub", object: "chat.completion", created: 0, model: "stub",
    choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: finish }],
    usage: { prompt_tokens: 10, completion_tokens: content ? content.length : 64, total_tokens: 0 },
  };
}

function shapeError(body) {
  if (typeof body.model !== "string") return "model";
  if (!Array.isArray(body.messages) || body.messages.length !== 1) return "messages: one user message";
  const m = body.messages[0];
  if (m.role !== "user" || typeof m.content !== "string" || !template.test(m.content)) return "messages[0]: the template";
  if (!["low", "medium", "high"].includes(body.reasoning_effort)) return "reasoning_effort";
  if (typeof body.temperature !== "number" || !Number.isInteger(body.max_tokens)) return "temperature, max_tokens";
  return null;
}

http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/stats") return reply(res, 200, { peak });
  let raw = "";
  req.on("data", (d) => (raw += d));
  req.on("end", () => {
    if (req.url !== "/v1/chat/completions") return reply(res, 404, { error: { message: "Not Found" } });
    let body;
    try {
      body = JSON.parse(raw);
    } catch {
      return reply(res, 400, { error: { message: "body is not JSON" } });
    }
    fs.appendFileSync(log, JSON.stringify({ auth: req.headers.authorization ?? null, body }) + "\n");
    const bad = shapeError(body);
    if (bad) return reply(res, 400, { error: { message: `stub: bad request field ${bad}` } });
    const prompt = body.messages[0].content;
    const tag = (prompt.match(/\[([a-z-]+)\]/) ?? [])[1];
    const right = (prompt.match(/^\(([ABCD])\) Right/m) ?? [])[1];
    const next = "BCDA"["ABCD".indexOf(right)];
    inFlight++;
    peak = Math.max(peak, inFlight);
    let open = true;
    const release = () => {
      if (open) inFlight--;
      open = false;
    };
    res.on("close", release); // answered, or the client gave up (its timeout)
    const done = (status, out) => {
      release();
      if (!res.destroyed) reply(res, status, out);
    };
    switch (tag) {
      case "correct": return done(200, completion(`Let me think.\nThe second option fails.\n**Answer:** ${right}`));
      case "correct-boxed": return done(200, completion(`So it is \\boxed{${right}}`));
      case "wrong": return done(200, completion(`Considering everything,\nAnswer: ${next}`));
      case "unparseable": return done(200, completion("I cannot\u0000 decide."));
      case "http-error": return done(500, { error: { message: "injected failure", type: "InternalError", code: 500 } });
      case "slow-timeout": return setTimeout(() => done(200, completion(`Answer: ${right}`)), 5000);
      case "slow-ok": return setTimeout(() => done(200, completion(`Answer: ${right}`)), 300);
      case "junk": return done(200, "<html>this is not JSON</html>");
      case "no-content": return done(200, completion(null, "length"));
      default: return done(400, { error: { message: `stub: no tag in the question (${tag})` } });
    }
  });
}).listen(port, "127.0.0.1");
