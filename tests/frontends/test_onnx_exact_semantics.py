"""ONNX ops whose easy implementation gives a plausible but wrong answer: each is checked
against onnx's reference evaluator where the wrong rule and the right one differ, and ops
aiov cannot run faithfully are refused with a clear error instead of answering."""

import numpy as np
import pytest

import aiov as ov

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402


def _model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _run_both(proto, feeds):
    got = ov.Core().compile_model(proto.SerializeToString(), "CPU")(feeds)
    expected = ReferenceEvaluator(proto).run(None, feeds)
    return [got[o.name] for o in proto.graph.output], expected


# Scales where flooring the source index and rounding it pick different pixels. onnx's
# evaluator implements neither op at these scales, so the expectation is the opsets' rule,
# out[i] = x[floor(i / scale)] (onnxruntime gives the same).
@pytest.mark.parametrize("scale", [3.0, 1.5, 2.5])
@pytest.mark.parametrize("op,opset", [("Upsample", 9), ("Resize", 10)])
def test_nearest_upsampling_of_opsets_9_and_10_floors_the_source_index(op, opset, scale):
    x = np.arange(1 * 1 * 4 * 5, dtype=np.float32).reshape(1, 1, 4, 5)
    scales = numpy_helper.from_array(np.array([1, 1, scale, scale], np.float32), "scales")
    proto = _model(
        [helper.make_node(op, ["x", "scales"], ["y"], mode="nearest")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [scales],
        opset=opset,
    )
    got = ov.Core().compile_model(proto.SerializeToString(), "CPU")({"x": x})["y"]
    rows = np.floor(np.arange(int(4 * scale)) / scale).astype(int)
    cols = np.floor(np.arange(int(5 * scale)) / scale).astype(int)
    np.testing.assert_array_equal(got, x[:, :, rows][:, :, :, cols])


@pytest.mark.parametrize(
    "op,dtype,empty",
    [
        ("ReduceMax", np.float32, -np.inf),
        ("ReduceMin", np.float32, np.inf),
        ("ReduceMax", np.int32, np.iinfo(np.int32).min),
        ("ReduceMin", np.int64, np.iinfo(np.int64).max),
    ],
)
def test_max_and_min_over_an_empty_axis_are_the_identities_not_zero(op, dtype, empty):
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    proto = _model(
        [helper.make_node(op, ["x", "axes"], ["y"], keepdims=1)],
        [helper.make_tensor_value_info("x", elem, [2, 0, 3])],
        [helper.make_tensor_value_info("y", elem, None)],
        [axes],
        opset=18,
    )
    (got,), (expected,) = _run_both(proto, {"x": np.zeros((2, 0, 3), dtype)})
    assert got.shape == expected.shape == (2, 1, 3)
    np.testing.assert_array_equal(got, expected)
    assert (got == empty).all()


def _dropout_model(training, ratio=0.5, outputs=("y", "mask")):
    inits = [numpy_helper.from_array(np.array(ratio, np.float32), "ratio")]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])]
    if training is None:  # decided by the caller at run time
        inputs.append(helper.make_tensor_value_info("training", TensorProto.BOOL, []))
    else:
        inits.append(numpy_helper.from_array(np.array(training), "training"))
    outs = [
        helper.make_tensor_value_info(outputs[0], TensorProto.FLOAT, None),
        helper.make_tensor_value_info(outputs[1], TensorProto.BOOL, None),
    ]
    return _model([helper.make_node("Dropout", ["x", "ratio", "training"], list(outputs))], inputs, outs, inits)


@pytest.mark.parametrize("training", [True, None], ids=["constant", "model_input"])
def test_dropout_in_training_mode_drops_not_silently_skips(training):
    x = np.random.default_rng(0).uniform(1, 2, (2, 3)).astype(np.float32)
    feeds = {"x": x} if training else {"x": x, "training": np.array(True)}
    compiled = ov.Core().compile_model(_dropout_model(training).SerializeToString(), "CPU")
    drawn = [compiled(feeds) for _ in range(20)]  # unseeded: a fresh draw per run
    masks = np.stack([np.asarray(r["mask"]) for r in drawn])
    for r in drawn:
        np.testing.assert_allclose(r["y"], np.where(r["mask"], x * 2, 0), rtol=1e-6)
    assert 0 < masks.mean() < 1


@pytest.mark.parametrize("training,ratio", [(False, 0.5), (True, 0.0)], ids=["eval", "training_ratio_0"])
def test_dropout_that_drops_nothing_passes_its_input_with_a_true_mask(training, ratio):
    proto = _dropout_model(training, ratio)
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    (y, mask), (want_y, want_mask) = _run_both(proto, {"x": x})
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(mask, want_mask)
    assert mask.all()


def test_identity_on_a_sequence_gives_the_sequence_back():
    seq = helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, [2])
    out = helper.make_tensor_sequence_value_info("t", TensorProto.FLOAT, [2])
    proto = _model([helper.make_node("Identity", ["s"], ["t"])], [seq], [out])
    compiled = ov.compile_model(ov.Core().read_model(proto.SerializeToString()), "CPU")
    given = [np.array([1, 2], np.float32), np.array([3, 4], np.float32)]
    got = compiled({"s": given})["t"]
    assert len(got) == 2 and all((g == w).all() for g, w in zip(got, given))
