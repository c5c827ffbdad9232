#!/usr/bin/env python3
"""precheck's CUDA backend against PyTorch on the PaliGemma MLP (970 x 2048 x 16384), one device call.

Runs the same block in PyTorch (F.linear in BF16/FP16; torch._scaled_mm for FP8 E4M3 with per-tensor
current scaling of weights and of every activation, as precheck's `fp8_e4m3` preset) under CUDA
graphs, timed with CUDA events (median of ITERS replays), then runs precheck's `suites/paligemma.yaml`
on `--backend cuda` with the same iteration count and prints precheck/PyTorch for each precision,
the FP8 MLP against PyTorch's BF16 MLP, and the TFLOP/s of each GEMM against the measured peak.

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
FP8_MAX = 448.0


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


def torch_timings(iters):
    torch.manual_seed(0)
    dev = "cuda"
    x32 = torch.randn(TOKENS, HIDDEN, device=dev)
    wg32 = torch.randn(INTER, HIDDEN, device=dev) / HIDDEN ** 0.5
    wu32 = torch.randn(INTER, HIDDEN, device=dev) / HIDDEN ** 0.5
    wd32 = torch.randn(HIDDEN, INTER, device=dev) / INTER ** 0.5
    out = {}
    for name, dtype in [("bf16", torch.bfloat16), ("fp16", torch.float16)]:
        x, wg, wu, wd = (t.to(dtype) for t in (x32, wg32, wu32, wd32))
        mlp = lambda: F.linear(F.gelu(F.linear(x, wg), approximate="tanh") * F.linear(x, wu), wd)
        out[name] = graph_median_ms(mlp, iters)
    xb = x32.to(torch.bfloat16)
    (wgq, swg), (wuq, swu), (wdq, swd) = (quantize(w.to(torch.bfloat16)) for w in (wg32, wu32, wd32))

    def fp8_mlp():
        xq, sx = quantize(xb)
        g = torch._scaled_mm(xq, wgq.t(), scale_a=sx, scale_b=swg, out_dtype=torch.bfloat16)
        u = torch._scaled_mm(xq, wuq.t(), scale_a=sx, scale_b=swu, out_dtype=torch.bfloat16)
        h = F.gelu(g, approximate="tanh") * u
        hq, sh = quantize(h)
        return torch._scaled_mm(hq, wdq.t(), scale_a=sh, scale_b=swd, out_dtype=torch.bfloat16)

    out["fp8_e4m3"] = graph_median_ms(fp8_mlp, iters)
    xq, sx = quantize(xb)
    hq, sh = quantize(torch.randn(TOKENS, INTER, device=dev, dtype=torch.bfloat16))
    gemms = {
        "fp8 gate": lambda: torch._scaled_mm(xq, wgq.t(), scale_a=sx, scale_b=swg, out_dtype=torch.bfloat16),
        "fp8 down": lambda: torch._scaled_mm(hq, wdq.t(), scale_a=sh, scale_b=swd, out_dtype=torch.bfloat16),
    }
    out["fp8 GEMMs only"] = 2 * graph_median_ms(gemms["fp8 gate"], iters) + graph_median_ms(gemms["fp8 down"], iters)
    big = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    peak_bf16 = 2 * 8192 ** 3 / graph_median_ms(lambda: big @ big, 50) / 1e9
    bq, bs = quantize(big)
    peak_fp8 = 2 * 8192 ** 3 / graph_median_ms(lambda: torch._scaled_mm(bq, bq.t(), scale_a=bs, scale_b=bs, out_dtype=torch.bfloat16), 50) / 1e9
    return out, peak_bf16, peak_fp8


def precheck_timings(binary, iters):
    out_dir = tempfile.mkdtemp(prefix="precheck-peer-")
    cmd = [binary, "run", "suites/paligemma.yaml", "--backend", "cuda", "--out", out_dir,
           "--iterations", str(iters), "--warmup", "20"]
    for p in ["bf16", "fp16", "fp8_e4m3", "fp32", "tf32", "int8", "mxfp8", "mxfp4", "nvfp4"]:
        cmd += ["--filter", f"paligemma_mlp/{p}/*"]
    print("$", " ".join(cmd), flush=True)
    run = subprocess.run(cmd, text=True, capture_output=True)
    print(run.stdout)
    print(run.stderr[-4000:])
    records = [json.loads(l) for l in open(os.path.join(out_dir, "results.jsonl")) if l.strip()]
    return {r["precision"]: r for r in records}


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
    print("PyTorch before / after precheck (ms):", {k: (round(before[k], 4), round(after[k], 4)) for k in before})
    flop = 3 * 2 * TOKENS * HIDDEN * INTER
    print(f"\nmeasured peak: BF16 {peak_bf16:.0f} TFLOP/s, FP8 {peak_fp8:.0f} TFLOP/s (8192^3 GEMM)")
    print(f"{'precision':10} {'precheck ms':>12} {'torch ms':>10} {'ratio':>7} {'TFLOP/s':>8} {'1-cos':>9} {'cpu agree':>10}")
    for name, r in records.items():
        if r.get("latency") is None:
            print(f"{name:10} error: {r.get('error')}")
            continue
        ms = r["latency"]["median_ms"]
        torch_ms = peer.get(name)
        ratio = f"{ms / torch_ms:.3f}" if torch_ms else "-"
        agree = r.get("cpu_agreement") or {}
        print(f"{name:10} {ms:12.4f} {torch_ms if torch_ms else float('nan'):10.4f} {ratio:>7} "
              f"{flop / ms / 1e9:8.0f} {1 - r['accuracy']['cos']:9.2e} {1 - agree.get('cos', float('nan')):10.2e}"
              f"{'  (emulated)' if r.get('emulated') else ''}")
    if "fp8_e4m3" in records and records["fp8_e4m3"].get("latency"):
        fp8 = records["fp8_e4m3"]["latency"]["median_ms"]
        print(f"\nprecheck FP8 MLP / PyTorch BF16 MLP = {fp8 / peer['bf16']:.3f} (target <= 0.80)")
        print(f"PyTorch FP8 MLP {peer['fp8_e4m3']:.4f} ms, its three FP8 GEMMs alone {peer['fp8 GEMMs only']:.4f} ms")


if __name__ == "__main__":
    main()
