"""aio.CompiledModel and aio.compile_model: awaitable inference on a pool of requests."""

from __future__ import annotations

import os

from .. import _core
from .._compiled import CompiledModel as _SyncCompiled
from .._errors import InputError
from .._properties import default_queue_jobs
from .._results import OVDict
from . import _pending
from ._bridge import current_bridge
from ._pending import Pending
from ._pool import RequestPool
from ._threads import run_sync
from ._twin import AsyncClosable, SyncTwin


class _PoolSlot(Pending):
    """One pooled request of ``await compiled(x)``; its own pending record while running."""

    __slots__ = ("request", "native", "spec", "pool", "fut", "bridge", "copy", "_given_back", "__weakref__")

    def __init__(self, request, pool):
        self.request = request
        self.native = request._native
        self.spec = request._spec
        self.pool = pool
        self.fut = None
        self.bridge = None
        self.copy = True
        self._given_back = False

    # -- the end paths (see _pending.Pending); loop thread, or the reaper's if orphaned --
    def _collect(self):
        fut = self.fut
        if fut is None or fut.done():  # the awaiter was cancelled: nobody reads the outputs
            return None
        return _pending.collect_outputs(self.spec, self.native, self.copy)

    def _settle(self, value, error):
        fut, self.fut = self.fut, None
        if fut is not None and not fut.done():
            fut.set_result(error if error is not None else value)

    def _give_back(self, orphaned):
        self.fut = None
        if orphaned:
            self.pool.release(self)
        elif self.copy:
            self.pool.release(self, self.bridge)
        else:  # with share_outputs the results alias this request: it is not reused
            self.pool.discard(self)


def _start(slot, fut, bridge, inputs, share_inputs, share_outputs):
    """Binds the inputs to the slot's request and submits its job; ``fut`` gets the results
    (or the error, as a value). On failure the slot is left unused for the caller to return."""
    native = slot.native
    try:
        slot.request._set_inputs(inputs, share_inputs, True)  # all inputs: a slot holds old data
        slot.copy = not share_outputs
        slot.fut = fut
        bridge.submit(slot, native)
    except BaseException:
        slot.fut = None
        native.release_inputs()
        raise


class CompiledModel(SyncTwin, AsyncClosable):
    """The awaitable twin of ``aiov.CompiledModel``: ``await compiled(inputs)`` runs on an idle
    request from a bounded pool, so any number of concurrent callers is safe.

    At most ``max_requests`` requests exist at once (default: as many as an
    ``AsyncInferQueue(jobs=0)`` uses, a small multiple of the worker count); callers beyond
    that suspend, first come first served, until one is free. Once no call has been in flight
    for a second, the pool shrinks to ``idle_requests`` (default: the worker count), returning
    a burst's memory.
    Everything not awaitable (inputs, outputs, get_property, ...) is the sync model's."""

    def __init__(self, compiled, max_requests: int = None, idle_requests: int = None):
        if isinstance(compiled, CompiledModel):
            compiled = compiled._sync
        if not isinstance(compiled, _SyncCompiled):
            raise InputError(f"aio.CompiledModel wraps an aiov.CompiledModel, got {type(compiled).__name__}")
        self._sync = compiled
        self._spec = compiled._spec
        if max_requests is None:
            max_requests = default_queue_jobs(compiled)
        if isinstance(max_requests, bool) or not isinstance(max_requests, int) or max_requests < 1:
            raise InputError(f"max_requests must be an int >= 1, got {max_requests!r}")
        if idle_requests is None:
            idle_requests = min(max_requests, _core.pool_size())
        if isinstance(idle_requests, bool) or not isinstance(idle_requests, int) or idle_requests < 0:
            raise InputError(f"idle_requests must be an int >= 0, got {idle_requests!r}")
        self._pool = RequestPool(self._new_slot, max_requests, idle_requests)
        self._closed = False

    @property
    def max_requests(self) -> int:
        """The most requests ``await self(x)`` keeps at once (callers beyond it suspend)."""
        return self._pool.cap

    @property
    def _slots(self):
        return self._pool.slots

    def _new_slot(self):
        return _PoolSlot(self._sync.create_infer_request(), self._pool)

    async def __call__(
        self, inputs=None, share_inputs: bool = True, share_outputs: bool = False, decode_strings: bool = True
    ) -> OVDict:
        """One inference on a pooled request, on every input of the model (a missing input is
        an error); results as an OVDict.

        Suspends (never blocks) while ``max_requests`` calls are in flight. Cancellation:
        cancelling (or timing out) the caller while it waits for a request takes it out of
        the line; once its job runs, cancelling asks the native job to stop at its next
        node and raises at once, and the request returns to the pool only when the native
        job has really ended. If reading the outputs fails (e.g. MemoryError) the caller
        gets that error and the request still returns."""
        bridge = current_bridge()
        if self._closed:
            raise RuntimeError("the compiled model is closed")
        if self._sync._state_lock is not None:
            # Pooled requests would each keep a part of the state.
            raise InputError(
                "a stateful model keeps its state per request: run it on one request "
                "(compiled.create_infer_request()) and await request.infer(...)"
            )
        pool = self._pool

        def start(slot, fut):
            _start(slot, fut, bridge, inputs, share_inputs, share_outputs)

        slot, fut = pool.take(), None
        if slot is None:
            # Wait in line. A request given back on this loop starts our job at once (one
            # wake-up: when the job ends); one from another loop's thread wakes us to start it.
            slot, fut = await pool.acquire(bridge, start)
        if fut is None:  # a request to start our job on ourselves
            fut = bridge.future()
            try:
                start(slot, fut)
            except BaseException:
                pool.release(slot)
                raise
        try:
            value = await fut
        except BaseException:
            if slot.fut is fut:  # still our job: stop it; the slot returns when it has ended
                slot.native.cancel()
            raise
        if value.__class__ is OVDict:
            return value
        raise value

    async def infer_new_request(self, inputs=None) -> OVDict:
        """``await self(inputs)`` with the inputs copied (same cancellation semantics)."""
        return await self(inputs, share_inputs=False)

    def create_infer_request(self):
        from ._request import InferRequest

        return InferRequest(self)

    def close(self):
        """Cancels the jobs in flight and refuses new ones (never blocks). Their awaiters, and
        callers still waiting for a request, get ``aiov.CancelledError``; requests are freed
        once their jobs have ended."""
        self._closed = True
        self._pool.close()
        for slot in list(self._slots):
            if slot.fut is not None:
                slot.native.cancel()

    async def aclose(self):
        """close(), then waits (suspending) until every job of this model has ended
        (cancelling the caller stops only the waiting)."""
        self.close()
        from ._threads import sleep

        while any(slot.fut is not None for slot in list(self._slots)):
            await sleep(0.001)

    def release_memory(self):
        self._pool.clear_idle()
        self._sync.release_memory()

    def __repr__(self):
        return "<aio." + repr(self._sync)[1:]


async def read_model(model, weights=None, config=None):
    """``Core().read_model`` in a worker thread (never on the loop). Cancelling the caller
    does not stop the reading: it waits for the thread, then raises."""
    from .._runtime import Core

    return await run_sync(Core().read_model, model, weights)


async def compile_model(
    model, device_name: str = "AUTO", config: dict = None, *, max_requests: int = None, idle_requests: int = None
) -> CompiledModel:
    """Reads (if given a path) and compiles a model in a worker thread; returns an
    ``aio.CompiledModel`` (``max_requests``/``idle_requests``: see there). Cancelling the
    caller does not stop the compilation: it waits for the thread, then raises."""
    from .._runtime import Core

    return CompiledModel(await run_sync(Core().compile_model, model, device_name, config), max_requests, idle_requests)


class Core(SyncTwin):
    """``aiov.Core`` with awaitable ``read_model`` and ``compile_model``; the sync Core is ``.sync``."""

    def __init__(self, xml_config_file: str = ""):
        from .._runtime import Core as _SyncCore

        self._sync = _SyncCore(xml_config_file)

    async def read_model(self, model, weights=None, config=None, *, weights_dir=None):
        return await run_sync(lambda: self._sync.read_model(model, weights, config, weights_dir=weights_dir))

    async def compile_model(
        self,
        model,
        device_name: str = None,
        config: dict = None,
        *,
        max_requests: int = None,
        idle_requests: int = None,
    ) -> CompiledModel:
        """As ``aio.compile_model``, with this Core's settings."""
        if isinstance(model, CompiledModel):
            raise InputError("the model is already compiled")
        if isinstance(model, (str, os.PathLike, bytes)):
            model = await self.read_model(model)
        return CompiledModel(
            await run_sync(self._sync.compile_model, model, device_name, config), max_requests, idle_requests
        )
