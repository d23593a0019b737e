// serve_util.mjs - what the server tests share: waiting for a spawned
// `flashlm serve` to answer /health with 200.
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitReady(base, tries = 300) {
  for (let i = 0; i < tries; i++) {
    try {
      if ((await fetch(`${base}/health`)).status === 200) return;
    } catch { /* not listening yet */ }
    await sleep(100);
  }
  throw new Error("the server did not become ready");
}
