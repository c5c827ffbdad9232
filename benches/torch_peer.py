#!/usr/bin/env python3
"""precheck's CUDA backend against PyTorch on the seed's blocks, one device call.

The PaliGemma MLP (970 x 2048 x 16384), attention (970 tokens, hidden 2048, GQA 8/1 heads of 256,
rotary embedding) and a whole decoder layer of those (RMSNorm, attention, residual, RMSNorm, MLP,
residual) in PyTorch: F.linear in BF16/FP16, torch._scaled_mm for FP8 E4M3 with per-tensor current
scaling of weights and of every activation (as precheck's `fp8_e4m3` preset), attention through
F.scaled_dot_product_attention (4-D, GQA; its fused kernels keep the softmax in FP32). Each runs
eager and compiled (torch.compile, Inductor's fusions: the strongest peer), captured in a CUDA graph
and timed with CUDA events (median of ITERS replays); then precheck runs `suites/paligemma.yaml`
the layer of `suites/paligemma-decoder.yaml` and the delayed and row-wise FP8 variants of
`suites/fp8-recipes.yaml` on `--backend cuda` with the same iteration count (their MLP peers:
PyTorch FP8 with static activation scales, and with row-wise scales),
and the script prints precheck against the faster of eager and compiled PyTorch for each block and
precision, the FP8 blocks against PyTorch's BF16 ones, and the TFLOP/s of each block against the
measured peak.

    python3 benches/torch_peer.py --precheck path/to/precheck [--iters 200]
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile

import torch
import torch.nn.functional as F

TOKENS, HIDDEN, INTER = 970, 2048, 16384
HEADS, KV_HEADS, HEAD_DIM, ROPE_THETA = 8, 1, 256, 10_000.0
FP8_MAX = 448.0
MLP_FLOP = 3 * 2 * TOKENS * HIDDEN * INTER
ATTENTION_FLOP = (2 * TOKENS * HIDDEN * (HEADS + 2 * KV_HEADS) * HEAD_DIM  # q, k, v
                  + 2 * 2 * HEADS * TOKENS * TOKENS * HEAD_DIM  # scores, p.v
                  + 2 * TOKENS * HEADS * HEAD_DIM * HIDDEN)  # output projection
LAYER_FLOP = MLP_FLOP + ATTENTION_FLOP
FLOP = {"mlp": MLP_FLOP, "attention": ATTENTION_FLOP, "layer": LAYER_FLOP}
NORM_EPS = 1e-6


def graph_median_ms(fn, iters):
    """Median of `iters` CUDA-graph replays of fn, each between two CUDA events."""
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        fn()
    for _ in range(20):
        graph.replay()
    events = [torch.cuda.Event(enable_timing=True) for _ in range(iters + 1)]
    events[0].record()
    for e in events[1:]:
        graph.replay()
        e.record()
    torch.cuda.synchronize()
    return statistics.median(a.elapsed_time(b) for a, b in zip(events, events[1:]))


def quantize(t):
    """Per-tensor current scaling to E4M3, as precheck: scale = amax / 448, saturating cast."""
    scale = t.abs().amax().float().clamp(min=1e-12) / FP8_MAX
    q = (t.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return q, scale


def fp8_linear(weight):
    """x -> x . weight^T with x quantized on every call, the weight once (per-tensor E4M3)."""
    wq, sw = quantize(weight.to(torch.bfloat16))
    def apply(x):
        xq, sx = quantize(x)
        return torch._scaled_mm(xq, wq.t(), scale_a=sx, scale_b=sw, out_dtype=torch.bfloat16)
    return apply


def quantize_rows(t):
    """Row-wise E4M3: a scale per row (amax / 448), as precheck's per_token and per_channel."""
    scale = t.abs().amax(dim=1, keepdim=True).float().clamp(min=1e-12) / FP8_MAX
    q = (t.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return q, scale


def fp8_rowwise_linear(weight):
    """x -> x . weight^T with row-wise scales: x per token on every call, the weight per output
    channel once (torch._scaled_mm's row-wise mode, scales [M, 1] and [1, N])."""
    wq, sw = quantize_rows(weight.to(torch.bfloat16))
    sw = sw.t().contiguous()
    def apply(x):
        xq, sx = quantize_rows(x)
        return torch._scaled_mm(xq, wq.t(), scale_a=sx, scale_b=sw, out_dtype=torch.bfloat16)
    return apply


def fp8_static_linear(weight, calibration):
    """x -> x . weight^T with a static activation scale, taken once from `calibration` (the amax a
    delayed or static recipe would hold): no amax pass on the call."""
    wq, sw = quantize(weight.to(torch.bfloat16))
    sx = calibration.abs().amax().float().clamp(min=1e-12) / FP8_MAX
    def apply(x):
        xq = (x.float() / sx).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
        return torch._scaled_mm(xq, wq.t(), scale_a=sx, scale_b=sw, out_dtype=torch.bfloat16)
    return apply


def plain_linear(weight, dtype):
    w = weight.to(dtype)
    return lambda x: F.linear(x, w)


def attention(q_proj, k_proj, v_proj, o_proj, dtype):
    """Projections, rotary embedding ("rotate half"), SDPA with grouped heads, output projection."""
    positions = torch.arange(TOKENS, dtype=torch.float64, device="cuda")
    frequencies = ROPE_THETA ** (-2.0 * torch.arange(HEAD_DIM // 2, dtype=torch.float64, device="cuda") / HEAD_DIM)
    angles = positions[:, None] * frequencies
    cos, sin = angles.cos().to(dtype), angles.sin().to(dtype)

    def rotary(x):
        first, second = x[..., : HEAD_DIM // 2], x[..., HEAD_DIM // 2:]
        return torch.cat((first * cos - second * sin, second * cos + first * sin), dim=-1)

    def split(x, n):  # [1, n, tokens, dim]: SDPA's fused kernels take 4-D inputs only
        return x.view(TOKENS, n, HEAD_DIM).transpose(0, 1).unsqueeze(0)

    def forward(x):
        q, k, v = split(q_proj(x), HEADS), split(k_proj(x), KV_HEADS), split(v_proj(x), KV_HEADS)
        context = F.scaled_dot_product_attention(rotary(q), rotary(k), v, enable_gqa=True)
        return o_proj(context[0].transpose(0, 1).reshape(TOKENS, HEADS * HEAD_DIM))

    return forward


def rms_norm(weight, dtype):
    """RMSNorm as precheck's decoder layer: x / sqrt(mean(x^2) + eps) * weight, in FP32, stored in dtype."""
    w = weight.float()
    def apply(x):
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + NORM_EPS) * w).to(dtype)
    return apply


def peers():
    """PyTorch's blocks, eager, by (block, precision): callables over fixed inputs."""
    torch.manual_seed(0)
    dev = "cuda"
    randn = lambda *shape: torch.randn(*shape, device=dev) / (shape[-1] ** 0.5 if len(shape) > 1 else 1)
    x32 = torch.randn(TOKENS, HIDDEN, device=dev)
    wg32, wu32, wd32 = randn(INTER, HIDDEN), randn(INTER, HIDDEN), randn(HIDDEN, INTER)
    attn32 = [randn(HEADS * HEAD_DIM, HIDDEN), randn(KV_HEADS * HEAD_DIM, HIDDEN),
              randn(KV_HEADS * HEAD_DIM, HIDDEN), randn(HIDDEN, HEADS * HEAD_DIM)]
    norm32 = [1 + 0.1 * torch.randn(HIDDEN, device=dev) for _ in range(2)]
    out = {}
    for name, dtype, linear in [("bf16", torch.bfloat16, lambda w: plain_linear(w, torch.bfloat16)),
                                ("fp16", torch.float16, lambda w: plain_linear(w, torch.float16)),
                                ("fp8_e4m3", torch.bfloat16, fp8_linear)]:
        x = x32.to(dtype)
        gate, up, down = (linear(w) for w in (wg32, wu32, wd32))
        mlp = lambda x, gate=gate, up=up, down=down: down(F.gelu(gate(x), approximate="tanh") * up(x))
        attn = attention(*(linear(w) for w in attn32), dtype)
        first, second = (rms_norm(w, dtype) for w in norm32)
        def layer(x, attn=attn, mlp=mlp, first=first, second=second):
            h = x + attn(first(x))
            return h + mlp(second(h))
        for block, fn in [("mlp", mlp), ("attention", attn), ("layer", layer)]:
            out[block, name] = (fn, x)
    # The MLP in FP8 with row-wise scales, and with static activation scales (the peer of
    # precheck's delayed scaling, whose scales come from earlier calls): each activation's scale
    # from the BF16 MLP's own tensors.
    x = x32.to(torch.bfloat16)
    gate, up, down = (fp8_rowwise_linear(w) for w in (wg32, wu32, wd32))
    out["mlp", "fp8_rowwise"] = (
        lambda x, gate=gate, up=up, down=down: down(F.gelu(gate(x), approximate="tanh") * up(x)), x)
    w_bf16 = [w.to(torch.bfloat16) for w in (wg32, wu32, wd32)]
    hidden = F.gelu(x @ w_bf16[0].t(), approximate="tanh") * (x @ w_bf16[1].t())
    gate, up, down = (fp8_static_linear(w, c) for w, c in zip((wg32, wu32, wd32), (x, x, hidden)))
    out["mlp", "fp8_static"] = (
        lambda x, gate=gate, up=up, down=down: down(F.gelu(gate(x), approximate="tanh") * up(x)), x)
    return out


def torch_timings(blocks, iters):
    """The median ms of each (block, precision) of `blocks`, eager and compiled."""
    out = {}
    for (block, name), (fn, x) in blocks.items():
        try:
            out[block, name, "eager"] = graph_median_ms(lambda: fn(x), iters)
            compiled = COMPILED.setdefault((block, name), torch.compile(fn))
            out[block, name, "compiled"] = graph_median_ms(lambda: compiled(x), iters)
        except Exception as e:  # one peer PyTorch cannot run must not lose the others
            print(f"PyTorch {block}/{name} failed: {e}", flush=True)
            out[block, name, "eager"] = out[block, name, "compiled"] = float("nan")
    return out


# torch.compile'd blocks, compiled once and timed before and after precheck.
COMPILED = {}


def peaks():
    """The measured BF16 and FP8 peaks (TFLOP/s), and the three FP8 GEMMs of the MLP alone (ms)."""
    dev = "cuda"
    big = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    peak_bf16 = 2 * 8192 ** 3 / graph_median_ms(lambda: big @ big, 50) / 1e9
    bq, bs = quantize(big)
    peak_fp8 = 2 * 8192 ** 3 / graph_median_ms(lambda: torch._scaled_mm(bq, bq.t(), scale_a=bs, scale_b=bs, out_dtype=torch.bfloat16), 50) / 1e9
    xq, sx = quantize(torch.randn(TOKENS, HIDDEN, device=dev, dtype=torch.bfloat16))
    wgq, swg = quantize(torch.randn(INTER, HIDDEN, device=dev, dtype=torch.bfloat16))
    wdq, swd = quantize(torch.randn(HIDDEN, INTER, device=dev, dtype=torch.bfloat16))
    hq, sh = quantize(torch.randn(TOKENS, INTER, device=dev, dtype=torch.bfloat16))
    gate_only = lambda: torch._scaled_mm(xq, wgq.t(), scale_a=sx, scale_b=swg, out_dtype=torch.bfloat16)
    down_only = lambda: torch._scaled_mm(hq, wdq.t(), scale_a=sh, scale_b=swd, out_dtype=torch.bfloat16)
    gemms = 2 * graph_median_ms(gate_only, 200) + graph_median_ms(down_only, 200)
    return peak_bf16, peak_fp8, gemms


def precheck_timings(binary, iters):
    """precheck's records of the paligemma suite and the decoder suite's layer on CUDA, by (block,
    precision)."""
    records = {}
    for suite, extra in [("suites/paligemma.yaml", []),
                         ("suites/paligemma-decoder.yaml", ["--filter", "paligemma_layer/"]),
                         ("suites/fp8-recipes.yaml", ["--filter", "*/fp8_e4m3_delayed/*",
                                                      "--filter", "*/fp8_rowwise/*"])]:
        out_dir = tempfile.mkdtemp(prefix="precheck-peer-")
        cmd = [binary, "run", suite, "--backend", "cuda", "--out", out_dir,
               "--iterations", str(iters), "--warmup", "20", *extra]
        print("$", " ".join(cmd), flush=True)
        run = subprocess.run(cmd, text=True, capture_output=True)
        print(run.stdout)
        print(run.stderr[-4000:])
        for line in open(os.path.join(out_dir, "results.jsonl")):
            if line.strip():
                r = json.loads(line)
                records[r["model"].removeprefix("paligemma_"), r["precision"]] = r
    return records


# Which PyTorch computation each precheck precision is compared with: SDPA keeps its softmax in FP32,
# so PyTorch's FP16 attention is the peer of both `fp16` and `fp16_fp32_softmax`.
PEER = {"fp16_fp32_softmax": "fp16", "fp8_e4m3_delayed": "fp8_static"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--precheck", required=True)
    parser.add_argument("--iters", type=int, default=200)
    args = parser.parse_args()
    print(torch.cuda.get_device_name(), "torch", torch.__version__, flush=True)
    blocks = peers()
    # PyTorch is timed before and after precheck, and the mean is the peer: the GPU's clocks drift
    # by several percent between minutes, and both sides should see the same drift.
    before = torch_timings(blocks, args.iters)
    peak_bf16, peak_fp8, fp8_gemms = peaks()
    records = precheck_timings(args.precheck, args.iters)
    after = torch_timings(blocks, args.iters)
    timed = {k: (before[k] + after[k]) / 2 for k in before}
    print("PyTorch before / after precheck (ms):",
          {"/".join(k): (round(before[k], 4), round(after[k], 4)) for k in before})
    # The strongest peer: the faster of eager and compiled.
    peer = {(b, n): min(timed[b, n, "eager"], timed[b, n, "compiled"]) for (b, n, _) in timed}
    print(f"\nmeasured peak: BF16 {peak_bf16:.0f} TFLOP/s, FP8 {peak_fp8:.0f} TFLOP/s (8192^3 GEMM)")
    print(f"{'block':10} {'precision':18} {'precheck ms':>12} {'eager ms':>9} {'compiled':>9} {'ratio':>7} "
          f"{'/bf16':>7} {'TFLOP/s':>8} {'1-cos':>9} {'cpu agree':>10}")
    for (block, name), r in sorted(records.items()):
        if block not in FLOP:
            continue
        if r.get("latency") is None:
            print(f"{block:10} {name:18} error: {r.get('error')}")
            continue
        ms = r["latency"]["median_ms"]
        key = (block, PEER.get(name, name))
        eager, compiled = timed.get((*key, "eager"), float("nan")), timed.get((*key, "compiled"), float("nan"))
        ratio = f"{ms / peer[key]:.3f}" if key in peer else "-"
        against_bf16 = ms / peer[block, "bf16"]
        agree = r.get("cpu_agreement") or {}
        print(f"{block:10} {name:18} {ms:12.4f} {eager:9.4f} {compiled:9.4f} {ratio:>7} {against_bf16:7.3f} "
              f"{FLOP[block] / ms / 1e9:8.0f} {1 - r['accuracy']['cos']:9.2e} {1 - agree.get('cos', float('nan')):10.2e}"
              f"{'  (emulated)' if r.get('emulated') else ''}")
    print(f"\nPyTorch FP8 MLP: eager {timed['mlp', 'fp8_e4m3', 'eager']:.4f} ms, compiled "
          f"{timed['mlp', 'fp8_e4m3', 'compiled']:.4f} ms; its three FP8 GEMMs alone {fp8_gemms:.4f} ms")


if __name__ == "__main__":
    main()
