"""aio.CompiledModel and aio.compile_model: awaitable inference on a pool of requests."""
from __future__ import annotations

import os
import weakref

from .._compiled import CompiledModel as _SyncCompiled
from .._errors import InputError
from .._request import native_error
from .._results import OVDict
from ._bridge import current_bridge
from ._threads import run_sync
from ._twin import AsyncClosable, SyncTwin


class _PoolSlot:
    """One pooled request of ``await compiled(x)``; its own pending record while running."""

    __slots__ = ("request", "native", "spec", "pool", "fut", "bridge", "copy", "__weakref__")

    def __init__(self, request, pool):
        self.request = request
        self.native = request._native
        self.spec = request._spec
        self.pool = pool
        self.fut = None
        self.bridge = None
        self.copy = True

    def native_busy(self):
        return self.native.busy

    def complete(self):
        # Loop thread, one call per finished job inside a drain.
        native, fut = self.native, self.fut
        self.fut = None
        if fut.done():  # the awaiter was cancelled: only give the slot back
            native.release_inputs()
            self.pool.append(self)
            return
        if native.status == 2:
            spec = self.spec
            copy = self.copy
            value = OVDict(spec.outputs, native.outputs(copy), spec.out_ports)
        else:
            copy = True
            value = native_error(native)
        native.release_inputs()
        if copy:  # with share_outputs the results alias this request: it is not reused
            self.pool.append(self)
        fut.set_result(value)

    def orphan_complete(self):
        # Reaper thread, after the loop died: give the slot back.
        self.fut = None
        self.native.release_inputs()
        self.pool.append(self)


class CompiledModel(SyncTwin, AsyncClosable):
    """The awaitable twin of ``aiov.CompiledModel``: ``await compiled(inputs)`` runs on an idle
    request from a pool that grows on demand, so any number of concurrent callers is safe.
    Everything not awaitable (inputs, outputs, get_property, ...) is the sync model's."""

    def __init__(self, compiled):
        if isinstance(compiled, CompiledModel):
            compiled = compiled._sync
        if not isinstance(compiled, _SyncCompiled):
            raise InputError(f"aio.CompiledModel wraps an aiov.CompiledModel, got {type(compiled).__name__}")
        self._sync = compiled
        self._spec = compiled._spec
        self._pool = []     # idle slots; list.pop/append are atomic, so loops in threads share it
        self._slots = weakref.WeakSet()  # every live slot (to cancel on close)
        self._closed = False

    def _new_slot(self):
        if self._closed:
            raise RuntimeError("the compiled model is closed")
        slot = _PoolSlot(self._sync.create_infer_request(), self._pool)
        self._slots.add(slot)
        return slot

    async def __call__(self, inputs=None, share_inputs: bool = True, share_outputs: bool = False,
                       decode_strings: bool = True) -> OVDict:
        """One inference on every input of the model (a missing input is an error); results
        as an OVDict. Cancelling the caller aborts the job."""
        bridge = current_bridge()
        if self._closed:
            raise RuntimeError("the compiled model is closed")
        pool = self._pool
        slot = pool.pop() if pool else self._new_slot()
        native = slot.native
        try:
            slot.request._set_inputs(inputs, share_inputs, True)  # all inputs: a slot holds old data
            slot.copy = not share_outputs
            slot.fut = fut = bridge.future()
            bridge.submit(slot, native)
        except BaseException:
            slot.fut = None
            native.release_inputs()
            pool.append(slot)
            raise
        try:
            value = await fut
        except BaseException:
            if slot.fut is fut:  # still our job: stop it; the slot returns when it has ended
                native.cancel()
            raise
        if value.__class__ is OVDict:
            return value
        raise value

    async def infer_new_request(self, inputs=None) -> OVDict:
        return await self(inputs, share_inputs=False)

    def create_infer_request(self):
        from ._request import InferRequest
        return InferRequest(self)

    def close(self):
        """Cancels the jobs in flight and refuses new ones (never blocks). Their awaiters get
        ``aiov.CancelledError``; requests are freed once their jobs have ended."""
        self._closed = True
        for slot in list(self._slots):
            if slot.fut is not None:
                slot.native.cancel()
        self._pool.clear()

    async def aclose(self):
        """close(), then waits (suspending) until every job of this model has ended."""
        self.close()
        from ._threads import sleep
        while any(slot.fut is not None for slot in list(self._slots)):
            await sleep(0.001)

    def release_memory(self):
        self._pool.clear()
        self._sync.release_memory()

    def __repr__(self):
        return "<aio." + repr(self._sync)[1:]


async def read_model(model, weights=None, config=None):
    """``Core().read_model`` in a worker thread (never on the loop)."""
    from .._runtime import Core
    return await run_sync(Core().read_model, model, weights)


async def compile_model(model, device_name: str = "AUTO", config: dict = None) -> CompiledModel:
    """Reads (if given a path) and compiles a model in a worker thread; returns an
    ``aio.CompiledModel``."""
    from .._runtime import Core
    return CompiledModel(await run_sync(Core().compile_model, model, device_name, config))


class Core(SyncTwin):
    """``aiov.Core`` with awaitable ``read_model`` and ``compile_model``; the sync Core is ``.sync``."""

    def __init__(self, xml_config_file: str = ""):
        from .._runtime import Core as _SyncCore
        self._sync = _SyncCore(xml_config_file)

    async def read_model(self, model, weights=None, config=None, *, weights_dir=None):
        return await run_sync(lambda: self._sync.read_model(model, weights, config, weights_dir=weights_dir))

    async def compile_model(self, model, device_name: str = None, config: dict = None) -> CompiledModel:
        if isinstance(model, CompiledModel):
            raise InputError("the model is already compiled")
        if isinstance(model, (str, os.PathLike, bytes)):
            model = await self.read_model(model)
        return CompiledModel(await run_sync(self._sync.compile_model, model, device_name, config))
