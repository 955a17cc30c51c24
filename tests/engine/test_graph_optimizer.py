"""The compile-time graph optimizer (native/plan/optimize.cpp) changes how a model runs, never
what it computes: every model here gives the same results with the optimizer on and with
AIOV_GRAPH_OPT=0 (the graph as written, through independent kernels), and matches ONNX's
reference evaluator. Also checks that the fusions happen, since they are why it exists.
The kernels' own cases (convolution windows, GEMM tiles, Winograd) are in tests/kernels/."""

import numpy as np
import pytest

import aiov as ov

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

import model_builders as zoo  # noqa: E402
from graph_checks import check, image, node_types  # noqa: E402
from model_builders import single_conv  # noqa: E402

RNG = np.random.default_rng(21)


@pytest.mark.parametrize(
    "op, extra",
    [
        ("Relu", {}),
        ("Sigmoid", {}),
        ("Tanh", {}),
        ("HardSwish", {}),
        ("LeakyRelu", {"attrs": {"alpha": 0.1}}),
        ("Clip", {"inputs": [0.0, 6.0]}),
        ("Gelu", {}),
    ],
)
def test_fused_activations_match(op, extra, monkeypatch):
    opset = 20 if op == "Gelu" else 17
    proto = single_conv(8, 16, 3, after=[(op, extra)])
    proto.opset_import[0].version = opset
    feeds = image(2, 8, 11)
    check(proto, feeds, monkeypatch, reference=op != "Gelu")
    assert op not in node_types(proto, feeds) and "aiov.FusedConv" in node_types(proto, feeds)


@pytest.mark.parametrize(
    "cin, cout, k, stride, group, size",
    [
        (6, 10, 3, 1, 1, 9),  # im2col panels
        (48, 48, 3, 1, 1, 12),  # Winograd
        (16, 16, 3, 1, 16, 9),  # depthwise
        (12, 20, 1, 1, 1, 9),  # 1x1 on the input as it lies
    ],
)
def test_batchnorm_scale_and_bias_fold_into_the_filters(cin, cout, k, stride, group, size, monkeypatch):
    # The fold leaves the model's filters as they are and scales them as each kernel
    # rearranges them: every kernel path must apply the scale.
    g = zoo.GraphBuilder(seed=4)
    y = g.conv_bn("x", cin, cout, k, stride, group=group, act=None, bias=True)
    y = g.op("Mul", [y, g.const(RNG.uniform(0.5, 2, (1, cout, 1, 1)).astype(np.float32))])
    y = g.op("Sub", [y, g.const(np.float32(0.25))])
    g.op("Relu", [y])
    proto = g.model([zoo.image_input(cin, None)])
    feeds = image(2, cin, size)
    check(proto, feeds, monkeypatch)
    assert node_types(proto, feeds).count("aiov.FusedConv") == 1
    assert not {"BatchNormInference", "Multiply", "Subtract", "Relu"} & set(node_types(proto, feeds))


@pytest.mark.parametrize("cin, size", [(8, 9), (48, 12)])  # few outputs; Winograd
def test_one_filter_under_different_batchnorms(cin, size, monkeypatch):
    # Three convolutions share one filter initializer: two fold different BatchNorms, one
    # none. Each must get its own scaled weights, not another's from the shared cache.
    g = zoo.GraphBuilder(seed=23)
    w = g.weight(cin, cin, 3, 3)
    branches = []
    for with_bn in (True, True, False):
        y = g.op("Conv", ["x", w], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        if with_bn:
            y = g.op(
                "BatchNormalization",
                [y, g.positive(cin), g.weight(cin, scale=0.1), g.weight(cin, scale=0.1), g.positive(cin)],
                epsilon=1e-5,
            )
        branches.append(y)
    g.op("Concat", branches, axis=1)
    proto = g.model([zoo.image_input(cin, None)])
    check(proto, image(1, cin, size), monkeypatch)


def test_resnet_block_keeps_nhwc_between_convolutions(monkeypatch):
    proto = zoo.resnet50(blocks=(2, 1), width=8, classes=7)
    feeds = image(2, 3, 40)
    check(proto, feeds, monkeypatch, rtol=2e-4, atol=2e-4)
    types = node_types(proto, feeds)
    # One layout change in (the image); the global pool reduces NHWC and lands in [N, C].
    assert types.count("Transpose") <= 2
    assert not {"BatchNormInference", "Relu", "Add"} & set(types)


def test_mobilenet_and_conv_stack_match(monkeypatch):
    check(
        zoo.mobilenet_v2(settings=((1, 8, 1, 1), (6, 12, 2, 2), (6, 16, 2, 2)), classes=5),
        image(2, 3, 32),
        monkeypatch,
        rtol=2e-4,
        atol=2e-4,
    )
    check(zoo.conv_stack(channels=(3, 8, 16, 32)), image(1, 3, 45), monkeypatch)


def test_bert_encoder_matches_with_gelu_fused(monkeypatch):
    proto = zoo.bert_encoder(hidden=32, heads=4, layers=2)
    feeds = zoo.bert_feeds(2, 9, 32)
    check(proto, feeds, monkeypatch, rtol=2e-4, atol=2e-4)
    types = node_types(proto, feeds)
    assert "Erf" not in types and "aiov.FusedMatMul" in types
    assert "aiov.Attention" in types and "Softmax" not in types
    assert "MVN" not in types and "aiov.LayerNorm" in types


def test_gelu_written_either_way_is_recognised(monkeypatch):
    g = zoo.GraphBuilder(seed=5)
    h = g.dense("x", 16, 24)
    erf = g.op("Erf", [g.op("Mul", [h, g.const(np.float32(np.sqrt(0.5)))])])
    g.op("Mul", [g.op("Mul", [h, g.op("Add", [erf, g.const(np.float32(1))])]), g.const(np.float32(0.5))])
    proto = g.model([helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16])])
    feeds = {"x": RNG.standard_normal((5, 16)).astype(np.float32) * 3}
    check(proto, feeds, monkeypatch, rtol=1e-5, atol=1e-5)
    assert node_types(proto, feeds) == ["aiov.FusedMatMul"]


def test_residual_from_a_shared_value_and_outputs_in_the_middle(monkeypatch):
    # The conv result is both a model output and the input of the next op: it must not be fused away.
    g = zoo.GraphBuilder(seed=6)
    y = g.op("Conv", ["x", g.weight(4, 4, 3, 3)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    z = g.op("Relu", [g.op("Add", [y, "x"])])
    w = g.op("Add", [z, y])
    check_two_outputs(g, y, w, monkeypatch)


def check_two_outputs(g, first, second, monkeypatch, tol=1e-5):
    """Values `first` and `second` of the graph in `g` as model outputs, with the optimizer
    on and off: both must come out, named as written, with the same values."""
    graph = helper.make_graph(
        g.nodes,
        "m",
        [zoo.image_input(4, None)],
        [
            helper.make_tensor_value_info(first, TensorProto.FLOAT, None),
            helper.make_tensor_value_info(second, TensorProto.FLOAT, None),
        ],
        g.inits,
    )
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    feeds = image(2, 4, 7)
    monkeypatch.setenv("AIOV_GRAPH_OPT", "0")
    plain = ov.compile_model(data)(feeds)
    monkeypatch.setenv("AIOV_GRAPH_OPT", "1")
    compiled = ov.compile_model(data)
    optimized = compiled(feeds)
    assert [o.get_any_name() for o in compiled.outputs] == [first, second]
    for i in range(2):
        np.testing.assert_allclose(optimized[i], plain[i], rtol=tol, atol=tol)


@pytest.mark.parametrize(
    "cin, cout, k, group, hw",
    [
        (8, 8, 3, 2, 9),  # grouped: one GEMM per group, each over its own columns
        (8, 8, 3, 8, 9),  # depthwise kernel
        (48, 48, 3, 1, 12),  # Winograd F(2x2, 3x3)
        (8, 12, 3, 1, 9),  # at most 16 outputs: not a GEMM
        (8, 12, 1, 1, 3),  # few rows and columns: dot products, then the epilogue
        (600, 40, 1, 1, 5),  # two K slices: the later one accumulates onto the first
    ],
)
def test_output_written_over_a_dying_residual(cin, cout, k, group, hw, monkeypatch):
    # The residual dies at the fused conv, so the plan hands its memory to the output: every
    # kernel path must read each residual element before writing over it.
    g = zoo.GraphBuilder(seed=9)
    side = g.op("Conv", ["x", g.weight(cout, cin, 1, 1), g.weight(cout, scale=0.1)], kernel_shape=[1, 1])
    y = g.op(
        "Conv",
        ["x", g.weight(cout, cin // group, k, k), g.weight(cout, scale=0.1)],
        kernel_shape=[k, k],
        pads=[k // 2] * 4,
        group=group,
    )
    g.op("Relu", [g.op("Add", [y, side])])
    proto = g.model([zoo.image_input(cin, None)])
    feeds = image(1, cin, hw)
    check(proto, feeds, monkeypatch, rtol=2e-4, atol=2e-4)
    assert "Add" not in node_types(proto, feeds)


def test_residual_still_needed_or_also_the_data_keeps_its_memory(monkeypatch):
    # r is the residual of two convs: the first must not write over it, since the second
    # still reads it; the second reads r both as its data and as its residual.
    g = zoo.GraphBuilder(seed=10)
    r = g.op("Conv", ["x", g.weight(8, 8, 1, 1)], kernel_shape=[1, 1])
    a = g.op("Relu", [g.op("Add", [g.op("Conv", ["x", g.weight(8, 8, 1, 1)], kernel_shape=[1, 1]), r])])
    b = g.op("Relu", [g.op("Add", [g.op("Conv", [r, g.weight(8, 8, 1, 1)], kernel_shape=[1, 1]), r])])
    g.op("Concat", [a, b, r], axis=1)
    proto = g.model([zoo.image_input(8, None)])
    check(proto, image(2, 8, 6), monkeypatch, rtol=2e-4, atol=2e-4)


def test_matmul_output_written_over_a_dying_residual(monkeypatch):
    # Transformer-style residual: the projection's output takes the residual's memory.
    g = zoo.GraphBuilder(seed=11)
    h = g.dense("x", 48, 48)
    y = g.op("Relu", [g.op("Add", [g.dense(h, 48, 48), h])])
    small = g.dense(y, 48, 12)
    g.op("Add", [g.dense(small, 12, 12), small])
    proto = g.model([helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 48])])
    for rows in (3, 40):
        check(proto, {"x": RNG.standard_normal((rows, 48)).astype(np.float32)}, monkeypatch, rtol=2e-4, atol=2e-4)


def _chain_model(steps, shape=(2, 4, 5, 6), seed=14):
    # steps: (onnx op, operand or None, operand on the left, attrs); operand "x" is the input.
    g = zoo.GraphBuilder(seed=seed)
    y = "x"
    for op, operand, left, attrs in steps:
        if operand is None:
            ins = [y]
        else:
            other = "x" if isinstance(operand, str) else g.const(operand)
            ins = [other, y] if left else [y, other]
        y = g.op(op, ins, **attrs)
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))]
    return g.model(inputs, opset=20), {"x": RNG.standard_normal(shape).astype(np.float32) * 2}


CHANNEL = RNG.standard_normal((4, 1, 1)).astype(np.float32) + 3  # per channel of NCHW
ROW = RNG.standard_normal(6).astype(np.float32) + 3  # along the last axis
FULL = RNG.standard_normal((2, 4, 5, 6)).astype(np.float32) + 3  # same shape as x


@pytest.mark.parametrize(
    "steps",
    [
        [("Mul", np.float32(1.5), False, {}), ("Add", CHANNEL, False, {}), ("Relu", None, False, {})],
        [("Sub", np.float32(1), True, {}), ("Div", ROW, True, {}), ("Tanh", None, False, {})],
        # x * 2 sigmoid(x): not SiLU (recognise_swish takes that), a chain that reads x again
        [("Sigmoid", None, False, {}), ("Mul", np.float32(2), False, {}), ("Mul", "x", False, {})],
        [("Abs", None, False, {}), ("Sqrt", None, False, {}), ("Neg", None, False, {}), ("Exp", None, False, {})],
        [
            ("Max", FULL, False, {}),
            ("Min", CHANNEL, True, {}),
            ("HardSwish", None, False, {}),
            ("HardSigmoid", None, False, {"alpha": 1 / 6, "beta": 0.5}),
        ],
        [
            ("Clip", None, False, {}),
            ("LeakyRelu", None, False, {"alpha": 0.2}),
            ("Gelu", None, False, {}),
            ("Gelu", None, False, {"approximate": "tanh"}),
            ("Sub", "x", True, {}),
        ],
    ],
)
def test_elementwise_chains_run_as_one_pass(steps, monkeypatch):
    proto, feeds = _chain_model(steps)
    check(proto, feeds, monkeypatch, rtol=1e-5, atol=1e-5)
    types = node_types(proto, feeds)
    assert types.count("aiov.ElementwiseChain") == 1 and len(types) <= 2, types


@pytest.mark.parametrize("shape", [(3, 7, 9, 16), (4, 32, 32, 16)])  # a last part-block; shared over the pool
def test_elementwise_chain_of_short_rows_runs_many_rows_a_block(shape, monkeypatch):
    # A per-channel scale and shift of an NHWC tensor (a BatchNorm after a Concat) with a
    # scalar step and x read again: every row of 16 channels sees the same operands.
    scale = RNG.standard_normal(shape[-1]).astype(np.float32) + 2
    shift = RNG.standard_normal((1, 1, 1, shape[-1])).astype(np.float32)
    steps = [("Mul", scale, False, {}), ("Add", shift, True, {}), ("Relu", None, False, {}), ("Mul", "x", False, {})]
    proto, feeds = _chain_model(steps, shape=shape)
    check(proto, feeds, monkeypatch, rtol=1e-6, atol=1e-6)
    types = node_types(proto, feeds)
    assert types.count("aiov.ElementwiseChain") == 1 and len(types) <= 2, types


@pytest.mark.parametrize("shape", [(3, 7, 5, 24), (8, 16, 16, 40)])
def test_elementwise_chains_over_short_rows_run_blocks_of_rows(shape, monkeypatch):
    # NHWC-like data against operands along its last axis (DenseNet's per-channel BatchNorm
    # before each convolution): blocks of whole rows run as one, each such operand repeated
    # along the block; the rows do not fill the last block, and the larger shape is split
    # over threads. With an operand of x's whole shape, a scalar and x itself.
    channels = RNG.standard_normal(shape[-1]).astype(np.float32) + 3
    full = RNG.standard_normal(shape).astype(np.float32)
    steps = [
        ("Mul", channels, False, {}),
        ("Sub", channels[None, None, None, :] - 1, True, {}),
        ("Add", full, False, {}),
        ("Max", np.float32(-0.5), True, {}),
        ("Mul", "x", False, {}),
        ("Relu", None, False, {}),
    ]
    proto, feeds = _chain_model(steps, shape=shape)
    check(proto, feeds, monkeypatch, rtol=1e-5, atol=1e-5)
    assert node_types(proto, feeds).count("aiov.ElementwiseChain") == 1


# Fewer rows than a block; a last part-block; shared over the pool.
@pytest.mark.parametrize("shape", [(2, 1, 3, 24), (3, 7, 5, 24), (8, 16, 16, 40)])
@pytest.mark.parametrize("relu", [True, False])
def test_per_channel_scale_and_shift_chain_runs_in_one_pass(shape, relu, monkeypatch):
    # DenseNet's BatchNorm (a per-channel Multiply and Add, here the scale one value) and Relu
    # before each convolution: the one-pass path, the same values as the ops as written, a NaN
    # kept by the Relu.
    shift = RNG.standard_normal(shape[-1]).astype(np.float32)
    steps = [("Mul", np.float32(1.5), not relu, {}), ("Add", shift, relu, {})]
    if relu:
        steps.append(("Relu", None, False, {}))
    proto, feeds = _chain_model(steps, shape=shape)
    feeds["x"][0, 0, 0, :3] = [np.nan, -np.inf, np.inf]
    check(proto, feeds, monkeypatch, rtol=1e-6, atol=1e-6)
    assert node_types(proto, feeds).count("aiov.ElementwiseChain") == 1


NCW_SCALE_SHIFT_GELU = r"""
import json, math, sys
import numpy as np
from onnx import TensorProto, helper, numpy_helper
import aiov as ov

rng = np.random.default_rng(31)
erf = np.vectorize(math.erf)


def model(shape):
    # wav2vec2's GroupNorm affine (one scale and shift per channel of an NCW row), an operand of
    # x's whole shape, then erf-Gelu as torch exports it.
    c = shape[1]
    inits = [
        numpy_helper.from_array(rng.uniform(0.5, 2, (c, 1)).astype(np.float32), "scale"),
        numpy_helper.from_array(rng.standard_normal((c, 1)).astype(np.float32), "shift"),
        numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), "full"),
        numpy_helper.from_array(np.float32(math.sqrt(2)), "sqrt2"),
        numpy_helper.from_array(np.float32(1), "one"),
        numpy_helper.from_array(np.float32(0.5), "half"),
    ]
    nodes = [
        helper.make_node("Mul", ["x", "scale"], ["m"]),
        helper.make_node("Add", ["m", "shift"], ["a"]),
        helper.make_node("Sub", ["a", "full"], ["h"]),
        helper.make_node("Div", ["h", "sqrt2"], ["d"]),
        helper.make_node("Erf", ["d"], ["e"]),
        helper.make_node("Add", ["e", "one"], ["e1"]),
        helper.make_node("Mul", ["h", "e1"], ["g"]),
        helper.make_node("Mul", ["g", "half"], ["y"]),
    ]
    io = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, list(shape))
    graph = helper.make_graph(nodes, "ncw", [io("x")], [io("y")], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), inits


worst = 0.0
for shape, threads in [((3, 5, w), 1) for w in (1, 7, 79, 200)] + [((8, 64, 200), 0), ((16, 64, 79), 0)]:
    proto, inits = model(shape)
    scale, shift, full = (numpy_helper.to_array(t) for t in inits[:3])
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    x.flat[:: max(1, x.size // 5)] *= 10  # past erf's fit
    compiled = ov.compile_model(proto.SerializeToString(), "CPU", {"INFERENCE_NUM_THREADS": threads, "PERF_COUNT": True})
    request = compiled.create_infer_request()
    got = next(iter(request.infer({"x": x}).values()))
    types = [p.node_type for p in request.get_profiling_info()]
    assert types == ["aiov.ElementwiseChain"], types
    h = x.astype(np.float64) * scale + shift - full
    want = 0.5 * h * (1 + erf(h / math.sqrt(2)))
    worst = max(worst, float(np.max(np.abs(got - want) / (1 + np.abs(want)))))
print(json.dumps(worst))
"""


@pytest.mark.parametrize("isa", [None, "avx2"])  # the CPU's own Gelu (AVX-512 here), the portable loop
def test_ncw_scale_shift_gelu_chain_over_short_rows(isa, run_capped):
    # Rows of 1, 7, 79 and 200 values with operands that change from row to row: the binary
    # steps row by row, Gelu over blocks of whole rows, last blocks part-full, split over the
    # pool. Against float64 numpy: the f32 steps and erf's fit (4e-7) stay within 1e-5
    # relative to 1 + |y|.
    assert float(run_capped(NCW_SCALE_SHIFT_GELU, 120, AIOV_GEMM_ISA=isa)) < 1e-5


def test_elementwise_chain_keeps_values_used_elsewhere(monkeypatch):
    # The middle value is also a model output and the chain's input feeds a second branch:
    # both must survive, and the chain's output may not take over the input's memory.
    g = zoo.GraphBuilder(seed=15)
    h = g.op("Conv", ["x", g.weight(4, 4, 1, 1)], kernel_shape=[1, 1])
    a = g.op("Sigmoid", [g.op("Mul", [h, g.const(np.float32(0.5))])])
    b = g.op("Relu", [g.op("Add", [a, g.const(np.float32(-0.2))])])
    c = g.op("Add", [b, h])
    check_two_outputs(g, a, c, monkeypatch, tol=1e-6)


def test_broadcasting_add_is_not_taken_for_a_residual(monkeypatch):
    # [N, C, H, 1] broadcasts over W: a per-row add, neither a bias nor a residual.
    g = zoo.GraphBuilder(seed=7)
    y = g.op("Conv", ["x", g.weight(4, 3, 3, 3)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    g.op("Add", [y, "side"])
    inputs = [zoo.image_input(3, None), helper.make_tensor_value_info("side", TensorProto.FLOAT, [2, 4, 6, 1])]
    proto = g.model(inputs)
    feeds = dict(image(2, 3, 6), side=RNG.standard_normal((2, 4, 6, 1)).astype(np.float32))
    check(proto, feeds, monkeypatch)


def test_compiling_leaves_the_model_untouched(monkeypatch):
    model = ov.Core().read_model(zoo.resnet50(blocks=(1,), width=8, classes=3).SerializeToString())
    before = [op.get_type_name() for op in model.get_ordered_ops()]
    ov.compile_model(model)(image(1, 3, 16))
    assert [op.get_type_name() for op in model.get_ordered_ops()] == before
    assert "BatchNormInference" in before


def test_one_compiled_model_serves_new_image_sizes(monkeypatch):
    compiled = ov.compile_model(zoo.resnet50(blocks=(1, 1), width=8, classes=4).SerializeToString())
    for n, size in [(1, 32), (3, 20), (1, 57)]:
        feeds = image(n, 3, size)
        monkeypatch.setenv("AIOV_GRAPH_OPT", "0")
        plain = ov.compile_model(zoo.resnet50(blocks=(1, 1), width=8, classes=4).SerializeToString())(feeds)[0]
        np.testing.assert_allclose(compiled(feeds)[0], plain, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("k_form", ["transpose_last", "one_transpose"])
@pytest.mark.parametrize("mask_shape", [None, (2, 1, 1, 6), (2, 1, 5, 6), (1, 3, 5, 6), (2, 1, 5, 1)])
@pytest.mark.parametrize("scale_op", ["Div", "Mul", None])
def test_attention_chain_is_fused_and_matches(k_form, mask_shape, scale_op, monkeypatch):
    b, sq, sk, h, d = 2, 5, 6, 3, 4
    g = zoo.GraphBuilder(seed=9)
    q = g.op("Transpose", ["q"], perm=[0, 2, 1, 3])
    v = g.op("Transpose", ["v"], perm=[0, 2, 1, 3])
    if k_form == "transpose_last":
        k = g.op("Transpose", [g.op("Transpose", ["k"], perm=[0, 2, 1, 3])], perm=[0, 1, 3, 2])
    else:  # [b, s, h, d] -> [b, h, d, s] in one step
        k = g.op("Transpose", ["k"], perm=[0, 2, 3, 1])
    s = g.op("MatMul", [q, k])
    if scale_op == "Div":
        s = g.op("Div", [s, g.const(np.float32(2.0))])
    elif scale_op == "Mul":
        s = g.op("Mul", [g.const(np.float32(0.5)), s])
    if mask_shape:
        s = g.op("Add", [s, "mask"])
    p = g.op("Softmax", [s], axis=-1)
    o = g.op("Transpose", [g.op("MatMul", [p, v])], perm=[0, 2, 1, 3])
    g.op("Reshape", [o, g.const(np.array([0, 0, h * d], np.int64))])
    inputs = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, [b, s_, h, d])
        for n, s_ in [("q", sq), ("k", sk), ("v", sk)]
    ]
    feeds = {n: RNG.standard_normal((b, s_, h, d)).astype(np.float32) for n, s_ in [("q", sq), ("k", sk), ("v", sk)]}
    if mask_shape:
        inputs.append(helper.make_tensor_value_info("mask", TensorProto.FLOAT, list(mask_shape)))
        feeds["mask"] = np.where(RNG.random(mask_shape) < 0.3, -1e4, 0).astype(np.float32)
    proto = g.model(inputs)
    check(proto, feeds, monkeypatch, rtol=1e-5, atol=1e-5)
    types = node_types(proto, feeds)
    assert "aiov.Attention" in types and "Softmax" not in types


def test_attention_with_transposed_matmul_from_the_opset(monkeypatch):
    from aiov import opset13 as ops

    b, s, h, d = 1, 7, 2, 8
    q, k, v = (ops.parameter([b, s, h, d], np.float32, name=n) for n in "qkv")
    t = lambda x: ops.transpose(x, [0, 2, 1, 3])  # noqa: E731
    scores = ops.multiply(ops.matmul(t(q), t(k), False, True), np.float32(0.3))
    out = ops.transpose(ops.matmul(ops.softmax(scores, 3), t(v), False, False), [0, 2, 1, 3])
    model = ov.Model([out], [q, k, v])
    feeds = [RNG.standard_normal((b, s, h, d)).astype(np.float32) for _ in range(3)]
    monkeypatch.setenv("AIOV_GRAPH_OPT", "0")
    plain = ov.compile_model(model)(feeds)[0]
    monkeypatch.setenv("AIOV_GRAPH_OPT", "1")
    compiled = ov.compile_model(model, "CPU", {"PERF_COUNT": True})
    request = compiled.create_infer_request()
    np.testing.assert_allclose(request.infer(feeds)[0], plain, rtol=1e-5, atol=1e-5)
    assert [p.node_type for p in request.get_profiling_info()] == ["aiov.Attention"]


def test_new_input_shapes_reuse_the_packed_weights():
    # A server feeding many image sizes gets a plan per shape; the weights rearranged for the
    # kernels (Winograd transforms, depthwise taps, GEMM panels) are made once and shared, so
    # memory does not grow by a copy of the weights per shape. Results stay right throughout.
    g = zoo.GraphBuilder(seed=21)
    y = g.op(
        "Relu",
        [g.op("Conv", ["x", g.weight(48, 48, 3, 3), g.weight(48, scale=0.1)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])],
    )  # Winograd
    y = g.op("Conv", [y, g.weight(48, 1, 3, 3)], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=48)  # depthwise
    y = g.op("Conv", [y, g.weight(24, 48, 3, 3)], kernel_shape=[3, 3], strides=[2, 2])  # conv panels
    y = g.op("Flatten", [g.op("GlobalAveragePool", [y])])
    g.op("MatMul", [y, g.weight(24, 30)])
    proto = g.model([zoo.image_input(48, None)])
    compiled = ov.compile_model(proto.SerializeToString())
    reference = ReferenceEvaluator(proto)
    counts = []
    for n, size in [(1, 16), (2, 24), (1, 20), (3, 18), (1, 16)]:
        x = np.random.default_rng(n * size).standard_normal((n, 48, size, size)).astype(np.float32)
        np.testing.assert_allclose(compiled({"x": x})[0], reference.run(None, {"x": x})[0], rtol=1e-4, atol=1e-4)
        counts.append(compiled._native.shared_weights)
    assert compiled._native.cached_plans == 4
    assert counts == [4] * 5  # Winograd, depthwise, conv panels, MatMul panels: one of each


def test_weights_packed_for_another_row_count_are_packed_again():
    # The panel layout depends on how many rows meet the weights (a tall A takes the wide
    # tiles; a short one keeps narrow weights as rows), so those plans must not share panels.
    g = zoo.GraphBuilder(seed=22)
    g.op("MatMul", ["x", g.weight(32, 8)])
    proto = g.model([helper.make_tensor_value_info("x", TensorProto.FLOAT, ["m", 32])])
    compiled = ov.compile_model(proto.SerializeToString())
    reference = ReferenceEvaluator(proto)
    for m in (1, 4096, 2, 4096):
        x = np.random.default_rng(m).standard_normal((m, 32)).astype(np.float32)
        np.testing.assert_allclose(compiled({"x": x})[0], reference.run(None, {"x": x})[0], rtol=1e-4, atol=1e-4)
    assert compiled._native.shared_weights == 2
    # Once the plans using the row layout leave the plan cache (64 shapes), so does that copy.
    for m in range(100, 164):
        compiled({"x": np.ones((m, 32), np.float32)})
    assert compiled._native.cached_plans == 64
    assert compiled._native.shared_weights == 1


def shuffle_units_model(batch, groups=2, channels=8, size=6, units=2):
    """ShuffleNetV2's units as torch exports them with a static input: convolutions, their
    outputs concatenated, the channel shuffle (view to [n, g, c / g, h, w], transpose(1, 2), view
    to [n, -1, h, w]) with every view's dims computed from Shape, then chunk(2, dim=1) as two
    Slices whose bounds are computed from the shape too, each half read by a convolution."""
    g = zoo.GraphBuilder(9)

    def dim(x, axis):
        return g.op(
            "Unsqueeze", [g.op("Gather", [g.op("Shape", [x]), g.const(np.int64(axis))]), g.const(np.int64([0]))]
        )

    x = g.conv_bn("x", 3, channels, 3)
    for _ in range(units):
        a = g.conv_bn(x, channels, channels // 2, 1)
        b = g.conv_bn(x, channels, channels // 2, 3)
        cat = g.op("Concat", [a, b], axis=1)
        target = g.op(
            "Concat",
            [
                dim(cat, 0),
                g.const(np.int64([groups])),
                g.const(np.int64([channels // groups])),
                dim(cat, 2),
                dim(cat, 3),
            ],
            axis=0,
        )
        shuffled = g.op("Transpose", [g.op("Reshape", [cat, target])], perm=[0, 2, 1, 3, 4])
        back = g.op("Concat", [dim(cat, 0), g.const(np.int64([-1])), dim(cat, 2), dim(cat, 3)], axis=0)
        x = g.op("Reshape", [shuffled, back])
        half = g.op("Div", [g.op("Gather", [g.op("Shape", [x]), g.const(np.int64(1))]), g.const(np.int64(2))])
        half = g.op("Unsqueeze", [half, g.const(np.int64([0]))])
        axis = g.const(np.int64([1]))
        low = g.op("Slice", [x, g.const(np.int64([0])), half, axis])
        high = g.op("Slice", [x, half, g.op("Mul", [half, g.const(np.int64([2]))]), axis])
        x = g.op("Concat", [g.conv_bn(low, channels // 2, channels // 2, 1), high], axis=1)
    proto = g.model([helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, size, size])])
    return proto, image(batch, 3, size)


def test_channel_shuffle_and_its_chunks_stay_in_the_convolutions_layout(monkeypatch):
    # With the input's dims static, the shapes the views are computed from fold, the shuffle runs
    # on the NHWC channels and the chunks slice them there: only the region's edges transpose.
    proto, feeds = shuffle_units_model(batch=3)
    check(proto, feeds, monkeypatch)
    types = node_types(proto, feeds)
    # The two shuffles' (5-D, on the channels) and the output's to NCHW; the first convolution
    # reads the planar image itself.
    assert types.count("Transpose") == 2 + 1
    assert "ShapeOf" not in types and types.count("Slice") == 4


def test_channel_shuffle_with_a_dynamic_batch_still_matches(monkeypatch):
    proto, feeds = shuffle_units_model(batch=3)
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "n"  # the views stay computed
    check(proto, feeds, monkeypatch)
