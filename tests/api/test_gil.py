"""Every blocking function releases the GIL: while it runs, another Python thread keeps
running.

The probe thread increments a counter and releases the GIL after every increment
(time.sleep(0)). The switch interval is raised to 1 s during these tests, so a call that
held the GIL for its whole (sub-second) duration would let the probe make no progress at all
between the main thread's reads just before and just after the call; a call that releases
the GIL lets it run for the tens of milliseconds the call lasts. No timing is asserted."""

import sys
import threading
import time

import numpy as np
import pytest

import aiov as ov

from model_builders import folding_model, heavy_model, heavy_reference

MIN_PROGRESS = 10


class Probe:
    def __init__(self):
        self.count = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop:
            self.count += 1
            time.sleep(0)  # releases the GIL

    def __enter__(self):
        self._thread.start()
        while self.count < 3:
            time.sleep(0.001)
        return self

    def __exit__(self, *exc):
        self._stop = True
        self._thread.join()

    def progress_during(self, call, *args, **kwargs):
        before = self.count
        result = call(*args, **kwargs)
        after = self.count
        return after - before, result


@pytest.fixture
def probe():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1.0)
    try:
        with Probe() as p:
            yield p
    finally:
        sys.setswitchinterval(old)


@pytest.fixture(scope="module")
def heavy():
    model, weights = heavy_model(layers=4)
    compiled = ov.compile_model(model)
    x = np.random.default_rng(9).standard_normal((256, 1024)).astype(np.float32)
    compiled(x[:1])  # plan once
    return compiled, x, weights


def test_probe_sees_no_progress_during_a_call_that_holds_the_gil(probe):
    # The detector's control: sum(range(n)) is one C call that keeps the GIL.
    progress, _ = probe.progress_during(sum, range(3_000_000))
    assert progress < MIN_PROGRESS


def test_infer_request_infer_releases_gil(probe, heavy):
    compiled, x, weights = heavy
    request = compiled.create_infer_request()
    progress, res = probe.progress_during(request.infer, x)
    assert progress >= MIN_PROGRESS
    np.testing.assert_allclose(res[0][:4], heavy_reference(x[:4], weights), rtol=1e-4, atol=1e-4)


def test_infer_request_wait_releases_gil(probe, heavy):
    compiled, x, _ = heavy
    request = compiled.create_infer_request()
    request.start_async(x)
    progress, _ = probe.progress_during(request.wait)
    assert progress >= MIN_PROGRESS


def test_infer_request_wait_for_releases_gil(probe, heavy):
    compiled, x, _ = heavy
    request = compiled.create_infer_request()
    request.start_async(x)
    progress, done = probe.progress_during(request.wait_for, 10_000)
    assert done is True
    assert progress >= MIN_PROGRESS


def test_infer_request_wait_for_timeout_releases_gil(probe):
    model, _ = heavy_model(layers=12, same_weight=True)
    request = ov.compile_model(model).create_infer_request()
    request.start_async(np.ones((256, 1024), np.float32))
    # Short waits until the job ends, counting the probe's progress during those that time
    # out: on a busy machine one 20 ms wait may pass without the probe being scheduled at all,
    # and a longer one could outlast the job. Between waits the main thread keeps the GIL.
    timed_out, progress = 0, 0
    while True:
        waited, done = probe.progress_during(request.wait_for, 20)
        if done:
            break
        timed_out, progress = timed_out + 1, progress + waited
    assert timed_out >= 1
    assert progress >= MIN_PROGRESS


def test_wait_with_callback_releases_gil(probe, heavy):
    compiled, x, _ = heavy
    request = compiled.create_infer_request()
    called = []
    request.set_callback(lambda ud: called.append(ud), "cb")
    request.start_async(x)
    progress, _ = probe.progress_during(request.wait)
    assert called == ["cb"]
    assert progress >= MIN_PROGRESS


def test_compiled_model_call_releases_gil(probe, heavy):
    compiled, x, _ = heavy
    progress, res = probe.progress_during(compiled, x)
    assert progress >= MIN_PROGRESS
    assert res[0].shape == (256, 1024)


def test_core_compile_model_releases_gil(probe):
    model = folding_model(folds=3)  # static shapes: planned and folded at compile time
    core = ov.Core()
    progress, compiled = probe.progress_during(core.compile_model, model, "CPU")
    assert progress >= MIN_PROGRESS
    assert compiled.outputs[0].get_partial_shape() == ov.PartialShape([1, 1024])


def test_queue_start_async_waiting_for_a_busy_job_releases_gil(probe, heavy):
    compiled, x, _ = heavy
    queue = ov.AsyncInferQueue(compiled, 1)
    # The busy job is 8x the others (a few hundred ms): the call below must find it still
    # running even when the test's thread is descheduled for a while on a loaded machine
    # (a job finished before the call makes it return at once, with nothing to measure).
    queue.start_async(np.tile(x, (8, 1)))
    assert not queue.is_ready()
    progress, _ = probe.progress_during(queue.start_async, x)
    queue.wait_all()
    assert progress >= MIN_PROGRESS


def test_queue_wait_all_releases_gil(probe, heavy):
    compiled, x, _ = heavy
    queue = ov.AsyncInferQueue(compiled, 2)
    queue.start_async(x)
    queue.start_async(x)
    progress, _ = probe.progress_during(queue.wait_all)
    assert progress >= MIN_PROGRESS
