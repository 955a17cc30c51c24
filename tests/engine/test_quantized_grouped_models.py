"""Grouped and depthwise QDQ convolutions, QDQ Gemm classifiers and QLinearConv with its bias
run on the integer kernels (aiov.QuantizedConv with group > 1, aiov.QuantizedMatMul), not as
f32 convolutions of dequantized values; checked against onnxruntime's own results: to f32
rounding where a product is dequantized, within one quantum where it is requantized, for
models written with onnx.helper and for models quantized by onnxruntime's quantize_static."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from graph_checks import aiov_outputs, node_types  # noqa: E402
from graph_checks import onnxruntime_outputs as ort_outputs  # noqa: E402

RNG = np.random.default_rng(23)
FLOAT_CONVS = ("Convolution", "GroupConvolution", "aiov.FusedConv")


def model(nodes, inputs, initializers, opset=13):
    graph = helper.make_graph(
        nodes, "q", inputs, [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], initializers
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = 8
    return proto


def qdq_input(x_zero):
    """The activation's QuantizeLinear -> DequantizeLinear pair (quantize_static's form)."""
    inits = [numpy_helper.from_array(np.float32(0.04), "x_scale"), numpy_helper.from_array(x_zero, "x_zero")]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero"], ["xd"]),
    ]
    return nodes, inits


def qdq_weights(w, per_channel, bias_count, axis=0):
    """DequantizeLinear of constant s8 weights (per tensor or per channel along `axis`) and of
    an s32 bias scaled by x_scale x w_scale, as quantize_static writes them."""
    channels = w.shape[axis]
    w_scale = RNG.uniform(0.001, 0.01, (channels,) if per_channel else ()).astype(np.float32)
    inits = [
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(w_scale, "w_scale"),
        numpy_helper.from_array(np.zeros((channels,) if per_channel else (), np.int8), "w_zero"),
        numpy_helper.from_array(RNG.integers(-500, 500, bias_count).astype(np.int32), "b"),
        numpy_helper.from_array(np.broadcast_to(np.float32(0.04) * w_scale, (bias_count,)).copy(), "b_scale"),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zero"], ["wd"], axis=axis),
        helper.make_node("DequantizeLinear", ["b", "b_scale"], ["bd"], axis=0),
    ]
    return nodes, inits


@pytest.mark.parametrize("x_zero", [np.uint8(120), np.int8(-5)])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize(
    "channels,outputs,group,stride",
    [(24, 24, 24, 1), (40, 40, 40, 2), (16, 32, 16, 1), (32, 48, 8, 1), (32, 32, 4, 2)],
    ids=["depthwise", "depthwise-s2", "multiplier-2", "groups-8", "groups-4-s2"],
)
def test_qdq_grouped_conv_runs_as_an_integer_convolution(channels, outputs, group, stride, per_channel, x_zero):
    w = RNG.integers(-127, 128, (outputs, channels // group, 3, 3)).astype(np.int8)
    in_nodes, in_inits = qdq_input(x_zero)
    w_nodes, w_inits = qdq_weights(w, per_channel, outputs)
    conv = helper.make_node("Conv", ["xd", "wd", "bd"], ["out"], pads=[1] * 4, strides=[stride] * 2, group=group)
    shape = [2, channels, 11, 11]
    proto = model(
        in_nodes + w_nodes + [conv], [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)], in_inits + w_inits
    )
    feeds = {"x": RNG.standard_normal(shape).astype(np.float32) * 2}
    got, want = aiov_outputs(proto, feeds)[0], ort_outputs(proto, feeds)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.max(np.abs(want)))
    types = node_types(proto, feeds)
    assert "aiov.QuantizedConv" in types and not set(FLOAT_CONVS) & set(types)


@pytest.mark.parametrize("trans_b", [True, False])
@pytest.mark.parametrize("per_channel", [False, True])
def test_qdq_gemm_classifier_runs_as_an_integer_product(per_channel, trans_b):
    k, n = 48, 10
    w = RNG.integers(-127, 128, (n, k) if trans_b else (k, n)).astype(np.int8)
    in_nodes, in_inits = qdq_input(np.uint8(128))
    w_nodes, w_inits = qdq_weights(w, per_channel, n, axis=0 if trans_b else 1)
    gemm = helper.make_node("Gemm", ["xd", "wd", "bd"], ["out"], transB=int(trans_b))
    proto = model(
        in_nodes + w_nodes + [gemm], [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, k])], in_inits + w_inits
    )
    feeds = {"x": RNG.standard_normal((3, k)).astype(np.float32) * 2}
    got, want = aiov_outputs(proto, feeds)[0], ort_outputs(proto, feeds)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.max(np.abs(want)))
    types = node_types(proto, feeds)
    assert "aiov.QuantizedMatMul" in types and "MatMul" not in types and "aiov.FusedMatMul" not in types
    assert "Add" not in types  # the bias is the product's


@pytest.mark.parametrize("group", [1, 6, 12])
def test_qlinear_conv_with_bias_is_within_one_quantum(group):
    c = o = 12
    x = RNG.integers(0, 256, (1, c, 9, 9)).astype(np.uint8)
    w = RNG.integers(-127, 128, (o, c // group, 3, 3)).astype(np.int8)
    w_scale = RNG.uniform(0.001, 0.01, o).astype(np.float32)
    inits = [
        numpy_helper.from_array(np.float32(0.05), "x_scale"),
        numpy_helper.from_array(np.uint8(100), "x_zero"),
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(w_scale, "w_scale"),
        numpy_helper.from_array(np.zeros(o, np.int8), "w_zero"),
        numpy_helper.from_array(np.float32(0.02), "y_scale"),
        numpy_helper.from_array(np.uint8(128), "y_zero"),
        numpy_helper.from_array(RNG.integers(-3000, 3000, o).astype(np.int32), "b"),
    ]
    inputs = ["x", "x_scale", "x_zero", "w", "w_scale", "w_zero", "y_scale", "y_zero", "b"]
    node = helper.make_node("QLinearConv", inputs, ["y"], pads=[1] * 4, group=group)
    graph = helper.make_graph(
        [node],
        "q",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, None)],
        inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    proto.ir_version = 8
    feeds = {"x": x}
    got, want = aiov_outputs(proto, feeds)[0], ort_outputs(proto, feeds)[0]
    assert got.dtype == np.uint8 and np.max(np.abs(got.astype(int) - want.astype(int))) <= 1
    assert "aiov.QuantizedConv" in node_types(proto, feeds)


def output_scale(proto):
    """The scale of the DequantizeLinear writing the model's output: one quantum of it."""
    out = proto.graph.output[0].name
    dq = next(n for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.output[0] == out)
    scale = next(t for t in proto.graph.initializer if t.name == dq.input[1])
    return float(numpy_helper.to_array(scale))


@pytest.mark.parametrize("kind", ["mobilenet", "resnext"])
def test_quantize_static_model_matches_onnxruntime(kind):
    pytest.importorskip("onnxruntime.quantization")
    import model_builders as zoo

    if kind == "mobilenet":  # inverted residuals: 1x1 expand, 3x3 depthwise (s1, s2), 1x1 project
        float_model = zoo.mobilenet_v2(settings=((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2)), classes=10)
    else:  # a ResNeXt-style 3x3 conv of 8 groups after a dense stem
        g = zoo.GraphBuilder(5)
        y = g.conv_bn("x", 3, 32, 3, 2)
        y = g.conv_bn(y, 32, 64, 3, 1, group=8)
        y = g.op("GlobalAveragePool", [y])
        g.dense(g.op("Flatten", [y]), 64, 10)
        float_model = g.model([zoo.image_input(3, None)])
    image = lambda seed: {"x": np.random.default_rng(seed).standard_normal((1, 3, 48, 48)).astype(np.float32)}  # noqa: E731
    proto = zoo.quantized(float_model, [image(seed) for seed in range(4)])
    feeds = image(10)
    got, want = aiov_outputs(proto, feeds)[0], ort_outputs(proto, feeds)[0]
    assert np.max(np.abs(got - want)) <= 1.01 * output_scale(proto)
    types = node_types(proto, feeds)
    assert not set(FLOAT_CONVS) & set(types) and "MatMul" not in types and "aiov.FusedMatMul" not in types
    assert types.count("aiov.QuantizedConv") == sum(n.op_type == "Conv" for n in proto.graph.node)
