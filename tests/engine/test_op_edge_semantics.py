"""Edge cases where the engine used to be silently different from numpy / the ONNX spec:
index element types, NaN through ReLU, max pooling and clamps, Clip with min > max, and a
Range with a NaN bound. Each is checked against numpy (and onnxruntime when installed)."""

import numpy as np
import pytest
from onnx import TensorProto, helper

import aiov as ov
import aiov.opset13 as ops

INDEX_TYPES = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]


@pytest.mark.parametrize("dtype", INDEX_TYPES, ids=lambda t: np.dtype(t).name)
def test_gather_reads_indices_in_their_own_width(dtype):
    data = np.arange(40, dtype=np.float32).reshape(10, 4)
    signed = np.issubdtype(dtype, np.signedinteger)
    indices = np.array([[1, 9, 0], [-1 if signed else 7, 3, 3]]).astype(dtype)
    d = ops.parameter([10, 4], np.float32, name="d")
    i = ops.parameter(list(indices.shape), dtype, name="i")
    compiled = ov.compile_model(ov.Model([ops.gather(d, i, 0)], [d, i]))
    np.testing.assert_array_equal(compiled([data, indices])[0], np.take(data, indices.astype(np.int64), axis=0))


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.uint64], ids=lambda t: np.dtype(t).name)
def test_gather_out_of_range_indices_of_narrow_types_raise(dtype):
    d = ops.parameter([10], np.float32, name="d")
    i = ops.parameter([2], dtype, name="i")
    compiled = ov.compile_model(ov.Model([ops.gather(d, i, 0)], [d, i]))
    bad = np.array([0, np.iinfo(dtype).max], dtype)
    with pytest.raises(ov.InputError, match="out of range"):
        compiled([np.zeros(10, np.float32), bad])


def test_gather_refuses_float_indices():
    d = ops.parameter([10], np.float32, name="d")
    i = ops.parameter([2], np.float32, name="i")
    with pytest.raises(ov.InputError, match="integer"):
        ops.gather(d, i, 0)


def test_range_with_a_nan_bound_raises():
    for bounds in [(0.0, np.nan, 1.0), (np.nan, 1.0, 1.0), (0.0, 1.0, np.nan), (0.0, np.inf, 1.0)]:
        with pytest.raises(ov.InputError, match="finite"):
            ops.range(*[ops.constant(np.float32(v)) for v in bounds])
    # The same through a run-time input.
    stop = ops.parameter([], np.float32, name="stop")
    compiled = ov.compile_model(
        ov.Model([ops.range(ops.constant(np.float32(0)), stop, ops.constant(np.float32(1)))], [stop])
    )
    with pytest.raises(ov.InputError, match="finite"):
        compiled([np.array(np.nan, np.float32)])
    np.testing.assert_array_equal(compiled([np.array(3, np.float32)])[0], np.arange(3, dtype=np.float32))


X_NAN = np.array([[-2.0, np.nan, 0.5, 3.0], [np.nan, -1.0, 7.0, -0.0]], np.float32)


def test_relu_propagates_nan():
    x = ops.parameter([2, 4], np.float32, name="x")
    out = ov.compile_model(ov.Model([ops.relu(x)], [x]))(X_NAN)[0]
    np.testing.assert_array_equal(out, np.maximum(X_NAN, 0))


def test_relu_after_matmul_propagates_nan():
    # MatMul + ReLU is fused into the GEMM's epilogue.
    x = ops.parameter([2, 4], np.float32, name="x")
    w = np.eye(4, dtype=np.float32)
    x_val = X_NAN.copy()
    x_val[0] = [-2.0, np.nan, 0.5, 3.0]
    x_val[1] = [4.0, -1.0, 7.0, -0.5]  # a row without NaN: not all NaN after the matmul
    out = ov.compile_model(ov.Model([ops.relu(ops.matmul(x, ops.constant(w)))], [x]))(x_val)[0]
    np.testing.assert_array_equal(out, np.maximum(x_val @ w, 0))  # NaN * 0 is NaN: row 0 all NaN
    assert np.isnan(out[0]).all() and not np.isnan(out[1]).any()


def test_clamp_with_min_above_max_follows_onnx():
    x = ops.parameter([2, 4], np.float32, name="x")
    out = ov.compile_model(ov.Model([ops.clamp(x, 2.0, 1.0)], [x]))(X_NAN)[0]
    # ONNX Clip: min(max(x, lo), hi); NaN stays NaN (numpy's clip does the same).
    expected = np.minimum(np.maximum(X_NAN, 2.0), 1.0)
    np.testing.assert_array_equal(out, expected)
    assert np.all(out[~np.isnan(X_NAN)] == 1.0)


def _onnx_clip(lo, hi):
    graph = helper.make_graph(
        [helper.make_node("Clip", ["x", "lo", "hi"], ["y"])],
        "clip",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor("lo", TensorProto.FLOAT, [], [lo]), helper.make_tensor("hi", TensorProto.FLOAT, [], [hi])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


def test_onnx_clip_with_min_above_max_matches_onnxruntime():
    data = _onnx_clip(2.0, 1.0)
    out = ov.compile_model(ov.Core().read_model(data))(X_NAN)[0]
    np.testing.assert_array_equal(out, np.minimum(np.maximum(X_NAN, 2.0), 1.0))
    ort = pytest.importorskip("onnxruntime")
    ref = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": X_NAN})[0]
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize(
    "shape,after_conv",
    [([1, 1, 4, 4], False), ([2, 3, 4, 4], False), ([1, 16, 8, 8], True)],
    ids=["one_channel", "nchw", "after_conv"],
)
def test_max_pool_propagates_nan(shape, after_conv):
    rng = np.random.default_rng(0)
    x_val = rng.standard_normal(shape).astype(np.float32)
    x_val[0, 0, 1, 1] = np.nan  # in the first 2x2 window
    x_val[-1, -1, 3, 2] = np.nan  # in another one
    x = ops.parameter(shape, np.float32, name="x")
    h = x
    if after_conv:  # an identity 1x1 convolution: the pool may then run in the conv's layout
        eye = np.eye(shape[1], dtype=np.float32).reshape(shape[1], shape[1], 1, 1)
        h = ops.convolution(x, ops.constant(eye), [1, 1], [0, 0], [0, 0], [1, 1])
    pool = ops.max_pool(h, [2, 2], [1, 1], [0, 0], [0, 0], [2, 2])
    out = ov.compile_model(ov.Model([pool], [x]))(x_val)[0]
    n, c, hh, w = shape
    if after_conv:  # NaN * 0 is NaN: a NaN pixel is NaN in every channel after the conv
        x_val = np.einsum("nchw,oc->nohw", x_val, np.eye(c, dtype=np.float32))
    expected = x_val.reshape(n, c, hh // 2, 2, w // 2, 2).max(axis=(3, 5))  # numpy's max propagates NaN
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    np.testing.assert_allclose(out[~np.isnan(out)], expected[~np.isnan(expected)], rtol=1e-6)
    assert np.isnan(out[0, 0, 0, 0]) and np.isnan(out[-1, -1, 1, 1])
