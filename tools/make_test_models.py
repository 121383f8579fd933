#!/usr/bin/env python3
"""Builds the tiny ONNX recognizers the tests that run everywhere use (nothing is downloaded).

Each maps a 112x112 RGB crop to a short embedding: 8x8 average pooling to 3x14x14, then a fixed
pseudo-random projection (seeded, so every run writes the same model). Similar crops give similar
embeddings, which is all the engine tests need.

    tiny_fixed.onnx     input [1, 3, 112, 112]  -> output [1, 16]   (fixed batch 1)
    tiny_dynamic.onnx   input [N, 3, 112, 112]  -> output [N, 16]   (dynamic batch)
    tiny_wrong_dim.onnx input [1, 3, 112, 112]  -> output [1, 8]    (for DimensionMismatch)

Usage: make_test_models.py OUT_DIR
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def recognizer(batch, dim, seed=7):
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((3 * 14 * 14, dim)).astype(np.float32)
    x = helper.make_tensor_value_info("input0", TensorProto.FLOAT, [batch, 3, 112, 112])
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [batch, dim])
    nodes = [
        helper.make_node("AveragePool", ["input0"], ["pooled"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["output0"]),
    ]
    graph = helper.make_graph(nodes, "tiny_recognizer", [x], [y], [numpy_helper.from_array(weights, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="attendansee-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, model in [
        ("tiny_fixed.onnx", recognizer(1, 16)),
        ("tiny_dynamic.onnx", recognizer("N", 16)),
        ("tiny_wrong_dim.onnx", recognizer(1, 8)),
    ]:
        path = os.path.join(out, name)
        onnx.save(model, path + ".tmp")
        os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
