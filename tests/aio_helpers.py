"""Helpers of the async tests that are not models (those are in model_builders.py) and not
fixtures (those are in conftest.py)."""

import threading
import time


def thread_count_settles(baseline, timeout=5.0):
    """The thread count, once it is back to ``baseline`` (or after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        n = threading.active_count()
        if n <= baseline or time.monotonic() > deadline:
            return n
        time.sleep(0.01)


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
