"""The fusions that decoder and T5-style exports need (RMSNorm, tanh-GELU, the third erf-GELU
order, Pow by a constant), each on the pattern as torch exports it, built with onnx.helper:
the pass fires (the plan's steps, through the per-node profile) and the results match
onnxruntime and the graph as written (AIOV_GRAPH_OPT=0)."""

from __future__ import annotations

import numpy as np
import pytest

import aiov as ov

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

RNG = np.random.default_rng(23)


def scalar(name, value):
    return numpy_helper.from_array(np.array([value], np.float32), name)


def onnx_model(nodes, initializers, shape=("b", "s", 32), inputs=None):
    inputs = inputs or {"x": shape}
    graph = helper.make_graph(
        nodes,
        "decoder_pattern",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, list(dims)) for name, dims in inputs.items()],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def run_and_check(model_bytes, x, monkeypatch, tol=1e-5):
    """The optimized plan's step types, after checking its output against onnxruntime and
    against the plain graph. x: the input "x", or a dict of the inputs."""
    feeds = x if isinstance(x, dict) else {"x": x}
    monkeypatch.setenv("AIOV_GRAPH_OPT", "0")
    plain = ov.compile_model(model_bytes)(feeds)["y"]
    monkeypatch.setenv("AIOV_GRAPH_OPT", "1")
    request = ov.compile_model(model_bytes, "CPU", {"PERF_COUNT": True}).create_infer_request()
    got = request.infer(feeds)["y"]
    np.testing.assert_allclose(got, plain, rtol=tol, atol=tol)
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(got, session.run(None, feeds)[0], rtol=tol, atol=tol)
    return [p.node_type for p in request.get_profiling_info()]


def rms_norm_nodes(x, out, with_casts, square="Pow", reciprocal=True):
    """T5's and Llama's RMSNorm as torch exports it: x * (1 / sqrt(mean(x^2) + eps)) * gamma."""
    nodes = []
    if with_casts:  # hidden_states.to(torch.float32) of a float tensor
        nodes.append(helper.make_node("Cast", [x], ["xf"], to=TensorProto.FLOAT))
        x = "xf"
    if square == "Pow":
        nodes.append(helper.make_node("Pow", [x, "two"], ["sq"]))
    else:
        nodes.append(helper.make_node("Mul", [x, x], ["sq"]))
    nodes += [
        helper.make_node("ReduceMean", ["sq"], ["ms"], axes=[-1], keepdims=1),
        helper.make_node("Add", ["ms", "eps"], ["mse"]),
        helper.make_node("Sqrt", ["mse"], ["rms"]),
    ]
    if reciprocal:
        nodes += [helper.make_node("Div", ["one", "rms"], ["inv"]), helper.make_node("Mul", [x, "inv"], ["normed"])]
    else:
        nodes.append(helper.make_node("Div", [x, "rms"], ["normed"]))
    if with_casts:
        nodes.append(helper.make_node("Cast", ["normed"], ["normed_f"], to=TensorProto.FLOAT))
        nodes.append(helper.make_node("Mul", ["gamma", "normed_f"], [out]))
    else:
        nodes.append(helper.make_node("Mul", ["gamma", "normed"], [out]))
    return nodes


def rms_norm_initializers(width=32):
    gamma = RNG.uniform(0.5, 1.5, width).astype(np.float32)
    return [
        scalar("two", 2.0),
        scalar("eps", 1e-6),
        scalar("one", 1.0),
        numpy_helper.from_array(gamma, "gamma"),
    ]


@pytest.mark.parametrize(
    "with_casts, square, reciprocal",
    [(False, "Pow", True), (True, "Pow", True), (False, "Mul", False)],
    ids=["t5", "llama_casts", "square_by_mul_divide"],
)
def test_rms_norm_becomes_one_op(monkeypatch, with_casts, square, reciprocal):
    model = onnx_model(rms_norm_nodes("x", "y", with_casts, square, reciprocal), rms_norm_initializers())
    x = RNG.standard_normal((3, 5, 32)).astype(np.float32) * 2
    steps = run_and_check(model, x, monkeypatch)
    # The model's own Cast of its input stays (a copy of the parameter), the rest is one op.
    assert [s for s in steps if s != "Convert"] == ["aiov.RMSNorm"]


def test_rms_norm_whose_square_is_read_elsewhere_stays_as_written(monkeypatch):
    nodes = rms_norm_nodes("x", "normalized", False)
    nodes.append(helper.make_node("Add", ["normalized", "sq"], ["y"]))  # x^2 read again
    model = onnx_model(nodes, rms_norm_initializers())
    steps = run_and_check(model, RNG.standard_normal((2, 4, 32)).astype(np.float32), monkeypatch)
    assert "aiov.RMSNorm" not in steps


def test_rms_norm_over_a_row_of_zeros_is_zero_not_nan(monkeypatch):
    model = onnx_model(rms_norm_nodes("x", "y", False), rms_norm_initializers())
    x = RNG.standard_normal((2, 3, 32)).astype(np.float32)
    x[1, 2] = 0
    run_and_check(model, x, monkeypatch)


def tanh_gelu_nodes():
    # 0.5 * x * (1 + tanh(c * (x + k * x^3))): GPT-2's "gelu_new" when k = 0.044715, c = sqrt(2/pi).
    return [
        helper.make_node("Mul", ["x", "half"], ["xh"]),
        helper.make_node("Pow", ["x", "three"], ["cube"]),
        helper.make_node("Mul", ["cube", "k"], ["kc"]),
        helper.make_node("Add", ["x", "kc"], ["inner"]),
        helper.make_node("Mul", ["inner", "c"], ["arg"]),
        helper.make_node("Tanh", ["arg"], ["t"]),
        helper.make_node("Add", ["t", "one"], ["t1"]),
        helper.make_node("Mul", ["xh", "t1"], ["y"]),
    ]


def test_gpt2_tanh_gelu_becomes_gelu(monkeypatch):
    # 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))), as GPT-2's "gelu_new" exports.
    nodes = tanh_gelu_nodes()
    inits = [
        scalar("half", 0.5),
        scalar("three", 3.0),
        scalar("k", 0.044715),
        scalar("c", np.sqrt(2 / np.pi)),
        scalar("one", 1.0),
    ]
    x = RNG.standard_normal((2, 5, 32)).astype(np.float32) * 3
    assert run_and_check(onnx_model(nodes, inits), x, monkeypatch, tol=1e-4) == ["Gelu"]


def test_erf_gelu_with_the_half_inside_becomes_gelu(monkeypatch):
    # x * (0.5 * (1 + erf(x / sqrt(2)))), the order torch.onnx's dynamo exporter writes.
    nodes = [
        helper.make_node("Div", ["x", "root2"], ["scaled"]),
        helper.make_node("Erf", ["scaled"], ["e"]),
        helper.make_node("Add", ["e", "one"], ["e1"]),
        helper.make_node("Mul", ["half", "e1"], ["he"]),
        helper.make_node("Mul", ["x", "he"], ["y"]),
    ]
    inits = [scalar("root2", np.sqrt(2.0)), scalar("one", 1.0), scalar("half", 0.5)]
    x = RNG.standard_normal((2, 5, 32)).astype(np.float32) * 3
    assert run_and_check(onnx_model(nodes, inits), x, monkeypatch, tol=1e-4) == ["Gelu"]


def test_tanh_that_is_not_a_gelu_stays_as_written(monkeypatch):
    # The same shape with another cubic coefficient is some other function.
    nodes = tanh_gelu_nodes()
    inits = [scalar("half", 0.5), scalar("three", 3.0), scalar("k", 0.1), scalar("c", np.sqrt(2 / np.pi))]
    inits.append(scalar("one", 1.0))
    steps = run_and_check(onnx_model(nodes, inits), RNG.standard_normal((2, 3, 32)).astype(np.float32), monkeypatch)
    assert "Gelu" not in steps


@pytest.mark.parametrize("exponent", [2.0, 3.0, 1.0, -1.0, 2.5, 0.0])
def test_pow_by_one_constant_matches_numpy_on_edge_values(monkeypatch, exponent):
    # The common exponents take multiplies instead of std::pow; every exponent keeps pow's
    # results on negatives, zeros, infinities and NaN.
    model = onnx_model([helper.make_node("Pow", ["x", "e"], ["y"])], [scalar("e", exponent)], shape=[2, 9])
    x = np.array(
        [[-2.5, -1.0, -0.0, 0.0, 0.5, 3.0, np.inf, -np.inf, np.nan], [1e20, -1e-20, 7.0, -7.0, 2.0, 1e-3, 4, 9, -3]],
        np.float32,
    )
    got = ov.compile_model(model)({"x": x})["y"]
    with np.errstate(all="ignore"):
        expected = np.power(x, np.float32(exponent))
    np.testing.assert_allclose(got, expected, rtol=1e-6, equal_nan=True)
    assert np.array_equal(np.signbit(got), np.signbit(expected))


def test_t5_attention_with_position_bias_and_padding_mask_is_fused(monkeypatch):
    # T5 does not scale the scores and adds two masks one after the other: the relative
    # position bias [1, h, s, s] and the padding mask [b, 1, 1, s].
    b, s, h, d = 3, 5, 4, 8
    nodes = [
        helper.make_node("Transpose", ["q"], ["qh"], perm=[0, 2, 1, 3]),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 3, 1]),
        helper.make_node("Transpose", ["v"], ["vh"], perm=[0, 2, 1, 3]),
        helper.make_node("MatMul", ["qh", "kt"], ["scores"]),
        helper.make_node("Add", ["scores", "bias"], ["biased"]),
        helper.make_node("Add", ["biased", "mask"], ["masked"]),
        helper.make_node("Softmax", ["masked"], ["probs"], axis=-1),
        helper.make_node("MatMul", ["probs", "vh"], ["ctx"]),
        helper.make_node("Transpose", ["ctx"], ["y"], perm=[0, 2, 1, 3]),
    ]
    bias = numpy_helper.from_array(RNG.standard_normal((1, h, s, s)).astype(np.float32), "bias")
    inputs = {"q": [b, s, h, d], "k": [b, s, h, d], "v": [b, s, h, d], "mask": [b, 1, 1, s]}
    feeds = {n: RNG.standard_normal(dims).astype(np.float32) for n, dims in inputs.items()}
    feeds["mask"] = np.zeros((b, 1, 1, s), np.float32)
    feeds["mask"][1, ..., 3:] = np.finfo(np.float32).min  # padded positions of the second sequence
    steps = run_and_check(onnx_model(nodes, [bias], inputs=inputs), feeds, monkeypatch, tol=1e-5)
    assert "aiov.Attention" in steps and "Softmax" not in steps
