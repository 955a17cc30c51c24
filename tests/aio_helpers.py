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
