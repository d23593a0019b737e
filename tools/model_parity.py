#!/usr/bin/env python3
"""model_parity.py - the full-size Qwen3-0.6B architecture on the GPU vs HF.

Makes a Qwen3-0.6B with random weights with HF transformers
(tools/qwen3-0.6b-config.json, HF's own initialisation, seed 0), saves it
as a Hugging Face directory in bf16, runs a 1000-token random prompt
through flashlm's CUDA runner (build/tests/dump_logits: chunked prefill
over the paged cache) and through HF in float32 on the same (bf16-valued)
weights, and compares per position: mean KL(HF || flashlm) must be under
1e-3 nats, and the argmax must agree at >= 99% of the positions where HF's
top-1 logit leads its top-2 by more than 0.05. Prints one line; exit 1 on
failure.

usage: tools/model_parity.py [--bin build/tests/dump_logits] [--tokens 1000]
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from transformers import Qwen3Config, Qwen3ForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/tests/dump_logits")
    ap.add_argument("--tokens", type=int, default=1000)
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    config = Qwen3Config.from_json_file(os.path.join(here, "qwen3-0.6b-config.json"))
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config).to(torch.bfloat16)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        gen = torch.Generator().manual_seed(1)
        ids = torch.randint(0, config.vocab_size, (args.tokens,), generator=gen, dtype=torch.int32)
        ids_path, out_path = os.path.join(tmp, "ids.bin"), os.path.join(tmp, "logits.bin")
        ids.numpy().tofile(ids_path)
        subprocess.run([args.bin, tmp, ids_path, out_path], check=True)
        ours = torch.from_numpy(np.fromfile(out_path, dtype=np.float32).reshape(args.tokens, -1))
    ref_model = model.float().cuda().eval()
    with torch.no_grad():
        ref = ref_model(ids.long().cuda()[None]).logits[0].double().cpu()
    ours = ours.double()
    lp_ref, lp_ours = torch.log_softmax(ref, -1), torch.log_softmax(ours, -1)
    kl = (lp_ref.exp() * (lp_ref - lp_ours)).sum(-1)
    top2 = ref.topk(2, dim=-1)
    decided = (top2.values[:, 0] - top2.values[:, 1]) > 0.05
    agree = (ours.argmax(-1) == top2.indices[:, 0])[decided]
    agreement = agree.double().mean().item() if decided.any() else 1.0
    ok = kl.mean().item() < 1e-3 and agreement >= 0.99 and torch.isfinite(ours).all()
    print(f"model parity Qwen3-0.6B (random weights), {args.tokens} tokens: mean KL {kl.mean().item():.2e} nats "
          f"(max {kl.max().item():.2e}; limit 1e-3), top-1 agreement {agreement * 100:.2f}% over "
          f"{int(decided.sum())} positions with HF margin > 0.05 (limit 99%): {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
