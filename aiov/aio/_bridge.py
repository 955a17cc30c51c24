"""The bridge registry: one bridge per event loop (asyncio/uvloop loop or trio run), created on
first use. The bridges themselves live in ``_asyncio_bridge`` and ``_trio_bridge`` behind the
base of ``_bridge_base``; what they track is declared in ``_pending``; jobs that outlive their
loop are handled by ``_reaper``.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import weakref

from . import _reaper
from ._asyncio_bridge import AsyncioBridge
from ._optional import current_async_library, require_sniffio

# The bridge of the loop used last: the fast path of bridge lookups. One tuple, so a read
# from another thread sees a consistent pair.
_last = (None, None)
_asyncio_bridges = weakref.WeakValueDictionary()  # id(loop) -> AsyncioBridge
_lock = threading.Lock()  # only taken when a bridge is created (never on a hot path)
_trio_bridge_var = None  # trio.lowlevel.RunVar holding the run's bridge


def _running_loop():
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def current_bridge():
    """The bridge of the running event loop (created on first use)."""
    loop = _running_loop()
    last = _last
    if loop is not None and last[0] is loop:
        return last[1]
    return _bridge_slow(loop)


def _bridge_slow(loop):
    global _last
    if loop is None:
        return _trio_bridge()
    bridge = _asyncio_bridges.get(id(loop))
    if bridge is None or bridge.loop is not loop:
        if loop.is_closed():
            raise RuntimeError("the event loop is closed")
        with _lock:
            _reap_dead()
            bridge = AsyncioBridge(loop)
            _asyncio_bridges[id(loop)] = bridge
            _reaper.track(bridge)
    _last = (loop, bridge)
    return bridge


def _trio_bridge():
    global _trio_bridge_var
    library = current_async_library()
    if library != "trio":
        if library is None and "trio" in sys.modules:
            require_sniffio()  # cannot tell a trio run without it: name the extra
        raise RuntimeError("aiov.aio needs a running asyncio (or uvloop) event loop or a trio run")
    from ._trio_bridge import TrioBridge, trio_modules

    if _trio_bridge_var is None:
        _trio_bridge_var = trio_modules()[0].lowlevel.RunVar("aiov_aio_bridge")
    bridge = _trio_bridge_var.get(None)
    if bridge is None:
        bridge = TrioBridge()
        _trio_bridge_var.set(bridge)
        with _lock:
            _reap_dead()
            _reaper.track(bridge)
    return bridge


def _reap_dead():
    for bridge in _reaper.bridges():
        if bridge.pending and bridge.is_dead():
            bridge.reap()


def reap_dead_bridges():
    """Returns the slots of jobs left behind by closed loops (runs a reaper if needed)."""
    with _lock:
        _reap_dead()


def backend_name() -> str:
    """ "asyncio" (also under uvloop) or "trio"."""
    if _running_loop() is not None:
        return "asyncio"
    library = current_async_library()
    if library is None:
        raise RuntimeError("no async library is running")
    return library
