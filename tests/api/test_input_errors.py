"""Bad input raises aiov.InputError (a ValueError and a RuntimeError) naming the input, what
was expected and what was given; afterwards the request and the queue still work."""

import numpy as np
import pytest

import aiov as ov
import aiov.opset13 as ops

X = np.ones((2, 3), np.float32)


def _model():
    a = ops.parameter([2, 3], np.float32, name="a")
    b = ops.parameter([2, 3], np.float32, name="b")
    model = ov.Model(ops.add(a, b), [a, b])
    model.outputs[0].tensor.set_names({"sum"})
    return model


@pytest.fixture(scope="module")
def compiled():
    return ov.compile_model(_model())


BAD_INPUTS = [
    pytest.param({"zz": X, "b": X}, ["zz", "a, b"], id="unknown-name"),
    pytest.param({5: X, "b": X}, ["index 5", "2 input"], id="index-out-of-range"),
    pytest.param({"a": np.ones(6, np.float32), "b": X}, ["'a'", "rank 2", "[2,3]", "[6]"], id="wrong-rank"),
    pytest.param({"a": np.ones((3, 2), np.float32), "b": X}, ["'a'", "[2,3]", "[3,2]"], id="wrong-shape"),
    pytest.param({"a": np.full((2, 3), "x"), "b": X}, ["'a'", "f32", "<U1"], id="string-dtype"),
    pytest.param({"a": X}, ["missing", "b"], id="missing-input"),
    pytest.param([X, X, X], ["at most 2", "got 3"], id="too-many-inputs"),
    pytest.param(X, ["single value", "2 inputs"], id="single-array-for-two-inputs"),
    pytest.param("text", ["str"], id="not-an-input-container"),
]


def _refuses(verb, inputs, fragments):
    """``verb(inputs)`` raises an InputError (a ValueError and a RuntimeError too) naming every fragment."""
    with pytest.raises(ov.InputError) as info:
        verb(inputs)
    assert isinstance(info.value, ValueError) and isinstance(info.value, RuntimeError)
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} not in {str(info.value)!r}"


@pytest.mark.parametrize("inputs,fragments", BAD_INPUTS)
def test_bad_input_to_infer_then_request_still_works(compiled, inputs, fragments):
    request = compiled.create_infer_request()
    _refuses(request.infer, inputs, fragments)
    np.testing.assert_array_equal(request.infer({"a": X, "b": 2 * X})["sum"], 3 * X)


@pytest.mark.parametrize("inputs,fragments", BAD_INPUTS)
def test_bad_input_to_compiled_model_call(inputs, fragments):
    compiled = ov.compile_model(_model())  # fresh: no earlier call left inputs behind
    _refuses(compiled, inputs, fragments)
    np.testing.assert_array_equal(compiled([X, X])[0], 2 * X)


@pytest.mark.parametrize("inputs,fragments", BAD_INPUTS)
def test_bad_input_to_start_async_then_request_still_works(compiled, inputs, fragments):
    request = compiled.create_infer_request()
    _refuses(request.start_async, inputs, fragments)
    request.wait()  # nothing was started: returns at once, raises nothing
    request.start_async([X, X])
    request.wait()
    np.testing.assert_array_equal(request.get_output_tensor().data, 2 * X)


@pytest.mark.parametrize("inputs,fragments", BAD_INPUTS)
def test_bad_input_to_queue_does_not_leak_jobs(compiled, inputs, fragments):
    queue = ov.AsyncInferQueue(compiled, 2)
    for _ in range(3):  # more bad calls than jobs: a leaked slot would make this hang
        _refuses(queue.start_async, inputs, fragments)
    queue.wait_all()
    assert queue.is_ready()
    seen = []
    queue.set_callback(lambda req, ud: seen.append((ud, req.get_output_tensor().data.copy())))
    for i in range(4):
        queue.start_async({"a": X, "b": i * X}, userdata=i)
    queue.wait_all()
    assert sorted(ud for ud, _ in seen) == [0, 1, 2, 3]
    for ud, out in seen:
        np.testing.assert_array_equal(out, (1 + ud) * X)


def test_tensor_of_non_contiguous_array_cannot_share_memory():
    arr = np.ones((4, 4), np.float32)[:, ::2]
    with pytest.raises(ov.InputError, match="C-contiguous") as info:
        ov.Tensor(arr, shared_memory=True)
    assert "(4, 2)" in str(info.value)
    t = ov.Tensor(arr)  # a copy is fine
    assert t.data.flags.c_contiguous and list(t.shape) == [4, 2]


def test_tensor_of_read_only_array_cannot_share_memory():
    arr = np.ones(3, np.float32)
    arr.flags.writeable = False
    with pytest.raises(ov.InputError, match="writeable"):
        ov.Tensor(arr, shared_memory=True)
    np.testing.assert_array_equal(ov.Tensor(arr).data, arr)


def test_non_contiguous_input_is_accepted_by_copy(compiled):
    big = np.ones((2, 6), np.float32)
    res = compiled({"a": big[:, ::2], "b": X}, share_inputs=True)
    np.testing.assert_array_equal(res[0], 2 * X)


def test_wrong_tensor_shape_via_set_tensor(compiled):
    request = compiled.create_infer_request()
    with pytest.raises(ov.InputError, match=r"'a'.*\[2,3\].*\[3,3\]"):
        request.set_tensor("a", ov.Tensor(np.ones((3, 3), np.float32)))
    request.set_tensor("b", ov.Tensor(X))
    request.set_tensor("a", ov.Tensor(X))
    np.testing.assert_array_equal(request.infer()[0], 2 * X)


def test_input_error_is_caught_by_openvino_style_handlers(compiled):
    with pytest.raises(RuntimeError):
        compiled({"zz": X})
    with pytest.raises(ValueError):
        compiled({"zz": X})
