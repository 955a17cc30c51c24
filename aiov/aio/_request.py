"""aio.InferRequest: one request's memory, with awaitable verbs."""

from __future__ import annotations

from .._errors import BusyError
from . import _pending
from ._bridge import current_bridge
from ._job import _DONE, InferJob
from ._twin import SyncTwin


class _RequestJob(InferJob):
    """A job of ``aio.InferRequest.start_async``/``infer``: its outputs are read into the
    job as it ends, so they survive the request's next job."""

    __slots__ = ("_owner",)

    def _collect(self):
        self._owner._sync._fill_preset_outputs()
        return _pending.collect_outputs(self._spec, self.native, self._copy)

    def _give_back(self, orphaned):
        if orphaned:  # reaper thread: the loop is gone, nobody can await the job
            self._waiters = None
            self._state = _DONE
        owner = self._owner
        if owner._job is self:
            owner._job = None


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
        self._job = None  # the running job (until its native job has ended)
        self._last = None  # the last job started (wait() reports it)
        self._outputs_job = None  # weak ref to a finished queue job still reading our outputs
        self.userdata = None

    def get_compiled_model(self):
        return self._compiled

    @property
    def busy(self) -> bool:
        return self._job is not None

    def start_async(
        self, inputs=None, userdata=None, share_inputs: bool = False, share_outputs: bool = False
    ) -> InferJob:
        """Starts the inference on the engine's workers and returns its job at once (never
        suspends). ``await job`` gives its results; see ``InferJob`` for cancellation: the
        request is busy until the native job has ended, even if every awaiter gave up."""
        return self._start(inputs, userdata, share_inputs, share_outputs)

    def _hand_over_outputs(self):
        """The request's memory is about to be overwritten: a finished queue job that still
        reads its outputs from here (see ``_queue._QueueJob``) takes its own copy first."""
        ref = self._outputs_job
        if ref is not None:
            self._outputs_job = None
            job = ref()
            if job is not None:
                job._detach()

    def _start(self, inputs, userdata, share_inputs, share_outputs):
        bridge = current_bridge()
        if self._job is not None:
            raise BusyError("the request is busy: await its running job (or request.wait()) first")
        native = self._native
        if native.busy:
            raise BusyError("the request is busy (started through its sync twin)")
        self._hand_over_outputs()
        self._sync._set_inputs(inputs, share_inputs)
        if userdata is not None:
            self.userdata = userdata
        job = _RequestJob(native, self._sync._spec, userdata, not share_outputs)
        job._owner = self
        try:
            bridge.submit(job, native)
        except BaseException:
            native.release_inputs()
            raise
        self._job = self._last = job
        return job

    async def infer(
        self, inputs=None, share_inputs: bool = False, share_outputs: bool = False, decode_strings: bool = True
    ):
        """One inference; the results as an OVDict.

        Cancellation: cancelling (or timing out) the caller asks the native job to stop at
        its next node and raises at once; the request stays busy (``start_async`` raises
        BusyError) until the native job has really ended, which the loop sees a moment later."""
        job = self._start(inputs, None, share_inputs, share_outputs)
        await job._wait()
        return job.result()

    async def wait(self):
        """Waits for the last job; raises its error if nobody has retrieved it yet.
        Cancelling the caller cancels the job too (as awaiting the job does)."""
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
        A timeout does not cancel the job; cancelling the caller while it waits does not
        either (only ``wait()``, ``infer()`` and awaiting the job do)."""
        job = self._last
        if job is None:
            return True
        if timeout is None or timeout < 0:
            await self.wait()
            return True
        if job._state != _DONE:
            import anyio

            with anyio.move_on_after(timeout / 1000.0):
                await job._wait(abort_on_cancel=False)
            if job._state != _DONE:
                return False
        await self.wait()
        return True

    def cancel(self):
        """Asks the running job to stop at the next node (never blocks); its awaiters get
        aiov.CancelledError once it has ended, and the request is idle again then."""
        if self._job is not None:
            self._native.cancel()

    @property
    def results(self):
        return self._sync.results

    def __repr__(self):
        return "<aio." + repr(self._sync)[1:]
