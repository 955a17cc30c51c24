"""Small ONNX ops added through the registry alone: CenterCropPad, Det and Col2Im. Each matches
ONNX's reference evaluator on cases the node suite leaves out (odd crop/pad splits, batched and
singular matrices, 1-D and 3-D images), and bad operands are refused naming the node."""

import numpy as np
import pytest

import aiov as ov

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from graph_checks import onnx_before_1_20  # noqa: E402

RNG = np.random.default_rng(19)
_TYPE = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}


def _model(op, data, consts, opset=18, **attrs):
    """One ONNX node over model input `x` then constant operands `consts` (int64 arrays)."""
    names = ["x"] + [f"c{i}" for i in range(len(consts))]
    node = helper.make_node(op, names, ["y"], name="the_node", **attrs)
    inits = [numpy_helper.from_array(np.asarray(c, np.int64), f"c{i}") for i, c in enumerate(consts)]
    elem = _TYPE.get(np.dtype(data.dtype), TensorProto.INT32)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", elem, list(data.shape))],
        [helper.make_tensor_value_info("y", elem, None)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _check(op, data, consts, rtol=1e-6, atol=1e-6, **attrs):
    model = _model(op, data, consts, **attrs)
    expected = ReferenceEvaluator(model).run(None, {"x": data})[0]
    got = ov.compile_model(model.SerializeToString())([data])[0]
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)
    return got


@pytest.mark.parametrize(
    "shape, target, axes",
    [
        ((5, 7), [2, 10], None),
        ((4, 3, 6), [7, 1], [0, -1]),
        ((3, 4, 5), [3, 4, 5], None),
        pytest.param(
            (2, 3),
            [0, 3],
            None,
            marks=pytest.mark.skipif(onnx_before_1_20(), reason="onnx < 1.20's reference ignores a target of 0"),
        ),
    ],
)
def test_center_crop_pad_crops_and_pads_around_the_centre(shape, target, axes):
    x = RNG.integers(-50, 50, shape).astype(np.int32)
    attrs = {} if axes is None else {"axes": axes}
    _check("CenterCropPad", x, [target], **attrs)


def test_center_crop_pad_refuses_a_shape_of_the_wrong_length():
    x = np.zeros((4, 4), np.float32)
    with pytest.raises(ov.InputError, match="the_node.*one length per axis"):
        ov.compile_model(_model("CenterCropPad", x, [[2, 2, 2]]).SerializeToString())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_det_of_batched_matrices(dtype):
    x = RNG.uniform(-2, 2, (2, 3, 4, 4)).astype(dtype)
    x[0, 1, 3] = x[0, 1, 0]  # a singular matrix among them: exactly 0
    got = _check("Det", x, [], opset=11, rtol=1e-5, atol=1e-5)
    assert got[0, 1] == 0
    np.testing.assert_allclose(got, np.linalg.det(x.astype(np.float64)), rtol=1e-5, atol=1e-5)


def test_det_refuses_non_square_and_integer_inputs():
    with pytest.raises(ov.InputError, match="the_node.*square"):
        ov.compile_model(_model("Det", np.zeros((3, 4), np.float32), [], opset=11).SerializeToString())
    with pytest.raises(ov.InputError, match="the_node.*floating-point"):
        ov.compile_model(_model("Det", np.zeros((3, 3), np.int32), [], opset=11).SerializeToString())


@pytest.mark.parametrize(
    "image, block, attrs",
    [
        ([9], [3], {"strides": [2], "pads": [1, 2]}),
        ([5, 6], [2, 3], {"dilations": [2, 1]}),
        ([4, 3, 5], [2, 2, 3], {"strides": [1, 2, 1], "pads": [0, 1, 1, 1, 0, 0]}),
    ],
)
def test_col2im_sums_overlapping_blocks(image, block, attrs):
    s = len(image)
    pads = attrs.get("pads", [0] * 2 * s)
    stride = attrs.get("strides", [1] * s)
    dil = attrs.get("dilations", [1] * s)
    positions = int(
        np.prod([(image[d] + pads[d] + pads[d + s] - dil[d] * (block[d] - 1) - 1) // stride[d] + 1 for d in range(s)])
    )
    x = RNG.uniform(-1, 1, (2, 3 * int(np.prod(block)), positions)).astype(np.float32)
    _check("Col2Im", x, [image, block], **attrs)


def test_col2im_refuses_a_column_count_that_is_not_the_block_positions():
    x = np.zeros((1, 4, 7), np.float32)
    with pytest.raises(ov.InputError, match="the_node.*number of blocks"):
        ov.compile_model(_model("Col2Im", x, [[3, 3], [2, 2]]).SerializeToString())
    with pytest.raises(ov.InputError, match="the_node.*strides"):
        ov.compile_model(_model("Col2Im", x, [[3, 3], [2, 2]], strides=[0, 1]).SerializeToString())
