"""Ops whose output sizes come from input values (NonZero, Unique, Compress,
NonMaxSuppression) run in plan stages; the detection and vision ops (RoiAlign, GridSample)
take hostile values (huge counts, NaN and infinite coordinates, indices out of range) with
defined results or clear errors, never a crash."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import aiov as ov
import aiov.opset13 as ops
from aiov import aio

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def _compile_onnx(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return ov.Core().compile_model(proto.SerializeToString(), "CPU")


def _vi(name, elem, shape):
    """A value's type; -1 in shape is a symbolic dimension."""
    if shape is not None:
        shape = [f"{name}_{i}" if d == -1 else d for i, d in enumerate(shape)]
    return helper.make_tensor_value_info(name, elem, shape)


def _compile(params, outputs):
    return ov.Core().compile_model(ov.Model(outputs, params), "CPU")


def test_pad_with_computed_pads_keeps_the_rank_of_its_input():
    x = ops.parameter([-1, 3, -1], ov.Type.f32, name="x")
    amount = ops.parameter([1], ov.Type.i64, name="amount")
    zero = ops.constant(np.zeros(2, np.int64))
    pads = ops.concat([zero, amount], 0)
    padded = ops.pad(x, pads, pads, "constant")
    assert padded.get_output_partial_shape(0).rank.get_length() == 3
    data = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
    got = _compile([x, amount], [padded])({"x": data, "amount": np.array([1], np.int64)})[0]
    np.testing.assert_array_equal(got, np.pad(data, ((0, 0), (0, 0), (1, 1))))


def _select_positive_model():
    """x [2, 5] -> (x * 2, the positive elements gathered through NonZero, their count)."""
    nodes = [
        helper.make_node("Mul", ["x", "two"], ["doubled"]),
        helper.make_node("Greater", ["x", "zero"], ["mask"]),
        helper.make_node("NonZero", ["mask"], ["where"]),
        helper.make_node("Transpose", ["where"], ["points"], perm=[1, 0]),
        helper.make_node("GatherND", ["doubled", "points"], ["picked"]),
        helper.make_node("Shape", ["picked"], ["count"]),
    ]
    inits = [numpy_helper.from_array(np.float32(2), "two"), numpy_helper.from_array(np.float32(0), "zero")]
    return _compile_onnx(
        nodes,
        [_vi("x", F, [2, 5])],
        [_vi("doubled", F, [2, 5]), _vi("picked", F, None), _vi("count", I64, None)],
        inits,
    )


def _expect_selected(results, x):
    np.testing.assert_array_equal(results["doubled"], x * 2)
    np.testing.assert_array_equal(results["picked"], x[x > 0] * 2)
    np.testing.assert_array_equal(results["count"], [np.count_nonzero(x > 0)])


def test_nodes_after_a_data_dependent_op_run_at_each_size_it_finds():
    compiled = _select_positive_model()
    request = compiled.create_infer_request()
    rng = np.random.default_rng(0)
    for x in [rng.standard_normal((2, 5)).astype(np.float32) for _ in range(6)] + [
        -np.ones((2, 5), np.float32),  # nothing selected
        np.ones((2, 5), np.float32),  # everything selected
    ]:
        _expect_selected(request.infer({"x": x}), x)


def test_data_dependent_stages_run_as_jobs_and_through_aio():
    compiled = _select_positive_model()
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((2, 5)).astype(np.float32) for _ in range(16)]
    queue = ov.AsyncInferQueue(compiled, 4)
    got = {}
    queue.set_callback(lambda request, i: got.__setitem__(i, {k: request.results[k].copy() for k in ("picked",)}))
    for i, x in enumerate(xs):
        queue.start_async({"x": x}, i)
    queue.wait_all()
    for i, x in enumerate(xs):
        np.testing.assert_array_equal(got[i]["picked"], x[x > 0] * 2)

    async def main():
        pool = aio.CompiledModel(compiled)
        return await asyncio.gather(*(pool({"x": x}) for x in xs))

    for x, results in zip(xs, asyncio.run(main())):
        _expect_selected(results, x)


def test_two_data_dependent_ops_in_a_row():
    # Unique of the positive elements: two stages after the first.
    nodes = [
        helper.make_node("Greater", ["x", "zero"], ["mask"]),
        helper.make_node("Compress", ["x", "mask"], ["positive"]),
        helper.make_node("Unique", ["positive"], ["values", "first", "inverse", "counts"], sorted=1),
        helper.make_node("ReduceSum", ["values"], ["total"], keepdims=0),
    ]
    compiled = _compile_onnx(
        nodes,
        [_vi("x", F, [-1])],
        [_vi("values", F, None), _vi("counts", I64, None), _vi("total", F, None)],
        [numpy_helper.from_array(np.float32(0), "zero")],
    )
    for x in ([3, -1, 3, 2, 0, 2, 2], [-1, -2], [5], [1, 2, 3, 4, 5, 6, 7, 8, 1]):
        x = np.array(x, np.float32)
        values, counts = np.unique(x[x > 0], return_counts=True)
        results = compiled({"x": x})
        np.testing.assert_array_equal(results["values"], values)
        np.testing.assert_array_equal(results["counts"], counts)
        np.testing.assert_allclose(results["total"], values.sum())


@pytest.mark.parametrize("sorted_", [0, 1])
@pytest.mark.parametrize("axis", [None, 0, 1])
def test_unique_matches_numpy(sorted_, axis):
    x = np.array([[1, 3, 1], [2, 0, 2], [1, 3, 1], [0, 0, 5]], np.float32)
    attrs = {"sorted": sorted_} if axis is None else {"sorted": sorted_, "axis": axis}
    compiled = _compile_onnx(
        [helper.make_node("Unique", ["x"], ["y", "first", "inverse", "counts"], **attrs)],
        [_vi("x", F, [4, 3])],
        [_vi("y", F, None), _vi("first", I64, None), _vi("inverse", I64, None), _vi("counts", I64, None)],
    )
    got = compiled({"x": x})
    y, first, inverse, counts = np.unique(x, return_index=True, return_inverse=True, return_counts=True, axis=axis)
    inverse = inverse.reshape(-1)
    if not sorted_:  # groups in the order they first occur
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        y, first, counts, inverse = np.take(y, order, axis=axis or 0), first[order], counts[order], rank[inverse]
    np.testing.assert_array_equal(got["y"], y)
    np.testing.assert_array_equal(got["first"], first)
    np.testing.assert_array_equal(got["inverse"], inverse)
    np.testing.assert_array_equal(got["counts"], counts)


def test_unique_orders_nan_after_numbers_and_counts_it_once():
    compiled = _compile_onnx(
        [helper.make_node("Unique", ["x"], ["y", "first", "inverse", "counts"])],
        [_vi("x", F, [-1])],
        [_vi("y", F, None), _vi("first", I64, None), _vi("inverse", I64, None), _vi("counts", I64, None)],
    )
    got = compiled({"x": np.array([np.nan, 2, np.nan, 1, 2], np.float32)})
    np.testing.assert_array_equal(got["y"], [1, 2, np.nan])
    np.testing.assert_array_equal(got["first"], [3, 1, 0])
    np.testing.assert_array_equal(got["inverse"], [2, 1, 2, 0, 1])
    np.testing.assert_array_equal(got["counts"], [1, 2, 2])


def _nms_model(center=0, with_threshold=True):
    names = ["boxes", "scores", "max_out", "iou"] + (["score_min"] if with_threshold else [])
    inputs = [_vi("boxes", F, [1, -1, 4]), _vi("scores", F, [1, 1, -1]), _vi("max_out", I64, [1]), _vi("iou", F, [1])]
    if with_threshold:
        inputs.append(_vi("score_min", F, [1]))
    return _compile_onnx(
        [helper.make_node("NonMaxSuppression", names, ["selected"], center_point_box=center)],
        inputs,
        [_vi("selected", I64, None)],
    )


BOXES = np.array([[[0, 0, 1, 1], [0, 0.1, 1, 1.1], [0, 10, 1, 11], [0, 10.1, 1, 11.1]]], np.float32)
SCORES = np.array([[[0.9, 0.75, 0.6, 0.95]]], np.float32)


def _nms_feeds(max_out, scores=SCORES, boxes=BOXES):
    return {
        "boxes": boxes,
        "scores": scores,
        "max_out": np.array([max_out], np.int64),
        "iou": np.array([0.5], np.float32),
        "score_min": np.array([0.0], np.float32),
    }


def test_nms_with_a_huge_max_output_keeps_every_box_that_survives():
    got = _nms_model()(_nms_feeds(2**62))["selected"]
    np.testing.assert_array_equal(got, [[0, 0, 3], [0, 0, 0]])
    assert _nms_model()(_nms_feeds(0))["selected"].shape == (0, 3)


def test_nms_refuses_a_negative_max_output():
    with pytest.raises(ov.InputError, match="max_output_boxes_per_class"):
        _nms_model()(_nms_feeds(-1))


def test_nms_skips_nan_scores_and_never_lets_nan_boxes_suppress():
    scores = np.array([[[np.nan, 0.75, np.nan, 0.95]]], np.float32)
    boxes = BOXES.copy()
    boxes[0, 3] = np.nan
    got = _nms_model(with_threshold=False)({k: v for k, v in _nms_feeds(10, scores, boxes).items() if k != "score_min"})
    np.testing.assert_array_equal(got["selected"], [[0, 0, 3], [0, 0, 1]])


def _roi_align(rois, batch_indices, x=None, **attrs):
    x = np.arange(2 * 1 * 4 * 4, dtype=np.float32).reshape(2, 1, 4, 4) if x is None else x
    attrs = {"output_height": 2, "output_width": 2, "sampling_ratio": 2, **attrs}
    compiled = _compile_onnx(
        [helper.make_node("RoiAlign", ["x", "rois", "idx"], ["y"], **attrs)],
        [_vi("x", F, list(x.shape)), _vi("rois", F, [-1, 4]), _vi("idx", I64, [-1])],
        [_vi("y", F, None)],
        opset=16,
    )
    return compiled({"x": x, "rois": np.array(rois, np.float32), "idx": np.array(batch_indices, np.int64)})["y"]


def test_roi_align_of_boxes_outside_the_image_samples_zeros():
    got = _roi_align([[100, 100, 120, 120], [-50, -50, -40, -40]], [0, 1])
    np.testing.assert_array_equal(got, np.zeros((2, 1, 2, 2), np.float32))


def test_roi_align_refuses_batch_indices_out_of_range():
    with pytest.raises(ov.InputError, match=r"batch_indices\[1\] = 2 is out of range"):
        _roi_align([[0, 0, 2, 2], [0, 0, 2, 2]], [0, 2])
    with pytest.raises(ov.InputError, match="out of range"):
        _roi_align([[0, 0, 2, 2]], [-1])


def test_roi_align_refuses_non_finite_or_absurdly_large_boxes():
    with pytest.raises(ov.InputError, match="non-finite"):
        _roi_align([[0, 0, np.inf, 2]], [0])
    x = np.zeros((1, 1, 4, 4), np.float32)
    compiled = _compile_onnx(
        [helper.make_node("RoiAlign", ["x", "rois", "idx"], ["y"], output_height=1, output_width=1)],
        [_vi("x", F, [1, 1, 4, 4]), _vi("rois", F, [1, 4]), _vi("idx", I64, [1])],
        [_vi("y", F, None)],
    )
    with pytest.raises(ov.InputError, match="samples per bin"):
        compiled({"x": x, "rois": np.array([[0, 0, 1e30, 1e30]], np.float32), "idx": np.zeros(1, np.int64)})


@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
def test_grid_sample_with_nan_and_infinite_coordinates(mode, padding):
    x = np.arange(1 * 2 * 3 * 4, dtype=np.float32).reshape(1, 2, 3, 4)
    grid = np.array([[[[np.nan, 0.0], [np.inf, 0.0], [-np.inf, -np.inf], [1e30, -1e30], [0.0, 0.0]]]], np.float32)
    compiled = _compile_onnx(
        [helper.make_node("GridSample", ["x", "grid"], ["y"], mode=mode, padding_mode=padding, align_corners=1)],
        [_vi("x", F, [1, 2, 3, 4]), _vi("grid", F, [1, 1, 5, 2])],
        [_vi("y", F, None)],
        opset=16,
    )
    y = compiled({"x": x, "grid": grid})["y"]
    assert y.shape == (1, 2, 1, 5)
    assert np.isnan(y[..., 0]).all()  # a NaN coordinate samples nothing
    assert np.isfinite(y[..., 1:]).all()
    if padding == "zeros":
        np.testing.assert_array_equal(y[..., 1:4], 0)
    if padding == "border":  # infinitely far right is the right edge, far left the left edge
        np.testing.assert_allclose(y[0, :, 0, 1], x[0, :, 1, 3])
        np.testing.assert_allclose(y[0, :, 0, 2], x[0, :, 0, 0])


def test_boxes_kept_by_nms_are_gathered_downstream():
    # Detector post-processing: NonMaxSuppression, then the kept boxes looked up by index.
    nodes = [
        helper.make_node("NonMaxSuppression", ["boxes", "scores", "max_out", "iou"], ["selected"]),
        helper.make_node("Gather", ["selected", "two"], ["box_index"], axis=1),
        helper.make_node("Squeeze", ["boxes", "zero"], ["all_boxes"]),
        helper.make_node("Gather", ["all_boxes", "box_index"], ["kept"], axis=0),
    ]
    inits = [
        numpy_helper.from_array(np.array(2, np.int64), "two"),
        numpy_helper.from_array(np.array([0], np.int64), "zero"),
        numpy_helper.from_array(np.array([10], np.int64), "max_out"),
        numpy_helper.from_array(np.array([0.5], np.float32), "iou"),
    ]
    compiled = _compile_onnx(
        nodes, [_vi("boxes", F, [1, -1, 4]), _vi("scores", F, [1, 1, -1])], [_vi("kept", F, None)], inits
    )
    np.testing.assert_array_equal(compiled({"boxes": BOXES, "scores": SCORES})["kept"], BOXES[0, [3, 0]])
    few = compiled({"boxes": BOXES[:, :1], "scores": SCORES[:, :, :1]})["kept"]
    np.testing.assert_array_equal(few, BOXES[0, :1])


def test_openvino_roi_align_matches_onnx_where_they_agree_and_refuses_the_rest():
    data = ops.parameter([2, 1, 4, 4], ov.Type.f32, name="x")
    rois = ops.parameter([-1, 4], ov.Type.f32, name="rois")
    idx = ops.parameter([-1], ov.Type.i64, name="idx")
    node = ops.roi_align(data, rois, idx, 2, 2, 2, 1.0, "avg")
    assert node.get_type_name() == "ROIAlign"
    boxes = [[0.5, 0.5, 3, 2.5], [0, 1, 2, 3]]
    got = _compile([data, rois, idx], [node])(
        {"x": np.arange(32, dtype=np.float32).reshape(2, 1, 4, 4), "rois": np.array(boxes, np.float32), "idx": [1, 0]}
    )[0]
    # OpenVINO's asymmetric alignment is ONNX's output_half_pixel.
    onnx_rule = _roi_align(boxes, [1, 0], coordinate_transformation_mode="output_half_pixel")
    np.testing.assert_allclose(got, onnx_rule, rtol=1e-6)
    with pytest.raises(ov.InputError, match="mode"):
        ops.roi_align(data, rois, idx, 2, 2, 2, 1.0, "max")


def test_stages_after_a_value_keyed_input():
    # The reshape target is a model input (plans are keyed by its value) ahead of NonZero.
    compiled = _compile_onnx(
        [
            helper.make_node("Reshape", ["x", "shape"], ["grid"]),
            helper.make_node("NonZero", ["grid"], ["where"]),
            helper.make_node("Mul", ["where", "ten"], ["scaled"]),
        ],
        [_vi("x", F, [6]), _vi("shape", I64, [2])],
        [_vi("scaled", I64, None)],
        [numpy_helper.from_array(np.array(10, np.int64), "ten")],
    )
    x = np.array([0, 1, 0, 2, 3, 0], np.float32)
    for shape in ([2, 3], [3, 2], [2, 3]):
        got = compiled({"x": x, "shape": np.array(shape, np.int64)})["scaled"]
        np.testing.assert_array_equal(got, np.stack(np.nonzero(x.reshape(shape))) * 10)


def test_resize_antialias_refuses_a_filter_wider_than_any_model_needs():
    compiled = _compile_onnx(
        [helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear", antialias=1)],
        [_vi("x", F, [1, 1, -1, -1]), _vi("scales", F, [4])],
        [_vi("y", F, None)],
        opset=18,
    )
    x = np.ones((1, 1, 4, 4), np.float32)
    np.testing.assert_allclose(compiled({"x": x, "scales": np.array([1, 1, 0.5, 0.5], np.float32)})["y"], 1)
    # 100,000 columns shrunk to one or two: a filter 100,000 samples wide.
    wide = np.ones((1, 1, 1, 100_000), np.float32)
    with pytest.raises(ov.InputError, match="antialiasing filter"):
        compiled({"x": wide, "scales": np.array([1, 1, 1, 2e-5], np.float32)})


def test_sampling_an_empty_image_gives_zeros():
    empty = np.zeros((1, 1, 0, 0), np.float32)
    np.testing.assert_array_equal(_roi_align([[0, 0, 1, 1], [0, 0, 3, 3]], [0, 0], x=empty), np.zeros((2, 1, 2, 2)))
    for padding in ("zeros", "border", "reflection"):
        compiled = _compile_onnx(
            [helper.make_node("GridSample", ["x", "grid"], ["y"], padding_mode=padding)],
            [_vi("x", F, [1, 1, -1, -1]), _vi("grid", F, [1, 2, 2, 2])],
            [_vi("y", F, None)],
            opset=16,
        )
        got = compiled({"x": empty, "grid": np.zeros((1, 2, 2, 2), np.float32)})["y"]
        np.testing.assert_array_equal(got, np.zeros((1, 1, 2, 2)))


def test_new_ops_round_trip_through_openvino_ir(tmp_path):
    x = ops.parameter([2, 3], ov.Type.f32, name="x")
    data = ops.parameter([1, 1, 3, 3], ov.Type.f32, name="data")
    grid = ops.parameter([1, 2, 2, 2], ov.Type.f32, name="grid")
    unique = ops.unique(x)
    outputs = [ops.non_zero(x), unique.output(0), unique.output(3), ops.grid_sample(data, grid, mode="bicubic")]
    model = ov.Model(outputs, [x, data, grid])
    ov.save_model(model, str(tmp_path / "m.xml"))
    again = ov.Core().read_model(str(tmp_path / "m.xml"))
    rng = np.random.default_rng(2)
    feeds = {
        "x": np.array([[0, 1, 2], [1, 0, 3]], np.float32),
        "data": rng.standard_normal((1, 1, 3, 3)).astype(np.float32),
        "grid": rng.uniform(-1, 1, (1, 2, 2, 2)).astype(np.float32),
    }
    first, second = ov.compile_model(model)(feeds), ov.compile_model(again)(feeds)
    for i in range(len(outputs)):
        np.testing.assert_array_equal(first[i], second[i])
    np.testing.assert_array_equal(first[0], np.stack(np.nonzero(feeds["x"])))
