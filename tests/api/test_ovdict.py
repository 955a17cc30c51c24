"""OVDict: an immutable mapping of results keyed by port, index or tensor name."""

import numpy as np
import pytest

import aiov as ov

from model_builders import two_output_model

X = np.arange(6, dtype=np.float32).reshape(2, 3)


@pytest.fixture(scope="module")
def compiled():
    return ov.compile_model(two_output_model())


@pytest.fixture
def results(compiled):
    return compiled(X)


def test_access_by_name_index_and_port(compiled, results):
    for key in ("double", 0, -2, compiled.outputs[0]):
        np.testing.assert_array_equal(results[key], X * 2)
    for key in ("plus_one", 1, -1, compiled.outputs[1]):
        np.testing.assert_array_equal(results[key], X + 1)


def test_access_by_port_of_the_source_model(results):
    model = two_output_model()
    np.testing.assert_array_equal(results[model.outputs[1]], X + 1)


def test_unknown_keys_raise_key_error(results):
    for key in ("nope", 2, -3):
        with pytest.raises(KeyError):
            results[key]
    assert "double" in results and 1 in results and "nope" not in results


def test_iteration_yields_ports_in_output_order(compiled, results):
    assert list(results) == compiled.outputs
    assert len(results) == 2
    assert list(results.keys()) == compiled.outputs


def test_values_and_items(compiled, results):
    values = list(results.values())
    np.testing.assert_array_equal(values[0], X * 2)
    np.testing.assert_array_equal(values[1], X + 1)
    items = list(results.items())
    assert [k for k, _ in items] == compiled.outputs
    assert items[1][1] is values[1]


def test_to_dict_and_to_tuple(compiled, results):
    d = results.to_dict()
    assert type(d) is dict and list(d) == compiled.outputs
    assert d[compiled.outputs[0]] is results[0]
    t = results.to_tuple()
    assert type(t) is tuple and len(t) == 2
    assert t[1] is results["plus_one"]


def test_names_lists_tensor_names_per_output(results):
    assert results.names() == ({"double"}, {"plus_one"})


def test_ovdict_is_immutable(results):
    with pytest.raises(TypeError):
        results["double"] = np.zeros((2, 3))
    with pytest.raises(TypeError):
        results[0] = np.zeros((2, 3))
    with pytest.raises(TypeError):
        del results[0]
    np.testing.assert_array_equal(results[0], X * 2)


def test_ovdict_matches_openvino_access_patterns():
    openvino = pytest.importorskip("openvino")
    import openvino.opset13 as ovops

    x = ovops.parameter([2, 3], np.float32, name="x")
    model = openvino.Model([ovops.multiply(x, np.float32(2)), ovops.add(x, np.float32(1))], [x])
    model.outputs[0].tensor.set_names({"double"})
    model.outputs[1].tensor.set_names({"plus_one"})
    ref = openvino.compile_model(model, "CPU")(X)
    ours = ov.compile_model(two_output_model())(X)
    for key in ("double", "plus_one", 0, 1):
        np.testing.assert_array_equal(ours[key], ref[key])
    assert ours.names() == ref.names()
    assert len(ours.to_tuple()) == len(ref.to_tuple())
    with pytest.raises(TypeError):
        ref[0] = 1  # OpenVINO's OVDict is immutable too
