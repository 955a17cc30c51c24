"""What a bridge tracks while a job runs: the declared protocol, and the one base that gives
every job class the same completion, failure and orphan paths.

A pending record (the "slot" of a job in ``bridge.pending``) is owned by the bridge from
``Bridge.submit`` until exactly one of its end paths has run:

* ``complete()``: on the loop thread, once the native job has ended. Collects the outcome
  (error or outputs), resolves the awaiter and gives the request back. Whatever is raised
  while collecting (a MemoryError copying a large output, an output shape that cannot be
  represented) becomes the job's error: the awaiter gets it and the request still returns.
* ``fail(exc)``: on the loop thread, when ``complete()`` itself raised (a bug, or a
  KeyboardInterrupt in a user callback): the awaiter gets ``exc`` and the request returns.
* ``orphan_complete()``: on a reaper thread, once the native job has ended after its loop
  died: nobody can await it any more; only the request is given back.
"""

from __future__ import annotations

from typing import Any, Optional, Protocol, runtime_checkable

from .. import _core
from .._log import log_built_plans
from .._request import native_error
from .._results import OVDict

_OK = _core.RequestStatus.ok


@runtime_checkable
class PendingJob(Protocol):
    """The protocol every record in ``bridge.pending`` implements."""

    native: Any  # the aiov._core.Request running the job
    bridge: Any  # the bridge that submitted it (set by Bridge.submit)

    def native_busy(self) -> bool:
        """True while the native request still runs the job (any thread)."""

    def complete(self) -> None:
        """Loop thread, once: the native job has ended. Resolves the awaiter, returns the slot."""

    def fail(self, exc: BaseException) -> None:
        """Loop thread: ``complete()`` raised ``exc``. The awaiter gets ``exc``; the slot
        returns. Never raises."""

    def orphan_complete(self) -> None:
        """Reaper thread: the loop died and the native job has ended; returns the slot."""


def collect_outputs(spec, native, copy: bool) -> OVDict:
    """The outputs of a finished job as an OVDict (copies unless ``copy`` is False). The one
    place a finished job's outputs are read on the aio side (tests inject failures here)."""
    if spec.plans_to_log is not None:
        log_built_plans(spec.plans_to_log)
    if spec.after_run is not None:
        spec.after_run()
    return spec.results(native.outputs(copy))


class Pending:
    """Base of the job classes: the completion, failure and orphan paths in one place.

    Subclasses provide ``_collect()`` (read the outputs, on the loop thread; may raise),
    ``_settle(value, error)`` (resolve whoever awaits; idempotent, must not raise) and
    ``_give_back(orphaned)`` (return the request to its owner; called once per job)."""

    __slots__ = ()

    def native_busy(self) -> bool:
        return self.native.busy

    def _begin(self):
        """Called before the job is submitted: arms the end paths for this job."""
        self._given_back = False

    def complete(self):
        # The hot path of every job: _release_inputs() and _end() are written out inline.
        native = self.native
        value: Optional[OVDict] = None
        if native.status is _OK:
            error = None
            try:
                value = self._collect()
            except BaseException as exc:  # noqa: BLE001 - the awaiter gets it (see module doc)
                error = exc
        else:
            error = native_error(native)
        try:
            native.release_inputs()
        except Exception:  # noqa: BLE001 - only drops references; never worth a lost slot
            pass
        self._settle(value, error)
        if not self._given_back:
            self._given_back = True
            self._give_back(False)

    def fail(self, exc):
        self._release_inputs()
        try:
            self._settle(None, exc)
        finally:
            self._end(False)

    def orphan_complete(self):
        self._release_inputs()
        self._end(True)

    def _end(self, orphaned):
        if self._given_back:
            return
        self._given_back = True
        self._give_back(orphaned)

    def _release_inputs(self):
        try:
            self.native.release_inputs()
        except Exception:  # noqa: BLE001 - only drops references; never worth a lost slot
            pass

    # -- for subclasses --
    def _collect(self):
        return None

    def _settle(self, value, error):
        raise NotImplementedError

    def _give_back(self, orphaned: bool):
        raise NotImplementedError
