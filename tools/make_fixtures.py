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

  tiny-gpt-oss/        GptOssForCausalLM: 3 layers (sliding window 12, full, sliding),
                       sinks, q/k/v/o biases, 8 experts of which 3 per token, random
                       router and expert biases large enough that the SwiGLU clamps
                       bite, gpt-oss-20b's YaRN; bf16, the experts in HF's
                       dequantized layout (gate_up_proj (E, hidden, 2 * ff))
  tiny-gpt-oss-mxfp4/  the same weights with the experts as MXFP4 blocks and
                       scales and gpt-oss-20b's quantization_config. transformers
                       cannot write MXFP4 without the GPU-only triton kernels from
                       the Hub, so this script quantizes: the expert weights are
                       first rounded to MXFP4 values (blocks of 32 along the input
                       features, the OCP shared exponent floor(log2 amax) - 2,
                       nearest E2M1), then both checkpoints are written from them,
                       exactly (MXFP4 values are exact in bf16); one golden serves
                       both. If transformers can load the MXFP4 save
                       (Mxfp4Config(dequantize=True)), its experts are checked
                       equal to the bf16 save's. (tools/model_parity.py builds
                       its full-width gpt-oss shape with the same two steps,
                       gpt_oss_draw and save_mxfp4.)

with the same golden.safetensors (a prompt is also redrawn while any token's
routing passes within 1e-4 of a tie: the k-th and (k+1)-th router logits
must differ by that much, or float32 rounding could route differently), and

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
import json
import math
import os

import torch
from safetensors.torch import load_file, save_file
import transformers

PROMPT_LENS = [1, 6, 19, 45, 150]  # 150 + 32 spans two blocks of 128
GREEDY_TOKENS = 32
VOCAB = 384
MIN_MARGIN = 1e-4
LONG_PROMPT = 2048
LONG_STRIDE = 8   # golden rows: every 8th position,
LONG_TAIL = 32    # and every one of the last 32
LONG_ROPE_THETA = 10000.0
FIXTURES = ["tiny-qwen3", "tiny-llama", "tiny-qwen2", "long-qwen3", "tiny-gpt-oss"]  # the index seeds each
GPT_OSS_WINDOW = 12     # shorter than three of the prompts, and no KV block size
MIN_ROUTER_MARGIN = 1e-4
# gpt-oss-20b's: what stays bf16 in an MXFP4 checkpoint
GPT_OSS_NOT_CONVERTED = ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]


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


def make_goldens(ref, gen, routing_margin=None):
    """The golden prompts of PROMPT_LENS with HF's logits and greedy paths.

    A prompt is redrawn while its greedy path passes near a tie (a margin
    under MIN_MARGIN could flip on float32 rounding differences), or, when
    routing_margin is given, while it reports a routing decision nearer a
    tie than MIN_ROUTER_MARGIN over the prompt's forward passes."""
    golden = {}
    worst = float("inf")
    with torch.no_grad():
        for i, n in enumerate(PROMPT_LENS):
            while True:
                ids = torch.randint(3, VOCAB, (1, n), generator=gen)
                if routing_margin:
                    routing_margin.reset()
                toks, margins = greedy(ref, ids)
                logits = ref(ids).logits[0].float().contiguous()
                if min(margins) >= MIN_MARGIN and (not routing_margin or routing_margin.smallest >= MIN_ROUTER_MARGIN):
                    break
            golden[f"prompt_{i}"] = ids[0].to(torch.int32)
            golden[f"logits_{i}"] = logits
            golden[f"greedy_{i}"] = torch.tensor(toks, dtype=torch.int32)
            golden[f"margin_{i}"] = torch.tensor(margins, dtype=torch.float32)
            worst = min(worst, min(margins))
    return golden, worst


# ---- gpt-oss ----

FP4_MAGNITUDES = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])


def mxfp4_quantize(w):
    """An expert stack w (E, in, out), x @ W per expert, as MXFP4 (the OCP
    Microscaling format, in the layout transformers' Mxfp4 experts and
    gpt-oss-20b's checkpoint use): blocks (E, out, in/32, 16) uint8, two
    E2M1 codes a byte, low nibble first, and scales (E, out, in/32) uint8,
    the biased shared exponent. A block of 32 runs along the input features
    of one output feature; its exponent is floor(log2(amax)) - 2 (E2M1's
    largest exponent), its values the nearest E2M1 (saturating at 6).
    Computed on w's device, an expert at a time (the nearest-value search
    holds 8 floats an element: 0.5 GB an expert of gpt-oss-20b, not 17)."""
    E, n_in, n_out = w.shape
    magnitudes = FP4_MAGNITUDES.to(w.device)
    blocks, scales = [], []
    for e in range(E):
        v = w[e:e + 1].float().transpose(1, 2).reshape(1, n_out, n_in // 32, 32)
        amax = v.abs().amax(-1, keepdim=True)
        shared = torch.where(amax > 0, torch.floor(torch.log2(amax)) - 2,
                             torch.full_like(amax, -127)).clamp(-127, 127)
        q = v / torch.exp2(shared)
        idx = (q.abs()[..., None] - magnitudes).abs().argmin(-1)
        code = idx | (((q < 0) & (idx > 0)).long() << 3)
        blocks.append((code[..., 0::2] | (code[..., 1::2] << 4)).to(torch.uint8))
        scales.append((shared[..., 0] + 127).to(torch.uint8))
    return torch.cat(blocks).contiguous(), torch.cat(scales).contiguous()


def mxfp4_dequantize(blocks, scales):
    """The values of mxfp4_quantize's output, as (E, in, out) float32, read
    from the format's definition: code c is (-1)^(c >> 3) * magnitude[c & 7],
    times 2^(scale - 127)."""
    lut = torch.cat([FP4_MAGNITUDES, -FP4_MAGNITUDES]).to(blocks.device)
    v = torch.stack([lut[(blocks & 15).long()], lut[(blocks >> 4).long()]], -1)
    E, n_out, groups = scales.shape
    v = v.reshape(E, n_out, groups, 32) * torch.exp2(scales.float() - 127)[..., None]
    return v.reshape(E, n_out, groups * 32).transpose(1, 2).contiguous()


class RoutingMargin:
    """Hooks every router: the smallest gap between the k-th and (k+1)-th
    router logit of any token since the last reset."""

    def __init__(self, model):
        self.smallest = float("inf")
        for layer in model.model.layers:
            layer.mlp.router.register_forward_pre_hook(self.hook)

    def reset(self):
        self.smallest = float("inf")

    def hook(self, router, args):
        x = args[0].reshape(-1, router.weight.shape[1])
        top = torch.nn.functional.linear(x, router.weight, router.bias).topk(router.top_k + 1, dim=-1).values
        self.smallest = min(self.smallest, float((top[:, -2] - top[:, -1]).min()))


def gpt_oss_config():
    return transformers.GptOssConfig(**common(
        hidden_size=64, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, num_local_experts=8, num_experts_per_tok=3,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"],
        sliding_window=GPT_OSS_WINDOW, attention_bias=True, tie_word_embeddings=False,
        rms_norm_eps=1e-5, swiglu_limit=7.0, max_position_embeddings=131072,
        # gpt-oss-20b's YaRN; max_position_embeddings / original = factor, so
        # transformers 4.x (which derives the factor from them) agrees
        rope_parameters=rope(150000.0, {
            "rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
            "original_max_position_embeddings": 4096, "truncate": False})))


def gpt_oss_draw(model, sinks=(0.0, 1.0), gate_up_bias_std=4.0, down_scale=None):
    """Draws what HF's initialisation leaves trivial in a GptOss model, in place:
    HF zeroes the biases, sets the norms to 1 and draws the sinks near 0, so
    the sinks would take no mass and the SwiGLU clamps would never bite.
    Attention biases N(0, 0.1), sinks N(sinks), norms N(1, 0.1), router bias
    N(0, 0.5), gate/up bias N(0, gate_up_bias_std) (4: about 8% of the tiny
    fixture's gate and up pre-activations pass the limit of 7), down bias
    N(0, 0.1); the down matrices times down_scale if given; then every
    expert matrix rounded to MXFP4 values, so a bf16 and an MXFP4 save of
    the model hold the same numbers. Draws in one order whatever the
    arguments (the tiny fixture's bits depend on it); runs on the model's
    device."""
    with torch.no_grad():
        for layer in model.model.layers:
            att, mlp = layer.self_attn, layer.mlp
            for lin in (att.q_proj, att.k_proj, att.v_proj, att.o_proj):
                lin.bias.normal_(0.0, 0.1)
            att.sinks.normal_(*sinks)
            layer.input_layernorm.weight.normal_(1.0, 0.1)
            layer.post_attention_layernorm.weight.normal_(1.0, 0.1)
            mlp.router.bias.normal_(0.0, 0.5)
            mlp.experts.gate_up_proj_bias.normal_(0.0, gate_up_bias_std)
            mlp.experts.down_proj_bias.normal_(0.0, 0.1)
            if down_scale is not None:
                mlp.experts.down_proj.mul_(down_scale)
            for w in (mlp.experts.gate_up_proj, mlp.experts.down_proj):
                w.copy_(mxfp4_dequantize(*mxfp4_quantize(w)))
        model.model.norm.weight.normal_(1.0, 0.1)


MXFP4_MATRICES = ("experts.gate_up_proj", "experts.down_proj")


def save_mxfp4(src, dst, device="cpu"):
    """Writes dst, the MXFP4 checkpoint of the bf16 GptOss save in src (one
    file or shards with their index, as save_pretrained wrote them): the
    same tensors in the same files, each expert matrix as NAME_blocks and
    NAME_scales (checked to dequantize to it exactly, so its values must be
    MXFP4's: gpt_oss_draw's), and src's config.json with gpt-oss-20b's
    quantization_config. transformers cannot write this itself without the
    Hub's GPU kernels. The quantization runs on device."""
    os.makedirs(dst, exist_ok=True)
    index_path = os.path.join(src, "model.safetensors.index.json")
    if os.path.exists(index_path):
        with open(index_path) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
    else:
        shards = ["model.safetensors"]
    weight_map, total = {}, 0
    for shard in shards:
        mx = {}
        for name, t in load_file(os.path.join(src, shard)).items():
            if name.endswith(MXFP4_MATRICES):
                blocks, scales = mxfp4_quantize(t.to(device))
                assert torch.equal(mxfp4_dequantize(blocks, scales), t.to(device).float()), \
                    f"{name} is not MXFP4-exact"
                mx[name + "_blocks"], mx[name + "_scales"] = blocks.cpu(), scales.cpu()
            else:
                mx[name] = t
        save_file(mx, os.path.join(dst, shard), metadata={"format": "pt"})
        weight_map.update((name, shard) for name in mx)
        total += sum(t.numel() * t.element_size() for t in mx.values())
        del mx
    if len(shards) > 1 or os.path.exists(index_path):
        with open(os.path.join(dst, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f,
                      indent=2)
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    cfg["quantization_config"] = {"quant_method": "mxfp4", "modules_to_not_convert": GPT_OSS_NOT_CONVERTED}
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)


def make_gpt_oss(outdir, seed):
    """tiny-gpt-oss (bf16) and tiny-gpt-oss-mxfp4, one set of weights and goldens."""
    torch.manual_seed(1234 + seed)
    model = transformers.GptOssForCausalLM(gpt_oss_config())
    gpt_oss_draw(model)
    path = os.path.join(outdir, "tiny-gpt-oss")
    mx_path = os.path.join(outdir, "tiny-gpt-oss-mxfp4")
    os.makedirs(path, exist_ok=True)
    os.makedirs(mx_path, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(path)

    # The bf16 save must be HF's dequantized layout, which flashlm reads.
    saved = load_file(os.path.join(path, "model.safetensors"))
    expect = {"model.layers.0.mlp.experts.gate_up_proj": [8, 64, 128],
              "model.layers.0.mlp.experts.down_proj": [8, 64, 64],
              "model.layers.0.mlp.experts.gate_up_proj_bias": [8, 128],
              "model.layers.0.mlp.router.weight": [8, 64], "model.layers.0.self_attn.sinks": [4]}
    for name, shape in expect.items():
        assert name in saved and list(saved[name].shape) == shape, \
            f"{name}: saved as {list(saved[name].shape) if name in saved else 'nothing'}, flashlm expects {shape}"

    save_mxfp4(path, mx_path)
    with open(os.path.join(path, "config.json")) as f:
        cfg = json.load(f)
    rope_params = cfg.get("rope_parameters") or cfg.get("rope_scaling")
    assert rope_params.get("rope_type") == "yarn", f"config.json's rope is not one yarn dict: {rope_params}"

    ref = transformers.GptOssForCausalLM.from_pretrained(path, attn_implementation="eager",
                                                        **dtype_kwarg(torch.float32)).eval()
    want = 0.1 * math.log(32.0) + 1.0
    scaling = [m.attention_scaling for m in ref.modules() if hasattr(m, "attention_scaling")]
    assert scaling and all(abs(a - want) < 1e-6 for a in scaling), \
        f"HF's rope is not the YaRN asked for (attention scaling {scaling}, expected {want})"
    try:
        hf_mx = transformers.GptOssForCausalLM.from_pretrained(
            mx_path, quantization_config=transformers.Mxfp4Config(dequantize=True), attn_implementation="eager",
            **dtype_kwarg(torch.float32))
    except Exception as e:  # transformers without a usable MXFP4 path: flashlm's test alone checks the save
        print(f"WARNING: transformers could not load {mx_path} ({type(e).__name__}: {e}); "
              "its MXFP4 layout is checked by flashlm's test only")
    else:
        mine, theirs = dict(ref.named_parameters()), dict(hf_mx.named_parameters())
        for name in mine:
            if "experts" in name:
                assert torch.equal(mine[name].float().cpu(), theirs[name].float().cpu()), \
                    f"transformers reads {name} of the MXFP4 save differently"
        print("transformers reads the MXFP4 save's experts as the bf16 save's, bit for bit")
    golden, worst = make_goldens(ref, torch.Generator().manual_seed(99 + seed), RoutingMargin(ref))
    for p in (path, mx_path):
        save_file(golden, os.path.join(p, "golden.safetensors"))
    print(f"gpt-oss: wrote {path} and {mx_path}; smallest greedy top-1 margin {worst:.3e}")
    print(open(os.path.join(mx_path, "config.json")).read())


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
        if name == "tiny-gpt-oss":
            make_gpt_oss(outdir, seed)
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
        golden, worst = make_goldens(ref, torch.Generator().manual_seed(99 + seed))
        save_file(golden, os.path.join(path, "golden.safetensors"))
        print(f"{kind}: wrote {path}; smallest greedy top-1 margin {worst:.3e}")
        print(open(os.path.join(path, "config.json")).read())


if __name__ == "__main__":
    main()
