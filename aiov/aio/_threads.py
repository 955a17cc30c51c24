"""Running blocking work off the loop, and sleeping, on whichever backend is running."""

from __future__ import annotations

import asyncio
import functools
import threading


async def run_sync(fn, *args, **kwargs):
    """Runs ``fn(*args, **kwargs)`` in a worker thread; the loop keeps running. Cancelling the
    caller waits for the thread to finish, then raises.

    On asyncio this is a thread of its own rather than ``anyio.to_thread`` (anyio imports its
    asyncio backend on first use, on the loop thread, which froze the loop for ~80 ms on the
    first ``aio.compile_model``) or the loop's default executor (whose shutdown at the end of
    ``asyncio.run`` keeps the loop turning while the run is being torn down)."""
    if args or kwargs:
        fn = functools.partial(fn, *args, **kwargs)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # trio (it is imported already when its run is going)
        import trio

        return await trio.to_thread.run_sync(fn)
    fut = loop.create_future()

    def work():
        try:
            outcome = (fn(), None)
        except BaseException as exc:  # noqa: BLE001 - raised in the caller
            outcome = (None, exc)
        try:
            loop.call_soon_threadsafe(_settle, fut, outcome)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    threading.Thread(target=work, name="aiov.aio run_sync").start()
    try:
        return await asyncio.shield(fut)
    except BaseException:
        while not fut.done():  # the thread cannot be stopped: wait for it, then raise
            try:
                await asyncio.wait((fut,))
            except asyncio.CancelledError:
                continue
        if not fut.cancelled():
            fut.exception()  # retrieved: the caller raises its own error
        raise


def _settle(fut, outcome):
    if fut.done():
        return
    value, error = outcome
    if error is None:
        fut.set_result(value)
    else:
        fut.set_exception(error)


async def sleep(seconds: float):
    import anyio

    await anyio.sleep(seconds)
