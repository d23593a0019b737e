#!/usr/bin/env python3
"""Make the tiny model fixtures and their HF transformers goldens.

Runs where transformers and torch are installed (the GPU machine; the CPU is
enough). From fixed seeds it writes, under OUTDIR (default tests/fixtures):

  tiny-qwen3/   Qwen3ForCausalLM, tied lm_head, explicit head_dim != hidden/heads,
                bf16 weights in one model.safetensors
  tiny-llama/   LlamaForCausalLM, untied lm_head, MQA, llama3 rope scaling,
                fp16 weights sharded with model.safetensors.index.json
  tiny-qwen2/   Qwen2ForCausalLM, q/k/v bias, untied lm_head, fp32 weights

and in each directory golden.safetensors with, for every prompt i:
  prompt_i  I32 [len]         the prompt's token ids
  logits_i  F32 [len, vocab]  HF float32 logits at every position
  greedy_i  I32 [32]          32 greedy tokens after the prompt (no EOS stop)
  margin_i  F32 [32]          HF's top-1 minus top-2 logit at each greedy step

The goldens are computed in float32 from the weights as saved (so bf16/fp16
rounding is in both HF's and flashlm's input).

  long-qwen3/   tiny-qwen3's shape with 4,096 positions, bf16, and one
                2,048-token prompt (tests/test_forward_long.c)

with golden.safetensors holding HF's float64 log-probabilities:
  prompt     I32 [2048]          the prompt's token ids
  positions  I32 [n]             every 8th position (7, 15, ...) and all of
                                 the last 32, which the test runs as decode steps
  logprobs   F32 [n, vocab]      log-softmax of HF's float64 logits there

Only the chosen rows are kept so the file stays small (about 440 KB, not
3 MB for all 2,048), and in float32: that rounds a log-probability above
-16 (checked) by at most 5e-7, far below the test's 1e-4. Usage:
  python3 tools/make_fixtures.py [OUTDIR] [--only NAME...]
"""
import argparse
import os

import torch
from safetensors.torch import save_file
import transformers

PROMPT_LENS = [1, 6, 19, 45, 150]  # 150 + 32 spans two blocks of 128
GREEDY_TOKENS = 32
VOCAB = 384
MIN_MARGIN = 1e-4
LONG_PROMPT = 2048
LONG_STRIDE = 8   # golden rows: every 8th position,
LONG_TAIL = 32    # and every one of the last 32
LONG_ROPE_THETA = 10000.0
FIXTURES = ["tiny-qwen3", "tiny-llama", "tiny-qwen2", "long-qwen3"]  # the index seeds each


def common(**kw):
    base = dict(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=512,
                rms_norm_eps=1e-6, initializer_range=0.08,
                bos_token_id=1, eos_token_id=2)
    base.update(kw)
    return base


def rope(theta, extra=None):
    """Both spellings: transformers 5 reads rope_parameters, 4.x rope_theta/rope_scaling."""
    params = {"rope_type": "default", "rope_theta": theta}
    if extra:
        params.update(extra)
    return params


def build(kind):
    if kind == "qwen3":
        cfg = transformers.Qwen3Config(**common(
            intermediate_size=160, num_key_value_heads=2, head_dim=32,
            tie_word_embeddings=True, rope_parameters=rope(10000.0)))
        return transformers.Qwen3ForCausalLM(cfg), torch.bfloat16, None
    if kind == "llama":
        cfg = transformers.LlamaConfig(**common(
            intermediate_size=128, num_key_value_heads=1,
            tie_word_embeddings=False,
            rope_parameters=rope(10000.0, {
                "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 32})))
        return transformers.LlamaForCausalLM(cfg), torch.float16, "40KB"
    if kind == "qwen2":
        cfg = transformers.Qwen2Config(**common(
            intermediate_size=128, num_key_value_heads=2,
            tie_word_embeddings=False, rope_parameters=rope(1000000.0)))
        return transformers.Qwen2ForCausalLM(cfg), torch.float32, None
    raise ValueError(kind)


def dtype_kwarg(dtype):
    """from_pretrained's dtype argument: `dtype` in transformers 5, `torch_dtype` in 4.x."""
    major = int(transformers.__version__.split(".")[0])
    return {"dtype" if major >= 5 else "torch_dtype": dtype}


class Float64Rope(torch.nn.Module):
    """Default RoPE with its angles in float64, for the float64 golden.

    HF's rotary embedding computes cos and sin in float32 whatever the model's
    dtype (its forward forces float32), so at position p an angle is off by
    about p x 6e-8 rad: 1.2e-4 at position 2047, an error of the reference
    that grows with the position, where the test wants float64's. The
    frequencies are HF's definition, theta^(-2i/d), evaluated in float64.
    (HF's float64 run keeps one other float32 step, RMSNorm's normalisation;
    its relative 6e-8 does not grow with the position and is negligible.)
    """

    def __init__(self, theta, head_dim):
        super().__init__()
        self.inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)

    def forward(self, x, position_ids):
        angles = position_ids[..., None].to(torch.float64) * self.inv_freq
        emb = torch.cat((angles, angles), dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)


def make_long(outdir, seed):
    """long-qwen3: one 2,048-token prompt with HF float64 log-probabilities."""
    torch.manual_seed(1234 + seed)
    cfg = transformers.Qwen3Config(**common(
        intermediate_size=160, num_key_value_heads=2, head_dim=32,
        tie_word_embeddings=True, max_position_embeddings=2 * LONG_PROMPT,
        rope_parameters=rope(LONG_ROPE_THETA)))
    path = os.path.join(outdir, "long-qwen3")
    os.makedirs(path, exist_ok=True)
    transformers.Qwen3ForCausalLM(cfg).to(torch.bfloat16).save_pretrained(path)
    # SDPA: eager attention takes its softmax in float32 even in a float64 model.
    ref = transformers.Qwen3ForCausalLM.from_pretrained(path, attn_implementation="sdpa",
                                                        **dtype_kwarg(torch.float64)).eval()
    ids = torch.randint(3, VOCAB, (1, LONG_PROMPT), generator=torch.Generator().manual_seed(99 + seed))
    rows = sorted(set(range(LONG_STRIDE - 1, LONG_PROMPT, LONG_STRIDE)) |
                  set(range(LONG_PROMPT - LONG_TAIL, LONG_PROMPT)))
    positions = torch.tensor(rows)
    with torch.no_grad():
        hf_rope = ref(ids).logits[0, positions].log_softmax(-1)
        ref.model.rotary_emb = Float64Rope(LONG_ROPE_THETA, cfg.head_dim)
        logprobs = ref(ids).logits[0, positions].log_softmax(-1)
    assert logprobs.dtype == torch.float64 and logprobs.min() > -16  # float32 storage then rounds by <= 5e-7
    save_file({"prompt": ids[0].to(torch.int32), "positions": positions.to(torch.int32),
               "logprobs": logprobs.float().contiguous()}, os.path.join(path, "golden.safetensors"))
    print(f"long-qwen3: wrote {path}; {len(rows)} rows of log-probabilities; HF's float32 RoPE angles "
          f"would move them by up to {(hf_rope - logprobs).abs().max().item():.2e}")
    print(open(os.path.join(path, "config.json")).read())


def greedy(ref, ids):
    """GREEDY_TOKENS argmax steps, recomputing the whole sequence each time."""
    seq, toks, margins = ids, [], []
    for _ in range(GREEDY_TOKENS):
        last = ref(seq).logits[0, -1].float()
        top2 = torch.topk(last, 2).values
        nxt = int(torch.argmax(last))
        toks.append(nxt)
        margins.append(float(top2[0] - top2[1]))
        seq = torch.cat([seq, torch.tensor([[nxt]])], dim=1)
    return toks, margins


def main():
    ap = argparse.ArgumentParser(description="Make the model fixtures and their HF goldens.")
    ap.add_argument("outdir", nargs="?", default="tests/fixtures")
    ap.add_argument("--only", nargs="+", choices=FIXTURES, default=FIXTURES, help="make only these")
    args = ap.parse_args()
    outdir = args.outdir
    print("transformers", transformers.__version__, "torch", torch.__version__)
    for seed, name in enumerate(FIXTURES):
        if name not in args.only:
            continue
        if name == "long-qwen3":
            make_long(outdir, seed)
            continue
        kind = name.removeprefix("tiny-")
        torch.manual_seed(1234 + seed)
        model, dtype, shard = build(kind)
        path = os.path.join(outdir, name)
        os.makedirs(path, exist_ok=True)
        model = model.to(dtype)
        kw = {"max_shard_size": shard} if shard else {}
        model.save_pretrained(path, **kw)
        # Reload what was saved, in float32, so the goldens see the rounded weights.
        cls = type(model)
        ref = cls.from_pretrained(path, attn_implementation="eager", **dtype_kwarg(torch.float32))
        ref.eval()
        gen = torch.Generator().manual_seed(99 + seed)
        golden = {}
        worst = float("inf")
        with torch.no_grad():
            for i, n in enumerate(PROMPT_LENS):
                # Redraw a prompt whose greedy path passes near a tie: a margin
                # under MIN_MARGIN could flip on float32 rounding differences.
                while True:
                    ids = torch.randint(3, VOCAB, (1, n), generator=gen)
                    toks, margins = greedy(ref, ids)
                    if min(margins) >= MIN_MARGIN:
                        break
                golden[f"prompt_{i}"] = ids[0].to(torch.int32)
                golden[f"logits_{i}"] = ref(ids).logits[0].float().contiguous()
                golden[f"greedy_{i}"] = torch.tensor(toks, dtype=torch.int32)
                golden[f"margin_{i}"] = torch.tensor(margins, dtype=torch.float32)
                worst = min(worst, min(margins))
        save_file(golden, os.path.join(path, "golden.safetensors"))
        print(f"{kind}: wrote {path}; smallest greedy top-1 margin {worst:.3e}")
        print(open(os.path.join(path, "config.json")).read())


if __name__ == "__main__":
    main()
