"""What every bridge does, whatever the event loop: one completion port, the pending records
of the jobs it started, and the drain that ends them on the loop thread.

A job started through a bridge gets a fresh integer token; its pending record (see
``_pending.PendingJob``) is kept under that token until a worker pushes the token to the
port, whose eventfd wakes the loop. One drain then ends every finished job in a batch.
Workers never take the GIL.
"""

from __future__ import annotations

import itertools

from .. import _core
from . import _reaper
from ._reaper import report

_tokens = itertools.count(1)


class Bridge:
    """Base of the per-backend bridges. A backend adds: ``future()`` (a future its tasks can
    await), ``spawn(awaitable, done)``, ``call_soon(fn, *args)``,
    ``call_soon_threadsafe(fn, *args) -> bool``, ``call_later(delay, fn, *args) -> bool`` and
    ``is_dead()``, and arranges for ``drain``
    to run on the loop thread whenever ``port.fd`` is readable."""

    __slots__ = ("port", "pending", "reaping", "__weakref__")

    def __init__(self):
        self.port = _core.CompletionPort()
        self.pending = {}  # token -> PendingJob, loop thread only (then the reaper's)
        self.reaping = False

    def submit(self, slot, native):
        """Starts ``native`` (the slot's request) as a job; the slot's ``complete()`` runs on
        this loop once the native job has ended."""
        token = next(_tokens)
        slot.bridge = self
        slot._begin()
        pending = self.pending
        pending[token] = slot
        try:
            native.start(self.port, token)
        except BaseException:
            del pending[token]
            raise

    def drain(self):
        """Ends every finished job (loop thread). A job whose completion raises still has its
        awaiter resolved with that error and its request returned (``fail``); an exception
        that is not an ``Exception`` (KeyboardInterrupt from a callback) is re-raised once the
        whole batch is done, so no other job of the batch is lost."""
        pending = self.pending
        escaped = None
        for token in self.port.drain():
            slot = pending.pop(token, None)
            if slot is None:
                continue
            try:
                slot.complete()
            except BaseException as exc:  # noqa: BLE001 - handed to the job's awaiter
                try:
                    slot.fail(exc)
                except BaseException as exc2:  # noqa: BLE001 - a bug in fail() itself
                    report("a failed completion", exc2)
                if escaped is None and not isinstance(exc, Exception):
                    escaped = exc
        if escaped is not None:
            raise escaped

    def reap(self):
        """The loop is gone: a reaper thread ends the jobs still running (see ``_reaper``)."""
        if self.reaping or not self.pending:
            return
        self.reaping = True
        _reaper.start(self)

    def is_dead(self) -> bool:
        raise NotImplementedError


def discard(awaitable):
    """Drops an awaitable that will never be awaited (without a 'never awaited' warning)."""
    close = getattr(awaitable, "close", None)
    if close is not None:
        try:
            close()
        except Exception as exc:  # noqa: BLE001
            report("closing a callback", exc)
