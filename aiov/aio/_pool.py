"""The bounded request pool behind ``await compiled(x)``.

At most ``cap`` requests exist at once; a caller beyond the cap suspends (never blocks the
loop) in a first-come line until one is given back. When nothing is in use any more the pool
shrinks to ``keep_idle`` requests, so a burst's memory is returned once it has passed.

One pool may serve event loops in several threads (one ``aio.CompiledModel`` used by loops in
threads), so its state is guarded by a lock. A request given back on one loop's thread to a
caller waiting on another loop reaches it through that loop's ``call_soon_threadsafe``.
"""
from __future__ import annotations

import threading
import weakref
from collections import deque


class _Waiter:
    __slots__ = ("bridge", "fut", "thread", "slot", "gone")

    def __init__(self, bridge):
        self.bridge = bridge
        self.fut = bridge.future()
        self.thread = threading.get_ident()
        self.slot = None    # what it was handed: a slot, _CREATE, or None (closed)
        self.gone = False   # cancelled before being handed anything


_CREATE = object()  # handed to a waiter: "you may create a new request"


def _wake(fut):
    if not fut.done():
        fut.set_result(None)


class RequestPool:
    """``acquire(bridge)`` / ``release(slot)`` / ``discard(slot)``, with a cap and shrinking."""

    def __init__(self, create, cap: int, keep_idle: int):
        self._create = create          # () -> a new slot
        self.cap = cap
        self.keep_idle = keep_idle
        self._lock = threading.Lock()
        self._idle = []                # most recently used last (warm memory first)
        self._live = 0                 # slots that exist: idle + in use (+ being created)
        self._waiters = deque()
        self._closed = False
        self.slots = weakref.WeakSet()  # every live slot (close() cancels their jobs)

    # -- state, for tests and repr --
    def __len__(self):
        return len(self._idle)

    @property
    def live(self) -> int:
        return self._live

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    # -- taking --
    def take(self):
        """An idle slot without suspending, or None (the fast path of ``acquire``)."""
        with self._lock:
            if self._idle and not self._waiters and not self._closed:
                return self._idle.pop()
        return None

    async def acquire(self, bridge):
        """A slot for the caller: an idle one, a new one below the cap, or (suspending) the
        next one given back. Cancelling the caller while it waits takes it out of the line;
        a slot handed to it at that moment goes to the next caller."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the compiled model is closed")
            if self._idle and not self._waiters:
                return self._idle.pop()
            if self._live < self.cap and not self._waiters:
                self._live += 1
                waiter = None
            else:
                waiter = _Waiter(bridge)
                self._waiters.append(waiter)
        if waiter is None:
            return self._make()
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
            if handed is _CREATE:
                self.discard(None)
            elif handed is not None:
                self.release(handed)
            raise
        handed = waiter.slot
        if handed is None:
            from .._errors import CancelledError
            raise CancelledError("the compiled model was closed while waiting for a request")
        if handed is _CREATE:
            return self._make()
        return handed

    def _make(self):
        try:
            slot = self._create()
        except BaseException:
            self.discard(None)
            raise
        self.slots.add(slot)
        return slot

    # -- giving back (any thread) --
    def release(self, slot):
        """``slot`` can be reused: to the first waiter, else idle (and the pool shrinks if
        nothing is in use any more)."""
        self._hand(slot)

    def discard(self, slot):
        """``slot`` will not be reused (its outputs are shared with a caller, or it was never
        made): its place goes to the first waiter, who creates a new one."""
        self._hand(_CREATE)

    def _hand(self, what):
        dropped = None
        with self._lock:
            waiter = None
            while self._waiters:
                candidate = self._waiters.popleft()
                if not candidate.gone:
                    waiter = candidate
                    waiter.slot = what
                    break
            if waiter is None:
                if what is _CREATE:
                    self._live -= 1
                elif self._closed:
                    self._live -= 1
                else:
                    self._idle.append(what)
                if len(self._idle) == self._live and len(self._idle) > self.keep_idle:
                    # Nothing in use: the burst is over; keep only the warmest few.
                    cut = len(self._idle) - self.keep_idle
                    dropped = self._idle[:cut]
                    del self._idle[:cut]
                    self._live -= cut
        del dropped  # the requests are freed outside the lock
        if waiter is not None:
            self._notify(waiter)

    def _notify(self, waiter):
        if waiter.thread == threading.get_ident():
            _wake(waiter.fut)
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
            self._live -= len(self._idle)
            self._idle.clear()
        for waiter in waiters:
            if not waiter.gone:
                self._notify(waiter)

    def clear_idle(self):
        """Frees the idle requests (release_memory)."""
        with self._lock:
            self._live -= len(self._idle)
            self._idle.clear()
