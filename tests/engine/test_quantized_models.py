"""Quantized models run their products on the integer GEMM (aiov.QuantizedMatMul), not in
f32: MatMulInteger and QLinearMatMul read as it, and the dequantization onnxruntime's
quantize_dynamic writes after it (Cast, Mul by the scales, the bias Add) folded into its
merge. Results are checked against onnxruntime's own int8 results: exact for s32 outputs,
within one quantum where requantized, to f32 rounding where dequantized."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from graph_checks import aiov_outputs, node_types  # noqa: E402
from graph_checks import onnxruntime_outputs as ort_outputs  # noqa: E402

RNG = np.random.default_rng(22)


def model(nodes, inputs, outputs, initializers, opset=13):
    graph = helper.make_graph(nodes, "q", inputs, outputs, initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = 8
    return proto


@pytest.mark.parametrize("a_type,b_type", [("u8", "i8"), ("i8", "i8"), ("u8", "u8"), ("i8", "u8")])
@pytest.mark.parametrize("per_column", [False, True])
def test_matmul_integer_is_exact(a_type, b_type, per_column):
    types = {"u8": (TensorProto.UINT8, np.uint8), "i8": (TensorProto.INT8, np.int8)}
    (a_proto, a_np), b_np = types[a_type], types[b_type][1]

    def ints(dtype, shape):
        info = np.iinfo(dtype)
        return RNG.integers(info.min, info.max + 1, shape).astype(dtype)

    w = ints(b_np, (70, 37))
    inits = [
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(ints(b_np, (37,) if per_column else ()), "wz"),
    ]
    node = helper.make_node("MatMulInteger", ["a", "w", "az", "wz"], ["y"])
    proto = model(
        [node],
        [helper.make_tensor_value_info("a", a_proto, ["b", 5, 70]), helper.make_tensor_value_info("az", a_proto, [])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, None)],
        inits,
    )
    feeds = {"a": ints(a_np, (3, 5, 70)), "az": ints(a_np, ())}
    got = aiov_outputs(proto, feeds)[0]
    np.testing.assert_array_equal(got, ort_outputs(proto, feeds)[0])
    assert node_types(proto, feeds) == ["aiov.QuantizedMatMul"]


def test_qlinear_matmul_within_one_quantum():
    a = RNG.integers(0, 256, (4, 9, 48)).astype(np.uint8)
    w = RNG.integers(-128, 128, (48, 20)).astype(np.int8)
    inits = [
        numpy_helper.from_array(np.float32(0.02), "a_scale"),
        numpy_helper.from_array(np.uint8(131), "a_zero"),
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(RNG.uniform(0.001, 0.01, 20).astype(np.float32), "w_scale"),
        numpy_helper.from_array(np.zeros(20, np.int8), "w_zero"),
        numpy_helper.from_array(np.float32(0.3), "y_scale"),
        numpy_helper.from_array(np.uint8(120), "y_zero"),
    ]
    node = helper.make_node(
        "QLinearMatMul", ["a", "a_scale", "a_zero", "w", "w_scale", "w_zero", "y_scale", "y_zero"], ["y"]
    )
    proto = model(
        [node],
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [4, 9, 48])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, None)],
        inits,
    )
    feeds = {"a": a}
    got, want = aiov_outputs(proto, feeds)[0], ort_outputs(proto, feeds)[0]
    assert got.dtype == np.uint8 and got.shape == want.shape
    assert np.max(np.abs(got.astype(int) - want.astype(int))) <= 1
    assert "aiov.QuantizedMatMul" in node_types(proto, feeds)


@pytest.mark.parametrize("kind", ["mixed", "positive", "negative", "zeros"])
def test_dynamic_quantize_linear_matches_onnxruntime(kind):
    x = RNG.standard_normal((7, 300)).astype(np.float32) * 3
    x = {"mixed": x, "positive": np.abs(x) + 0.5, "negative": -np.abs(x), "zeros": np.zeros_like(x)}[kind]
    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "scale", "zero"])
    proto = model(
        [node],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [7, 300])],
        [
            helper.make_tensor_value_info("y", TensorProto.UINT8, None),
            helper.make_tensor_value_info("scale", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("zero", TensorProto.UINT8, None),
        ],
        [],
    )
    got, want = aiov_outputs(proto, {"x": x}), ort_outputs(proto, {"x": x})
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[2], want[2])
    # onnxruntime multiplies by the reciprocal of the scale: a tie may round the other way.
    assert np.max(np.abs(got[0].astype(int) - want[0].astype(int))) <= 1


def dynamic_layer(x, w, w_scale, bias, name):
    """What quantize_dynamic writes for MatMul + Add: DynamicQuantizeLinear, MatMulInteger,
    Cast, the scales' product, Mul, then the float model's Add."""
    nodes = [
        helper.make_node("DynamicQuantizeLinear", [x], [f"{name}_q", f"{name}_s", f"{name}_z"]),
        helper.make_node("MatMulInteger", [f"{name}_q", f"{name}_w", f"{name}_z", f"{name}_wz"], [f"{name}_i"]),
        helper.make_node("Cast", [f"{name}_i"], [f"{name}_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", [f"{name}_s", f"{name}_ws"], [f"{name}_scale"]),
        helper.make_node("Mul", [f"{name}_f", f"{name}_scale"], [f"{name}_y"]),
        helper.make_node("Add", [f"{name}_y", f"{name}_b"], [f"{name}_out"]),
    ]
    inits = [
        numpy_helper.from_array(w, f"{name}_w"),
        numpy_helper.from_array(np.zeros(w_scale.shape, np.int8), f"{name}_wz"),
        numpy_helper.from_array(w_scale, f"{name}_ws"),
        numpy_helper.from_array(bias, f"{name}_b"),
    ]
    return nodes, inits, f"{name}_out"


@pytest.mark.parametrize("per_column", [False, True])
def test_dynamic_quantization_pattern_folds_into_the_product(per_column):
    w1 = RNG.integers(-127, 128, (32, 40)).astype(np.int8)
    w2 = RNG.integers(-127, 128, (40, 8)).astype(np.int8)
    s1 = RNG.uniform(0.001, 0.01, (40,) if per_column else ()).astype(np.float32)
    s2 = RNG.uniform(0.001, 0.01, (8,) if per_column else ()).astype(np.float32)
    n1, i1, y1 = dynamic_layer("x", w1, s1, RNG.standard_normal(40).astype(np.float32), "l1")
    relu = helper.make_node("Relu", [y1], ["h"])
    n2, i2, y2 = dynamic_layer("h", w2, s2, RNG.standard_normal(8).astype(np.float32), "l2")
    proto = model(
        n1 + [relu] + n2,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 32])],
        [helper.make_tensor_value_info(y2, TensorProto.FLOAT, None)],
        i1 + i2,
    )
    feeds = {"x": RNG.standard_normal((6, 32)).astype(np.float32)}
    got, want = aiov_outputs(proto, feeds)[0], ort_outputs(proto, feeds)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.max(np.abs(want)))
    types = node_types(proto, feeds)
    # Per layer: quantize x, the scales' product, the product writing f32 with bias (and the
    # first one the Relu after it).
    layer = ["aiov.DynamicQuantize", "Multiply", "aiov.QuantizedMatMul"]
    assert sorted(types) == sorted(layer + layer)


def test_quantize_dynamic_model_matches_onnxruntime():
    pytest.importorskip("onnxruntime.quantization")
    import model_builders as zoo

    proto = zoo.quantized(zoo.mlp((64, 96, 96, 10)))
    name = proto.graph.input[0].name
    feeds = {name: RNG.standard_normal((16, 64)).astype(np.float32)}
    got, want = aiov_outputs(proto, feeds)[0], ort_outputs(proto, feeds)[0]
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * np.max(np.abs(want)))
    types = node_types(proto, feeds)
    assert types.count("aiov.QuantizedMatMul") == 3 and "MatMul" not in types


@pytest.mark.parametrize("per_column", [False, True])
def test_qdq_matmul_runs_as_an_integer_product(per_column):
    # quantize_static's QDQ form: Q -> DQ on the activations, DQ on constant int8 weights.
    n = 24
    inits = [
        numpy_helper.from_array(np.float32(0.05), "x_scale"),
        numpy_helper.from_array(np.uint8(128), "x_zero"),
        numpy_helper.from_array(RNG.integers(-127, 128, (40, n)).astype(np.int8), "w"),
        numpy_helper.from_array(RNG.uniform(0.001, 0.01, (n,) if per_column else ()).astype(np.float32), "w_scale"),
        numpy_helper.from_array(np.zeros((n,) if per_column else (), np.int8), "w_zero"),
        numpy_helper.from_array(RNG.standard_normal(n).astype(np.float32), "bias"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zero"], ["wd"], axis=1),
        helper.make_node("MatMul", ["xd", "wd"], ["y"]),
        helper.make_node("Add", ["y", "bias"], ["out"]),
    ]
    proto = model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 7, 40])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        inits,
    )
    feeds = {"x": RNG.standard_normal((3, 7, 40)).astype(np.float32) * 2}
    got, want = aiov_outputs(proto, feeds)[0], ort_outputs(proto, feeds)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.max(np.abs(want)))
    types = node_types(proto, feeds)
    assert "aiov.QuantizedMatMul" in types and "MatMul" not in types
    assert "Add" not in types  # the bias is the product's


@pytest.mark.parametrize("x_zero", [np.uint8(120), np.int8(-5)])  # quantize_static's QUInt8 and QInt8
@pytest.mark.parametrize("per_channel", [False, True])
def test_qdq_conv_runs_as_an_integer_convolution(per_channel, x_zero):
    o = 12
    w = RNG.integers(-127, 128, (o, 5, 3, 3)).astype(np.int8)
    w_scale = RNG.uniform(0.001, 0.01, (o,) if per_channel else ()).astype(np.float32)
    bias = RNG.integers(-500, 500, o).astype(np.int32)
    inits = [
        numpy_helper.from_array(np.float32(0.04), "x_scale"),
        numpy_helper.from_array(x_zero, "x_zero"),
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(w_scale, "w_scale"),
        numpy_helper.from_array(np.zeros((o,) if per_channel else (), np.int8), "w_zero"),
        numpy_helper.from_array(bias, "b"),
        numpy_helper.from_array((np.float32(0.04) * w_scale).astype(np.float32), "b_scale"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zero"], ["wd"], axis=0),
        helper.make_node("DequantizeLinear", ["b", "b_scale"], ["bd"], axis=0),
        helper.make_node("Conv", ["xd", "wd", "bd"], ["y"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["y"], ["out"]),
    ]
    proto = model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, 13, 13])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        inits,
    )
    feeds = {"x": RNG.standard_normal((2, 5, 13, 13)).astype(np.float32) * 2}
    got, want = aiov_outputs(proto, feeds)[0], ort_outputs(proto, feeds)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.max(np.abs(want)))
    types = node_types(proto, feeds)
    assert "aiov.QuantizedConv" in types and "aiov.FusedConv" not in types and "Convolution" not in types
    assert "aiov.Quantize" in types and "Round" not in types


def test_conv_integer_runs_on_the_integer_kernel():
    x = RNG.integers(0, 256, (1, 4, 9, 9)).astype(np.uint8)
    w = RNG.integers(-128, 128, (6, 4, 3, 3)).astype(np.int8)
    node = helper.make_node("ConvInteger", ["x", "w", "xz"], ["y"], pads=[1, 1, 1, 1])
    proto = model(
        [node],
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 4, 9, 9])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.uint8(7), "xz")],
    )
    feeds = {"x": x}
    np.testing.assert_array_equal(aiov_outputs(proto, feeds)[0], ort_outputs(proto, feeds)[0])
    # (in NHWC between the transposes at the edges of a convolution region)
    assert sorted(node_types(proto, feeds)) == ["Transpose", "Transpose", "aiov.QuantizedConv"]


def qdq_conv_chain(relu, o=16, pool_scale=None, between=()):
    """x -> Q -> DQ -> Conv 3x3 [-> Relu] -> Q -> DQ -> Conv 1x1 -> Q -> DQ, plus the first
    convolution's dequantized u8 as a residual: -> Add -> Q -> DQ (quantize_static's QDQ form).
    With a pool_scale, a 3x3 MaxPool (-> Q -> DQ at that scale) follows the first convolution.
    `between`: elementwise steps (op type, attributes, a constant second operand or None) the
    second convolution reads the first's dequantized output through, then -> Q -> DQ; the step
    "QdqSwish" is x * DQ(Q(sigmoid(x)))."""
    inits = [numpy_helper.from_array(np.float32(0.03), "x_scale"), numpy_helper.from_array(np.uint8(128), "x_zero")]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero"], ["xd"]),
    ]
    src, channels = "xd", 6
    for i, (k, zero) in enumerate([(3, 0), (1, 110)]):
        w = RNG.integers(-127, 128, (o, channels, k, k)).astype(np.int8)
        w_scale = RNG.uniform(0.002, 0.01, o).astype(np.float32)
        inits += [
            numpy_helper.from_array(w, f"w{i}"),
            numpy_helper.from_array(w_scale, f"w{i}_scale"),
            numpy_helper.from_array(np.zeros(o, np.int8), f"w{i}_zero"),
            numpy_helper.from_array(RNG.uniform(-1, 1, o).astype(np.float32), f"b{i}"),
            numpy_helper.from_array(np.float32(0.05), f"y{i}_scale"),
            numpy_helper.from_array(np.uint8(zero), f"y{i}_zero"),
        ]
        nodes += [
            helper.make_node("DequantizeLinear", [f"w{i}", f"w{i}_scale", f"w{i}_zero"], [f"w{i}d"], axis=0),
            helper.make_node("Conv", [src, f"w{i}d", f"b{i}"], [f"c{i}"], pads=[k // 2] * 4),
        ]
        out = f"c{i}"
        if relu and i == 0:
            nodes.append(helper.make_node("Relu", [out], ["r0"]))
            out = "r0"
        nodes += [
            helper.make_node("QuantizeLinear", [out, f"y{i}_scale", f"y{i}_zero"], [f"q{i}"]),
            helper.make_node("DequantizeLinear", [f"q{i}", f"y{i}_scale", f"y{i}_zero"], [f"d{i}"]),
        ]
        src, channels = f"d{i}", o
        if i == 0 and pool_scale is not None:
            inits.append(numpy_helper.from_array(np.float32(pool_scale), "p_scale"))
            nodes += [
                helper.make_node("MaxPool", ["d0"], ["p"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
                helper.make_node("QuantizeLinear", ["p", "p_scale", "y0_zero"], ["pq"]),
                helper.make_node("DequantizeLinear", ["pq", "p_scale", "y0_zero"], ["pd"]),
            ]
            src = "pd"
        if i == 0 and between:
            for j, (op, attrs, operand) in enumerate(between):
                if op == "QdqSwish":  # x * sigmoid(x), the sigmoid quantized on its own (quantize_static's form)
                    inits += [
                        numpy_helper.from_array(np.float32(1 / 255), f"g{j}_scale"),
                        numpy_helper.from_array(np.uint8(0), f"g{j}_zero"),
                    ]
                    nodes += [
                        helper.make_node("Sigmoid", [src], [f"g{j}"]),
                        helper.make_node("QuantizeLinear", [f"g{j}", f"g{j}_scale", f"g{j}_zero"], [f"g{j}q"]),
                        helper.make_node("DequantizeLinear", [f"g{j}q", f"g{j}_scale", f"g{j}_zero"], [f"g{j}d"]),
                        helper.make_node("Mul", [src, f"g{j}d"], [f"a{j}"]),
                    ]
                    src = f"a{j}"
                    continue
                ins = [src]
                if operand is not None:
                    inits.append(numpy_helper.from_array(np.float32(operand), f"a{j}_operand"))
                    ins.append(f"a{j}_operand")
                nodes.append(helper.make_node(op, ins, [f"a{j}"], **attrs))
                src = f"a{j}"
            inits += [
                numpy_helper.from_array(np.float32(0.02), "a_scale"),
                numpy_helper.from_array(np.uint8(9), "a_zero"),
            ]
            nodes += [
                helper.make_node("QuantizeLinear", [src, "a_scale", "a_zero"], ["aq"]),
                helper.make_node("DequantizeLinear", ["aq", "a_scale", "a_zero"], ["ad"]),
            ]
            src = "ad"
    inits += [numpy_helper.from_array(np.float32(0.08), "s_scale"), numpy_helper.from_array(np.uint8(100), "s_zero")]
    nodes += [
        helper.make_node("Add", ["d0", "d1"], ["s"]),
        helper.make_node("QuantizeLinear", ["s", "s_scale", "s_zero"], ["sq"]),
        helper.make_node("DequantizeLinear", ["sq", "s_scale", "s_zero"], ["out"]),
    ]
    return model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, 15, 15])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        inits,
    )


def optimized_chain_matches(proto, feeds, monkeypatch):
    """qdq_conv_chain's model: the optimized graph writes the very bytes the unfused ops do
    (fused requantization, byte tables), within one quantum (0.08) of onnxruntime's; returns
    the node types that ran."""
    from graph_checks import run_both

    plain, optimized = run_both(proto, feeds, monkeypatch)
    np.testing.assert_array_equal(optimized, plain)
    want = ort_outputs(proto, feeds)[0]
    assert np.max(np.abs(optimized - want)) <= 0.08 * 1.001
    return node_types(proto, feeds)


@pytest.mark.parametrize("pooled", [False, True])
@pytest.mark.parametrize("relu", [False, True])
def test_qdq_convolutions_stay_u8_and_nhwc_between_each_other(relu, pooled, monkeypatch):
    proto = qdq_conv_chain(relu, pool_scale=0.05 if pooled else None)
    feeds = {"x": RNG.standard_normal((1, 6, 15, 15)).astype(np.float32) * 2}
    types = optimized_chain_matches(proto, feeds, monkeypatch)
    # Both convolutions write u8 (no Quantize after them, the Relu theirs), the residual sum
    # adds their bytes, all in one NHWC region: the input quantized into NHWC, a transpose out,
    # none between.
    assert types.count("aiov.QuantizedConv") == 2 and "Relu" not in types
    # (the second convolution adds the residual as it writes its bytes: no sum of its own)
    assert types.count("aiov.QuantizedAdd") == 0 and "Add" not in types
    assert types.count("aiov.Quantize") == 1  # the model's input
    assert types.count("Transpose") == 1
    # A pooling at the convolution's own scale takes the maximum of its bytes (no Quantize
    # after it, no transposes around it).
    assert types.count("MaxPool") == pooled


@pytest.mark.parametrize(
    "between",
    [
        [("Sigmoid", {}, None)],
        [("HardSigmoid", {"alpha": 1 / 6, "beta": 0.5}, None), ("Mul", {}, 6.0)],  # a scaled HardSigmoid
        [("Clip", {}, None)],  # (no bounds: the bare requantization to the activation's scale)
        [("QdqSwish", {}, None)],  # two dequantized tensors from one u8 tensor: still one table
    ],
    ids=["sigmoid", "hard_sigmoid_times_6", "requantization", "swish"],
)
def test_qdq_activation_between_convolutions_is_a_byte_table(between, monkeypatch):
    proto = qdq_conv_chain(False, between=between)
    feeds = {"x": RNG.standard_normal((1, 6, 15, 15)).astype(np.float32) * 2}
    types = optimized_chain_matches(proto, feeds, monkeypatch)
    assert types.count("aiov.QuantizedLookup") == 1
    assert not {"Sigmoid", "HardSigmoid", "Multiply", "Clamp"} & set(types)
    assert types.count("Convert") == 1  # the model output's dequantization, no other
    # The lookup is layout-blind: both convolutions stay in one NHWC region (the input
    # quantized into it, one transpose out).
    assert types.count("aiov.QuantizedConv") == 2 and types.count("Transpose") == 1


def test_qdq_concat_joins_the_branches_bytes(monkeypatch):
    # Two quantized convolution branches (one at the concatenation's scale, one not),
    # dequantized, concatenated and quantized again, then a third convolution: an Inception or
    # SqueezeNet module. The Concat takes the bytes (the other branch through its requantization
    # table), with no Quantize or dequantization around it and one NHWC region.
    scales = {"x": (0.03, 128), "a": (0.05, 3), "b": (0.02, 140), "cat": (0.05, 3), "c": (0.04, 10)}
    inits = []
    for name, (scale, zero) in scales.items():
        inits += [
            numpy_helper.from_array(np.float32(scale), f"{name}_s"),
            numpy_helper.from_array(np.uint8(zero), f"{name}_z"),
        ]

    def qdq(src, name):
        return [
            helper.make_node("QuantizeLinear", [src, f"{name}_s", f"{name}_z"], [f"{name}_q"]),
            helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"], [f"{name}_d"]),
        ]

    def conv(src, name, cin, cout, k):
        w = RNG.integers(-127, 128, (cout, cin, k, k)).astype(np.int8)
        inits.extend(
            [
                numpy_helper.from_array(w, f"{name}_w"),
                numpy_helper.from_array(RNG.uniform(0.002, 0.01, cout).astype(np.float32), f"{name}_ws"),
                numpy_helper.from_array(np.zeros(cout, np.int8), f"{name}_wz"),
            ]
        )
        return [
            helper.make_node("DequantizeLinear", [f"{name}_w", f"{name}_ws", f"{name}_wz"], [f"{name}_wd"], axis=0),
            helper.make_node("Conv", [src, f"{name}_wd"], [f"{name}_y"], pads=[k // 2] * 4),
            helper.make_node("Relu", [f"{name}_y"], [f"{name}_r"]),
        ] + qdq(f"{name}_r", name)

    nodes = qdq("x", "x") + conv("x_d", "a", 6, 8, 3) + conv("x_d", "b", 6, 4, 1)
    nodes += [helper.make_node("Concat", ["a_d", "b_d"], ["cat"], axis=1)] + qdq("cat", "cat")
    nodes += conv("cat_d", "c", 12, 8, 3)
    proto = model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, 15, 15])],
        [helper.make_tensor_value_info("c_d", TensorProto.FLOAT, None)],
        inits,
    )
    feeds = {"x": RNG.standard_normal((1, 6, 15, 15)).astype(np.float32) * 2}
    from graph_checks import run_both

    plain, optimized = run_both(proto, feeds, monkeypatch)
    np.testing.assert_array_equal(optimized, plain)
    assert np.max(np.abs(optimized - ort_outputs(proto, feeds)[0])) <= 0.04 * 1.001
    types = node_types(proto, feeds)
    # Branch a's convolution and b's table write their bytes straight into their slices of
    # the Concat, which then runs no copy.
    assert types.count("Concat") == 0 and types.count("aiov.QuantizedConv") == 3
    assert types.count("aiov.QuantizedLookup") == 1  # branch b's requantization; a is at the scale
    assert types.count("aiov.Quantize") == 1 and types.count("Convert") == 1  # the model's input and output
    # To NHWC once per convolution reading the input, back once at the end: none around the Concat.
    assert types.count("Transpose") == 3


def test_qdq_max_pool_requantized_to_another_scale_stays_f32(monkeypatch):
    from graph_checks import run_both

    proto = qdq_conv_chain(True, pool_scale=0.07)  # not the 0.05 its input was quantized with
    feeds = {"x": RNG.standard_normal((1, 6, 15, 15)).astype(np.float32) * 2}
    plain, optimized = run_both(proto, feeds, monkeypatch)
    np.testing.assert_array_equal(optimized, plain)
    types = node_types(proto, feeds)
    assert types.count("MaxPool") == 1 and types.count("aiov.Quantize") == 2  # the input's, the pooling's


def test_quantize_static_cnn_matches_onnxruntime():
    pytest.importorskip("onnxruntime.quantization")
    import model_builders as zoo

    images = [RNG.standard_normal((1, 3, 32, 32)).astype(np.float32) for _ in range(3)]
    proto = zoo.quantized(zoo.resnet50(blocks=(1, 1), width=8, classes=10), [{"x": x} for x in images])
    feeds = {"x": images[0]}
    got, want = aiov_outputs(proto, feeds)[0], ort_outputs(proto, feeds)[0]
    assert got.argmax() == want.argmax()
    np.testing.assert_allclose(got, want, rtol=0.05, atol=0.05 * np.max(np.abs(want)))
    types = node_types(proto, feeds)
    assert types.count("aiov.QuantizedConv") == 9 and "Convolution" not in types and "aiov.FusedConv" not in types
    assert types.count("Transpose") <= 2  # NHWC from the first convolution to the pooling
    # The residual connections: each block's last convolution adds its skip connection.
    assert types.count("aiov.QuantizedAdd") == 0 and "Add" not in types


@pytest.mark.parametrize("x_zero", [np.uint8(120), np.int8(-5)])  # quantize_static's QUInt8 and QInt8
@pytest.mark.parametrize("channels", [1, 3, 4, 5])
@pytest.mark.parametrize("width", [16, 13])
def test_qdq_image_is_quantized_straight_into_nhwc(channels, width, x_zero, monkeypatch):
    """image -> Q -> DQ -> Conv -> Q -> DQ: the image's quantization writes the NHWC bytes the
    convolution reads (no transpose between them), the very bytes of quantizing then
    transposing, within one output quantum of onnxruntime's."""
    from graph_checks import run_both

    o, x_scale, y_scale = 8, np.float32(0.05), np.float32(0.1)
    w = RNG.integers(-127, 128, (o, channels, 3, 3)).astype(np.int8)
    w_scale = RNG.uniform(0.002, 0.01, o).astype(np.float32)
    bias = RNG.integers(-300, 300, o).astype(np.int32)
    inits = [
        numpy_helper.from_array(x_scale, "x_scale"),
        numpy_helper.from_array(x_zero, "x_zero"),
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(w_scale, "w_scale"),
        numpy_helper.from_array(np.zeros(o, np.int8), "w_zero"),
        numpy_helper.from_array(bias, "b"),
        numpy_helper.from_array((x_scale * w_scale).astype(np.float32), "b_scale"),
        numpy_helper.from_array(y_scale, "y_scale"),
        numpy_helper.from_array(np.uint8(100), "y_zero"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zero"], ["wd"], axis=0),
        helper.make_node("DequantizeLinear", ["b", "b_scale"], ["bd"], axis=0),
        helper.make_node("Conv", ["xd", "wd", "bd"], ["y"], pads=[1, 1, 1, 1]),
        helper.make_node("QuantizeLinear", ["y", "y_scale", "y_zero"], ["yq"]),
        helper.make_node("DequantizeLinear", ["yq", "y_scale", "y_zero"], ["out"]),
    ]
    shape = [2, channels, 5, width]
    proto = model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        inits,
    )
    x = (RNG.standard_normal(shape) * 3).astype(np.float32)
    halves = RNG.random(shape) < 0.3  # exactly on half-integers of x / scale: rounded half to even
    x[halves] = (RNG.integers(-150, 150, int(halves.sum())) + 0.5).astype(np.float32) * x_scale
    feeds = {"x": x}
    plain, optimized = run_both(proto, feeds, monkeypatch)
    np.testing.assert_array_equal(optimized, plain)
    assert np.max(np.abs(optimized - ort_outputs(proto, feeds)[0])) <= y_scale * 1.001
    types = node_types(proto, feeds)
    assert types[:2] == ["aiov.Quantize", "aiov.QuantizedConv"], types


@pytest.mark.parametrize("zero", [np.uint8(7), np.int8(-9)])
@pytest.mark.parametrize(
    "order,perm,fused",
    [
        ("quantize_first", [0, 2, 3, 1], True),
        ("transpose_first", [0, 2, 3, 1], True),
        ("quantize_first", [0, 3, 1, 2], False),  # not the permutation to NHWC
        ("bytes_read_twice", [0, 2, 3, 1], False),  # the quantized bytes are an output too
    ],
)
def test_quantization_and_transpose_to_nhwc_are_one_pass(order, perm, fused, zero, monkeypatch):
    """QuantizeLinear then Transpose to NHWC, or the other way round, is one aiov.Quantize
    writing the transposed bytes (the same bytes) when the first is read by the second alone."""
    from graph_checks import run_both

    scale = np.float32(0.02)
    inits = [numpy_helper.from_array(scale, "scale"), numpy_helper.from_array(zero, "zero")]
    quantize = helper.make_node("QuantizeLinear", ["t" if order == "transpose_first" else "x", "scale", "zero"], ["q"])
    transpose = helper.make_node("Transpose", ["x" if order == "transpose_first" else "q"], ["t"], perm=perm)
    nodes = [transpose, quantize] if order == "transpose_first" else [quantize, transpose]
    out_type = TensorProto.UINT8 if zero.dtype == np.uint8 else TensorProto.INT8
    outputs = [helper.make_tensor_value_info("q" if order == "transpose_first" else "t", out_type, None)]
    if order == "bytes_read_twice":
        outputs.append(helper.make_tensor_value_info("q", out_type, None))
    proto = model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4, 19])], outputs, inits)
    x = (RNG.standard_normal((2, 3, 4, 19)) * 3).astype(np.float32)
    x[0, 0, 0, :6] = np.float32([0.01, -0.03, 0.05, np.inf, -np.inf, 9.0])  # halves of the scale, saturating
    feeds = {"x": x}
    plain, optimized = run_both(proto, feeds, monkeypatch)
    np.testing.assert_array_equal(optimized, plain)
    np.testing.assert_array_equal(optimized, ort_outputs(proto, feeds)[0])
    types = node_types(proto, feeds)
    assert (types == ["aiov.Quantize"]) == fused, types


def qdq_residual_block(channels, mid, size, per_channel, relu, residual_zero, swapped, residual_conv, read_twice):
    """A bottleneck as quantize_static writes it: x -> Q -> DQ -> Conv 3x3 -> Relu -> Q -> DQ ->
    Conv 1x1 [-> Relu] -> Q -> DQ, added to the skip connection (x's DequantizeLinear, or with
    `residual_conv` a 3x3 convolution of it: a downsample block's projection) -> Q -> DQ.
    `swapped` puts the skip connection first in the Add; with `read_twice`, another 1x1
    convolution reads the first 1x1's bytes too, its result added to the block's (-> Q -> DQ)."""
    inits = [
        numpy_helper.from_array(np.float32(0.03), "x_scale"),
        numpy_helper.from_array(np.uint8(residual_zero), "x_zero"),
        numpy_helper.from_array(np.float32(0.07), "s_scale"),
        numpy_helper.from_array(np.uint8(110), "s_zero"),
    ]

    def qdq(src, name, scale, zero):
        inits.extend(
            [
                numpy_helper.from_array(np.float32(scale), f"{name}_s"),
                numpy_helper.from_array(np.uint8(zero), f"{name}_z"),
            ]
        )
        return [
            helper.make_node("QuantizeLinear", [src, f"{name}_s", f"{name}_z"], [f"{name}_q"]),
            helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"], [f"{name}_d"]),
        ]

    def conv(src, name, cin, cout, k, activation, scale, zero):
        w = RNG.integers(-127, 128, (cout, cin, k, k)).astype(np.int8)
        w_scale = RNG.uniform(0.002, 0.01, cout if per_channel else ()).astype(np.float32)
        inits.extend(
            [
                numpy_helper.from_array(w, f"{name}_w"),
                numpy_helper.from_array(w_scale, f"{name}_ws"),
                numpy_helper.from_array(np.zeros(cout if per_channel else (), np.int8), f"{name}_wz"),
                numpy_helper.from_array(RNG.uniform(-1, 1, cout).astype(np.float32), f"{name}_b"),
            ]
        )
        nodes = [
            helper.make_node("DequantizeLinear", [f"{name}_w", f"{name}_ws", f"{name}_wz"], [f"{name}_wd"], axis=0),
            helper.make_node("Conv", [src, f"{name}_wd", f"{name}_b"], [f"{name}_y"], pads=[k // 2] * 4),
        ]
        out = f"{name}_y"
        if activation:
            nodes.append(helper.make_node("Relu", [out], [f"{name}_r"]))
            out = f"{name}_r"
        return nodes + qdq(out, name, scale, zero)

    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero"], ["xd"]),
    ]
    nodes += conv("xd", "a", channels, mid, 3, True, 0.04, 0)
    nodes += conv("a_d", "b", mid, channels, 1, relu, 0.05, 0 if relu else 120)
    skip = "xd"
    if residual_conv:
        nodes += conv("xd", "p", channels, channels, 3, False, 0.06, residual_zero)
        skip = "p_d"
    nodes += [helper.make_node("Add", [skip, "b_d"] if swapped else ["b_d", skip], ["s"])]
    nodes += [
        helper.make_node("QuantizeLinear", ["s", "s_scale", "s_zero"], ["sq"]),
        helper.make_node("DequantizeLinear", ["sq", "s_scale", "s_zero"], ["out" if not read_twice else "s_d"]),
    ]
    if read_twice:  # (through a dequantization of its own), and its result added to the sum
        nodes.append(helper.make_node("DequantizeLinear", ["b_q", "b_s", "b_z"], ["b_d2"]))
        nodes += conv("b_d2", "c", channels, channels, 1, False, 0.05, 128)
        nodes += [helper.make_node("Add", ["s_d", "c_d"], ["t"])] + qdq("t", "t", 0.08, 100)
        nodes.append(helper.make_node("Identity", ["t_d"], ["out"]))
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)]
    return model(
        nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, size, size])], outputs, inits
    )


@pytest.mark.parametrize(
    "channels,mid,size,per_channel,relu,residual_zero,swapped,residual_conv",
    [
        (16, 8, 7, True, False, 128, False, False),  # 49 rows, the 1x1 on the u8 strips
        (16, 8, 7, False, True, 0, True, False),
        (40, 12, 9, True, True, 77, True, False),  # 40 outputs: a panel and a half
        (17, 8, 11, False, False, 3, False, False),  # 17 outputs
        (24, 6, 15, True, False, 128, False, False),  # 6 channels in: the 1x1 off quads (direct kernel)
        (32, 16, 5, True, False, 50, True, True),  # a projection on the skip connection
        (32, 16, 5, False, True, 0, False, True),
    ],
)
def test_qdq_residual_sum_is_the_convolutions(
    channels, mid, size, per_channel, relu, residual_zero, swapped, residual_conv, monkeypatch
):
    proto = qdq_residual_block(channels, mid, size, per_channel, relu, residual_zero, swapped, residual_conv, False)
    feeds = {"x": RNG.standard_normal((1, channels, size, size)).astype(np.float32) * 2}
    from graph_checks import run_both

    # The bytes of the separate ops (the graph as written), within one quantum of the sum's
    # scale of onnxruntime's (its own QLinearAdd rounds in its own way).
    plain, optimized = run_both(proto, feeds, monkeypatch)
    np.testing.assert_array_equal(optimized, plain)
    assert np.max(np.abs(optimized - ort_outputs(proto, feeds)[0])) <= 0.07 * 1.001
    assert np.mean((optimized > -110 * 0.07) & (optimized < 145 * 0.07)) > 0.5  # (not saturated)
    types = node_types(proto, feeds)
    # The 1x1 adds the skip connection (x's bytes, read by the 3x3 too, or the projection's) as
    # it writes its bytes: no sum of its own, no f32 tensor, one NHWC region.
    assert types.count("aiov.QuantizedConv") == 2 + residual_conv
    assert "aiov.QuantizedAdd" not in types and "Add" not in types
    assert types.count("Transpose") == 2 + residual_conv  # (one in per convolution reading x)


def test_qdq_residual_sum_goes_to_the_convolution_whose_bytes_nothing_else_reads(monkeypatch):
    # Another convolution reads the 1x1's bytes too: they must stay as they are, so the
    # projection on the skip connection adds the 1x1's instead (and that other convolution the
    # block's sum, which it alone reads).
    from graph_checks import run_both

    proto = qdq_residual_block(16, 8, 7, True, False, 128, False, True, True)
    feeds = {"x": RNG.standard_normal((1, 16, 7, 7)).astype(np.float32) * 2}
    plain, optimized = run_both(proto, feeds, monkeypatch)
    np.testing.assert_array_equal(optimized, plain)
    types = node_types(proto, feeds)
    assert types.count("aiov.QuantizedConv") == 4 and "aiov.QuantizedAdd" not in types
    # A compiled-model blob carries the residual inputs: the imported model gives the same bytes.
    import aiov as ov

    blob = ov.compile_model(proto.SerializeToString()).export_model()
    np.testing.assert_array_equal(ov.Core().import_model(blob)(feeds)[0], optimized)


def qdq_padded_input(pad_mode, pad_value, last_scale):
    """SSDlite's input as quantize_static writes it: an unbatched image quantized, padded,
    quantized again, given its batch axis, quantized again (each at the same scale, the last at
    last_scale), then a 3x3 QDQ convolution. pad_value None: the Pad has no value input."""
    inits = [
        numpy_helper.from_array(np.float32(0.03), "x_s"),
        numpy_helper.from_array(np.uint8(120), "x_z"),
        numpy_helper.from_array(np.float32(last_scale), "u_s"),
        numpy_helper.from_array(np.array([0, 1, 2, 0, 2, 1], np.int64), "pads"),
        numpy_helper.from_array(np.array([0], np.int64), "axes"),
        numpy_helper.from_array(RNG.integers(-127, 128, (8, 6, 3, 3)).astype(np.int8), "w"),
        numpy_helper.from_array(RNG.uniform(0.002, 0.01, 8).astype(np.float32), "w_s"),
        numpy_helper.from_array(np.zeros(8, np.int8), "w_z"),
        numpy_helper.from_array(np.float32(0.05), "y_s"),
        numpy_helper.from_array(np.uint8(7), "y_z"),
    ]
    pad_inputs = ["xd", "pads"]
    if pad_value is not None:
        inits.append(numpy_helper.from_array(np.float32(pad_value), "pad_value"))
        pad_inputs.append("pad_value")
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_s", "x_z"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "x_s", "x_z"], ["xd"]),
        helper.make_node("Pad", pad_inputs, ["p"], mode=pad_mode),
        helper.make_node("QuantizeLinear", ["p", "x_s", "x_z"], ["pq"]),
        helper.make_node("DequantizeLinear", ["pq", "x_s", "x_z"], ["pd"]),
        helper.make_node("Unsqueeze", ["pd", "axes"], ["u"]),
        helper.make_node("QuantizeLinear", ["u", "u_s", "x_z"], ["uq"]),
        helper.make_node("DequantizeLinear", ["uq", "u_s", "x_z"], ["ud"]),
        helper.make_node("DequantizeLinear", ["w", "w_s", "w_z"], ["wd"], axis=0),
        helper.make_node("Conv", ["ud", "wd"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("QuantizeLinear", ["c", "y_s", "y_z"], ["yq"]),
        helper.make_node("DequantizeLinear", ["yq", "y_s", "y_z"], ["y"]),
    ]
    return model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6, 13, 11])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )


@pytest.mark.parametrize(
    "pad_mode,pad_value,last_scale,quantizations",
    [
        ("constant", None, 0.03, 1),  # the zero the Pad writes is the zero point's byte
        ("constant", 0.0, 0.03, 1),
        ("edge", None, 0.03, 1),
        ("reflect", None, 0.03, 1),
        ("constant", 0.5, 0.03, 2),  # a fill that is not zero: the Pad stays on floats
        ("constant", 0.0, 0.04, 2),  # requantized to another scale: the Unsqueeze stays on floats
    ],
)
def test_qdq_pad_and_reshape_run_on_the_bytes(pad_mode, pad_value, last_scale, quantizations, monkeypatch):
    from graph_checks import run_both

    proto = qdq_padded_input(pad_mode, pad_value, last_scale)
    feeds = {"x": RNG.standard_normal((6, 13, 11)).astype(np.float32) * 2}
    plain, optimized = run_both(proto, feeds, monkeypatch)
    np.testing.assert_array_equal(optimized, plain)  # the same bytes as quantizing the floats again
    assert np.max(np.abs(optimized - ort_outputs(proto, feeds)[0])) <= 0.05 * 1.001
    types = node_types(proto, feeds)
    # The image's quantization, and one more only where a step could not run on the bytes.
    assert types.count("aiov.Quantize") == quantizations
    assert types.count("aiov.QuantizedConv") == 1
