"""The data rules for input values: a call on a compiled model and a job of an
AsyncInferQueue (sync and aio) never run on an earlier caller's value for an input it omitted;
an InferRequest the user owns keeps OpenVINO's set-then-infer. Values that would be silently altered (complex, masked) and
inputs given twice are errors."""

import numpy as np
import pytest

import aiov as ov
import aiov.aio as aio
import aiov.opset13 as ops

A = np.array([1, 2], np.float32)
B = np.array([10, 20], np.float32)
SECRET = np.array([1000, 2000], np.float32)


@pytest.fixture(scope="module")
def compiled():
    a = ops.parameter([2], np.float32, name="a")
    b = ops.parameter([2], np.float32, name="b")
    model = ov.Model(ops.add(a, b), [a, b])
    model.outputs[0].tensor.set_names({"sum"})
    return ov.compile_model(model)


OMITTING = [
    pytest.param(lambda: {"b": B}, "a", id="dict-without-a"),
    pytest.param(lambda: {1: B}, "a", id="dict-by-index-without-a"),
    pytest.param(lambda: [A], "b", id="short-list"),
    pytest.param(lambda: [], "a, b", id="empty-list"),
    pytest.param(lambda: {}, "a, b", id="empty-dict"),
    pytest.param(lambda: None, "a, b", id="nothing"),
]


@pytest.mark.parametrize("make_inputs,missing", OMITTING)
@pytest.mark.parametrize("share_inputs", [True, False])
def test_a_compiled_call_never_reuses_the_previous_callers_value(compiled, make_inputs, missing, share_inputs):
    np.testing.assert_array_equal(compiled({"a": SECRET, "b": SECRET}, share_inputs=share_inputs)["sum"], 2 * SECRET)
    with pytest.raises(
        ov.InputError, match=f"missing input\\(s\\): {missing}; a call on the compiled model takes every input"
    ):
        compiled(make_inputs(), share_inputs=share_inputs)
    # The pool still works for a complete call, and computes from this call's values only.
    np.testing.assert_array_equal(compiled([A, B])["sum"], A + B)


@pytest.mark.anyio
@pytest.mark.parametrize("make_inputs,missing", OMITTING)
async def test_an_aio_compiled_call_never_reuses_the_previous_callers_value(compiled, make_inputs, missing):
    acompiled = aio.CompiledModel(compiled)
    np.testing.assert_array_equal((await acompiled({"a": SECRET, "b": SECRET}))["sum"], 2 * SECRET)
    with pytest.raises(ov.InputError, match=f"missing input\\(s\\): {missing}"):
        await acompiled(make_inputs())
    np.testing.assert_array_equal((await acompiled({"a": A, "b": B}))["sum"], A + B)
    assert len(acompiled._pool) >= 1  # the refused call gave its slot back


@pytest.mark.parametrize("make_inputs,missing", OMITTING)
def test_a_queue_job_never_reuses_an_earlier_jobs_value(compiled, make_inputs, missing):
    queue = ov.AsyncInferQueue(compiled, jobs=1)  # one request: every job lands on it
    sums = []
    queue.set_callback(lambda request, _: sums.append(request.results["sum"].copy()))
    queue.start_async({"a": SECRET, "b": SECRET})
    queue.wait_all()
    with pytest.raises(ov.InputError, match=f"missing input\\(s\\): {missing}; a job of an AsyncInferQueue"):
        queue.start_async(make_inputs())
    queue.wait_all()  # the refused job never ran
    assert len(sums) == 1
    # Values set on the request itself since its last job are the caller's own: OpenVINO's way.
    queue[0].set_tensor("a", ov.Tensor(A.copy()))
    queue.start_async({"b": B})
    request = queue[queue.get_idle_request_id()]
    request.set_tensor("a", ov.Tensor(B.copy()))
    request.get_input_tensor(1).data[:] = SECRET  # written in place, as OpenVINO's samples do
    queue.start_async()
    queue.wait_all()
    np.testing.assert_array_equal(sums[1], A + B)
    np.testing.assert_array_equal(sums[2], B + SECRET)


def test_a_fresh_queue_names_the_inputs_never_set(compiled):
    queue = ov.AsyncInferQueue(compiled, jobs=2)
    with pytest.raises(ov.InputError, match="missing input\\(s\\): b"):
        queue.start_async({"a": A})
    queue.wait_all()


@pytest.mark.anyio
@pytest.mark.parametrize("make_inputs,missing", OMITTING)
async def test_an_aio_queue_job_never_reuses_an_earlier_jobs_value(compiled, make_inputs, missing):
    queue = aio.AsyncInferQueue(compiled, jobs=1)
    np.testing.assert_array_equal((await (await queue.start_async({"a": SECRET, "b": SECRET})))["sum"], 2 * SECRET)
    with pytest.raises(ov.InputError, match=f"missing input\\(s\\): {missing}; a job of an AsyncInferQueue"):
        await queue.start_async(make_inputs())
    assert queue.idle == 1  # the refused job gave its request back
    queue[0].set_tensor("a", ov.Tensor(A))
    np.testing.assert_array_equal((await (await queue.start_async({"b": B})))["sum"], A + B)
    np.testing.assert_array_equal((await (await queue.start_async([B, A])))["sum"], A + B)
    await queue.wait_all()


def test_an_owned_request_keeps_set_then_infer(compiled):
    request = compiled.create_infer_request()
    request.infer({"a": A, "b": B})
    np.testing.assert_array_equal(request.infer({"b": SECRET})["sum"], A + SECRET)
    request.set_tensor("a", ov.Tensor(SECRET))
    np.testing.assert_array_equal(request.infer()["sum"], 2 * SECRET)
    # A fresh request still names what was never set.
    with pytest.raises(ov.InputError, match="missing input\\(s\\): b"):
        compiled.create_infer_request().infer({"a": A})


@pytest.mark.anyio
async def test_an_owned_aio_request_keeps_set_then_infer(compiled):
    request = aio.InferRequest(compiled)
    await request.infer({"a": A, "b": B})
    np.testing.assert_array_equal((await request.infer({"b": SECRET}))["sum"], A + SECRET)


@pytest.mark.parametrize("call", ["compiled", "request"])
def test_complex_values_are_refused_not_truncated(compiled, call):
    value = np.array([1 + 2j, 3 - 1j], np.complex64)
    run_it = compiled if call == "compiled" else compiled.create_infer_request().infer
    with pytest.raises(ov.InputError, match="input 'a'.*complex.*imaginary part would be lost"):
        run_it({"a": value, "b": B})
    with pytest.raises(ov.InputError, match="complex"):
        run_it([A, [1j, 2]])


def test_masked_arrays_with_masked_elements_are_refused(compiled):
    masked = np.ma.masked_array(A, mask=[False, True])
    with pytest.raises(ov.InputError, match="input 'a'.*masked array.*filled"):
        compiled({"a": masked, "b": B})
    # Nothing masked: the data is plain data.
    unmasked = np.ma.masked_array(A, mask=[False, False])
    np.testing.assert_array_equal(compiled({"a": unmasked, "b": B})["sum"], A + B)


@pytest.mark.parametrize(
    "inputs",
    [
        pytest.param(lambda: {"a": A, 0: SECRET, "b": B}, id="name-and-index"),
        pytest.param(lambda: {0: A, "a": SECRET, "b": B}, id="index-and-name"),
        pytest.param(lambda: {np.int64(1): B, "b": SECRET, "a": A}, id="numpy-index-and-name"),
    ],
)
def test_an_input_given_twice_is_an_error(compiled, inputs):
    with pytest.raises(ov.InputError, match="input 'a'|input 'b'") as excinfo:
        compiled(inputs())
    assert "given twice" in str(excinfo.value)
    with pytest.raises(ov.InputError, match="given twice"):
        compiled.create_infer_request().infer(inputs())


def test_an_input_given_by_name_and_port_is_an_error(compiled):
    with pytest.raises(ov.InputError, match="input 'a' is given twice"):
        compiled({"a": A, compiled.inputs[0]: SECRET, "b": B})


def test_tensors_refuse_complex_and_masked_data_and_take_any_byte_order(compiled):
    with pytest.raises(ov.InputError, match="complex64"):
        ov.Tensor(np.ones(2, np.complex64))
    with pytest.raises(ov.InputError, match="masked array"):
        ov.Tensor(np.ma.masked_array(A, mask=[False, True]))
    swapped = ov.Tensor(A.astype(">f4"))
    assert swapped.element_type == ov.Type.f32
    np.testing.assert_array_equal(compiled([swapped, B])["sum"], A + B)
    with pytest.raises(ov.InputError, match="native byte order"):
        ov.Tensor(A.astype(">f4"), shared_memory=True)
