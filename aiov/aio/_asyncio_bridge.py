"""The bridge for asyncio and uvloop: ``loop.add_reader(port.fd, bridge.drain)``.

A job's completion reaches its future like this: the worker pushes the job's token to the
port (eventfd write); the loop's selector sees the fd readable and calls ``drain`` on the
loop thread; ``drain`` pops the pending record, which collects the outcome and calls
``future.set_result`` (a plain ``loop.create_future()`` future).

Async callbacks run as tasks of the loop. When the loop's runner shuts down (asyncio.run,
uvloop.run, anyio), callback tasks started after it cancelled its tasks are cancelled and
awaited in a shutdown step of the bridge, and later completions start none (see
``AsyncioBridge._hook_loop_shutdown``).
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import weakref

from ._bridge_base import Bridge, discard


class AsyncioBridge(Bridge):
    __slots__ = ("loop", "future", "tasks", "closing", "_shutdown_hook")

    def __init__(self, loop):
        super().__init__()
        self.loop = loop
        self.future = loop.create_future
        self.tasks = set()  # callback tasks, strongly held while they run
        self.closing = False  # the loop's runner is shutting down: no new callback tasks
        self._shutdown_hook = None
        loop.add_reader(self.port.fd, self.drain)
        self._hook_loop_shutdown()

    def _hook_loop_shutdown(self):
        """Registers a step in the loop's shutdown.

        ``asyncio.run`` / ``asyncio.Runner.close`` (and uvloop's and anyio's runners) cancel the
        tasks that exist at that moment, then run ``loop.shutdown_asyncgens()``, the default
        executor's shutdown and ``loop.close()``. The loop keeps running (and this bridge keeps
        draining) through all of it, so a job ending then would start its async callback as a
        task that nobody cancels or awaits: destroyed pending at ``loop.close()``. asyncio has
        no public "shutting down" flag, but it closes every async generator it has seen in
        ``shutdown_asyncgens()``; one suspended here is that flag, and its ``finally`` is a
        shutdown step that can await (see ``_loop_closing``)."""
        if getattr(sys.get_asyncgen_hooks().firstiter, "__self__", None) is not self.loop:
            return  # the loop does not track async generators (not asyncio/uvloop-like)
        # No public API tells whether shutdown_asyncgens() already ran; asyncio and uvloop
        # both keep this flag, and a generator registered after it would only be warned about.
        if getattr(self.loop, "_asyncgens_shutdown_called", False):
            self.closing = True  # created during the shutdown itself
            return
        hook = _loop_shutdown_step(weakref.ref(self))
        try:
            hook.asend(None).send(None)  # registers it with the loop, runs to the yield
        except StopIteration:
            pass
        self._shutdown_hook = hook

    async def _loop_closing(self):
        """The loop is shutting down (after its tasks were cancelled): cancel the callback
        tasks started since, and wait for them, as ``asyncio.run`` does for its own tasks.
        Later completions still resolve their jobs; their async callbacks are not started."""
        self.closing = True
        tasks = [t for t in self.tasks if not t.done()]
        if tasks:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)

    def is_dead(self) -> bool:
        return self.loop.is_closed()

    def spawn(self, awaitable, done):
        """Runs ``awaitable`` as a task of this loop; ``done(exception or None)`` when it ends
        (None also when it was cancelled)."""
        if self.closing:
            discard(awaitable)
            done(None)
            return
        coro = awaitable if inspect.iscoroutine(awaitable) else _as_coroutine(awaitable)
        task = self.loop.create_task(coro)
        tasks = self.tasks
        tasks.add(task)

        def on_done(t):
            tasks.discard(t)
            done(None if t.cancelled() else t.exception())

        task.add_done_callback(on_done)

    def call_soon_threadsafe(self, fn, *args) -> bool:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
            return True
        except RuntimeError:  # closed loop
            return False

    def call_soon(self, fn, *args):
        self.loop.call_soon(fn, *args)

    def call_later(self, delay, fn, *args) -> bool:
        """Loop thread: ``fn(*args)`` after ``delay`` seconds; False if the loop is closing."""
        if self.closing or self.loop.is_closed():
            return False
        self.loop.call_later(delay, fn, *args)
        return True


async def _loop_shutdown_step(bridge_ref):
    try:
        yield
    finally:
        bridge = bridge_ref()
        if bridge is not None:
            await bridge._loop_closing()


async def _as_coroutine(awaitable):
    return await awaitable
