"""OpenVINO's graph-building API surface: op classes, node operators, layouts, model editing,
Dimension/PartialShape semantics, Type predicates and the small value types."""

import copy

import numpy as np
import pytest

import aiov as ov
import aiov.opset13 as ops
from aiov.op import Constant, Parameter
from aiov.op.util import Variable, VariableInfo
from aiov.utils.types import get_dtype, get_element_type


def test_op_classes_build_nodes_that_stay_instances_through_the_graph():
    param = Parameter(ov.Type.f32, ov.PartialShape([2, 2]))
    const = Constant(np.ones((2, 2), np.float32))
    model = ov.Model(param + const, [param])
    assert isinstance(model.get_parameters()[0], Parameter)
    add = model.get_results()[0].input_value(0).get_node()
    assert isinstance(add.input_value(1).get_node(), Constant)
    np.testing.assert_array_equal(ov.compile_model(model)(np.full((2, 2), 2, np.float32))[0], 3)


def test_constant_forms_and_value():
    c = Constant(ov.Type.i32, ov.Shape([2, 2]), [1, 2, 3, 4])
    assert c.get_vector() == [1, 2, 3, 4]
    assert c.data.dtype == np.int32 and c.data.shape == (2, 2)
    assert Constant(ov.Type.f32, [3], [7]).get_vector() == [7, 7, 7]
    with pytest.raises(ov.InputError, match="needs 4 values"):
        Constant(ov.Type.f32, [2, 2], [1, 2, 3])


def test_node_operators_compute_what_they_say():
    a = ops.parameter([3], np.float32)
    b = ops.parameter([3], np.float32)
    model = ov.Model([(a + b) * 2 - a / b, -a, 1 - a, 1 + a, 3 * a, 8 / a, 2**a, a**b], [a, b])
    x, y = np.array([1, 2, 4], np.float32), np.array([2, 4, 8], np.float32)
    out = ov.compile_model(model)([x, y])
    np.testing.assert_allclose(out[0], (x + y) * 2 - x / y)
    np.testing.assert_array_equal(out[1], -x)
    # the reflected forms keep the number on the left
    for got, want in zip(list(out.values())[2:], [1 - x, 1 + x, 3 * x, 8 / x, 2**x, x**y]):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_layout_parsing_and_naming():
    assert ov.Layout("NCHW") == ov.Layout("[N,C,H,W]") == "NCHW"
    assert ov.Layout("N...C").get_index_by_name("C") == -1
    assert ov.Layout("NC?").to_string() == "[N,C,?]"
    assert not ov.Layout.scalar().has_name("N")
    with pytest.raises(RuntimeError, match="twice"):
        ov.Layout("NN")


def test_layouts_on_parameters_drive_get_and_set_batch():
    a = ops.parameter([2, 3], np.float32, name="a")
    b = ops.parameter([2, 3], np.float32, name="b")
    model = ov.Model(a + b, [a, b])
    with pytest.raises(RuntimeError, match="no Parameter has a layout"):
        ov.get_batch(model)
    model.get_parameters()[0].set_layout(ov.Layout("NC"))
    ov.layout_helpers.set_layout(model.input(1), ov.Layout("NC"))
    assert ov.layout_helpers.get_layout(model.input(0)) == ov.Layout("NC")
    assert ov.get_batch(model) == 2
    ov.set_batch(model, 5)
    assert model.input(0).get_partial_shape() == ov.PartialShape([5, 3])
    with pytest.raises(RuntimeError, match="rank 2"):
        a.set_layout(ov.Layout("NCHW"))


def test_add_outputs_by_name_pair_and_port():
    p = ops.parameter([4], np.float32, name="data")
    r1 = ops.relu(p, name="relu1")
    r1.get_output_tensor(0).set_names({"t1"})
    r2 = ops.relu(r1 - 1.0, name="relu2")
    model = ov.Model(r2, [p])
    assert len(model.add_outputs("t1")) == 1 and len(model.outputs) == 2
    assert model.add_outputs(("relu1", 0))[0] == model.outputs[1]  # already an output: not added twice
    assert len(model.outputs) == 2
    with pytest.raises(TypeError, match="at index 0"):
        model.add_outputs([0])
    out = ov.compile_model(model)(np.array([-1, 0.5, 2, 3], np.float32))
    np.testing.assert_array_equal(out[1], [0, 0.5, 2, 3])


def test_model_rt_info_paths():
    p = ops.parameter([1], np.float32)
    model = ov.Model(ops.relu(p), [p])
    model.set_rt_info("1", ["framework", "batch"])
    assert model.has_rt_info("framework") and model.get_rt_info(["framework", "batch"]) == "1"
    assert not model.has_rt_info(["framework", "x"])
    with pytest.raises(RuntimeError):
        model.get_rt_info("missing")


def test_dimension_relations_and_symbols():
    assert ov.Dimension(3).refines(ov.Dimension()) and not ov.Dimension().refines(ov.Dimension(3))
    assert ov.Dimension(2, 5).relaxes(ov.Dimension(3))
    assert ov.Dimension().same_scheme(ov.Dimension(1, 4)) and not ov.Dimension(3).same_scheme(ov.Dimension(4))
    assert ov.Dimension(1, 10).merge(ov.Dimension(5, 20)) == ov.Dimension(5, 10)
    assert ov.Dimension(1).merge(ov.Dimension(2)) is None
    d, e = ov.Dimension(), ov.Dimension()
    assert not d.get_symbol()
    d.set_symbol(ov.Symbol())
    e.set_symbol(d.get_symbol())
    assert d.get_symbol() == e.get_symbol() and d.get_symbol() != ov.Symbol()


def test_partial_shape_forms_and_relations():
    ps = ov.PartialShape([(1, 10), 4, "..10", ov.Dimension(2)])
    assert ps[0] == ov.Dimension(1, 10) and ps[2] == ov.Dimension(0, 10)
    ps[1] = -1
    assert ps[1].is_dynamic
    assert ov.PartialShape([3, 4]).refines(ov.PartialShape.dynamic())
    assert ov.PartialShape.dynamic(ov.Dimension(2)) == ov.PartialShape([-1, -1])
    assert copy.deepcopy(ps) == ps
    with pytest.raises(TypeError, match="Two elements"):
        ov.PartialShape([(1, 2, 3)])
    with pytest.raises(RuntimeError, match="incorrect"):
        ov.PartialShape("[?,,3]")


def test_type_predicates_and_merge():
    assert ov.Type.i8.quantized and not ov.Type.i16.quantized
    assert ov.Type.boolean.integral and ov.Type.boolean.signed
    assert ov.Type.f16.real and not ov.Type.u8.signed
    assert ov.Type.dynamic.merge(ov.Type.f32) == ov.Type.f32 and ov.Type.f32.merge(ov.Type.i32) is None
    assert ov.Type(str) == ov.Type(np.bytes_) == ov.Type.string and ov.Type.string.to_dtype() == np.bytes_
    assert ov.Type.nf4.bitwidth == 4
    assert get_element_type(int) == ov.Type.i32 and get_dtype(ov.Type.f16) == np.float16


def test_small_value_types():
    s = ov.Strides([1, 2])
    s[0] = 5
    assert s == [5, 2]
    with pytest.raises(ValueError):
        ov.Coordinate([-1])
    assert ov.CoordinateDiff([-1, 2]) == [-1, 2]
    info = VariableInfo()
    info.data_shape, info.data_type, info.variable_id = [1, 2], np.float32, "v"
    var = Variable(info)
    info.variable_id = "changed"
    assert var.get_info().variable_id == "v" and var.info.data_type == ov.Type.f32
    assert isinstance(ov.get_version(), str)
    version = ov.Core().get_versions("CPU")["CPU"]
    assert version.major >= 0 and version.description


def test_unload_plugin_checks_the_device_only():
    core = ov.Core()
    core.unload_plugin("CPU")  # the engine is aiov itself: it stays usable
    x = np.ones(2, np.float32)
    p = ops.parameter([2], np.float32)
    np.testing.assert_array_equal(core.compile_model(ov.Model(ops.relu(p), [p]))(x)[0], x)
    with pytest.raises(ov.InputError, match="'GPU' is not available"):
        core.unload_plugin("GPU")


def test_extensions_are_refused():
    with pytest.raises(RuntimeError, match="does not load extensions"):
        ov.Core().add_extension(ov.Extension())


def test_rt_info_on_nodes_and_ports_persists_across_wrappers():
    p = ops.parameter([2], np.float32)
    relu = ops.relu(p)
    relu.input(0).get_rt_info()["k"] = "v"
    relu.output(0).rt_info["o"] = 1
    model = ov.Model(relu, [p])
    node = model.get_results()[0].input_value(0).get_node()
    assert node.inputs()[0].get_rt_info()["k"] == "v"
    assert isinstance(node.output(0).get_rt_info()["o"], ov.OVAny)
    assert "k" not in node.output(0).get_rt_info()


def test_multi_output_node_as_results_means_all_its_outputs():
    p = ops.parameter([4], np.float32)
    split = ops.split(p, 0, 2)
    model = ov.Model(split, [p])
    assert len(model.outputs) == 2
    out = ov.compile_model(model)(np.arange(4, dtype=np.float32))
    np.testing.assert_array_equal(out[1], [2, 3])


def test_tensor_names_are_assignable_and_constant_byte_size():
    p = ops.parameter([2], np.float32)
    p.output(0).get_tensor().names = {"x", "y"}
    assert p.output(0).get_names() == {"x", "y"}
    assert Constant(np.zeros((2, 3), np.float64)).get_byte_size() == 48


@pytest.mark.parametrize(("text", "message"), [("?..5", "min bound"), ("2..x", "max bound"), ("C", "dimension")])
def test_dimension_text_errors_name_the_bad_part(text, message):
    with pytest.raises(ov.InputError, match=message):
        ov.Dimension(text)


def test_ports_order_by_node_then_index_and_descriptors_show_the_type():
    split = ops.split(ops.parameter([4], np.float32), 0, 2)
    first, second = split.outputs()
    assert first < second and sorted([second, first]) == [first, second]
    assert first.get_tensor().element_type == ov.Type.f32


def test_value_bounds_and_symbols_are_kept_on_the_output_tensor():
    param = ops.parameter([2, 3], np.float32)
    tensor = param.output(0).get_tensor()
    assert tensor.get_lower_value() is None and tensor.get_upper_value() is None
    assert tensor.get_value_symbol() == []
    lower, upper = ov.Tensor(np.zeros((2, 3), np.float32)), ov.Tensor(np.ones((2, 3), np.float32))
    tensor.set_lower_value(lower)
    tensor.set_upper_value(upper)
    symbols = [ov.Symbol() for _ in range(6)]
    tensor.set_value_symbol(symbols)
    again = param.output(0).get_tensor()  # a fresh view of the same tensor
    assert again.get_lower_value() is lower and again.get_upper_value() is upper
    assert again.get_value_symbol() == symbols
    assert ops.parameter([2, 3], np.float32).output(0).get_tensor().get_lower_value() is None


def test_value_bounds_and_symbols_must_fit_the_tensor():
    tensor = ops.parameter([2, 3], np.float32).output(0).get_tensor()
    with pytest.raises(ValueError, match="the tensor is f32 \\[2,3\\], got a Tensor of i32"):
        tensor.set_lower_value(ov.Tensor(np.zeros((2, 3), np.int32)))
    with pytest.raises(ValueError, match="got a Tensor of f32 \\[3\\]"):
        tensor.set_upper_value(ov.Tensor(np.zeros(3, np.float32)))
    with pytest.raises(TypeError, match="takes a Tensor"):
        tensor.set_upper_value(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="has 6 values, got 1 symbols"):
        tensor.set_value_symbol([ov.Symbol()])
    with pytest.raises(TypeError, match="list of Symbols"):
        tensor.set_value_symbol([1] * 6)
    dynamic = ops.parameter([-1, 3], np.float32).output(0).get_tensor()
    with pytest.raises(ValueError, match="need a static shape"):
        dynamic.set_lower_value(ov.Tensor(np.zeros((2, 3), np.float32)))


def test_ports_copy_shallowly_and_take_attributes_of_their_own():
    node = ops.relu(ops.parameter([2], np.float32))
    port = node.output(0)
    twin = copy.copy(port)
    assert twin is not port and twin == port and twin.get_node() == node
    twin.note, port.note = "twin", "port"
    assert (twin.note, port.note) == ("twin", "port")
    with pytest.raises(TypeError, match="a port \\(Output\\) cannot be deep-copied"):
        copy.deepcopy(port)
    assert ov.Output._from_node(node) == port
