"""AsyncInferQueue: jobs, start_async with userdata, callbacks, wait_all, idle ids,
indexing, iteration and the userdata list."""

import threading

import numpy as np
import pytest

import aiov as ov

from model_builders import heavy_model, scale_model


@pytest.fixture(scope="module")
def compiled():
    return ov.compile_model(scale_model(4, 3.0))


def test_jobs_zero_picks_at_least_one_request_per_worker(compiled):
    queue = ov.AsyncInferQueue(compiled, 0)
    assert len(queue) >= compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
    assert len(queue) >= 1
    default = ov.AsyncInferQueue(compiled)
    assert len(default) == len(queue)


def test_negative_jobs_is_rejected(compiled):
    with pytest.raises(ov.InputError):
        ov.AsyncInferQueue(compiled, -1)


def test_callback_gets_request_and_userdata_for_every_job(compiled):
    queue = ov.AsyncInferQueue(compiled, 3)
    seen = {}
    threads = set()

    def callback(request, userdata):
        assert isinstance(request, ov.InferRequest)
        seen[userdata] = request.get_output_tensor().data.copy()
        threads.add(threading.current_thread())

    queue.set_callback(callback)
    for i in range(20):
        queue.start_async({0: np.full(4, i, np.float32)}, userdata=("job", i))
    queue.wait_all()
    assert sorted(seen) == [("job", i) for i in range(20)]
    for (_, i), out in seen.items():
        np.testing.assert_array_equal(out, np.full(4, 3.0 * i))
    assert threading.main_thread() not in threads


def test_start_async_accepts_positional_userdata(compiled):
    queue = ov.AsyncInferQueue(compiled, 2)
    got = []
    queue.set_callback(lambda req, ud: got.append(ud))
    queue.start_async(np.ones(4, np.float32), "u")
    queue.wait_all()
    assert got == ["u"]


def test_userdata_list_and_indexing_after_wait_all(compiled):
    queue = ov.AsyncInferQueue(compiled, 2)
    for i in range(2):
        queue.start_async({0: np.full(4, i + 1, np.float32)}, userdata=i + 10)
    queue.wait_all()
    assert sorted(queue.userdata) == [10, 11]
    for job_id in range(2):
        request = queue[job_id]
        ud = queue.userdata[job_id]
        np.testing.assert_array_equal(request.get_output_tensor().data, np.full(4, 3.0 * (ud - 9)))
        assert request.userdata == ud


def test_iteration_and_len(compiled):
    queue = ov.AsyncInferQueue(compiled, 4)
    requests = list(queue)
    assert len(queue) == 4 == len(requests)
    assert all(isinstance(r, ov.InferRequest) for r in requests)
    assert [queue[i] for i in range(4)] == requests
    assert len({id(r) for r in requests}) == 4


def test_is_ready_and_get_idle_request_id():
    model, _ = heavy_model(layers=4)
    queue = ov.AsyncInferQueue(ov.compile_model(model), 1)
    assert queue.is_ready()
    assert queue.get_idle_request_id() == 0
    queue.start_async(np.ones((256, 1024), np.float32))
    assert not queue.is_ready()  # the only job is busy with tens of ms of work
    assert queue.get_idle_request_id() == 0  # waits until it is idle again
    assert queue.is_ready()
    queue.wait_all()


def test_start_async_waits_for_an_idle_job_when_all_are_busy(compiled):
    queue = ov.AsyncInferQueue(compiled, 2)
    results = {}
    queue.set_callback(lambda req, ud: results.__setitem__(ud, float(req.get_output_tensor().data[0])))
    for i in range(50):
        queue.start_async([np.full(4, i, np.float32)], userdata=i)
    queue.wait_all()
    assert results == {i: 3.0 * i for i in range(50)}


def test_wait_all_without_jobs_returns(compiled):
    queue = ov.AsyncInferQueue(compiled, 2)
    queue.wait_all()
    queue.wait_all()


def test_share_inputs_in_queue(compiled):
    queue = ov.AsyncInferQueue(compiled, 1)
    data = np.arange(4, dtype=np.float32)
    queue.start_async({0: data}, share_inputs=True)
    queue.wait_all()
    np.testing.assert_array_equal(queue[0].get_output_tensor().data, 3 * data)


def test_requests_are_handed_out_least_recently_freed_first(compiled):
    # OpenVINO's order: `jobs` calls in a row use `jobs` different requests even when each job
    # has finished before the next call, so reading every request afterwards sees every job.
    queue = ov.AsyncInferQueue(compiled, 4)
    for round_ in range(3):
        for i in range(4):
            queue.start_async(np.full(4, 10 * round_ + i, np.float32), userdata=i)
            queue.wait_all()  # the job is done and its request idle again before the next call
        got = [float(queue[i].get_input_tensor(0).data[0]) for i in range(4)]
        assert got == [10.0 * round_ + i for i in range(4)]
