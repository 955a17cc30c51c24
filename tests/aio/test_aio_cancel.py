"""Cancellation and timeouts on every backend: a cancelled awaiter aborts or abandons its job,
slots and queue capacity come back only when the native job has ended, nothing leaks."""

import random

import anyio
import numpy as np
import pytest
import sniffio

import aiov as ov
from aiov import aio

from aio_helpers import aiov_threads, aiov_threads_settle, concurrent_calls, pool_idle, queue_idle
from model_builders import medium_model, medium_reference

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def medium():
    model, weights = medium_model()
    return ov.compile_model(model, "CPU"), weights


async def test_cancelled_awaiter_aborts_a_running_job(medium):
    sync, _ = medium
    compiled = aio.CompiledModel(sync)
    big = np.ones((2048, 256), np.float32)
    with anyio.move_on_after(0.0005) as scope:
        await compiled(big)
    if scope.cancelled_caught:
        # The slot is not reusable until the native job has ended...
        slot = list(compiled._slots)[0]
        assert slot.fut is not None or slot in compiled._pool
    # ...and it comes back once it has.
    for _ in range(200):
        if pool_idle(compiled):
            break
        await anyio.sleep(0.005)
    assert pool_idle(compiled)
    assert (await compiled(np.ones((1, 256), np.float32)))[0].shape == (1, 256)


async def test_fail_after_raises_timeout_and_the_model_stays_usable(medium):
    sync, weights = medium
    compiled = aio.CompiledModel(sync)
    big = np.ones((4096, 256), np.float32)
    with pytest.raises(TimeoutError):
        with anyio.fail_after(0.0001):
            await compiled(big)
    x = np.full((2, 256), 0.5, np.float32)
    np.testing.assert_allclose((await compiled(x))[0], medium_reference(weights, x), rtol=1e-4, atol=1e-4)


async def test_cancelled_request_job_raises_cancelled_error(medium):
    sync, _ = medium
    request = aio.CompiledModel(sync).create_infer_request()
    job = request.start_async(np.ones((4096, 256), np.float32))
    job.cancel()
    try:
        await job
    except ov.CancelledError:
        assert job.cancelled()
    else:  # it finished before the cancel reached it
        assert job.done()
    assert not request.busy
    await request.infer(np.ones((1, 256), np.float32))


async def test_cancelled_queue_submitter_gives_its_slot_back(medium):
    sync, _ = medium
    queue = aio.AsyncInferQueue(sync, jobs=1)
    big = np.ones((1024, 256), np.float32)
    await queue.start_async(big, 0)
    with anyio.move_on_after(0):  # suspended waiting for the busy slot, then cancelled
        await queue.start_async(big, 1)
    await queue.wait_all()
    assert queue_idle(queue)
    await queue.start_async(big, 2)
    await queue.wait_all()


async def test_ten_thousand_mixed_cancellations_and_timeouts(medium):
    sync, weights = medium
    baseline = aiov_threads()
    compiled = aio.CompiledModel(sync)
    queue = aio.AsyncInferQueue(compiled, jobs=4)
    callbacks = []
    queue.set_callback(lambda request, userdata: callbacks.append(userdata))
    on_asyncio = sniffio.current_async_library() == "asyncio"
    rng = random.Random(1234)
    x = np.full((1, 256), 0.25, np.float32)
    expected = medium_reference(weights, x)
    stats = {"cancelled": 0, "finished": 0}

    async def through_compiled(delay):
        with anyio.move_on_after(delay) as scope:
            out = await compiled(x)
        if scope.cancelled_caught:
            stats["cancelled"] += 1
        else:
            stats["finished"] += 1
            np.testing.assert_allclose(out[0], expected, rtol=1e-4, atol=1e-4)

    async def through_queue(delay):
        with anyio.move_on_after(delay) as scope:
            job = await queue.start_async(x, "q")
            out = await job
        if scope.cancelled_caught:
            stats["cancelled"] += 1
        else:
            stats["finished"] += 1
            np.testing.assert_allclose(out[0], expected, rtol=1e-4, atol=1e-4)

    async def cancelled_by_scope(task_status=anyio.TASK_STATUS_IGNORED):
        with anyio.CancelScope() as scope:
            task_status.started(scope)
            await compiled(x)
            stats["finished"] += 1
            return
        stats["cancelled"] += 1

    async def asyncio_timeout(delay):
        import asyncio

        try:
            await asyncio.wait_for(compiled(x), delay)
            stats["finished"] += 1
        except asyncio.TimeoutError:
            stats["cancelled"] += 1

    total = 10_000
    wave = 250
    for start in range(0, total, wave):
        async with anyio.create_task_group() as tg:
            for k in range(start, start + wave):
                mode = k % 5
                delay = rng.choice((0, 0, 1e-5, 1e-4, 1e-3))
                if mode == 0:
                    tg.start_soon(through_compiled, delay)
                elif mode == 1:
                    tg.start_soon(through_queue, delay)
                elif mode == 2:
                    scope = await tg.start(cancelled_by_scope)
                    if rng.random() < 0.8:
                        scope.cancel()
                elif mode == 3 and on_asyncio:
                    tg.start_soon(asyncio_timeout, delay)
                else:
                    tg.start_soon(through_compiled, delay * 3)
    assert stats["cancelled"] + stats["finished"] == total
    assert stats["cancelled"] > 1000

    # Every native job ends; then the queue and the pool are fully idle.
    await queue.wait_all()
    for _ in range(400):
        if pool_idle(compiled) and queue_idle(queue) and not aio.current_bridge().pending:
            break
        await anyio.sleep(0.005)
    assert queue_idle(queue)
    assert pool_idle(compiled)
    assert not aio.current_bridge().pending
    assert len(compiled._pool) <= 2 * wave  # grown only for what ran at once

    # Every later job succeeds.
    callbacks.clear()
    for i in range(50):
        await queue.start_async(x, i)
    await queue.wait_all()
    assert sorted(callbacks) == list(range(50))
    outs = await concurrent_calls(compiled, x, 100)
    assert len(outs) == 100
    for out in outs:
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    assert len(aiov_threads_settle(len(baseline))) <= len(baseline), aiov_threads()
