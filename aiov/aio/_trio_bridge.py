"""The bridge for trio: a system task loops on ``trio.lowlevel.wait_readable(port.fd)`` and
drains.

A job's completion reaches its future like this: the worker pushes the job's token to the
port (eventfd write); trio's I/O manager wakes the bridge's system task, which calls
``drain`` on the trio thread; the pending record collects the outcome and calls
``TrioFuture.set_result``, which reschedules the waiting task.

Async callbacks run as system tasks; once the run is ending (its system tasks are being
cancelled) none are started.
"""

from __future__ import annotations

from ._bridge_base import Bridge, discard, report
from ._optional import trio_modules
from ._trio_future import TrioFuture


class TrioBridge(Bridge):
    __slots__ = ("trio_token", "dead", "_trio")

    future = TrioFuture

    def __init__(self):
        trio = trio_modules()[0]
        super().__init__()
        self._trio = trio
        self.trio_token = trio.lowlevel.current_trio_token()
        self.dead = False
        trio.lowlevel.spawn_system_task(self._run, name="aiov.aio bridge")

    async def _run(self):
        wait_readable, fd = self._trio.lowlevel.wait_readable, self.port.fd
        try:
            while True:
                await wait_readable(fd)
                self.drain()
        finally:
            self.dead = True
            try:
                self.drain()
            finally:
                self.reap()

    def is_dead(self) -> bool:
        return self.dead

    def spawn(self, awaitable, done):
        """Runs ``awaitable`` as a system task; ``done(exception or None)`` when it ends."""
        if self.dead:  # the run is ending: its system tasks are being cancelled
            discard(awaitable)
            done(None)
            return

        async def runner():
            try:
                await awaitable
            except BaseException as exc:  # noqa: BLE001 - reported through done()
                done(exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                done(None)

        self._trio.lowlevel.spawn_system_task(runner, name="aiov.aio callback")

    def call_soon_threadsafe(self, fn, *args) -> bool:
        try:
            self.trio_token.run_sync_soon(fn, *args)
            return True
        except self._trio.RunFinishedError:
            return False

    def call_soon(self, fn, *args):
        self.trio_token.run_sync_soon(fn, *args)

    def call_later(self, delay, fn, *args) -> bool:
        """trio thread: ``fn(*args)`` after ``delay`` seconds (a system task, cancelled with
        the run); False if the run is ending."""
        if self.dead:
            return False
        trio = self._trio

        async def later():
            await trio.sleep(delay)
            try:
                fn(*args)
            except Exception as exc:  # noqa: BLE001 - would otherwise crash the trio run
                report("a timer", exc)

        trio.lowlevel.spawn_system_task(later, name="aiov.aio timer")
        return True
