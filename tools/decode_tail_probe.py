"""decode_tail_probe.py [CONTEXT...] - what a sequence's last, partial KV
tile costs: the hopper backend's decode at B256 (Qwen3-0.6B's heads, bf16
cache, block size 128) timed at contexts just below and above multiples of
64 keys (a CONTEXT of A-B: each sequence's drawn from [A, B], seeded, as
in serving), and two causal prefills beside them (a change to the shared
TMA copies shows in both), after the read-only ceiling: a 1 GiB read by a
kernel that only sums, beside the 1 GiB copy. LIB picks the library (default
build/libflashlm_attn.so), so two builds can be timed in one device call.
Figures and what they showed: docs/PERF.md."""
import os
import sys

import torch
import triton
import triton.language as tl

import attn_check as ac

HQ, HKV, D, BS = 16, 8, 128, 128


@triton.jit
def read_kernel(x, out, n_per_prog, BLOCK: tl.constexpr):
    """Sums a program's n_per_prog int32 values: the reads, and one store."""
    base = tl.program_id(0).to(tl.int64) * n_per_prog
    acc = tl.zeros((BLOCK,), dtype=tl.int32)
    for i in range(0, n_per_prog, BLOCK):
        acc += tl.load(x + base + i + tl.arange(0, BLOCK))
    tl.store(out + tl.program_id(0), tl.sum(acc))


def ceilings(dev):
    x = torch.ones(1 << 28, dtype=torch.int32, device=dev)
    out = torch.empty(1 << 14, dtype=torch.int32, device=dev)
    ms = float("inf")  # the best of a few shapes: as many bytes in flight as it takes
    for programs in (1 << 11, 1 << 13, 1 << 14):  # each a whole number of blocks
        for block, warps in ((2048, 4), (4096, 8), (8192, 8)):
            n = x.numel() // programs
            ms = min(ms, ac.bench_ms(lambda: read_kernel[(programs,)](x, out, n, BLOCK=block, num_warps=warps),
                                     graph=False))
    del x, out
    print(f"read 1 GiB: {4 * (1 << 28) / ms / 1e9:.2f} TB/s; copy 1 GiB (read+write): "
          f"{ac.copy_ceiling_tbs(dev):.2f} TB/s", flush=True)


def main():
    lib = ac.load_lib(os.environ.get("LIB", "build/libflashlm_attn.so"))
    dev = torch.device("cuda")
    ceilings(dev)
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
