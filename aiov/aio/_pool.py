"""The bounded request pool behind ``await compiled(x)``.

At most ``cap`` requests exist at once; a caller beyond the cap suspends (never blocks the
loop) in a first-come line until one is given back. Once nothing has been in use for
``shrink_after`` seconds the pool shrinks to ``keep_idle`` requests, so a burst's memory is
returned after it has passed, while a busy loop (whose calls all end in one batch now and
then) keeps its warm requests.

One pool may serve event loops in several threads (one ``aio.CompiledModel`` used by loops in
threads). The hot paths (take an idle request, give one back with nobody waiting) are single
list operations, atomic under the GIL; everything else holds a lock. A caller that starts
waiting and a request given back at the same moment both look at the other's list after
changing their own, so one of them always sees the other (no lost wake-up). A request given
back on one loop's thread to a caller waiting on another loop reaches it through that loop's
``call_soon_threadsafe``.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque

SHRINK_AFTER = 1.0  # seconds with nothing in use before idle requests beyond keep_idle go


class _Waiter:
    __slots__ = ("bridge", "fut", "thread", "slot", "gone", "start", "started")

    def __init__(self, bridge, start):
        self.bridge = bridge
        self.fut = bridge.future()
        self.thread = threading.get_ident()
        self.slot = None  # what it was handed: a slot, _CREATE, or None (closed)
        self.gone = False  # cancelled before being handed anything
        self.start = start  # start(slot, fut): submits the waiter's job on the slot
        self.started = False  # start() ran: fut now resolves with the job's outcome


_CREATE = object()  # handed to a waiter: "you may create a new request"


def _wake(fut):
    if not fut.done():
        fut.set_result(None)


class RequestPool:
    """``acquire(bridge)`` / ``release(slot)`` / ``discard(slot)``, with a cap and shrinking."""

    def __init__(self, create, cap: int, keep_idle: int):
        self._create = create  # () -> a new slot
        self.cap = cap
        self.keep_idle = keep_idle
        self._lock = threading.Lock()
        self._idle = []  # most recently used last (warm memory first)
        self._live = 0  # slots that exist: idle + in use (+ being created)
        self._waiters = deque()
        self._closed = False
        self._trim_due = False  # a trim timer is pending
        self._last_taken = 0.0  # monotonic time a request was last taken
        self.shrink_after = SHRINK_AFTER
        self.slots = weakref.WeakSet()  # every live slot (close() cancels their jobs)

    # -- state, for tests and repr --
    def __len__(self):
        return len(self._idle)

    def __contains__(self, slot):  # idle, ready to be taken
        with self._lock:
            return slot in self._idle

    @property
    def live(self) -> int:
        return self._live

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    # -- taking --
    def take(self):
        """An idle slot without suspending, or None (the fast path of ``acquire``)."""
        if self._waiters or self._closed:
            return None
        try:
            slot = self._idle.pop()
        except IndexError:
            return None
        self._last_taken = time.monotonic()
        return slot

    async def acquire(self, bridge, start=None):
        """``(slot, fut)`` for the caller: an idle slot, a new one below the cap, or
        (suspending) the next one given back. ``fut`` is None, unless the slot was handed
        over on the caller's own thread and ``start(slot, fut)`` already submitted the
        caller's job on it: then ``fut`` resolves with the job's outcome (or holds the error
        ``start`` raised, as a value).

        Cancelling the caller while it waits takes it out of the line; a slot handed to it at
        that moment goes to the next caller; a job started for it is asked to stop (its slot
        returns when the native job has ended)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the compiled model is closed")
            self._last_taken = time.monotonic()
            if not self._waiters:
                try:
                    return self._idle.pop(), None
                except IndexError:
                    pass
            if self._live < self.cap and not self._waiters:
                self._live += 1
                waiter = None
            else:
                waiter = _Waiter(bridge, start)
                self._waiters.append(waiter)
        if waiter is None:
            return self._make(), None
        if self._idle:  # given back lock-free just as we queued up (see the module doc)
            self._redistribute()
        try:
            await waiter.fut
        except BaseException:
            with self._lock:
                handed = waiter.slot
                if handed is None:
                    waiter.gone = True
                    try:
                        self._waiters.remove(waiter)
                    except ValueError:
                        pass
            if waiter.started:
                if handed.fut is waiter.fut:  # our job runs: stop it; it returns the slot
                    handed.native.cancel()
            elif handed is _CREATE:
                self.discard(None)
            elif handed is not None:
                self.release(handed)
            raise
        handed = waiter.slot
        if waiter.started:
            return handed, waiter.fut
        if handed is None:
            from .._errors import CancelledError

            raise CancelledError("the compiled model was closed while waiting for a request")
        if handed is _CREATE:
            return self._make(), None
        return handed, None

    def _make(self):
        try:
            slot = self._create()
        except BaseException:
            self.discard(None)
            raise
        self.slots.add(slot)
        return slot

    # -- giving back (any thread) --
    def release(self, slot, bridge=None):
        """``slot`` can be reused: to the first waiter, else idle. If nothing is in use any
        more, a trim is scheduled on ``bridge`` (the loop of the releasing thread)."""
        if not self._waiters and not self._closed:
            idle = self._idle
            idle.append(slot)
            if self._waiters:  # one queued up just now (see the module doc)
                self._redistribute()
            elif bridge is not None and len(idle) > self.keep_idle and len(idle) == self._live:
                self._schedule_trim(bridge)
            return
        if self._hand(slot) and bridge is not None:
            self._schedule_trim(bridge)

    def _redistribute(self):
        """Hands idle slots to waiters while both exist."""
        handed = []
        with self._lock:
            while self._waiters and self._idle:
                try:
                    slot = self._idle.pop()
                except IndexError:
                    break
                waiter = self._waiters.popleft()
                if waiter.gone or waiter.bridge.is_dead():
                    waiter.gone = True
                    self._idle.append(slot)
                    continue
                waiter.slot = slot
                handed.append(waiter)
        for waiter in handed:
            self._notify(waiter)

    def discard(self, slot):
        """``slot`` will not be reused (its outputs are shared with a caller, or it was never
        made): its place goes to the first waiter, who creates a new one."""
        self._hand(_CREATE)

    def _hand(self, what):
        """Gives ``what`` to the first waiter, else keeps it idle; True if nothing is in use
        and more than ``keep_idle`` requests are idle (a trim is worth scheduling)."""
        surplus = False
        with self._lock:
            waiter = None
            while self._waiters:
                candidate = self._waiters.popleft()
                if not candidate.gone and not candidate.bridge.is_dead():
                    waiter = candidate
                    waiter.slot = what
                    break
                candidate.gone = True  # its loop was closed with the caller still in line
            if waiter is None:
                if what is _CREATE:
                    self._live -= 1
                elif self._closed:
                    self._live -= 1
                else:
                    self._idle.append(what)
                surplus = len(self._idle) == self._live and len(self._idle) > self.keep_idle
        if waiter is not None:
            self._notify(waiter)
        return surplus

    def _schedule_trim(self, bridge, delay=None):
        if self._trim_due:  # already pending (checked again under the lock)
            return
        with self._lock:
            if self._trim_due:
                return
            self._trim_due = True
        delay = self.shrink_after if delay is None else delay
        if not bridge.call_later(delay, self._trim, weakref.ref(bridge)):
            with self._lock:
                self._trim_due = False

    def _trim(self, bridge_ref):
        """Timer, on the thread of the loop that scheduled it: once nothing has been taken
        for ``shrink_after`` seconds, frees the idle requests beyond ``keep_idle`` (least
        recently used first). Taken again meanwhile: a later full-idle moment reschedules;
        idle but too recently used: it looks again when that time is up."""
        dropped = None
        again = None
        with self._lock:
            self._trim_due = False
            if len(self._idle) == self._live and not self._waiters:
                quiet = time.monotonic() - self._last_taken
                if quiet >= self.shrink_after:
                    dropped = self._pop_idle(len(self._idle) - self.keep_idle)
                else:
                    again = self.shrink_after - quiet
        del dropped  # the requests are freed outside the lock
        bridge = bridge_ref()
        if again is not None and bridge is not None and not bridge.is_dead():
            self._schedule_trim(bridge, again)

    def _pop_idle(self, count):
        """Under the lock: removes up to ``count`` idle slots, least recently used first, one
        atomic pop at a time (``take`` pops without the lock)."""
        dropped = []
        while len(dropped) < count:
            try:
                dropped.append(self._idle.pop(0))
            except IndexError:
                break
        self._live -= len(dropped)
        return dropped

    def _notify(self, waiter):
        if waiter.thread == threading.get_ident():
            slot, fut = waiter.slot, waiter.fut
            if waiter.start is not None and slot is not None and slot is not _CREATE and not fut.done():
                # Start the waiter's job right here: it wakes once, when the job has ended.
                waiter.started = True
                try:
                    waiter.start(slot, fut)
                except BaseException as exc:  # noqa: BLE001 - bad inputs: the caller raises it
                    fut.set_result(exc)
                    # Pass the slot on from the loop, not from here: a line of callers with
                    # bad inputs must not recurse once per caller.
                    waiter.bridge.call_soon(self.release, slot, waiter.bridge)
                return
            _wake(fut)
        elif not waiter.bridge.call_soon_threadsafe(_wake, waiter.fut):
            # Its loop is closed: nobody will take it; pass it on.
            with self._lock:
                what, waiter.slot, waiter.gone = waiter.slot, None, True
            if what is not None:
                self._hand(what)

    # -- shutdown --
    def close(self):
        """Refuses new callers and wakes the waiting ones (they get CancelledError); the idle
        requests are freed, the ones in use once their jobs have ended."""
        with self._lock:
            self._closed = True
            waiters, self._waiters = list(self._waiters), deque()
            dropped = self._pop_idle(len(self._idle))
        del dropped
        for waiter in waiters:
            if not waiter.gone:
                self._notify(waiter)

    def clear_idle(self):
        """Frees the idle requests (release_memory)."""
        with self._lock:
            dropped = self._pop_idle(len(self._idle))
        del dropped
