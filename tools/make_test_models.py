#!/usr/bin/env python3
"""Builds the tiny ONNX recognizers the tests that run everywhere use (nothing is downloaded).

Each maps a 112x112 RGB crop to a short embedding: 8x8 average pooling to 3x14x14, then a fixed
pseudo-random projection (seeded, so every run writes the same model). Similar crops give similar
embeddings, which is all the engine tests need.

    tiny_fixed.onnx     input [1, 3, 112, 112]  -> output [1, 16]   (fixed batch 1)
    tiny_dynamic.onnx   input [N, 3, 112, 112]  -> output [N, 16]   (dynamic batch)
    tiny_wrong_dim.onnx input [1, 3, 112, 112]  -> output [1, 8]    (for DimensionMismatch)

and a YuNet-shaped detector whose outputs do not depend on the image: one face, score 0.95,
box (112, 112, 128, 128) in the 640x640 input, landmarks on the ArcFace template:

    tiny_yunet.onnx     input [1, 3, 640, 640]  -> cls_/obj_/bbox_/kps_ {8, 16, 32}

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


TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)


def detector():
    face_cell, stride = (5, 5), 32  # row, col of the stride-32 grid; centre (176, 176)
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 640, 640])
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
    ]
    initializers = [numpy_helper.from_array(np.array(0.0, np.float32), "zero")]
    outputs = []
    landmarks = TEMPLATE_112 * (128 / 112) + 112
    for s in (8, 16, 32):
        cells = (640 // s) ** 2
        values = {
            "cls": np.zeros((1, cells, 1), np.float32),
            "obj": np.zeros((1, cells, 1), np.float32),
            "bbox": np.zeros((1, cells, 4), np.float32),
            "kps": np.zeros((1, cells, 10), np.float32),
        }
        if s == stride:
            r, c = face_cell
            i = r * (640 // s) + c
            values["cls"][0, i, 0] = values["obj"][0, i, 0] = 0.95
            values["bbox"][0, i] = [0.5, 0.5, np.log(4.0), np.log(4.0)]
            values["kps"][0, i] = (landmarks / s - [c, r]).reshape(-1)
        for name, value in values.items():
            out = f"{name}_{s}"
            initializers.append(numpy_helper.from_array(value, f"{out}_const"))
            nodes.append(helper.make_node("Add", ["nothing", f"{out}_const"], [out]))
            outputs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, list(value.shape)))
    graph = helper.make_graph(nodes, "tiny_yunet", [x], outputs, initializers)
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
        ("tiny_yunet.onnx", detector()),
    ]:
        path = os.path.join(out, name)
        onnx.save(model, path + ".tmp")
        os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
