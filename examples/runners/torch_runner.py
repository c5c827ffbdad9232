#!/usr/bin/env python3
"""PyTorch as a precheck engine: the command backend's protocol (README, "Command backend").

    precheck run suites/paligemma.yaml --backend command \\
        --command 'python3 examples/runners/torch_runner.py' --filter 'paligemma_mlp/*'

Runs precheck's `linear`, gated `mlp` and `attention` blocks on the GPU the way a PyTorch user
would: F.linear in FP32, TF32, BF16 or FP16, and FP8 E4M3 through torch._scaled_mm with
per-tensor current scaling of the weights (once) and of every activation (each call), BF16
outputs, as precheck's `fp8_e4m3` preset. Attention: the projections so, rotary embedding
("rotate half") on queries and keys, F.scaled_dot_product_attention (GQA through enable_gqa) in
the policy's carrier type, which keeps the softmax in FP32 internally. Timings are CUDA-graph replays between CUDA events; the kernels of one
forward pass come from torch.profiler. A block or policy it cannot run exits 2 with the reason,
which precheck records as the variant's error.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

FP8_MAX = 448.0
CARRIERS = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
ACTIVATIONS = {
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
}


def refuse(why):
    print(f"torch_runner: {why}", file=sys.stderr)
    sys.exit(2)


def quantize(t):
    """Per-tensor current scaling to E4M3: scale = amax / 448, saturating cast."""
    scale = t.abs().amax().float().clamp(min=1e-12) / FP8_MAX
    return (t.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn), scale


class Linear:
    """One matmul of the policy: the weight prepared once, the activation on every call."""

    def __init__(self, weight, matmul, dtype):
        self.fp8 = matmul == "fp8_e4m3/per_tensor"
        if self.fp8:
            self.weight, self.scale = quantize(weight)
            self.weight = self.weight.t()  # _scaled_mm wants the second operand column-major
        else:
            self.weight = weight.to(dtype)

    def __call__(self, x):
        if not self.fp8:
            return F.linear(x, self.weight)
        q, scale = quantize(x)
        return torch._scaled_mm(q, self.weight, scale_a=scale, scale_b=self.scale, out_dtype=torch.bfloat16)


def build(variant, weights):
    policy = variant["policy"]
    matmul = policy["matmul"]
    if matmul["weights"] != matmul["activations"]:
        refuse(f"policy {policy['name']}: weights and activations in different formats")
    spec = matmul["weights"]
    if spec == "fp8_e4m3/per_tensor" and policy["default"] == "bf16":
        dtype = torch.bfloat16
    elif spec in CARRIERS and policy["default"] == spec.replace("tf32", "fp32"):
        dtype = CARRIERS[spec]
    else:
        refuse(f"policy {policy['name']} ({spec}, default {policy['default']}) is not one this runner knows")
    torch.backends.cuda.matmul.allow_tf32 = spec == "tf32"
    linear = {name: Linear(w.cuda(), spec, dtype) for name, w in weights.items() if w.dim() == 2}
    block = variant["block"]
    if block == "linear":
        return dtype, lambda x: linear["weight"](x)
    if block == "mlp" and set(linear) == {"gate_proj.weight", "up_proj.weight", "down_proj.weight"}:
        activation = ACTIVATIONS.get(variant.get("activation", "gelu_tanh"))
        gate, up, down = linear["gate_proj.weight"], linear["up_proj.weight"], linear["down_proj.weight"]
        return dtype, lambda x: down((activation(gate(x)) * up(x)).to(dtype))
    if block == "attention" and set(linear) == {f"{p}_proj.weight" for p in "qkvo"}:
        return dtype, attention(variant["attention"], variant["tokens"], linear, dtype)
    refuse(f"block {block} with parameters {sorted(weights)} is not one this runner knows")


def attention(spec, tokens, linear, dtype):
    """Q/K/V projections, rotary embedding, SDPA with grouped heads, output projection."""
    heads, kv_heads, dim = (spec["shape"][k] for k in ("heads", "kv_heads", "head_dim"))
    causal, theta = spec["shape"]["causal"], spec["rope_theta"]
    positions = torch.arange(tokens, dtype=torch.float64, device="cuda")
    frequencies = theta ** (-2.0 * torch.arange(dim // 2, dtype=torch.float64, device="cuda") / dim) if theta else None
    angles = positions[:, None] * frequencies if theta else None
    cos, sin = (angles.cos().to(dtype), angles.sin().to(dtype)) if theta else (None, None)

    def rotary(x):  # [1, heads, tokens, dim]
        first, second = x[..., : dim // 2], x[..., dim // 2 :]
        return torch.cat((first * cos - second * sin, second * cos + first * sin), dim=-1)

    def split(x, n):  # [1, heads, tokens, dim]: SDPA's fused kernels take 4-D inputs only
        return x.to(dtype).view(tokens, n, dim).transpose(0, 1).unsqueeze(0)

    def forward(x):
        q, k = split(linear["q_proj.weight"](x), heads), split(linear["k_proj.weight"](x), kv_heads)
        v = split(linear["v_proj.weight"](x), kv_heads)
        if theta:
            q, k = rotary(q), rotary(k)
        context = F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=heads != kv_heads)
        return linear["o_proj.weight"](context[0].transpose(0, 1).reshape(tokens, heads * dim))

    return forward


def timings(forward, x, warmup, iterations):
    """Per-iteration ms of CUDA-graph replays of `forward(x)`, each between two CUDA events."""
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        for _ in range(3):
            forward(x)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        forward(x)
    for _ in range(warmup):
        graph.replay()
    events = [torch.cuda.Event(enable_timing=True) for _ in range(iterations + 1)]
    events[0].record()
    for event in events[1:]:
        graph.replay()
        event.record()
    torch.cuda.synchronize()
    return [a.elapsed_time(b) for a, b in zip(events, events[1:])]


def kernels(forward, x):
    """Every CUDA kernel one forward pass launches, with its duration."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as profile:
        forward(x)
        torch.cuda.synchronize()
    return [
        {"name": e.name, "duration_us": e.device_time}
        for e in profile.events()
        if e.device_type == torch.autograd.DeviceType.CUDA
    ]


def main():
    work = sys.argv[-1]
    variant = json.load(open(os.path.join(work, "variant.json")))
    weights = load_file(os.path.join(work, "weights.safetensors"))
    dtype, forward = build(variant, weights)
    x = load_file(os.path.join(work, "inputs.safetensors"))["input"].cuda().to(dtype)
    with torch.no_grad():
        y = forward(x)
        save_file({"output": y.float().cpu().contiguous()}, os.path.join(work, "outputs.safetensors"))
        json.dump(kernels(forward, x), open(os.path.join(work, "kernels.json"), "w"))
        if variant["iterations"]:
            ms = timings(forward, x, variant["warmup"], variant["iterations"])
            json.dump({"latency_ms": ms}, open(os.path.join(work, "timings.json"), "w"))


main()
