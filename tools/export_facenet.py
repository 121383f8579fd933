#!/usr/bin/env python3
"""Builds DeepFace's FaceNet (InceptionResNetV1) in Keras 3 and exports it to ONNX for AttendanSee.

    export_facenet.py --variant facenet|facenet512 --weights FILE.h5 --out FILE.onnx [--check]
    export_facenet.py --variant facenet|facenet512 --random-weights SEED --out FILE.onnx [--check]

The network is rebuilt layer by layer with DeepFace's layer names (including its irregular branch
names inside the Block17/Block8 repeats), so DeepFace's published weight files load by name:
    facenet    (128-D): https://github.com/serengil/deepface_models/releases/download/v1.0/facenet_weights.h5
    facenet512 (512-D): https://github.com/serengil/deepface_models/releases/download/v1.0/facenet512_weights.h5
The ONNX graph is written by the small exporter below with the `onnx` helper API (no converter
package): input `input` float32 [N,3,160,160] (NCHW, what AttendanSee's workers feed; DeepFace's
pixel normalisation is the worker's job, not the graph's), output `embedding` [N,128] or [N,512],
the raw batch-normalised bottleneck DeepFace returns (AttendanSee L2-normalises it later).

`--random-weights SEED` replaces the upstream weights with seeded random ones (no download), which
is what the test suite exports. `--check` runs the Keras model and the exported file (onnxruntime)
on the same random inputs and fails unless the largest absolute difference is below 1e-4.
Prints `sha256 <hex>` of the written file (to pin in the catalog) and, with --check,
`max_abs_diff <value>`.
"""

import argparse
import hashlib
import os
import sys
import tempfile

# Keras reads its backend once, at import: JAX's CPU wheels are far smaller than TensorFlow's.
os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402

VARIANTS = {"facenet": 128, "facenet512": 512}
INPUT_SIZE = 160
TOLERANCE = 1e-4
OPSET = 17


class ExportError(Exception):
    """A layer or weight file the exporter cannot handle; the message says which."""


# --------------------------------------------------------------------------------------------
# The Keras model


def build_model(dimension):
    """InceptionResNetV1 exactly as DeepFace defines it (names, shapes, order of weighted layers)."""
    import keras
    from keras import layers

    def conv_bn(x, filters, kernel, name, strides=1, padding="same"):
        x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False, name=name)(x)
        # DeepFace's batch norms have no gamma (scale=False) and epsilon 1e-3.
        x = layers.BatchNormalization(axis=3, momentum=0.995, epsilon=0.001, scale=False, name=name + "_BatchNorm")(x)
        return layers.Activation("relu", name=name + "_Activation")(x)

    def residual(x, branches, block, channels, scale, activate=True):
        mixed = layers.Concatenate(axis=3, name=block + "_Concatenate")(branches)
        up = layers.Conv2D(channels, 1, strides=1, padding="same", use_bias=True, name=block + "_Conv2d_1x1")(mixed)
        # DeepFace scales the residual with an unnamed Lambda; the exporter reads `scale` back.
        up = layers.Lambda(lambda t, scale: t * scale, arguments={"scale": scale})(up)
        x = layers.add([x, up])
        return layers.Activation("relu", name=block + "_Activation")(x) if activate else x

    inputs = keras.Input(shape=(INPUT_SIZE, INPUT_SIZE, 3))
    x = conv_bn(inputs, 32, 3, "Conv2d_1a_3x3", strides=2, padding="valid")
    x = conv_bn(x, 32, 3, "Conv2d_2a_3x3", padding="valid")
    x = conv_bn(x, 64, 3, "Conv2d_2b_3x3")
    x = layers.MaxPooling2D(3, strides=2, name="MaxPool_3a_3x3")(x)
    x = conv_bn(x, 80, 1, "Conv2d_3b_1x1", padding="valid")
    x = conv_bn(x, 192, 3, "Conv2d_4a_3x3", padding="valid")
    x = conv_bn(x, 256, 3, "Conv2d_4b_3x3", strides=2, padding="valid")

    for i in range(1, 6):  # Inception-ResNet-A
        b = f"Block35_{i}"
        b0 = conv_bn(x, 32, 1, f"{b}_Branch_0_Conv2d_1x1")
        b1 = conv_bn(x, 32, 1, f"{b}_Branch_1_Conv2d_0a_1x1")
        b1 = conv_bn(b1, 32, 3, f"{b}_Branch_1_Conv2d_0b_3x3")
        b2 = conv_bn(x, 32, 1, f"{b}_Branch_2_Conv2d_0a_1x1")
        b2 = conv_bn(b2, 32, 3, f"{b}_Branch_2_Conv2d_0b_3x3")
        b2 = conv_bn(b2, 32, 3, f"{b}_Branch_2_Conv2d_0c_3x3")
        x = residual(x, [b0, b1, b2], b, 256, 0.17)

    # Reduction-A
    b0 = conv_bn(x, 384, 3, "Mixed_6a_Branch_0_Conv2d_1a_3x3", strides=2, padding="valid")
    b1 = conv_bn(x, 192, 1, "Mixed_6a_Branch_1_Conv2d_0a_1x1")
    b1 = conv_bn(b1, 192, 3, "Mixed_6a_Branch_1_Conv2d_0b_3x3")
    b1 = conv_bn(b1, 256, 3, "Mixed_6a_Branch_1_Conv2d_1a_3x3", strides=2, padding="valid")
    pool = layers.MaxPooling2D(3, strides=2, padding="valid", name="Mixed_6a_Branch_2_MaxPool_1a_3x3")(x)
    x = layers.Concatenate(axis=3, name="Mixed_6a")([b0, b1, pool])

    for i in range(1, 11):  # Inception-ResNet-B; DeepFace numbers the second branch like the block
        b = f"Block17_{i}"
        b0 = conv_bn(x, 128, 1, f"{b}_Branch_0_Conv2d_1x1")
        b1 = conv_bn(x, 128, 1, f"{b}_Branch_{i}_Conv2d_0a_1x1")
        b1 = conv_bn(b1, 128, [1, 7], f"{b}_Branch_{i}_Conv2d_0b_1x7")
        b1 = conv_bn(b1, 128, [7, 1], f"{b}_Branch_{i}_Conv2d_0c_7x1")
        x = residual(x, [b0, b1], b, 896, 0.1)

    # Reduction-B
    b0 = conv_bn(x, 256, 1, "Mixed_7a_Branch_0_Conv2d_0a_1x1")
    b0 = conv_bn(b0, 384, 3, "Mixed_7a_Branch_0_Conv2d_1a_3x3", strides=2, padding="valid")
    b1 = conv_bn(x, 256, 1, "Mixed_7a_Branch_1_Conv2d_0a_1x1")
    b1 = conv_bn(b1, 256, 3, "Mixed_7a_Branch_1_Conv2d_1a_3x3", strides=2, padding="valid")
    b2 = conv_bn(x, 256, 1, "Mixed_7a_Branch_2_Conv2d_0a_1x1")
    b2 = conv_bn(b2, 256, 3, "Mixed_7a_Branch_2_Conv2d_0b_3x3")
    b2 = conv_bn(b2, 256, 3, "Mixed_7a_Branch_2_Conv2d_1a_3x3", strides=2, padding="valid")
    pool = layers.MaxPooling2D(3, strides=2, padding="valid", name="Mixed_7a_Branch_3_MaxPool_1a_3x3")(x)
    x = layers.Concatenate(axis=3, name="Mixed_7a")([b0, b1, b2, pool])

    for i in range(1, 7):  # Inception-ResNet-C; the sixth has scale 1, no ReLU, and "Branch_1"
        b = f"Block8_{i}"
        n = i if i < 6 else 1
        b0 = conv_bn(x, 192, 1, f"{b}_Branch_0_Conv2d_1x1")
        b1 = conv_bn(x, 192, 1, f"{b}_Branch_{n}_Conv2d_0a_1x1")
        b1 = conv_bn(b1, 192, [1, 3], f"{b}_Branch_{n}_Conv2d_0b_1x3")
        b1 = conv_bn(b1, 192, [3, 1], f"{b}_Branch_{n}_Conv2d_0c_3x1")
        x = residual(x, [b0, b1], b, 1792, 0.2 if i < 6 else 1.0, activate=i < 6)

    x = layers.GlobalAveragePooling2D(name="AvgPool")(x)
    x = layers.Dropout(1.0 - 0.8, name="Dropout")(x)
    x = layers.Dense(dimension, use_bias=False, name="Bottleneck")(x)
    x = layers.BatchNormalization(momentum=0.995, epsilon=0.001, scale=False, name="Bottleneck_BatchNorm")(x)
    return keras.Model(inputs, x, name="inception_resnet_v1")


def load_upstream_weights(model, path):
    """Loads a DeepFace .h5 by layer name, refusing a file that lacks any of the model's layers
    (Keras' by-name loading would silently leave such a layer random)."""
    import h5py
    from keras.src.legacy.saving.legacy_h5_format import load_attributes_from_hdf5_group

    with h5py.File(path, "r") as f:
        group = f["model_weights"] if "model_weights" in f else f
        # Keras splits long attribute lists into numbered chunks; its own reader joins them.
        names = set(load_attributes_from_hdf5_group(group, "layer_names"))
    missing = [layer.name for layer in model.layers if layer.weights and layer.name not in names]
    if missing:
        raise ExportError(f"{path} holds no weights for {len(missing)} layers, e.g. {missing[:3]}")
    model.load_weights(path, by_name=True)


def randomize_weights(model, seed):
    """Seeded random weights that keep activations of order one through the 21 residual blocks,
    so an absolute tolerance means something. Moving variances are strictly positive."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = []
        for w in layer.weights:
            shape, name = tuple(w.shape), w.path.rsplit("/", 1)[-1]
            if name == "kernel":
                fan_in = int(np.prod(shape[:-1]))
                v = rng.normal(0.0, np.sqrt(1.0 / fan_in), shape)
            elif name == "moving_variance":
                v = rng.uniform(0.5, 1.5, shape)
            elif name in ("moving_mean", "beta", "bias"):
                v = rng.normal(0.0, 0.1, shape)
            elif name == "gamma":
                v = rng.uniform(0.5, 1.5, shape)
            else:
                raise ExportError(f"unexpected weight {w.path}")
            values.append(v.astype(np.float32))
        if values:
            layer.set_weights(values)


# --------------------------------------------------------------------------------------------
# The ONNX exporter


def same_pads(kernel):
    """TF 'same' padding at stride 1: the odd pixel goes to the end (begins..., ends...)."""
    begins = [(k - 1) // 2 for k in kernel]
    ends = [(k - 1) - b for k, b in zip(kernel, begins)]
    return begins + ends


def export_onnx(model, out_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, initializers = [], []

    def const(name, array):
        initializers.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32), name))
        return name

    def inputs_of(layer):
        node = layer._inbound_nodes[0]
        return [t._keras_history.operation.name for t in node.input_tensors]

    input_name = model.inputs[0]._keras_history.operation.name
    ranks = {input_name: 4}
    for layer in model.layers:
        kind, name = type(layer).__name__, layer.name
        if kind == "InputLayer":
            continue
        srcs = inputs_of(layer)
        rank = ranks[srcs[0]]
        ranks[name] = rank
        if kind == "Conv2D":
            cfg = layer.get_config()
            if cfg["data_format"] != "channels_last" or tuple(cfg["dilation_rate"]) != (1, 1) or cfg["groups"] != 1:
                raise ExportError(f"{name}: unsupported Conv2D configuration")
            kernel = layer.kernel.numpy() if hasattr(layer.kernel, "numpy") else np.asarray(layer.kernel)
            w = const(name + "/W", np.transpose(np.asarray(kernel), (3, 2, 0, 1)))  # HWIO -> OIHW
            conv_in = srcs + [w] + ([const(name + "/B", np.asarray(layer.bias))] if layer.use_bias else [])
            ksize, strides = list(cfg["kernel_size"]), list(cfg["strides"])
            attrs = {"kernel_shape": ksize, "strides": strides}
            if cfg["padding"] == "same":
                if strides == [1, 1]:
                    attrs["pads"] = same_pads(ksize)
                else:
                    attrs["auto_pad"] = "SAME_UPPER"
            elif cfg["padding"] != "valid":
                raise ExportError(f"{name}: padding {cfg['padding']}")
            conv_out = name if cfg["activation"] == "linear" else name + "/pre"
            nodes.append(helper.make_node("Conv", conv_in, [conv_out], name=name, **attrs))
            if cfg["activation"] == "relu":
                nodes.append(helper.make_node("Relu", [conv_out], [name]))
            elif cfg["activation"] != "linear":
                raise ExportError(f"{name}: activation {cfg['activation']}")
        elif kind == "BatchNormalization":
            axis = layer.axis if layer.axis >= 0 else rank + layer.axis
            if axis != rank - 1:
                raise ExportError(f"{name}: batch norm over axis {layer.axis} of a rank-{rank} tensor")
            channels = int(layer.moving_mean.shape[0])
            gamma = np.asarray(layer.gamma) if layer.scale else np.ones(channels)
            beta = np.asarray(layer.beta) if layer.center else np.zeros(channels)
            bn_in = srcs + [
                const(name + "/scale", gamma),
                const(name + "/bias", beta),
                const(name + "/mean", np.asarray(layer.moving_mean)),
                const(name + "/var", np.asarray(layer.moving_variance)),
            ]
            # The ONNX op normalises axis 1, which is the channel axis in NCHW and in [N, C] alike.
            nodes.append(helper.make_node("BatchNormalization", bn_in, [name], name=name, epsilon=float(layer.epsilon)))
        elif kind == "Activation":
            act = layer.get_config()["activation"]
            op = {"relu": "Relu", "linear": "Identity"}.get(act)
            if op is None:
                raise ExportError(f"{name}: activation {act}")
            nodes.append(helper.make_node(op, srcs, [name], name=name))
        elif kind == "ReLU":
            cfg = layer.get_config()
            if cfg.get("max_value") is not None or cfg.get("negative_slope", 0.0) != 0.0 or cfg.get("threshold", 0.0) != 0.0:
                raise ExportError(f"{name}: only a plain ReLU is supported")
            nodes.append(helper.make_node("Relu", srcs, [name], name=name))
        elif kind == "MaxPooling2D":
            cfg = layer.get_config()
            attrs = {"kernel_shape": list(cfg["pool_size"]), "strides": list(cfg["strides"])}
            if cfg["padding"] == "same":
                attrs["auto_pad"] = "SAME_UPPER"
            nodes.append(helper.make_node("MaxPool", srcs, [name], name=name, **attrs))
        elif kind == "Concatenate":
            axis = layer.axis if layer.axis >= 0 else rank + layer.axis
            if rank == 4:
                axis = {0: 0, 1: 2, 2: 3, 3: 1}[axis]  # NHWC -> NCHW
            nodes.append(helper.make_node("Concat", srcs, [name], name=name, axis=axis))
        elif kind == "Lambda":
            scale = (layer.arguments or {}).get("scale")
            if scale is None:
                raise ExportError(f"{name}: only the residual scaling Lambda is supported")
            nodes.append(helper.make_node("Mul", srcs + [const(name + "/scale", np.float32(scale))], [name], name=name))
        elif kind == "Add":
            nodes.append(helper.make_node("Sum", srcs, [name], name=name))
        elif kind == "GlobalAveragePooling2D":
            if layer.keepdims:
                raise ExportError(f"{name}: keepdims")
            nodes.append(helper.make_node("GlobalAveragePool", srcs, [name + "/4d"], name=name))
            nodes.append(helper.make_node("Flatten", [name + "/4d"], [name], axis=1))
            ranks[name] = 2
        elif kind == "Dropout":
            nodes.append(helper.make_node("Identity", srcs, [name], name=name))  # inference: none
        elif kind == "Flatten":
            if rank != 2:
                # NHWC and NCHW flatten in different orders; FaceNet never flattens a feature map.
                raise ExportError(f"{name}: flattening a rank-{rank} tensor")
            nodes.append(helper.make_node("Identity", srcs, [name], name=name))
        elif kind == "Dense":
            if rank != 2:
                raise ExportError(f"{name}: Dense on a rank-{rank} tensor")
            mm_out = name if not layer.use_bias and layer.get_config()["activation"] == "linear" else name + "/mm"
            nodes.append(helper.make_node("MatMul", srcs + [const(name + "/W", np.asarray(layer.kernel))], [mm_out], name=name))
            last = mm_out
            if layer.use_bias:
                last_b = name if layer.get_config()["activation"] == "linear" else name + "/b"
                nodes.append(helper.make_node("Add", [last, const(name + "/B", np.asarray(layer.bias))], [last_b]))
                last = last_b
            act = layer.get_config()["activation"]
            if act == "relu":
                nodes.append(helper.make_node("Relu", [last], [name]))
            elif act != "linear":
                raise ExportError(f"{name}: activation {act}")
        else:
            raise ExportError(f"{name}: layer type {kind} is not supported")

    output = model.outputs[0]._keras_history.operation.name
    dimension = int(model.outputs[0].shape[-1])
    nodes.append(helper.make_node("Identity", [output], ["embedding"]))
    graph = helper.make_graph(
        nodes,
        model.name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, INPUT_SIZE, INPUT_SIZE])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", dimension])],
        initializers,
    )
    # The graph's own input is called "input": rename the Keras input layer's output to it.
    for node in graph.node:
        for i, src in enumerate(node.input):
            if src == input_name:
                node.input[i] = "input"
    onnx_model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="attendansee-export_facenet"
    )
    onnx_model.ir_version = 8  # readable by every ONNX Runtime the project supports
    onnx.checker.check_model(onnx_model, full_check=True)
    onnx.save(onnx_model, out_path)


# --------------------------------------------------------------------------------------------


def check_weight_file_round_trip(model, dimension, nhwc):
    """Writes the model's weights as a legacy Keras .h5 (the format of DeepFace's files), loads it
    into a fresh model through the same path as --weights, and requires identical outputs: so the
    by-name loading of the upstream files is exercised without downloading them."""
    import h5py
    from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group

    # A private directory: two exports running side by side (the test suite does) must not share it.
    with tempfile.TemporaryDirectory(prefix="export_facenet-") as directory:
        path = os.path.join(directory, "weights.h5")
        with h5py.File(path, "w") as f:
            save_weights_to_hdf5_group(f, model)
        fresh = build_model(dimension)
        load_upstream_weights(fresh, path)
    if not np.array_equal(np.asarray(fresh(nhwc, training=False)), np.asarray(model(nhwc, training=False))):
        raise ExportError("weights written as .h5 and loaded by name give a different model")


def check(model, out_path, seed):
    """Largest |Keras - ONNX| over a batch of random inputs in [0, 1] (DeepFace's "base" scaling)."""
    import onnxruntime as ort

    rng = np.random.default_rng(seed + 1)
    nhwc = rng.uniform(0.0, 1.0, (4, INPUT_SIZE, INPUT_SIZE, 3)).astype(np.float32)
    expected = np.asarray(model(nhwc, training=False))
    # A network whose activations died would give every input the same output and compare
    # equal vacuously: the embeddings of different inputs must differ clearly.
    spread = float(np.max(np.abs(expected - expected[0:1])))
    if not spread > 1e-2:
        raise ExportError(f"the Keras model gives (nearly) the same output for every input ({spread})")
    check_weight_file_round_trip(model, int(expected.shape[-1]), nhwc)
    session = ort.InferenceSession(out_path, providers=["CPUExecutionProvider"])
    actual = session.run(["embedding"], {"input": np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2))})[0]
    if actual.shape != expected.shape:
        raise ExportError(f"ONNX output shape {actual.shape} differs from Keras' {expected.shape}")
    return float(np.max(np.abs(actual - expected))), float(np.max(np.abs(expected)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--weights", help="DeepFace's facenet_weights.h5 / facenet512_weights.h5")
    source.add_argument("--random-weights", type=int, metavar="SEED", help="seeded random weights (tests)")
    parser.add_argument("--out", required=True, help="ONNX file to write")
    parser.add_argument("--check", action="store_true", help=f"compare with Keras; fail unless < {TOLERANCE}")
    args = parser.parse_args()

    try:
        model = build_model(VARIANTS[args.variant])
        if args.weights is not None:
            load_upstream_weights(model, args.weights)
        else:
            randomize_weights(model, args.random_weights)
        export_onnx(model, args.out)
        with open(args.out, "rb") as f:
            print(f"sha256 {hashlib.sha256(f.read()).hexdigest()}")
        if args.check:
            diff, scale = check(model, args.out, args.random_weights or 0)
            print(f"max_abs_diff {diff:.3g} (largest |output| {scale:.3g})")
            if not diff < TOLERANCE:  # also fails on NaN
                print(f"export_facenet: the ONNX output differs from Keras' by {diff} >= {TOLERANCE}", file=sys.stderr)
                return 1
    except (ExportError, OSError) as e:
        print(f"export_facenet: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
