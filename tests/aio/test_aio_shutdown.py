"""Loops in threads, closing with work in flight, and leaving the event loop with jobs
running: no hang, no crash, no warning."""

import asyncio
import os
import subprocess
import sys
import threading

import anyio
import numpy as np
import pytest

import aiov as ov
from aiov import aio

from aio_helpers import aiov_threads, aiov_threads_settle
from model_builders import medium_model, medium_reference, tiny_model

X = np.arange(8, dtype=np.float32)


@pytest.fixture(scope="module")
def medium():
    model, weights = medium_model()
    return ov.compile_model(model, "CPU"), weights


def test_event_loops_in_threads_share_one_compiled_model(medium):
    sync, weights = medium
    compiled = aio.CompiledModel(sync)
    queue_model = aio.CompiledModel(sync)
    rng = np.random.default_rng(7)
    inputs = [rng.standard_normal((2, 256)).astype(np.float32) for _ in range(8)]
    expected = [medium_reference(weights, x) for x in inputs]
    errors, loop_threads = [], []

    async def work(tag):
        loop_threads.append(threading.get_ident())
        outs = []

        async def one(i):
            outs.append((i, (await compiled(inputs[i % 8]))[0]))

        async with anyio.create_task_group() as tg:
            for i in range(300):
                tg.start_soon(one, i)
        queue = aio.AsyncInferQueue(queue_model, jobs=3)
        seen = []
        queue.set_callback(lambda request, i: seen.append((i, request.get_output_tensor().data.copy())))
        for i in range(100):
            await queue.start_async(inputs[i % 8], i)
        await queue.wait_all()
        for i, out in outs + seen:
            np.testing.assert_allclose(out, expected[i % 8], rtol=1e-4, atol=1e-4)
        assert len(outs) == 300 and len(seen) == 100

    def run(backend, options):
        try:
            anyio.run(work, backend, backend=backend, backend_options=options)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    runners = [("asyncio", {}), ("trio", {})]
    try:
        import uvloop  # noqa: F401

        runners.append(("asyncio", {"use_uvloop": True}))
    except ImportError:
        pass
    threads = [threading.Thread(target=run, args=r) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors
    assert len(set(loop_threads)) == len(runners)


def test_queue_survives_a_loop_that_ended_with_jobs_in_flight(medium):
    sync, _ = medium
    queue = aio.AsyncInferQueue(sync, jobs=2)
    compiled = aio.CompiledModel(sync)
    big = np.ones((512, 256), np.float32)

    async def leave_running():
        for i in range(2):
            await queue.start_async(big, i)
        for _ in range(4):
            asyncio.get_running_loop().create_task(compiled(big))
        await asyncio.sleep(0)

    async def later():
        await queue.wait_all()  # the jobs of the dead loop come back
        assert queue.busy == 0 and queue.idle == 2
        for i in range(4):
            await queue.start_async(big, i)
        await queue.wait_all()
        return (await compiled(np.ones((1, 256), np.float32)))[0].shape

    asyncio.run(leave_running())
    assert asyncio.run(asyncio.wait_for(later(), 30)) == (1, 256)


@pytest.mark.anyio
async def test_compiled_close_with_work_in_flight(medium, anyio_backend):
    sync, _ = medium
    compiled = aio.CompiledModel(sync)
    big = np.ones((1024, 256), np.float32)
    outcomes = []

    async def one():
        try:
            outcomes.append(await compiled(big))
        except ov.CancelledError as exc:
            outcomes.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(one)
        await anyio.sleep(0.001)
        compiled.close()
    assert len(outcomes) == 8
    await compiled.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await compiled(big)
    assert all(s.fut is None for s in list(compiled._slots))


_SCRIPT = r"""
import asyncio, sys, warnings
import numpy as np
sys.path.insert(0, {tests!r})
warnings.simplefilter("default")
import aiov as ov
from aiov import aio
from model_builders import medium_model

backend = sys.argv[1]
model, _ = medium_model()
big = np.ones((1024, 256), np.float32)

async def main():
    compiled = await aio.compile_model(model, "CPU")
    queue = aio.AsyncInferQueue(compiled, jobs=3)
    async def cb(request, userdata):
        await asyncio.sleep(0.01) if backend != "trio" else None
    queue.set_callback(cb)
    for i in range(3):
        await queue.start_async(big, i)
    if backend == "trio":
        import trio
        async with trio.open_nursery() as nursery:
            for _ in range(6):
                nursery.start_soon(compiled, big)
            await trio.sleep(0.001)
            nursery.cancel_scope.cancel()
        other = aio.AsyncInferQueue(compiled, jobs=2)
        await other.start_async(big)
        other.close()
        return
    for _ in range(6):
        asyncio.get_running_loop().create_task(compiled(big))
    request = compiled.create_infer_request()
    request.start_async(big)
    other = aio.AsyncInferQueue(compiled, jobs=2)
    await other.start_async(big)
    other.close()
    await asyncio.sleep(0.001)
    # Leave with jobs, a suspended callback and un-awaited handles in flight.

if backend == "trio":
    import trio
    trio.run(main)
elif backend == "uvloop":
    import uvloop
    uvloop.run(main())
else:
    asyncio.run(main())
print("clean exit")
"""


@pytest.mark.parametrize("backend", ["asyncio", "uvloop", "trio"])
def test_leaving_the_loop_with_jobs_running_is_clean(backend):
    if backend == "uvloop":
        pytest.importorskip("uvloop")
    script = _SCRIPT.format(tests=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run(
        [sys.executable, "-X", "dev", "-c", script, backend], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "clean exit" in proc.stdout
    assert "Task was destroyed but it is pending" not in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "never retrieved" not in proc.stderr
    assert "Warning" not in proc.stderr, proc.stderr


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.Runner (a loop factory) is Python 3.11+")
@pytest.mark.parametrize("backend", ["asyncio", "uvloop"])
def test_async_callback_of_a_job_ending_during_loop_shutdown(backend, caplog):
    """A job started by a task while ``asyncio.run`` cancels its tasks ends after the runner
    took its snapshot of tasks: its async callback is cancelled and awaited by the runner's
    shutdown, never left pending on the closed loop."""
    import gc
    import logging
    import warnings

    loop_factory = None
    if backend == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        loop_factory = uvloop.new_event_loop
    sync = ov.compile_model(tiny_model(), "CPU")
    events = []

    async def callback(request, userdata):
        try:
            events.append("started")
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise
        events.append("finished")

    async def lingering(queue):
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            job = await queue.start_async([X, X], "late")  # the runner is shutting down
            events.append(("job", (await job)[0].tolist()))
            raise

    async def main():
        queue = aio.AsyncInferQueue(sync, jobs=1)
        queue.set_callback(callback)
        asyncio.get_running_loop().create_task(lingering(queue))
        await asyncio.sleep(0)
        return queue

    # Tasks an earlier test left on its closed loop are reported when they are collected: let
    # that happen now, so that what is logged below is this runner's own.
    gc.collect()
    caplog.set_level(logging.ERROR, logger="asyncio")
    caplog.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            queue = runner.run(main())
        gc.collect()
    assert events[0] == ("job", (2 * X).tolist())
    assert events[1:] in ([], ["started", "cancelled"])
    assert queue.busy == 0 and queue.idle == 1
    assert "destroyed but it is pending" not in caplog.text
    assert not [w for w in caught if "never awaited" in str(w.message)]


def test_no_threads_left_after_loops_end(medium):
    sync, _ = medium
    baseline = aiov_threads()

    async def work():
        compiled = aio.CompiledModel(sync)
        await compiled(np.ones((1, 256), np.float32))

    for _ in range(3):
        asyncio.run(work())
    assert len(aiov_threads_settle(len(baseline))) <= len(baseline), aiov_threads()
