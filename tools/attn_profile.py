#!/usr/bin/env python3
"""attn_profile.py - runs one CUDA attention backend's kernels (hopper, the
default, or paged) on a few DEVICE.md shapes, a few calls each, for a
profiler (ncu) to look at; computes nothing itself. KV names the cache's
type (bf16, the default, or fp8); SHAPES picks shapes by index (default all:
0 decode B1 L32k, 1 decode B256 L1536, 2 prefill B4 S8k, 3 prefill B32 S1k).

usage: ncu --kernel-name regex:'prefill|decode' python3 tools/attn_profile.py [LIB [BACKEND [KV [SHAPES]]]]
"""
import sys

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from attn_check import PagedAttention, load_lib, make_cache  # noqa: E402

SHAPES = (("decode", 1, 32768, 16, 8, 128), ("decode", 256, 1536, 16, 8, 128), ("prefill", 4, 8192, 16, 8, 128),
          ("prefill", 32, 1024, 16, 8, 128))


def main():
    lib = load_lib(sys.argv[1] if len(sys.argv) > 1 else "build/libflashlm_attn.so")
    backend = sys.argv[2] if len(sys.argv) > 2 else "hopper"
    kv = sys.argv[3] if len(sys.argv) > 3 else "bf16"
    picked = [int(i) for i in sys.argv[4].split(",")] if len(sys.argv) > 4 else range(len(SHAPES))
    dev = torch.device("cuda")
    for kind, b, s, hq, hkv, d in (SHAPES[i] for i in picked):
        cache, tables = make_cache([s] * b, hkv, d, 128, None, dev, kv)
        q_lens = [1] * b if kind == "decode" else [s] * b
        attn = PagedAttention(lib, backend, hq, hkv, d, 128, q_lens, [s] * b, cache, tables)
        q = torch.randn(sum(q_lens), hq, d, device=dev, dtype=torch.bfloat16)
        out = torch.empty_like(q)
        for _ in range(2):
            attn(q, out)
        torch.cuda.synchronize()
        del cache


if __name__ == "__main__":
    main()
