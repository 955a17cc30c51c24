"""ONNX models load through the frontend and match onnx's reference evaluator."""
import numpy as np
import pytest

import aiov as ov

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402


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
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1, "b1"), numpy_helper.from_array(w2, "w2")])
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
        nodes, "g",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3, 4]),
         helper.make_tensor_value_info("i", TensorProto.INT64, [4]),
         helper.make_tensor_value_info("j", TensorProto.INT64, [4])],
        [helper.make_tensor_value_info("r", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("qf", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.array([0, -1], np.int64), "shape")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    feeds = {"a": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
             "i": np.array([7, -7, 7, -7], np.int64), "j": np.array([2, 2, -2, -2], np.int64)}
    expected = ReferenceEvaluator(proto).run(None, feeds)
    got = ov.compile_model(proto.SerializeToString())(feeds)
    np.testing.assert_array_equal(got["r"], expected[0])
    assert got["r"].shape == (2, 12)
    np.testing.assert_array_equal(got["qf"], expected[1])
    np.testing.assert_array_equal(got["qf"], [3, -3, -3, 3])


def test_unsupported_op_is_named_at_read_time():
    graph = helper.make_graph(
        [helper.make_node("HardMax_Unknown", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ov.InputError, match="HardMax_Unknown"):
        ov.Core().read_model(proto.SerializeToString())


def test_truncated_file_gives_a_clear_error(tmp_path):
    data = _mlp_model().SerializeToString()
    path = tmp_path / "broken.onnx"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ov.InputError, match="cannot read the ONNX model"):
        ov.Core().read_model(str(path))
