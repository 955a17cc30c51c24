"""AsyncInferQueue: a pool of requests fed by start_async and drained by callbacks."""

from __future__ import annotations

import threading
import weakref
from collections import deque

from ._dispatch import dispatcher
from ._errors import InputError, JobError
from ._properties import default_queue_jobs
from ._request import InferRequest, native_error


class AsyncInferQueue:
    """``AsyncInferQueue(compiled, jobs=0)``: ``jobs`` requests (0 picks enough to keep every
    worker busy). ``start_async`` waits with the GIL released while all jobs are busy. A failed
    inference or callback raises once, at the next ``wait_all``, and never poisons later jobs."""

    def __init__(self, model, jobs: int = 0):
        jobs = int(jobs)
        if jobs < 0:
            raise InputError(f"jobs must be >= 0, got {jobs}")
        if jobs == 0:
            jobs = default_queue_jobs(model)
        self._requests = [InferRequest(model) for _ in range(jobs)]
        self._userdata = [None] * jobs
        # Least-recently-freed first, as OpenVINO hands them out: `jobs` consecutive
        # start_async calls land on `jobs` different requests, so code that reads every
        # request's results afterwards (OpenVINO's own samples) sees each job's.
        self._idle = deque(range(jobs))
        self._cond = threading.Condition(threading.Lock())
        self._busy = 0
        self._errors = []
        self._callback = None
        ref = weakref.ref(self)
        self._tokens = [dispatcher.register(self._handler(ref, i)) for i in range(jobs)]

    @staticmethod
    def _handler(ref, job_id):
        def on_done():
            queue = ref()
            if queue is not None:
                queue._on_done(job_id)

        return on_done

    def _on_done(self, job_id: int):
        # Dispatcher thread: the job's native work has ended.
        request = self._requests[job_id]
        error = native_error(request._native)
        callback = self._callback
        try:
            if error is None:
                request._fill_preset_outputs()
            if callback is not None:
                callback(request, self._userdata[job_id])
        except BaseException as exc:
            error = error or exc
        request._native.release_inputs()
        with self._cond:
            if error is not None:
                self._errors.append((job_id, self._userdata[job_id], error))
            self._idle.append(job_id)
            self._busy -= 1
            self._cond.notify_all()

    def start_async(self, inputs=None, userdata=None, share_inputs: bool = False):
        """Starts a job on an idle request, first waiting (GIL released) for one. From inside
        a callback (the dispatcher thread) it starts a job if one is idle and raises
        RuntimeError if it would have to wait: the busy jobs can only end after the callback."""
        cond = self._cond
        with cond:
            while not self._idle:
                dispatcher.refuse_wait("AsyncInferQueue.start_async() with every job busy")
                cond.wait()
            job_id = self._idle.popleft()
            self._busy += 1
        request = self._requests[job_id]
        try:
            request._set_inputs(inputs, share_inputs, queued=True)
            request._inputs_taken_by_a_job()
            self._userdata[job_id] = userdata
            request.userdata = userdata
            request._native.start(dispatcher.port, self._tokens[job_id])
        except BaseException:
            with cond:
                self._idle.appendleft(job_id)
                self._busy -= 1
                cond.notify_all()
            raise

    def wait_all(self):
        """Waits for every job and callback; then raises the failures collected since the
        last wait_all (once). From inside a callback it raises RuntimeError while any job is
        busy (the calling callback's own job counts until it returns)."""
        with self._cond:
            while self._busy:
                dispatcher.refuse_wait("AsyncInferQueue.wait_all()")
                self._cond.wait()
            errors, self._errors = self._errors, []
        if errors:
            raise JobError(errors)

    def is_ready(self) -> bool:
        """True if a job is idle (start_async would not wait)."""
        return bool(self._idle)

    def get_idle_request_id(self) -> int:
        """Waits for an idle job and returns its id (it stays idle); inside a callback, raises
        RuntimeError instead of waiting (as start_async)."""
        with self._cond:
            while not self._idle:
                dispatcher.refuse_wait("AsyncInferQueue.get_idle_request_id() with every job busy")
                self._cond.wait()
            return self._idle[0]

    def set_callback(self, callback):
        """``callback(request, userdata)`` runs on aiov's dispatcher thread as each job ends."""
        self._callback = callback

    @property
    def userdata(self) -> list:
        return list(self._userdata)

    def __getitem__(self, i: int) -> InferRequest:
        return self._requests[i]

    def __iter__(self):
        return iter(self._requests)

    def __len__(self):
        return len(self._requests)

    def __del__(self):
        for token in getattr(self, "_tokens", ()):
            dispatcher.unregister(token)

    def __repr__(self):
        return f"<AsyncInferQueue: {len(self._requests)} jobs, {self._busy} busy>"
