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
    feeds = {k: v for k, v in feeds.items() if k}  # "" is an omitted operand
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


# ---- DeformConv ---------------------------------------------------------------------------


def _deform_feeds(n, c, hw, oc, k, group=1, offset_group=1, stride=1, pad=0, dilation=1, bias=True, mask=True):
    h, w = hw
    oh = (h + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    ow = (w + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    feeds = {
        "x": RNG.standard_normal((n, c, h, w)).astype(np.float32),
        "w": RNG.standard_normal((oc, c // group, k, k)).astype(np.float32),
        # Offsets up to two pixels either way: taps fall between pixels and outside the image.
        "offset": RNG.uniform(-2, 2, (n, offset_group * 2 * k * k, oh, ow)).astype(np.float32),
    }
    if bias:
        feeds["b"] = RNG.standard_normal(oc).astype(np.float32)
    elif mask:
        feeds[""] = None  # B omitted before the mask
    if mask:
        feeds["mask"] = RNG.uniform(0, 1, (n, offset_group * k * k, oh, ow)).astype(np.float32)
    attrs = dict(group=group, offset_group=offset_group, strides=[stride] * 2, pads=[pad] * 4, dilations=[dilation] * 2)
    return feeds, attrs


@pytest.mark.parametrize(
    "shape, options",
    [
        ((1, 2, (5, 6), 3, 3), {}),
        ((2, 4, (7, 5), 6, 3), dict(group=2, offset_group=2, stride=2, pad=1)),
        ((1, 4, (6, 6), 4, 2), dict(offset_group=4, dilation=2, mask=False)),
        ((1, 3, (4, 4), 2, 1), dict(bias=False, mask=False)),
        ((1, 2, (5, 4), 2, 2), dict(bias=False)),
    ],
)
def test_deform_conv_matches_the_reference(shape, options):
    feeds, attrs = _deform_feeds(*shape, **options)
    model = _model("DeformConv", feeds, opset=19, **attrs)
    _check(model, feeds, rtol=1e-4, atol=1e-4)


def test_deform_conv_with_zero_offsets_is_a_convolution():
    feeds, attrs = _deform_feeds(1, 2, (6, 6), 3, 3, pad=1, mask=False)
    feeds["offset"][:] = 0
    got = ov.compile_model(_model("DeformConv", feeds, opset=19, **attrs).SerializeToString())(feeds)[0]
    conv = helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1] * 4)
    inputs = [
        helper.make_tensor_value_info(k, TensorProto.FLOAT, list(v.shape)) for k, v in feeds.items() if k != "offset"
    ]
    graph = helper.make_graph([conv], "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    expected = ReferenceEvaluator(helper.make_model(graph)).run(None, {k: v for k, v in feeds.items() if k != "offset"})
    np.testing.assert_allclose(got, expected[0], rtol=1e-4, atol=1e-4)


def test_deform_conv_nan_offset_gives_nan_only_where_read():
    feeds, attrs = _deform_feeds(1, 1, (4, 4), 1, 1, bias=False, mask=False)
    feeds["offset"][0, 0, 1, 2] = np.nan
    got = ov.compile_model(_model("DeformConv", feeds, opset=19, **attrs).SerializeToString())(feeds)[0]
    assert np.isnan(got[0, 0, 1, 2]) and np.isfinite(np.delete(got.ravel(), 6)).all()


def test_deform_conv_refuses_an_offset_of_the_wrong_shape():
    feeds, attrs = _deform_feeds(1, 2, (5, 5), 2, 3, mask=False)
    feeds["offset"] = feeds["offset"][:, :10]
    with pytest.raises(ov.InputError, match="the_node.*offset"):
        ov.compile_model(_model("DeformConv", feeds, opset=19, **attrs).SerializeToString())


# ---- MaxUnpool ----------------------------------------------------------------------------


def _pooled(shape, kernel, stride):
    """A MaxPool's values and Indices (ONNX's reference) for random input of `shape`."""
    x = RNG.standard_normal(shape).astype(np.float32)
    k = len(shape) - 2
    node = helper.make_node("MaxPool", ["x"], ["v", "i"], kernel_shape=[kernel] * k, strides=[stride] * k)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info(o, t, None) for o, t in (("v", TensorProto.FLOAT), ("i", TensorProto.INT64))],
    )
    return ReferenceEvaluator(helper.make_model(graph)).run(None, {"x": x})


@pytest.mark.parametrize("shape", [(2, 3, 6, 8), (1, 2, 8), (1, 2, 4, 4, 6)])
def test_max_unpool_puts_each_maximum_back(shape):
    values, indices = _pooled(shape, 2, 2)
    k = len(shape) - 2
    feeds = {"x": values, "i": indices}
    model = _model("MaxUnpool", feeds, opset=11, kernel_shape=[2] * k, strides=[2] * k)
    got = _check(model, feeds, rtol=0, atol=0)
    assert got.shape[2:] == tuple(s // 2 * 2 for s in shape[2:])


def test_max_unpool_pads_to_an_output_shape_given_at_run_time():
    # Indices count in the unpooled shape (4 x 6); output_shape adds a row and a column at the end.
    values, indices = _pooled((1, 2, 4, 6), 2, 2)
    feeds = {"x": values, "i": indices, "shape": np.array([1, 2, 5, 7], np.int64)}
    model = _model("MaxUnpool", feeds, opset=11, kernel_shape=[2, 2], strides=[2, 2])
    got = _check(model, feeds, rtol=0, atol=0)
    assert got.shape == (1, 2, 5, 7) and not got[:, :, 4].any() and not got[..., 6].any()


def test_max_unpool_refuses_an_index_outside_the_unpooled_tensor():
    values, indices = _pooled((1, 1, 4, 4), 2, 2)
    indices[0, 0, 1, 1] = 16
    model = _model("MaxUnpool", {"x": values, "i": indices}, opset=11, kernel_shape=[2, 2], strides=[2, 2])
    with pytest.raises(ov.InputError, match="the_node.*index 16 is outside"):
        ov.compile_model(model.SerializeToString())({"x": values, "i": indices})


def test_max_unpool_refuses_an_output_shape_smaller_than_the_unpooled_one():
    values, indices = _pooled((1, 1, 4, 4), 2, 2)
    model = _model(
        "MaxUnpool", {"x": values, "i": indices}, {"shape": [1, 1, 3, 4]}, opset=11, kernel_shape=[2, 2], strides=[2, 2]
    )
    with pytest.raises(ov.InputError, match="the_node.*output_shape"):
        ov.compile_model(model.SerializeToString())


# ---- MaxPool: integer pooling, column-major Indices ----------------------------------------


def _max_pool_model(shape, elem, indices=True, **attrs):
    k = len(shape) - 2
    outputs = ["v", "i"] if indices else ["v"]
    node = helper.make_node("MaxPool", ["x"], outputs, name="the_node", kernel_shape=[2] * k, **attrs)
    types = {"v": elem, "i": TensorProto.INT64}
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", elem, list(shape))],
        [helper.make_tensor_value_info(o, types[o], None) for o in outputs],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])


@pytest.mark.parametrize("dtype, elem", [(np.uint8, TensorProto.UINT8), (np.int8, TensorProto.INT8)])
def test_max_pool_of_integers_keeps_their_type(dtype, elem):
    info = np.iinfo(dtype)
    x = RNG.integers(info.min, info.max, (2, 3, 6, 5), endpoint=True).astype(dtype)
    x[0, 0, :2, :2] = info.min  # a window of the type's lowest value
    model = _max_pool_model(x.shape, elem, indices=False, strides=[2, 2], pads=[1, 0, 1, 1])
    expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
    got = ov.compile_model(model.SerializeToString())({"x": x})[0]
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("shape", [(2, 3, 6, 5), (1, 2, 4, 6, 3)])
def test_max_pool_column_major_indices_match_the_reference(shape):
    x = RNG.standard_normal(shape).astype(np.float32)
    # Strides of 2: with strides of 1 the reference evaluator ignores storage_order.
    model = _max_pool_model(shape, TensorProto.FLOAT, storage_order=1, strides=[2] * (len(shape) - 2))
    expected = ReferenceEvaluator(model).run(None, {"x": x})
    results = ov.compile_model(model.SerializeToString())({"x": x})
    values, indices = results[0], results[1]
    np.testing.assert_array_equal(values, expected[0])
    np.testing.assert_array_equal(indices, expected[1])
    # Each index names its maximum in the input laid out with the first spatial dim fastest.
    spatial = tuple(range(2, len(shape)))
    column_major = np.transpose(x, (0, 1) + spatial[::-1])
    np.testing.assert_array_equal(column_major.ravel()[indices.ravel()], values.ravel())


def test_max_pool_column_major_indices_are_refused_by_the_ir_writer(tmp_path):
    model = _max_pool_model((1, 1, 4, 4), TensorProto.FLOAT, storage_order=1, strides=[2, 2])
    with pytest.raises(ov.InputError, match="column-major"):
        ov.save_model(ov.Core().read_model(model.SerializeToString()), str(tmp_path / "m.xml"))
