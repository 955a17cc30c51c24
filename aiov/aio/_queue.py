"""aio.AsyncInferQueue: a fixed pool of requests; submission suspends while all are busy."""

from __future__ import annotations

import contextvars
import inspect
import weakref
from collections import deque

from .._errors import CancelledError, InputError, JobError
from .._properties import default_queue_jobs
from ._bridge import current_bridge, reap_dead_bridges
from ._bridge_base import discard
from ._job import _DONE, InferJob
from ._twin import AsyncClosable

# The queue whose callback the current task (or call) runs in: waits on that same queue from
# inside its own callback are checked for deadlock (see _acquire and _wait_idle).
_in_callback_of = contextvars.ContextVar("aiov_aio_in_callback_of", default=None)


class _QueueJob(InferJob):
    """A queue job. Its outputs stay in the slot's request after it ends (callbacks read them
    there); the job reads them lazily on ``result()``, or copies them when the request is
    about to run another job while the handle is still alive (``_detach``). So a caller who
    drops the handle costs no copy, and one who keeps it always gets its own results."""

    __slots__ = ("_queue", "_slot", "_lazy")

    def _settle(self, value, error):
        if self._state == _DONE:
            return
        self._lazy = error is None
        if self._lazy:
            self._slot.request._outputs_job = weakref.ref(self)
        super()._settle(value, error)

    def _give_back(self, orphaned):
        if orphaned:  # reaper thread: the loop that started the job is gone
            self._waiters = None
            self._lazy = False
            self._state = _DONE
            self._queue._orphan_returned(self._slot)
        else:
            self._queue._job_ended(self, self._error)

    def _detach(self):
        if self._lazy:
            self._lazy = False
            self._collect_now()

    def result(self):
        if self._state == _DONE and self._lazy:
            req = self._slot.request
            if req._outputs_job is not None and req._outputs_job() is self:
                req._outputs_job = None
            self._detach()
        return super().result()


class _Slot:
    __slots__ = ("job_id", "request", "sync", "native", "job")

    def __init__(self, job_id, request):
        self.job_id = job_id
        self.request = request  # aio.InferRequest (for callbacks and as_completed)
        self.sync = request._sync
        self.native = request._native
        self.job = None


class AsyncInferQueue(AsyncClosable):
    """``AsyncInferQueue(compiled, jobs=0)``: ``jobs`` requests (0: enough to keep every worker
    busy). ``await start_async(inputs, userdata)`` suspends while all jobs are busy and returns
    the job (``await job`` gives its results). ``set_callback(f)``: ``f(request, userdata)``
    runs on the loop thread as each job ends; it may be ``async def``. ``await wait_all()``
    waits for every job and callback and raises the failures (once) as ``aiov.JobError``."""

    def __init__(self, model, jobs: int = 0):
        from ._compiled import CompiledModel
        from ._request import InferRequest

        if not isinstance(model, CompiledModel):
            model = CompiledModel(model)
        jobs = int(jobs)
        if jobs < 0:
            raise InputError(f"jobs must be >= 0, got {jobs}")
        if jobs == 0:
            jobs = default_queue_jobs(model)
        self._compiled = model
        self._slots = [_Slot(i, InferRequest(model)) for i in range(jobs)]
        self._idle = deque(self._slots)
        self._running = 0  # slots taken (submitted, reserved or in a callback)
        self._waiters = deque()  # futures of start_async calls waiting for a slot
        self._stuck = set()  # those of them made from inside this queue's callbacks
        self._idle_waiters = []  # futures of wait_all calls
        self._errors = []  # (job_id, userdata, exception, job or None)
        self._callback = None
        self._iter_ref = None  # weak reference to the active as_completed iterator
        self._returned = deque()  # slots of orphaned jobs, given back by a reaper thread
        self._bridge = None
        self._closed = False

    # -- submission --
    async def start_async(
        self, inputs=None, userdata=None, share_inputs: bool = False, share_outputs: bool = False
    ) -> InferJob:
        """Starts a job on an idle request, first suspending (never blocking) until one is idle,
        and returns the job (``await job`` gives its results).

        Cancellation: cancelling the caller while it is suspended takes it out of the line
        (an idle request handed to it just then goes to the next caller); once this returns,
        the job runs on regardless, and cancelling a task that awaits the job stops it (see
        ``InferJob``). A request comes back to the queue only when its native job has ended
        and its callback has returned.

        From inside one of this queue's callbacks (an async callback awaiting it), this
        suspends like any caller as long as some other job can still end; if every busy job
        is held by a callback that is itself waiting here, it raises RuntimeError instead of
        waiting forever."""
        bridge = current_bridge()
        if bridge is not self._bridge:
            self._switch(bridge)
        if self._closed:
            raise RuntimeError("the queue is closed")
        idle = self._idle
        if idle and not self._waiters:
            slot = idle.popleft()
            self._running += 1
        else:
            slot = await self._acquire(bridge)
        native = slot.native
        try:
            slot.sync._set_inputs(inputs, share_inputs, queued=True)
            slot.sync._inputs_taken_by_a_job()
            slot.request._hand_over_outputs()
            job = _QueueJob(native, slot.sync._spec, userdata, not share_outputs)
            job._lazy = False
            job._queue = self
            job._slot = slot
            slot.job = job
            bridge.submit(job, native)
        except BaseException:
            slot.job = None
            native.release_inputs()
            self._release(slot)
            raise
        slot.request.userdata = userdata
        return job

    async def _acquire(self, bridge):
        self._collect_returned()
        if self._idle and not self._waiters:
            self._running += 1
            return self._idle.popleft()
        fut = bridge.future()
        if _in_callback_of.get() is self:
            # Our own slot stays taken until this callback returns. If every other taken
            # slot is held by a callback waiting here too, none will ever come back.
            if len(self._stuck) + 1 >= self._running:
                raise RuntimeError(
                    "start_async() from inside this queue's callback would wait forever: every "
                    f"busy job ({self._running}) is held by a callback waiting for an idle job. "
                    "Use more jobs, or submit from outside the callback"
                )
            self._stuck.add(fut)
        self._waiters.append(fut)
        try:
            slot = await fut
        except BaseException:
            self._stuck.discard(fut)
            if fut.done() and not fut.cancelled() and fut.result() is not None:
                self._release(fut.result())  # handed over just as we were cancelled
            else:
                try:
                    self._waiters.remove(fut)
                except ValueError:
                    pass
            raise
        self._stuck.discard(fut)
        if slot is None:
            raise RuntimeError("the queue was closed while waiting for an idle job")
        return slot

    def _release(self, slot):
        """A slot is free again: hand it to the next waiter, or make it idle."""
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            self._stuck.discard(fut)
            if not fut.done():
                fut.set_result(slot)
                return
        self._idle.append(slot)
        self._running -= 1
        if self._running == 0:
            self._wake_idle()

    def _wake_idle(self):
        waiters, self._idle_waiters = self._idle_waiters, []
        self._wake(waiters)

    def _wake(self, waiters):
        """Resolve the given waiting futures and let an active as_completed look again."""
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)
        it = self._iter()
        if it is not None:
            it._wake()

    def _iter(self):
        ref = self._iter_ref
        return ref() if ref is not None else None

    # -- completion (loop thread) --
    def _job_ended(self, job, error):
        slot = job._slot
        if error is not None:
            if self._closed and isinstance(error, CancelledError):
                self._after_callback(job)  # cancelled by close(): neither reported nor called back
                return
            self._errors.append((slot.job_id, job.userdata, error, job))
        callback = self._callback
        if callback is not None:
            mark = _in_callback_of.set(self)
            try:
                result = callback(slot.request, job.userdata)
            except Exception as exc:  # noqa: BLE001 - reported at wait_all
                self._errors.append((slot.job_id, job.userdata, exc, None))
            else:
                if result is not None and inspect.isawaitable(result):

                    def ended(exc, result=result):
                        # The callback's own coroutine, if its task never started it (the loop
                        # was shutting down): closed, so Python does not warn it was never awaited.
                        discard(result)
                        self._callback_done(job, exc)

                    job.bridge.spawn(self._in_callback(result), ended)
                    return
            finally:
                _in_callback_of.reset(mark)
        self._after_callback(job)

    async def _in_callback(self, awaitable):
        _in_callback_of.set(self)  # this task's own context: marks it as our callback
        return await awaitable

    def _callback_done(self, job, exc):
        if isinstance(exc, Exception):
            self._errors.append((job._slot.job_id, job.userdata, exc, None))
        self._after_callback(job)

    def _after_callback(self, job):
        slot = job._slot
        slot.job = None
        it = self._iter()
        if it is not None and not it._done:
            it._push(slot, job)
        else:
            self._release(slot)

    # -- loops that went away --
    def _switch(self, bridge):
        self._bridge = bridge
        for slot in self._slots:
            job = slot.job
            if job is not None and job.bridge is not bridge and job.bridge is not None and job.bridge.is_dead():
                reap_dead_bridges()
                break
        self._collect_returned()

    def _orphan_returned(self, slot):
        self._returned.append(slot)  # deque.append is atomic
        bridge = self._bridge
        if bridge is not None and not bridge.is_dead():
            bridge.call_soon_threadsafe(self._collect_returned)

    def _collect_returned(self):
        returned = self._returned
        while returned:
            try:
                slot = returned.popleft()
            except IndexError:
                return
            slot.job = None
            self._release(slot)

    # -- waiting --
    async def wait_all(self):
        """Waits for every job and callback; then raises the failures nobody has retrieved
        yet (inference errors not already raised by awaiting their job, and callback errors)
        as one ``aiov.JobError``, once.

        Cancellation: cancelling the caller only stops the waiting; jobs and callbacks run on,
        and their failures stay for the next ``wait_all``. From inside one of this queue's
        callbacks it raises RuntimeError (it would wait for that callback itself)."""
        await self._wait_idle()
        errors, self._errors = self._errors, []
        errors = [(i, u, e) for i, u, e, job in errors if job is None or not job._retrieved]
        if errors:
            raise JobError(errors)

    async def _wait_idle(self):
        if _in_callback_of.get() is self:
            raise RuntimeError(
                "wait_all()/aclose() from inside this queue's own callback would "
                "wait for that callback itself; wait from outside the callback"
            )
        bridge = current_bridge()
        if bridge is not self._bridge:
            self._switch(bridge)
        self._collect_returned()
        while self._running:
            fut = bridge.future()
            self._idle_waiters.append(fut)
            try:
                await fut
            except BaseException:
                if fut in self._idle_waiters:
                    self._idle_waiters.remove(fut)
                raise

    def as_completed(self, count: int = None):
        """``async for request, userdata in queue.as_completed(): ...`` yields jobs as they
        finish (after their callback), from now on. Each request is kept for the loop body
        (its outputs stay readable) and reused once the iteration moves on. Ends after
        ``count`` finished jobs, or once the queue is closed (``close``/``aclose``) and
        drained: every job that finished is yielded, and none is running. A moment with no
        job running does not end it (a producer may not have started yet); a producer that
        wants every result yielded before closing awaits ``wait_all()`` and then closes.
        Failed jobs (and jobs cancelled by ``close``) count but are not yielded: their errors
        are raised by ``wait_all``. Cancelling the consumer while it waits stops only the
        waiting; the requests the iterator holds go back to the queue when it ends or is
        closed (``aclose()`` of the iterator, or collected)."""
        if self._iter() is not None:
            raise RuntimeError("the queue already has an active as_completed() iterator")
        return _AsCompleted(self, count)

    # -- state --
    def set_callback(self, callback):
        """``callback(request, userdata)`` runs on the loop thread as each job ends (a sync
        function or ``async def``). An exception it raises is reported by ``wait_all``."""
        self._callback = callback

    def is_ready(self) -> bool:
        """True if start_async would not suspend."""
        return bool(self._idle) and not self._waiters and not self._closed

    async def get_idle_request_id(self) -> int:
        """Suspends until a job is idle and returns its id (it stays idle). Cancelling the
        caller only stops the waiting."""
        while True:
            if self._idle:
                return self._idle[0].job_id
            slot = await self._acquire(current_bridge())
            self._release(slot)

    @property
    def userdata(self) -> list:
        return [slot.request.userdata for slot in self._slots]

    @property
    def busy(self) -> int:
        """Jobs running, reserved or in their callback."""
        return self._running

    @property
    def idle(self) -> int:
        return len(self._idle)

    def __getitem__(self, i: int):
        return self._slots[i].request

    def __iter__(self):
        return (slot.request for slot in self._slots)

    def __len__(self):
        return len(self._slots)

    # -- shutdown --
    def close(self):
        """Cancels the jobs in flight and refuses new ones; never blocks. Jobs cancelled this
        way are neither called back nor reported by wait_all; awaiting one raises
        ``aiov.CancelledError``."""
        if self._closed:
            return
        self._closed = True
        for slot in self._slots:
            if slot.job is not None:
                slot.native.cancel()
        waiters, self._waiters = self._waiters, deque()
        self._wake(waiters)

    async def aclose(self):
        """close(), then suspends until every job in flight has ended (cancelling the caller
        stops only the waiting). From inside this queue's callback: close(), then
        RuntimeError, as for ``wait_all``."""
        self.close()
        await self._wait_idle()

    def __repr__(self):
        return f"<aio.AsyncInferQueue: {len(self._slots)} jobs, {self._running} busy>"


class _AsCompleted:
    __slots__ = ("_queue", "_count", "_seen", "_buf", "_held", "_fut", "_done", "__weakref__")

    def __init__(self, queue, count):
        self._queue = queue
        self._count = count
        self._seen = 0
        self._buf = deque()
        self._held = None
        self._fut = None
        self._done = False
        queue._iter_ref = weakref.ref(self)

    def _push(self, slot, job):
        self._buf.append((slot, job))
        self._queue._running -= 1  # held for the consumer, not running
        q = self._queue
        if q._running == 0:
            q._wake_idle()
        else:
            self._wake()

    def _wake(self):
        fut = self._fut
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _give_back(self, slot):
        q = self._queue
        q._running += 1
        q._release(slot)

    def __aiter__(self):
        return self

    async def __anext__(self):
        q = self._queue
        held, self._held = self._held, None
        if held is not None:
            self._give_back(held)
        while True:
            if self._done or (self._count is not None and self._seen >= self._count):
                self._stop()
                raise StopAsyncIteration
            buf = self._buf
            if buf:
                slot, job = buf.popleft()
                self._seen += 1
                if job._error is not None:
                    self._give_back(slot)
                    continue
                self._held = slot
                return slot.request, job.userdata
            if q._closed and q._running == 0:  # closed and drained
                self._stop()
                raise StopAsyncIteration
            fut = self._fut = current_bridge().future()
            try:
                await fut
            finally:
                self._fut = None

    def _stop(self):
        if self._done:
            return
        self._done = True
        q = self._queue
        if q._iter() is self:
            q._iter_ref = None
        held, self._held = self._held, None
        if held is not None:
            self._give_back(held)
        while self._buf:
            self._give_back(self._buf.popleft()[0])

    async def aclose(self):
        self._stop()

    def __del__(self):
        try:
            self._stop()
        except Exception:  # noqa: BLE001 - best effort at collection
            pass
