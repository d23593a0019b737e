#!/usr/bin/env python3
"""model_parity.py - flashlm's CUDA forward pass against HF transformers, per position bucket.

For each shape (an HF config.json, e.g. tools/parity_shapes/*.json: full
width, few layers):
  1. a model with random weights from HF's own initialisation (seeded) is
     saved with save_pretrained in bf16 to a temporary directory;
  2. for each --tokens T: a random prompt, and the positions compared: in each
     bucket [0, 128), [128, 512), [512, 2k), [2k, 8k), [8k, 32k), ... of the
     prefilled part, at most --per-bucket positions evenly spread, and every
     position of the decode tail (the last --decode positions);
  3. flashlm (tests/dump_logits) at each --block-size: the prompt in
     --chunk-token prefill chunks, then the tail one token a step, replayed
     from the runner's CUDA decode graph as serving runs it;
  4. the references, each loaded from the saved directory (not cast in
     memory: casting a model to bf16 and back also rounds RoPE's inv_freq
     buffer, and such a "float32" reference drifts with the position): HF in
     float32 (SDPA on the memory-efficient kernel, see float32_attention) and
     HF in bf16 (SDPA as torch picks it). The decoder body runs the whole
     prompt and lm_head only the chosen rows, so 32k positions x 150k logits
     never exist at once.

Per bucket, in float64: mean KL(HF32 || x) in nats, max |x - HF32| over the
logits, and top-1 agreement with HF32, for x = flashlm and x = HF bf16. The
rule: flashlm's KL is at most 2x HF bf16's in every bucket (the decode tail
is a bucket of its own), and every flashlm logit is finite. Prints a markdown
table (for docs/PERF.md), the sha256 of each flashlm dump (two builds whose
digests agree computed the same numbers), and PASS or FAIL; exits 1 on FAIL.

usage: tools/model_parity.py SHAPE.json... [--bin build/tests/dump_logits]
           [--tokens T...] [--block-size B...] [--chunk 2048] [--decode 64]
           [--per-bucket 128] [--seed 0]
Every T runs at every B (defaults: --tokens 2048, --block-size 16 128).
tools/gpu_check.sh runs tools/parity_shapes/*.json at 2048 and 32768 tokens.
"""
import argparse
import contextlib
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import transformers
from torch.nn.attention import SDPBackend, sdpa_kernel

# The architectures flashlm loads (the registry in src/model/arch.c).
ARCHITECTURES = {
    "LlamaForCausalLM": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
    "Qwen2ForCausalLM": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
    "Qwen3ForCausalLM": (transformers.Qwen3Config, transformers.Qwen3ForCausalLM),
}
FIRST_BUCKET = 128   # bucket edges: 0, 128, then 4x each (512, 2k, 8k, 32k, ...)
KL_RATIO_LIMIT = 2.0
ROWS_AT_ONCE = 256   # logit rows computed (and compared) at once: bounds GPU memory


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def dtype_kwarg(dtype):
    """from_pretrained's dtype argument: `dtype` in transformers 5, `torch_dtype` in 4.x."""
    major = int(transformers.__version__.split(".")[0])
    return {"dtype" if major >= 5 else "torch_dtype": dtype}


def build_checkpoint(shape_path, out_dir, seed):
    """HF's initialisation of the shape from seed, saved in bf16; returns the model class and vocab size."""
    with open(shape_path) as f:
        arch = json.load(f)["architectures"][0]
    if arch not in ARCHITECTURES:
        sys.exit(f"{shape_path}: architecture {arch} is not one flashlm loads ({', '.join(ARCHITECTURES)})")
    config_cls, model_cls = ARCHITECTURES[arch]
    config = config_cls.from_json_file(shape_path)
    torch.manual_seed(seed)
    with torch.device("cuda"):  # initialising a few billion values is seconds on the GPU, minutes on the CPU
        model = model_cls(config)
    model.to(device="cpu", dtype=torch.bfloat16).save_pretrained(out_dir)
    del model
    torch.cuda.empty_cache()
    return model_cls, config.vocab_size


def buckets(tokens, decode, per_bucket):
    """[(label, positions)]: position buckets of the prefilled part, then the decode tail."""
    prefill = tokens - decode
    out, lo, hi = [], 0, FIRST_BUCKET
    while lo < prefill:
        top = min(hi, prefill)
        count = min(per_bucket, top - lo)
        out.append((f"[{lo}, {top})", np.unique(np.linspace(lo, top - 1, count).round().astype(np.int64))))
        lo, hi = hi, hi * 4
    if decode > 0:
        out.append((f"decode [{prefill}, {tokens})", np.arange(prefill, tokens, dtype=np.int64)))
    return out


def run_flashlm(args, model_dir, work, ids, positions, block_size, vocab):
    """dump_logits' logits at positions (CPU float32) and the sha256 of its output."""
    ids_path, pos_path, out_path = (os.path.join(work, n) for n in ("ids.bin", "positions.bin", "logits.bin"))
    ids.astype(np.int32).tofile(ids_path)
    positions.astype(np.int32).tofile(pos_path)
    subprocess.run([args.bin, "--chunk", str(args.chunk), "--decode", str(args.decode),
                    "--block-size", str(block_size), "--positions", pos_path,
                    "--attention-backend", args.attention_backend, model_dir, ids_path, out_path],
                   check=True)
    sha = hashlib.sha256()
    with open(out_path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            sha.update(block)
    logits = np.fromfile(out_path, dtype=np.float32)
    os.remove(out_path)
    if logits.size != len(positions) * vocab:
        sys.exit(f"{args.bin} wrote {logits.size} logits, not {len(positions)} x {vocab}")
    return torch.from_numpy(logits.reshape(len(positions), vocab)), sha.hexdigest()


@contextlib.contextmanager
def float32_attention():
    """SDPA in float32 on the memory-efficient kernel, with K/V heads repeated for grouped queries.

    Flash and cuDNN attention take no float32, and the memory-efficient kernel
    refuses grouped K/V heads (enable_gqa, which HF passes when there is no
    mask), so torch would fall back to its math kernel and hold every
    (head, T, T) score: 120 GB at 32k tokens of Qwen2.5-7B. Repeating the K/V
    heads first is what enable_gqa means; pinning the kernel makes a fallback
    an error instead of an out-of-memory.
    """
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def repeated_kv(q, k, v, *rest, enable_gqa=False, **kw):
        if enable_gqa and k.shape[-3] != q.shape[-3]:
            group = q.shape[-3] // k.shape[-3]
            k, v = k.repeat_interleave(group, dim=-3), v.repeat_interleave(group, dim=-3)
        return sdpa(q, k, v, *rest, **kw)

    torch.nn.functional.scaled_dot_product_attention = repeated_kv
    try:
        with sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION):
            yield
    finally:
        torch.nn.functional.scaled_dot_product_attention = sdpa


@torch.no_grad()
def reference_logits(model_cls, model_dir, dtype, prompts):
    """HF loaded from model_dir in dtype: for each (ids, positions), the logits at positions (on the GPU)."""
    model = model_cls.from_pretrained(model_dir, attn_implementation="sdpa", **dtype_kwarg(dtype)).to("cuda").eval()
    out = []
    with float32_attention() if dtype == torch.float32 else contextlib.nullcontext():
        for ids, positions in prompts:
            ids = torch.from_numpy(ids).long().cuda()[None]
            hidden = model.model(input_ids=ids, use_cache=False).last_hidden_state
            rows = hidden[0, torch.from_numpy(positions).cuda()]
            del hidden
            out.append(torch.cat([model.lm_head(rows[i:i + ROWS_AT_ONCE])
                                  for i in range(0, len(rows), ROWS_AT_ONCE)]))
    del model
    torch.cuda.empty_cache()
    return out


def compare(ref, x):
    """Per row, in float64: KL(ref || x) in nats, max |x - ref|, and whether the argmaxes agree."""
    kl, err, agree = [], [], []
    for i in range(0, len(ref), ROWS_AT_ONCE):
        r = ref[i:i + ROWS_AT_ONCE].cuda().double()
        y = x[i:i + ROWS_AT_ONCE].cuda().double()
        lp_r, lp_y = torch.log_softmax(r, -1), torch.log_softmax(y, -1)
        kl.append((lp_r.exp() * (lp_r - lp_y)).sum(-1))
        err.append((y - r).abs().amax(-1))
        agree.append(y.argmax(-1) == r.argmax(-1))
    return torch.cat(kl).cpu(), torch.cat(err).cpu(), torch.cat(agree).cpu()


def run_shape(args, shape_path):
    """Builds the shape, then runs flashlm and both references on each prompt.

    Returns [(tokens, buckets, {block size: (flashlm logits, sha256)}, HF32 logits, HF bf16 logits)].
    """
    with tempfile.TemporaryDirectory() as work:
        model_dir = os.path.join(work, "model")
        model_cls, vocab = build_checkpoint(shape_path, model_dir, args.seed)
        prompts = []  # (tokens, buckets, ids, positions)
        for tokens in args.tokens:
            ids = np.random.default_rng([args.seed, tokens]).integers(0, vocab, tokens, dtype=np.int32)
            bk = buckets(tokens, args.decode, args.per_bucket)
            prompts.append((tokens, bk, ids, np.concatenate([p for _, p in bk])))
        # flashlm first, while torch holds no model on the GPU
        ours = [{bs: run_flashlm(args, model_dir, work, ids, positions, bs, vocab) for bs in args.block_size}
                for _, _, ids, positions in prompts]
        pairs = [(ids, positions) for _, _, ids, positions in prompts]
        ref32 = reference_logits(model_cls, model_dir, torch.float32, pairs)
        ref16 = reference_logits(model_cls, model_dir, torch.bfloat16, pairs)
    return [(tokens, bk, fl, r32, r16) for (tokens, bk, _, _), fl, r32, r16 in zip(prompts, ours, ref32, ref16)]


def bucket_rows(where, bk, fl, hf, finite):
    """[(table row, ratio, label, ok)] of one flashlm run, a bucket each; fl and hf are compare()'s."""
    out, start = [], 0
    for label, pos in bk:
        rows = slice(start, start + len(pos))
        start += len(pos)
        kl_fl, kl_hf = fl[0][rows].mean().item(), hf[0][rows].mean().item()
        ratio = kl_fl / kl_hf if kl_hf > 0 else float("inf")
        ok = finite and ratio <= KL_RATIO_LIMIT  # False for NaN too
        out.append((f"| {where} | {label} | {len(pos)} | {kl_fl:.3e} | {kl_hf:.3e} | {ratio:.2f} | "
                    f"{fl[1][rows].max().item():.3g} | {hf[1][rows].max().item():.3g} | "
                    f"{100 * fl[2][rows].double().mean().item():.1f}% | "
                    f"{100 * hf[2][rows].double().mean().item():.1f}% | {'ok' if ok else 'FAIL'} |",
                    ratio, label, ok))
    return out


def severity(ratio):
    """A KL ratio for ordering: NaN (a NaN logit) is the worst."""
    return float("inf") if math.isnan(ratio) else ratio


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("shapes", nargs="+", help="HF config.json files")
    ap.add_argument("--bin", default="build/tests/dump_logits")
    ap.add_argument("--tokens", type=int, nargs="+", default=[2048])
    ap.add_argument("--block-size", type=int, nargs="+", default=[16, 128])
    ap.add_argument("--chunk", type=int, default=2048)
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--per-bucket", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--attention-backend", default="auto", help="the CUDA attention backend dump_logits runs")
    args = ap.parse_args()
    if min(args.tokens) <= args.decode or args.per_bucket < 1:
        ap.error("every --tokens must exceed --decode, and --per-bucket must be positive")
    torch.set_float32_matmul_precision("highest")  # the float32 reference without TF32
    log(f"model parity: torch {torch.__version__}, transformers {transformers.__version__}, "
        f"{torch.cuda.get_device_name()}; chunk {args.chunk}, decode tail {args.decode}, seed {args.seed}")
    table, digests, failures, worst = [], [], [], (-1.0, "")
    for shape_path in args.shapes:
        shape = os.path.splitext(os.path.basename(shape_path))[0]
        t0 = time.time()
        for tokens, bk, ours, r32, r16 in run_shape(args, shape_path):
            hf = compare(r32, r16)
            for bs, (logits, digest) in ours.items():
                where = f"{shape} | {tokens} | {bs}"
                digests.append(f"- {shape}, {tokens} tokens, block {bs}: `{digest}`")
                for row, ratio, label, ok in bucket_rows(where, bk, compare(r32, logits), hf,
                                                         bool(torch.isfinite(logits).all())):
                    table.append(row)
                    case = f"{shape} {tokens} tokens, block {bs}, {label}"
                    if not ok:
                        failures.append(f"FAIL {case}: KL ratio {ratio:.3g} (limit {KL_RATIO_LIMIT}, "
                                        "and every logit finite)")
                    if severity(ratio) > severity(worst[0]):
                        worst = (ratio, case)
        torch.cuda.empty_cache()
        log(f"{shape}: built, {len(args.tokens) * len(args.block_size)} flashlm runs and the references in "
            f"{time.time() - t0:.0f} s")
    print("| shape | tokens | block | positions | n | KL flashlm | KL HF bf16 | ratio | max err flashlm | "
          "max err HF bf16 | top-1 flashlm | top-1 HF bf16 | |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    print("\n".join(table))
    print("\nKL(HF float32 || x) in nats, mean over the bucket's positions; max err: the largest |logit - HF "
          "float32 logit|; top-1: argmax equal to HF float32's. sha256 of flashlm's logits:")
    print("\n".join(digests))
    print("\n".join(failures))
    print(f"model parity: {len(args.shapes)} shapes, {len(table)} buckets, flashlm KL at most "
          f"{worst[0]:.2f}x HF bf16's ({worst[1]}; limit {KL_RATIO_LIMIT}x): {'FAIL' if failures else 'PASS'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
