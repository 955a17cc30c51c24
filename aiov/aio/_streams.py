"""``aio.imap``: a stream of inputs in, a stream of results out, with a bounded window.

    async for results in aio.imap(compiled, frames, concurrency=8):
        ...

A feeder task pulls inputs and starts their jobs while fewer than ``concurrency`` items are
pulled and not yet yielded (so the source is never read further ahead than can run, and at
most ``concurrency`` results wait in memory). The consumer takes results in input order
(``ordered=True``) or as they finish. The feeder holds only the shared ``_Stream`` state, never
the iterator the user holds: when the user drops the iterator (``break`` out of ``async for``)
its ``__del__`` aborts what is in flight, which a reference from a running task would prevent.

Each item is its own completion sink: it is passed where the pool or a queue job expects a
future (``done()`` and ``set_result()``), so finishing one job wakes the consumer directly,
on every backend, without a task per item.
"""

from __future__ import annotations

import asyncio
from collections import deque

from .._errors import InputError
from .._results import OVDict
from ._bridge import current_bridge

_PENDING, _FINISHED, _ABORTED = 0, 1, 2


class _Item:
    """One input's job: a stand-in for the future the pool slot or queue job resolves."""

    __slots__ = ("stream", "state", "value", "slot", "job")

    def __init__(self, stream):
        self.stream = stream
        self.state = _PENDING
        self.value = None
        self.slot = None  # pool slot running it (aio.CompiledModel)
        self.job = None  # queue job running it (aio.AsyncInferQueue)

    # -- the future protocol the pool slot and the queue job use --
    def done(self) -> bool:
        return self.state != _PENDING

    def set_result(self, value):
        if self.state != _PENDING:
            return
        self.state = _FINISHED
        self.value = value
        self.stream._finished(self)

    def outcome(self):
        """The results, or raises the item's error."""
        job = self.job
        if job is not None:
            return job.result()
        if self.value.__class__ is OVDict:
            return self.value
        raise self.value

    def abort(self):
        """Stops the job (never blocks); its slot returns once the native job has ended."""
        if self.state != _PENDING:
            return
        self.state = _ABORTED  # done(): the pool skips reading outputs nobody will take
        slot = self.slot
        if slot is not None and slot.fut is self:
            slot.native.cancel()
        job = self.job
        if job is not None:
            job._retrieved = True  # nobody will read it: not reported by the queue's wait_all
            job.cancel()


class _Stream:
    """The state the feeder and the consumer share."""

    def __init__(self, target, inputs, concurrency, ordered):
        from .._compiled import CompiledModel as _SyncCompiled
        from ._compiled import CompiledModel
        from ._queue import AsyncInferQueue

        if isinstance(target, _SyncCompiled):
            target = CompiledModel(target)
        if isinstance(target, CompiledModel):
            default = target.max_requests
        elif isinstance(target, AsyncInferQueue):
            default = len(target)
        else:
            raise InputError(
                f"imap runs on an aio.CompiledModel or an aio.AsyncInferQueue, got {type(target).__name__}"
            )
        if concurrency is None:
            concurrency = default
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InputError(f"concurrency must be an int >= 1, got {concurrency!r}")
        if hasattr(inputs, "__aiter__"):
            self.source, self.is_async = inputs.__aiter__(), True
        elif hasattr(inputs, "__iter__"):
            self.source, self.is_async = iter(inputs), False
        else:
            raise InputError(f"imap takes an iterable or async iterable of inputs, got {type(inputs).__name__}")
        self.target = target
        self.is_queue = isinstance(target, AsyncInferQueue)
        self.ordered = ordered
        self.space = concurrency  # items that may still be pulled before one is yielded
        self.items = deque()  # pulled, not yet yielded (input order)
        self.ready = deque()  # unordered: finished, not yet yielded
        self.feeding = False  # the feeder task runs
        self.source_done = False
        self.source_error = None
        self.closed = False
        self.cancel_feeder = None  # stops the feeder task
        self.bridge = None
        self.consumer_fut = None
        self.feeder_fut = None

    # -- wake-ups --
    def _finished(self, item):
        if not self.ordered:
            self.ready.append(item)
        self._wake_consumer()

    def _wake_consumer(self):
        fut = self.consumer_fut
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _wake_feeder(self):
        fut = self.feeder_fut
        if fut is not None and not fut.done():
            fut.set_result(None)

    # -- the feeder task --
    async def feed(self):
        # Cancelled through the backend itself: anyio's cancel scope would import anyio's
        # asyncio backend on first use, on the loop thread (~80 ms of loop lag).
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # trio
            import trio

            with trio.CancelScope() as scope:
                self.cancel_feeder = scope.cancel
                await self._feed()
            return
        self.cancel_feeder = asyncio.current_task().cancel
        await self._feed()  # a cancelled task ends quietly (see AsyncioBridge.spawn)

    async def _feed(self):
        if self.closed:
            return
        while True:
            while self.space <= 0:
                fut = self.feeder_fut = self.bridge.future()
                try:
                    await fut
                finally:
                    self.feeder_fut = None
            try:
                if self.is_async:
                    inputs = await self.source.__anext__()
                else:
                    inputs = next(self.source)
            except (StopIteration, StopAsyncIteration):
                return
            except Exception as exc:  # noqa: BLE001 - raised to the consumer in its place
                self.source_error = exc
                return
            if self.closed:
                return
            item = _Item(self)
            self.space -= 1
            self.items.append(item)
            await self._launch(item, inputs)

    async def _launch(self, item, inputs):
        """Starts the item's job; an error starting it (bad inputs, a closed model) becomes
        the item's outcome, raised at its position."""
        try:
            if self.is_queue:
                job = await self.target.start_async(inputs, share_inputs=False)
                item.job = job
                if self.closed:
                    job._retrieved = True
                    job.cancel()
                if job.done():
                    item.set_result(None)
                elif job._waiters is None:
                    job._waiters = [item]
                else:
                    job._waiters.append(item)
            else:
                await self._launch_on_pool(item, inputs)
        except Exception as exc:  # noqa: BLE001 - the item's error
            item.job = None
            item.set_result(exc)

    async def _launch_on_pool(self, item, inputs):
        from ._compiled import _start

        compiled = self.target
        if compiled._closed:
            raise RuntimeError("the compiled model is closed")
        pool = compiled._pool
        slot = pool.take()
        if slot is None:
            slot, _ = await pool.acquire(self.bridge)
        if self.closed:
            pool.release(slot)
            return
        try:
            _start(slot, item, self.bridge, inputs, False, False)
        except BaseException:
            pool.release(slot)
            raise
        item.slot = slot

    def feeder_ended(self, exc):
        self.feeding = False
        if exc is not None and self.source_error is None and isinstance(exc, Exception):
            self.source_error = exc
        self._wake_consumer()

    # -- the consumer --
    def next_ready(self):
        """A finished item to yield now, or None."""
        if self.ordered:
            items = self.items
            if items and items[0].state != _PENDING:
                return items.popleft()
            return None
        if self.ready:
            item = self.ready.popleft()
            self.items.remove(item)
            return item
        return None

    def abort(self):
        """Stops the feeder and every job in flight; never blocks, never suspends."""
        if self.closed:
            return
        self.closed = True
        if self.cancel_feeder is not None:
            self.cancel_feeder()
        self._wake_feeder()
        items, self.items = self.items, deque()
        self.ready.clear()
        for item in items:
            item.abort()


class ImapIterator:
    """What ``aio.imap`` returns: an async iterator (and async context manager) of results."""

    __slots__ = ("_stream",)

    def __init__(self, stream):
        self._stream = stream

    def __aiter__(self):
        return self

    async def __anext__(self) -> OVDict:
        s = self._stream
        if s.closed:
            raise StopAsyncIteration
        bridge = current_bridge()
        if s.bridge is None:
            s.bridge = bridge
            s.feeding = True
            bridge.spawn(s.feed(), s.feeder_ended)
        elif bridge is not s.bridge:
            raise RuntimeError("an imap stream can only be iterated on the loop that started it")
        try:
            while True:
                item = s.next_ready()
                if item is not None:
                    break
                if not s.items and not s.feeding:
                    error = s.source_error
                    s.abort()
                    if error is not None:
                        raise error
                    raise StopAsyncIteration
                fut = s.consumer_fut = bridge.future()
                try:
                    await fut
                finally:
                    s.consumer_fut = None
            s.space += 1
            s._wake_feeder()
            return item.outcome()
        except StopAsyncIteration:
            raise
        except BaseException:
            # An item's error, or the consumer cancelled: the loop is being left.
            s.abort()
            raise

    async def aclose(self):
        """Stops the stream: the feeder stops and every job in flight is cancelled."""
        self._stream.abort()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self._stream.abort()

    def __del__(self):
        try:
            self._stream.abort()
        except Exception:  # noqa: BLE001 - best effort at collection
            pass


def imap(compiled, inputs, *, concurrency: int = None, ordered: bool = True) -> ImapIterator:
    """Runs ``compiled`` (an ``aio.CompiledModel`` or ``aio.AsyncInferQueue``) on each item
    of ``inputs`` (an iterable or async iterable) and yields the results (OVDicts): in input
    order if ``ordered``, else as they finish.

    At most ``concurrency`` items (default: the model's ``max_requests`` or the queue's
    size) are pulled from ``inputs`` and not yet yielded: the source is read only as far
    ahead as can run. Inputs are copied when their job starts (a source may reuse its buffer).
    An item's error (bad inputs, a failed inference) is raised at its position when
    ``ordered``, else when it finishes; an error of the source is raised after the items
    before it. Leaving the loop early (``break``, an exception, cancellation, ``aclose()``,
    or ``async with`` exiting) cancels the jobs in flight; each request returns to its pool
    or queue once its native job has ended."""
    return ImapIterator(_Stream(compiled, inputs, concurrency, bool(ordered)))
