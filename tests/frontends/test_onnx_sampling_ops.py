"""ONNX ops that sample or scatter spatially: AffineGrid, DeformConv and MaxUnpool. Each matches
ONNX's reference evaluator beyond the node suite's cases (other sizes, batches, groups, a size
known only when the plan is built), and bad operands are refused naming the node."""

import numpy as np
import pytest

import aiov as ov

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

RNG = np.random.default_rng(1919)
_ELEM = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float16): TensorProto.FLOAT16}


def _model(op, feeds, consts=None, opset=20, **attrs):
    """One ONNX node reading model inputs `feeds` (name -> array, in order) then constant
    int64 operands `consts` (name -> values); an empty name in `feeds` skips that operand."""
    consts = consts or {}
    node = helper.make_node(op, list(feeds) + list(consts), ["y"], name="the_node", **attrs)
    inputs = [
        helper.make_tensor_value_info(name, _ELEM.get(a.dtype, TensorProto.INT64), list(a.shape))
        for name, a in feeds.items()
        if name
    ]
    inits = [numpy_helper.from_array(np.asarray(v, np.int64), name) for name, v in consts.items()]
    out = helper.make_tensor_value_info("y", _ELEM.get(next(iter(feeds.values())).dtype, TensorProto.FLOAT), None)
    graph = helper.make_graph([node], "g", inputs, [out], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _check(model, feeds, rtol=1e-5, atol=1e-5):
    feeds = {k: v for k, v in feeds.items() if k}
    expected = ReferenceEvaluator(model).run(None, feeds)[0]
    got = ov.compile_model(model.SerializeToString())(feeds)[0]
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)
    return got


# ---- AffineGrid ---------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:divide by zero")  # the reference's step for a dim of 1
@pytest.mark.parametrize("align_corners", [0, 1])
@pytest.mark.parametrize("size", [(3, 1, 4, 7), (2, 5, 1, 3, 2), (1, 2, 1, 1)])
def test_affine_grid_matches_the_reference(size, align_corners):
    k = len(size) - 2
    theta = RNG.uniform(-2, 2, (size[0], k, k + 1)).astype(np.float32)
    model = _model("AffineGrid", {"theta": theta}, {"size": size}, align_corners=align_corners)
    got = _check(model, {"theta": theta})
    assert got.shape == (size[0], *size[2:], k)


def test_affine_grid_identity_gives_the_pixel_centres():
    theta = np.array([[[1, 0, 0], [0, 1, 0]]], np.float32)
    model = _model("AffineGrid", {"theta": theta}, {"size": (1, 1, 2, 4)})
    grid = ov.compile_model(model.SerializeToString())({"theta": theta})[0]
    np.testing.assert_allclose(grid[0, 0, :, 0], [-0.75, -0.25, 0.25, 0.75])  # x runs along the width
    np.testing.assert_allclose(grid[0, :, 0, 1], [-0.5, 0.5])


def test_affine_grid_size_given_at_run_time_plans_per_size():
    theta = RNG.uniform(-1, 1, (2, 2, 3)).astype(np.float32)
    model = _model("AffineGrid", {"theta": theta, "size": np.zeros(4, np.int64)})
    compiled = ov.compile_model(model.SerializeToString())
    for size in ([2, 3, 5, 6], [2, 1, 2, 9]):
        feeds = {"theta": theta, "size": np.array(size, np.int64)}
        expected = ReferenceEvaluator(model).run(None, feeds)[0]
        np.testing.assert_allclose(compiled(feeds)[0], expected, rtol=1e-5, atol=1e-6)


def test_affine_grid_in_f16_gives_f16():
    theta = RNG.uniform(-1, 1, (2, 2, 3)).astype(np.float16)
    model = _model("AffineGrid", {"theta": theta}, {"size": (2, 1, 3, 4)})
    got = ov.compile_model(model.SerializeToString())({"theta": theta})[0]
    # ONNX's grid has theta's type (the reference evaluator always returns f32).
    expected = ReferenceEvaluator(model).run(None, {"theta": theta})[0]
    assert got.dtype == np.float16
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-3)


def test_affine_grid_refuses_a_theta_that_does_not_fit_the_size():
    theta = np.zeros((1, 3, 4), np.float32)
    with pytest.raises(ov.InputError, match="the_node.*theta must be"):
        ov.compile_model(_model("AffineGrid", {"theta": theta}, {"size": (1, 1, 4, 4)}).SerializeToString())


def test_affine_grid_refuses_a_negative_size():
    theta = np.zeros((1, 2, 3), np.float32)
    with pytest.raises(ov.InputError, match="the_node.*must not be negative"):
        ov.compile_model(_model("AffineGrid", {"theta": theta}, {"size": (1, 1, -4, 4)}).SerializeToString())
