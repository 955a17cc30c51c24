"""The aio completion path when collecting a finished job fails (a MemoryError copying a large
output, an output shape that cannot be represented, any exception): the awaiter gets that
exception and the request comes back, on every backend, many times over."""

import random

import anyio
import numpy as np
import pytest

from aiov import aio
from aiov.aio import _pending

from aio_helpers import pool_idle, settled
from model_builders import medium_reference

pytestmark = pytest.mark.anyio

X = np.arange(8, dtype=np.float32)


class _FlakyCollect:
    """Replaces the output collection: fails with ``exc`` for a seeded random share of calls."""

    def __init__(self, monkeypatch, exc_type=MemoryError, rate=0.5, seed=0):
        self.real = _pending.collect_outputs
        self.rng = random.Random(seed)
        self.rate = rate
        self.exc_type = exc_type
        self.failed = 0
        self.calls = 0
        monkeypatch.setattr(_pending, "collect_outputs", self)

    def __call__(self, spec, native, copy):
        self.calls += 1
        if self.rng.random() < self.rate:
            self.failed += 1
            raise self.exc_type("injected: cannot collect the outputs")
        return self.real(spec, native, copy)


async def test_compiled_call_gets_the_collection_error_and_the_request_returns(tiny, monkeypatch):
    flaky = _FlakyCollect(monkeypatch, MemoryError)
    compiled = aio.CompiledModel(tiny, max_requests=4)
    outcomes = {"ok": 0, "memory": 0}

    async def one(i):
        try:
            out = await compiled([X, np.full(8, i, np.float32)])
        except MemoryError as exc:
            assert "injected" in str(exc)
            outcomes["memory"] += 1
        else:
            np.testing.assert_array_equal(out[0], X + i)
            outcomes["ok"] += 1

    with anyio.fail_after(60):
        for _wave in range(10):
            async with anyio.create_task_group() as tg:
                for i in range(50):
                    tg.start_soon(one, i)
    assert outcomes["ok"] + outcomes["memory"] == 500
    assert outcomes["memory"] == flaky.failed > 50 and outcomes["ok"] > 50
    assert await settled(lambda: pool_idle(compiled))
    assert compiled._pool.live <= 4
    assert not aio.current_bridge().pending


async def test_overflowing_shape_error_reaches_request_awaiters(tiny, monkeypatch):
    flaky = _FlakyCollect(monkeypatch, OverflowError, rate=0.5, seed=3)
    request = aio.CompiledModel(tiny).create_infer_request()
    seen = {"ok": 0, "overflow": 0}
    with anyio.fail_after(60):
        for i in range(300):
            try:
                if i % 2:
                    out = await request.infer([X, X])
                else:
                    out = await request.start_async([X, X])
            except OverflowError:
                seen["overflow"] += 1
                assert not request.busy  # the request came back with the error
            else:
                np.testing.assert_array_equal(out[0], 2 * X)
                seen["ok"] += 1
    assert seen["overflow"] == flaky.failed and seen["ok"] == 300 - flaky.failed
    assert not request.busy and not aio.current_bridge().pending


async def test_queue_job_results_carry_the_collection_error(tiny, monkeypatch):
    flaky = _FlakyCollect(monkeypatch, MemoryError, rate=0.5, seed=5)
    queue = aio.AsyncInferQueue(tiny, jobs=3)
    called = []
    queue.set_callback(lambda request, userdata: called.append(userdata))
    with anyio.fail_after(60):
        # Handles kept: a request reused by a later job first hands its outputs to the live
        # handle (a collection that can fail too); the rest are read when awaited.
        handles = [await queue.start_async([X, np.full(8, i, np.float32)], i) for i in range(200)]
        await queue.wait_all()  # collection failures are the handle's, not the queue's
    failures = 0
    for i, job in enumerate(handles):
        try:
            out = await job
        except MemoryError:
            failures += 1
        else:
            np.testing.assert_array_equal(out[0], X + i)
    assert failures == flaky.failed and 0 < failures < 200
    assert sorted(called) == list(range(200))
    assert queue.busy == 0 and queue.idle == 3


async def test_any_exception_in_the_drain_resolves_its_job_and_spares_the_others(tiny):
    """A pending record whose completion raises is failed with that exception; the other
    records of the same batch still complete; a KeyboardInterrupt is re-raised after them."""
    bridge = aio.current_bridge()
    events = []

    class Record:
        def __init__(self, name, exc=None):
            self.name, self.exc = name, exc

        def complete(self):
            if self.exc is not None:
                raise self.exc
            events.append(("complete", self.name))

        def fail(self, exc):
            events.append(("fail", self.name, type(exc).__name__))

        def orphan_complete(self):  # pragma: no cover - the loop is alive
            events.append(("orphan", self.name))

        def native_busy(self):
            return False

    tokens = []
    for name, exc in (("a", None), ("b", ValueError("boom")), ("c", KeyboardInterrupt()), ("d", None)):
        token = 10**12 + len(tokens) + random.randrange(10**6) * 10
        tokens.append(token)
        bridge.pending[token] = Record(name, exc)
    for token in tokens:
        bridge.port.push(token)
    # No await between the pushes and the drain: the loop cannot drain them first.
    with pytest.raises(KeyboardInterrupt):
        bridge.drain()
    assert events == [
        ("complete", "a"),
        ("fail", "b", "ValueError"),
        ("fail", "c", "KeyboardInterrupt"),
        ("complete", "d"),
    ]
    assert not any(t in bridge.pending for t in tokens)


async def test_failures_while_jobs_are_cancelled_and_time_out(medium, monkeypatch):
    sync, weights = medium
    _FlakyCollect(monkeypatch, MemoryError, rate=0.3, seed=11)
    compiled = aio.CompiledModel(sync, max_requests=4)
    x = np.full((4, 256), 0.5, np.float32)
    expected = medium_reference(weights, x)
    rng = random.Random(2)
    counts = {"ok": 0, "memory": 0, "cancelled": 0}

    async def one(delay):
        with anyio.move_on_after(delay) as scope:
            try:
                out = await compiled(x)
            except MemoryError:
                counts["memory"] += 1
                return
            np.testing.assert_allclose(out[0], expected, rtol=1e-4, atol=1e-4)
            counts["ok"] += 1
        if scope.cancelled_caught:
            counts["cancelled"] += 1

    with anyio.fail_after(120):
        for _ in range(10):
            async with anyio.create_task_group() as tg:
                for _ in range(40):
                    tg.start_soon(one, rng.choice((0, 1e-4, 1e-3, 1)))
    assert sum(counts.values()) == 400
    assert counts["memory"] > 0 and counts["ok"] > 0
    assert await settled(lambda: pool_idle(compiled))
    assert not aio.current_bridge().pending


async def test_queue_jobs_whose_handles_are_dropped_copy_no_outputs(tiny, monkeypatch):
    """Callback users drop the job handles: their outputs are read in the callback from the
    request and never copied into a job (no reference-count guess decides it)."""
    counting = _FlakyCollect(monkeypatch, rate=0.0)
    queue = aio.AsyncInferQueue(tiny, jobs=2)
    seen = []
    queue.set_callback(lambda request, i: seen.append(request.get_output_tensor().data[0] - X[0]))
    with anyio.fail_after(60):
        for i in range(50):
            await queue.start_async([X, np.full(8, i, np.float32)], i)
        await queue.wait_all()
    assert sorted(seen) == list(range(50))
    assert counting.calls == 0
    # A kept handle gets its own results, even after its request ran other jobs.
    with anyio.fail_after(60):
        kept = await queue.start_async([X, np.full(8, 100, np.float32)], 100)
        for i in range(10):
            await queue.start_async([X, np.full(8, i, np.float32)], i)
        await queue.wait_all()
    np.testing.assert_array_equal((await kept)[0], X + 100)
    assert counting.calls == 1


def test_missing_trio_helper_names_the_extra(monkeypatch):
    import sys

    from aiov.aio import _optional

    monkeypatch.setattr(_optional, "_trio", None)
    monkeypatch.setitem(sys.modules, "outcome", None)  # import outcome -> ImportError
    with pytest.raises(ImportError, match=r"aiov\[trio\]") as info:
        _optional.trio_modules()
    assert "outcome" in str(info.value)


async def test_every_pending_record_implements_the_declared_protocol(tiny):
    from aiov.aio._pending import PendingJob

    compiled = aio.CompiledModel(tiny)
    request = compiled.create_infer_request()
    queue = aio.AsyncInferQueue(compiled, jobs=1)
    bridge = aio.current_bridge()
    with anyio.fail_after(30):
        records = [request.start_async([X, X]), await queue.start_async([X, X])]
        call = compiled([X, X])
        records += list(bridge.pending.values())
        await call
        await queue.wait_all()
        await records[0]
    kinds = {type(r).__name__ for r in records}
    assert {"_RequestJob", "_QueueJob"} <= kinds
    assert all(isinstance(r, PendingJob) for r in records)
    assert isinstance(list(compiled._pool.slots)[0], PendingJob)
