"""Many threads and many jobs at once: every result right, every error delivered once,
every userdata kept with its job."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import aiov as ov
import aiov.opset13 as ops

from aio_helpers import run_in_threads
from model_builders import failing_model


def _affine_model():
    x = ops.parameter([16], np.float32, name="x")
    model = ov.Model(ops.add(ops.multiply(x, 2.0), 1.0), [x])
    model.outputs[0].tensor.set_names({"y"})
    return model


def test_four_threads_each_with_own_request_2000_inferences():
    compiled = ov.compile_model(_affine_model())
    failures = []
    barrier = threading.Barrier(4)

    def worker(k):
        request = compiled.create_infer_request()
        base = np.arange(16, dtype=np.float32)
        bad = 0
        barrier.wait()
        for i in range(2000):
            x = base + (k * 10000 + i)
            if i % 2:
                request.start_async({"x": x})
                request.wait()
                y = request.get_output_tensor().data
            else:
                y = request.infer({"x": x})["y"]
            if not np.array_equal(y, 2 * x + 1):
                bad += 1
        failures.append((k, bad))

    run_in_threads(worker, range(4))
    assert sorted(failures) == [(k, 0) for k in range(4)]


def test_queue_with_failing_callbacks_and_inferences_keeps_userdata_per_job():
    compiled = ov.compile_model(failing_model())
    queue = ov.AsyncInferQueue(compiled, 2)
    got = {}
    lock = threading.Lock()

    def callback(request, userdata):
        kind, i = userdata
        if kind == "bad":
            with lock:
                got[userdata] = None
            return
        out = request.get_output_tensor().data.copy()
        with lock:
            got[userdata] = out
        if i % 7 == 0:
            raise ValueError(f"callback {i} fails")

    queue.set_callback(callback)
    expected_failures = set()
    for i in range(500):
        if i % 11 == 5:
            queue.start_async(np.ones(5, np.float32), userdata=("bad", i))
            expected_failures.add(("bad", i))
        else:
            queue.start_async(np.arange(6, dtype=np.float32) + i, userdata=("good", i))
            if i % 7 == 0:
                expected_failures.add(("good", i))
    try:
        queue.wait_all()
        errors = []
    except ov.JobError as exc:
        errors = exc.errors
    assert {ud for _, ud, _ in errors} == expected_failures
    assert len(errors) == len(expected_failures)
    for _, (kind, i), exc in errors:
        if kind == "bad":
            assert "reshape" in str(exc)
        else:
            assert isinstance(exc, ValueError) and str(exc) == f"callback {i} fails"
    assert len(got) == 500
    for (kind, i), out in got.items():
        if kind == "good":
            np.testing.assert_array_equal(out, (np.arange(6, dtype=np.float32) + i).reshape(2, 3))
    queue.wait_all()  # every error was raised once


def test_many_threads_feeding_one_queue():
    compiled = ov.compile_model(_affine_model())
    queue = ov.AsyncInferQueue(compiled, 3)
    results = {}
    queue.set_callback(lambda req, ud: results.__setitem__(ud, req.get_output_tensor().data.copy()))

    def producer(k):
        for i in range(150):
            queue.start_async({"x": np.full(16, k * 1000 + i, np.float32)}, userdata=(k, i))

    run_in_threads(producer, range(4))
    queue.wait_all()
    assert len(results) == 600
    for (k, i), out in results.items():
        np.testing.assert_array_equal(out, np.full(16, 2 * (k * 1000 + i) + 1, np.float32))


_SPIN_SCRIPT = r"""
import threading, numpy as np, aiov as ov, aiov.opset13 as ops
rng = np.random.default_rng(0)
w = rng.standard_normal((256, 256)).astype(np.float32)
x = ops.parameter([64, 256], np.float32, name="x")
# Big enough that every inference splits its products over the pool (parallel_for).
compiled = ov.compile_model(ov.Model(ops.relu(ops.matmul(ops.relu(ops.matmul(x, w, False, False)), w, False, False)), [x]))
bad = []
def worker(k):
    request = compiled.create_infer_request()
    for i in range(300):
        a = rng.standard_normal((64, 256)).astype(np.float32) if i % 50 == 0 else np.full((64, 256), (k + i) % 7 - 3, np.float32)
        if i % 3:
            y = request.infer({"x": a})[0]
        else:
            request.start_async({"x": a}); request.wait(); y = request.get_output_tensor().data
        ref = np.maximum(np.maximum(a @ w, 0) @ w, 0)
        if not np.allclose(y, ref, rtol=1e-4, atol=1e-2):
            bad.append((k, i))
threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
for t in threads: t.start()
for t in threads: t.join()
print("bad", len(bad))
"""


@pytest.mark.parametrize("spin_us", ["0", "2", "300"])
def test_parallel_layers_with_spinning_or_sleeping_workers(spin_us):
    # Spin 2 us: workers fall asleep between almost every layer, so the hand-over between a
    # spinning, a sleeping and a waking worker is exercised thousands of times.
    env = dict(os.environ, AIOV_WORKER_SPIN_US=spin_us)
    proc = subprocess.run([sys.executable, "-c", _SPIN_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-2:] == ["bad", "0"]


def test_parallel_for_runs_every_unit_once_when_threads_take_each_others_work():
    # Slow units make one thread fall behind, so the other empties its own part and takes
    # chunks from the back of the slow one's: every unit must still run exactly once.
    from aiov import _core

    rng = np.random.default_rng(5)
    for _ in range(300):
        n = int(rng.integers(1, 400))
        grain = int(rng.integers(1, 9))
        slow_every = int(rng.choice([0, 3, 7, 50]))
        runs = _core.parallel_for_check(n, grain, slow_every, -1)
        assert runs == [1] * n, (n, grain, slow_every)


def test_parallel_for_error_surfaces_once_and_the_pool_keeps_working():
    from aiov import _core

    for i in range(200):
        n = 64 + i % 37
        with pytest.raises(RuntimeError, match=f"unit {i % n} failed"):
            _core.parallel_for_check(n, 1 + i % 4, 5, i % n)
        # The chunks after the failure are skipped, never run twice; the next call is whole.
        assert _core.parallel_for_check(n, 1, 0, -1) == [1] * n


def test_work_too_small_to_hand_off_runs_on_the_calling_thread_alone():
    from aiov import _core

    # 64 units of 10 ns: far below a worker's wake-up. A worker still spinning from the
    # previous call must not be handed any of it either.
    for _ in range(200):
        runs, elsewhere = _core.parallel_for_units_check(64, 10.0)
        assert runs == [1] * 64 and not elsewhere


def test_work_worth_splitting_runs_every_unit_once():
    from aiov import _core

    rng = np.random.default_rng(6)
    for _ in range(200):
        n = int(rng.integers(1, 300))
        unit_ns = float(rng.choice([1e2, 1e3, 1e4, 1e6]))
        runs, _ = _core.parallel_for_units_check(n, unit_ns)
        assert runs == [1] * n, (n, unit_ns)
