#!/usr/bin/env python3
"""The peer of precheck's in-process ONNX Runtime: the same rewritten graphs, timed from Python.

    precheck export suites/ppocr.yaml --out /tmp/ppocr-export
    python3 benches/ort_python.py /tmp/ppocr-export 50

For every model precheck wrote (EXPORT/MODEL/PRECISION.onnx: the user's model rewritten into
the precision, byte for byte what `precheck run --backend cpu` times), loads it in an ONNX
Runtime session with the options precheck uses (Q/DQ fusion off, ONNX Runtime's default
threads), feeds the suite's input (models/ppocr/{page,line,word}.npy, see
scripts/fetch_ppocr.sh), runs 5 untimed and N timed calls with a wall clock, as precheck does, and
prints the median in ms and the session's load time. Needs onnxruntime and numpy.
"""
import json
import pathlib
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort

INPUTS = {"det": "page.npy", "rec": "line.npy", "cls": "word.npy"}
WARMUP = 5


def main():
    export, iterations = pathlib.Path(sys.argv[1]), int(sys.argv[2])
    inputs = pathlib.Path(__file__).resolve().parent.parent / "models" / "ppocr"
    results = {}
    for model in sorted(p for p in export.iterdir() if p.name in INPUTS):
        x = np.load(inputs / INPUTS[model.name])
        for file in sorted(model.glob("*.onnx")):
            begin = time.perf_counter()
            settings = ort.SessionOptions()
            settings.add_session_config_entry("session.disable_quant_qdq", "1")
            session = ort.InferenceSession(str(file), settings, providers=["CPUExecutionProvider"])
            load_ms = (time.perf_counter() - begin) * 1e3
            feeds = {session.get_inputs()[0].name: x}
            for _ in range(WARMUP):
                session.run(None, feeds)
            times = []
            for _ in range(iterations):
                start = time.perf_counter()
                session.run(None, feeds)
                times.append((time.perf_counter() - start) * 1e3)
            results[f"{model.name}/{file.stem}"] = {
                "median_ms": statistics.median(times),
                "load_ms": load_ms,
            }
    json.dump(results, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
