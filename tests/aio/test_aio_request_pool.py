"""The bounded request pool of ``await compiled(x)``: a cap (callers beyond it suspend without
blocking the loop), cancellation of suspended callers, shrinking when idle, and loops in
several threads sharing one capped pool."""

import random
import threading

import anyio
import numpy as np
import pytest

import aiov as ov
from aiov import _core, aio

from aio_helpers import Heartbeat, concurrent_calls, pool_idle, settled
from model_builders import medium_reference

X = np.arange(8, dtype=np.float32)
TIMEOUT = 60


def test_default_cap_is_a_small_multiple_of_the_workers(tiny):
    compiled = aio.CompiledModel(tiny)
    assert compiled.max_requests == ov.AsyncInferQueue(tiny).__len__()
    assert _core.pool_size() <= compiled.max_requests <= 64 * _core.pool_size()
    assert aio.CompiledModel(tiny, max_requests=3).max_requests == 3


@pytest.mark.parametrize("bad", [0, -1, 2.5, "4", True])
def test_bad_limits_are_refused(tiny, bad):
    with pytest.raises(ov.InputError, match="max_requests"):
        aio.CompiledModel(tiny, max_requests=bad)


def test_bad_idle_limit_is_refused(tiny):
    with pytest.raises(ov.InputError, match="idle_requests"):
        aio.CompiledModel(tiny, idle_requests=-1)


anyio_test = pytest.mark.anyio


@anyio_test
async def test_two_thousand_concurrent_awaits_stay_within_the_cap(medium):
    sync, weights = medium
    compiled = aio.CompiledModel(sync, max_requests=4, idle_requests=1)
    compiled._pool.shrink_after = 0.05
    x = np.full((1, 256), 0.5, np.float32)
    expected = medium_reference(weights, x)
    peak = {"live": 0, "waiting": 0}
    beat = Heartbeat()
    outs = []

    async def one():
        pool = compiled._pool
        peak["waiting"] = max(peak["waiting"], pool.waiting)
        outs.append((await compiled(x))[0])
        peak["live"] = max(peak["live"], pool.live)

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(beat.run)
            async with anyio.create_task_group() as calls:
                for _ in range(2000):
                    calls.start_soon(one)
            beat.stop = True
    assert len(outs) == 2000
    for out in outs[::97]:
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    assert peak["live"] <= 4 and peak["waiting"] > 100
    assert beat.ticks > 0  # suspended callers never blocked the loop
    # Shrunk once idle for shrink_after.
    assert await settled(lambda: pool_idle(compiled) and compiled._pool.live == 1)


@anyio_test
async def test_cancelled_waiters_leave_the_line_and_lose_no_request(medium):
    sync, weights = medium
    compiled = aio.CompiledModel(sync, max_requests=2, idle_requests=2)
    x = np.full((64, 256), 0.25, np.float32)
    expected = medium_reference(weights, x)
    rng = random.Random(42)
    counts = {"ok": 0, "cancelled": 0}

    async def one(delay):
        with anyio.move_on_after(delay) as scope:
            out = await compiled(x)
            np.testing.assert_allclose(out[0], expected, rtol=1e-4, atol=1e-4)
            counts["ok"] += 1
        if scope.cancelled_caught:
            counts["cancelled"] += 1

    with anyio.fail_after(TIMEOUT * 2):
        for _ in range(20):
            async with anyio.create_task_group() as tg:
                for _ in range(30):
                    tg.start_soon(one, rng.choice((0, 1e-4, 1e-3, 5e-3, 10)))
            assert compiled._pool.live <= 2
    assert counts["ok"] + counts["cancelled"] == 600 and counts["cancelled"] > 0 and counts["ok"] > 0
    assert await settled(lambda: pool_idle(compiled))
    # Both requests are still there: a request handed to a waiter that was being cancelled
    # went to the next caller or back to the pool.
    assert compiled._pool.live == 2
    assert len(await concurrent_calls(compiled, x, 10)) == 10


@anyio_test
async def test_close_wakes_suspended_callers_with_cancelled_error(medium):
    sync, _ = medium
    compiled = aio.CompiledModel(sync, max_requests=1)
    big = np.ones((1024, 256), np.float32)
    outcomes = []

    async def one():
        try:
            await compiled(big)
            outcomes.append("ok")
        except ov.CancelledError:
            outcomes.append("cancelled")

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(one)
            while compiled._pool.waiting == 0:
                await anyio.sleep(0)
            waiting = compiled._pool.waiting
            compiled.close()
        await compiled.aclose()
    assert len(outcomes) == 6 and outcomes.count("cancelled") >= waiting >= 1
    assert compiled._pool.waiting == 0


@anyio_test
async def test_share_outputs_results_keep_their_request_and_the_cap_holds(tiny):
    compiled = aio.CompiledModel(tiny, max_requests=2)
    with anyio.fail_after(TIMEOUT):
        kept = [await compiled([X, np.full(8, i, np.float32)], share_outputs=True) for i in range(6)]
    for i, out in enumerate(kept):  # each aliases its own request, never reused
        np.testing.assert_array_equal(out[0], X + i)
    assert compiled._pool.live <= 2


def test_loops_in_threads_share_one_capped_pool(medium):
    sync, weights = medium
    compiled = aio.CompiledModel(sync, max_requests=2, idle_requests=1)
    x = np.full((8, 256), 0.75, np.float32)
    expected = medium_reference(weights, x)
    errors, peaks = [], []

    async def work():
        outs = []
        peak = 0

        async def one():
            nonlocal peak
            outs.append((await compiled(x))[0])
            peak = max(peak, compiled._pool.live)

        async with anyio.create_task_group() as tg:
            for _ in range(200):
                tg.start_soon(one)
        for out in outs:
            np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
        assert len(outs) == 200
        peaks.append(peak)

    def run(backend, options):
        try:
            anyio.run(work, backend=backend, backend_options=options)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    runners = [("asyncio", {}), ("trio", {}), ("asyncio", {})]
    try:
        import uvloop  # noqa: F401

        runners.append(("asyncio", {"use_uvloop": True}))
    except ImportError:
        pass
    for _ in range(3):
        threads = [threading.Thread(target=run, args=r, daemon=True) for r in runners]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
        assert not any(t.is_alive() for t in threads), "hung: a request handed across loops was lost"
        assert not errors, errors
    assert max(peaks) <= 2
    assert compiled._pool.live <= 2 and len(compiled._pool) == compiled._pool.live


@anyio_test
async def test_pool_shrinks_only_after_being_idle_for_a_while(tiny):
    compiled = aio.CompiledModel(tiny, max_requests=8, idle_requests=2)
    compiled._pool.shrink_after = 0.2
    with anyio.fail_after(TIMEOUT):
        for _ in range(3):
            # Every burst ends with nothing in flight; the next one starts well within
            # shrink_after, so its requests are reused, not freed and made again.
            async with anyio.create_task_group() as tg:
                for i in range(8):
                    tg.start_soon(compiled, [X, np.full(8, i, np.float32)])
            assert compiled._pool.live == 8
            await anyio.sleep(0.01)
        made = set(map(id, compiled._pool.slots))
        assert len(made) == 8
        await anyio.sleep(0.3)
        assert await settled(lambda: compiled._pool.live == 2 and len(compiled._pool) == 2)
        # Still fully usable, growing again on demand.
        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(compiled, [X, np.full(8, i, np.float32)])
        assert compiled._pool.live == 8


@anyio_test
async def test_bad_inputs_of_waiting_callers_raise_and_pass_the_request_on(medium):
    sync, weights = medium
    compiled = aio.CompiledModel(sync, max_requests=1)
    good = np.full((2, 256), 0.5, np.float32)
    expected = medium_reference(weights, good)
    bad = np.ones((2, 7), np.float32)
    counts = {"ok": 0, "input": 0}

    async def one(i):
        try:
            out = await compiled(bad if i % 2 else good)
        except ov.InputError:
            counts["input"] += 1
        else:
            np.testing.assert_allclose(out[0], expected, rtol=1e-4, atol=1e-4)
            counts["ok"] += 1

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(compiled, np.ones((512, 256), np.float32))  # holds the only request
            for i in range(3000):
                tg.start_soon(one, i)
    assert counts == {"ok": 1500, "input": 1500}
    assert await settled(lambda: pool_idle(compiled))
    assert compiled._pool.live == 1


def test_a_loop_closed_with_callers_in_line_loses_no_request(medium):
    """Callers still waiting for a request when their loop is closed (tasks never cancelled)
    are skipped: the requests go to the next loop's callers."""
    import asyncio
    import gc
    import warnings

    sync, weights = medium
    compiled = aio.CompiledModel(sync, max_requests=2)
    big = np.ones((512, 256), np.float32)
    x = np.full((2, 256), 0.5, np.float32)
    expected = medium_reference(weights, x)
    for _round in range(5):
        loop = asyncio.new_event_loop()

        async def leave_in_line():
            for _ in range(10):
                loop.create_task(compiled(big))
            await asyncio.sleep(0)
            assert compiled._pool.waiting > 0

        loop.run_until_complete(leave_in_line())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loop.close()  # its tasks are neither cancelled nor awaited

        async def later():
            outs = await asyncio.gather(*(compiled(x) for _ in range(6)))
            return [o[0] for o in outs]

        outs = asyncio.run(asyncio.wait_for(later(), TIMEOUT))
        for out in outs:
            np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
        assert compiled._pool.live <= 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gc.collect()
