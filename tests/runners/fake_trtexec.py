#!/usr/bin/env python3
"""A stand-in for TensorRT's trtexec in tests: its command line and its files, ONNX Runtime inside.

precheck's trtexec backend (src/backend/trtexec.rs) drives this the way it drives trtexec:
  --help                                   prints trtexec's banner with a TensorRT version;
  --onnx=M --saveEngine=E --skipInference  "builds": checks every flag is one trtexec knows, keeps
    --exportLayerInfo=L [build flags]      the ONNX model as the engine, and writes a detailed
                                           layer report (TensorRT 10's format) with one layer
                                           per Gemm and MatMul (`gemm`) and Conv node
                                           (`CaskConvolution`), its input type what the build
                                           would choose: FP8 or Int8 behind Q/DQ, else FP32 in
                                           a --stronglyTyped build, BFloat16 with --bf16, Half
                                           with --fp16, else FP32;
  --loadEngine=E --loadInputs=a:F,b:G      runs: each file raw little-endian, of its input's
    [--shapes=a:1x3x8x8,...]               type and shape (`--shapes` for dynamic ones); writes
    [--exportOutput=O] [--exportTimes=T]   --exportOutput's and --exportTimes' JSON.
    [--iterations=N ...]
Every call appends its arguments, one line, to $FAKE_TRTEXEC_LOG when set. With
FAKE_TRTEXEC_FALLBACK=1 the layer report says every GEMM ran in FP32 (a build that fell back).
Needs onnx, onnxruntime and numpy.
"""
import json
import os
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort

BANNER = "&&&& RUNNING TensorRT.trtexec [TensorRT v100800] # trtexec"
KNOWN = {
    "--onnx", "--saveEngine", "--loadEngine", "--skipInference", "--profilingVerbosity",
    "--exportLayerInfo", "--exportOutput", "--exportTimes", "--exportProfile", "--loadInputs",
    "--iterations", "--warmUp", "--duration", "--useCudaGraph", "--noDataTransfers",
    "--fp16", "--bf16", "--int8", "--fp8", "--int4", "--noTF32", "--best", "--stronglyTyped",
    "--precisionConstraints", "--layerPrecisions", "--minShapes", "--optShapes", "--maxShapes",
    "--shapes",
}
QUANTIZED = {
    onnx.TensorProto.FLOAT8E4M3FN: "FP8",
    onnx.TensorProto.INT8: "Int8",
}


def fail(why):
    print(f"[E] {why}", file=sys.stderr)
    print(f"{BANNER} FAILED", file=sys.stdout)
    sys.exit(1)


def parse(argv):
    options = {}
    for arg in argv:
        name, _, value = arg.partition("=")
        if name not in KNOWN:
            fail(f"Unknown option: {arg}")
        options[name] = value
    return options


def gemm_type(model, node, options):
    """What a build with these flags would run this Gemm's activation input in."""
    producers = {output: n for n in model.graph.node for output in n.output}
    initializers = {t.name: t for t in model.graph.initializer}
    source = producers.get(node.input[0])
    if source is not None and source.op_type == "DequantizeLinear" and len(source.input) > 2:
        zero = initializers.get(source.input[2])
        if zero is not None and zero.data_type in QUANTIZED:
            return QUANTIZED[zero.data_type]
    if os.environ.get("FAKE_TRTEXEC_FALLBACK") == "1":
        return "FP32"
    if "--stronglyTyped" in options:
        # The graph's own types decide: a product of float inputs runs in FP32.
        return "FP32"
    if "--bf16" in options:
        return "BFloat16"
    if "--fp16" in options:
        return "Half"
    return "FP32"


# The TensorRT layer type of each ONNX matmul-class operator.
LAYER_TYPES = {"Gemm": "gemm", "MatMul": "gemm", "Conv": "CaskConvolution"}

# numpy's type of each ONNX element type an input can have.
NUMPY = {
    onnx.TensorProto.FLOAT: "<f4", onnx.TensorProto.FLOAT16: "<f2", onnx.TensorProto.DOUBLE: "<f8",
    onnx.TensorProto.INT64: "<i8", onnx.TensorProto.INT32: "<i4", onnx.TensorProto.INT8: "i1",
    onnx.TensorProto.UINT8: "u1", onnx.TensorProto.BOOL: "?",
}


def build(options):
    model = onnx.load(options["--onnx"])
    with open(options["--onnx"], "rb") as f, open(options["--saveEngine"], "wb") as engine:
        engine.write(f.read())
    layers = []
    for node in model.graph.node:
        if node.op_type not in LAYER_TYPES:
            continue
        datatype = gemm_type(model, node, options)
        tensor = lambda name: {"Name": name, "Dimensions": [], "Format/Datatype": f"Row major linear {datatype}"}
        layers.append({
            "Name": node.name,
            "LayerType": LAYER_TYPES[node.op_type],
            "Inputs": [tensor(node.input[0]), tensor(node.input[1])],
            "Outputs": [tensor(node.output[0])],
            "TacticName": "fake_gemm",
            "StreamId": 0,
            "Metadata": f"[ONNX Layer: {node.name}]",
        })
    with open(options["--exportLayerInfo"], "w") as f:
        json.dump({"Layers": layers, "Bindings": ["input", "output"]}, f)


def run(options):
    settings = ort.SessionOptions()
    # ONNX Runtime's CPU optimizer would fuse FP8 Q/DQ into a QGemm it has no kernel for.
    settings.add_session_config_entry("session.disable_quant_qdq", "1")
    session = ort.InferenceSession(options["--loadEngine"], settings, providers=["CPUExecutionProvider"])
    # --shapes=a:1x3x8x8,b:1x5 for dynamic dimensions; else each input's fixed shape.
    shapes = {}
    for entry in filter(None, options.get("--shapes", "").split(",")):
        name, _, dims = entry.rpartition(":")
        shapes[name] = [int(d) for d in dims.split("x")]
    model = onnx.load(options["--loadEngine"])
    types = {i.name: i.type.tensor_type for i in model.graph.input}
    feeds = {}
    for entry in options["--loadInputs"].split(","):
        name, _, path = entry.partition(":")
        declared = types[name]
        shape = shapes.get(name) or [d.dim_value for d in declared.shape.dim]
        if not all(shape):
            fail(f"input {name} has a dynamic shape and no --shapes")
        feeds[name] = np.fromfile(path, dtype=NUMPY[declared.elem_type]).reshape(shape)
    output_names = [o.name for o in session.get_outputs()]
    iterations = int(options.get("--iterations", "10"))
    records, start = [], time.perf_counter()
    for _ in range(iterations):
        begin = (time.perf_counter() - start) * 1e3
        outputs = session.run(output_names, feeds)
        end = (time.perf_counter() - start) * 1e3
        records.append((begin, end))
    if "--exportOutput" in options:
        entries = []
        for output_name, output in zip(output_names, outputs):
            values = ", ".join(repr(float(v)) for v in output.ravel())
            dims = "x".join(str(d) for d in output.shape)
            entries.append(f'  {{ "name" : "{output_name}"\n  , "dimensions" : "{dims}"\n  , "values" : [ {values} ]\n  }}')
        with open(options["--exportOutput"], "w") as f:
            f.write("[\n" + "\n, ".join(entries) + "\n]\n")
    if "--exportTimes" in options:
        trace = [
            {"startEnqMs": b, "endEnqMs": b, "startH2dMs": b, "endH2dMs": b, "startComputeMs": b,
             "endComputeMs": e, "startD2hMs": e, "endD2hMs": e, "h2dMs": 0.0, "computeMs": e - b,
             "d2hMs": 0.0, "latencyMs": e - b}
            for b, e in records
        ]
        with open(options["--exportTimes"], "w") as f:
            json.dump(trace, f)


def main():
    argv = sys.argv[1:]
    log = os.environ.get("FAKE_TRTEXEC_LOG")
    if log:
        with open(log, "a") as f:
            f.write(" ".join(argv) + "\n")
    if argv == ["--help"]:
        print(BANNER + " --help")
        return
    options = parse(argv)
    if "--onnx" in options:
        build(options)
    else:
        run(options)
    print(f"{BANNER} PASSED")


main()
