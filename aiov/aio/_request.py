"""aio.InferRequest: one request's memory, with awaitable verbs."""
from __future__ import annotations

from .._errors import BusyError
from ._bridge import current_bridge
from ._job import InferJob
from ._twin import SyncTwin



class _RequestJob(InferJob):
    __slots__ = ("_owner",)

    def complete(self):
        self._finish_native(0)
        owner = self._owner
        if owner._job is self:
            owner._job = None
        self._wake()

    def orphan_complete(self):
        self.fut = None
        self._state = 1
        self.native.release_inputs()
        if self._owner._job is self:
            self._owner._job = None


class InferRequest(SyncTwin):
    """The awaitable twin of ``aiov.InferRequest`` (``.sync``), for one compiled model.

    ``await request.infer(x)``; ``job = request.start_async(x)`` returns at once and
    ``await job`` gives the results; ``await request.wait()`` / ``await request.wait_for(ms)``.
    Tensor access (``get_output_tensor``, ``results``, ...) is the sync request's."""

    def __init__(self, compiled, _sync=None):
        from ._compiled import CompiledModel
        if not isinstance(compiled, CompiledModel):
            compiled = CompiledModel(compiled)
        self._compiled = compiled
        self._sync = _sync if _sync is not None else compiled._sync.create_infer_request()
        self._native = self._sync._native
        self._job = None       # the running job (until its native job has ended)
        self._last = None      # the last job started (wait() reports it)
        self.userdata = None

    def get_compiled_model(self):
        return self._compiled

    @property
    def busy(self) -> bool:
        return self._job is not None

    def start_async(self, inputs=None, userdata=None, share_inputs: bool = False,
                    share_outputs: bool = False) -> InferJob:
        """Starts the inference on the engine's workers and returns its job at once."""
        return self._start(inputs, userdata, share_inputs, share_outputs, True)

    def _start(self, inputs, userdata, share_inputs, share_outputs, keep_value):
        bridge = current_bridge()
        if self._job is not None:
            raise BusyError("the request is busy: await its running job (or request.wait()) first")
        native = self._native
        if native.busy:
            raise BusyError("the request is busy (started through its sync twin)")
        self._sync._set_inputs(inputs, share_inputs)
        if userdata is not None:
            self.userdata = userdata
        job = _RequestJob(native, self._sync._spec, userdata, not share_outputs, keep_value)
        job._owner = self
        try:
            bridge.submit(job, native)
        except BaseException:
            native.release_inputs()
            raise
        self._job = self._last = job
        return job

    async def infer(self, inputs=None, share_inputs: bool = False, share_outputs: bool = False,
                    decode_strings: bool = True):
        """One inference; the results as an OVDict. Cancelling the caller aborts the job."""
        job = self._start(inputs, None, share_inputs, share_outputs, True)
        await job._wait()
        return job.result()

    async def wait(self):
        """Waits for the last job; raises its error if nobody has retrieved it yet."""
        job = self._last
        if job is None:
            return
        await job._wait()
        if not job._retrieved:
            job._retrieved = True
            if job._error is not None:
                raise job._error

    async def wait_for(self, timeout: int) -> bool:
        """Waits up to ``timeout`` ms (negative: no limit); True if the last job has finished.
        A timeout does not cancel the job."""
        job = self._last
        if job is None:
            return True
        if timeout is None or timeout < 0:
            await self.wait()
            return True
        if job._state != 1:
            import anyio
            with anyio.move_on_after(timeout / 1000.0):
                await job._wait(abort_on_cancel=False)
            if job._state != 1:
                return False
        await self.wait()
        return True

    def cancel(self):
        """Asks the running job to stop at the next node; its awaiters get aiov.CancelledError."""
        if self._job is not None:
            self._native.cancel()

    @property
    def results(self):
        return self._sync.results

    def __repr__(self):
        return "<aio." + repr(self._sync)[1:]
