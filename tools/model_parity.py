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

GptOssForCausalLM (tools/parity_shapes/gpt-oss-20b.json: 4 layers, window,
full, window, full) differs in three ways. Its random model is drawn as the
tiny fixture's (make_fixtures.gpt_oss_draw: biases, sinks, norms, router and
expert biases HF leaves trivial; expert matrices rounded to MXFP4 values), at
the scales of gpt_oss_draw. --checkpoints mxfp4 adds a second checkpoint of
the same numbers with the experts as MXFP4 blocks and scales
(make_fixtures.save_mxfp4): flashlm loads it, and so do both references (HF's
Mxfp4Config(dequantize=True), the path transformers takes without the Hub's
triton kernels; its bf16 experts cast to the reference's dtype, exactly), so
the rule is checked per checkpoint. And HF runs eager attention, the only
one of its implementations with sinks, through gpt_oss_reference: the same
operations as HF's eager_attention_forward, QUERY_ROWS query rows at a time
over the keys they can see, and the experts EXPERT_ROWS tokens at a time, so
16k tokens fit (HF's own would hold (64, T, T) scores: 69 GB a copy in
float32 at 16k).

Per bucket, in float64: mean KL(HF32 || x) in nats, max |x - HF32| over the
logits, and top-1 agreement with HF32, for x = flashlm and x = HF bf16. The
rule: flashlm's KL is at most 2x HF bf16's in every bucket (the decode tail
is a bucket of its own), and every flashlm logit is finite. Prints a markdown
table (for docs/PERF.md), the sha256 of each flashlm dump (two builds whose
digests agree computed the same numbers), and PASS or FAIL; exits 1 on FAIL.

usage: tools/model_parity.py SHAPE.json... [--bin build/tests/dump_logits]
           [--tokens T...] [--block-size B...] [--chunk 2048] [--decode 64]
           [--kv-cache-dtype bf16 fp8] [--tensor-parallel-size N]
           [--per-bucket 128] [--seed 0] [--checkpoints bf16 [mxfp4]]
Every T runs at every B (defaults: --tokens 2048, --block-size 16 128).
tools/gpu_check.sh runs the dense shapes at 2048 and 32768 tokens (step
model_parity) and gpt-oss-20b.json, bf16 and MXFP4, at 2048 and 16384
(step model_parity_gptoss).
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

import make_fixtures  # gpt-oss's random draw and MXFP4 writer, shared with the tiny fixtures

# The architectures flashlm loads (the registry in src/model/arch.c).
ARCHITECTURES = {
    "LlamaForCausalLM": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
    "Qwen2ForCausalLM": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
    "Qwen3ForCausalLM": (transformers.Qwen3Config, transformers.Qwen3ForCausalLM),
    "GptOssForCausalLM": (transformers.GptOssConfig, transformers.GptOssForCausalLM),
}
GPT_OSS = "GptOssForCausalLM"
FIRST_BUCKET = 128   # bucket edges: 0, 128, then 4x each (512, 2k, 8k, 32k, ...)
KL_RATIO_LIMIT = 2.0
ROWS_AT_ONCE = 256   # logit rows computed (and compared) at once: bounds GPU memory
QUERY_ROWS = 512     # gpt-oss reference: query rows a step (float32 scores 64 x 512 x 16k: 2.1 GB a copy)
EXPERT_ROWS = 4096   # gpt-oss reference: tokens through a layer's experts at once


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def dtype_kwarg(dtype):
    """from_pretrained's dtype argument: `dtype` in transformers 5, `torch_dtype` in 4.x."""
    major = int(transformers.__version__.split(".")[0])
    return {"dtype" if major >= 5 else "torch_dtype": dtype}


def gpt_oss_draw(config):
    """make_fixtures.gpt_oss_draw's scales at full width (the tiny fixture's are
    for hidden 64). Estimates for hidden 2880 and HF's std 0.02: a projection
    of a normed row has std 0.02 x sqrt(2880) = 1.07, so attention logits
    q.k / 8 have std about 1.15 and a 128-key window sums exp to about
    128 x e^0.66 = 250; sinks N(ln 128, 1) (e^4.85 = 128) then take about a
    third of a windowed row's mass, a few percent of a full row's at 2k, and
    ever less further on. Gate/up bias std 3: pre-activations of std 3.2, of
    which about 1.5% of the gates and 3% of the ups pass the limit of 7. HF's
    down matrices would make an expert's output about 8 (1.07 x the rms of
    (up + 1) x glu, about 7.6): times 0.15 that is about 1, beside a windowed
    attention output of about 0.3 after o_proj, so neither the experts nor
    the attention (its window, its sinks) drowns the other in the residual."""
    return {"sinks": (math.log(config.sliding_window), 1.0), "gate_up_bias_std": 3.0, "down_scale": 0.15}


def build_checkpoint(shape_path, out_dir, seed, checkpoints):
    """HF's initialisation of the shape from seed, saved in bf16 to out_dir (and,
    for gpt-oss with "mxfp4" in checkpoints, as MXFP4 to out_dir-mxfp4).

    Returns the model class, the vocab size and the checkpoints to compare:
    [(suffix of the shape's name, directory, from_pretrained keyword arguments)]."""
    with open(shape_path) as f:
        arch = json.load(f)["architectures"][0]
    if arch not in ARCHITECTURES:
        sys.exit(f"{shape_path}: architecture {arch} is not one flashlm loads ({', '.join(ARCHITECTURES)})")
    config_cls, model_cls = ARCHITECTURES[arch]
    config = config_cls.from_json_file(shape_path)
    torch.manual_seed(seed)
    with torch.device("cuda"):  # initialising a few billion values is seconds on the GPU, minutes on the CPU
        model = model_cls(config)
    if arch == GPT_OSS:
        make_fixtures.gpt_oss_draw(model, **gpt_oss_draw(config))
    model.to(device="cpu", dtype=torch.bfloat16).save_pretrained(out_dir)
    del model
    torch.cuda.empty_cache()
    out = [("", out_dir, {})] if "bf16" in checkpoints else []
    if "mxfp4" in checkpoints:
        if arch == GPT_OSS:
            make_fixtures.save_mxfp4(out_dir, out_dir + "-mxfp4", device="cuda")
            out.append(("-mxfp4", out_dir + "-mxfp4",
                        {"quantization_config": transformers.Mxfp4Config(dequantize=True)}))
        else:
            log(f"{shape_path}: {arch} has no MXFP4 checkpoint; bf16 only")
    torch.cuda.empty_cache()
    return model_cls, config.vocab_size, out


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


def run_flashlm(args, model_dir, work, ids, positions, block_size, vocab, kv):
    """dump_logits' logits at positions (CPU float32) with a kv ("bf16" or "fp8") cache, and the sha256 of
    its output."""
    ids_path, pos_path, out_path = (os.path.join(work, n) for n in ("ids.bin", "positions.bin", "logits.bin"))
    ids.astype(np.int32).tofile(ids_path)
    positions.astype(np.int32).tofile(pos_path)
    subprocess.run([args.bin, "--chunk", str(args.chunk), "--decode", str(args.decode),
                    "--block-size", str(block_size), "--positions", pos_path,
                    "--attention-backend", args.attention_backend, "--kv-cache-dtype", kv,
                    "--tensor-parallel-size", str(args.tensor_parallel_size), model_dir, ids_path, out_path],
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


class GptOssReference:
    """HF's GptOss forward pass in pieces that fit 16k tokens (a context manager).

    attention: transformers' modeling_gpt_oss.eager_attention_forward,
    replaced while the manager is open by one computing the same operations
    (HF's mask added to the scores, the head's sink logit joined, the row's
    maximum subtracted, softmax in the scores' dtype, the sink dropped,
    times V) QUERY_ROWS query rows at a time over the keys those rows can
    see (up to the last row; from the window's start on a windowed layer):
    the keys left out are the ones HF's mask sets to the dtype's minimum,
    whose probability is exactly 0. experts: each layer's mlp runs
    EXPERT_ROWS tokens at a time (a token's experts depend on that token
    only). `calls` counts the attention calls, so a transformers whose
    attention no longer goes through that function fails loudly instead of
    holding (64, T, T) scores."""

    def __init__(self, model):
        from transformers.models.gpt_oss import modeling_gpt_oss
        self.module, self.model, self.calls = modeling_gpt_oss, model, 0

    def __enter__(self):
        self.saved = self.module.eager_attention_forward
        self.module.eager_attention_forward = self.attention
        self.forwards = []
        for layer in self.model.model.layers:
            self.forwards.append((layer.mlp, layer.mlp.forward))
            layer.mlp.forward = self.chunked(layer.mlp.forward)
        return self

    def __exit__(self, *exc):
        self.module.eager_attention_forward = self.saved
        for mlp, forward in self.forwards:
            mlp.forward = forward

    def attention(self, module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
        """query (B, Hq, T, D), key and value (B, Hkv, T, D) -> ((B, T, Hq, D), None)."""
        self.calls += 1
        if attention_mask is None or not attention_mask.is_floating_point():
            got = None if attention_mask is None else attention_mask.dtype
            raise RuntimeError(f"HF's eager attention got the mask {got}, not an additive float one")
        key = key.repeat_interleave(module.num_key_value_groups, dim=1)  # HF's repeat_kv
        value = value.repeat_interleave(module.num_key_value_groups, dim=1)
        window = getattr(module, "sliding_window", None)
        out, rows = torch.empty_like(query), query.shape[-2]
        for q0 in range(0, rows, QUERY_ROWS):
            q1 = min(rows, q0 + QUERY_ROWS)
            k0 = max(0, q0 - window - 1) if window else 0  # one key more than any window spelling sees
            scores = torch.matmul(query[:, :, q0:q1], key[:, :, k0:q1].transpose(2, 3)) * scaling
            scores = scores + attention_mask[:, :, q0:q1, k0:q1]
            sinks = module.sinks.reshape(1, -1, 1, 1).expand(query.shape[0], -1, q1 - q0, -1)
            logits = torch.cat([scores, sinks], dim=-1)
            logits = logits - logits.max(dim=-1, keepdim=True).values
            probs = torch.nn.functional.softmax(logits, dim=-1, dtype=logits.dtype)[..., :-1]
            out[:, :, q0:q1] = torch.matmul(probs, value[:, :, k0:q1])
        return out.transpose(1, 2).contiguous(), None

    @staticmethod
    def chunked(forward):
        """forward over (B, T, H) or (T, H) rows, EXPERT_ROWS tokens at a time. Of a
        tuple only the first output is joined; the others (the router's scores,
        which the decoder layer drops) come back as None."""
        def run(hidden, *args, **kwargs):
            dim = hidden.dim() - 2
            if hidden.shape[dim] <= EXPERT_ROWS:
                return forward(hidden, *args, **kwargs)
            parts = [forward(hidden.narrow(dim, i, min(EXPERT_ROWS, hidden.shape[dim] - i)), *args, **kwargs)
                     for i in range(0, hidden.shape[dim], EXPERT_ROWS)]
            if not isinstance(parts[0], tuple):
                return torch.cat(parts, dim=dim)
            return (torch.cat([p[0] for p in parts], dim=dim),) + (None,) * (len(parts[0]) - 1)
        return run


@torch.no_grad()
def reference_logits(model_cls, model_dir, dtype, prompts, load_kwargs):
    """HF loaded from model_dir in dtype: for each (ids, positions), the logits at positions (on the GPU)."""
    gpt_oss = model_cls is transformers.GptOssForCausalLM
    model = model_cls.from_pretrained(model_dir, attn_implementation="eager" if gpt_oss else "sdpa",
                                      **load_kwargs, **dtype_kwarg(dtype))
    if load_kwargs:
        # HF's MXFP4 dequantization: bf16 experts whatever the dtype asked (exact: MXFP4 values are bf16 values)
        loaded = sorted({f"{name.rsplit('.', 1)[-1]} {p.dtype}" for name, p in model.named_parameters()
                         if ".experts." in name})
        log(f"{model_dir}: HF's experts as loaded in {dtype}: {', '.join(loaded)}")
        for name, p in model.named_parameters():
            if ".experts." in name and p.dtype != dtype:
                p.data = p.data.to(dtype)
    model = model.to("cuda").eval()
    out = []
    if gpt_oss:
        context = GptOssReference(model)
    elif dtype == torch.float32:
        context = float32_attention()
    else:
        context = contextlib.nullcontext()
    with context:
        for ids, positions in prompts:
            ids = torch.from_numpy(ids).long().cuda()[None]
            hidden = model.model(input_ids=ids, use_cache=False).last_hidden_state
            rows = hidden[0, torch.from_numpy(positions).cuda()]
            del hidden
            out.append(torch.cat([model.lm_head(rows[i:i + ROWS_AT_ONCE])
                                  for i in range(0, len(rows), ROWS_AT_ONCE)]))
    if gpt_oss and context.calls == 0:
        sys.exit("transformers' GptOss attention did not call modeling_gpt_oss.eager_attention_forward: "
                 "GptOssReference must follow its new path")
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
    """Builds the shape, then runs flashlm and both references on each prompt, per checkpoint.

    Returns [(suffix, tokens, buckets, {(block size, kv cache): (flashlm logits, sha256)}, HF32 logits,
    HF bf16 logits)]."""
    out = []
    with tempfile.TemporaryDirectory() as work:
        model_cls, vocab, checkpoints = build_checkpoint(shape_path, os.path.join(work, "model"), args.seed,
                                                         args.checkpoints)
        prompts = []  # (tokens, buckets, ids, positions)
        for tokens in args.tokens:
            ids = np.random.default_rng([args.seed, tokens]).integers(0, vocab, tokens, dtype=np.int32)
            bk = buckets(tokens, args.decode, args.per_bucket)
            prompts.append((tokens, bk, ids, np.concatenate([p for _, p in bk])))
        pairs = [(ids, positions) for _, _, ids, positions in prompts]
        for suffix, model_dir, load_kwargs in checkpoints:
            # flashlm first, while torch holds no model on the GPU
            ours = [{(bs, kv): run_flashlm(args, model_dir, work, ids, positions, bs, vocab, kv)
                     for bs in args.block_size for kv in args.kv_cache_dtype}
                    for _, _, ids, positions in prompts]
            ref32 = reference_logits(model_cls, model_dir, torch.float32, pairs, load_kwargs)
            ref16 = reference_logits(model_cls, model_dir, torch.bfloat16, pairs, load_kwargs)
            out += [(suffix, tokens, bk, fl, r32, r16)
                    for (tokens, bk, _, _), fl, r32, r16 in zip(prompts, ours, ref32, ref16)]
    # The checkpoints hold the same numbers: HF's float32 logits from each should agree.
    name = lambda suffix: suffix.lstrip("-") or "bf16"
    first = {tokens: r32 for suffix, tokens, _, _, r32, _ in out if suffix == out[0][0]}
    for suffix, tokens, _, _, r32, _ in out:
        if suffix != out[0][0]:
            log(f"HF float32, {tokens} tokens, the {name(suffix)} checkpoint against the {name(out[0][0])} one: "
                f"max |logit difference| {(r32 - first[tokens]).abs().max().item():.3g}")
    return out


def bucket_rows(where, bk, fl, hf, finite, ruled=True):
    """[(table row, ratio, label, ok)] of one flashlm run, a bucket each; fl and hf are compare()'s. A run
    not ruled (an fp8 cache's) says "fp8" where the others say ok or FAIL."""
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
                    f"{100 * hf[2][rows].double().mean().item():.1f}% | "
                    f"{('ok' if ok else 'FAIL') if ruled else 'fp8'} |",
                    ratio, label, ok))
    return out


def fp8_rows(where, bk, cmp, finite):
    """Table rows of an fp8-cache run against the bf16-cache run (compare(bf16, fp8)), a bucket each."""
    out, start = [], 0
    for label, pos in bk:
        rows = slice(start, start + len(pos))
        start += len(pos)
        out.append(f"| {where} | {label} | {len(pos)} | {cmp[0][rows].mean().item():.3e} | "
                   f"{cmp[1][rows].max().item():.3g} | {100 * cmp[2][rows].double().mean().item():.1f}% | "
                   f"{'yes' if finite else 'NO'} |")
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
    ap.add_argument("--tensor-parallel-size", type=int, default=1,
                    help="flashlm split over N ranks sharing the one GPU (dump_logits' local group): the sharding "
                         "held to the same rule at full width")
    ap.add_argument("--kv-cache-dtype", nargs="+", choices=["bf16", "fp8"], default=["bf16"],
                    help="flashlm's KV caches: the rule holds the bf16 one; an fp8 one is measured against "
                         "HF float32 and against flashlm's bf16 cache")
    ap.add_argument("--checkpoints", nargs="+", choices=["bf16", "mxfp4"], default=["bf16"],
                    help="which saves of each shape to compare (mxfp4: gpt-oss's experts as MXFP4)")
    args = ap.parse_args()
    if min(args.tokens) <= args.decode or args.per_bucket < 1:
        ap.error("every --tokens must exceed --decode, and --per-bucket must be positive")
    torch.set_float32_matmul_precision("highest")  # the float32 reference without TF32
    log(f"model parity: torch {torch.__version__}, transformers {transformers.__version__}, "
        f"{torch.cuda.get_device_name()}; chunk {args.chunk}, decode tail {args.decode}, seed {args.seed}, "
        f"tensor-parallel size {args.tensor_parallel_size}")
    table, digests, failures, worst, fp8_table = [], [], [], (-1.0, ""), []
    for shape_path in args.shapes:
        shape = os.path.splitext(os.path.basename(shape_path))[0]
        t0 = time.time()
        runs = run_shape(args, shape_path)
        for suffix, tokens, bk, ours, r32, r16 in runs:
            hf = compare(r32, r16)
            for (bs, kv), (logits, digest) in ours.items():
                cache = "" if kv == "bf16" else ", fp8 cache"
                where = f"{shape}{suffix} | {tokens} | {bs}{cache}"
                digests.append(f"- {shape}{suffix}, {tokens} tokens, block {bs}{cache}: `{digest}`")
                if kv == "fp8":  # measured, not ruled: against HF float32 and against the bf16 cache
                    table += [row for row, _, _, _ in bucket_rows(where, bk, compare(r32, logits), hf, True, False)]
                    if (bs, "bf16") in ours:
                        fp8_table += fp8_rows(where, bk, compare(ours[(bs, "bf16")][0], logits),
                                              bool(torch.isfinite(logits).all()))
                    continue
                for row, ratio, label, ok in bucket_rows(where, bk, compare(r32, logits), hf,
                                                         bool(torch.isfinite(logits).all())):
                    table.append(row)
                    case = f"{shape}{suffix} {tokens} tokens, block {bs}, {label}"
                    if not ok:
                        failures.append(f"FAIL {case}: KL ratio {ratio:.3g} (limit {KL_RATIO_LIMIT}, "
                                        "and every logit finite)")
                    if severity(ratio) > severity(worst[0]):
                        worst = (ratio, case)
        torch.cuda.empty_cache()
        log(f"{shape}: built, {len(runs) * len(args.block_size)} flashlm runs and the references in "
            f"{time.time() - t0:.0f} s")
    print("| shape | tokens | block | positions | n | KL flashlm | KL HF bf16 | ratio | max err flashlm | "
          "max err HF bf16 | top-1 flashlm | top-1 HF bf16 | |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    print("\n".join(table))
    print("\nKL(HF float32 || x) in nats, mean over the bucket's positions; max err: the largest |logit - HF "
          "float32 logit|; top-1: argmax equal to HF float32's. sha256 of flashlm's logits:")
    print("\n".join(digests))
    if fp8_table:
        print("\nThe fp8 KV cache against the bf16 one (flashlm both, same prompt and block size): KL(bf16 || fp8) "
              "in nats, max |logit difference|, top-1 agreement:")
        print("| shape | tokens | block | positions | n | KL(bf16 cache \\|\\| fp8 cache) | max diff | top-1 | finite |")
        print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |")
        print("\n".join(fp8_table))
    print("\n".join(failures))
    print(f"model parity: {len(args.shapes)} shapes, {len(table)} buckets, flashlm KL at most "
          f"{worst[0]:.2f}x HF bf16's ({worst[1]}; limit {KL_RATIO_LIMIT}x): {'FAIL' if failures else 'PASS'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
