"""The native engine's cross-thread paths: completion ports, job cancellation, errors that
must not kill workers, requests dropped with work in flight, and per-shape plan caching."""

import gc
import os
import select
import threading

import numpy as np
import pytest

import aiov as ov
import aiov.opset13 as ops
from aiov import _core

from aio_helpers import run_in_threads


def _heavy_model(layers=6, size=512):
    rng = np.random.default_rng(0)
    x = ops.parameter([-1, size], np.float32, name="x")
    h = x
    for _ in range(layers):
        h = ops.relu(ops.matmul(h, ops.constant(rng.standard_normal((size, size)).astype(np.float32) * 0.04)))
    return ov.compile_model(ov.Model(h, [x]))


def _failing_model():
    # Fails at run time unless the input has exactly 6 elements.
    x = ops.parameter([-1], np.float32, name="x")
    return ov.compile_model(ov.Model(ops.reshape(x, [2, 3]), [x]))


def test_port_signals_once_for_many_pushes_and_drains_all():
    port = _core.CompletionPort()
    for token in range(100):
        port.push(token)
    readable, _, _ = select.select([port.fd], [], [], 0)
    assert readable == [port.fd]
    assert port.drain() == list(range(100))
    readable, _, _ = select.select([port.fd], [], [], 0)
    assert readable == []  # drained: the fd is quiet again
    assert port.drain() == []


def test_port_edge_signal_survives_concurrent_pushes():
    port = _core.CompletionPort()
    got = []
    stop = threading.Event()

    def consumer():
        while not stop.is_set() or got_count() < 20000:
            got.extend(port.wait_drain(50))

    def got_count():
        return len(got)

    def producer(base):
        for i in range(5000):
            port.push(base + i)

    t = threading.Thread(target=consumer)
    t.start()
    producers = [threading.Thread(target=producer, args=(k * 5000,)) for k in range(4)]
    for p in producers:
        p.start()
    for p in producers:
        p.join()
    stop.set()
    t.join(timeout=30)
    assert not t.is_alive()
    assert sorted(got) == list(range(20000))


def test_wait_drain_times_out_and_close_wakes_waiter():
    port = _core.CompletionPort()
    assert port.wait_drain(10) == []
    result = []
    t = threading.Thread(target=lambda: result.append(port.wait_drain(-1)))
    t.start()
    port.close()
    t.join(timeout=5)
    assert not t.is_alive() and result == [[]]


def test_jobs_finish_into_the_port_with_their_tokens():
    compiled = _heavy_model(layers=2, size=64)
    port = _core.CompletionPort()
    requests = [_core.Request(compiled._native) for _ in range(8)]
    x = np.ones((4, 64), np.float32)
    for token, r in enumerate(requests):
        r.set_input(0, x, ov.Type.f32._id, False)
        r.start(port, token + 100)
    seen = []
    while len(seen) < 8:
        seen += port.wait_drain(5000)
    assert sorted(seen) == list(range(100, 108))
    reference = requests[0].outputs(True)[0]
    for r in requests:
        assert r.status is _core.RequestStatus.ok
        np.testing.assert_array_equal(r.outputs(True)[0], reference)


def test_cancelled_jobs_end_and_requests_stay_usable():
    compiled = _heavy_model()
    x = np.random.default_rng(1).standard_normal((64, 512)).astype(np.float32)
    expected = compiled(x)[0]
    request = compiled.create_infer_request()
    cancelled = 0
    for i in range(200):
        request.start_async(x)
        if i % 2 == 0:
            request.cancel()
        try:
            request.wait()
        except ov.CancelledError:
            cancelled += 1
    assert cancelled > 0
    np.testing.assert_allclose(request.infer(x)[0], expected, rtol=1e-5, atol=1e-5)


def test_failing_jobs_do_not_kill_workers():
    compiled = _failing_model()
    request = compiled.create_infer_request()
    workers = _core.pool_size()
    for _ in range(500):
        request.start_async(np.ones(5, np.float32))
        with pytest.raises(RuntimeError, match="cannot reshape"):
            request.wait()
    request.start_async(np.arange(6, dtype=np.float32))
    request.wait()
    np.testing.assert_array_equal(request.get_output_tensor().data, np.arange(6).reshape(2, 3))
    assert _core.pool_size() == workers


def test_request_dropped_with_job_in_flight_waits_for_the_job():
    compiled = _heavy_model()
    threads_before = set(threading.enumerate())
    for _ in range(50):
        request = compiled.create_infer_request()
        # share_inputs: the job reads this array; dropping everything must not free it early.
        request.start_async(np.ones((64, 512), np.float32), share_inputs=True)
        del request
        gc.collect()
    # No thread was started for it (threads of other tests may end meanwhile).
    assert set(threading.enumerate()) - threads_before == set()


def test_wait_for_times_out_then_completes():
    compiled = _heavy_model(layers=12, size=1024)
    request = compiled.create_infer_request()
    x = np.ones((256, 1024), np.float32)
    request.start_async(x)
    # ~6 GFLOP: far longer than an immediate poll.
    assert request.wait_for(0) is False
    assert request.wait_for(60_000) is True
    assert request.get_output_tensor().data.shape == (256, 1024)


def test_plans_are_cached_per_input_shape():
    x = ops.parameter([-1, 4], np.float32, name="x")
    compiled = ov.compile_model(ov.Model(ops.softmax(ops.multiply(x, 2.0), 1), [x]))
    native = compiled._native
    for batch in (1, 2, 3, 2, 1, 3):
        data = np.arange(batch * 4, dtype=np.float32).reshape(batch, 4)
        out = compiled(data)[0]
        e = np.exp(2 * data - (2 * data).max(1, keepdims=True))
        np.testing.assert_allclose(out, e / e.sum(1, keepdims=True), rtol=1e-6)
    assert native.cached_plans == 3


def test_threads_planning_new_shapes_at_once_share_the_weights():
    # Plans for new shapes are built concurrently, outside the plan-cache lock; they meet in
    # the model's shared-weights cache and must each end up with correct, complete panels.
    rng = np.random.default_rng(5)
    weights = [rng.standard_normal((64, 64)).astype(np.float32) * 0.1 for _ in range(3)]
    for round_ in range(20):
        x = ops.parameter([-1, 64], np.float32, name="x")
        h = x
        for w in weights:
            h = ops.relu(ops.matmul(h, ops.constant(w)))
        compiled = ov.compile_model(ov.Model(h, [x]))
        batches = [1 + (round_ + i) % 7 * 5 for i in range(6)]
        results, errors = {}, []

        def worker(batch):
            try:
                data = np.full((batch, 64), 0.01 * batch, np.float32)
                results[batch] = (data, compiled.infer_new_request({0: data})[0])
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        run_in_threads(worker, batches)
        assert errors == []
        for data, out in results.values():
            expected = data
            for w in weights:
                expected = np.maximum(expected @ w, 0)
            np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
        assert compiled._native.shared_weights == 3  # one packing per weight, whichever thread made it


def test_many_threads_share_the_pool_without_oversubscribing():
    compiled = _heavy_model(layers=3, size=256)
    x = np.random.default_rng(2).standard_normal((32, 256)).astype(np.float32)
    expected = compiled(x)[0]
    errors = []

    def worker():
        request = compiled.create_infer_request()
        for _ in range(100):
            out = request.infer(x)[0]
            if not np.allclose(out, expected, rtol=1e-5, atol=1e-5):
                errors.append("mismatch")

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _core.pool_size() == int(os.environ.get("AIOV_NUM_THREADS", 0) or _core.hardware_threads())


def test_a_node_read_only_for_its_shape_does_not_run():
    # The Transpose feeds only a Shape (sizing a Reshape): the plan knows the shape without
    # running it, so it has no step; the Exp, read by the output, still runs.
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0]),
        helper.make_node("Shape", ["t"], ["shape"]),
        helper.make_node("Exp", ["x"], ["e"]),
        helper.make_node("Reshape", ["e", "shape"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["a", "b"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    compiled = ov.compile_model(model.SerializeToString(), "CPU", {"PERF_COUNT": True})
    request = compiled.create_infer_request()
    x = np.arange(6, dtype=np.float32).reshape(2, 3) / 6
    got = request.infer({"x": x})[0]
    np.testing.assert_allclose(got, np.exp(x).reshape(3, 2), rtol=1e-6)
    types = [p.node_type for p in request.get_profiling_info()]
    assert "Transpose" not in types and "Exp" in types
