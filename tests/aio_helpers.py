"""Helpers of the async and threaded tests that are not models (those are in model_builders.py)
and not fixtures (those are in conftest.py)."""

import threading
import time


def aiov_threads():
    """The Python threads aiov made that are alive (every one is named ``aiov...``). Others are
    not counted: the test harness's own come and go (anyio runs trio tests in guest mode, whose
    I/O thread idles in trio's thread cache for seconds)."""
    return [t.name for t in threading.enumerate() if t.name.startswith("aiov")]


def aiov_threads_settle(baseline, timeout=5.0):
    """aiov's live threads, once there are no more than ``baseline`` (or after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        names = aiov_threads()
        if len(names) <= baseline or time.monotonic() > deadline:
            return names


def run_in_threads(target, args):
    """``target(arg)`` for every ``arg``, each in a thread of its own, all started before any is
    waited for; returns when every one has ended."""
    threads = [threading.Thread(target=target, args=(arg,)) for arg in args]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


class Heartbeat:
    """Counts how often a task that only yields to the loop gets to run."""

    def __init__(self):
        self.ticks = 0
        self.stop = False

    async def run(self):
        import anyio

        while not self.stop:
            self.ticks += 1
            await anyio.sleep(0)


def pool_idle(compiled):
    """An aio.CompiledModel with nobody waiting and every request back in its pool."""
    pool = compiled._pool
    return pool.waiting == 0 and len(pool) == pool.live and all(s.fut is None for s in list(pool.slots))


def queue_idle(queue):
    """An aio.AsyncInferQueue with no job running and every slot free."""
    return queue.busy == 0 and queue.idle == len(queue) and all(s.job is None for s in queue._slots)


async def settled(predicate, timeout=2.0):
    """True once ``predicate()`` holds, polled while the loop runs; its last value after ``timeout``."""
    import anyio

    with anyio.move_on_after(timeout):
        while not predicate():
            await anyio.sleep(0.005)
    return predicate()


async def concurrent_calls(compiled, inputs, count):
    """The first output of each of ``count`` ``await compiled(inputs)`` made at once."""
    import anyio

    outs = []

    async def one():
        outs.append((await compiled(inputs))[0])

    async with anyio.create_task_group() as tg:
        for _ in range(count):
            tg.start_soon(one)
    return outs


class BusyWorkers:
    """Keeps every engine worker busy for a while (one long matmul-chain job per worker), so
    that jobs started meanwhile wait together: a batching model then joins them. ``wait()``
    ends it."""

    _compiled = None

    def __init__(self):
        import numpy as np

        import aiov as ov

        from model_builders import heavy_model

        if BusyWorkers._compiled is None:
            BusyWorkers._compiled = ov.compile_model(heavy_model(layers=4, size=1024)[0], "CPU")
        x = np.ones((1024, 1024), np.float32)
        self.requests = [BusyWorkers._compiled.create_infer_request() for _ in range(ov._core.pool_size())]
        for request in self.requests:
            request.start_async(x)

    def wait(self):
        for request in self.requests:
            request.wait()
