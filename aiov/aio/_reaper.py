"""Jobs that outlive their event loop, and the interpreter's exit.

A job whose awaiter was cancelled stays pending (its request is not reused) until its token
arrives, i.e. until the native job has really ended. If the loop dies first, a short-lived
reaper thread waits for the remaining tokens and gives the requests back
(``orphan_complete``). At interpreter exit every job still pending is cancelled and waited
for, and the reapers are stopped and joined (see ``quiesce_at_exit``).
"""

from __future__ import annotations

import atexit
import sys
import threading
import weakref

_reapers = set()  # reaper threads still running
_exiting = False  # set at interpreter exit: reapers stop
_bridges = weakref.WeakSet()  # every bridge created (registered by the registry)


def track(bridge):
    _bridges.add(bridge)


def bridges():
    return list(_bridges)


def report(what, exc):
    """Last resort for an error nobody can receive (no awaiter exists, or it has its outcome)."""
    print(f"aiov.aio: error in {what}: {exc!r}", file=sys.stderr)


def start(bridge):
    thread = threading.Thread(target=_run, args=(bridge,), name="aiov-aio-reaper", daemon=True)
    _reapers.add(thread)
    thread.start()


def _run(bridge):
    try:
        _reap(bridge)
    finally:
        _reapers.discard(threading.current_thread())


def _reap(bridge):
    port, pending = bridge.port, bridge.pending
    while pending and not _exiting:
        tokens = port.wait_drain(100)  # GIL released while blocked
        for token in tokens:
            slot = pending.pop(token, None)
            if slot is not None:
                _orphan(slot)
        if not tokens:
            # Tokens of jobs that ended are always pushed; a record whose request is idle
            # and whose token never comes (port closed) is ended anyway.
            for token, slot in list(pending.items()):
                if not slot.native_busy():
                    pending.pop(token, None)
                    _orphan(slot)


def _orphan(slot):
    try:
        slot.orphan_complete()
    except BaseException as exc:  # noqa: BLE001 - no awaiter exists to receive it
        report("an orphaned completion", exc)


def quiesce_at_exit():
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
    for bridge in bridges():
        for slot in list(bridge.pending.values()):
            natives.append(slot.native)
    for native in natives:
        native.cancel()
    for native in natives:
        native.wait(5000)  # GIL released
    _exiting = True
    for thread in list(_reapers):
        thread.join(5)  # GIL released


atexit.register(quiesce_at_exit)
