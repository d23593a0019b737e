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
rounding is in both HF's and flashlm's input). Usage:
  python3 tools/make_fixtures.py [OUTDIR]
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
import transformers

PROMPT_LENS = [1, 6, 19, 45, 150]  # 150 + 32 spans two blocks of 128
GREEDY_TOKENS = 32
VOCAB = 384
MIN_MARGIN = 1e-4


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
    outdir = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures"
    print("transformers", transformers.__version__, "torch", torch.__version__)
    for seed, kind in enumerate(["qwen3", "llama", "qwen2"]):
        torch.manual_seed(1234 + seed)
        model, dtype, shard = build(kind)
        path = os.path.join(outdir, "tiny-" + kind)
        os.makedirs(path, exist_ok=True)
        model = model.to(dtype)
        kw = {"max_shard_size": shard} if shard else {}
        model.save_pretrained(path, **kw)
        # Reload what was saved, in float32, so the goldens see the rounded weights.
        cls = type(model)
        ref = cls.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
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
