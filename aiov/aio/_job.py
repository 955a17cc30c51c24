"""Job handles: what ``start_async`` returns. ``await job`` gives the job's results (an OVDict)
or raises its error.

Cancellation: cancelling (or timing out) a task that awaits ``job`` asks the native job to
stop at its next node (a queued job does not run) and raises in that task at once; the job's
request is reused only once the native job has really ended (its completion reaches the
loop). Other tasks awaiting the same job then get ``aiov.CancelledError``, or the results if
it finished first.
"""

from __future__ import annotations

from .._errors import CancelledError
from . import _pending
from ._bridge import current_bridge

_PENDING, _DONE = 0, 1


class InferJob(_pending.Pending):
    """One inference started on the engine's workers. Awaitable (any number of times, by any
    number of tasks of the loop that started it); ``done()``, ``result()``, ``cancel()``."""

    __slots__ = (
        "native",
        "fut",
        "bridge",
        "userdata",
        "_spec",
        "_copy",
        "_value",
        "_error",
        "_state",
        "_waiters",
        "_retrieved",
        "_given_back",
        "__weakref__",
    )

    def __init__(self, native, spec, userdata, copy):
        self.native = native
        self.fut = None
        self.bridge = None
        self.userdata = userdata
        self._spec = spec
        self._copy = copy
        self._value = None
        self._error = None
        self._state = _PENDING
        self._waiters = None
        self._retrieved = False
        self._given_back = False

    # -- the end paths (see _pending.Pending) --
    def _settle(self, value, error):
        if self._state == _DONE:
            return
        self._value = value
        self._error = error
        self._state = _DONE
        waiters, self._waiters = self._waiters, None
        if waiters:
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    def _collect_now(self):
        """Reads the outputs into the job (copies unless share_outputs); a failure to read
        them becomes the job's error."""
        try:
            self._value = _pending.collect_outputs(self._spec, self.native, self._copy)
        except BaseException as exc:  # noqa: BLE001 - whoever reads the result gets it
            self._error = exc

    # -- public --
    def done(self) -> bool:
        return self._state == _DONE

    def cancelled(self) -> bool:
        return self._state == _DONE and isinstance(self._error, CancelledError)

    def cancel(self) -> bool:
        """Asks the job to stop at the next node (a queued job does not run). Its awaiters
        get ``aiov.CancelledError`` once the native job has ended (or its results, if it
        finished first). False if the job had already finished."""
        if self._state == _DONE:
            return False
        self.native.cancel()
        return True

    def exception(self):
        if self._state != _DONE:
            raise RuntimeError("the job has not finished")
        self._retrieved = True
        return self._error

    def result(self):
        """The results of a finished job (raises its error)."""
        if self._state != _DONE:
            raise RuntimeError("the job has not finished")
        self._retrieved = True
        if self._error is not None:
            raise self._error
        return self._value

    async def _wait(self, abort_on_cancel=True):
        if self._state == _DONE:
            return
        bridge = current_bridge()
        if bridge is not self.bridge:
            raise RuntimeError("a job can only be awaited on the event loop that started it")
        fut = bridge.future()
        if self._waiters is None:
            self._waiters = [fut]
        else:
            self._waiters.append(fut)
        try:
            await fut
        except BaseException:
            if self._state != _DONE:
                waiters = self._waiters
                if waiters and fut in waiters:
                    waiters.remove(fut)
                if abort_on_cancel:
                    # The awaiter gave up on the job: its failure is not reported elsewhere.
                    self._retrieved = True
                    self.native.cancel()
            raise

    def __await__(self):
        return self._result().__await__()

    async def _result(self):
        if self._state != _DONE:
            await self._wait()
        return self.result()

    def __repr__(self):
        state = "running" if self._state != _DONE else ("failed" if self._error else "done")
        return f"<aio.InferJob {state} userdata={self.userdata!r}>"
