"""Stateful models: ReadValue/Assign variables kept per request between inferences, the
VariableState API (query_state, reset_state, state get/set, reset), the Model's sinks and
variables, IR read/write of the stateful layers, and the cross-thread rules (each request its
own state; a running request's state is the worker's until wait() returns)."""

import threading

import numpy as np
import pytest

import aiov as ov
import aiov.opset13 as ops
from aiov.op.util import Variable, VariableInfo

from model_builders import accumulator_model, nonzero_then_if

ONES = np.ones(4, np.float32)


@pytest.fixture(scope="module")
def accumulator():
    return ov.compile_model(accumulator_model())


def _state(request):
    return request.query_state()[0].state.data


def test_each_inference_adds_to_the_request_state(accumulator):
    request = accumulator.create_infer_request()
    for i in range(1, 5):
        np.testing.assert_array_equal(request.infer([ONES * 2])[0], ONES * 2 * i)
    np.testing.assert_array_equal(_state(request), ONES * 8)


def test_reset_state_and_variable_reset_return_to_the_initial_value(accumulator):
    request = accumulator.create_infer_request()
    request.infer([ONES])
    request.infer([ONES])
    request.reset_state()
    np.testing.assert_array_equal(request.infer([ONES])[0], ONES)
    request.query_state()[0].reset()
    np.testing.assert_array_equal(request.infer([ONES])[0], ONES)


def test_variable_state_name_type_and_set(accumulator):
    request = accumulator.create_infer_request()
    (state,) = request.query_state()
    assert state.name == state.get_name() == "acc"
    assert state.state.element_type == ov.Type.f32
    np.testing.assert_array_equal(state.state.data, np.zeros(4, np.float32))  # no value yet: zeros
    state.state = ov.Tensor(np.full(4, 5, np.float32))
    np.testing.assert_array_equal(request.infer([ONES])[0], ONES * 6)
    state.set_state(np.arange(4, dtype=np.float32))
    np.testing.assert_array_equal(request.infer([ONES])[0], np.arange(4) + 1)


def test_state_read_is_a_copy_the_next_inference_does_not_change(accumulator):
    request = accumulator.create_infer_request()
    request.infer([ONES])
    before = _state(request)
    request.infer([ONES])
    np.testing.assert_array_equal(before, ONES)


def test_set_state_refuses_another_type_or_shape(accumulator):
    (state,) = accumulator.create_infer_request().query_state()
    with pytest.raises(ov.InputError, match="expected element type f32"):
        state.state = ov.Tensor(np.zeros(4, np.int32))
    with pytest.raises(ov.InputError, match=r"expected shape \[4\], got \[5\]"):
        state.state = ov.Tensor(np.zeros(5, np.float32))


def test_each_request_keeps_its_own_state(accumulator):
    a, b = accumulator.create_infer_request(), accumulator.create_infer_request()
    a.infer([ONES])
    a.infer([ONES])
    np.testing.assert_array_equal(b.infer([ONES * 10])[0], ONES * 10)
    np.testing.assert_array_equal(_state(a), ONES * 2)


def test_compiled_model_call_keeps_state_like_openvino():
    compiled = ov.compile_model(accumulator_model())
    compiled([ONES])
    np.testing.assert_array_equal(compiled([ONES])[0], ONES * 2)
    np.testing.assert_array_equal(compiled.query_state()[0].state.data, ONES * 2)
    compiled.reset_state()
    np.testing.assert_array_equal(compiled([ONES])[0], ONES)


def test_stateless_models_have_no_state(tiny):
    compiled = tiny
    assert compiled.query_state() == []
    assert compiled.create_infer_request().query_state() == []


def test_read_value_without_initial_value_starts_at_zeros():
    compiled = ov.compile_model(accumulator_model(init=False))
    request = compiled.create_infer_request()
    np.testing.assert_array_equal(request.infer([ONES])[0], ONES)
    np.testing.assert_array_equal(request.infer([ONES])[0], ONES * 2)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.float16, np.int64])
def test_state_of_every_element_type(dtype):
    request = ov.compile_model(accumulator_model(dtype=dtype)).create_infer_request()
    x = np.ones(4, dtype)
    request.infer([x])
    out = request.infer([x])[0]
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, x * 2)


def test_variable_of_dynamic_shape_takes_the_shape_it_is_given():
    x = ops.parameter([-1], np.float32, name="x")
    state = ops.read_value("v", np.float32, [-1])
    total = ops.add(state, x)
    model = ov.Model([total], [ops.assign(total, "v")], [x])
    request = ov.compile_model(model).create_infer_request()
    with pytest.raises(ov.InputError, match="set its state first"):
        request.infer([np.ones(3, np.float32)])
    request.query_state()[0].state = ov.Tensor(np.full(3, 2, np.float32))
    np.testing.assert_array_equal(request.infer([np.ones(3, np.float32)])[0], [3, 3, 3])
    np.testing.assert_array_equal(request.infer([np.ones(3, np.float32)])[0], [4, 4, 4])
    assert request.query_state()[0].state.shape == [3]


def test_growing_state_replans_for_each_new_shape():
    # A KV-cache-like variable: each inference appends its input to the state.
    x = ops.parameter([1, 2], np.float32, name="x")
    state = ops.read_value(ops.constant(np.zeros((0, 2), np.float32)), "cache", np.float32, [-1, 2])
    grown = ops.concat([state, x], 0)
    model = ov.Model([grown], [ops.assign(grown, "cache")], [x])
    request = ov.compile_model(model).create_infer_request()
    for i in range(1, 5):
        out = request.infer([np.full((1, 2), i, np.float32)])[0]
        assert out.shape == (i, 2)
    np.testing.assert_array_equal(_state(request)[:, 0], [1, 2, 3, 4])


def test_a_cancelled_job_leaves_the_state_as_it_was():
    compiled = ov.compile_model(accumulator_model(shape=(8, 64), work_layers=8))
    request = compiled.create_infer_request()
    x = np.ones((8, 64), np.float32)
    request.infer([x])
    cancelled = 0
    for _ in range(30):
        before = _state(request)
        request.start_async([x])
        request.cancel()
        try:
            request.wait()
        except ov.CancelledError:
            cancelled += 1
            np.testing.assert_array_equal(_state(request), before)
        else:
            np.testing.assert_array_equal(_state(request), before + 1)
    assert cancelled > 0


def test_state_of_a_running_request_raises_busy():
    compiled = ov.compile_model(accumulator_model(shape=(8, 64), work_layers=16))
    request = compiled.create_infer_request()
    x = np.ones((8, 64), np.float32)
    (state,) = request.query_state()
    busy = 0
    for i in range(40):
        request.start_async([x])
        action = (lambda: state.state, request.reset_state, state.reset, lambda: state.set_state(x))[i % 4]
        try:
            action()
        except ov.BusyError as exc:
            assert "wait()" in str(exc)
            busy += 1
        request.wait()
    assert busy > 0
    request.reset_state()
    request.infer([x])
    np.testing.assert_array_equal(state.state.data, x)


def test_requests_in_parallel_threads_each_keep_their_own_state():
    compiled = ov.compile_model(accumulator_model(shape=(8, 64), work_layers=2))
    threads, rounds = 6, 40
    errors = []

    def worker(k):
        try:
            request = compiled.create_infer_request()
            x = np.full((8, 64), k + 1, np.float32)
            for i in range(1, rounds + 1):
                out = request.infer([x])[0]
                if not np.array_equal(out, x * i):
                    errors.append((k, i))
                if i % 10 == 0 and k % 2:
                    request.start_async([x])  # jobs too: the same state, advanced by the worker
                    request.wait()
                    request.reset_state()
                    request.infer([x * i])  # back where the loop expects it
        except Exception as exc:  # pragma: no cover (reported below)
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []


def test_reset_while_another_request_runs():
    compiled = ov.compile_model(accumulator_model(shape=(8, 64), work_layers=8))
    runner, other = compiled.create_infer_request(), compiled.create_infer_request()
    x = np.ones((8, 64), np.float32)
    for _ in range(50):
        runner.start_async([x])
        other.reset_state()  # another request: never busy because of runner
        np.testing.assert_array_equal(other.infer([x])[0], x)
        runner.wait()
    np.testing.assert_array_equal(_state(runner), x * 50)


def test_async_infer_queue_requests_each_keep_state():
    compiled = ov.compile_model(accumulator_model())
    queue = ov.AsyncInferQueue(compiled, 3)
    for _ in range(12):
        queue.start_async([ONES])
    queue.wait_all()
    totals = [float(request.query_state()[0].state.data[0]) for request in queue]
    assert sum(totals) == 12


# ---- the model's sinks and variables --------------------------------------------------------


def test_model_sinks_and_variables():
    model = accumulator_model()
    assert [s.get_type_name() for s in model.get_sinks()] == ["Assign"]
    assert model.get_sink_index(model.sinks[0]) == 0
    assert model.get_sink_index(model.sinks[0].output(0)) == 0
    with pytest.raises(TypeError, match="Sink node is expected"):
        model.get_sink_index(0)
    (variable,) = model.get_variables()
    assert variable.info.variable_id == "acc"
    assert variable.info.data_type == ov.Type.f32
    assert model.get_variable_by_id("acc").info.data_shape == ov.PartialShape([4])
    info = VariableInfo()
    info.variable_id, info.data_type, info.data_shape = "extra", ov.Type.f32, ov.PartialShape([1])
    extra = Variable(info)
    model.add_variables([extra])
    assert len(model.get_variables()) == 2
    model.remove_variable(extra)
    assert [v.info.variable_id for v in model.get_variables()] == ["acc"]
    model.remove_sink(model.sinks[0])
    assert model.sinks == []


def test_model_built_from_variables_and_sink_ports():
    info = VariableInfo()
    info.variable_id, info.data_type, info.data_shape = "v1", ov.Type.f32, ov.PartialShape([2, 2])
    variable = Variable(info)
    x = ops.parameter([2, 2], np.float32, name="x")
    total = ops.add(ops.read_value(variable), x)
    assign = ops.assign(total, variable)
    model = ov.Model(results=[ops.result(total)], sinks=[assign.output(0)], parameters=[x], variables=[variable])
    assert model.sinks[0].get_output_shape(0) == ov.Shape([2, 2])
    request = ov.compile_model(model).create_infer_request()
    request.infer([np.ones((2, 2), np.float32)])
    np.testing.assert_array_equal(request.infer([np.ones((2, 2), np.float32)])[0], np.full((2, 2), 2))


def test_clone_and_compile_keep_the_sinks():
    clone = accumulator_model().clone()
    assert len(clone.sinks) == 1
    request = ov.compile_model(clone).create_infer_request()
    request.infer([ONES])
    np.testing.assert_array_equal(request.infer([ONES])[0], ONES * 2)


def test_an_empty_assign_cannot_compile():
    model = accumulator_model()
    model.add_sinks([ops.assign()])
    with pytest.raises(ov.InputError, match="variable_id is empty"):
        ov.compile_model(model)


def test_mismatched_variable_types_are_refused():
    x = ops.parameter([2], np.float32, name="x")
    state = ops.read_value("v", np.float32, [2])
    wrong = ops.convert(ops.add(state, x), "i32")
    model = ov.Model([ops.add(state, x)], [ops.assign(wrong, "v")], [x])
    with pytest.raises(ov.InputError, match="writes i32 to variable 'v', which holds f32"):
        ov.compile_model(model)


def test_reshape_with_variable_shapes():
    x = ops.parameter([1, 10], np.float32, name="x")
    model = ov.Model(ops.relu(ops.read_value(x, "MyVar", ov.Type.f32, [1, 10])), [x])
    model.reshape([3, 10], {"MyVar": [3, 10]})
    assert model.input().partial_shape == ov.PartialShape([3, 10])
    with pytest.raises(TypeError, match="expected values as str"):
        model.reshape([3, 10], {0: [3, 10]})


def test_read_value_checks_its_initial_value():
    with pytest.raises(ov.InputError, match="does not fit variable"):
        ops.read_value(ops.constant(np.zeros(3, np.float32)), "v", np.float32, [4])
    with pytest.raises(ov.InputError, match="is i32 but variable 'v' holds f32"):
        ops.read_value(ops.constant(np.zeros(4, np.int32)), "v", np.float32, [4])


def test_state_accessed_from_another_thread_during_inline_inferences_is_never_torn():
    # infer() runs with the GIL released; another thread's reads, writes and resets of the same
    # request's state either wait their turn (BusyError) or see a whole value, never half of one.
    shape = (64, 256)
    compiled = ov.compile_model(accumulator_model(shape=shape, work_layers=2, size=256))
    request = compiled.create_infer_request()
    (state,) = request.query_state()
    stop, seen, errors = threading.Event(), {"busy": 0, "read": 0}, []

    def meddle():
        i = 0
        while not stop.is_set():
            i += 1
            try:
                if i % 3 == 0:
                    value = state.state.data
                    if value.min() != value.max():
                        errors.append("torn read")
                    seen["read"] += 1
                elif i % 3 == 1:
                    state.state = np.full(shape, 7, np.float32)
                else:
                    request.reset_state()
            except ov.BusyError:
                seen["busy"] += 1

    thread = threading.Thread(target=meddle)
    thread.start()
    try:
        for _ in range(200):
            out = request.infer([np.ones(shape, np.float32)])[0]
            if out.min() != out.max():
                errors.append("torn output")
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert seen["read"] > 0


@pytest.mark.parametrize(
    "text, dims",
    [("2,2", [2, 2]), ("?,2", [-1, 2]), ("[1..8,3]", [-1, 3]), ("7..7", [7]), ("", []), ("...", None)],
)
def test_variable_shape_as_openvino_writes_it(text, dims):
    node = ov._core.make_node(
        "ReadValue", [], {"variable_id": "v", "variable_type": "f32", "variable_shape": text}, "r"
    )
    assert node.output_shape(0) == dims


@pytest.mark.parametrize("text", ["abc..abc", "99999999999999999999999", "1,,2", "-3", "2;2"])
def test_a_malformed_variable_shape_is_refused_clearly(text):
    with pytest.raises(ov.InputError, match="is not a shape"):
        ov._core.make_node("ReadValue", [], {"variable_id": "v", "variable_type": "f32", "variable_shape": text}, "r")


def test_ordered_ops_put_each_sinks_subgraph_in_openvino_order():
    x = ops.parameter([2], np.float32, name="x")
    first = ops.read_value("a", np.float32, [2])
    total = ops.add(first, x)
    model = ov.Model([ops.result(total)], [ops.assign(total, "a")], [x])
    model.add_sinks([ops.assign(ops.read_value("b", np.float32, [2]), "b")])
    types = [op.get_type_name() for op in model.get_ordered_ops()]
    assert types == ["Parameter", "ReadValue", "Assign", "ReadValue", "Add", "Assign", "Result"]


def test_state_written_after_a_data_dependent_stage_counts_once_the_run_ends():
    # NonZero's output size is found by its kernel, so the run continues in a second stage
    # (plans in stages): Assign runs there, on the state ReadValue read in the first one.
    x = ops.parameter([4], np.float32, name="x")
    state = ops.read_value(ops.constant(np.zeros(2, np.float32)), "seen", np.float32, [2])
    found = ops.convert(ops.shape_of(ops.non_zero(x, "i64")), np.float32)  # [1, nonzeros]
    total = ops.add(state, found, name="total")
    model = ov.Model([ops.result(total, name="seen_so_far")], [ops.assign(total, "seen")], [x])
    request = ov.compile_model(model).create_infer_request()
    np.testing.assert_array_equal(request.infer([np.array([1, 0, 2, 3], np.float32)])[0], [1, 3])
    np.testing.assert_array_equal(request.infer([np.array([0, 0, 5, 0], np.float32)])[0], [2, 4])
    np.testing.assert_array_equal(_state(request), [2, 4])
    request.reset_state()
    np.testing.assert_array_equal(request.infer([np.zeros(4, np.float32)])[0], [1, 0])


def test_state_of_a_model_that_runs_node_by_node_counts_each_run_once():
    # The If after NonZero gives a rank per branch that only running tells: the run starts over
    # node by node, where ReadValue and Assign run as kernels on the request's variables.
    onnx_model = nonzero_then_if(scalar_sum=True)
    read = ov.Core().read_model(onnx_model.SerializeToString())
    runs = ops.add(
        ops.read_value(ops.constant(np.zeros(1, np.float32)), "runs", np.float32, [1]),
        ops.constant(np.ones(1, np.float32)),
    )
    model = ov.Model(
        [*read.get_results(), ops.result(runs, name="runs")], [ops.assign(runs, "runs")], read.get_parameters()
    )
    request = ov.compile_model(model).create_infer_request()
    x = np.array([0, 1, 0, 2, 3], np.float32)
    for k, (c, y) in enumerate([(True, [1, 3, 4, 1, 3, 4]), (False, [8]), (True, [1, 3, 4, 1, 3, 4])], start=1):
        out = request.infer({"c": np.array(c), "x": x})
        np.testing.assert_array_equal(out[0], y)
        np.testing.assert_array_equal(out[1], [k])
    np.testing.assert_array_equal(_state(request), [3])
    request.reset_state()
    np.testing.assert_array_equal(request.infer({"c": np.array(False), "x": x})[1], [1])
