"""InferRequest: the ways to pass inputs, sync and async runs, tensors, callbacks,
latency, profiling, userdata and cancellation."""

import threading

import numpy as np
import pytest

import aiov as ov

from model_builders import add_model, heavy_model, scale_model, two_output_model

A = np.arange(8, dtype=np.float32)
B = np.linspace(-1, 1, 8, dtype=np.float32)


@pytest.fixture(scope="module")
def compiled():
    return ov.compile_model(add_model(), "CPU")


@pytest.fixture
def request_(compiled):
    return compiled.create_infer_request()


@pytest.mark.parametrize(
    "make_inputs",
    [
        pytest.param(lambda c: {"input_0": A, "input_1": B}, id="dict-by-name"),
        pytest.param(lambda c: {0: A, 1: B}, id="dict-by-index"),
        pytest.param(lambda c: {c.inputs[0]: A, c.inputs[1]: B}, id="dict-by-port"),
        pytest.param(lambda c: {"input_1": B, 0: A}, id="dict-mixed-keys"),
        pytest.param(lambda c: [A, B], id="list"),
        pytest.param(lambda c: (A, B), id="tuple"),
        pytest.param(lambda c: [ov.Tensor(A), ov.Tensor(B)], id="list-of-tensors"),
        pytest.param(lambda c: [A.astype(np.float64), B.astype(np.float16)], id="converted-dtypes"),
    ],
)
def test_infer_accepts_every_input_form(compiled, request_, make_inputs):
    inputs = make_inputs(compiled)
    expected = A + B.astype(np.float16).astype(np.float32) if "float16" in repr(inputs) else A + B
    res = request_.infer(inputs)
    np.testing.assert_allclose(res["result_0"], expected)
    np.testing.assert_allclose(request_.get_output_tensor().data, expected)


@pytest.mark.parametrize("call", ["infer", "compiled_call"])
def test_inputs_keyed_by_name_go_to_the_named_input_in_any_order(call):
    # a - b tells the inputs apart; the dict lists them in the reverse of the model's order.
    a = ov.opset13.parameter([4], np.float32, name="a")
    b = ov.opset13.parameter([4], np.float32, name="b")
    compiled = ov.compile_model(ov.Model(ov.opset13.subtract(a, b), [a, b]))
    x, y = np.arange(4, dtype=np.float32), np.full(4, 10, np.float32)
    run = compiled.create_infer_request().infer if call == "infer" else compiled
    np.testing.assert_array_equal(run({"b": y, "a": x})[0], x - y)
    np.testing.assert_array_equal(run({1: x, "a": y})[0], y - x)
    # Two keys for one input leave the other unset: an error, not a silent mix-up.
    with pytest.raises(ov.InputError):
        compiled.create_infer_request().infer({"a": x, 0: y})


class _Tagged(np.ndarray):
    """An ndarray subclass: taken like any array, never by the one-call path's exact check."""


@pytest.mark.parametrize("how", ["infer", "compiled_call", "start_async"])
@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda x: x.astype(">f4"), id="big-endian"),
        pytest.param(lambda x: np.repeat(x, 2)[::2], id="strided-view"),
        pytest.param(lambda x: x.view(_Tagged), id="ndarray-subclass"),
        pytest.param(lambda x: x.astype(np.float64), id="float64"),
        pytest.param(lambda x: x, id="plain"),
    ],
)
def test_arrays_the_one_call_path_cannot_take_as_they_are_still_give_the_right_result(how, make):
    # The sync path binds exact, C-contiguous numpy arrays of the input's dtype in one native
    # call; everything else goes through the Python path's conversion, with the same result.
    a = ov.opset13.parameter([4], np.float32, name="a")
    b = ov.opset13.parameter([4], np.float32, name="b")
    compiled = ov.compile_model(ov.Model(ov.opset13.subtract(a, b), [a, b]))
    x, y = np.arange(4, dtype=np.float32), np.array([10, -3, 0.5, 7], np.float32)
    for inputs in ({"b": make(y), "a": make(x)}, [make(x), make(y)], {0: make(x), "b": make(y)}):
        for share in (False, True):
            if how == "compiled_call":
                got = compiled(inputs, share_inputs=share)[0]
            else:
                request = compiled.create_infer_request()
                if how == "infer":
                    got = request.infer(inputs, share_inputs=share)[0]
                else:
                    request.start_async(inputs, share_inputs=share)
                    request.wait()
                    got = request.get_output_tensor().data
            np.testing.assert_array_equal(got, x - y)


def test_infer_accepts_a_single_array_and_a_single_tensor():
    request = ov.compile_model(scale_model()).create_infer_request()
    x = np.array([1, 2, 3, 4], np.float32)
    np.testing.assert_array_equal(request.infer(x)[0], 3 * x)
    np.testing.assert_array_equal(request.infer(ov.Tensor(x + 1))[0], 3 * (x + 1))


def test_infer_keeps_earlier_inputs_when_only_some_are_given(request_):
    request_.infer([A, B])
    res = request_.infer({"input_1": A})  # input_0 keeps A
    np.testing.assert_array_equal(res[0], A + A)


def test_start_async_then_wait(request_):
    assert request_.start_async({0: A, 1: B}) is None
    request_.wait()
    np.testing.assert_array_equal(request_.get_output_tensor(0).data, A + B)
    np.testing.assert_array_equal(request_.results[0], A + B)


def test_wait_for_returns_false_while_running_then_true():
    model, weights = heavy_model(layers=4)
    request = ov.compile_model(model).create_infer_request()
    x = np.ones((256, 1024), np.float32)
    request.start_async(x)
    assert request.wait_for(0) is False  # a 4-layer 256x1024x1024 chain is not done at once
    while not request.wait_for(50):
        pass
    assert request.wait_for(1) is True
    assert request.get_output_tensor().data.shape == (256, 1024)


def test_wait_for_on_a_finished_job_is_true(request_):
    request_.start_async([A, B])
    request_.wait()
    assert request_.wait_for(0) is True
    np.testing.assert_array_equal(request_.get_output_tensor().data, A + B)


def test_set_callback_runs_once_per_job_with_userdata(request_):
    calls = []
    done = threading.Event()

    def callback(userdata):
        calls.append((userdata, request_.get_output_tensor().data.copy(), threading.current_thread()))
        done.set()

    request_.set_callback(callback, "first")
    request_.start_async([A, B])
    request_.wait()  # also waits for the callback
    assert done.is_set() and len(calls) == 1
    assert calls[0][0] == "first"
    np.testing.assert_array_equal(calls[0][1], A + B)
    assert calls[0][2] is not threading.main_thread()

    request_.start_async([B, B], userdata="second")
    request_.wait()
    assert [c[0] for c in calls] == ["first", "second"]
    np.testing.assert_array_equal(calls[1][1], B + B)
    assert request_.userdata == "second"


def test_userdata_attribute_is_free_for_the_user(request_):
    assert request_.userdata is None
    request_.userdata = {"id": 7}
    request_.infer([A, B])
    assert request_.userdata == {"id": 7}


def test_get_tensor_by_name_and_port(compiled, request_):
    request_.infer({"input_0": A, "input_1": B})
    np.testing.assert_array_equal(request_.get_tensor("input_0").data, A)
    np.testing.assert_array_equal(request_.get_tensor(compiled.inputs[1]).data, B)
    np.testing.assert_array_equal(request_.get_tensor("result_0").data, A + B)
    np.testing.assert_array_equal(request_.get_tensor(compiled.outputs[0]).data, A + B)
    assert request_.get_tensor("result_0").element_type == ov.Type.f32


def test_set_tensor_binds_input_memory(compiled, request_):
    t0, t1 = ov.Tensor(A.copy()), ov.Tensor(B.copy())
    request_.set_tensor("input_0", t0)
    request_.set_tensor(compiled.inputs[1], t1)
    request_.infer()
    np.testing.assert_array_equal(request_.get_output_tensor().data, A + B)
    # The request reads the tensor's memory: a change is seen by the next inference.
    t0.data[:] = 10
    request_.infer()
    np.testing.assert_array_equal(request_.get_output_tensor().data, 10 + B)
    assert np.shares_memory(request_.get_input_tensor(0).data, t0.data)


def test_set_tensor_with_wrong_element_type_is_rejected(request_):
    with pytest.raises(ov.InputError, match="input_0.*f32.*i32"):
        request_.set_tensor("input_0", ov.Tensor(np.ones(8, np.int32)))


def test_input_and_output_tensor_accessors(request_):
    request_.infer([A, B])
    np.testing.assert_array_equal(request_.get_input_tensor(0).data, A)
    np.testing.assert_array_equal(request_.get_input_tensor(1).data, B)
    assert [t.data.tolist() for t in request_.input_tensors] == [A.tolist(), B.tolist()]
    assert len(request_.output_tensors) == 1
    np.testing.assert_array_equal(request_.output_tensors[0].data, A + B)
    np.testing.assert_array_equal(request_.get_output_tensor().data, A + B)
    with pytest.raises(ov.InputError):
        request_.get_input_tensor()  # two inputs: an index is needed


def test_results_property_is_a_copy_of_last_outputs():
    request = ov.compile_model(two_output_model()).create_infer_request()
    x = np.ones((2, 3), np.float32)
    request.infer(x)
    res = request.results
    assert isinstance(res, ov.OVDict) and len(res) == 2
    np.testing.assert_array_equal(res["double"], 2 * x)
    np.testing.assert_array_equal(res["plus_one"], x + 1)
    request.infer(3 * x)
    np.testing.assert_array_equal(res["double"], 2 * x)  # a copy: unchanged
    np.testing.assert_array_equal(request.results["double"], 6 * x)


def test_outputs_are_copies_unless_share_outputs(request_):
    res = request_.infer([A, B])
    assert not np.shares_memory(res[0], request_.get_output_tensor().data)
    shared = request_.infer([A, B], share_outputs=True)
    assert np.shares_memory(shared[0], request_.get_output_tensor().data)


def test_inputs_are_copied_unless_share_inputs(request_):
    a = A.copy()
    request_.infer([a, B])
    assert not np.shares_memory(request_.get_input_tensor(0).data, a)
    request_.infer([a, B], share_inputs=True)
    assert np.shares_memory(request_.get_input_tensor(0).data, a)


def test_latency_is_measured_in_milliseconds(request_):
    request_.infer([A, B])
    assert isinstance(request_.latency, float) and request_.latency > 0


def test_profiling_info_with_perf_count():
    compiled = ov.Core().compile_model(add_model(), "CPU", {"PERF_COUNT": True})
    request = compiled.create_infer_request()
    request.infer([A, B])
    info = request.get_profiling_info()
    assert len(info) >= 1
    assert "Add" in [p.node_type for p in info]
    for p in info:
        assert p.status == ov.ProfilingInfo.Status.EXECUTED and p.real_time.total_seconds() >= 0
    assert len(request.profiling_info) == len(info)


def test_cancel_stops_a_running_job_and_request_stays_usable():
    model, weights = heavy_model(layers=8)
    request = ov.compile_model(model).create_infer_request()
    x = np.ones((256, 1024), np.float32)
    request.start_async(x)
    request.cancel()
    with pytest.raises(ov.CancelledError):
        request.wait()
    request.wait()  # raised once only
    small = np.full((2, 1024), 0.5, np.float32)
    from model_builders import heavy_reference

    np.testing.assert_allclose(request.infer(small)[0], heavy_reference(small, weights), rtol=1e-4, atol=1e-5)


def test_infer_on_busy_request_raises_busy_error():
    model, _ = heavy_model(layers=4)
    request = ov.compile_model(model).create_infer_request()
    request.start_async(np.ones((256, 1024), np.float32))
    with pytest.raises(ov.BusyError):
        request.infer(np.ones((256, 1024), np.float32))
    request.wait()
