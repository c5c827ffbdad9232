#!/usr/bin/env python3
"""ONNX Runtime as a precheck engine: the command backend's protocol (README, "Command backend").

    precheck run suites/smoke.yaml --backend command --onnx \\
        --command 'python3 examples/runners/ort_runner.py'

With `--onnx`, precheck writes each variant as `model.onnx` (opset 21; Q/DQ nodes for quantized
matmul operands, Cast pairs for BF16/FP16 tensors) into the work folder. This runner loads it in
an ONNX Runtime session, runs `inputs.safetensors`, writes `outputs.safetensors`, and times
`iterations` runs after `warmup` untimed ones with a wall clock (ONNX Runtime on the CPU: there is
no device event to time with). A variant without a model (a policy ONNX cannot express, or a run
without `--onnx`) exits 2 with the reason, which precheck records as the variant's error.

Options (before the work folder): `--providers A,B` (default CPUExecutionProvider),
`--threads N` (intra-op threads; default ONNX Runtime's choice), `--check` (first validate the
model with the `onnx` package's full checker, shape inference included).
Needs `onnxruntime`, `numpy` and `safetensors` (pip), and `onnx` for `--check`.
"""
import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort
from safetensors.numpy import load_file, save_file


def refuse(why):
    print(f"ort_runner: {why}", file=sys.stderr)
    sys.exit(2)


def options(args):
    providers, threads, check = ["CPUExecutionProvider"], 0, False
    while args and args[0].startswith("--"):
        flag = args.pop(0)
        if flag == "--check":
            check = True
        elif flag == "--providers":
            providers = args.pop(0).split(",")
        elif flag == "--threads":
            threads = int(args.pop(0))
        else:
            refuse(f"unknown option {flag}")
    if len(args) != 1:
        refuse("usage: ort_runner.py [--providers A,B] [--threads N] [--check] WORK_DIR")
    return providers, threads, check, args[0]


def session(work, variant, providers, threads, check):
    onnx = variant.get("onnx")
    if onnx is None:
        refuse("variant.json names no model.onnx: run precheck with --onnx")
    if "file" not in onnx:
        refuse(onnx["unavailable"])
    path = os.path.join(work, onnx["file"])
    if check:
        import onnx as onnx_package

        onnx_package.checker.check_model(path, full_check=True)
    settings = ort.SessionOptions()
    settings.intra_op_num_threads = threads
    matmul = variant["policy"]["matmul"]
    if any(spec.startswith("fp8") for spec in (matmul["weights"], matmul["activations"])):
        # ONNX Runtime's CPU graph optimizer fuses FP8 Q/DQ pairs around a Gemm into a QGemm that
        # has no FP8 kernel and then refuses the graph; without that fusion, FP8 runs as Q/DQ.
        settings.add_session_config_entry("session.disable_quant_qdq", "1")
    # ONNX Runtime fuses per-tensor INT8 Q/DQ around a Gemm into a QGemm and moves the activations
    # to uint8; its u8 x s8 kernel on x86 CPUs without VNNI (AVX2, AVX-512 without VNNI) adds
    # pairs of products in 16 bits, which saturate (ORT documents the overflow with this key). The
    # exported graph says int32 accumulation: the u8 x u8 kernel gives it exactly.
    settings.add_session_config_entry("session.x64quantprecision", "1")
    return ort.InferenceSession(path, settings, providers=providers)


def main():
    providers, threads, check, work = options(sys.argv[1:])
    with open(os.path.join(work, "variant.json")) as f:
        variant = json.load(f)
    model = session(work, variant, providers, threads, check)
    # Every input by its name (an exported block's is `input`), every output by its name: the
    # graph's outputs and the values precheck marked along it (`variant.json`'s `outputs`).
    arrays = load_file(os.path.join(work, "inputs.safetensors"))
    feeds = {i.name: arrays[i.name] for i in model.get_inputs()}
    outputs = [o.name for o in model.get_outputs()]
    values = model.run(outputs, feeds)
    save_file(
        {name: np.ascontiguousarray(value) for name, value in zip(outputs, values)},
        os.path.join(work, "outputs.safetensors"),
    )
    iterations = variant["iterations"]
    if iterations == 0:
        return
    for _ in range(variant["warmup"]):
        model.run(outputs, feeds)
    latencies = []
    for _ in range(iterations):
        start = time.perf_counter()
        model.run(outputs, feeds)
        latencies.append((time.perf_counter() - start) * 1e3)
    with open(os.path.join(work, "timings.json"), "w") as f:
        json.dump({"latency_ms": latencies}, f)


if __name__ == "__main__":
    main()
