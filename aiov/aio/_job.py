"""Job handles: what ``start_async`` returns. ``await job`` gives the job's results (an OVDict)
or raises its error. Cancelling a task that awaits a job aborts the job."""
from __future__ import annotations

import sys

from .._request import native_error
from .._results import OVDict
from ._bridge import current_bridge

_PENDING, _DONE = 0, 1
_getrefcount = getattr(sys, "getrefcount", None)


class InferJob:
    """One inference started on the engine's workers. Awaitable (any number of times, by any
    number of tasks of the loop that started it); ``done()``, ``result()``, ``cancel()``."""

    __slots__ = ("native", "fut", "bridge", "userdata", "_spec", "_copy", "_value", "_error",
                 "_state", "_waiters", "_retrieved", "_keep_value", "__weakref__")

    def __init__(self, native, spec, userdata, copy, keep_value):
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
        self._keep_value = keep_value

    # -- called by the bridge on the loop thread --
    def native_busy(self) -> bool:
        return self.native.busy

    def _finish_native(self, refs_held: int):
        """Collects the outcome of the ended native job (outputs only if someone can read them)."""
        native = self.native
        error = native_error(native)
        if error is None:
            if self._keep_value or self._waiters or \
                    (_getrefcount is None or _getrefcount(self) > refs_held):
                spec = self._spec
                self._value = OVDict(spec.outputs, native.outputs(self._copy), spec.out_ports)
        self._error = error
        self._state = _DONE
        self.fut = None
        native.release_inputs()
        return error

    def _wake(self):
        waiters, self._waiters = self._waiters, None
        if waiters:
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    # -- public --
    def done(self) -> bool:
        return self._state == _DONE

    def cancelled(self) -> bool:
        from .._errors import CancelledError
        return self._state == _DONE and isinstance(self._error, CancelledError)

    def cancel(self) -> bool:
        """Asks the job to stop at the next node (a queued job does not run)."""
        if self._state == _DONE:
            return False
        self.native.cancel()
        return True

    def exception(self):
        if self._state != _DONE:
            raise RuntimeError("the job has not finished")
        self._retrieved = True
        return self._error

    def result(self) -> OVDict:
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
