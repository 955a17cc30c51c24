"""Resize's kernel (native/ops/resize.cpp) on image-sized tensors against onnxruntime: axes
resized in the order that keeps each pass small (shrinking first, the innermost axis first
among those growing alike), split over the pool when large, and every output index's own
number of taps (antialiased shrinking gives them different counts)."""

import numpy as np
import pytest
from onnx import TensorProto, helper

import aiov as ov

ort = pytest.importorskip("onnxruntime")

RNG = np.random.default_rng(53)


def resize_model(shape, scales, **attrs):
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], **attrs)
    graph = helper.make_graph(
        [node],
        "resize",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [helper.make_tensor("scales", TensorProto.FLOAT, [len(scales)], scales)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


@pytest.mark.parametrize(
    "shape, scales, attrs",
    [
        ((8, 3, 4, 4), [1, 1, 8, 8], dict(mode="linear")),  # LR-ASPP's upsampling, both axes alike
        ((2, 16, 33, 30), [1, 1, 2, 2], dict(mode="linear", coordinate_transformation_mode="align_corners")),
        ((2, 5, 40, 9), [1, 1, 0.5, 3], dict(mode="linear")),  # one axis shrinks, one grows
        ((2, 5, 40, 37), [1, 1, 0.3, 0.45], dict(mode="linear", antialias=1)),  # taps per output vary
        ((2, 4, 17, 23), [1, 1, 2.5, 1.5], dict(mode="cubic", exclude_outside=1)),
        ((2, 4, 17, 23), [1, 1, 3, 2], dict(mode="nearest")),  # copies
        ((3, 50, 7), [1, 2, 3], dict(mode="linear")),  # rank 3, the channel axis resized too
    ],
)
@pytest.mark.parametrize("threads", [1, 2])
def test_resize_matches_onnxruntime(shape, scales, attrs, threads):
    proto = resize_model(shape, scales, **attrs).SerializeToString()
    x = RNG.standard_normal(shape).astype(np.float32)
    expected = ort.InferenceSession(proto, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    compiled = ov.compile_model(proto, "CPU", {"INFERENCE_NUM_THREADS": threads})
    out = compiled({"x": x})[0]
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
