"""The part of ``asyncio.Future`` aiov needs, for one trio task to await (trio has none).

``set_result`` reschedules the waiting task with ``outcome.Value``; ``cancel`` (and a trio
cancellation of the waiting task, through the abort callback) makes the await raise. Only
the trio thread may call them: other threads go through ``TrioToken.run_sync_soon``.
"""

from __future__ import annotations

from ._optional import trio_modules

_PENDING, _DONE, _CANCELLED = 0, 1, 2


def _cancelled_error():
    from .._errors import CancelledError

    return CancelledError("the job was cancelled")


class TrioFuture:
    __slots__ = ("_task", "_state", "_value")

    def __init__(self):
        self._task = None
        self._state = _PENDING
        self._value = None

    def done(self) -> bool:
        return self._state != _PENDING

    def cancelled(self) -> bool:
        return self._state == _CANCELLED

    def result(self):
        return self._value

    def set_result(self, value):
        if self._state != _PENDING:
            return
        self._state = _DONE
        self._value = value
        task = self._task
        if task is not None:
            self._task = None
            trio, outcome = trio_modules()
            trio.lowlevel.reschedule(task, outcome.Value(value))

    def cancel(self) -> bool:
        if self._state != _PENDING:
            return False
        self._state = _CANCELLED
        task = self._task
        if task is not None:
            self._task = None
            trio, outcome = trio_modules()
            trio.lowlevel.reschedule(task, outcome.Error(_cancelled_error()))
        return True

    def _abort(self, raise_cancel):
        # trio cancels the waiting task: the future is cancelled with it.
        self._task = None
        self._state = _CANCELLED
        return trio_modules()[0].lowlevel.Abort.SUCCEEDED

    def __await__(self):
        if self._state == _PENDING:
            trio = trio_modules()[0]
            self._task = trio.lowlevel.current_task()
            return (yield from trio.lowlevel.wait_task_rescheduled(self._abort).__await__())
        if self._state == _CANCELLED:
            raise _cancelled_error()
        return self._value
