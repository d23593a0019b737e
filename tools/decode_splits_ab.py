"""decode_splits_ab.py - the hopper backend's decode at the splits each
library plans: LIBS=a.so,b.so (two builds of build/libflashlm_attn.so),
alternated twice, bf16 and fp8 caches, at small batches and long contexts
(where the split count matters) and at B256 (where it is 1), cuDNN's
dense decode beside. Prints, per shape and library, the planned splits and
TB/s of both rounds. Figures and what they showed: docs/PERF.md."""
import os, sys, torch
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel, SDPBackend
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attn_check as ac

libs = [(p, ac.load_lib(p)) for p in os.environ["LIBS"].split(",")]
dev = torch.device("cuda")
print(f"copy {ac.copy_ceiling_tbs(dev):.2f} TB/s", flush=True)
shapes = [(1, 32768, 16, 8, 128), (1, 16384, 16, 8, 128), (4, 8192, 16, 8, 128), (8, 16384, 16, 8, 128),
          (16, 4096, 16, 8, 128), (32, 2048, 16, 8, 128), (256, 1536, 16, 8, 128), (1, 32768, 64, 8, 64),
          (64, 4096, 64, 8, 64)]
for b, ctx, hq, hkv, d in shapes:
    bs = 128
    caches = {kv: ac.make_cache([ctx] * b, hkv, d, bs, None, dev, kv) for kv in ("bf16", "fp8")}
    q = torch.randn(b, hq, d, device=dev, dtype=torch.bfloat16)
    out = torch.empty_like(q)
    kv_bytes = 2 * b * ctx * hkv * d * 2
    line = [f"B{b} L{ctx} {hq}/{hkv} D{d}:"]
    res = {}
    for rnd in range(2):
        for path, lib in libs:
            for kv in ("bf16", "fp8"):
                cache, tables = caches[kv]
                attn = ac.PagedAttention(lib, "hopper", hq, hkv, d, bs, [1] * b, [ctx] * b, cache, tables)
                ms = ac.bench_ms(lambda: attn(q, out))
                res.setdefault((path, kv), []).append((attn.plan.num_splits, kv_bytes / (2 if kv == "fp8" else 1) / ms / 1e9))
    for (path, kv), v in res.items():
        line.append(f"{os.path.basename(path)} {kv} s{v[0][0]} {v[0][1]:.2f}/{v[1][1]:.2f}")
    qd = q.view(b, 1, hq, d).transpose(1, 2)
    kd = torch.randn(b, hkv, ctx, d, device=dev, dtype=torch.bfloat16)
    vd = torch.randn(b, hkv, ctx, d, device=dev, dtype=torch.bfloat16)
    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
        ms = ac.bench_ms(lambda: F.scaled_dot_product_attention(qd, kd, vd, enable_gqa=True))
    line.append(f"| cuDNN {kv_bytes / ms / 1e9:.2f}")
    print(" ".join(line), flush=True)
    del caches, kd, vd
