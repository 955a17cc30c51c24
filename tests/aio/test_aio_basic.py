"""aiov.aio basics on every backend: results, concurrent awaits, requests and jobs,
compilation off the loop, bad input, errors raised once."""

import threading

import anyio
import numpy as np
import pytest

import aiov as ov
from aiov import aio

from model_builders import failing_model, medium_reference, tiny_model

pytestmark = pytest.mark.anyio

X = np.arange(8, dtype=np.float32)


def _idle(compiled):
    return all(slot.fut is None for slot in list(compiled._slots))


async def test_call_returns_correct_ovdict(tiny):
    compiled = aio.CompiledModel(tiny)
    results = await compiled([X, 2 * X])
    assert isinstance(results, ov.OVDict)
    np.testing.assert_array_equal(results[0], 3 * X)
    np.testing.assert_array_equal(results["sum"], 3 * X)
    np.testing.assert_array_equal(results[compiled.output(0)], 3 * X)
    results = await compiled({"a": X, "b": X})
    np.testing.assert_array_equal(results[0], 2 * X)


async def test_call_converts_inputs_like_the_sync_api(tiny):
    compiled = aio.CompiledModel(tiny)
    results = await compiled([list(range(8)), np.ones(8, dtype=np.float64)])
    np.testing.assert_array_equal(results[0], X + 1)


async def test_256_concurrent_awaits_get_their_own_results(tiny):
    compiled = aio.CompiledModel(tiny)
    out = {}

    async def one(i):
        out[i] = (await compiled([X, np.full(8, i, np.float32)]))[0]

    async with anyio.create_task_group() as tg:
        for i in range(256):
            tg.start_soon(one, i)
    assert len(out) == 256
    for i, value in out.items():
        np.testing.assert_array_equal(value, X + i)
    assert _idle(compiled)


async def test_medium_model_results_match_numpy(medium):
    sync, weights = medium
    compiled = aio.CompiledModel(sync)
    rng = np.random.default_rng(1)
    batch = rng.standard_normal((3, 256)).astype(np.float32)
    results = await compiled(batch)
    np.testing.assert_allclose(results[0], medium_reference(weights, batch), rtol=1e-4, atol=1e-4)


async def test_compile_model_runs_off_the_loop(monkeypatch):
    loop_thread = threading.get_ident()
    seen = []
    original = ov.Core.compile_model

    def spy(self, *args, **kwargs):
        seen.append(threading.get_ident())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ov.Core, "compile_model", spy)
    compiled = await aio.compile_model(tiny_model(), "CPU")
    assert isinstance(compiled, aio.CompiledModel)
    assert seen and seen[0] != loop_thread
    np.testing.assert_array_equal((await compiled([X, X]))[0], 2 * X)


async def test_compile_model_from_a_path(tmp_path):
    path = tmp_path / "tiny.xml"
    ov.save_model(tiny_model(), str(path))
    compiled = await aio.compile_model(str(path), "CPU")
    np.testing.assert_array_equal((await compiled([X, X]))[0], 2 * X)
    core = aio.Core()
    model = await core.read_model(str(path))
    compiled = await core.compile_model(model, "CPU")
    np.testing.assert_array_equal((await compiled([X, X]))[0], 2 * X)


async def test_wraps_and_exposes_the_sync_twin(tiny):
    compiled = aio.CompiledModel(tiny)
    assert compiled.sync is tiny
    assert compiled.inputs == tiny.inputs
    request = compiled.create_infer_request()
    assert isinstance(request.sync, ov.InferRequest)
    await request.infer([X, X])
    # The sync twin shares the memory and stays usable.
    np.testing.assert_array_equal(request.sync.get_output_tensor().data, 2 * X)
    np.testing.assert_array_equal(request.sync.infer([X, 3 * X])[0], 4 * X)
    np.testing.assert_array_equal(tiny([X, X])[0], 2 * X)


async def test_request_infer_start_async_and_wait(tiny):
    compiled = aio.CompiledModel(tiny)
    request = compiled.create_infer_request()
    np.testing.assert_array_equal((await request.infer([X, X]))[0], 2 * X)
    job = request.start_async([X, 5 * X], userdata="u")
    assert isinstance(job, aio.InferJob)
    assert request.busy
    with pytest.raises(ov.BusyError):
        request.start_async([X, X])
    np.testing.assert_array_equal((await job)[0], 6 * X)
    np.testing.assert_array_equal((await job)[0], 6 * X)  # awaitable again
    assert job.done() and not request.busy
    await request.wait()
    assert await request.wait_for(1000)
    np.testing.assert_array_equal(request.get_output_tensor().data, 6 * X)
    assert request.userdata == "u"


async def test_wait_for_times_out_without_cancelling(medium):
    sync, weights = medium
    request = aio.CompiledModel(sync).create_infer_request()
    batch = np.ones((64, 256), np.float32)
    request.start_async(batch)
    finished = await request.wait_for(0)
    # Whether it finished or not, the job is not cancelled and ends fine.
    await request.wait()
    assert finished in (True, False)
    np.testing.assert_allclose(request.results[0], medium_reference(weights, batch), rtol=1e-4, atol=1e-4)


async def test_many_awaiters_of_one_job(tiny):
    request = aio.CompiledModel(tiny).create_infer_request()
    job = request.start_async([X, X])
    got = []

    async def waiter():
        got.append((await job)[0])

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(waiter)
    assert len(got) == 5
    for value in got:
        np.testing.assert_array_equal(value, 2 * X)


async def test_failed_inference_raises_in_its_awaiter_once():
    compiled = await aio.compile_model(failing_model(), "CPU")
    with pytest.raises(RuntimeError):
        await compiled(np.ones(5, np.float32))
    np.testing.assert_array_equal(
        (await compiled(np.arange(6, dtype=np.float32)))[0].ravel(), np.arange(6, dtype=np.float32)
    )
    request = compiled.create_infer_request()
    with pytest.raises(RuntimeError):
        await request.infer(np.ones(5, np.float32))
    await request.wait()  # already retrieved by infer: not raised again
    request.start_async(np.ones(7, np.float32))
    with pytest.raises(RuntimeError):
        await request.wait()
    await request.wait()  # once
    np.testing.assert_array_equal((await request.infer(np.zeros(6, np.float32)))[0], np.zeros((2, 3)))


async def test_bad_input_raises_a_clear_error_and_keeps_the_pool(tiny):
    compiled = aio.CompiledModel(tiny)
    with pytest.raises(ov.InputError, match="no input named"):
        await compiled({"nope": X, "b": X})
    with pytest.raises(ov.InputError):
        await compiled([X])  # a missing input
    with pytest.raises(ov.InputError):
        await compiled([np.ones(3, np.float32), X])
    np.testing.assert_array_equal((await compiled([X, X]))[0], 2 * X)
    assert _idle(compiled)


async def test_share_inputs_and_share_outputs(tiny):
    compiled = aio.CompiledModel(tiny)
    a = X.copy()
    results = await compiled([a, a], share_inputs=True, share_outputs=True)
    np.testing.assert_array_equal(results[0], 2 * X)
    np.testing.assert_array_equal(a, X)  # the caller's array is not modified
    # Shared outputs alias a request that is not reused by later calls.
    later = [await compiled([X, 10 * X]) for _ in range(4)]
    np.testing.assert_array_equal(results[0], 2 * X)
    np.testing.assert_array_equal(later[-1][0], 11 * X)
