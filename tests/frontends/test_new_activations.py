"""Activations each added in one place (kernels/activations.hpp plus one registration in
ops/elementwise.cpp): Mish, Selu, Celu, Softsign, ThresholdedRelu, Shrink, and HardSwish as
an epilogue activation. Each is reachable from ONNX, OpenVINO IR and aiov.opset with no other
edit, matches ONNX's reference evaluator, and gives the same answer fused into a convolution's
epilogue (or an elementwise chain) as unfused."""

import numpy as np
import pytest

import aiov as ov
import aiov.opset13 as ops

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

# ONNX op, its opset, ONNX attributes (non-default), aiov.opset builder, the same attributes for it.
CASES = [
    ("Mish", 18, {}, "mish", {}),
    ("Selu", 13, {"alpha": 1.5, "gamma": 0.75}, "selu", {"alpha": 1.5, "gamma": 0.75}),
    ("Celu", 13, {"alpha": 0.5}, "celu", {"alpha": 0.5}),
    ("Softsign", 13, {}, "softsign", {}),
    ("ThresholdedRelu", 13, {"alpha": 0.3}, "thresholded_relu", {"alpha": 0.3}),
    ("Shrink", 13, {"lambd": 0.4, "bias": 0.1}, "shrink", {"lambd": 0.4, "bias": 0.1}),
    ("HardSwish", 14, {}, "hswish", {}),
]
IDS = [c[0] for c in CASES]
RNG = np.random.default_rng(5)
X = (RNG.standard_normal((2, 3, 7, 5)) * 3).astype(np.float32)


def _onnx_model(op, opset, attrs, shape=X.shape, dtype=TensorProto.FLOAT):
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", dtype, list(shape))],
        [helper.make_tensor_value_info("y", dtype, list(shape))],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _reference(op, opset, attrs, x=X):
    dtype = TensorProto.DOUBLE if x.dtype == np.float64 else TensorProto.FLOAT
    return ReferenceEvaluator(_onnx_model(op, opset, attrs, x.shape, dtype)).run(None, {"x": x})[0]


@pytest.mark.parametrize("op, opset, attrs, builder, kwargs", CASES, ids=IDS)
def test_from_onnx_matches_the_reference(op, opset, attrs, builder, kwargs):
    got = ov.compile_model(_onnx_model(op, opset, attrs).SerializeToString())(X)[0]
    np.testing.assert_allclose(got, _reference(op, opset, attrs), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op, opset, attrs, builder, kwargs", CASES, ids=IDS)
def test_float64_from_onnx_matches_the_reference(op, opset, attrs, builder, kwargs):
    if op == "HardSwish":
        pytest.skip("ONNX's reference computes HardSwish with a float32 alpha of 1/6")
    x = X.astype(np.float64)
    model = _onnx_model(op, opset, attrs, x.shape, TensorProto.DOUBLE)
    got = ov.compile_model(model.SerializeToString())(x)[0]
    np.testing.assert_allclose(got, _reference(op, opset, attrs, x), rtol=1e-12, atol=1e-12)


def _opset_model(builder, kwargs):
    x = ops.parameter(list(X.shape), np.float32, name="x")
    y = getattr(ops, builder)(x, name="act", **kwargs)
    return ov.Model([y], [x], "one_activation")


@pytest.mark.parametrize("op, opset, attrs, builder, kwargs", CASES, ids=IDS)
def test_opset_builder_and_ir_round_trip(op, opset, attrs, builder, kwargs, tmp_path):
    model = _opset_model(builder, kwargs)
    expected = _reference(op, opset, attrs)
    np.testing.assert_allclose(ov.compile_model(model)(X)[0], expected, rtol=1e-5, atol=1e-6)
    ov.save_model(model, tmp_path / "m.xml")
    again = ov.Core().read_model(tmp_path / "m.xml")
    assert [n.get_type_name() for n in again.get_ordered_ops()] == [n.get_type_name() for n in model.get_ordered_ops()]
    np.testing.assert_allclose(ov.compile_model(again)(X)[0], expected, rtol=1e-5, atol=1e-6)


def _conv_then(op, opset, attrs, then_add=False):
    w = numpy_helper.from_array((RNG.standard_normal((4, 3, 3, 3)) * 0.5).astype(np.float32), "w")
    b = numpy_helper.from_array(RNG.standard_normal(4).astype(np.float32), "b")
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node(op, ["c"], ["a" if then_add else "y"], **attrs),
    ]
    inits = [w, b]
    if then_add:  # activation then two elementwise ops: an ElementwiseChain
        inits.append(numpy_helper.from_array(np.float32(0.25), "k"))
        nodes += [helper.make_node("Relu", ["a"], ["r"]), helper.make_node("Mul", ["r", "k"], ["y"])]
        nodes[0] = helper.make_node("Sigmoid", ["x"], ["c"])  # no producer to fuse into
        inits = inits[2:]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(X.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _run(model, monkeypatch, optimize):
    monkeypatch.setenv("AIOV_GRAPH_OPT", "1" if optimize else "0")
    compiled = ov.compile_model(model.SerializeToString(), "CPU", {"PERF_COUNT": True})
    request = compiled.create_infer_request()
    request.infer({"x": X})
    return request.get_output_tensor(0).data.copy(), [p.node_type for p in request.get_profiling_info()]


@pytest.mark.parametrize("op, opset, attrs, builder, kwargs", CASES, ids=IDS)
def test_fused_into_convolution_matches_unfused(op, opset, attrs, builder, kwargs, monkeypatch):
    model = _conv_then(op, opset, attrs)
    plain, plain_ops = _run(model, monkeypatch, optimize=False)
    fused, fused_ops = _run(model, monkeypatch, optimize=True)
    assert "aiov.FusedConv" in fused_ops and len(fused_ops) < len(plain_ops), fused_ops  # the activation folded in
    np.testing.assert_allclose(fused, plain, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fused, ReferenceEvaluator(model).run(None, {"x": X})[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("op, opset, attrs, builder, kwargs", CASES, ids=IDS)
def test_chain_step_matches_unfused(op, opset, attrs, builder, kwargs, monkeypatch):
    model = _conv_then(op, opset, attrs, then_add=True)
    plain, _ = _run(model, monkeypatch, optimize=False)
    chained, chained_ops = _run(model, monkeypatch, optimize=True)
    assert "aiov.ElementwiseChain" in chained_ops, chained_ops
    np.testing.assert_allclose(chained, plain, rtol=1e-5, atol=1e-6)


def test_selu_attributes_are_validated():
    x = ops.parameter([3], np.float32)
    with pytest.raises(ov.InputError, match="Celu 'c': attribute 'alpha' must be non-zero, got 0"):
        ops.celu(x, alpha=0.0, name="c")
    with pytest.raises(ov.InputError, match="has no attribute 'beta'"):
        ops.selu(x, beta=1.0)
