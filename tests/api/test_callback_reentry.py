"""Calls back into a queue or request from its own completion callback: each either works or
raises a clear RuntimeError, never hangs. Every test bounds its waits, so a regression fails
instead of hanging the suite."""

import threading

import anyio
import numpy as np
import pytest

import aiov as ov
from aiov import aio

X = np.arange(8, dtype=np.float32)
BIG = np.ones((512, 256), np.float32)
TIMEOUT = 30


def _bounded(fn, timeout=TIMEOUT):
    """Runs ``fn`` in a thread; fails the test (instead of hanging) if it does not return."""
    result = {}

    def run():
        try:
            result["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "hung: the call did not return"
    if "error" in result:
        raise result["error"]
    return result.get("value")


# -- sync API: callbacks run on aiov's dispatcher thread --


def test_sync_queue_start_async_from_callback_when_full_raises(tiny):
    for _ in range(20):
        queue = ov.AsyncInferQueue(tiny, jobs=1)

        def callback(request, userdata):
            queue.start_async([X, X], "follow-up")  # the only job is this callback's own

        queue.set_callback(callback)

        def run():
            queue.start_async([X, X], 0)
            queue.wait_all()

        with pytest.raises(ov.JobError) as info:
            _bounded(run)
        cause = info.value.errors[0][2]
        assert isinstance(cause, RuntimeError) and "inside a completion callback" in str(cause)
        assert queue.is_ready()


def test_sync_queue_start_async_from_callback_with_an_idle_job_works(tiny):
    queue = ov.AsyncInferQueue(tiny, jobs=2)
    seen = []

    def callback(request, userdata):
        seen.append((userdata, request.get_output_tensor().data.copy()))
        if userdata < 20:
            queue.start_async([X, np.full(8, userdata + 1, np.float32)], userdata + 1)

    queue.set_callback(callback)

    def run():
        queue.start_async([X, X * 0], 0)  # one chain: the other job is always idle
        while len(seen) < 21:
            queue.wait_all()

    _bounded(run)
    assert [u for u, _ in seen] == list(range(21))
    for u, out in seen:
        np.testing.assert_array_equal(out, X + u)


def test_sync_queue_wait_all_from_callback_raises(tiny):
    queue = ov.AsyncInferQueue(tiny, jobs=2)
    queue.set_callback(lambda request, userdata: queue.wait_all())

    def run():
        for i in range(10):
            queue.start_async([X, X], i)
        queue.wait_all()

    with pytest.raises(ov.JobError) as info:
        _bounded(run)
    assert len(info.value.errors) == 10
    assert all("inside a completion callback" in str(e) for _, _, e in info.value.errors)
    _bounded(queue.wait_all)  # reported once; the queue is idle and usable
    assert queue.is_ready()


def test_sync_request_wait_inside_its_own_callback_raises(tiny):
    for _ in range(20):
        request = tiny.create_infer_request()
        inner = []

        def callback(userdata, request=request):
            try:
                request.wait()
            except RuntimeError as exc:
                inner.append(exc)
                raise

        request.set_callback(callback, None)

        def run():
            request.start_async([X, X])
            request.wait()

        with pytest.raises(RuntimeError, match="inside a completion callback"):
            _bounded(run)
        assert len(inner) == 1
        # The request is idle and usable afterwards.
        request.set_callback(lambda userdata: None, None)
        request.start_async([X, X])
        _bounded(request.wait)
        np.testing.assert_array_equal(request.get_output_tensor().data, 2 * X)


# -- aio: callbacks run on the loop --


@pytest.mark.anyio
async def test_async_callback_awaiting_start_async_on_its_own_full_queue_raises(tiny):
    queue = aio.AsyncInferQueue(tiny, jobs=1)

    async def callback(request, userdata):
        if userdata == 0:
            await queue.start_async([X, X], "follow-up")

    queue.set_callback(callback)
    with anyio.fail_after(TIMEOUT):
        for _ in range(20):
            await queue.start_async([X, X], 0)
            with pytest.raises(ov.JobError) as info:
                await queue.wait_all()
            cause = info.value.errors[0][2]
            assert isinstance(cause, RuntimeError) and "would wait forever" in str(cause)
            assert queue.busy == 0 and queue.idle == 1


@pytest.mark.anyio
async def test_async_callbacks_resubmitting_to_their_queue_never_wedge_it(medium):
    """Every job's callback awaits start_async on the same full queue: those that can get a
    job go on; the one that would complete a cycle of waiting callbacks raises."""
    sync, _ = medium
    queue = aio.AsyncInferQueue(sync, jobs=2)
    followed = []

    async def callback(request, userdata):
        if isinstance(userdata, int):
            await queue.start_async(BIG, ("follow-up", userdata))
            followed.append(userdata)

    queue.set_callback(callback)
    with anyio.fail_after(TIMEOUT):
        for i in range(30):
            await queue.start_async(BIG, i)
        try:
            await queue.wait_all()
        except ov.JobError as exc:
            for _, _, error in exc.errors:
                assert isinstance(error, RuntimeError) and "would wait forever" in str(error)
            failed = len(exc.errors)
        else:
            failed = 0
        await queue.wait_all()
    assert len(followed) + failed == 30 and followed
    assert queue.busy == 0 and queue.idle == 2


@pytest.mark.anyio
async def test_async_callback_awaiting_wait_all_raises(tiny):
    queue = aio.AsyncInferQueue(tiny, jobs=2)

    async def callback(request, userdata):
        await queue.wait_all()

    queue.set_callback(callback)
    with anyio.fail_after(TIMEOUT):
        for i in range(10):
            await queue.start_async([X, X], i)
        with pytest.raises(ov.JobError) as info:
            await queue.wait_all()
    assert len(info.value.errors) == 10
    assert all("own callback" in str(e) for _, _, e in info.value.errors)
    assert queue.busy == 0 and queue.idle == 2


@pytest.mark.anyio
async def test_async_callback_awaiting_another_queue_works(tiny):
    first = aio.AsyncInferQueue(tiny, jobs=1)
    second = aio.AsyncInferQueue(tiny, jobs=1)
    results = []

    async def callback(request, userdata):
        job = await second.start_async([X, np.full(8, userdata, np.float32)], userdata)
        results.append((await job)[0])
        await second.wait_all()

    first.set_callback(callback)
    with anyio.fail_after(TIMEOUT):
        for i in range(10):
            await first.start_async([X, X], i)
        await first.wait_all()
    assert len(results) == 10
    for i, out in enumerate(results):
        np.testing.assert_array_equal(out, X + i)
