"""ONNX models whose inputs have dynamic dimensions load once and run at any size: every
shape the frontend cannot know when it reads the model is decided when a plan is built for
the concrete input shapes. Each model is checked against onnx's reference evaluator at
several shapes from one compiled model."""

import numpy as np
import pytest

import aiov as ov

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402


def _model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _tensor(name, dims, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, dims)


def _check_at_shapes(proto, feeds_list, rtol=1e-5, atol=1e-5, reference=None):
    """One compiled model, every feed: outputs match the reference's (onnx's evaluator unless
    given: a callable from feeds to the list of outputs)."""
    compiled = ov.Core().compile_model(proto.SerializeToString(), "CPU")
    if reference is None:
        reference = lambda feeds, evaluator=ReferenceEvaluator(proto): evaluator.run(None, feeds)  # noqa: E731
    names = [o.name for o in proto.graph.output]
    for feeds in feeds_list:
        expected = reference(feeds)
        got = compiled(feeds)
        for name, want in zip(names, expected):
            assert got[name].shape == want.shape, (name, feeds_shapes(feeds))
            np.testing.assert_allclose(got[name], want, rtol=rtol, atol=atol)


def feeds_shapes(feeds):
    return {k: v.shape for k, v in feeds.items()}


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1])
def test_flatten_of_dynamic_leading_and_trailing_dims(axis):
    proto = _model(
        [helper.make_node("Flatten", ["x"], ["y"], axis=axis)], [_tensor("x", ["b", "s", 4])], [_tensor("y", None)]
    )
    _check_at_shapes(proto, [{"x": _rand(2, 5, 4)}, {"x": _rand(3, 1, 4, seed=1)}])


def test_flatten_with_every_dim_dynamic_keeps_rank_two():
    proto = _model(
        [helper.make_node("Flatten", ["x"], ["f"], axis=2), helper.make_node("MatMul", ["f", "w"], ["y"])],
        [_tensor("x", ["a", "b", "c"]), _tensor("w", ["c", 3])],
        [_tensor("y", None)],
    )
    model = ov.Core().read_model(proto.SerializeToString())
    assert model.output(0).get_partial_shape().rank.get_length() == 2
    _check_at_shapes(proto, [{"x": _rand(2, 3, 4), "w": _rand(4, 3)}, {"x": _rand(1, 5, 2), "w": _rand(2, 3)}])


def test_flatten_of_a_bool_mask_to_a_column_as_bert_exports_it():
    # transformers' BERT export: Cast(attention_mask [batch, seq] -> bool), Flatten(axis=2).
    proto = _model(
        [
            helper.make_node("Cast", ["m"], ["b"], to=TensorProto.BOOL),
            helper.make_node("Flatten", ["b"], ["y"], axis=2),
        ],
        [_tensor("m", ["batch", "seq"], TensorProto.INT64)],
        [_tensor("y", None, TensorProto.BOOL)],
    )
    _check_at_shapes(proto, [{"m": np.array([[1, 0, 1]], np.int64)}, {"m": np.ones((2, 5), np.int64)}])


def _softmax_from_axis_1(x, log):
    # Softmax-1/11 normalise over every dim from `axis` on (onnx's reference evaluator does not
    # implement this; onnxruntime does).
    flat = x.reshape(x.shape[0], -1).astype(np.float64)
    shifted = flat - flat.max(axis=1, keepdims=True)
    logs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return (logs if log else np.exp(logs)).reshape(x.shape).astype(np.float32)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_opset11_softmax_over_dynamic_trailing_dims(op):
    proto = _model(
        [helper.make_node(op, ["x"], ["y"], axis=1)], [_tensor("x", ["b", "s", "t"])], [_tensor("y", None)], opset=11
    )
    _check_at_shapes(
        proto,
        [{"x": _rand(2, 3, 4)}, {"x": _rand(1, 6, 2, seed=1)}],
        reference=lambda feeds: [_softmax_from_axis_1(feeds["x"], op == "LogSoftmax")],
    )


def test_slice_without_steps_whose_starts_come_from_a_shape():
    # starts/ends computed from the input's shape: their length is unknown when reading.
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Slice", ["s", "zero", "one"], ["lead"]),
        helper.make_node("Sub", ["lead", "lead"], ["starts"]),
        helper.make_node("Slice", ["x", "starts", "lead"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([0], np.int64), "zero"),
        numpy_helper.from_array(np.array([1], np.int64), "one"),
    ]
    proto = _model(nodes, [_tensor("x", ["a", 3])], [_tensor("y", None)], inits)
    _check_at_shapes(proto, [{"x": _rand(4, 3)}, {"x": _rand(2, 3, seed=1)}])


def test_opset18_split_into_uneven_parts_of_a_dynamic_axis():
    proto = _model(
        [helper.make_node("Split", ["x"], ["p", "q", "r"], axis=1, num_outputs=3)],
        [_tensor("x", [2, "n"])],
        [_tensor(n, None) for n in "pqr"],
        opset=18,
    )
    _check_at_shapes(proto, [{"x": _rand(2, 7)}, {"x": _rand(2, 9, seed=1)}, {"x": _rand(2, 4, seed=2)}])


def _conv_transpose_model(**attrs):
    w = _rand(3, 2, 3, 3, seed=5)
    return _model(
        [helper.make_node("ConvTranspose", ["x", "w"], ["y"], **attrs)],
        [_tensor("x", ["n", 3, "h", "w"])],
        [_tensor("y", None)],
        [numpy_helper.from_array(w, "w")],
    )


@pytest.mark.parametrize(
    "attrs",
    [
        {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]},
        {"strides": [2, 2], "auto_pad": "SAME_UPPER"},
        {"strides": [2, 2], "auto_pad": "SAME_LOWER"},
        {"strides": [2, 1], "dilations": [1, 2]},
    ],
    ids=["explicit", "same_upper", "same_lower", "dilated"],
)
def test_conv_transpose_of_dynamic_spatial_size(attrs):
    proto = _conv_transpose_model(**attrs)
    _check_at_shapes(proto, [{"x": _rand(1, 3, 4, 5)}, {"x": _rand(2, 3, 3, 7, seed=1)}], rtol=1e-4, atol=1e-4)


def test_conv_transpose_output_shape_is_known_before_the_input_size():
    ort = pytest.importorskip("onnxruntime")  # onnx's evaluator rejects this output_shape
    proto = _conv_transpose_model(strides=[2, 2], output_shape=[10, 10])
    model = ov.Core().read_model(proto.SerializeToString())
    assert str(model.output(0).get_partial_shape()) == "[?,2,10,10]"
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    _check_at_shapes(
        proto,
        [{"x": _rand(1, 3, 5, 5)}, {"x": _rand(2, 3, 4, 4, seed=1)}],
        rtol=1e-4,
        atol=1e-4,
        reference=lambda feeds: session.run(None, feeds),
    )


def test_resize_by_scales_keeps_the_static_dims_of_a_dynamic_input():
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    proto = _model(
        [helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest")],
        [_tensor("x", ["n", 3, "h", "w"])],
        [_tensor("y", None)],
        [scales],
    )
    model = ov.Core().read_model(proto.SerializeToString())
    assert str(model.output(0).get_partial_shape()) == "[?,3,?,?]"
    _check_at_shapes(proto, [{"x": _rand(1, 3, 2, 3)}, {"x": _rand(2, 3, 4, 1, seed=1)}])


@pytest.mark.parametrize(
    "equation,shapes,dims",
    [
        ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)], [["b", "i", "j"], ["b", "j", "k"]]),
        ("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)], [["b", 2, "q", 4], ["b", 2, "k", 4]]),
        ("ij->ji", [(3, 4)], [["i", "j"]]),
        ("bij,jk->bk", [(2, 3, 4), (4, 5)], [["b", "i", "j"], ["j", 5]]),
    ],
    ids=["batched_matmul", "attention_scores", "transpose", "reduce_and_contract"],
)
def test_einsum_over_dynamic_dims(equation, shapes, dims):
    names = ["a", "b"][: len(shapes)]
    proto = _model(
        [helper.make_node("Einsum", names, ["y"], equation=equation)],
        [_tensor(n, d) for n, d in zip(names, dims)],
        [_tensor("y", None)],
        opset=12,
    )
    first = {n: _rand(*s, seed=i) for i, (n, s) in enumerate(zip(names, shapes))}
    # The same equation at other sizes of every dynamic letter.
    grown = {
        n: _rand(*[d + 1 if isinstance(sym, str) else d for d, sym in zip(s, ds)], seed=9 + i)
        for i, (n, s, ds) in enumerate(zip(names, shapes, dims))
    }
    _check_at_shapes(proto, [first, grown], rtol=1e-4, atol=1e-5)


def test_slice_of_a_static_axis_keeps_its_size_under_a_dynamic_batch():
    inits = [
        numpy_helper.from_array(np.array(v, np.int64), n)
        for n, v in (("starts", [1, -1]), ("ends", [5, -100]), ("axes", [2, 1]), ("steps", [2, -1]))
    ]
    proto = _model(
        [helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["y"])],
        [_tensor("x", ["n", "t", 6])],
        [_tensor("y", None)],
        inits,
    )
    model = ov.Core().read_model(proto.SerializeToString())
    assert str(model.output(0).get_partial_shape()) == "[?,?,2]"
    _check_at_shapes(proto, [{"x": _rand(1, 3, 6)}, {"x": _rand(2, 5, 6, seed=1)}])
