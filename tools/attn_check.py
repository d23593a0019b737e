#!/usr/bin/env python3
"""attn_check.py - checks and times the CUDA attention backends on the GPU.

Loads build/libflashlm_attn.so (the C API of src/attention/attn_paged.h) with
ctypes and runs its kernel sets as the registry's backends: `hopper` (wgmma
prefill, tensor-copy decode; compute capability 9.0) and `paged` (the
portable mma.sync and cp.async kernels, 8.0 to 9.0). --backend names one, or
all (the default): every backend this GPU runs, in the same run.
Correctness, for each backend: every head dim and block size the library
supports (asked of fl_attn_paged_supports, so the list is the library's)
times five GQA ratios (120 configurations today), a mixed batch (decode
tokens, short chunks, whole prompts, chunked prefill over a longer context)
on fresh random inputs, scattered block tables, the output poisoned with
NaN first; compared with a float64 torch reference: every element must be
finite and each sequence's relative error ||out - ref|| / ||ref|| under
1e-2. Then sliding windows and sinks: every head dim and block size times
eight (window, sinks) pairs (WINDOWED: windows of 1, 37, 128 and 1000
keys, with and without sinks, and sinks without a window), a mixed batch
with contexts shorter and longer than the window and a prompt longer than
the largest, and decode tokens planned for 32k contexts (the splits a
windowed layer takes). The window is HF transformers' sliding_window: the
query at position p sees keys p - W + 1 .. p (masking_utils'
sliding_window_overlay, kv_idx > q_idx - W, which GptOss's mask uses); a
sink is a per-head logit in the scaled-score units that joins the softmax
denominator (GptOss's eager attention). Every check runs with a bf16 cache
and with a float8 e4m3 one (--kv), whose K and V are N(0, 1) values stored
over scales of 0.045 and 0.06, the reference reading the values the cache
holds (the bytes times the scales): the kernels compute on exactly those
values (widened to float16, attn_paged.h), so the fp8 cache's limit is the
bf16 one's; what quantizing costs a model is the parity harness's fp8 KL
(tools/model_parity.py --kv-cache-dtype fp8). Speed: the DEVICE.md shapes, each
backend timed with triton's do_bench (median) beside torch SDPA with the
cuDNN and FlashAttention-2 backends on dense tensors and a device-to-device
copy, all in the same run; decode also after an L2 flush that leaves no
dirty lines (bench_clean_l2_ms), for ours and cuDNN; gpt-oss's windowed
layers (W128 with sinks) beside the full-context decode and prefill of
the same shape; each shape again with an fp8 cache, as a speed ratio to the
bf16 cache's. Prints one table; exits 1 if any check fails, 2 if a named
backend cannot run on this GPU.

usage: tools/attn_check.py [--lib build/libflashlm_attn.so] [--backend hopper|paged|all] [--kv bf16|fp8|all]
                          [--quick] [--no-bench]
"""
import argparse
import ctypes
import math
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from triton.testing import do_bench


# the registry's CUDA backends, best first, and the kernel set (attn_paged.h's
# fl_attn_kernel_set) that runs each
BACKENDS = {"hopper": 1, "paged": 0}


# attn_paged.h's fl_attn_kv_type
KV_TYPES = {"bf16": 0, "fp8": 1}


class Shape(ctypes.Structure):
    _fields_ = [("num_heads", ctypes.c_int), ("num_kv_heads", ctypes.c_int), ("head_dim", ctypes.c_int),
                ("block_size", ctypes.c_int), ("num_sms", ctypes.c_int), ("smem_per_sm", ctypes.c_int),
                ("cc", ctypes.c_int), ("kv_type", ctypes.c_int)]

    @staticmethod
    def of_gpu(hq, hkv, d, bs, kv="bf16"):
        props = torch.cuda.get_device_properties(0)
        smem = getattr(props, "shared_memory_per_multiprocessor", 228 * 1024)
        return Shape(hq, hkv, d, bs, props.multi_processor_count, smem, 10 * props.major + props.minor,
                     KV_TYPES[kv])


class Plan(ctypes.Structure):
    _fields_ = [("prefill_rows", ctypes.c_int), ("num_prefill", ctypes.c_int), ("num_decode", ctypes.c_int),
                ("num_splits", ctypes.c_int), ("decode_rows", ctypes.c_int), ("work_len", ctypes.c_int),
                ("work", ctypes.POINTER(ctypes.c_int32))]


class Args(ctypes.Structure):
    _fields_ = ([(n, ctypes.c_void_p) for n in ("q", "k_cache", "v_cache")] +
                [("k_scale", ctypes.c_float), ("v_scale", ctypes.c_float)] +
                [(n, ctypes.c_void_p) for n in
                 ("out", "query_start", "seq_lens", "block_tables", "work", "scratch", "split_counters")] +
                [("max_blocks_per_seq", ctypes.c_int), ("num_blocks", ctypes.c_int), ("scale", ctypes.c_float),
                 ("window", ctypes.c_int), ("sinks", ctypes.c_void_p)])


class Cache:
    """A paged K/V cache as the kernels read it (bf16, or float8 e4m3 bytes
    with a scale each) and as the reference reads it (the values it holds,
    dequantized, in float32)."""

    def __init__(self, k, v, kv="bf16", k_scale=1.0, v_scale=1.0):
        self.kv, self.k_scale, self.v_scale = kv, k_scale, v_scale
        if kv == "fp8":
            k8 = (k.float() / k_scale).to(torch.float8_e4m3fn)
            v8 = (v.float() / v_scale).to(torch.float8_e4m3fn)
            self.k_dev, self.v_dev = k8.view(torch.uint8), v8.view(torch.uint8)
            self.k, self.v = k8.float() * k_scale, v8.float() * v_scale
        else:
            self.k_dev, self.v_dev, self.k, self.v = k, v, k, v


class PagedAttention:
    """One step of a backend's kernels for one layer (its window, 0 for
    none, and sinks, a float32 tensor of hq logits or None): planned once,
    run many times."""

    def __init__(self, lib, backend, hq, hkv, d, bs, q_lens, seq_lens, cache, tables, max_seq_len=0,
                 window=0, sinks=None):
        self.lib = lib
        self.kernels = BACKENDS[backend]
        self.shape = Shape.of_gpu(hq, hkv, d, bs, cache.kv)
        n = len(q_lens)
        qs = [0]
        for q in q_lens:
            qs.append(qs[-1] + q)
        qs_c = (ctypes.c_int32 * (n + 1))(*qs)
        sl_c = (ctypes.c_int32 * n)(*seq_lens)
        cap = lib.fl_attn_plan_work_cap(ctypes.byref(self.shape), n, qs[-1])
        self.work_host = (ctypes.c_int32 * max(cap, 1))()
        self.plan = Plan(0, 0, 0, 0, 0, 0, self.work_host)
        lib.fl_attn_plan_build(ctypes.byref(self.plan), ctypes.byref(self.shape), self.kernels, qs_c, sl_c, n,
                               max_seq_len)
        self.window, self.sinks = window, sinks
        # the decode CTAs per sequence and KV head this layer runs with
        self.splits = lib.fl_attn_plan_splits(ctypes.byref(self.plan), ctypes.byref(self.shape), window)
        dev = cache.k_dev.device
        self.work = torch.tensor(list(self.work_host[:max(self.plan.work_len, 1)]), dtype=torch.int32, device=dev)
        self.query_start = torch.tensor(qs, dtype=torch.int32, device=dev)
        self.seq_lens = torch.tensor(seq_lens, dtype=torch.int32, device=dev)
        self.tables = tables
        floats = lib.fl_attn_plan_scratch_floats(ctypes.byref(self.plan), ctypes.byref(self.shape))
        self.scratch = torch.empty(max(floats, 1), dtype=torch.float32, device=dev)
        self.counters = torch.zeros(max(n * hkv, 1), dtype=torch.int32, device=dev)
        self.cache = cache
        self.num_tokens = qs[-1]

    def __call__(self, q, out):
        c = self.cache
        a = Args(q.data_ptr(), c.k_dev.data_ptr(), c.v_dev.data_ptr(), c.k_scale, c.v_scale,
                 out.data_ptr(), self.query_start.data_ptr(), self.seq_lens.data_ptr(), self.tables.data_ptr(),
                 self.work.data_ptr(), self.scratch.data_ptr(), self.counters.data_ptr(), self.tables.shape[1],
                 c.k_dev.shape[0], 1.0 / math.sqrt(q.shape[-1]), self.window,
                 self.sinks.data_ptr() if self.sinks is not None else None)
        rc = self.lib.fl_attn_paged_run(ctypes.byref(self.shape), self.kernels, ctypes.byref(self.plan),
                                        ctypes.byref(a), ctypes.c_void_p(torch.cuda.current_stream().cuda_stream))
        if rc != 0:
            raise RuntimeError(f"fl_attn_paged_run: CUDA error {rc}")


def load_lib(path):
    lib = ctypes.CDLL(path)
    lib.fl_attn_plan_work_cap.restype = ctypes.c_int
    lib.fl_attn_plan_scratch_floats.restype = ctypes.c_size_t
    lib.fl_attn_plan_splits.restype = ctypes.c_int
    lib.fl_attn_paged_run.restype = ctypes.c_int
    lib.fl_attn_paged_supports.restype = ctypes.c_int
    return lib


def unsupported(lib, backend, shape):
    """Why the backend's kernels cannot run shape on this GPU, or None."""
    why = ctypes.create_string_buffer(256)
    rc = lib.fl_attn_paged_supports(ctypes.byref(shape), BACKENDS[backend], why, ctypes.c_size_t(len(why)))
    return why.value.decode() if rc != 0 else None


def supported_sizes(lib, backend):
    """The head dims and block sizes the library builds the backend for."""
    dims = [d for d in range(1, 1025) if not unsupported(lib, backend, Shape.of_gpu(8, 8, d, 16))]
    blocks = [1 << i for i in range(11) if not unsupported(lib, backend, Shape.of_gpu(8, 8, dims[0], 1 << i))]
    return dims, blocks


def on_device(gen, dev):
    """A generator on dev seeded from the host generator gen (None: None,
    torch's default): the checks' caches and queries are drawn on the GPU,
    where tens of millions of values take no time."""
    if gen is None:
        return None
    g = torch.Generator(device=dev)
    g.manual_seed(int(torch.randint(1 << 62, (1,), generator=gen)))
    return g


# an fp8 cache's scales in the checks: values of N(0, 1) stored as up to ~110
# (e4m3's largest is 448), so every scale and the subnormals are exercised
FP8_SCALES = (0.045, 0.06)


def make_cache(seq_lens, hkv, d, bs, gen, dev, kv="bf16"):
    """A paged cache (Cache) holding each sequence's context at shuffled
    blocks (drawn from gen, or unseeded if None), of bf16 or fp8."""
    blocks = [(s + bs - 1) // bs for s in seq_lens]
    total = sum(blocks) + 3
    perm = torch.randperm(total, generator=gen or torch.Generator().manual_seed(1)).tolist()
    width = max(blocks)
    tables = torch.full((len(seq_lens), width), -1, dtype=torch.int32)
    at = 0
    for i, b in enumerate(blocks):
        tables[i, :b] = torch.tensor(perm[at:at + b], dtype=torch.int32)
        at += b
    g = on_device(gen, dev)
    k = torch.randn(total, bs, hkv, d, device=dev, dtype=torch.bfloat16, generator=g)
    v = torch.randn(total, bs, hkv, d, device=dev, dtype=torch.bfloat16, generator=g)
    return Cache(k, v, kv, *(FP8_SCALES if kv == "fp8" else (1.0, 1.0))), tables.to(dev)


def reference(q, k_cache, v_cache, tables, q_lens, seq_lens, hq, hkv, bs, window=0, sinks=None):
    """float64 causal attention of each sequence's rows over its own
    context (the values the caches hold: an fp8 cache dequantized): over
    keys p - window + 1 .. p for a window, with each head's sink logit in
    the denominator for sinks."""
    outs = []
    at = 0
    g = hq // hkv
    for i, (ql, sl) in enumerate(zip(q_lens, seq_lens)):
        nb = (sl + bs - 1) // bs
        idx = tables[i, :nb].long()
        k = k_cache[idx].reshape(nb * bs, hkv, -1)[:sl].double().repeat_interleave(g, dim=1)
        v = v_cache[idx].reshape(nb * bs, hkv, -1)[:sl].double().repeat_interleave(g, dim=1)
        qi = q[at:at + ql].double()
        s = torch.einsum("qhd,khd->hqk", qi, k) / math.sqrt(q.shape[-1])
        pos_q = torch.arange(sl - ql, sl, device=q.device)[:, None]
        pos_k = torch.arange(sl, device=q.device)[None, :]
        unseen = pos_k > pos_q
        if window > 0:
            unseen |= pos_k <= pos_q - window
        s = s.masked_fill(unseen, float("-inf"))
        if sinks is None:
            p = torch.softmax(s, dim=-1)
        else:
            sink = sinks.double()[:, None, None].expand(-1, ql, 1)
            p = torch.softmax(torch.cat([s, sink], dim=-1), dim=-1)[..., :-1]
        outs.append(torch.einsum("hqk,khd->qhd", p, v))
        at += ql
    return outs


def check_case(lib, backend, d, bs, hq, hkv, q_lens, seq_lens, gen, max_seq_len=0, window=0, sinks=False,
               kv="bf16"):
    """One step against the reference: (passed, worst relative error, the attention)."""
    dev = torch.device("cuda")
    cache, tables = make_cache(seq_lens, hkv, d, bs, gen, dev, kv)
    # sinks from negligible to dominant: e^10 outweighs the ~1.6 n of n keys' e^s up to n ~ 10^4
    sink_logits = (torch.rand(hq, generator=gen) * 12 - 2).to(dev) if sinks else None
    attn = PagedAttention(lib, backend, hq, hkv, d, bs, q_lens, seq_lens, cache, tables, max_seq_len,
                          window, sink_logits)
    q = torch.randn(attn.num_tokens, hq, d, device=dev, dtype=torch.bfloat16, generator=on_device(gen, dev))
    out = torch.full_like(q, float("nan"))
    attn(q, out)
    torch.cuda.synchronize()
    refs = reference(q, cache.k, cache.v, tables, q_lens, seq_lens, hq, hkv, bs, window, sink_logits)
    worst = 0.0
    finite = bool(torch.isfinite(out).all())
    at = 0
    for ql, ref in zip(q_lens, refs):
        o = out[at:at + ql].double()
        worst = max(worst, float((o - ref).norm() / ref.norm()))
        at += ql
    return finite and worst < 1e-2, worst, attn


def correctness(lib, backend, quick, kv):
    gen = torch.Generator().manual_seed(torch.seed() % (1 << 62))
    rows = []
    ok_all = True
    head_dims, block_sizes = supported_sizes(lib, backend)
    groups = ((8, 8), (16, 8), (16, 4), (8, 1), (16, 1)) if not quick else ((16, 8), (8, 1))
    for d in head_dims:
        for bs in block_sizes:
            for hq, hkv in groups:
                # decode tokens, a 3-token chunk, whole prompts, chunks over a longer context,
                # and a decode token over a long context (split-KV)
                lens = [(1, 1), (1, 37), (1, 200), (3, 150), (5, 5), (64, 64), (130, 130), (100, 700),
                        (17, 300), (1, 3000 + int(torch.randint(0, 500, (1,), generator=gen)))]
                q_lens = [a for a, _ in lens]
                seq_lens = [b for _, b in lens]
                ok, err, attn = check_case(lib, backend, d, bs, hq, hkv, q_lens, seq_lens, gen, kv=kv)
                # the same decode tokens forced to many splits (a graph planned for long contexts)
                ok2, err2, attn2 = check_case(lib, backend, d, bs, hq, hkv, [1, 1, 1], [5, 900, 2500], gen,
                                              max_seq_len=32768, kv=kv)
                ok_all &= ok and ok2
                rows.append((d, bs, f"{hq}/{hkv}", attn.plan.num_prefill, attn.plan.num_decode, attn.splits, err,
                             attn2.splits, err2, "ok" if ok and ok2 else "FAIL"))
    print(f"correctness of {backend}, {kv} cache, {len(rows)} configurations: relative error vs float64 torch "
          f"(limit 1e-2, NaN fails)")
    print(f"{'D':>4} {'bs':>4} {'Hq/Hkv':>7} {'pre':>4} {'dec':>4} {'spl':>4} {'rel.err':>9} "
          f"{'spl2':>5} {'rel.err2':>9}  result")
    for r in rows:
        print(f"{r[0]:>4} {r[1]:>4} {r[2]:>7} {r[3]:>4} {r[4]:>4} {r[5]:>4} {r[6]:>9.2e} {r[7]:>5} {r[8]:>9.2e}  {r[9]}")
    print(f"correctness of {backend}, {kv} cache: {'PASS' if ok_all else 'FAIL'}\n")
    return ok_all


# (window, sinks, (Hq, Hkv)) of the windowed checks: each window with and
# without sinks, sinks over the full context; windows of one key, of a
# number of keys no block size divides (37, 1000), gpt-oss's (128, with its
# 64/8 heads); GQA groups 1, 8 and 16
WINDOWED = ((0, True, (16, 2)), (1, False, (8, 8)), (37, False, (8, 8)), (37, True, (16, 2)),
            (128, False, (8, 8)), (128, True, (64, 8)), (1000, False, (16, 1)), (1000, True, (16, 2)))


def correctness_windowed(lib, backend, quick, kv):
    """Sliding windows and sinks: every head dim and block size times
    WINDOWED (or its gpt-oss entry and one other with --quick)."""
    gen = torch.Generator().manual_seed(torch.seed() % (1 << 62))
    rows = []
    ok_all = True
    head_dims, block_sizes = supported_sizes(lib, backend)
    variants = WINDOWED if not quick else (WINDOWED[5], WINDOWED[6])
    for d in head_dims:
        for bs in block_sizes:
            for window, sinks, (hq, hkv) in variants:
                # decode tokens over contexts shorter and longer than the window, a 3-token chunk, whole
                # prompts (one longer than every window), chunks over a longer context, a long decode
                lens = [(1, 1), (1, 37), (1, 200), (3, 150), (5, 5), (64, 64), (130, 130), (1200, 1200),
                        (100, 700), (17, 300), (1, 3000 + int(torch.randint(0, 500, (1,), generator=gen)))]
                q_lens = [a for a, _ in lens]
                seq_lens = [b for _, b in lens]
                ok, err, attn = check_case(lib, backend, d, bs, hq, hkv, q_lens, seq_lens, gen, window=window,
                                           sinks=sinks, kv=kv)
                # decode tokens planned for 32k contexts: the splits share the window's tiles, the sinks
                # join the merge once
                ok2, err2, attn2 = check_case(lib, backend, d, bs, hq, hkv, [1, 1, 1], [5, 900, 2500], gen,
                                              max_seq_len=32768, window=window, sinks=sinks, kv=kv)
                ok_all &= ok and ok2
                rows.append((d, bs, window, "yes" if sinks else "no", f"{hq}/{hkv}", attn.plan.num_prefill,
                             attn.plan.num_decode, attn.splits, err, attn2.splits, err2,
                             "ok" if ok and ok2 else "FAIL"))
    print(f"sliding windows and sinks of {backend}, {kv} cache, {len(rows)} configurations: relative error vs float64 torch "
          f"(limit 1e-2, NaN fails); spl: the decode splits of the window's layer")
    print(f"{'D':>4} {'bs':>4} {'W':>5} {'sinks':>5} {'Hq/Hkv':>7} {'pre':>4} {'dec':>4} {'spl':>4} {'rel.err':>9} "
          f"{'spl2':>5} {'rel.err2':>9}  result")
    for r in rows:
        print(f"{r[0]:>4} {r[1]:>4} {r[2]:>5} {r[3]:>5} {r[4]:>7} {r[5]:>4} {r[6]:>4} {r[7]:>4} {r[8]:>9.2e} "
              f"{r[9]:>5} {r[10]:>9.2e}  {r[11]}")
    print(f"sliding windows and sinks of {backend}, {kv} cache: {'PASS' if ok_all else 'FAIL'}\n")
    return ok_all


def replayable(fn, graph=True):
    """fn, called once, then as a CUDA graph replay (no host launch
    overhead, as in serving, where decode steps are graphs); fn itself if
    capture fails or graph is False."""
    fn()
    torch.cuda.synchronize()
    if graph:
        try:
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                fn()
            return g.replay
        except RuntimeError:
            pass
    return fn


def bench_ms(fn, graph=True):
    """Median ms of do_bench over replayable(fn, graph)."""
    return do_bench(replayable(fn, graph), warmup=50, rep=300, return_mode="median")


def bench_clean_l2_ms(fn):
    """Median ms of replayable(fn) after an L2 flush that only reads.
    do_bench flushes by zeroing 256 MB, which leaves the L2 full of dirty
    lines that the next kernel's reads must write back first (~50 MB: a
    third more DRAM traffic for the 134 MB of B1 L32k); a model's decode
    step starts from no such backlog. Shown beside do_bench's figure."""
    run = replayable(fn)
    flush = torch.ones(64 << 20, dtype=torch.int32, device="cuda")  # 256 MB
    times = []
    for i in range(250):
        flush.sum()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        end.synchronize()
        if i >= 50:
            times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def copy_ceiling_tbs(dev):
    """TB/s of a 1 GiB device copy, bytes read + written; eager (captured,
    the copy becomes a copy-engine memcpy node, measured at 2.44 instead of
    3.00 TB/s)."""
    big = torch.empty(1 << 30, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(big)
    return 2 * big.numel() / bench_ms(lambda: dst.copy_(big), graph=False) / 1e9


# gpt-oss's attention: 64 query heads over 8 KV heads of 64, its even
# layers over a window of 128 keys, sinks on every layer
GPT_OSS_HEADS = (64, 8, 64)
GPT_OSS_WINDOW = 128


def bench(lib, backends):
    dev = torch.device("cuda")
    gen = None
    results = []  # (case, [(figure, ratio) per backend], peers)
    copy_tbs = copy_ceiling_tbs(dev)
    results.append(("copy 1 GiB (read+write)", [(f"{copy_tbs:.2f} TB/s", "")] + [("", "")] * (len(backends) - 1), ""))

    def sdpa(backend, q, k, v, causal):
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)

    # decode shapes: (batch, context, hq, hkv, d)
    for b, ctx, hq, hkv, d in ((256, 1536, 16, 8, 128), (8, 16384, 16, 8, 128), (1, 32768, 16, 8, 128),
                               (64, 4096, 64, 8, 64)):
        bs = 128
        cache, tables = make_cache([ctx] * b, hkv, d, bs, gen, dev)
        cache8, _ = make_cache([ctx] * b, hkv, d, bs, gen, dev, "fp8")
        q = torch.randn(b, hq, d, device=dev, dtype=torch.bfloat16)
        out = torch.empty_like(q)
        kv_bytes = 2 * b * ctx * hkv * d * 2
        ours, clean, windowed, fp8 = [], [], [], []
        gpt_oss = (hq, hkv, d) == GPT_OSS_HEADS
        sinks = torch.rand(hq, device=dev) * 4 if gpt_oss else None
        for backend in backends:
            attn = PagedAttention(lib, backend, hq, hkv, d, bs, [1] * b, [ctx] * b, cache, tables)
            full_ms = bench_ms(lambda: attn(q, out))
            tbs = kv_bytes / full_ms / 1e9
            ours.append((f"{tbs:.2f} TB/s", f"{100 * tbs / copy_tbs:.0f}% of copy"))
            attn8 = PagedAttention(lib, backend, hq, hkv, d, bs, [1] * b, [ctx] * b, cache8, tables)
            ms8 = bench_ms(lambda: attn8(q, out))
            fp8.append((f"{kv_bytes / 2 / ms8 / 1e9:.2f} TB/s", f"{full_ms / ms8:.2f}x bf16's speed"))
            clean.append(f"{backend} {100 * kv_bytes / bench_clean_l2_ms(lambda: attn(q, out)) / 1e9 / copy_tbs:.0f}%")
            if gpt_oss:  # its windowed layers: the same step, the tiles of the last 128 keys only
                win = PagedAttention(lib, backend, hq, hkv, d, bs, [1] * b, [ctx] * b, cache, tables,
                                     window=GPT_OSS_WINDOW, sinks=sinks)
                ms = bench_ms(lambda: win(q, out))
                windowed.append((f"{1000 * ms:.1f} us", f"{100 * ms / full_ms:.1f}% of L{ctx}"))
        del cache, cache8
        qd = q.view(b, 1, hq, d).transpose(1, 2)
        kd = torch.randn(b, hkv, ctx, d, device=dev, dtype=torch.bfloat16)
        vd = torch.randn(b, hkv, ctx, d, device=dev, dtype=torch.bfloat16)
        peers = []
        for name, be in (("cuDNN", SDPBackend.CUDNN_ATTENTION), ("FA2", SDPBackend.FLASH_ATTENTION)):
            try:
                ms = bench_ms(lambda: sdpa(be, qd, kd, vd, False))
                peers.append(f"{name} {kv_bytes / ms / 1e9:.2f}")
                if name == "cuDNN":
                    cudnn_clean = kv_bytes / bench_clean_l2_ms(lambda: sdpa(be, qd, kd, vd, False)) / 1e9
                    peers.append(f"clean L2: {', '.join(clean)}, cuDNN {100 * cudnn_clean / copy_tbs:.0f}% of copy")
            except RuntimeError as e:
                peers.append(f"{name} n/a ({str(e).splitlines()[0][:40]})")
        del kd, vd
        results.append((f"decode B{b} L{ctx} Hq{hq}/Hkv{hkv} D{d} bs{bs} splits {attn.plan.num_splits}", ours,
                        ", ".join(peers)))
        results.append(("  same, fp8 cache (TB/s of fp8 bytes)", fp8, ""))
        if gpt_oss:
            window_us = 2 * b * GPT_OSS_WINDOW * hkv * d * 2 / copy_tbs / 1e6
            results.append((f"  same, W{GPT_OSS_WINDOW} + sinks (gpt-oss) splits {win.splits}", windowed,
                            f"the window's K/V at copy speed: {window_us:.1f} us (SDPA has no window)"))
    # prefill, causal: (batch, seq, hq, hkv, d)
    for b, s, hq, hkv, d in ((4, 8192, 16, 8, 128), (32, 1024, 16, 8, 128), (4, 8192, 64, 8, 64),
                             (4, 8192, 16, 8, 96), (4, 8192, 16, 8, 256)):
        bs = 128
        cache, tables = make_cache([s] * b, hkv, d, bs, gen, dev)
        cache8, _ = make_cache([s] * b, hkv, d, bs, gen, dev, "fp8")
        q = torch.randn(b * s, hq, d, device=dev, dtype=torch.bfloat16)
        out = torch.empty_like(q)
        flops = 4 * b * hq * s * s * d / 2
        tflops, windowed, fp8 = [], [], []
        gpt_oss = (hq, hkv, d) == GPT_OSS_HEADS
        sinks = torch.rand(hq, device=dev) * 4 if gpt_oss else None
        for backend in backends:
            attn = PagedAttention(lib, backend, hq, hkv, d, bs, [s] * b, [s] * b, cache, tables)
            full_ms = bench_ms(lambda: attn(q, out))
            tflops.append(flops / full_ms / 1e9)
            attn8 = PagedAttention(lib, backend, hq, hkv, d, bs, [s] * b, [s] * b, cache8, tables)
            ms8 = bench_ms(lambda: attn8(q, out))
            fp8.append((f"{flops / ms8 / 1e9:.0f} TFLOP/s", f"{full_ms / ms8:.2f}x bf16's speed"))
            if gpt_oss:
                win = PagedAttention(lib, backend, hq, hkv, d, bs, [s] * b, [s] * b, cache, tables,
                                     window=GPT_OSS_WINDOW, sinks=sinks)
                ms = bench_ms(lambda: win(q, out))
                windowed.append((f"{1000 * ms:.0f} us", f"{100 * ms / full_ms:.1f}% of causal"))
        qd = q.view(b, s, hq, d).transpose(1, 2)
        kd = torch.randn(b, hkv, s, d, device=dev, dtype=torch.bfloat16)
        vd = torch.randn(b, hkv, s, d, device=dev, dtype=torch.bfloat16)
        peers = []
        cudnn = None
        for name, be in (("cuDNN", SDPBackend.CUDNN_ATTENTION), ("FA2", SDPBackend.FLASH_ATTENTION)):
            try:
                tf = flops / bench_ms(lambda: sdpa(be, qd, kd, vd, True)) / 1e9
                cudnn = tf if name == "cuDNN" else cudnn
                peers.append(f"{name} {tf:.0f}")
            except RuntimeError as e:
                peers.append(f"{name} n/a ({str(e).splitlines()[0][:40]})")
        del cache, cache8, kd, vd
        results.append((f"prefill causal B{b} S{s} Hq{hq}/Hkv{hkv} D{d} bs{bs}",
                        [(f"{tf:.0f} TFLOP/s", f"{100 * tf / cudnn:.0f}% of cuDNN" if cudnn else "") for tf in tflops],
                        ", ".join(peers)))
        results.append(("  same, fp8 cache", fp8, ""))
        if gpt_oss:
            # each query sees at most 128 keys instead of up to 8192
            results.append((f"  same, W{GPT_OSS_WINDOW} + sinks (gpt-oss)", windowed, ""))
    print(f"\nspeed on {torch.cuda.get_device_name(0)} (median of do_bench over CUDA graph replays; peers: torch "
          f"SDPA, dense KV)")
    print(f"{'case':<52}" + "".join(f" {name:>13} {'ratio':>16}" for name in backends) + "  peers")
    for case, figures, peers in results:
        print(f"{case:<52}" + "".join(f" {fig:>13} {ratio:>16}" for fig, ratio in figures) + f"  {peers}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default="build/libflashlm_attn.so")
    ap.add_argument("--backend", choices=list(BACKENDS) + ["all"], default="all",
                    help="the backend to check and time; all: each this GPU runs")
    ap.add_argument("--quick", action="store_true", help="fewer GQA ratios and windows")
    ap.add_argument("--no-bench", action="store_true")
    ap.add_argument("--kv", choices=list(KV_TYPES) + ["all"], default="all",
                    help="the KV cache types of the correctness checks (default: both)")
    args = ap.parse_args()
    lib = load_lib(args.lib)
    backends = []
    for name in BACKENDS if args.backend == "all" else [args.backend]:
        why = unsupported(lib, name, Shape.of_gpu(16, 8, 128, 128))
        if why and args.backend != "all":
            print(f"attn_check: backend {name} cannot run on {torch.cuda.get_device_name(0)}: {why}", file=sys.stderr)
            return 2
        if why:
            print(f"backend {name} skipped: {why}\n")
        else:
            backends.append(name)
    ok = True
    for name in backends:
        for kv in KV_TYPES if args.kv == "all" else [args.kv]:
            ok &= correctness(lib, name, args.quick, kv)
            ok &= correctness_windowed(lib, name, args.quick, kv)
    if not args.no_bench:
        bench(lib, backends)
    print(f"\nattn_check ({', '.join(backends)}):", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
