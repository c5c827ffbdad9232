#!/usr/bin/env python3
"""Writes the fuzz targets' seed inputs, `fuzz/corpus/<target>/seed-*`, from the repository's
suites and fixtures. Each seed is a target's input as `fuzz/targets.rs` reads it (a leading byte
picks the kind of file where a target reads several). Run from the repository root with numpy
and safetensors (the test environment: `target/test-env/bin/python fuzz/seed_corpus.py`). The
corpus grown by fuzzing sits beside the seeds, named by its SHA-1 as libFuzzer names it."""

import glob
import io
import json
import os

import numpy as np
from safetensors.numpy import save

ROOT = "fuzz/corpus"


def seed(target, name, data):
    folder = os.path.join(ROOT, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "seed-" + name), "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def npz(**arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


for path in sorted(glob.glob("suites/*.yaml") + glob.glob("tests/bad_suites/*.yaml")
                   + glob.glob("tests/suites/*.yaml")):
    seed("suite", path.replace("/", "_"), read(path))

ARRAYS = {
    "f32_2x3": np.arange(6, dtype=np.float32).reshape(2, 3),
    "f16_4": np.linspace(-1, 1, 4).astype(np.float16),
    "i64_3x1": np.array([[1], [2], [3]], dtype=np.int64),
    "bool_2": np.array([True, False]),
    "f32_fortran": np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)),
    "f64_scalar": np.array(1.5),
}
for name, array in ARRAYS.items():
    seed("arrays", f"npy_{name}", b"\x00" + npy(array))
    seed("arrays", f"safetensors_{name}",
         b"\x02" + save({"x": np.ascontiguousarray(array)}))
seed("arrays", "npz_two", b"\x01" + npz(x=ARRAYS["f32_2x3"], y=ARRAYS["i64_3x1"]))
seed("arrays", "safetensors_output",
     b"\x02" + save({"output": ARRAYS["f32_2x3"], "x": ARRAYS["f16_4"]}))

for folder in sorted(glob.glob("tests/fixtures/runs/*/")):
    info = json.dumps(json.load(open(os.path.join(folder, "run.json"))))
    results = read(os.path.join(folder, "results.jsonl"))
    seed("records", os.path.basename(folder.rstrip("/")), info.encode() + b"\n" + results)

ENGINE = [
    (0, "timings", b'{"latency_ms": [0.5, 0.25, 1.0]}'),
    (0, "timings_zero", b'{"latency_ms": [0.0, 1e308, -1]}'),
    (1, "kernels", b'[{"name": "sm90_xmma_gemm_e4m3e4m3_f32", "duration_us": 12.5}]'),
]
for index, name, data in ENGINE:
    seed("engine_outputs", name, bytes([index]) + data)
for path in sorted(glob.glob("tests/fixtures/trtexec/*.json")):
    name = os.path.basename(path)
    index = 3 if name == "output.json" else 4 if name == "profile.json" else \
        5 if name == "times.json" else 2
    seed("engine_outputs", name, bytes([index]) + read(path))
for path in sorted(glob.glob("tests/fixtures/kernels/*.json")):
    seed("engine_outputs", os.path.basename(path), b"\x01" + read(path))

for path in sorted(glob.glob("tests/fixtures/onnx/*.onnx")):
    for kind in (0, 4, 8):
        seed("onnx_model", f"{os.path.basename(path)}_{kind}", bytes([kind]) + read(path))
