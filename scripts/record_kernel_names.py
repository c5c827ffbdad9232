#!/usr/bin/env python3
"""Records the kernel names real GPU runs launch, for precheck's kernel-name classifier
(src/precision/kernels.rs) to be checked against: PyTorch's matmuls in every precision at several
shapes (m = 1 decode GEMVs included), linear layers with a bias, FP8 `_scaled_mm`, and
scaled-dot-product attention through each backend PyTorch has (flash, cuDNN, memory-efficient,
math). Each workload's kernels are traced with torch.profiler.

    python3 scripts/record_kernel_names.py OUT.json      (on a GPU machine with PyTorch)

Writes {"recorded_on": ..., "kernels": {workload: {kernel name: launches}}}; the committed fixture
tests/fixtures/kernels/h200_torch_kernels.json was made this way.
"""
import json
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel


def trace(fn):
    fn()
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    names = {}
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            names[event.name] = names.get(event.name, 0) + 1
    return names


def main():
    out = sys.argv[1]
    device = torch.device("cuda")
    workloads = {}
    hidden, intermediate = 2048, 8192
    for m in (1, 16, 970):
        for name, dtype, tf32 in (
            ("fp32", torch.float32, False),
            ("tf32", torch.float32, True),
            ("bf16", torch.bfloat16, False),
            ("fp16", torch.float16, False),
        ):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            x = torch.randn(m, hidden, device=device, dtype=dtype)
            w = torch.randn(intermediate, hidden, device=device, dtype=dtype)
            b = torch.randn(intermediate, device=device, dtype=dtype)
            workloads[f"matmul_{name}_m{m}"] = trace(lambda: x @ w.t())
            workloads[f"linear_bias_{name}_m{m}"] = trace(
                lambda: torch.nn.functional.linear(x, w, b)
            )
        torch.backends.cuda.matmul.allow_tf32 = False
        if m >= 16:
            x8 = torch.randn(m, hidden, device=device).to(torch.float8_e4m3fn)
            w8 = torch.randn(intermediate, hidden, device=device).to(torch.float8_e4m3fn)
            one = torch.ones((), device=device)
            workloads[f"scaled_mm_fp8_m{m}"] = trace(
                lambda: torch._scaled_mm(x8, w8.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
            )
    for dtype_name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        q = torch.randn(1, 8, 970, 128, device=device, dtype=dtype)
        k = torch.randn(1, 8, 970, 128, device=device, dtype=dtype)
        v = torch.randn(1, 8, 970, 128, device=device, dtype=dtype)
        for backend in (
            SDPBackend.FLASH_ATTENTION,
            SDPBackend.CUDNN_ATTENTION,
            SDPBackend.EFFICIENT_ATTENTION,
            SDPBackend.MATH,
        ):
            try:
                with sdpa_kernel(backend):
                    workloads[f"sdpa_{backend.name.lower()}_{dtype_name}"] = trace(
                        lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
                    )
            except RuntimeError as error:
                workloads[f"sdpa_{backend.name.lower()}_{dtype_name}"] = {"unavailable": str(error)[:200]}
    recorded_on = f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    json.dump({"recorded_on": recorded_on, "kernels": workloads}, open(out, "w"), indent=1, sort_keys=True)


main()
