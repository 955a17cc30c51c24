"""Automatic batching through the sync API: the BATCH device and the THROUGHPUT hint, each job's
own rows, no waiting when idle, failures kept to their job, ragged padding and the fallback for
models without a batch axis."""

import threading

import numpy as np
import pytest

import aiov as ov
import aiov.opset13 as ops
from aiov import InputError, JobError

from aio_helpers import BusyWorkers, run_in_threads
from model_builders import accumulator_model, bert_encoder, bert_feeds, lookup_model, mlp

STATS = "AIOV_BATCH_STATS"


@pytest.fixture(scope="module")
def small_mlp():
    return ov.Core().read_model(mlp((16, 32, 8)).SerializeToString())


def _joined(compiled) -> int:
    """How many jobs ran in batches of more than one."""
    return sum(size * count for size, count in compiled.get_property(STATS)["sizes"].items() if size > 1)


def _queue_results(compiled, feeds, jobs=None):
    """Runs every feed through a sync AsyncInferQueue started while the workers are busy (so
    the jobs wait together); returns each job's outputs (a list), in order."""
    queue = ov.AsyncInferQueue(compiled, jobs or len(feeds))
    results = [None] * len(feeds)

    def done(request, index):
        results[index] = [v.copy() for v in request.results.values()]

    queue.set_callback(done)
    busy = BusyWorkers()
    for index, feed in enumerate(feeds):
        queue.start_async(feed, index)
    busy.wait()
    queue.wait_all()
    return results


def test_device_strings_name_the_batch_size(small_mlp):
    compiled = ov.Core().compile_model(small_mlp, "BATCH:CPU(4)")
    stats = compiled.get_property(STATS)
    assert stats["enabled"] and stats["max_batch"] == 4
    assert compiled.get_property("OPTIMAL_BATCH_SIZE") == 4
    assert compiled.get_property("AUTO_BATCH_TIMEOUT") == 1000  # OpenVINO's default
    chosen = ov.compile_model(small_mlp, "BATCH:CPU").get_property(STATS)
    assert chosen["enabled"] and chosen["max_batch"] > 1
    for bad in ("BATCH:GPU(2)", "BATCH:CPU(0)", "BATCH:CPU(x)", "BATCH"):
        with pytest.raises(InputError, match="BATCH"):
            ov.compile_model(small_mlp, bad)
    # OpenVINO's other spelling: device "BATCH", the target in the device priorities.
    spelled = ov.compile_model(small_mlp, "BATCH", {ov.properties.device.priorities: "CPU(3)"})
    assert spelled.get_property(STATS)["max_batch"] == 3


def test_throughput_hint_batches_unless_auto_batching_is_disallowed(small_mlp):
    hinted = ov.compile_model(small_mlp, "CPU", {"PERFORMANCE_HINT": "THROUGHPUT"})
    assert hinted.get_property(STATS)["enabled"]
    off = ov.compile_model(small_mlp, "CPU", {"PERFORMANCE_HINT": "THROUGHPUT", "ALLOW_AUTO_BATCHING": False})
    assert not off.get_property(STATS)["enabled"]
    plain = ov.compile_model(small_mlp, "CPU")
    stats = plain.get_property(STATS)
    assert not stats["enabled"] and "not asked for" in stats["reason"]


def test_each_job_gets_its_own_rows_of_a_joined_batch(small_mlp):
    plain = ov.compile_model(small_mlp, "CPU")
    compiled = ov.compile_model(small_mlp, "BATCH:CPU(8)")
    rng = np.random.default_rng(0)
    feeds = [rng.standard_normal((1 + i % 2, 16)).astype(np.float32) for i in range(40)]
    results = _queue_results(compiled, feeds)
    for feed, got in zip(feeds, results):
        (out,) = got
        np.testing.assert_allclose(out, plain(feed)[0], rtol=1e-5, atol=1e-5)
    stats = compiled.get_property(STATS)
    assert stats["inferences"] == 40 and stats["retried"] == 0
    assert _joined(compiled) > 0
    assert max(stats["sizes"]) <= 8  # jobs, and rows (some jobs have 2) never exceed 8


def test_an_idle_engine_runs_each_job_at_once_alone(small_mlp):
    compiled = ov.compile_model(small_mlp, "BATCH:CPU(16)")
    request = compiled.create_infer_request()
    x = np.ones((1, 16), np.float32)
    for _ in range(20):
        compiled(x)
        request.start_async(x)
        request.wait()
    stats = compiled.get_property(STATS)
    assert stats["sizes"] == {1: 40} and stats["batches"] == 40


def test_threads_calling_the_model_get_their_own_results(small_mlp):
    plain = ov.compile_model(small_mlp, "CPU")
    compiled = ov.compile_model(small_mlp, "BATCH:CPU(8)")
    rng = np.random.default_rng(1)
    feeds = [rng.standard_normal((1, 16)).astype(np.float32) for _ in range(200)]
    results = [None] * len(feeds)

    def work(first):
        for k in range(first, len(feeds), 8):
            results[k] = compiled(feeds[k])[0]

    run_in_threads(work, range(8))
    for feed, got in zip(feeds, results):
        np.testing.assert_allclose(got, plain(feed)[0], rtol=1e-5, atol=1e-5)
    assert compiled.get_property(STATS)["inferences"] == 200


def test_a_bad_input_fails_only_its_caller_before_it_joins(small_mlp):
    compiled = ov.compile_model(small_mlp, "BATCH:CPU(8)")
    queue = ov.AsyncInferQueue(compiled, 8)
    busy = BusyWorkers()
    for i in range(6):
        queue.start_async(np.ones((1, 16), np.float32), i)
        with pytest.raises(InputError, match="shape"):
            queue.start_async(np.ones((1, 15), np.float32), "bad")
    busy.wait()
    queue.wait_all()
    assert compiled.get_property(STATS)["inferences"] == 6


def test_a_job_cancelled_while_it_waits_leaves_without_running(small_mlp):
    compiled = ov.compile_model(small_mlp, "BATCH:CPU(8)")
    requests = [compiled.create_infer_request() for _ in range(12)]
    busy = BusyWorkers()
    for request in requests:
        request.start_async(np.ones((1, 16), np.float32))
    for request in requests[::3]:
        request.cancel()
    busy.wait()
    want = ov.compile_model(small_mlp, "CPU")(np.ones((1, 16), np.float32))[0]
    for i, request in enumerate(requests):
        if i % 3:
            request.wait()
            np.testing.assert_allclose(request.get_output_tensor(0).data, want, rtol=1e-5, atol=1e-5)
        else:
            with pytest.raises(ov.CancelledError):
                request.wait()
    stats = compiled.get_property(STATS)
    assert stats["cancelled"] == 4 and stats["inferences"] == 8


def test_a_failed_batch_is_retried_job_by_job_so_only_the_faulty_one_fails():
    compiled = ov.compile_model(lookup_model(), "BATCH:CPU(16)")
    feeds = [np.array([[i % 10, (i + 3) % 10]], np.int64) for i in range(12)]
    feeds[5] = np.array([[1, 99]], np.int64)  # outside the table
    queue = ov.AsyncInferQueue(compiled, len(feeds))
    results = {}
    queue.set_callback(lambda request, i: results.__setitem__(i, request.get_output_tensor(0).data.copy()))
    busy = BusyWorkers()
    for i, feed in enumerate(feeds):
        queue.start_async(feed, i)
    busy.wait()
    with pytest.raises(JobError) as info:
        queue.wait_all()
    assert [userdata for _, userdata, _ in info.value.errors] == [5]
    assert "out of range" in str(info.value.errors[0][2])
    table = np.arange(40, dtype=np.float32).reshape(10, 4)
    for i, feed in enumerate(feeds):
        if i != 5:
            np.testing.assert_array_equal(results[i], table[feed])
    assert compiled.get_property(STATS)["retried"] >= 2


def test_models_without_a_batch_axis_run_every_job_alone():
    x = ops.parameter([2, 3], np.float32, name="x")  # a static batch of 2: nothing to join on
    static_two = ov.Model(ops.multiply(x, 2.0), [x])
    y = ops.parameter([-1, 3], np.float32, name="y")
    y.set_layout(ov.Layout("CN"))  # the layout puts the batch elsewhere
    channels_first = ov.Model(ops.multiply(y, 2.0), [y])
    for model, feed, why in (
        (static_two, np.ones((2, 3), np.float32), "batch axis 2"),
        (channels_first, np.ones((4, 3), np.float32), "layout"),
    ):
        compiled = ov.compile_model(model, "BATCH:CPU(8)")
        stats = compiled.get_property(STATS)
        assert not stats["enabled"] and why in stats["reason"]
        results = _queue_results(compiled, [feed] * 6)
        for got in results:
            np.testing.assert_array_equal(got[0], feed * 2)


def test_a_stateful_model_is_never_batched_and_keeps_its_state():
    compiled = ov.compile_model(accumulator_model(shape=(1, 4)), "BATCH:CPU(8)")
    stats = compiled.get_property(STATS)
    assert not stats["enabled"] and "state" in stats["reason"]
    ones = np.ones((1, 4), np.float32)
    for i in range(1, 4):
        np.testing.assert_array_equal(compiled([ones])[0], ones * i)  # one request, one state


def test_a_static_batch_of_one_is_joined_on_a_dynamic_copy(small_mlp):
    static = small_mlp.clone()
    static.reshape([1, 16])
    plain = ov.compile_model(static, "CPU")
    compiled = ov.compile_model(static, "BATCH:CPU(8)")
    assert compiled.input(0).get_partial_shape() == ov.PartialShape([1, 16])  # callers see batch 1
    rng = np.random.default_rng(2)
    feeds = [rng.standard_normal((1, 16)).astype(np.float32) for _ in range(24)]
    for feed, got in zip(feeds, _queue_results(compiled, feeds)):
        np.testing.assert_allclose(got[0], plain(feed)[0], rtol=1e-5, atol=1e-5)
    assert _joined(compiled) > 0


def test_inputs_of_other_lengths_go_to_other_batches():
    x = ops.parameter([-1, -1], np.float32, name="x")
    model = ov.Model(ops.multiply(x, 3.0), [x])
    compiled = ov.compile_model(model, "BATCH:CPU(8)")
    feeds = [np.full((1, 3 + i % 3), i, np.float32) for i in range(24)]
    for feed, got in zip(feeds, _queue_results(compiled, feeds)):
        np.testing.assert_array_equal(got[0], feed * 3)
    stats = compiled.get_property(STATS)
    assert stats["retried"] == 0 and _joined(compiled) > 0


def test_ragged_token_inputs_are_padded_and_outputs_cut_back():
    hidden = 32
    model = ov.Core().read_model(bert_encoder(hidden=hidden, heads=2, layers=1).SerializeToString())
    plain = ov.compile_model(model, "CPU")
    config = {"AIOV_BATCH_PAD": {"x": {1: 0.0}, "mask": {1: 0}}}
    compiled = ov.compile_model(model, "BATCH:CPU(8)", config)
    feeds = []
    for i in range(16):
        feed = bert_feeds(1, 4 + i % 5, hidden, seed=i)
        feed["mask"][:] = 1  # each caller's own tokens are all real: padding is the batcher's
        feeds.append(feed)
    for feed, got in zip(feeds, _queue_results(compiled, feeds)):
        (out,) = got
        want = plain(feed)[0]
        assert out.shape == want.shape == (1, feed["x"].shape[1], hidden)
        np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)
    stats = compiled.get_property(STATS)
    assert stats["retried"] == 0 and _joined(compiled) > 0


def test_the_padding_option_is_checked():
    x = ops.parameter([-1, -1, 4], np.float32, name="x")
    model = ov.Model(ops.multiply(x, 2.0), [x])
    for pads, match in (
        ({"x": {0: 0.0}}, "axis"),
        ({"x": {2: 0.0}}, "static"),
        ({"nope": {1: 0.0}}, "nope"),
        ({"x": {1: [1.0, 2.0]}}, "scalar"),
        ({"x": 0.0}, "axis"),
        ("x", "AIOV_BATCH_PAD"),
    ):
        with pytest.raises(InputError, match=match):
            ov.compile_model(model, "BATCH:CPU(4)", {"AIOV_BATCH_PAD": pads})


def test_the_timeout_is_a_property_of_the_compiled_model(small_mlp):
    compiled = ov.compile_model(small_mlp, "BATCH:CPU(4)", {"AUTO_BATCH_TIMEOUT": 5})
    assert compiled.get_property("AUTO_BATCH_TIMEOUT") == 5
    compiled.set_property({"AUTO_BATCH_TIMEOUT": 0})
    assert compiled.get_property("AUTO_BATCH_TIMEOUT") == 0
    with pytest.raises(InputError, match="AUTO_BATCH_TIMEOUT"):
        compiled.set_property({"AUTO_BATCH_TIMEOUT": -1})
    feeds = [np.ones((1, 16), np.float32)] * 12
    assert len(_queue_results(compiled, feeds)) == 12


def test_threads_mixing_calls_jobs_cancellations_and_failures_never_wedge_it():
    compiled = ov.compile_model(lookup_model(), "BATCH:CPU(8)", {"AUTO_BATCH_TIMEOUT": 1})
    table = np.arange(40, dtype=np.float32).reshape(10, 4)
    errors = []

    def work(seed):
        rng = np.random.default_rng(seed)
        request = compiled.create_infer_request()
        try:
            for _ in range(300):
                index = rng.integers(0, 10, (1, 2))
                mode = rng.integers(0, 4)
                if mode == 0:
                    np.testing.assert_array_equal(compiled(index)[0], table[index])
                elif mode == 1:  # fails while running: only this call raises
                    with pytest.raises(InputError, match="out of range"):
                        compiled(index + 10)
                elif mode == 2:  # cancelled: raises, or finished first
                    request.start_async(index)
                    request.cancel()
                    try:
                        request.wait()
                    except ov.CancelledError:
                        continue
                    np.testing.assert_array_equal(request.get_output_tensor(0).data, table[index])
                else:
                    request.start_async(index)
                    request.wait()
                    np.testing.assert_array_equal(request.get_output_tensor(0).data, table[index])
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    assert not errors, errors[0]
    stats = compiled.get_property(STATS)
    assert stats["inferences"] + stats["cancelled"] == 8 * 300


def test_models_whose_rows_influence_each_other_are_not_joined():
    x = ops.parameter([-1, 3], np.float32, name="x")
    # Alone, a row's softmax over the batch axis is all ones and minus its batch mean all zeros.
    for out, alone in ((ops.softmax(x, 0), 1.0), (ops.subtract(x, ops.reduce_mean(x, [0], True)), 0.0)):
        compiled = ov.compile_model(ov.Model(out, [x]), "BATCH:CPU(4)")
        stats = compiled.get_property(STATS)
        assert not stats["enabled"] and "influence each other" in stats["reason"]
        for got in _queue_results(compiled, [np.full((1, 3), i, np.float32) for i in range(6)]):
            np.testing.assert_allclose(got[0], np.full((1, 3), alone))
