#!/usr/bin/env python3
"""precheck's CUDA backend against PyTorch on the seed's blocks, one device call.

The PaliGemma MLP (970 x 2048 x 16384) and attention (970 tokens, hidden 2048, GQA 8/1 heads of 256,
rotary embedding) in PyTorch: F.linear in BF16/FP16, torch._scaled_mm for FP8 E4M3 with per-tensor
current scaling of weights and of every activation (as precheck's `fp8_e4m3` preset), attention
through F.scaled_dot_product_attention (4-D, GQA; its fused kernels keep the softmax in FP32). Each is
captured in a CUDA graph and timed with CUDA events (median of ITERS replays); then precheck runs
`suites/paligemma.yaml` on `--backend cuda` with the same iteration count, and the script prints
precheck/PyTorch for each block and precision, the FP8 MLP against PyTorch's BF16 MLP, and the
TFLOP/s of each block against the measured peak.

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


def torch_timings(iters):
    """PyTorch's median ms per (block, precision), and the measured BF16 and FP8 peaks."""
    torch.manual_seed(0)
    dev = "cuda"
    randn = lambda *shape: torch.randn(*shape, device=dev) / (shape[-1] ** 0.5 if len(shape) > 1 else 1)
    x32 = torch.randn(TOKENS, HIDDEN, device=dev)
    wg32, wu32, wd32 = randn(INTER, HIDDEN), randn(INTER, HIDDEN), randn(HIDDEN, INTER)
    attn32 = [randn(HEADS * HEAD_DIM, HIDDEN), randn(KV_HEADS * HEAD_DIM, HIDDEN),
              randn(KV_HEADS * HEAD_DIM, HIDDEN), randn(HIDDEN, HEADS * HEAD_DIM)]
    out = {}
    for name, dtype in [("bf16", torch.bfloat16), ("fp16", torch.float16)]:
        x = x32.to(dtype)
        gate, up, down = (plain_linear(w, dtype) for w in (wg32, wu32, wd32))
        mlp = lambda: down(F.gelu(gate(x), approximate="tanh") * up(x))
        out["mlp", name] = graph_median_ms(mlp, iters)
        attn = attention(*(plain_linear(w, dtype) for w in attn32), dtype)
        out["attention", name] = graph_median_ms(lambda: attn(x), iters)
    xb = x32.to(torch.bfloat16)
    gate, up, down = (fp8_linear(w) for w in (wg32, wu32, wd32))
    out["mlp", "fp8_e4m3"] = graph_median_ms(lambda: down(F.gelu(gate(xb), approximate="tanh") * up(xb)), iters)
    attn = attention(*(fp8_linear(w) for w in attn32), torch.bfloat16)
    out["attention", "fp8_e4m3"] = graph_median_ms(lambda: attn(xb), iters)
    xq, sx = quantize(xb)
    (wgq, swg), (wdq, swd) = quantize(wg32.to(torch.bfloat16)), quantize(wd32.to(torch.bfloat16))
    hq, sh = quantize(torch.randn(TOKENS, INTER, device=dev, dtype=torch.bfloat16))
    gate_only = lambda: torch._scaled_mm(xq, wgq.t(), scale_a=sx, scale_b=swg, out_dtype=torch.bfloat16)
    down_only = lambda: torch._scaled_mm(hq, wdq.t(), scale_a=sh, scale_b=swd, out_dtype=torch.bfloat16)
    out["mlp", "fp8 GEMMs only"] = 2 * graph_median_ms(gate_only, iters) + graph_median_ms(down_only, iters)
    big = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    peak_bf16 = 2 * 8192 ** 3 / graph_median_ms(lambda: big @ big, 50) / 1e9
    bq, bs = quantize(big)
    peak_fp8 = 2 * 8192 ** 3 / graph_median_ms(lambda: torch._scaled_mm(bq, bq.t(), scale_a=bs, scale_b=bs, out_dtype=torch.bfloat16), 50) / 1e9
    return out, peak_bf16, peak_fp8


def precheck_timings(binary, iters):
    """precheck's records of the paligemma suite on CUDA, by (block, precision)."""
    out_dir = tempfile.mkdtemp(prefix="precheck-peer-")
    cmd = [binary, "run", "suites/paligemma.yaml", "--backend", "cuda", "--out", out_dir,
           "--iterations", str(iters), "--warmup", "20"]
    print("$", " ".join(cmd), flush=True)
    run = subprocess.run(cmd, text=True, capture_output=True)
    print(run.stdout)
    print(run.stderr[-4000:])
    records = [json.loads(l) for l in open(os.path.join(out_dir, "results.jsonl")) if l.strip()]
    return {(r["model"].removeprefix("paligemma_"), r["precision"]): r for r in records}


# Which PyTorch computation each precheck precision is compared with: SDPA keeps its softmax in FP32,
# so PyTorch's FP16 attention is the peer of both `fp16` and `fp16_fp32_softmax`.
PEER = {"fp16_fp32_softmax": "fp16"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--precheck", required=True)
    parser.add_argument("--iters", type=int, default=200)
    args = parser.parse_args()
    print(torch.cuda.get_device_name(), "torch", torch.__version__, flush=True)
    # PyTorch is timed before and after precheck, and the mean is the peer: the GPU's clocks drift
    # by several percent between minutes, and both sides should see the same drift.
    before, peak_bf16, peak_fp8 = torch_timings(args.iters)
    records = precheck_timings(args.precheck, args.iters)
    after, _, _ = torch_timings(args.iters)
    peer = {k: (before[k] + after[k]) / 2 for k in before}
    print("PyTorch before / after precheck (ms):", {"/".join(k): (round(before[k], 4), round(after[k], 4)) for k in before})
    print(f"\nmeasured peak: BF16 {peak_bf16:.0f} TFLOP/s, FP8 {peak_fp8:.0f} TFLOP/s (8192^3 GEMM)")
    print(f"{'block':10} {'precision':18} {'precheck ms':>12} {'torch ms':>10} {'ratio':>7} {'TFLOP/s':>8} {'1-cos':>9} {'cpu agree':>10}")
    for (block, name), r in sorted(records.items()):
        if r.get("latency") is None:
            print(f"{block:10} {name:18} error: {r.get('error')}")
            continue
        ms = r["latency"]["median_ms"]
        torch_ms = peer.get((block, PEER.get(name, name)))
        ratio = f"{ms / torch_ms:.3f}" if torch_ms else "-"
        flop = MLP_FLOP if block == "mlp" else ATTENTION_FLOP
        agree = r.get("cpu_agreement") or {}
        print(f"{block:10} {name:18} {ms:12.4f} {torch_ms if torch_ms else float('nan'):10.4f} {ratio:>7} "
              f"{flop / ms / 1e9:8.0f} {1 - r['accuracy']['cos']:9.2e} {1 - agree.get('cos', float('nan')):10.2e}"
              f"{'  (emulated)' if r.get('emulated') else ''}")
    fp8 = records.get(("mlp", "fp8_e4m3"), {}).get("latency")
    if fp8:
        print(f"\nprecheck FP8 MLP / PyTorch BF16 MLP = {fp8['median_ms'] / peer['mlp', 'bf16']:.3f} (target <= 0.80)")
        print(f"PyTorch FP8 MLP {peer['mlp', 'fp8_e4m3']:.4f} ms, its three FP8 GEMMs alone {peer['mlp', 'fp8 GEMMs only']:.4f} ms")


if __name__ == "__main__":
    main()
