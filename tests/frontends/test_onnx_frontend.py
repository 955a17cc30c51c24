"""ONNX models load through the frontend and match onnx's reference evaluator."""

import numpy as np
import pytest

import aiov as ov

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from graph_checks import reference_outputs  # noqa: E402
from model_builders import one_node_model  # noqa: E402


def _mlp_model(opset=17):
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((16, 32)).astype(np.float32) * 0.2
    b1 = rng.standard_normal(32).astype(np.float32) * 0.2
    w2 = rng.standard_normal((10, 32)).astype(np.float32) * 0.2
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], alpha=1.0, beta=1.0),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "w2"], ["logits"], transB=1, alpha=0.5),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1 if opset >= 13 else 1),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1, "b1"), numpy_helper.from_array(w2, "w2")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("opset", [11, 17])
@pytest.mark.parametrize("batch", [1, 3, 8])
def test_mlp_matches_reference_at_several_batch_sizes(tmp_path, opset, batch):
    proto = _mlp_model(opset)
    path = tmp_path / "mlp.onnx"
    onnx.save(proto, str(path))
    x = np.random.default_rng(batch).standard_normal((batch, 16)).astype(np.float32)
    expected = ReferenceEvaluator(proto).run(None, {"x": x})[0]
    compiled = ov.compile_model(str(path))
    np.testing.assert_allclose(compiled({"x": x})["probs"], expected, rtol=1e-5, atol=1e-6)


def test_model_from_bytes_keeps_input_and_output_names():
    model = ov.Core().read_model(_mlp_model().SerializeToString())
    assert model.input(0).get_names() == {"x"}
    assert "probs" in model.output(0).get_names()
    assert str(model.input(0).get_partial_shape()) == "[?,16]"


def test_reshape_zero_copies_dimension_and_int_division_truncates():
    nodes = [
        helper.make_node("Reshape", ["a", "shape"], ["r"]),
        helper.make_node("Div", ["i", "j"], ["q"]),
        helper.make_node("Cast", ["q"], ["qf"], to=TensorProto.FLOAT),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3, 4]),
            helper.make_tensor_value_info("i", TensorProto.INT64, [4]),
            helper.make_tensor_value_info("j", TensorProto.INT64, [4]),
        ],
        [
            helper.make_tensor_value_info("r", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("qf", TensorProto.FLOAT, None),
        ],
        [numpy_helper.from_array(np.array([0, -1], np.int64), "shape")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    feeds = {
        "a": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
        "i": np.array([7, -7, 7, -7], np.int64),
        "j": np.array([2, 2, -2, -2], np.int64),
    }
    expected = ReferenceEvaluator(proto).run(None, feeds)
    got = ov.compile_model(proto.SerializeToString())(feeds)
    np.testing.assert_array_equal(got["r"], expected[0])
    assert got["r"].shape == (2, 12)
    np.testing.assert_array_equal(got["qf"], expected[1])
    np.testing.assert_array_equal(got["qf"], [3, -3, -3, 3])


def test_unsupported_op_is_named_at_read_time():
    proto = one_node_model("HardMax_Unknown")
    with pytest.raises(ov.InputError, match="HardMax_Unknown \\(node 'y'\\)"):
        ov.Core().read_model(proto.SerializeToString())


def test_truncated_file_gives_a_clear_error(tmp_path):
    data = _mlp_model().SerializeToString()
    path = tmp_path / "broken.onnx"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ov.InputError, match="cannot read the ONNX model"):
        ov.Core().read_model(str(path))


def _ints(name, values):
    return numpy_helper.from_array(np.array(values, np.int64), name)


def test_layout_logic_and_activation_nodes_match_reference():
    x = np.random.default_rng(3).random((2, 3, 4)).astype(np.float32)
    make = helper.make_node
    nodes = [
        make("Transpose", ["x"], ["t"], perm=[2, 0, 1]),
        make("Shape", ["x"], ["shp"]),
        make("Flatten", ["x"], ["fl"], axis=1),
        make("Slice", ["x", "st", "en", "ax", "sp"], ["sl"]),
        make("Split", ["x", "spl"], ["s1", "s2"], axis=2),
        make("Pad", ["x", "pads"], ["pd"], mode="reflect"),
        make("Unsqueeze", ["x", "uax"], ["us"]),
        make("Squeeze", ["us", "uax"], ["sq"]),
        make("Gather", ["x", "gi"], ["ga"], axis=2),
        make("Clip", ["x", "lo", "hi"], ["cl"]),
        make("Greater", ["x", "lo"], ["cmp"]),
        make("Where", ["cmp", "x", "minus1"], ["wh"]),
        make("Expand", ["x", "eshape"], ["ex"]),
        make("ConstantOfShape", ["eshape"], ["cos"]),
        make("Tile", ["x", "reps"], ["ti"]),
        make("LeakyRelu", ["x"], ["lr"], alpha=0.3),
        make("Erf", ["x"], ["erf"]),
        make("HardSigmoid", ["x"], ["hs"], alpha=0.3, beta=0.4),
        make("Not", ["cmp"], ["nc"]),
    ]
    outputs = [o for n in nodes for o in n.output]
    inits = [
        _ints("st", [0, 1]),
        _ints("en", [2, 4]),
        _ints("ax", [0, 2]),
        _ints("sp", [1, 2]),
        _ints("spl", [1, 3]),
        _ints("pads", [0, 1, 1, 0, 1, 2]),
        _ints("uax", [0]),
        _ints("gi", [[0, 3], [1, 1]]),
        numpy_helper.from_array(np.float32(0.3), "lo"),
        numpy_helper.from_array(np.float32(0.8), "hi"),
        numpy_helper.from_array(np.float32(-1), "minus1"),
        _ints("eshape", [2, 2, 3, 4]),
        _ints("reps", [1, 2, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
        [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in outputs],
        inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    expected = ReferenceEvaluator(proto).run(None, {"x": x})
    got = ov.compile_model(proto.SerializeToString())({"x": x})
    for name, ref in zip(outputs, expected):
        assert got[name].shape == ref.shape, name
        np.testing.assert_allclose(got[name], ref, rtol=1e-6, atol=1e-6, err_msg=name)


@pytest.mark.parametrize(
    "node, inputs",
    [
        (
            helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3], pads=[1, 2], strides=[2], dilations=[2]),
            {"x": (2, 4, 11), "w": (6, 4, 3)},
        ),
        (
            helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], auto_pad="SAME_UPPER", strides=[2, 2]),
            {"x": (1, 3, 9, 8), "w": (5, 3, 3, 3)},
        ),
        (
            helper.make_node(
                "AveragePool",
                ["x"],
                ["y"],
                kernel_shape=[3, 3],
                strides=[2, 2],
                pads=[1, 1, 1, 1],
                count_include_pad=1,
                ceil_mode=1,
            ),
            {"x": (1, 2, 8, 7)},
        ),
        (helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], pads=[0, 0, 1, 1]), {"x": (1, 2, 5, 5)}),
        (
            helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
            {"x": (2, 2, 8, 8)},
        ),
        (helper.make_node("ArgMax", ["x"], ["y"], axis=1, keepdims=0), {"x": (3, 5, 2)}),
        (helper.make_node("ArgMin", ["x"], ["y"], axis=-1), {"x": (3, 5, 2)}),
        (helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=0), {"x": (3, 4, 5), "axes": [0, 2]}),
        (helper.make_node("ReduceMax", ["x"], ["y"], axes=[1], keepdims=1), {"x": (3, 4, 5)}),
        (helper.make_node("LogSoftmax", ["x"], ["y"], axis=-1), {"x": (3, 7)}),
        (
            helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=1e-3),
            {"x": (2, 3, 4, 5), "s": (3,), "b": (3,)},
        ),
    ],
)
def test_nn_and_reduction_nodes_match_reference(node, inputs):
    rng = np.random.default_rng(5)
    feeds, inits, graph_inputs = {}, [], []
    for name, spec in inputs.items():
        if name == "axes":
            inits.append(numpy_helper.from_array(np.array(spec, np.int64), name))
            continue
        feeds[name] = rng.standard_normal(spec).astype(np.float32)
        graph_inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(spec)))
    graph = helper.make_graph(
        [node], "g", graph_inputs, [helper.make_tensor_value_info("y", TensorProto.UNDEFINED, None)], inits
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    expected = reference_outputs(proto, feeds)[0]
    got = ov.compile_model(proto.SerializeToString())(feeds)["y"]
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_external_data_next_to_the_model_loads(tmp_path):
    x = np.random.default_rng(0).standard_normal((2, 16)).astype(np.float32)
    expected = ReferenceEvaluator(_mlp_model()).run(None, {"x": x})[0]
    path = tmp_path / "mlp.onnx"
    onnx.save_model(
        _mlp_model(),
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    assert (tmp_path / "weights.bin").stat().st_size > 0
    np.testing.assert_allclose(ov.compile_model(str(path))({"x": x})["probs"], expected, rtol=1e-5, atol=1e-6)


def test_missing_external_data_file_is_a_clear_error(tmp_path):
    path = tmp_path / "mlp.onnx"
    onnx.save_model(_mlp_model(), str(path), save_as_external_data=True, location="weights.bin", size_threshold=0)
    (tmp_path / "weights.bin").unlink()
    with pytest.raises(ov.InputError, match="tensor 'w1'.*'weights.bin'.*No such file"):
        ov.Core().read_model(str(path))
