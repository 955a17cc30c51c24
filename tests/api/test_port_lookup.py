"""One set of rules for finding an input or output (aiov._ports): Model, CompiledModel,
InferRequest and OVDict accept the same keys and fail with the same message shape, which
names what was asked and lists the ports that exist."""

import numpy as np
import pytest

import aiov as ov
import aiov.opset13 as ops


def _model():
    a = ops.parameter([2], np.float32, name="a")
    b = ops.parameter([2], np.float32, name="b")
    b.output(0).get_tensor().set_names({"b_tensor"})
    total = ops.add(a, b)
    total.set_friendly_name("adder")
    model = ov.Model([total, ops.multiply(a, b)], [a, b])
    model.outputs[0].tensor.set_names({"sum"})
    model.outputs[1].tensor.set_names({"product"})
    model.outputs[0].get_node().set_friendly_name("sum_result")  # the Result node
    return model


@pytest.fixture(scope="module")
def model():
    return _model()


@pytest.fixture(scope="module")
def compiled(model):
    return ov.compile_model(model)


X = np.array([1, 2], np.float32)
Y = np.array([3, 5], np.float32)


def _input_finders(model, compiled):
    request = compiled.create_infer_request()
    request.infer({"a": X, "b": Y})
    return {
        "Model.input": lambda k: model.input(k).get_node().get_friendly_name(),
        "CompiledModel.input": lambda k: compiled.input(k).get_node().get_friendly_name(),
        "InferRequest.get_input_tensor": lambda k: float(request.get_input_tensor(k).data[0]),
    }


def _output_finders(model, compiled):
    request = compiled.create_infer_request()
    results = request.infer({"a": X, "b": Y})
    return {
        "Model.output": lambda k: sorted(model.output(k).get_names())[0],
        "CompiledModel.output": lambda k: sorted(compiled.output(k).get_names())[0],
        "InferRequest.get_output_tensor": lambda k: float(request.get_output_tensor(k).data[0]),
        "OVDict": lambda k: float(results[k][0]),
    }


@pytest.mark.parametrize("key", [1, -1, np.int64(1), "b", "b_tensor"])
def test_every_input_finder_accepts_the_same_keys(model, compiled, key):
    found = {name: find(key) for name, find in _input_finders(model, compiled).items()}
    assert found == {"Model.input": "b", "CompiledModel.input": "b", "InferRequest.get_input_tensor": 3.0}


@pytest.mark.parametrize("key", [0, np.int32(0), "sum", "sum_result"])
def test_every_output_finder_accepts_the_same_keys(model, compiled, key):
    found = {name: find(key) for name, find in _output_finders(model, compiled).items()}
    assert found == {
        "Model.output": "sum",
        "CompiledModel.output": "sum",
        "InferRequest.get_output_tensor": 4.0,
        "OVDict": 4.0,
    }


def test_ports_of_the_source_model_find_the_compiled_ports(model, compiled):
    request = compiled.create_infer_request()
    results = request.infer([X, Y])
    assert compiled.input(model.inputs[1]) == compiled.inputs[1]
    assert compiled.output(model.outputs[1]) == compiled.outputs[1]
    np.testing.assert_array_equal(results[model.outputs[1]], X * Y)
    np.testing.assert_array_equal(request.get_tensor(model.inputs[0]).data, X)


BAD_INPUT_KEYS = [
    pytest.param(2, ["input index 2 is out of range", "2 inputs (a, b_tensor)"], id="index"),
    pytest.param(-3, ["input index -3 is out of range", "2 inputs (a, b_tensor)"], id="negative"),
    pytest.param("zz", ["no input named 'zz'", "2 inputs (a, b_tensor)"], id="name"),
    pytest.param(None, ["no input was named", "2 inputs (a, b_tensor)"], id="none-with-two"),
    pytest.param(1.0, ["by index, name or port", "float", "2 inputs (a, b_tensor)"], id="float"),
]


def _refusals(finders, key):
    """The message of the PortError each finder raises for ``key``, by finder."""
    messages = {}
    for name, find in finders.items():
        with pytest.raises(ov.PortError) as excinfo:
            find(key)
        messages[name] = str(excinfo.value)
    return messages


@pytest.mark.parametrize("key,fragments", BAD_INPUT_KEYS)
def test_every_input_finder_fails_with_the_same_message(model, compiled, key, fragments):
    messages = _refusals(_input_finders(model, compiled), key)
    for name, text in messages.items():
        for fragment in fragments:
            assert fragment in text, (name, text)
    assert len(set(messages.values())) == 1, messages


BAD_OUTPUT_KEYS = [
    pytest.param(5, ["output index 5 is out of range", "2 outputs (product, sum)"], id="index"),
    pytest.param("zz", ["no output named 'zz'", "2 outputs (sum, product)"], id="name"),
]


@pytest.mark.parametrize("key,fragments", BAD_OUTPUT_KEYS)
def test_every_output_finder_fails_with_the_same_message(model, compiled, key, fragments):
    messages = _refusals(_output_finders(model, compiled), key)
    for name, text in messages.items():
        assert fragments[0] in text and "2 outputs" in text and "sum" in text and "product" in text, (name, text)
    assert len(set(messages.values())) == 1, messages


def test_a_port_of_another_model_is_refused_by_name():
    other = ops.parameter([2], np.float32, name="stranger")
    model = _model()
    with pytest.raises(ov.PortError, match="is not an input of this model: the model has 2 inputs"):
        model.input(other.output(0))
    with pytest.raises(ov.PortError, match="is not an input of this model"):
        ov.compile_model(model).input(other.output(0))


def test_port_errors_are_input_errors_and_key_errors(compiled):
    results = compiled([X, Y])
    with pytest.raises(ov.InputError):
        compiled.input("zz")
    with pytest.raises(KeyError):
        results["zz"]
    # Mapping behaviour rests on KeyError: get() and `in` fall back quietly.
    assert results.get("zz", "default") == "default"
    assert "zz" not in results and 7 not in results and None not in results and 1.5 not in results
    assert "sum" in results and 1 in results


def test_get_tensor_looks_in_inputs_then_outputs_and_lists_both(compiled):
    request = compiled.create_infer_request()
    request.infer({"a": X, "b": Y})
    np.testing.assert_array_equal(request.get_tensor("b").data, Y)
    np.testing.assert_array_equal(request.get_tensor("product").data, X * Y)
    with pytest.raises(ov.PortError) as excinfo:
        request.get_tensor("zz")
    text = str(excinfo.value)
    assert "'zz'" in text and "2 inputs (a, b_tensor)" in text and "2 outputs" in text
    assert text.startswith("Port for tensor name zz was not found")
    with pytest.raises(ov.PortError, match="by name or port, got a int"):
        request.get_tensor(0)


def test_single_port_models_select_it_without_a_key():
    x = ops.parameter([2], np.float32, name="x")
    model = ov.Model(ops.relu(x), [x])
    compiled = ov.compile_model(model)
    request = compiled.create_infer_request()
    request.infer(X)
    assert model.input() == model.inputs[0] and compiled.output() == compiled.outputs[0]
    np.testing.assert_array_equal(request.get_output_tensor().data, X)


def test_reshape_takes_the_same_keys(model):
    m = _model()
    m.reshape({"b_tensor": [3], 0: [3]})
    assert [p.get_partial_shape().to_shape() for p in m.inputs] == [ov.Shape([3]), ov.Shape([3])]
    with pytest.raises(ov.PortError, match="no input named 'zz'"):
        m.reshape({"zz": [3]})
