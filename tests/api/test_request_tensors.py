"""InferRequest tensors set by the caller: output tensors the results are written into
(set_output_tensor, set_tensor by output name) and OpenVINO's batched set_tensors (one Tensor
per batch item, read afresh at each inference)."""

import threading

import numpy as np
import pytest

import aiov as ov
import aiov.aio
import aiov.opset13 as ops

from model_builders import scale_model

X = np.arange(4, dtype=np.float32)


@pytest.fixture(scope="module")
def compiled():
    return ov.compile_model(scale_model(4, 3.0))


def test_output_tensor_is_filled_by_infer(compiled):
    request = compiled.create_infer_request()
    out = ov.Tensor(np.full(4, -1, np.float32), shared_memory=True)
    request.set_output_tensor(out)
    assert request.get_tensor("y") is out and request.get_output_tensor() is out
    request.infer({"x": X})
    np.testing.assert_array_equal(out.data, X * 3)
    request.infer({"x": X + 1})  # every inference, into the same memory
    np.testing.assert_array_equal(out.data, (X + 1) * 3)


def test_output_tensor_by_name_and_in_a_dict(compiled):
    request = compiled.create_infer_request()
    x, y = ov.Tensor(X.copy()), ov.Tensor(ov.Type.f32, [4])
    request.set_tensors({"x": x, "y": y})
    assert request.get_tensor("y") is y
    request.infer()
    np.testing.assert_array_equal(y.data, X * 3)
    other = ov.Tensor(ov.Type.f32, [4])
    request.set_tensor(compiled.output(0), other)
    request.infer()
    np.testing.assert_array_equal(other.data, X * 3)


def test_output_tensor_is_filled_before_wait_returns_and_before_callbacks(compiled):
    request = compiled.create_infer_request()
    out = ov.Tensor(ov.Type.f32, [4])
    request.set_output_tensors({0: out})
    request.start_async({"x": X})
    request.wait()
    np.testing.assert_array_equal(out.data, X * 3)
    seen, done = [], threading.Event()

    def callback(_):
        seen.append(out.data.copy())
        done.set()

    request.set_callback(callback)
    request.start_async({"x": X + 2})
    request.wait()
    assert done.is_set()
    np.testing.assert_array_equal(seen[0], (X + 2) * 3)


def test_queue_jobs_fill_their_requests_output_tensors(compiled):
    queue = ov.AsyncInferQueue(compiled, 2)
    outs = [ov.Tensor(ov.Type.f32, [4]) for _ in queue]
    for request, out in zip(queue, outs):
        request.set_output_tensor(0, out)
    seen = {}
    queue.set_callback(lambda request, i: seen.__setitem__(i, request.get_output_tensor().data.copy()))
    for i in range(40):  # callbacks on the dispatcher thread while the next jobs start
        queue.start_async({"x": X + i}, userdata=i)
    queue.wait_all()
    for i in range(40):
        np.testing.assert_array_equal(seen[i], (X + i) * 3)


@pytest.mark.anyio
async def test_aio_request_fills_the_output_tensor(compiled):
    request = ov.aio.InferRequest(ov.aio.CompiledModel(compiled))
    out = ov.Tensor(ov.Type.f32, [4])
    request.sync.set_output_tensor(out)
    await request.infer({"x": X})
    np.testing.assert_array_equal(out.data, X * 3)


def test_output_tensor_of_the_wrong_type_or_shape_is_refused(compiled):
    request = compiled.create_infer_request()
    with pytest.raises(ov.InputError, match="output 'y' is f32 \\[4\\], got a Tensor of i32 \\[4\\]"):
        request.set_output_tensor(ov.Tensor(ov.Type.i32, [4]))
    with pytest.raises(ov.InputError, match="got a Tensor of f32 \\[5\\]"):
        request.set_tensor("y", ov.Tensor(ov.Type.f32, [5]))
    with pytest.raises(ov.PortError):
        request.set_output_tensor(1, ov.Tensor(ov.Type.f32, [4]))


def test_dynamic_output_into_shared_memory_that_is_too_small_fails_the_inference():
    x = ops.parameter([-1], np.float32, name="x")
    compiled = ov.compile_model(ov.Model(ops.relu(x), [x]))
    request = compiled.create_infer_request()
    out = ov.Tensor(np.zeros(2, np.float32), shared_memory=True)
    request.set_output_tensor(out)
    request.infer({"x": np.array([-1, 5], np.float32)})
    np.testing.assert_array_equal(out.data, [0, 5])
    with pytest.raises(RuntimeError, match="set_shape failed"):
        request.infer({"x": np.ones(3, np.float32)})


def _batched_model(layout="N...", shape=(4, 2)):
    data = ops.parameter(list(shape), np.float32, name="data")
    data.set_layout(ov.Layout(layout))
    return ov.compile_model(ov.Model(ops.add(data, np.float32(1)), [data]))


def test_batched_tensors_are_read_afresh_at_each_inference():
    compiled = _batched_model()
    request = compiled.create_infer_request()
    buffer = np.zeros((8, 2), np.float32)
    items = [ov.Tensor(buffer[2 * i : 2 * i + 1], shared_memory=True) for i in range(4)]
    request.set_input_tensors(items)
    for step in range(3):
        buffer[:] = np.arange(16, dtype=np.float32).reshape(8, 2) * (step + 1)
        result = request.infer()[0]
        np.testing.assert_array_equal(result, buffer[::2] + 1)
    with pytest.raises(
        RuntimeError, match="shall not be used together with batched set_tensors.*'data' is read from 4"
    ):
        request.get_tensor("data")


def test_batch_along_the_layouts_n_axis():
    compiled = _batched_model("CN", (2, 3))
    request = compiled.create_infer_request()
    columns = [ov.Tensor(np.full((2, 1), i, np.float32)) for i in range(3)]
    request.set_tensors("data", columns)
    np.testing.assert_array_equal(request.infer()[0], [[1, 2, 3], [1, 2, 3]])


def test_setting_the_input_again_ends_the_batch():
    compiled = _batched_model()
    request = compiled.create_infer_request()
    request.set_tensors({"data": [ov.Tensor(np.ones((1, 2), np.float32)) for _ in range(4)]})
    np.testing.assert_array_equal(request.infer()[0], np.full((4, 2), 2))
    request.set_input_tensor(ov.Tensor(np.zeros((4, 2), np.float32)))
    np.testing.assert_array_equal(request.get_tensor("data").data, np.zeros((4, 2)))
    np.testing.assert_array_equal(request.infer()[0], np.ones((4, 2)))


@pytest.mark.parametrize(
    "tensors, message",
    [
        ([ov.Tensor(np.ones((1, 2), np.float32))] * 3, "has a batch of 4, got 3 tensors"),
        ([ov.Tensor(np.ones((2, 2), np.float32))] * 4, "one item on the batch axis, got f32 \\[2, 2\\]"),
        ([ov.Tensor(np.ones((1, 2), np.int32))] * 4, "got i32 \\[1, 2\\]"),
        ([], "a non-empty list of Tensors"),
        ([np.ones((1, 2), np.float32)] * 4, "a non-empty list of Tensors"),
    ],
)
def test_a_batch_that_does_not_fit_is_refused(tensors, message):
    request = _batched_model().create_infer_request()
    with pytest.raises(ov.InputError, match=message):
        request.set_input_tensors(tensors)
