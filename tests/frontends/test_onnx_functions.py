"""ONNX ops aiov has no converter for but whose schema defines as a function of other ops: the
reader converts the function body in the node's place (FlexAttention, whose body ONNX builds
for the node's score and probability graphs), taking the attributes the body refers to from
the node or, when absent, from the op's defaults."""

import numpy as np
import pytest

import aiov as ov

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from aiov.frontends import onnx as onnx_frontend  # noqa: E402
from aiov.onnx_backend import node_test_cases  # noqa: E402

FLEX_CASES = [c for c in node_test_cases() if c.name.startswith("test_flexattention") and "_expanded" not in c.name]


@pytest.mark.skipif(not FLEX_CASES, reason=f"onnx {onnx.__version__} has no FlexAttention")
@pytest.mark.parametrize("case", FLEX_CASES, ids=[c.name for c in FLEX_CASES])
def test_flex_attention_runs_its_function_body(case):
    compiled = ov.compile_model(case.model.SerializeToString())
    for inputs, outputs in case.data_sets:
        got = compiled([np.asarray(i) for i in inputs])
        for k, expected in enumerate(outputs):
            expected = numpy_helper.to_array(expected) if isinstance(expected, onnx.TensorProto) else expected
            assert got[k].dtype == expected.dtype
            np.testing.assert_allclose(got[k], expected, rtol=case.rtol, atol=case.atol)


@pytest.mark.parametrize("attrs", [{}, {"lambd": 1.5, "bias": 0.25}])
def test_function_body_takes_node_attributes_or_the_defaults(monkeypatch, attrs):
    # Shrink has a converter; without it the reader falls back on ONNX's function body, whose
    # nodes read lambd and bias by reference.
    monkeypatch.delitem(onnx_frontend._CONVERTERS, "Shrink")
    node = helper.make_node("Shrink", ["x"], ["y"], name="shrink", **attrs)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    x = np.array([-3, -1.5, -0.6, 0, 0.4, 1.6, 3], np.float32)
    got = ov.compile_model(model.SerializeToString())({"x": x})[0]
    np.testing.assert_allclose(got, ReferenceEvaluator(model).run(None, {"x": x})[0], rtol=1e-6)


def test_an_op_without_converter_or_function_is_still_named(monkeypatch):
    node = helper.make_node("NoSuchOp", ["x"], ["y"], name="mystery", domain="example.domain")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("example.domain", 1)]
    )
    with pytest.raises(ov.InputError, match=r"does not support: example\.domain\.NoSuchOp \(node 'mystery'\)"):
        ov.Core().read_model(model.SerializeToString())
