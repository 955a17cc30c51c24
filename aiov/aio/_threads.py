"""Running blocking work off the loop, and sleeping, on whichever backend is running."""
from __future__ import annotations

import functools


async def run_sync(fn, *args, **kwargs):
    """Runs ``fn(*args, **kwargs)`` in a worker thread; the loop keeps running."""
    import anyio.to_thread
    if kwargs:
        fn = functools.partial(fn, **kwargs)
    return await anyio.to_thread.run_sync(fn, *args, abandon_on_cancel=False)


async def sleep(seconds: float):
    import anyio
    await anyio.sleep(seconds)
