"""Automatic batching under the async fronts, on asyncio, uvloop and trio: concurrent
``await compiled(x)`` callers and ``aio.AsyncInferQueue`` jobs are joined and each gets its own
results; thousands of cancellations, timeouts, bad inputs and failing jobs never wedge it and
every request comes back."""

import random

import anyio
import numpy as np
import pytest

import aiov as ov
from aiov import InputError, aio

from aio_helpers import BusyWorkers, pool_idle, queue_idle, settled
from model_builders import lookup_model, mlp

pytestmark = pytest.mark.anyio

STATS = "AIOV_BATCH_STATS"
TABLE = np.arange(40, dtype=np.float32).reshape(10, 4)


@pytest.fixture(scope="module")
def small_mlp():
    return ov.Core().read_model(mlp((16, 32, 8)).SerializeToString())


def _joined(compiled) -> int:
    return sum(size * count for size, count in compiled.get_property(STATS)["sizes"].items() if size > 1)


async def test_concurrent_callers_are_joined_and_get_their_own_rows(small_mlp):
    plain = ov.compile_model(small_mlp, "CPU")
    compiled = await aio.Core().compile_model(small_mlp, "BATCH:CPU(8)")
    rng = np.random.default_rng(0)
    feeds = [rng.standard_normal((1, 16)).astype(np.float32) for _ in range(48)]
    results = [None] * len(feeds)

    async def call(i):
        results[i] = (await compiled(feeds[i]))[0]

    busy = BusyWorkers()
    async with anyio.create_task_group() as tg:
        for i in range(len(feeds)):
            tg.start_soon(call, i)
        await anyio.sleep(0.01)  # every caller has started its job
        busy.wait()
    for feed, got in zip(feeds, results):
        np.testing.assert_allclose(got, plain(feed)[0], rtol=1e-5, atol=1e-5)
    assert _joined(compiled.sync) > 0
    assert compiled.sync.get_property(STATS)["inferences"] == 48


async def test_queue_jobs_are_joined(small_mlp):
    plain = ov.compile_model(small_mlp, "CPU")
    compiled = ov.compile_model(small_mlp, "BATCH:CPU(8)")
    queue = aio.AsyncInferQueue(compiled, jobs=24)
    feeds = [np.full((1, 16), i / 10, np.float32) for i in range(24)]
    busy = BusyWorkers()
    jobs = [await queue.start_async(feed, i) for i, feed in enumerate(feeds)]
    busy.wait()
    for feed, job in zip(feeds, jobs):
        np.testing.assert_allclose((await job)[0], plain(feed)[0], rtol=1e-5, atol=1e-5)
    await queue.wait_all()
    assert _joined(compiled) > 0


async def test_an_idle_engine_never_holds_a_lone_caller(small_mlp):
    compiled = aio.CompiledModel(ov.compile_model(small_mlp, "BATCH:CPU(16)"))
    for _ in range(30):
        await compiled(np.ones((1, 16), np.float32))
    assert compiled.sync.get_property(STATS)["sizes"] == {1: 30}


async def test_thousands_of_cancellations_timeouts_and_failures_never_wedge_it():
    sync = ov.compile_model(lookup_model(), "BATCH:CPU(8)", {"AUTO_BATCH_TIMEOUT": 2})
    compiled = aio.CompiledModel(sync)
    queue = aio.AsyncInferQueue(compiled, jobs=8)
    rng = random.Random(4321)
    tally = {"ok": 0, "cancelled": 0, "bad input": 0, "failed": 0}

    async def one(k, mode, delay):
        index = np.array([[k % 10, (k * 7) % 10]], np.int64)
        if mode == "bad input":
            index = np.zeros((1, 2, 1), np.int64)  # wrong rank: refused before it joins
        elif mode == "failed":
            index = np.array([[k % 10, 10 + k % 5]], np.int64)  # outside the table: fails running
        with anyio.move_on_after(delay) as scope:
            try:
                if k % 2:
                    out = await compiled(index)
                else:
                    out = await (await queue.start_async(index, k))
            except InputError as exc:
                tally["bad input" if mode == "bad input" else "failed"] += 1
                assert ("rank" in str(exc)) if mode == "bad input" else ("out of range" in str(exc))
                return
        if scope.cancelled_caught:
            tally["cancelled"] += 1
            return
        assert mode == "ok", mode
        tally["ok"] += 1
        np.testing.assert_array_equal(out[0], TABLE[index])

    total, wave = 3000, 150
    for start in range(0, total, wave):
        async with anyio.create_task_group() as tg:
            for k in range(start, start + wave):
                mode = rng.choice(("ok", "ok", "ok", "bad input", "failed"))
                delay = rng.choice((0, 1e-5, 1e-4, 1e-3, 10.0, 10.0))
                tg.start_soon(one, k, mode, delay)
    assert sum(tally.values()) == total
    assert min(tally.values()) > 50, tally
    # One failing queue job nobody awaits: on a busy machine every failing job whose awaiter
    # was cancelled may have been cancelled before it ran, leaving no failure to report.
    await queue.start_async(np.array([[0, 10]], np.int64), "never awaited")

    # Every native job ends; then the queue and the pool are idle and later jobs succeed.
    with pytest.raises(ov.JobError):  # the failed queue jobs, reported once
        await queue.wait_all()
    assert await settled(lambda: pool_idle(compiled) and queue_idle(queue) and not aio.current_bridge().pending)
    assert not aio.current_bridge().pending
    stats = sync.get_property(STATS)
    # Whether a failing job shares a batch with others (and is retried job by job) depends on the
    # timing here; tests/api/test_batching.py asserts the retry where batches are formed on purpose.
    assert stats["inferences"] > 0
    outs = []

    async def good(k):
        index = np.array([[k % 10, 9 - k % 10]], np.int64)
        outs.append(((await compiled(index))[0], index))

    async with anyio.create_task_group() as tg:
        for k in range(100):
            tg.start_soon(good, k)
    assert len(outs) == 100
    for out, index in outs:
        np.testing.assert_array_equal(out, TABLE[index])
