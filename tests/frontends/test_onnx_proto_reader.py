"""The ONNX reader reads models without importing ``onnx`` (whose ml_dtypes import holds the GIL
for seconds): its tensors and attributes read exactly as onnx's own helpers read them."""

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from aiov.frontends import _onnx_proto

NATIVE = [
    TensorProto.FLOAT,
    TensorProto.UINT8,
    TensorProto.INT8,
    TensorProto.UINT16,
    TensorProto.INT16,
    TensorProto.INT32,
    TensorProto.INT64,
    TensorProto.BOOL,
    TensorProto.FLOAT16,
    TensorProto.DOUBLE,
    TensorProto.UINT32,
    TensorProto.UINT64,
]


@pytest.mark.parametrize("raw", [True, False], ids=["raw_data", "typed_fields"])
@pytest.mark.parametrize("elem_type", NATIVE, ids=[TensorProto.DataType.Name(t) for t in NATIVE])
def test_tensors_read_as_onnx_reads_them(elem_type, raw):
    dtype = helper.tensor_dtype_to_np_dtype(elem_type)
    values = (np.arange(12) % 7 - (3 if np.issubdtype(dtype, np.signedinteger) else 0)).astype(dtype)
    tensor = helper.make_tensor("t", elem_type, [3, 4], values.tobytes() if raw else values.ravel(), raw=raw)
    expected = numpy_helper.to_array(tensor)
    got = _onnx_proto.to_array(tensor)
    assert got.dtype == expected.dtype and got.shape == expected.shape == (3, 4)
    np.testing.assert_array_equal(got, expected)
    assert _onnx_proto.tensor_dtype(elem_type) == expected.dtype


def test_other_tensor_types_go_to_onnx():
    tensor = helper.make_tensor("s", TensorProto.STRING, [2], [b"a", b"bc"])
    assert list(_onnx_proto.to_array(tensor)) == list(numpy_helper.to_array(tensor))
    bf16 = helper.make_tensor("b", TensorProto.BFLOAT16, [2], [1.0, 2.0])
    np.testing.assert_array_equal(_onnx_proto.to_array(bf16).astype(np.float32), [1.0, 2.0])


def test_attributes_read_as_onnx_reads_them():
    node = helper.make_node(
        "X",
        [],
        ["y"],
        f=1.5,
        i=3,
        s="txt",
        floats=[1.0, 2.0],
        ints=[1, 2, 3],
        strings=["a", "b"],
        t=helper.make_tensor("t", TensorProto.FLOAT, [1], [2.0]),
        g=helper.make_graph([], "body", [], []),
    )
    for attr in node.attribute:
        assert _onnx_proto.attribute_value(attr) == helper.get_attribute_value(attr), attr.name


def test_reading_and_compiling_an_onnx_model_never_imports_onnx(tmp_path):
    w = numpy_helper.from_array(np.eye(4, dtype=np.float32) * 2, "w")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["y"]),
            helper.make_node("Constant", [], ["c"], value=helper.make_tensor("c", TensorProto.FLOAT, [1], [1.0])),
            helper.make_node("Add", ["y", "c"], ["z"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])],
        [w],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    script = (
        "import sys, numpy as np, aiov as ov\n"
        f"c = ov.compile_model({str(path)!r}, 'CPU')\n"
        "print(c(np.ones((1, 4), np.float32))[0].tolist())\n"
        "print('onnx' in sys.modules, 'ml_dtypes' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")
    assert lines[0] == "[[3.0, 3.0, 3.0, 3.0]]"
    assert lines[1] == "False False"
