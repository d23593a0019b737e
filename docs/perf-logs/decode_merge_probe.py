"""decode_merge_probe.py - decode B1 at 16k, 32k and 64k keys (Qwen3's
heads, hopper backend, bf16 cache): us of do_bench (after its L2 flush,
which leaves dirty lines) and after a read-only flush (attn_check's
bench_clean_l2_ms), for each library in LIBS (comma-separated builds of
build/libflashlm_attn.so), cuDNN's dense decode beside. ROUNDS: how
many times the libraries alternate (default 2). ACDIR: the directory of
the attn_check.py whose ABI the libraries have (default tools). Its output and what it showed: docs/PERF.md, "The split merge's
code"; decode_merge_probe.txt."""
import os, sys, torch
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel, SDPBackend
sys.path.insert(0, os.environ.get("ACDIR", "tools"))
import attn_check as ac

libs = [(p, ac.load_lib(p)) for p in os.environ["LIBS"].split(",")]
dev = torch.device("cuda")
for b, ctx, hq, hkv, d in [(1, 32768, 16, 8, 128), (1, 16384, 16, 8, 128), (1, 65536, 16, 8, 128)]:
    cache, tables = ac.make_cache([ctx] * b, hkv, d, 128, None, dev, "bf16")
    q = torch.randn(b, hq, d, device=dev, dtype=torch.bfloat16)
    out = torch.empty_like(q)
    for rnd in range(int(os.environ.get("ROUNDS", "2"))):  # the libraries alternated
        for path, lib in libs:
            attn = ac.PagedAttention(lib, "hopper", hq, hkv, d, 128, [1] * b, [ctx] * b, cache, tables)
            ms, clean = ac.bench_ms(lambda: attn(q, out)), ac.bench_clean_l2_ms(lambda: attn(q, out))
            print(f"B{b} L{ctx} {os.path.basename(path)} splits {attn.plan.num_splits}: {1000 * ms:.1f} us dirty, "
                  f"{1000 * clean:.1f} us clean", flush=True)
    del cache
    qd = q.view(b, 1, hq, d).transpose(1, 2)
    kd = torch.randn(b, hkv, ctx, d, device=dev, dtype=torch.bfloat16)
    vd = torch.randn(b, hkv, ctx, d, device=dev, dtype=torch.bfloat16)
    f = lambda: F.scaled_dot_product_attention(qd, kd, vd, enable_gqa=True)
    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
        ms, clean = ac.bench_ms(f), ac.bench_clean_l2_ms(f)
    print(f"B{b} L{ctx} cuDNN: {1000 * ms:.1f} us dirty, {1000 * clean:.1f} us clean", flush=True)
    del kd, vd
