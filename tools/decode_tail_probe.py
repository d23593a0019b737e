"""decode_tail_probe.py [CONTEXT...] - what a sequence's last, partial KV
tile costs: the hopper backend's decode at B256 (Qwen3-0.6B's heads, bf16
cache, block size 128) timed at contexts just below and above multiples of
64 keys (a CONTEXT of A-B: each sequence's drawn from [A, B], seeded, as
in serving), and two causal prefills beside them (a change to the shared
TMA copies shows in both). LIB picks the library (default
build/libflashlm_attn.so), so two builds can be timed in one device call.
Figures and what they showed: docs/PERF.md."""
import os
import sys

import torch

import attn_check as ac

HQ, HKV, D, BS = 16, 8, 128, 128


def main():
    lib = ac.load_lib(os.environ.get("LIB", "build/libflashlm_attn.so"))
    dev = torch.device("cuda")
    for b, s in ((4, 8192), (32, 1024)):
        cache, tables = ac.make_cache([s] * b, HKV, D, BS, None, dev)
        q = torch.randn(b * s, HQ, D, device=dev, dtype=torch.bfloat16)
        out = torch.empty_like(q)
        attn = ac.PagedAttention(lib, "hopper", HQ, HKV, D, BS, [s] * b, [s] * b, cache, tables)
        ms = ac.bench_ms(lambda: attn(q, out))
        print(f"prefill B{b} S{s}: {1000 * ms:.1f} us, {2 * b * s * s * HQ * D / ms / 1e9:.0f} TFLOP/s", flush=True)
        del cache, tables, q, out
    b = 256
    gen = torch.Generator().manual_seed(0)
    for arg in sys.argv[1:] or ["1024", "1025", "1088", "1089", "1152", "1536", "1537", "1600"]:
        lo, _, hi = arg.partition("-")
        lens = torch.randint(int(lo), int(hi or lo) + 1, (b,), generator=gen).tolist()
        cache, tables = ac.make_cache(lens, HKV, D, BS, None, dev)
        q = torch.randn(b, HQ, D, device=dev, dtype=torch.bfloat16)
        out = torch.empty_like(q)
        attn = ac.PagedAttention(lib, "hopper", HQ, HKV, D, BS, [1] * b, lens, cache, tables)
        ms = ac.bench_ms(lambda: attn(q, out))
        kv_bytes = 2 * sum(lens) * HKV * D * 2
        print(f"decode B{b} L{arg} (mean {sum(lens) / b:.0f}) splits {attn.splits}: {1000 * ms:.1f} us, "
              f"{kv_bytes / ms / 1e9:.2f} TB/s", flush=True)
        del cache, tables


if __name__ == "__main__":
    main()
