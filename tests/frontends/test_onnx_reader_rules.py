"""The ONNX reader's rules for untrusted files: external data is read only from a directory
the caller names (bytes carry none) and never through '..', absolute paths, links or special
files; graphs in any node order load; broken graphs fail naming the node, what was expected
and what was given."""

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import aiov as ov

from model_builders import one_node_model

W = np.arange(16, dtype=np.float32).reshape(4, 4)
X = np.ones((1, 4), np.float32)


def _matmul_model(location=None):
    weight = numpy_helper.from_array(W, "w")
    if location is not None:
        weight.ClearField("raw_data")
        weight.ClearField("float_data")
        weight.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", "0"), ("length", str(W.nbytes))):
            entry = weight.external_data.add()
            entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [weight],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture
def in_tmp_cwd(tmp_path, monkeypatch):
    """A working directory holding a 'secret' weights file an uploaded model must not read."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "weights.bin").write_bytes(W.tobytes())
    monkeypatch.chdir(cwd)
    return tmp_path


def test_bytes_with_external_data_need_weights_dir(in_tmp_cwd):
    data = _matmul_model("weights.bin").SerializeToString()
    for read in (ov.Core().read_model, ov.compile_model):
        with pytest.raises(ov.InputError, match="tensor 'w'.*'weights.bin'.*bytes.*weights_dir"):
            read(data)


def test_bytes_with_external_data_read_from_the_given_weights_dir(in_tmp_cwd):
    weights = in_tmp_cwd / "weights"
    weights.mkdir()
    (weights / "weights.bin").write_bytes((2 * W).tobytes())
    model = ov.Core().read_model(_matmul_model("weights.bin").SerializeToString(), weights_dir=weights)
    np.testing.assert_array_equal(ov.compile_model(model)(X)["y"], X @ (2 * W))


def test_aio_read_model_takes_weights_dir(in_tmp_cwd):
    import anyio

    from aiov import aio

    weights = in_tmp_cwd / "weights"
    weights.mkdir()
    (weights / "weights.bin").write_bytes(W.tobytes())
    data = _matmul_model("weights.bin").SerializeToString()
    model = anyio.run(lambda: aio.Core().read_model(data, weights_dir=str(weights)))
    np.testing.assert_array_equal(ov.compile_model(model)(X)["y"], X @ W)


def test_a_model_file_reads_external_data_next_to_itself_or_from_weights_dir(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save_model(_matmul_model("weights.bin"), str(path))
    (tmp_path / "weights.bin").write_bytes(W.tobytes())
    np.testing.assert_array_equal(ov.compile_model(str(path))(X)["y"], X @ W)
    other = tmp_path / "other"
    other.mkdir()
    (other / "weights.bin").write_bytes((3 * W).tobytes())
    model = ov.Core().read_model(str(path), weights_dir=str(other))
    np.testing.assert_array_equal(ov.compile_model(model)(X)["y"], X @ (3 * W))


def _hostile_location(tmp_path, kind):
    weights = tmp_path / "weights"
    weights.mkdir()
    (tmp_path / "secret.bin").write_bytes(W.tobytes())
    if kind == "traversal":
        return weights, "../secret.bin", "leaves the weights directory"
    if kind == "absolute":
        return weights, str(tmp_path / "secret.bin"), "is absolute"
    if kind == "symlink":
        os.symlink(tmp_path / "secret.bin", weights / "link.bin")
        return weights, "link.bin", "symbolic link"
    if kind == "symlinked-dir":
        os.symlink(tmp_path, weights / "sub")
        return weights, "sub/secret.bin", "symbolic link"
    if kind == "fifo":
        os.mkfifo(weights / "pipe.bin")
        return weights, "pipe.bin", "not a regular file"
    if kind == "directory":
        (weights / "dir.bin").mkdir()
        return weights, "dir.bin", "not a regular file"
    if kind == "empty":
        return weights, "", "no location"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["traversal", "absolute", "symlink", "symlinked-dir", "fifo", "directory", "empty"])
@pytest.mark.parametrize("source", ["bytes", "file"])
def test_external_data_outside_the_weights_dir_is_refused(tmp_path, kind, source):
    weights, location, reason = _hostile_location(tmp_path, kind)
    proto = _matmul_model(location)
    if source == "bytes":
        with pytest.raises(ov.InputError, match=f"tensor 'w'.*{reason}"):
            ov.Core().read_model(proto.SerializeToString(), weights_dir=str(weights))
    else:
        path = weights / "m.onnx"
        onnx.save_model(proto, str(path))
        with pytest.raises(ov.InputError, match=f"tensor 'w'.*{reason}"):
            ov.Core().read_model(str(path))


def test_external_data_in_a_constant_node_follows_the_same_rule(in_tmp_cwd):
    value = numpy_helper.from_array(W, "value")
    value.ClearField("raw_data")
    value.data_location = TensorProto.EXTERNAL
    entry = value.external_data.add()
    entry.key, entry.value = "location", "weights.bin"
    nodes = [helper.make_node("Constant", [], ["w"], value=value), helper.make_node("MatMul", ["x", "w"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    with pytest.raises(ov.InputError, match="'weights.bin'.*weights_dir"):
        ov.Core().read_model(data)


# ---- graph structure ----------------------------------------------------------------------


def _graph(nodes, inputs=("x",), outputs=("y",), inits=()):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        list(inits),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_unsorted_nodes_are_sorted():
    # y = relu(x) + neg(x), with the nodes written consumer first (valid ONNX).
    data = _graph(
        [
            helper.make_node("Add", ["r1", "r2"], ["y"], name="sum"),
            helper.make_node("Neg", ["x"], ["r2"], name="neg"),
            helper.make_node("Relu", ["x"], ["r1"], name="relu"),
        ]
    )
    x = np.array([-1, 2], np.float32)
    np.testing.assert_array_equal(ov.compile_model(data)(x)["y"], np.maximum(x, 0) - x)


BROKEN_GRAPHS = [
    pytest.param(
        [helper.make_node("Add", ["x", "r1"], ["y"], name="sum")],
        ["Add 'sum'", "input 'r1' is not produced"],
        id="missing-input",
    ),
    pytest.param(
        [
            helper.make_node("Relu", ["r2"], ["r1"], name="a"),
            helper.make_node("Neg", ["r1"], ["r2"], name="b"),
            helper.make_node("Add", ["x", "r1"], ["y"], name="c"),
        ],
        ["cycle", "Relu 'a'", "Neg 'b'"],
        id="cycle",
    ),
    pytest.param(
        [helper.make_node("Relu", ["x"], ["y"], name="a"), helper.make_node("Neg", ["x"], ["y"], name="b")],
        ["'y' is produced twice", "Relu 'a'", "Neg 'b'"],
        id="duplicated-output",
    ),
    pytest.param(
        [helper.make_node("Relu", ["x"], ["x"], name="a"), helper.make_node("Neg", ["x"], ["y"], name="b")],
        ["Relu 'a' produces 'x'", "graph input"],
        id="overwrites-an-input",
    ),
    pytest.param(
        [helper.make_node("Add", ["x"], ["y"], name="a")],
        ["Add 'a'", "expected 2 input(s)", "got 1"],
        id="too-few-inputs",
    ),
    pytest.param(
        [helper.make_node("Relu", ["x", "x"], ["y"], name="a")],
        ["Relu 'a'", "expected 1 input(s)", "got 2"],
        id="too-many-inputs",
    ),
    pytest.param(
        [helper.make_node("Add", ["x", ""], ["y"], name="a")],
        ["Add 'a'", "input 1 ('B') is required"],
        id="required-input-left-empty",
    ),
    pytest.param(
        [helper.make_node("Softmax", ["x"], ["y"], name="a", axis=1.5)],
        ["Softmax 'a'", "attribute 'axis' must be INT, got FLOAT"],
        id="attribute-type",
    ),
    pytest.param(
        [helper.make_node("Cast", ["x"], ["y"], name="a")],
        ["Cast 'a'", "required attribute 'to' is missing"],
        id="missing-attribute",
    ),
    pytest.param(
        [helper.make_node("Relu", ["x"], ["z"], name="a")], ["graph output 'y' is not produced"], id="missing-output"
    ),
]


@pytest.mark.parametrize("nodes,fragments", BROKEN_GRAPHS)
def test_broken_graphs_name_the_node_and_what_was_expected(nodes, fragments):
    with pytest.raises(ov.InputError) as excinfo:
        ov.Core().read_model(_graph(nodes))
    for fragment in fragments:
        assert fragment in str(excinfo.value), str(excinfo.value)


def test_bad_graph_inputs_name_the_input():
    model = one_node_model("Relu")
    model.graph.input[0].type.tensor_type.elem_type = 1234
    with pytest.raises(ov.InputError, match="graph input 'x': element type 1234"):
        ov.Core().read_model(model.SerializeToString())
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.FLOAT
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = -3
    with pytest.raises(ov.InputError, match="graph input 'x': dimension 0 is -3"):
        ov.Core().read_model(model.SerializeToString())


@pytest.mark.parametrize("elem_type", [TensorProto.COMPLEX64, TensorProto.COMPLEX128, TensorProto.STRING])
def test_graph_inputs_and_initializers_of_types_aiov_cannot_hold_are_named(elem_type):
    data = one_node_model("Identity", elem_type).SerializeToString()
    with pytest.raises(ov.InputError, match=f"graph input 'x' \\({TensorProto.DataType.Name(elem_type)}"):
        ov.Core().read_model(data)


def test_initializers_of_types_aiov_cannot_hold_are_named():
    init = numpy_helper.from_array(np.array([1 + 2j, 3j], np.complex64), "c")
    graph = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["y"])],
        "g",
        [],
        [helper.make_tensor_value_info("y", TensorProto.COMPLEX64, None)],
        [init],
    )
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    with pytest.raises(ov.InputError, match="initializer 'c' \\(COMPLEX64, dims \\[2\\]\\) is not supported"):
        ov.Core().read_model(data)


def test_an_external_data_location_that_is_not_utf8_is_named(tmp_path):
    # Found by the fuzzer: protobuf hands such a location out as bytes (a bare TypeError).
    data = _matmul_model("weights.bin").SerializeToString().replace(b"weights.bin", b"weights\xff.bi")
    with pytest.raises(ov.InputError, match="tensor 'w'.*not valid UTF-8"):
        ov.Core().read_model(data, weights_dir=str(tmp_path))
