#!/usr/bin/env python3
"""Write tests/fixtures/onnx/roundtrip.onnx: a small model serialized by the `onnx` package.

src/onnx_proto.rs decodes it and encodes it again and expects the same bytes, which shows that
its prost messages keep every field a protobuf writer other than prost puts in a real model.

Written once with onnx 1.23.2 (protobuf 7.36.2), from the repository root:

    target/test-env/bin/python scripts/gen_onnx_proto_fixture.py

The output is deterministic (no random data); the file is committed, so the Rust test needs no
Python.
"""

import pathlib

import onnx
from onnx import TensorProto, helper

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/onnx/roundtrip.onnx"

# Conv weights and bias as float_data (make_tensor without raw=True), not raw_data.
weight = helper.make_tensor(
    "conv.weight", TensorProto.FLOAT, [4, 3, 3, 3], [(i % 7) * 0.25 - 0.75 for i in range(108)]
)
weight.doc_string = "conv kernel, float_data"
bias = helper.make_tensor("conv.bias", TensorProto.FLOAT, [4], [0.5, -0.5, 1.0, -1.0])

conv = helper.make_node(
    "Conv",
    ["x", "conv.weight", "conv.bias"],
    ["features"],
    name="conv",
    kernel_shape=[3, 3],
    pads=[1, 1, 1, 1],
    strides=[1, 1],
    doc_string="3x3 convolution",
)
# A node of a custom domain with a FLOATS, a TENSOR (int64_data) and a STRINGS attribute.
scale = helper.make_node(
    "ChannelScale",
    ["features"],
    ["y"],
    name="scale",
    domain="com.example",
    scales=[0.5, 2.0, -1.0, 4.0],
    offset=helper.make_tensor("offset", TensorProto.INT64, [2], [-3, 7]),
    tags=["a", "bc"],
)

graph = helper.make_graph(
    [conv, scale],
    "roundtrip",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8], "a batch of images")],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 8, 8])],
    initializer=[weight, bias],
    doc_string="fixture for src/onnx_proto.rs",
    value_info=[helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 4, 8, 8])],
)

# The default domain's opset is written without its (empty) domain field.
model = helper.make_model(
    graph,
    opset_imports=[
        onnx.OperatorSetIdProto(version=21),
        helper.make_opsetid("com.example", 1),
    ],
    producer_name="gen_onnx_proto_fixture.py",
    producer_version=onnx.__version__,
    domain="ai.precheck.test",
    model_version=3,
    doc_string="a model written by the onnx package",
)
model.ir_version = 10
helper.set_model_props(model, {"author": "precheck", "license": "MIT"})

OUT.parent.mkdir(parents=True, exist_ok=True)
OUT.write_bytes(model.SerializeToString())
print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
