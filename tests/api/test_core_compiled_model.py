"""Core (devices, compile_model, properties) and CompiledModel (ports, __call__, requests)."""

import numpy as np
import pytest

import aiov as ov

from model_builders import add_model, two_output_model


def test_core_available_devices_is_cpu():
    core = ov.Core()
    assert core.available_devices == ["CPU"]
    assert core.get_available_devices() == ["CPU"]


@pytest.mark.parametrize("device", ["CPU", "AUTO"])
def test_core_compile_model_on_cpu_and_auto(device):
    compiled = ov.Core().compile_model(add_model(), device)
    a, b = np.arange(8, dtype=np.float32), np.full(8, 2, np.float32)
    np.testing.assert_array_equal(compiled([a, b])[0], a + b)


def test_core_compile_model_rejects_unknown_device():
    with pytest.raises(ov.InputError, match="GPU"):
        ov.Core().compile_model(add_model(), "GPU")


def test_core_performance_hint_property():
    core = ov.Core()
    assert core.get_property("CPU", "PERFORMANCE_HINT") == "LATENCY"
    core.set_property("CPU", {"PERFORMANCE_HINT": "THROUGHPUT"})
    assert core.get_property("CPU", "PERFORMANCE_HINT") == "THROUGHPUT"
    compiled = core.compile_model(add_model(), "CPU")
    assert compiled.get_property("PERFORMANCE_HINT") == "THROUGHPUT"
    with pytest.raises(ov.InputError, match="PERFORMANCE_HINT"):
        core.set_property("CPU", {"PERFORMANCE_HINT": "FASTEST"})


def test_core_inference_num_threads_property():
    core = ov.Core()
    assert core.get_property("CPU", "INFERENCE_NUM_THREADS") == 0
    core.set_property({"INFERENCE_NUM_THREADS": 1})
    assert core.get_property("INFERENCE_NUM_THREADS") == 1
    compiled = core.compile_model(add_model(), "CPU", {"INFERENCE_NUM_THREADS": 2})
    assert compiled.get_property("INFERENCE_NUM_THREADS") == 2
    a = np.ones(8, np.float32)
    np.testing.assert_array_equal(compiled([a, a])[0], 2 * a)


def test_optimal_number_of_infer_requests_follows_hint():
    core = ov.Core()
    latency = core.get_property("CPU", "OPTIMAL_NUMBER_OF_INFER_REQUESTS")
    assert isinstance(latency, int) and latency >= 1
    core.set_property("CPU", {"PERFORMANCE_HINT": "THROUGHPUT"})
    throughput = core.get_property("CPU", "OPTIMAL_NUMBER_OF_INFER_REQUESTS")
    assert throughput >= latency
    compiled = core.compile_model(add_model(), "CPU")
    assert compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS") == throughput


def test_unknown_property_is_rejected():
    with pytest.raises(ov.InputError, match="NOT_A_PROPERTY"):
        ov.Core().get_property("CPU", "NOT_A_PROPERTY")


def test_compiled_model_inputs_outputs_and_port_selection():
    compiled = ov.compile_model(add_model())
    assert [p.get_names() for p in compiled.inputs] == [{"input_0"}, {"input_1"}]
    assert compiled.input("input_1") == compiled.inputs[1]
    assert compiled.input(0) == compiled.inputs[0]
    assert compiled.output() == compiled.outputs[0]
    assert compiled.output("result_0") == compiled.outputs[0]
    with pytest.raises(ov.InputError):
        compiled.input(5)


def test_compiled_model_call_returns_ovdict():
    compiled = ov.compile_model(two_output_model())
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    res = compiled({"x": x})
    assert isinstance(res, ov.OVDict)
    np.testing.assert_array_equal(res[0], 2 * x)
    np.testing.assert_array_equal(res[1], x + 1)


def test_compiled_model_create_infer_request_gives_independent_requests():
    compiled = ov.compile_model(add_model())
    r1, r2 = compiled.create_infer_request(), compiled.create_infer_request()
    assert isinstance(r1, ov.InferRequest) and r1 is not r2
    a = np.arange(8, dtype=np.float32)
    r1.infer([a, a])
    r2.infer([a, -a])
    np.testing.assert_array_equal(r1.get_output_tensor().data, 2 * a)
    np.testing.assert_array_equal(r2.get_output_tensor().data, 0 * a)


def test_compiled_model_infer_new_request():
    compiled = ov.compile_model(add_model())
    a = np.arange(8, dtype=np.float32)
    res = compiled.infer_new_request({"input_0": a, "input_1": a})
    np.testing.assert_array_equal(res["result_0"], 2 * a)
