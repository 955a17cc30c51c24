"""The bridge between the engine's workers and an event loop.

One bridge per event loop owns one completion port. A job started through the bridge gets a
fresh integer token and a pending record (its slot); when a worker finishes the job it pushes
the token to the port, whose eventfd wakes the loop. One drain on the loop thread then
resolves every finished job in a batch. Workers never take the GIL.

* asyncio / uvloop: ``loop.add_reader(port.fd, bridge.drain)``.
* trio: a system task that loops on ``trio.lowlevel.wait_readable(port.fd)`` and drains.

A job whose awaiter was cancelled stays pending (its slot is not reused) until its token
arrives, i.e. until the native job has really ended. If the loop dies first, a short-lived
reaper thread waits for the remaining tokens and returns the slots.

Async callbacks run as tasks of the loop. When the loop's runner shuts down (asyncio.run,
uvloop.run, anyio), callback tasks started after it cancelled its tasks are cancelled and
awaited in a shutdown step of the bridge, and later completions start none (see
``AsyncioBridge._hook_loop_shutdown``); under trio, none are started once the run is ending.
"""
from __future__ import annotations

import asyncio
import atexit
import inspect
import itertools
import sys
import threading
import weakref

from .. import _core

_tokens = itertools.count(1)
_get_running_loop = asyncio._get_running_loop

# The bridge of the loop used last: the fast path of bridge lookups. One tuple, so a read
# from another thread sees a consistent pair.
_last = (None, None)
_asyncio_bridges = weakref.WeakValueDictionary()  # id(loop) -> AsyncioBridge
_all_bridges = weakref.WeakSet()
_lock = threading.Lock()  # only taken when a bridge is created (never on a hot path)
_reapers = set()  # reaper threads still running
_exiting = False  # set at interpreter exit: reapers stop


def _report(what, exc):
    print(f"aiov.aio: error in {what}: {exc!r}", file=sys.stderr)


class _BridgeBase:
    __slots__ = ("port", "pending", "reaping", "__weakref__")

    def __init__(self):
        self.port = _core.CompletionPort()
        self.pending = {}
        self.reaping = False

    def submit(self, slot, native):
        """Starts ``native`` (the slot's request) as a job; ``slot.complete()`` runs on this
        loop when it has ended."""
        token = next(_tokens)
        slot.bridge = self
        pending = self.pending
        pending[token] = slot
        try:
            native.start(self.port, token)
        except BaseException:
            del pending[token]
            raise

    def drain(self):
        pending = self.pending
        for token in self.port.drain():
            slot = pending.pop(token, None)
            if slot is not None:
                try:
                    slot.complete()
                except BaseException as exc:  # a bug must not stop the other completions
                    _report("a completion", exc)

    def reap(self):
        """The loop is gone: hand the jobs still running to a reaper thread."""
        if self.reaping or not self.pending:
            return
        self.reaping = True
        thread = threading.Thread(target=self._reap_run, name="aiov-aio-reaper", daemon=True)
        _reapers.add(thread)
        thread.start()

    def _reap_run(self):
        try:
            self._reap_loop()
        finally:
            _reapers.discard(threading.current_thread())

    def _reap_loop(self):
        port, pending = self.port, self.pending
        while pending and not _exiting:
            tokens = port.wait_drain(100)  # GIL released while blocked
            for token in tokens:
                slot = pending.pop(token, None)
                if slot is not None:
                    try:
                        slot.orphan_complete()
                    except BaseException as exc:
                        _report("an orphaned completion", exc)
            if not tokens:
                # Tokens of jobs that ended are always pushed; a slot whose request is idle
                # and whose token never comes (port closed) is released anyway.
                for token, slot in list(pending.items()):
                    if not slot.native_busy():
                        pending.pop(token, None)
                        slot.orphan_complete()


class AsyncioBridge(_BridgeBase):
    __slots__ = ("loop", "future", "tasks", "closing", "_shutdown_hook")

    def __init__(self, loop):
        super().__init__()
        self.loop = loop
        self.future = loop.create_future
        self.tasks = set()     # callback tasks, strongly held while they run
        self.closing = False   # the loop's runner is shutting down: no new callback tasks
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
            _discard(awaitable)
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

    def call_soon_threadsafe(self, fn, *args):
        try:
            self.loop.call_soon_threadsafe(fn, *args)
            return True
        except RuntimeError:  # closed loop
            return False

    def call_soon(self, fn, *args):
        self.loop.call_soon(fn, *args)


async def _loop_shutdown_step(bridge_ref):
    try:
        yield
    finally:
        bridge = bridge_ref()
        if bridge is not None:
            await bridge._loop_closing()


async def _as_coroutine(awaitable):
    return await awaitable


def _discard(awaitable):
    """Drops an awaitable that will never be awaited (without a 'never awaited' warning)."""
    close = getattr(awaitable, "close", None)
    if close is not None:
        try:
            close()
        except Exception as exc:  # noqa: BLE001
            _report("closing a callback", exc)


class TrioFuture:
    """The part of asyncio.Future aiov needs, for one trio task to await."""

    __slots__ = ("_task", "_state", "_value")
    _PENDING, _DONE, _CANCELLED = 0, 1, 2

    def __init__(self):
        self._task = None
        self._state = 0
        self._value = None

    def done(self) -> bool:
        return self._state != 0

    def cancelled(self) -> bool:
        return self._state == 2

    def result(self):
        return self._value

    def set_result(self, value):
        if self._state:
            return
        self._state = 1
        self._value = value
        task = self._task
        if task is not None:
            self._task = None
            _trio_reschedule(task, _outcome_value(value))

    def cancel(self):
        if self._state:
            return False
        self._state = 2
        task = self._task
        if task is not None:
            self._task = None
            _trio_reschedule(task, _outcome_error(_trio_cancelled_error()))
        return True

    def _abort(self, raise_cancel):
        self._task = None
        self._state = 2
        return _trio_abort_succeeded

    def __await__(self):
        if self._state == 0:
            self._task = _trio_current_task()
            return (yield from _trio_wait_rescheduled(self._abort).__await__())
        if self._state == 2:
            raise _trio_cancelled_error()
        return self._value


_trio_reschedule = _trio_current_task = _trio_wait_rescheduled = None
_trio_abort_succeeded = _outcome_value = _outcome_error = None


def _trio_cancelled_error():
    from .._errors import CancelledError
    return CancelledError("the job was cancelled")


def _load_trio():
    global _trio_reschedule, _trio_current_task, _trio_wait_rescheduled, _trio_abort_succeeded
    global _outcome_value, _outcome_error, _trio_bridge_var
    import outcome
    import trio
    _trio_reschedule = trio.lowlevel.reschedule
    _trio_current_task = trio.lowlevel.current_task
    _trio_wait_rescheduled = trio.lowlevel.wait_task_rescheduled
    _trio_abort_succeeded = trio.lowlevel.Abort.SUCCEEDED
    _outcome_value, _outcome_error = outcome.Value, outcome.Error
    _trio_bridge_var = trio.lowlevel.RunVar("aiov_aio_bridge")


_trio_bridge_var = None


class TrioBridge(_BridgeBase):
    __slots__ = ("trio_token", "dead", "_trio")

    def __init__(self):
        import trio
        super().__init__()
        self._trio = trio
        self.trio_token = trio.lowlevel.current_trio_token()
        self.dead = False
        trio.lowlevel.spawn_system_task(self._run, name="aiov.aio bridge")

    future = TrioFuture

    async def _run(self):
        wait_readable, fd = self._trio.lowlevel.wait_readable, self.port.fd
        try:
            while True:
                await wait_readable(fd)
                self.drain()
        finally:
            self.dead = True
            self.drain()
            self.reap()

    def is_dead(self) -> bool:
        return self.dead

    def spawn(self, awaitable, done):
        if self.dead:  # the run is ending: its system tasks are being cancelled
            _discard(awaitable)
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

    def call_soon_threadsafe(self, fn, *args):
        try:
            self.trio_token.run_sync_soon(fn, *args)
            return True
        except self._trio.RunFinishedError:
            return False

    def call_soon(self, fn, *args):
        self.trio_token.run_sync_soon(fn, *args)


def current_bridge():
    """The bridge of the running event loop (created on first use)."""
    global _last
    loop = _get_running_loop()
    last = _last
    if loop is not None and last[0] is loop:
        return last[1]
    return _bridge_slow(loop)


def _bridge_slow(loop):
    global _last
    if loop is None:
        return _trio_bridge()
    bridge = _asyncio_bridges.get(id(loop))
    if bridge is None or bridge.loop is not loop:
        if loop.is_closed():
            raise RuntimeError("the event loop is closed")
        with _lock:
            _reap_dead()
            bridge = AsyncioBridge(loop)
            _asyncio_bridges[id(loop)] = bridge
            _all_bridges.add(bridge)
    _last = (loop, bridge)
    return bridge


def _trio_bridge():
    try:
        import sniffio
        library = sniffio.current_async_library()
    except Exception:  # noqa: BLE001
        library = None
    if library != "trio":
        raise RuntimeError("aiov.aio needs a running asyncio (or uvloop) event loop or a trio run")
    if _trio_bridge_var is None:
        _load_trio()
    bridge = _trio_bridge_var.get(None)
    if bridge is None:
        bridge = TrioBridge()
        _trio_bridge_var.set(bridge)
        with _lock:
            _reap_dead()
            _all_bridges.add(bridge)
    return bridge


def _reap_dead():
    for bridge in list(_all_bridges):
        if bridge.pending and bridge.is_dead():
            bridge.reap()


def reap_dead_bridges():
    """Returns the slots of jobs left behind by closed loops (runs a reaper if needed)."""
    with _lock:
        _reap_dead()


def backend_name() -> str:
    if _get_running_loop() is not None:
        return "asyncio"
    import sniffio
    return sniffio.current_async_library()


def _quiesce_at_exit():
    """Before the interpreter finalizes: no job of a bridge and no reaper thread may be left.

    Workers need no GIL (ports, models and requests are C++-owned), so nothing here is about
    their references, and nothing is timing-based.

    * Cancel: otherwise exit waits for every queued and running job to finish (a busy
      request's destructor waits for its job, and the engine's pool drains its queue when
      the process tears down its statics).
    * Wait (short once cancelled: a job stops at its next node): no worker still runs engine
      code while the interpreter and the native module's statics are torn down.
    * Stop and join the reapers: a daemon thread blocked in ``port.wait_drain`` (GIL released
      by nanobind) that wakes up during finalization is killed by ``pthread_exit`` while
      re-taking the GIL, which unwinds through a noexcept C++ destructor: std::terminate
      ("terminate called without an active exception", abort). A reaper returns from
      ``wait_drain`` within its 100 ms timeout and then sees ``_exiting``."""
    global _exiting
    natives = []
    for bridge in list(_all_bridges):
        for slot in list(bridge.pending.values()):
            natives.append(slot.native)
    for native in natives:
        native.cancel()
    for native in natives:
        native.wait(5000)  # GIL released
    _exiting = True
    for thread in list(_reapers):
        thread.join(5)  # GIL released


atexit.register(_quiesce_at_exit)
