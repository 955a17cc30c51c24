"""Where aiov does better than OpenVINO on purpose: per-job errors raised once, shared
inputs kept alive until read, a thread-safe CompiledModel.__call__, inputs never modified."""

import gc
import threading
import weakref

import numpy as np
import pytest

import aiov as ov

from aio_helpers import run_in_threads
from model_builders import add_model, heavy_model, heavy_reference

GOOD = np.arange(6, dtype=np.float32)
BAD = np.ones(5, np.float32)


def test_failed_inference_raises_once_at_wait(failing):
    request = failing.create_infer_request()
    request.start_async(BAD)
    with pytest.raises(RuntimeError, match="reshape"):
        request.wait()
    request.wait()  # the error was delivered once
    assert request.wait_for(0) is True
    np.testing.assert_array_equal(request.infer(GOOD)[0], GOOD.reshape(2, 3))


def test_failed_sync_infer_raises_and_request_recovers(failing):
    request = failing.create_infer_request()
    with pytest.raises(RuntimeError, match=r"\[5\]"):
        request.infer(BAD)
    np.testing.assert_array_equal(request.infer(GOOD)[0], GOOD.reshape(2, 3))


def test_failed_job_raises_job_error_once_and_later_jobs_succeed(failing):
    queue = ov.AsyncInferQueue(failing, 2)
    done = {}
    queue.set_callback(lambda req, ud: done.__setitem__(ud, req.get_output_tensor().data.copy()))
    for i in range(6):
        queue.start_async(BAD if i == 2 else GOOD + i, userdata=i)
    with pytest.raises(ov.JobError) as info:
        queue.wait_all()
    assert isinstance(info.value, RuntimeError)
    assert len(info.value.errors) == 1
    job_id, userdata, exc = info.value.errors[0]
    assert userdata == 2 and 0 <= job_id < 2
    assert "reshape" in str(exc) and info.value.__cause__ is exc
    queue.wait_all()  # raised once
    for i in range(6, 12):
        queue.start_async(GOOD + i, userdata=i)
    queue.wait_all()
    # The callback runs for the failed job too (as in OpenVINO); its error is the inference's.
    assert sorted(done) == list(range(12))
    for i in (0, 1, 3, 4, 5, *range(6, 12)):
        np.testing.assert_array_equal(done[i], (GOOD + i).reshape(2, 3))


def test_failing_callback_raises_once_and_queue_keeps_working():
    compiled = ov.compile_model(add_model())
    queue = ov.AsyncInferQueue(compiled, 2)
    ok = []

    def callback(request, userdata):
        if userdata == 3:
            raise ZeroDivisionError("callback for job 3 failed")
        ok.append(userdata)

    queue.set_callback(callback)
    a = np.ones(8, np.float32)
    for i in range(8):
        queue.start_async([a, a], userdata=i)
    with pytest.raises(ov.JobError, match="callback for job 3") as info:
        queue.wait_all()
    assert [(ud, type(e)) for _, ud, e in info.value.errors] == [(3, ZeroDivisionError)]
    assert sorted(ok) == [0, 1, 2, 4, 5, 6, 7]
    queue.wait_all()
    for i in range(8, 12):
        queue.start_async([a, a], userdata=i)
    queue.wait_all()
    assert sorted(ok) == [0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11]


def test_failing_request_callback_raises_at_wait_once():
    request = ov.compile_model(add_model()).create_infer_request()

    def callback(userdata):
        raise KeyError(userdata)

    request.set_callback(callback, "boom")
    a = np.ones(8, np.float32)
    request.start_async([a, a])
    with pytest.raises(KeyError, match="boom"):
        request.wait()
    request.wait()
    request.set_callback(lambda ud: None)
    request.start_async([a, a])
    request.wait()
    np.testing.assert_array_equal(request.get_output_tensor().data, 2 * a)


def test_share_inputs_keeps_callers_array_alive_until_job_finished():
    model, weights = heavy_model(layers=4)
    request = ov.compile_model(model).create_infer_request()
    rng = np.random.default_rng(5)
    x = rng.standard_normal((256, 1024)).astype(np.float32)
    expected = heavy_reference(x, weights)
    data = x.copy()
    alive = weakref.ref(data)
    request.start_async({0: data}, share_inputs=True)
    del data
    gc.collect()
    assert alive() is not None  # pinned by the running job
    # Overwrite freed memory with garbage if the array had been released.
    garbage = [np.full((256, 1024), np.nan, np.float32) for _ in range(4)]
    request.wait()
    np.testing.assert_allclose(request.get_output_tensor().data, expected, rtol=1e-4, atol=1e-4)
    del garbage


def test_share_inputs_in_queue_keeps_array_alive():
    model, weights = heavy_model(layers=2)
    queue = ov.AsyncInferQueue(ov.compile_model(model), 2)
    rng = np.random.default_rng(6)
    xs = [rng.standard_normal((128, 1024)).astype(np.float32) for _ in range(4)]
    out = {}
    queue.set_callback(lambda req, ud: out.__setitem__(ud, req.get_output_tensor().data.copy()))
    for i in range(4):
        arr = xs[i].copy()
        queue.start_async({0: arr}, userdata=i, share_inputs=True)
        del arr
        gc.collect()
        _ = [np.full((128, 1024), np.nan, np.float32) for _ in range(2)]
    queue.wait_all()
    for i in range(4):
        np.testing.assert_allclose(out[i], heavy_reference(xs[i], weights), rtol=1e-4, atol=1e-4)


def test_compiled_model_call_from_8_threads_gives_each_its_own_results():
    compiled = ov.compile_model(add_model(shape=(64,)))
    errors = []
    barrier = threading.Barrier(8)

    def worker(k):
        try:
            barrier.wait()
            for i in range(200):
                a = np.full(64, k * 1000 + i, np.float32)
                b = np.arange(64, dtype=np.float32)
                res = compiled({"input_0": a, "input_1": b})
                if not np.array_equal(res["result_0"], a + b):
                    errors.append((k, i, res["result_0"][:3]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append((k, repr(exc)))

    run_in_threads(worker, range(8))
    assert errors == []


@pytest.mark.parametrize("share_inputs", [False, True])
def test_callers_input_dict_and_list_are_never_modified(share_inputs):
    compiled = ov.compile_model(add_model())
    a = np.arange(8, dtype=np.float64)  # needs conversion to f32
    b = np.ones(8, np.float32)
    inputs = {"input_0": a, "input_1": b}
    snapshot = dict(inputs)
    as_list = [a, b]
    compiled(inputs, share_inputs=share_inputs)
    request = compiled.create_infer_request()
    request.infer(inputs, share_inputs=share_inputs)
    request.infer(as_list, share_inputs=share_inputs)
    request.start_async(as_list, share_inputs=share_inputs)
    request.wait()
    queue = ov.AsyncInferQueue(compiled, 2)
    queue.start_async(inputs, share_inputs=share_inputs)
    queue.wait_all()
    assert inputs == snapshot and list(inputs) == ["input_0", "input_1"]
    assert as_list[0] is a and as_list[1] is b and len(as_list) == 2
    assert a.dtype == np.float64
    np.testing.assert_array_equal(a, np.arange(8))
    np.testing.assert_array_equal(b, np.ones(8))
