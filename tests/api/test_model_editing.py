"""Editing a built graph as OpenVINO code does (rewiring inputs, replacing outputs and
parameters), reading an IR held in memory, and LOG_LEVEL through Python's logging."""

import io
import logging

import numpy as np
import pytest

import aiov as ov
import aiov.opset15 as ops
import aiov.properties as props


def _run(model, *feeds):
    return ov.compile_model(model, "CPU")(list(feeds))[0]


def test_target_inputs_list_engine_consumers_and_results():
    x = ops.parameter([2], np.float32, name="x")
    a, b = ops.relu(x), ops.negative(x)
    model = ov.Model([a, b], [x])
    targets = x.output(0).get_target_inputs()
    assert {(t.get_node(), t.get_index()) for t in targets} == {(a, 0), (b, 0)}
    (result_input,) = a.output(0).get_target_inputs()
    assert result_input.get_node() == model.get_results()[0]
    assert model.inputs[0].get_target_inputs() == targets  # a model's ports answer too


def test_input_replace_source_output_rewires_and_keeps_names():
    x = ops.parameter([3], np.float32, name="x")
    y = ops.parameter([3], np.float32, name="y")
    x.output(0).set_names({"x"})
    y.output(0).set_names({"y"})
    node = ops.relu(x)
    model = ov.Model(node, [x, y])
    node.input(0).replace_source_output(y.output(0))
    assert node.input_value(0).get_node() == y
    assert x.output(0).get_target_inputs() == set()
    assert x.output(0).get_names() == {"x"} and y.output(0).get_names() == {"y"}
    np.testing.assert_array_equal(_run(model, np.ones(3, np.float32), np.array([-1, 2, -3], np.float32)), [0, 2, 0])


def test_output_replace_moves_consumers_results_and_names():
    x = ops.parameter([4], np.float32, name="x")
    old = ops.relu(x)
    old.output(0).set_names({"c", "d"})
    later = ops.multiply(old, np.float32(2))
    model = ov.Model([later, old], [x])
    new = ops.negative(x)
    new.output(0).set_names({"f"})
    old.output(0).replace(new.output(0))
    assert new.output(0).get_names() == {"c", "d", "f"}
    assert old.output(0).get_target_inputs() == set()
    data = np.array([1, -2, 3, -4], np.float32)
    compiled = ov.compile_model(model, "CPU")
    out = compiled(data)
    np.testing.assert_array_equal(out[0], -2 * data)
    np.testing.assert_array_equal(out[1], -data)
    assert "c" in compiled.outputs[1].get_names()


def test_replace_parameter_rewires_users_and_defers_shape_checks():
    a = ops.parameter([2, 2], np.float32, name="a")
    b = ops.parameter([2, 2], np.float32, name="b")
    model = ov.Model(ops.add(a, b), [a, b])
    wider = ops.parameter([3, 2, 2], np.float32, name="wider")
    model.replace_parameter(0, wider)
    assert model.get_parameter_index(wider) == 0 and model.get_parameter_index(a) == -1
    model.validate_nodes_and_infer_types()
    assert model.output(0).get_partial_shape() == ov.PartialShape([3, 2, 2])
    out = _run(model, np.ones((3, 2, 2), np.float32), np.full((2, 2), 2, np.float32))
    np.testing.assert_array_equal(out, np.full((3, 2, 2), 3))
    bad = ops.parameter([3, 7], np.float32, name="bad")
    model.replace_parameter(1, bad)  # as in OpenVINO, checked when the model is validated
    with pytest.raises(RuntimeError, match="broadcast"):
        model.validate_nodes_and_infer_types()
    with pytest.raises(IndexError):
        model.replace_parameter(5, bad)
    with pytest.raises(TypeError):
        model.replace_parameter(0, ops.relu(bad))


def test_add_and_remove_parameters():
    x = ops.parameter([2], np.float32, name="x")
    model = ov.Model(ops.relu(x), [x])
    extra = ops.parameter([2], np.float32, name="extra")
    model.add_parameters([extra])
    assert [p.get_friendly_name() for p in model.get_parameters()] == ["x", "extra"]
    with pytest.raises(RuntimeError, match="already"):
        model.add_parameters([extra])
    model.remove_parameter(extra)
    assert len(model.parameters) == 1


def test_set_input_refuses_bad_ports():
    x = ops.parameter([2], np.float32)
    node = ops.relu(x)
    with pytest.raises(ov.InputError, match="input"):
        node._native.set_input(3, x._native, 0)
    with pytest.raises(ov.InputError, match="no output"):
        node._native.set_input(0, x._native, 2)
    with pytest.raises(ov.InputError, match="no inputs"):
        x._native.set_input(0, node._native, 0)


# ---- read_model with the IR in memory ----------------------------------------------------


@pytest.fixture
def saved_ir(tmp_path):
    x = ops.parameter([2, 3], np.float32, name="x")
    model = ov.Model(ops.add(x, np.arange(6, dtype=np.float32).reshape(2, 3)), [x])
    ov.save_model(model, str(tmp_path / "m.xml"))
    return (tmp_path / "m.xml").read_text(), (tmp_path / "m.bin").read_bytes(), tmp_path / "m.bin"


@pytest.mark.parametrize("xml_form", ["str", "bytes", "file"])
@pytest.mark.parametrize("weights_form", ["bytes", "array", "tensor", "path"])
def test_read_model_from_xml_in_memory(saved_ir, xml_form, weights_form):
    xml, weights, bin_path = saved_ir
    model = {"str": xml, "bytes": xml.encode(), "file": io.BytesIO(xml.encode())}[xml_form]
    arr = np.frombuffer(weights, np.uint8)
    w = {"bytes": weights, "array": arr, "tensor": ov.Tensor(arr.copy()), "path": str(bin_path)}[weights_form]
    read = ov.Core().read_model(model, w)
    np.testing.assert_array_equal(_run(read, np.ones((2, 3), np.float32)), np.arange(6).reshape(2, 3) + 1)


def test_read_model_in_memory_errors(saved_ir):
    xml, weights, _ = saved_ir
    with pytest.raises(ov.InputError, match="needs weights"):
        ov.Core().read_model(xml)
    with pytest.raises(ov.InputError, match="truncated"):
        ov.Core().read_model(xml, weights[:8])
    with pytest.raises(ov.InputError, match="cannot parse"):
        ov.Core().read_model("<net", weights)
    with pytest.raises(ov.InputError, match="not an OpenVINO IR"):
        ov.Core().read_model("<html></html>", weights)
    with pytest.raises(ov.InputError, match="weights are"):
        ov.Core().read_model(xml, 3.5)


# ---- LOG_LEVEL ---------------------------------------------------------------------------


@pytest.fixture
def aiov_logger():
    logger = logging.getLogger("aiov")
    before = logger.level
    yield logger
    logger.setLevel(before)


def test_log_level_drives_the_aiov_logger(aiov_logger, caplog):
    from tests.model_builders import add_model

    core = ov.Core()
    core.set_property("CPU", {props.log.level: props.log.Level.INFO})
    assert aiov_logger.level == logging.INFO
    assert core.get_property("CPU", props.log.level) == props.log.Level.INFO
    with caplog.at_level(logging.INFO, logger="aiov"):
        aiov_logger.setLevel(logging.INFO)  # caplog sets the level on the root; keep aiov's own
        core.compile_model(add_model(), "CPU")
    assert any("compile_model" in r.getMessage() for r in caplog.records if r.name == "aiov")
    caplog.clear()
    core.set_property("CPU", {"LOG_LEVEL": "LOG_NONE"})
    assert aiov_logger.level > logging.CRITICAL
    core.compile_model(add_model(), "CPU")
    assert not [r for r in caplog.records if r.name == "aiov"]
    with pytest.raises(ov.InputError, match="LOG_LEVEL"):
        core.set_property("CPU", {"LOG_LEVEL": "LOUD"})


def test_port_tensor_and_type_info_members():
    x = ops.parameter([2, 3], np.float32, name="x")
    node = ops.topk(x, 1, 1, "max", "value")
    tensor = x.output(0).get_tensor()
    assert tensor.partial_shape == ov.PartialShape([2, 3])
    assert list(tensor.shape) == [2, 3] and tensor.size == 24
    assert x.output(0).target_inputs == {node.input(0)}
    assert node.type_info.name == "TopK" and node.get_type_info() == ops.topk(x, 1, 1, "min", "value").type_info
    assert ops.sin(x).type_info.name == "Sin" and ops.sin(x).type_info.version_id == "opset1"


def test_add_outputs_names_the_missing_output():
    x = ops.parameter([2], np.float32)
    node = ops.relu(x, name="relu1")
    model = ov.Model(node, [x])
    with pytest.raises(RuntimeError, match="1234"):
        model.add_outputs(("relu1", 1234))


def test_read_and_compile_in_memory_forms(saved_ir):
    xml, weights, _ = saved_ir
    core = ov.Core()
    with pytest.raises(TypeError, match="'model' argument"):
        core.read_model(3, 3)
    read = core.read_model(io.BytesIO(xml.encode()), io.BytesIO(weights))
    compiled = core.compile_model(xml, "CPU", weights=weights)
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(compiled(x)[0], _run(read, x))


def test_set_argument_and_input_tensors():
    a, b = ops.constant(np.ones(3, np.float32)), ops.constant(np.full(3, 2, np.float32))
    c = ops.constant(np.full(3, 5, np.float64))
    node = ops.add(a, b)
    node.set_argument(0, c.output(0))
    assert node.get_input_element_type(0) == ov.Type.f64
    node.set_arguments([b, a])
    assert node.input_value(0).get_node() == b and node.input_value(1).get_node() == a
    assert list(node.get_input_tensor(0).get_shape()) == [3]
    with pytest.raises(ValueError, match="2 inputs"):
        node.set_arguments([a])


def test_node_and_model_evaluate_into_given_tensors():
    node = ops.add(np.array([3, 2, 3]), np.array([4, 2, 3]))
    out = ov.Tensor(np.zeros(3, np.int64))
    assert node.evaluate([out], [ov.Tensor(np.array([3, 2, 3])), ov.Tensor(np.array([1, 1, 1]))]) is True
    np.testing.assert_array_equal(out.data, [4, 3, 4])
    x = ops.parameter([2, 1], np.float32)
    model = ov.Model(ops.multiply(x, np.float32(2)), [x])
    result = ov.Tensor(np.zeros((2, 1), np.float32))
    assert model.evaluate([result], [ov.Tensor(np.array([[1], [4]], np.float32))])
    np.testing.assert_array_equal(result.data, [[2], [8]])
    with pytest.raises(RuntimeError, match="Cannot evaluate model"):
        model.evaluate([result], [ov.Tensor(np.zeros((3, 1), np.float32))])


def test_model_ports_by_tensor_name_keyword():
    x = ops.parameter([2], np.float32, name="A")
    x.output(0).set_names({"A"})
    model = ov.Model(ops.relu(x), [x])
    assert model.input(tensor_name="A").get_node() == x


def test_layout_helpers_name_the_usual_dimensions():
    from aiov import layout_helpers as lh

    layout = ov.Layout("NCHWD")
    assert all(f(layout) for f in (lh.has_batch, lh.has_channels, lh.has_height, lh.has_width, lh.has_depth))
    assert [lh.batch_idx(layout), lh.channels_idx(layout), lh.height_idx(layout), lh.width_idx(layout)] == [0, 1, 2, 3]
    assert lh.depth_idx(layout) == 4
    assert lh.channels_idx(ov.Layout("N...C")) == -1 and not lh.has_height(ov.Layout("N...C"))
    with pytest.raises(RuntimeError):
        lh.height_idx(ov.Layout("NC?"))


def test_explicit_broadcast_places_the_data_on_the_mapped_axes():
    data = np.arange(3, dtype=np.float32)
    node = ops.broadcast(ops.constant(data), [2, 3, 4], [1], "EXPLICIT")
    assert list(node.get_output_shape(0)) == [2, 3, 4]
    got = ov.compile_model(ov.Model(node, []))([])[0]
    np.testing.assert_array_equal(got, np.broadcast_to(data.reshape(1, 3, 1), (2, 3, 4)))
    with pytest.raises(ov.InputError, match="axes_mapping"):
        ops.broadcast(ops.constant(data), [2, 3, 4], None, "EXPLICIT")
    with pytest.raises(ov.InputError, match="outside"):
        ops.broadcast(ops.constant(data), [2, 3], [5], "EXPLICIT")


def test_copying_models_and_ports():
    import copy

    x = ops.parameter([2], np.float32, name="x")
    model = ov.Model(ops.relu(x), [x])
    clone = copy.deepcopy(model)
    clone.reshape([3])
    assert model.input().get_partial_shape() == ov.PartialShape([2])
    with pytest.raises(TypeError, match="deepcopy"):
        copy.copy(model)
    port = model.output(0)
    assert copy.copy(port) == port and copy.copy(port) is not port
    with pytest.raises(TypeError, match="deep-copied"):
        copy.deepcopy(port)


def test_model_repr_lists_ports_and_raw_address_is_identity():
    a = ops.parameter([-1, 2], np.float32, name="A")
    b = ops.parameter([-1, 2], np.float32, name="B")
    a.output(0).set_names({"A"})
    b.output(0).set_names({"B"})
    total = ops.add(a, b)
    total.output(0).set_names({"sum"})
    model = ov.Model(total, [a, b], "g")
    assert repr(model) == (
        "<Model: 'g'\ninputs[\n<ConstOutput: names[A] shape[?,2] type: f32>,\n"
        "<ConstOutput: names[B] shape[?,2] type: f32>\n]\noutputs[\n<ConstOutput: names[sum] shape[?,2] type: f32>\n]>"
    )
    same = model
    assert same._get_raw_address() == model._get_raw_address() != ov.Model(total, [a, b])._get_raw_address()
