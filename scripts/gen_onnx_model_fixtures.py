#!/usr/bin/env python3
"""Write the user-model fixtures of tests/onnx_user_models.rs into tests/fixtures/onnx/.

- `two_inputs.onnx` (opset 11, as PaddleOCR and many exporters still write): a small conv net
  with two inputs, an image `[N, 3, H, W]` (N, H, W dynamic) and token ids `[N, 5]` (int64),
  and two outputs. The image goes through Conv → Relu → GlobalAveragePool → Flatten; the ids
  through an embedding (Gather) and a ReduceMean over the tokens (axes as an attribute, as
  before opset 18); their sum through a MatMul into `features` [N, 4] and a Softmax with the
  opset-11 default axis (1) into `probs` [N, 4].

Written once with onnx 1.23.2, from the repository root:

    target/test-env/bin/python scripts/gen_onnx_model_fixtures.py

The weights come from a seeded numpy generator, so the output is deterministic; the files are
committed, so the Rust tests need no Python to read them.
"""

import pathlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/onnx"
rng = np.random.default_rng(20261129)


def init(name, shape, scale):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def two_inputs():
    nodes = [
        helper.make_node("Conv", ["image", "conv.weight", "conv.bias"], ["conv"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"], name="relu"),
        helper.make_node("GlobalAveragePool", ["relu"], ["pooled"], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["image_features"], name="flatten"),
        helper.make_node("Gather", ["embedding", "ids"], ["embedded"], name="embed"),
        helper.make_node("ReduceMean", ["embedded"], ["id_features"], name="mean", axes=[1], keepdims=0),
        helper.make_node("Add", ["image_features", "id_features"], ["joined"], name="join"),
        helper.make_node("MatMul", ["joined", "head.weight"], ["features"], name="head"),
        helper.make_node("Softmax", ["features"], ["probs"], name="softmax"),
    ]
    graph = helper.make_graph(
        nodes,
        "two_inputs",
        [
            helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"]),
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", 5]),
        ],
        [
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 4]),
        ],
        [
            init("conv.weight", [8, 3, 3, 3], 0.3),
            init("conv.bias", [8], 0.1),
            init("embedding", [16, 8], 1.0),
            init("head.weight", [8, 4], 0.5),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=6)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, OUT / "two_inputs.onnx")


two_inputs()
