#!/usr/bin/env python3
"""A command-backend engine for tests: the `linear` block y = x W^T in float64, stdlib only.

Usage: linear.py [--kernel PRECISION=NAME]... [--layer PRECISION=DATATYPE]...
                 [--compute PRECISION=bf16|fp16]...
                 [--mode honest|garbage|exit1|hang|short-timings|zero-timings|huge-timings] WORK_DIR

It speaks precheck's command protocol (README, "Command backend"): reads variant.json,
weights.safetensors and inputs.safetensors from WORK_DIR, writes outputs.safetensors, and when
variant.json asks for iterations, timings.json; with a --kernel for the variant's precision,
kernels.json naming that one GEMM; with a --layer for it, layers.json (trtexec's detailed
--exportLayerInfo format) with one gemm layer of that datatype (`Half`, `FP32`, ...).
With a --compute for the variant's precision, the GEMM runs as a BF16 or FP16 GEMM does: operands
and output rounded to that format, products accumulated wide (honest for a BF16 or FP16 variant, a
silent fallback for an FP32 one); otherwise it computes in float64.
The other modes misbehave on purpose, each in one way precheck must turn into an error record.
"""
import json
import os
import struct
import sys
import time


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info
        begin, end = info["data_offsets"]
        count = (end - begin) // 4
        tensors[name] = (info["shape"], struct.unpack(f"<{count}f", body[begin:end]))
    return tensors


def write_safetensors(path, tensors):
    header, body = {}, b""
    for name, (shape, values) in tensors.items():
        raw = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(body), len(body) + len(raw)]}
        body += raw
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded + body)


def round_bf16(v):
    """`v` rounded to bfloat16 (nearest, ties to even), as a float."""
    (bits,) = struct.unpack("<I", struct.pack("<f", v))
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def round_fp16(v):
    """`v` rounded to IEEE half (nearest, ties to even), as a float."""
    return struct.unpack("<e", struct.pack("<e", v))[0]


ROUNDING = {"bf16": round_bf16, "fp16": round_fp16}


def main():
    args = sys.argv[1:]
    work = args.pop()
    kernels = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--kernel")
    layer_types = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--layer")
    computes = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--compute")
    mode = args[args.index("--mode") + 1] if "--mode" in args else "honest"
    if mode == "exit1":
        print("linear.py: the engine refused to build (planted)", file=sys.stderr)
        sys.exit(1)
    if mode == "hang":
        time.sleep(3600)
    variant = json.load(open(os.path.join(work, "variant.json")))
    if mode == "garbage":
        with open(os.path.join(work, "outputs.safetensors"), "wb") as f:
            f.write(b"this is not a safetensors file")
        return
    (w_shape, w), = [v for k, v in read_safetensors(os.path.join(work, "weights.safetensors")).items()]
    x_shape, x = read_safetensors(os.path.join(work, "inputs.safetensors"))["input"]
    (rows, inner), out = x_shape, w_shape[0]
    rounding = ROUNDING.get(computes.get(variant["policy"]["name"]), lambda v: v)
    x, w = [rounding(v) for v in x], [rounding(v) for v in w]

    def forward():
        return [rounding(sum(x[r * inner + k] * w[o * inner + k] for k in range(inner)))
                for r in range(rows) for o in range(out)]

    y = forward()
    write_safetensors(os.path.join(work, "outputs.safetensors"), {"output": ([rows, out], y)})
    iterations = variant["iterations"]
    if iterations:
        for _ in range(variant["warmup"]):
            forward()
        latencies = []
        for _ in range(iterations):
            start = time.perf_counter()
            forward()
            latencies.append((time.perf_counter() - start) * 1e3)
        if mode == "short-timings":
            latencies = latencies[:-1]
        if mode == "zero-timings":
            latencies = [0.0] * len(latencies)
        if mode == "huge-timings":
            latencies = [1e308] * len(latencies)
        json.dump({"latency_ms": latencies}, open(os.path.join(work, "timings.json"), "w"))
    datatype = layer_types.get(variant["policy"]["name"])
    if datatype:
        tensor = {"Name": "x", "Dimensions": [rows, inner], "Format/Datatype": f"Row major linear {datatype}"}
        layer = {"Name": "/linear/MatMul", "LayerType": "gemm", "Inputs": [tensor], "Outputs": [tensor]}
        json.dump({"Layers": [layer]}, open(os.path.join(work, "layers.json"), "w"))
    kernel = kernels.get(variant["policy"]["name"])
    if kernel:
        json.dump([{"name": kernel, "duration_us": 1.0}], open(os.path.join(work, "kernels.json"), "w"))


main()
