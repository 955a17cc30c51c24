"""aio.AsyncInferQueue on every backend: suspension while full, callbacks on the loop thread
(sync and async), errors per job, as_completed, close."""

import threading

import anyio
import numpy as np
import pytest

import aiov as ov
from aiov import aio

from aio_helpers import Heartbeat, queue_idle
from model_builders import medium_reference

pytestmark = pytest.mark.anyio

X = np.arange(8, dtype=np.float32)


async def test_queue_results_and_handles(tiny):
    queue = aio.AsyncInferQueue(tiny, jobs=3)
    handles = [await queue.start_async([X, np.full(8, i, np.float32)], i) for i in range(20)]
    await queue.wait_all()
    for i, handle in enumerate(handles):
        assert handle.done() and handle.userdata == i
        np.testing.assert_array_equal((await handle)[0], X + i)
    assert queue_idle(queue)


async def test_start_async_suspends_without_blocking_the_loop(medium):
    sync, weights = medium
    queue = aio.AsyncInferQueue(sync, jobs=2)
    done = []
    queue.set_callback(lambda request, i: done.append((i, request.get_output_tensor().data.copy())))
    beat = Heartbeat()
    batch = np.ones((16, 256), np.float32)
    suspended = 0
    async with anyio.create_task_group() as tg:
        tg.start_soon(beat.run)
        for i in range(40):
            if not queue.is_ready():
                suspended += 1
            await queue.start_async(batch * (i % 3), i)
        ticks = beat.ticks
        await queue.wait_all()
        beat.stop = True
    assert suspended > 0
    # While submission was suspended on a full queue the loop kept running other tasks (a
    # blocking wait would have frozen the heartbeat at zero).
    assert ticks >= suspended
    assert sorted(i for i, _ in done) == list(range(40))
    for i, out in done:
        np.testing.assert_allclose(out, medium_reference(weights, batch * (i % 3)), rtol=1e-4, atol=1e-4)
    assert queue_idle(queue)


async def test_sync_callback_runs_on_the_loop_thread(tiny):
    loop_thread = threading.get_ident()
    queue = aio.AsyncInferQueue(tiny, jobs=4)
    threads, values = [], {}

    def callback(request, userdata):
        threads.append(threading.get_ident())
        values[userdata] = request.get_output_tensor().data.copy()

    queue.set_callback(callback)
    for i in range(50):
        await queue.start_async([X, np.full(8, i, np.float32)], i)
    await queue.wait_all()
    assert set(threads) == {loop_thread}
    assert sorted(values) == list(range(50))
    for i, v in values.items():
        np.testing.assert_array_equal(v, X + i)


async def test_async_callback_runs_on_the_loop_and_holds_its_request(tiny):
    loop_thread = threading.get_ident()
    queue = aio.AsyncInferQueue(tiny, jobs=2)
    seen = {}

    async def callback(request, userdata):
        assert threading.get_ident() == loop_thread
        await anyio.sleep(0.001)
        # The request is not reused before the callback has finished.
        seen[userdata] = request.get_output_tensor().data.copy()

    queue.set_callback(callback)
    for i in range(30):
        await queue.start_async([X, np.full(8, i, np.float32)], i)
    await queue.wait_all()
    assert sorted(seen) == list(range(30))
    for i, v in seen.items():
        np.testing.assert_array_equal(v, X + i)
    assert queue_idle(queue)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_callback_errors_surface_at_wait_all_and_later_jobs_run(tiny, kind):
    queue = aio.AsyncInferQueue(tiny, jobs=2)
    ran = []

    def sync_cb(request, userdata):
        ran.append(userdata)
        if userdata % 5 == 0:
            raise ValueError(f"bad {userdata}")

    async def async_cb(request, userdata):
        await anyio.sleep(0)
        sync_cb(request, userdata)

    queue.set_callback(sync_cb if kind == "sync" else async_cb)
    for i in range(20):
        await queue.start_async([X, X], i)
    with pytest.raises(ov.JobError) as info:
        await queue.wait_all()
    assert sorted(u for _, u, _ in info.value.errors) == [0, 5, 10, 15]
    assert all(isinstance(e, ValueError) for _, _, e in info.value.errors)
    assert sorted(ran) == list(range(20))
    await queue.wait_all()  # once
    ran.clear()
    for i in range(1, 5):
        await queue.start_async([X, X], i)
    await queue.wait_all()
    assert sorted(ran) == [1, 2, 3, 4]


async def test_failed_inference_raises_once_per_job(failing):
    queue = aio.AsyncInferQueue(failing, jobs=2)
    good = np.arange(6, dtype=np.float32)
    bad = np.ones(5, np.float32)
    handles = [await queue.start_async(bad if i % 4 == 0 else good, i) for i in range(12)]
    # Awaiting a failed job raises; that failure is then not raised again by wait_all.
    with pytest.raises(RuntimeError):
        await handles[0]
    with pytest.raises(ov.JobError) as info:
        await queue.wait_all()
    assert sorted(u for _, u, _ in info.value.errors) == [4, 8]
    await queue.wait_all()
    for i, handle in enumerate(handles):
        if i % 4:
            np.testing.assert_array_equal((await handle)[0].ravel(), good)
    for i in range(8):
        await queue.start_async(good, i)
    await queue.wait_all()
    assert queue_idle(queue)


async def test_as_completed_with_a_concurrent_producer(tiny):
    queue = aio.AsyncInferQueue(tiny, jobs=3)
    got = {}

    async def produce():
        for i in range(40):
            await queue.start_async([X, np.full(8, i, np.float32)], i)

    async with anyio.create_task_group() as tg:
        tg.start_soon(produce)
        async for request, userdata in queue.as_completed(count=40):
            got[userdata] = request.get_output_tensor().data.copy()
            await anyio.sleep(0)
    assert sorted(got) == list(range(40))
    for i, v in got.items():
        np.testing.assert_array_equal(v, X + i)
    await queue.wait_all()
    assert queue_idle(queue)


async def test_as_completed_ends_when_closed_and_drained_and_break_returns_requests(tiny):
    queue = aio.AsyncInferQueue(tiny, jobs=4)
    for i in range(4):
        await queue.start_async([X, X], i)
    it = queue.as_completed()
    await queue.wait_all()  # every job finished: the iterator holds them until yielded
    queue.close()
    seen = [u async for _, u in it]
    assert sorted(seen) == [0, 1, 2, 3]
    assert queue_idle(queue)
    queue = aio.AsyncInferQueue(tiny, jobs=4)
    for i in range(4):
        await queue.start_async([X, X], i)
    async for _request, _userdata in queue.as_completed():
        break
    await queue.wait_all()
    assert queue_idle(queue)


async def _completed_while(queue, produce):
    """(userdata, output) of every job ``as_completed`` yields while ``produce`` runs beside it
    and then closes the queue, in the order they came."""
    seen = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(produce)
        async for request, userdata in queue.as_completed():
            seen.append((userdata, request.get_output_tensor().data.copy()))
    return seen


async def test_as_completed_started_before_the_producer_yields_every_job(tiny):
    queue = aio.AsyncInferQueue(tiny, jobs=2)

    async def produce():
        for _ in range(3):
            await anyio.sleep(0)  # the consumer is already waiting on an idle queue
        for i in range(10):
            await queue.start_async([X, np.full(8, i, np.float32)], i)
        await queue.wait_all()
        await queue.aclose()

    seen = await _completed_while(queue, produce)
    for userdata, output in seen:
        np.testing.assert_array_equal(output, X + userdata)
    assert sorted(u for u, _ in seen) == list(range(10))
    assert queue_idle(queue)


async def test_as_completed_outlives_idle_gaps_of_a_30_fps_producer(tiny):
    queue = aio.AsyncInferQueue(tiny, jobs=2)

    async def produce():
        for i in range(30):
            await queue.start_async([X, X], i)
            await anyio.sleep(1 / 30)  # the queue is idle between frames
        await queue.wait_all()
        queue.close()

    seen = await _completed_while(queue, produce)
    assert [u for u, _ in seen] == list(range(30))
    await queue.aclose()
    assert queue_idle(queue)


async def test_close_with_work_in_flight(medium):
    sync, _ = medium
    queue = aio.AsyncInferQueue(sync, jobs=2)
    batch = np.ones((64, 256), np.float32)
    handles = [await queue.start_async(batch, i) for i in range(2)]
    outcome = []

    async def blocked_submit():
        try:
            outcome.append(await queue.start_async(batch, 99))
        except RuntimeError as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(blocked_submit)
        for _ in range(3):
            await anyio.sleep(0)
        queue.close()
    await queue.aclose()
    # The suspended submitter is woken with an error (or got a slot before close()).
    assert len(outcome) == 1
    assert isinstance(outcome[0], aio.InferJob) or "closed" in str(outcome[0])
    assert queue_idle(queue)
    for handle in handles:
        assert handle.done()
    with pytest.raises(RuntimeError, match="closed"):
        await queue.start_async(batch)
    await queue.wait_all()  # jobs cancelled by close() are not reported


async def test_async_with_queue_waits_for_jobs(tiny):
    done = []
    async with aio.AsyncInferQueue(aio.CompiledModel(tiny), jobs=2) as queue:
        queue.set_callback(lambda r, u: done.append(u))
        for i in range(6):
            await queue.start_async([X, X], i)
        await queue.wait_all()
    assert sorted(done) == list(range(6))
    assert queue.closed


async def test_handle_outputs_are_copied_only_if_kept(tiny):
    queue = aio.AsyncInferQueue(tiny, jobs=1)
    await queue.start_async([X, X], 0)  # dropped handle: nothing to copy into
    kept = await queue.start_async([X, 3 * X], 1)
    await queue.wait_all()
    np.testing.assert_array_equal(kept.result()[0], 4 * X)
