"""Model: inputs/outputs, selecting ports by index or name, reshape then compile and run."""

import numpy as np
import pytest

import aiov as ov
import aiov.opset13 as ops

from model_builders import add_model, two_output_model


def test_model_inputs_and_outputs_lists():
    model = add_model()
    assert [p.get_names() for p in model.inputs] == [{"input_0"}, {"input_1"}]
    assert [p.get_names() for p in model.outputs] == [{"result_0"}]
    assert all(p.get_element_type() == ov.Type.f32 for p in model.inputs + model.outputs)
    assert model.outputs[0].get_partial_shape() == ov.PartialShape([8])


def test_model_input_by_index_and_name():
    model = add_model()
    assert model.input(0) == model.inputs[0]
    assert model.input(1) == model.inputs[1]
    assert model.input("input_1") == model.inputs[1]
    assert model.output() == model.outputs[0]
    assert model.output(0) == model.output("result_0")
    with pytest.raises(ov.InputError, match="input"):
        model.input()  # two inputs: must name one
    with pytest.raises(ov.InputError, match="nope"):
        model.input("nope")
    with pytest.raises(ov.InputError, match="out of range"):
        model.input(2)


def test_model_with_two_outputs():
    model = two_output_model()
    assert len(model.outputs) == 2
    assert model.output("plus_one") == model.outputs[1]
    compiled = ov.compile_model(model)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    res = compiled(x)
    np.testing.assert_array_equal(res["double"], x * 2)
    np.testing.assert_array_equal(res["plus_one"], x + 1)


def test_model_reshape_to_new_static_shape_then_compile_and_run():
    x = ops.parameter([-1, 4], np.float32, name="x")
    model = ov.Model(ops.relu(x), [x])
    assert model.is_dynamic()
    model.reshape([3, 4])
    assert model.inputs[0].get_partial_shape() == ov.PartialShape([3, 4])
    assert model.outputs[0].get_partial_shape() == ov.PartialShape([3, 4])
    assert not model.is_dynamic()
    model.reshape({"x": [5, 4]})
    assert str(model.input("x").get_partial_shape()) == "[5,4]"

    compiled = ov.Core().compile_model(model, "CPU")
    assert compiled.inputs[0].get_partial_shape() == ov.PartialShape([5, 4])
    data = np.linspace(-1, 1, 20, dtype=np.float32).reshape(5, 4)
    np.testing.assert_array_equal(compiled(data)[0], np.maximum(data, 0))
    with pytest.raises(ov.InputError, match=r"\[5,4\]"):
        compiled(np.ones((3, 4), np.float32))


def test_model_reshape_propagates_through_matmul():
    x = ops.parameter([-1, 3], np.float32, name="x")
    w = np.arange(6, dtype=np.float32).reshape(3, 2)
    model = ov.Model(ops.matmul(x, w), [x])
    assert str(model.outputs[0].get_partial_shape()) == "[?,2]"
    model.reshape([7, 3])
    assert model.outputs[0].get_partial_shape() == ov.PartialShape([7, 2])
    data = np.ones((7, 3), np.float32)
    np.testing.assert_allclose(ov.compile_model(model)(data)[0], data @ w)


def test_compiled_model_is_a_snapshot_of_the_model():
    x = ops.parameter([-1], np.float32, name="x")
    model = ov.Model(ops.negative(x), [x])
    compiled = ov.compile_model(model)
    model.reshape([3])
    assert compiled.inputs[0].get_partial_shape().is_dynamic
    np.testing.assert_array_equal(compiled(np.ones(5, np.float32))[0], -np.ones(5))
