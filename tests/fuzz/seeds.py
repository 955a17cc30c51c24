"""Seed models for the fuzzer, built in code (nothing downloaded): small ONNX graphs that
between them use the ops whose attributes and shape inputs are easiest to get wrong, a few
tests/model_builders.py networks at toy sizes, OpenVINO IR written by ``aiov.save_model``
from every seed the IR writer can express, and compiled-model blobs exported from them."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT
I64 = TensorProto.INT64


def _model(nodes, inputs, outputs, inits=(), opset=17, name="seed"):
    graph = helper.make_graph(nodes, name, inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _in(name, shape, dtype=F):
    return helper.make_tensor_value_info(name, dtype, shape)


def _out(name="y", dtype=F):
    return helper.make_tensor_value_info(name, dtype, None)


def _init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def _rng_weight(rng, *shape):
    return (rng.standard_normal(shape) * 0.5).astype(np.float32)


def onnx_seeds() -> dict:
    """name -> ModelProto."""
    rng = np.random.default_rng(0)
    n = helper.make_node
    seeds = {}
    seeds["add_relu"] = _model(
        [n("Add", ["x", "b"], ["t"]), n("Relu", ["t"], ["y"])],
        [_in("x", [2, 3])],
        [_out()],
        [_init("b", _rng_weight(rng, 3))],
    )
    seeds["matmul_softmax"] = _model(
        [n("MatMul", ["x", "w"], ["t"]), n("Softmax", ["t"], ["y"], axis=-1)],
        [_in("x", ["n", 4])],
        [_out()],
        [_init("w", _rng_weight(rng, 4, 5))],
    )
    seeds["gemm"] = _model(
        [n("Gemm", ["x", "w", "c"], ["y"], alpha=0.5, beta=2.0, transB=1)],
        [_in("x", [2, 4])],
        [_out()],
        [_init("w", _rng_weight(rng, 3, 4)), _init("c", _rng_weight(rng, 3))],
    )
    seeds["conv_pool"] = _model(
        [
            n("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1], group=1),
            n("MaxPool", ["c"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
            n("AveragePool", ["p"], ["y"], kernel_shape=[2, 2], strides=[1, 1], pads=[0, 0, 1, 1]),
        ],
        [_in("x", [1, 2, 6, 6])],
        [_out()],
        [_init("w", _rng_weight(rng, 4, 2, 3, 3)), _init("b", _rng_weight(rng, 4))],
    )
    seeds["conv_transpose"] = _model(
        [
            n(
                "ConvTranspose",
                ["x", "w"],
                ["y"],
                kernel_shape=[3, 3],
                strides=[2, 2],
                pads=[1, 1, 1, 1],
                output_padding=[1, 1],
                group=2,
                dilations=[1, 1],
            )
        ],
        [_in("x", [1, 4, 3, 3])],
        [_out()],
        [_init("w", _rng_weight(rng, 4, 1, 3, 3))],
    )
    seeds["grouped_conv_bn"] = _model(
        [
            n("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=2),
            n("BatchNormalization", ["c", "s", "bb", "m", "v"], ["y"], epsilon=1e-5),
        ],
        [_in("x", [1, 4, 5, 5])],
        [_out()],
        [
            _init("w", _rng_weight(rng, 4, 2, 3, 3)),
            _init("s", np.ones(4, np.float32)),
            _init("bb", np.zeros(4, np.float32)),
            _init("m", np.zeros(4, np.float32)),
            _init("v", np.ones(4, np.float32)),
        ],
    )
    seeds["reshape_transpose"] = _model(
        [n("Reshape", ["x", "shape"], ["r"]), n("Transpose", ["r"], ["y"], perm=[2, 0, 1])],
        [_in("x", [2, 3, 4])],
        [_out()],
        [_init("shape", np.array([4, 3, 2], np.int64))],
    )
    seeds["expand_tile"] = _model(
        [n("Expand", ["x", "shape"], ["e"]), n("Tile", ["e", "reps"], ["y"])],
        [_in("x", [3, 1])],
        [_out()],
        [_init("shape", np.array([2, 3, 4], np.int64)), _init("reps", np.array([1, 2, 1], np.int64))],
    )
    seeds["constant_of_shape"] = _model(
        [
            n("Shape", ["x"], ["s"]),
            n("ConstantOfShape", ["s"], ["c"], value=numpy_helper.from_array(np.array([1.5], np.float32))),
            n("Add", ["c", "x"], ["y"]),
        ],
        [_in("x", [2, 3])],
        [_out()],
    )
    seeds["pad_slice"] = _model(
        [
            n("Pad", ["x", "pads", "v"], ["p"], mode="constant"),
            n("Slice", ["p", "starts", "ends", "axes", "steps"], ["y"]),
        ],
        [_in("x", [2, 3])],
        [_out()],
        [
            _init("pads", np.array([1, 0, 1, 2], np.int64)),
            _init("v", np.array(0.5, np.float32)),
            _init("starts", np.array([0, 1], np.int64)),
            _init("ends", np.array([3, 5], np.int64)),
            _init("axes", np.array([0, 1], np.int64)),
            _init("steps", np.array([1, 2], np.int64)),
        ],
    )
    seeds["gather_concat_split"] = _model(
        [
            n("Gather", ["x", "idx"], ["g"], axis=1),
            n("Concat", ["g", "x"], ["c"], axis=1),
            n("Split", ["c", "parts"], ["s0", "s1"], axis=1),
            n("Mul", ["s0", "s1"], ["y"]),
        ],
        [_in("x", [2, 4])],
        [_out()],
        [_init("idx", np.array([3, 0, 1, 2], np.int64)), _init("parts", np.array([4, 4], np.int64))],
    )
    seeds["reduce_arg_topk"] = _model(
        [
            n("ReduceSum", ["x", "axes"], ["r"], keepdims=1),
            n("ArgMax", ["x"], ["a"], axis=1, keepdims=0),
            n("TopK", ["x", "k"], ["v", "i"], axis=-1),
            n("Add", ["v", "r"], ["y"]),
        ],
        [_in("x", [2, 5])],
        [_out(), _out("a", I64), _out("i", I64)],
        [_init("axes", np.array([1], np.int64)), _init("k", np.array([2], np.int64))],
    )
    seeds["range_cumsum"] = _model(
        [
            n("Range", ["start", "limit", "delta"], ["r"]),
            n("CumSum", ["r", "axis"], ["c"]),
            n("Add", ["c", "x"], ["y"]),
        ],
        [_in("x", [5])],
        [_out()],
        [
            _init("start", np.array(0, np.float32)),
            _init("limit", np.array(5, np.float32)),
            _init("delta", np.array(1, np.float32)),
            _init("axis", np.array(0, np.int64)),
        ],
    )
    seeds["norms"] = _model(
        [
            n("LayerNormalization", ["x", "g", "b"], ["l"], axis=-1, epsilon=1e-5),
            n("InstanceNormalization", ["l", "s", "bb"], ["i"], epsilon=1e-5),
            n("LRN", ["i"], ["y"], size=3, alpha=1e-4, beta=0.75, bias=1.0),
        ],
        [_in("x", [1, 3, 4])],
        [_out()],
        [
            _init("g", np.ones(4, np.float32)),
            _init("b", np.zeros(4, np.float32)),
            _init("s", np.ones(3, np.float32)),
            _init("bb", np.zeros(3, np.float32)),
        ],
    )
    seeds["resize_flatten"] = _model(
        [n("Resize", ["x", "", "scales"], ["r"], mode="nearest"), n("Flatten", ["r"], ["y"], axis=2)],
        [_in("x", [1, 1, 2, 2])],
        [_out()],
        [_init("scales", np.array([1, 1, 2, 2], np.float32))],
    )
    seeds["squeeze_unsqueeze_where"] = _model(
        [
            n("Unsqueeze", ["x", "ax"], ["u"]),
            n("Squeeze", ["u", "ax"], ["s"]),
            n("Greater", ["s", "zero"], ["m"]),
            n("Where", ["m", "s", "zero"], ["w"]),
            n("Clip", ["w", "lo", "hi"], ["y"]),
        ],
        [_in("x", [2, 3])],
        [_out()],
        [
            _init("ax", np.array([0], np.int64)),
            _init("zero", np.array(0, np.float32)),
            _init("lo", np.array(-1, np.float32)),
            _init("hi", np.array(1, np.float32)),
        ],
    )
    seeds["einsum_cast"] = _model(
        [
            n("Einsum", ["x", "w"], ["e"], equation="ij,jk->ik"),
            n("Cast", ["e"], ["c"], to=TensorProto.INT32),
            n("Cast", ["c"], ["y"], to=TensorProto.FLOAT),
        ],
        [_in("x", [2, 3])],
        [_out()],
        [_init("w", _rng_weight(rng, 3, 4))],
    )
    seeds["elementwise_chain"] = _model(
        [
            n("Sigmoid", ["x"], ["a"]),
            n("Tanh", ["a"], ["b"]),
            n("LeakyRelu", ["b"], ["c"], alpha=0.1),
            n("Elu", ["c"], ["d"], alpha=1.0),
            n("HardSigmoid", ["d"], ["e"], alpha=0.2, beta=0.5),
            n("Pow", ["e", "two"], ["f"]),
            n("Div", ["f", "two"], ["g"]),
            n("Sqrt", ["g"], ["h"]),
            n("Exp", ["h"], ["y"]),
        ],
        [_in("x", [2, 3])],
        [_out()],
        [_init("two", np.array(2, np.float32))],
    )
    seeds["global_pool_gemm"] = _model(
        [n("GlobalAveragePool", ["x"], ["g"]), n("Flatten", ["g"], ["f"]), n("Gemm", ["f", "w"], ["y"], transB=1)],
        [_in("x", [1, 3, 4, 4])],
        [_out()],
        [_init("w", _rng_weight(rng, 2, 3))],
    )
    seeds["log_softmax_mean"] = _model(
        [
            n("LogSoftmax", ["x"], ["l"], axis=1),
            n("Mean", ["l", "x"], ["m"]),
            n("ReduceMean", ["m"], ["y"], axes=[1], keepdims=0),
        ],
        [_in("x", [2, 3])],
        [_out()],
        opset=13,
    )
    # Value-keyed shape inputs: the shape comes from what a client sends.
    seeds["shape_from_input"] = _model(
        [n("Reshape", ["x", "shape"], ["r"]), n("Expand", ["r", "eshape"], ["y"])],
        [_in("x", [6]), _in("shape", [2], I64), _in("eshape", [2], I64)],
        [_out()],
    )
    seeds["constant_of_shape_input"] = _model(
        [n("ConstantOfShape", ["shape"], ["c"]), n("ReduceSum", ["c"], ["y"], keepdims=0)],
        [_in("shape", [3], I64)],
        [_out()],
    )
    seeds.update(_quantized_seeds(rng))
    seeds.update(_recent_op_seeds(rng))
    try:
        import sys

        sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))
        import model_builders as model_zoo

        seeds["zoo_mlp"] = model_zoo.mlp((8, 16, 4))
        seeds["zoo_conv_stack"] = model_zoo.conv_stack((3, 4, 8), classes=3)
        seeds["zoo_mobilenet"] = model_zoo.mobilenet_v2([(1, 8, 1, 1), (6, 8, 1, 2)], classes=3)
        seeds["zoo_bert"] = model_zoo.bert_encoder(hidden=16, heads=2, layers=1)
    except Exception:  # a zoo builder changed its signature: the hand-built seeds remain
        pass
    return seeds


U8 = TensorProto.UINT8
I8 = TensorProto.INT8


def _quantized_seeds(rng) -> dict:
    """The int8 paths: QDQ pairs around MatMul and Conv (folded into the integer kernels),
    QLinearConv/QLinearMatMul, ConvInteger/MatMulInteger and DynamicQuantizeLinear, with
    per-tensor and per-channel scales and zero points for the mutators to make hostile."""
    n = helper.make_node
    seeds = {}
    seeds["qdq_matmul"] = _model(
        [
            n("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
            n("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
            n("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=1),
            n("MatMul", ["xd", "wd"], ["y"]),
        ],
        [_in("x", [2, 4])],
        [_out()],
        [
            _init("xs", np.float32(0.05)),
            _init("xz", np.uint8(128)),
            _init("w", rng.integers(-100, 100, (4, 3)).astype(np.int8)),
            _init("ws", np.array([0.01, 0.02, 0.03], np.float32)),
            _init("wz", np.zeros(3, np.int8)),
        ],
        opset=13,
    )
    seeds["qdq_conv"] = _model(
        [
            n("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
            n("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
            n("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=0),
            n("DequantizeLinear", ["b", "bs"], ["bd"], axis=0),
            n("Conv", ["xd", "wd", "bd"], ["y"], pads=[1, 1, 1, 1], strides=[2, 2]),
        ],
        [_in("x", [1, 2, 5, 5])],
        [_out()],
        [
            _init("xs", np.float32(0.05)),
            _init("xz", np.uint8(100)),
            _init("w", rng.integers(-100, 100, (3, 2, 3, 3)).astype(np.int8)),
            _init("ws", np.array([0.01, 0.02, 0.03], np.float32)),
            _init("wz", np.zeros(3, np.int8)),
            _init("b", np.array([5, -7, 100], np.int32)),
            _init("bs", np.array([0.0005, 0.001, 0.0015], np.float32)),
        ],
        opset=13,
    )
    seeds["qlinear_conv"] = _model(
        [
            n(
                "QLinearConv",
                ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"],
                ["y"],
                kernel_shape=[3, 3],
                pads=[1, 1, 1, 1],
                group=1,
            )
        ],
        [_in("x", [1, 2, 4, 4], U8)],
        [_out("y", U8)],
        [
            _init("xs", np.float32(0.1)),
            _init("xz", np.uint8(2)),
            _init("w", rng.integers(0, 255, (2, 2, 3, 3)).astype(np.uint8)),
            _init("ws", np.array([0.01, 0.02], np.float32)),
            _init("wz", np.array([128, 120], np.uint8)),
            _init("ys", np.float32(0.5)),
            _init("yz", np.uint8(10)),
            _init("b", np.array([3, -4], np.int32)),
        ],
        opset=13,
    )
    seeds["qlinear_matmul"] = _model(
        [n("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"])],
        [_in("a", [2, 4], U8)],
        [_out("y", U8)],
        [
            _init("as", np.float32(0.1)),
            _init("az", np.uint8(1)),
            _init("b", rng.integers(0, 255, (4, 3)).astype(np.uint8)),
            _init("bs", np.float32(0.02)),
            _init("bz", np.uint8(128)),
            _init("ys", np.float32(0.3)),
            _init("yz", np.uint8(5)),
        ],
        opset=13,
    )
    seeds["conv_integer"] = _model(
        [n("ConvInteger", ["x", "w", "xz", "wz"], ["y"], pads=[1, 1, 1, 1], strides=[1, 2])],
        [_in("x", [1, 2, 4, 4], U8)],
        [_out("y", TensorProto.INT32)],
        [
            _init("w", rng.integers(0, 255, (3, 2, 2, 2)).astype(np.uint8)),
            _init("xz", np.uint8(3)),
            _init("wz", np.uint8(128)),
        ],
        opset=13,
    )
    seeds["dynamic_matmul_integer"] = _model(
        [
            n("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
            n("MatMulInteger", ["xq", "w", "xz", "wz"], ["i"]),
            n("Cast", ["i"], ["f"], to=F),
            n("Mul", ["xs", "ws"], ["s"]),
            n("Mul", ["f", "s"], ["y"]),
        ],
        [_in("x", [3, 4])],
        [_out()],
        [
            _init("w", rng.integers(-100, 100, (4, 5)).astype(np.int8)),
            _init("wz", np.zeros(5, np.int8)),
            _init("ws", np.float32(0.01)),
        ],
        opset=13,
    )
    return seeds


def _recent_op_seeds(rng) -> dict:
    """Ops with intricate shape and index arithmetic: DeformConv, AffineGrid into GridSample,
    MaxPool's indices into MaxUnpool, integer MaxPool, Scan with a loop body, and an ONNX
    function (its body inlined by the reader)."""
    n = helper.make_node
    seeds = {}
    seeds["deform_conv"] = _model(
        [n("DeformConv", ["x", "w", "offset", "b", "mask"], ["y"], kernel_shape=[2, 2], offset_group=1)],
        [_in("x", [1, 2, 4, 4]), _in("offset", [1, 8, 3, 3]), _in("mask", [1, 4, 3, 3])],
        [_out()],
        [_init("w", _rng_weight(rng, 2, 2, 2, 2)), _init("b", _rng_weight(rng, 2))],
        opset=19,
    )
    seeds["affine_grid_sample"] = _model(
        [
            n("AffineGrid", ["theta", "size"], ["grid"], align_corners=0),
            n("GridSample", ["x", "grid"], ["y"], mode="linear", padding_mode="border"),
        ],
        [_in("x", [1, 2, 3, 4]), _in("theta", [1, 2, 3])],
        [_out()],
        [_init("size", np.array([1, 2, 3, 4], np.int64))],
        opset=20,
    )
    seeds["max_unpool"] = _model(
        [
            n("MaxPool", ["x"], ["p", "idx"], kernel_shape=[2, 2], strides=[2, 2]),
            n("MaxUnpool", ["p", "idx", "shape"], ["y"], kernel_shape=[2, 2], strides=[2, 2]),
        ],
        [_in("x", [1, 2, 4, 4])],
        [_out()],
        [_init("shape", np.array([1, 2, 4, 4], np.int64))],
        opset=12,
    )
    seeds["integer_max_pool"] = _model(
        [n("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[1, 2], pads=[1, 1, 1, 1], dilations=[1, 1])],
        [_in("x", [1, 2, 5, 5], I8)],
        [_out("y", I8)],
        opset=12,
    )
    body = helper.make_graph(
        [n("Add", ["s_in", "row"], ["s_out"]), n("Mul", ["s_out", "row"], ["scan_out"])],
        "scan_body",
        [_in("s_in", [3]), _in("row", [3])],
        [_in("s_out", [3]), _in("scan_out", [3])],
    )
    seeds["scan"] = _model(
        [
            n(
                "Scan",
                ["init", "x"],
                ["final", "y"],
                body=body,
                num_scan_inputs=1,
                scan_input_axes=[0],
                scan_output_axes=[0],
                scan_input_directions=[1],
            )
        ],
        [_in("init", [3]), _in("x", [4, 3])],
        [_out("final"), _out()],
        opset=16,
    )
    # An op that exists only as an ONNX function body (the reader inlines it).
    graph = helper.make_graph(
        [n("FlexAttention", ["q", "k", "v"], ["y"], domain="ai.onnx.preview", scale=0.5)],
        "function_body_seed",
        [_in("q", [1, 2, 3, 4]), _in("k", [1, 2, 5, 4]), _in("v", [1, 2, 5, 4])],
        [_out()],
    )
    seeds["flex_attention"] = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 23), helper.make_opsetid("ai.onnx.preview", 1)]
    )
    return seeds


def ir_seeds(onnx_models: dict) -> dict:
    """name -> (xml text, bin bytes) for every ONNX seed the IR writer can express, plus
    an opset-built model. Written through aiov.save_model."""
    import aiov as ov
    import aiov.opset13 as ops

    models = {}
    for name, proto in onnx_models.items():
        try:
            models[name] = ov.Core().read_model(proto.SerializeToString())
        except Exception:
            continue
    x = ops.parameter([2, 4], np.float32, name="x")
    w = ops.constant(np.arange(20, dtype=np.float32).reshape(4, 5) / 10)
    shape = ops.constant(np.array([5, 2], np.int64))
    y = ops.softmax(ops.reshape(ops.relu(ops.matmul(x, w)), shape, special_zero=False), 1)
    models["opset_matmul_reshape"] = ov.Model(ops.convert(y, "f16"), [x], "opset_seed")
    a = ops.parameter([-1, 3], np.float32, name="a")
    b = ops.parameter([2, 3], np.float32, name="b")
    half = ops.convert(ops.constant(np.array([0.5, 2, 4], np.float16)), "f32")
    joined = ops.concat([ops.divide(a, half), ops.subtract(b, half)], 0)
    counts = ops.convert(ops.maximum(joined, ops.constant(np.float32(0))), "i64")
    models["opset_concat_divide"] = ov.Model(
        [ops.sigmoid(joined), ops.add(counts, ops.constant(np.int64(7)))], [a, b], "opset_seed2"
    )
    u = ops.parameter([4], np.uint8, name="u")
    wide = ops.multiply(ops.convert(u, "i32"), ops.constant(np.arange(4, dtype=np.int32)))
    models["opset_integers"] = ov.Model(ops.minimum(wide, ops.constant(np.int32(100))), [u], "opset_seed3")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in models.items():
            xml = os.path.join(tmp, name + ".xml")
            try:
                ov.save_model(model, xml)
                with open(xml, encoding="utf-8") as f:
                    text = f.read()
                binp = os.path.splitext(xml)[0] + ".bin"
                data = open(binp, "rb").read() if os.path.exists(binp) else b""
                ov.Core().read_model(xml)  # only seeds that read back
            except Exception:
                continue
            out[name] = (text, data)
    return out


# Each model exported as compiled plainly and with each half-precision hint (its optimized
# graph then holds the conversions to f16/bf16): "name", "name@f16", "name@bf16".
_EXPORT_BLOBS = """
import os, sys
import aiov as ov
for name in sorted(os.listdir(sys.argv[1])):
    if name.endswith('.onnx'):
        for hint in ('', 'f16', 'bf16'):
            config = {'INFERENCE_PRECISION_HINT': hint} if hint else None
            try:
                blob = ov.compile_model(os.path.join(sys.argv[1], name), 'CPU', config).export_model()
            except Exception:
                continue
            with open(os.path.join(sys.argv[1], name[:-5] + ('@' + hint if hint else '') + '.blob'), 'wb') as f:
                f.write(blob)
"""


def blob_seeds(onnx_models: dict) -> dict:
    """name (@hint) -> the blob ``export_model`` writes for every ONNX seed that compiles. Compiled in
    a child interpreter: the campaign's process forks per case, which needs a parent whose
    engine has started no worker threads."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, proto in onnx_models.items():
            with open(os.path.join(tmp, name + ".onnx"), "wb") as f:
                f.write(proto.SerializeToString())
        subprocess.run([sys.executable, "-c", _EXPORT_BLOBS, tmp], capture_output=True, timeout=600)
        for entry in sorted(os.listdir(tmp)):
            if entry.endswith(".blob"):
                with open(os.path.join(tmp, entry), "rb") as f:
                    out[entry[: -len(".blob")]] = f.read()
    return out
