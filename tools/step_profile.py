#!/usr/bin/env python3
"""step_profile.py - where a decode step's time goes: GPU time per kernel category, and the host's share.

Drives `flashlm generate` (dummy weights, every prompt at once through the
engine): --batch prompts of --prompt-len random ids, greedy, --ignore-eos.
The scheduler prefills them in chunks over P steps (P about batch x
prompt-len / (max-num-batched-tokens - batch)), the first sequences
decoding beside the later chunks; from step P + 1 every sequence decodes
together (the CUDA decode graph, as serving runs it) until the first ones
reach max_tokens N, after which the batch shrinks over about P steps. So:

  1. wall time per decode step, without ncu: two runs that differ only in
     max_tokens, N and N + --wall-steps, with N > P: the second has exactly
     --wall-steps more full-batch decode steps (the prefill, the start-up
     and the shrinking tail are the same), so (t2 - t1) / wall-steps is the
     mean wall time of one, at contexts about prompt-len + N .. + wall-steps.
     The start-up's run-to-run noise does not cancel, so each pair runs
     --repeat times and every estimate is printed.
  2. kernels, under ncu (`--clock-control none --cache-control none
     --graph-profiling node`, one metric: gpu__time_duration.sum, so no
     kernel is replayed): one run of N tokens. The launches are cut into
     forward passes where the embedding kernel starts one; the full-batch
     decode passes are those without a prefill kernel whose sampling
     launch has the largest grid (a CTA a row); the last --steps of them
     are reported.

Prints, per profiled step, the GPU time of each category (first regex of
CATEGORIES that matches the kernel's name: cuBLASLt's GEMMs, the attention
kernels, the routed experts, norms/rope/embedding, sampling, the rest), the
sum, and host = wall - sum: time the GPU waits for the host (scheduling,
the metadata upload, sampling's round trip) if the kernels run back to back.
The ncu run profiles every launch of the prefill too (a few thousand
kernels at B256 x 1000: a minute or two); a smaller --prompt-len is faster
but changes the decode attention's context.

usage (on the GPU machine, from the repo root, after tools/gpu_check.sh bundle here):
  python3 tools/step_profile.py [--flashlm build/flashlm] [--model openai/gpt-oss-20b]
      [--batch 256] [--prompt-len 1000] [--steps 4] [--wall-steps 256] [--repeat 2]
      [--engine-args "--block-size 128 --max-num-batched-tokens 8192"] [--keep DIR]
e.g. `python3 tools/step_profile.py --model Qwen/Qwen3-0.6B --batch 256`. Needs ncu on PATH or in
/usr/local/cuda/bin; sets LD_LIBRARY_PATH to the binary's lib/ (as gpu_check.sh does).
"""
import argparse
import csv
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

# (category, regex over the kernel's function name, lower case); the first match wins
CATEGORIES = [
    ("attention", r"decode_kernel|prefill_kernel|prefill_sm90|attn|flash|fmha"),
    ("MoE", r"grouped_gemm|router_kernel|route_kernel|permute_kernel|combine_kernel"),  # cuda/moe.cu
    ("GEMM", r"gemm|nvjet|cutlass|xmma|cublas|splitk|sm90_|sm80_"),
    ("norm/rope", r"norm|rope|embed"),
    ("sampling", r"sampl|argmax"),
]
NAMES = [c for c, _ in CATEGORIES] + ["other"]
STEP_START = re.compile(r"embed")  # the first kernel of every forward pass


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def category(kernel):
    name = kernel.lower()
    return next((c for c, rx in CATEGORIES if re.search(rx, name)), "other")


def generate_cmd(args, prompts, max_tokens):
    return ([args.flashlm, "generate", args.model, "--load-format", "dummy", "--prompts-file", prompts,
             "--max-tokens", str(max_tokens), "--ignore-eos", "--temperature", "0",
             "--max-num-seqs", str(args.batch)] + shlex.split(args.engine_args))


def timed(cmd, env):
    t0 = time.monotonic()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


def kernels(path):
    """[(function name, ns, grid x)] in launch order from ncu's raw CSV page (its header, a units row, then
    a row a kernel; ncu's own ==PROF== lines skipped)."""
    with open(path) as f:
        rows = list(csv.reader(line for line in f if line.startswith('"')))
    head = rows[0]
    name, dur, grid = head.index("Kernel Name"), head.index("gpu__time_duration.sum"), head.index("Grid Size")
    out = []
    for r in rows[1:]:
        try:
            out.append((r[name], float(r[dur].replace(",", "")), int(re.findall(r"\d+", r[grid])[0])))
        except (ValueError, IndexError):  # the units row
            continue
    return out


def decode_passes(launches):
    """The forward passes of launches ([(name, ns, grid x)]) that decode the full batch, each {category: ms}."""
    passes = []
    for name, ns, grid in launches:
        if STEP_START.search(name.lower()) or not passes:
            passes.append({"ms": {c: 0.0 for c in NAMES}, "prefill": False, "rows": 0})
        p = passes[-1]
        p["ms"][category(name)] += ns / 1e6
        p["prefill"] |= "prefill" in name.lower()
        if category(name) == "sampling":
            p["rows"] = max(p["rows"], grid)
    decode = [p for p in passes if not p["prefill"] and p["rows"] > 0]
    full = max((p["rows"] for p in decode), default=0)
    return [p["ms"] for p in decode if p["rows"] == full], full


def prefill_steps(args):
    """P, the scheduler's prefill steps, estimated with a margin of 2."""
    words = shlex.split(args.engine_args)
    budget = 16384  # generate's default max-num-batched-tokens on a GPU of 70 GiB or more (vLLM's offline one)
    for i, w in enumerate(words):
        if w == "--max-num-batched-tokens" and i + 1 < len(words):
            budget = int(words[i + 1])
        elif w.startswith("--max-num-batched-tokens="):
            budget = int(w.split("=", 1)[1])
    return -(-args.batch * args.prompt_len // max(1, budget - args.batch)) + 2


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--flashlm", default="build/flashlm")
    ap.add_argument("--model", default="openai/gpt-oss-20b", help="a built-in config (dummy weights)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--prompt-len", type=int, default=1000)
    ap.add_argument("--id-range", type=int, default=20000, help="prompt ids are drawn from [100, this)")
    ap.add_argument("--steps", type=int, default=4, help="decode steps profiled by ncu")
    ap.add_argument("--wall-steps", type=int, default=256, help="decode steps the wall-time pair differs by")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--engine-args", default="--block-size 128 --max-num-batched-tokens 8192")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--first", type=int, help="max_tokens of the shorter run (default: estimated P + steps + 2)")
    ap.add_argument("--keep", help="keep the prompts and ncu's CSV in this directory")
    args = ap.parse_args()
    ncu = shutil.which("ncu") or "/usr/local/cuda/bin/ncu"
    env = dict(os.environ)
    lib = os.path.join(os.path.dirname(os.path.abspath(args.flashlm)), "lib")
    env["LD_LIBRARY_PATH"] = ":".join(p for p in (lib, "/usr/local/cuda/lib64", env.get("LD_LIBRARY_PATH")) if p)
    work = args.keep or tempfile.mkdtemp(prefix="step_profile.")
    os.makedirs(work, exist_ok=True)
    prompts = os.path.join(work, "prompts.txt")
    ids = np.random.default_rng(args.seed).integers(100, args.id_range, (args.batch, args.prompt_len))
    with open(prompts, "w") as f:
        f.writelines("[" + ", ".join(map(str, row)) + "]\n" for row in ids)
    first = args.first or prefill_steps(args) + args.steps + 2
    log(f"max_tokens {first} and {first + args.wall_steps} (prefill steps estimated {prefill_steps(args)})")

    walls = []
    for i in range(args.repeat):
        short = timed(generate_cmd(args, prompts, first), env)
        long = timed(generate_cmd(args, prompts, first + args.wall_steps), env)
        walls.append((long - short) / args.wall_steps * 1e3)
        log(f"wall pair {i + 1}: {short:.2f} s and {long:.2f} s -> {walls[-1]:.3f} ms a decode step")
    wall = float(np.median(walls))

    report = os.path.join(work, "ncu.csv")
    t0 = time.monotonic()
    subprocess.run([ncu, "--clock-control", "none", "--cache-control", "none", "--graph-profiling", "node",
                    "--metrics", "gpu__time_duration.sum", "--csv", "--page", "raw", "--print-units", "base",
                    "--log-file", report] + generate_cmd(args, prompts, first),
                   env=env, check=True, stdout=subprocess.DEVNULL)
    launches = kernels(report)
    log(f"ncu: {len(launches)} kernels in {time.monotonic() - t0:.0f} s")
    steps, rows = decode_passes(launches)
    if len(steps) < args.steps:
        sys.exit(f"only {len(steps)} full-batch decode passes ({rows} rows) found among ncu's {len(launches)} "
                 f"launches; expected {args.steps} (raise --first?)")
    if rows != args.batch:
        log(f"note: the full-batch decode passes sample {rows} rows, not {args.batch} (the graph's bucket?)")
    steps = steps[-args.steps:]

    print(f"# {args.model}, batch {args.batch}, prompt {args.prompt_len}, max_tokens {first}: the last "
          f"{args.steps} full-batch decode passes under ncu; wall {wall:.3f} ms a step (median of "
          f"{', '.join(f'{w:.3f}' for w in walls)} over {args.wall_steps} steps)")
    print("| step | " + " | ".join(NAMES) + " | kernels | wall | host = wall - kernels |")
    print("| ---: |" + " ---: |" * (len(NAMES) + 3))
    for i, s in enumerate(steps + [{c: float(np.mean([t[c] for t in steps])) for c in NAMES}]):
        total = sum(s.values())
        label = "mean" if i == len(steps) else str(i + 1)
        print(f"| {label} | " + " | ".join(f"{s[c]:.3f}" for c in NAMES) +
              f" | {total:.3f} | {wall:.3f} | {wall - total:.3f} ({100 * (wall - total) / wall:.0f}%) |")
    print("\nms of GPU time a step per category (ncu's gpu__time_duration of each kernel, clocks not locked);"
          " host: the wall time the kernels do not cover.")
    if not args.keep:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
