"""aio.imap on every backend: order, backpressure on the source, errors at their position, and
leaving early (break, an error, cancellation, aclose) returning every request."""

import anyio
import numpy as np
import pytest

import aiov as ov
from aiov import aio

from aio_helpers import pool_idle, queue_idle, settled
from model_builders import medium_model

pytestmark = pytest.mark.anyio

X = np.arange(8, dtype=np.float32)


def _pair(i):
    return [X, np.full(8, i, np.float32)]


async def _pool_settles(compiled):
    assert await settled(lambda: pool_idle(compiled), timeout=10), "a request never came back"


async def _queue_settles(queue):
    assert await settled(lambda: queue_idle(queue), timeout=10), "a queue slot never came back"


@pytest.fixture(params=["compiled", "queue"])
def target_kind(request):
    return request.param


def _make_target(kind, sync, jobs=3):
    compiled = aio.CompiledModel(sync, max_requests=4)
    return compiled if kind == "compiled" else aio.AsyncInferQueue(compiled, jobs=jobs)


async def _settles(target):
    if isinstance(target, aio.AsyncInferQueue):
        await _queue_settles(target)
        await target.wait_all()  # nothing aborted is reported as a failure
    else:
        await _pool_settles(target)


async def test_ordered_results_from_a_sync_iterable(tiny, target_kind):
    target = _make_target(target_kind, tiny)
    got = [r[0].copy() async for r in aio.imap(target, (_pair(i) for i in range(50)), concurrency=3)]
    assert len(got) == 50
    for i, value in enumerate(got):
        np.testing.assert_array_equal(value, X + i)
    await _settles(target)


async def test_unordered_yields_every_result_once(tiny, target_kind):
    target = _make_target(target_kind, tiny)
    got = [r[0].copy() async for r in aio.imap(target, [_pair(i) for i in range(40)], ordered=False)]
    assert sorted(int(v[0]) for v in got) == list(range(40))
    for v in got:
        np.testing.assert_array_equal(v - v[0], X)
    await _settles(target)


async def test_async_source_is_never_read_further_ahead_than_the_window(tiny, target_kind):
    target = _make_target(target_kind, tiny)
    pulled = 0

    async def frames():
        nonlocal pulled
        for i in range(30):
            await anyio.sleep(0)
            pulled += 1
            yield _pair(i)

    consumed = 0
    async for results in aio.imap(target, frames(), concurrency=4):
        np.testing.assert_array_equal(results[0], X + consumed)
        consumed += 1
        assert pulled - consumed <= 4  # pulled and not yet yielded: at most the window
        await anyio.sleep(0)
    assert consumed == pulled == 30
    await _settles(target)


async def test_ordered_error_raises_at_its_position(failing):
    compiled = aio.CompiledModel(failing)
    good, bad = np.ones(6, np.float32), np.ones(5, np.float32)
    inputs = [good, good, bad] + [good] * 20
    got = 0
    with pytest.raises(ov.InputError, match="reshape"):
        async for _ in aio.imap(compiled, inputs, concurrency=4):
            got += 1
    assert got == 2
    await _pool_settles(compiled)


async def test_unordered_error_raises_when_it_finishes(failing):
    compiled = aio.CompiledModel(failing)
    good, bad = np.ones(6, np.float32), np.ones(5, np.float32)
    got = 0
    with pytest.raises(ov.InputError, match="reshape"):
        async for _ in aio.imap(compiled, [good] * 3 + [bad], ordered=False, concurrency=2):
            got += 1
    assert got <= 3
    await _pool_settles(compiled)


async def test_bad_inputs_fail_their_item_only_at_its_position(tiny):
    compiled = aio.CompiledModel(tiny)
    inputs = [_pair(0), _pair(1), {"nope": X}, _pair(3)]
    seen = []
    with pytest.raises(Exception, match="nope|input"):
        async for r in aio.imap(compiled, inputs, concurrency=4):
            seen.append(int(r[0][0]))
    assert seen == [0, 1]
    await _pool_settles(compiled)


async def test_source_error_is_raised_after_the_items_before_it(tiny, target_kind):
    target = _make_target(target_kind, tiny)

    def source():
        for i in range(5):
            yield _pair(i)
        raise ValueError("camera unplugged")

    seen = []
    with pytest.raises(ValueError, match="camera unplugged"):
        async for r in aio.imap(target, source(), concurrency=3):
            seen.append(int(r[0][0]))
    assert seen == [0, 1, 2, 3, 4]
    await _settles(target)


@pytest.fixture(scope="module")
def slow():
    model, _ = medium_model(layers=8, size=512)
    return ov.compile_model(model, "CPU")


async def test_break_returns_every_request(slow, target_kind):
    target = _make_target(target_kind, slow, jobs=4)
    batch = np.ones((32, 512), np.float32)
    pulled = 0

    def source():
        nonlocal pulled
        for _ in range(1000):
            pulled += 1
            yield batch

    async for _ in aio.imap(target, source(), concurrency=4):
        break
    await _settles(target)
    assert pulled <= 5  # the source was not drained
    # The model still works afterwards.
    if isinstance(target, aio.AsyncInferQueue):
        await (await target.start_async(batch))
    else:
        await target(batch)


async def test_cancelling_the_consumer_returns_every_request(slow, target_kind):
    target = _make_target(target_kind, slow, jobs=4)
    batch = np.ones((32, 512), np.float32)

    async def frames():
        for _ in range(3):
            yield batch
        await anyio.sleep_forever()  # a source that stalls: the consumer waits on it

    seen = 0
    with anyio.fail_after(60), anyio.CancelScope() as scope:
        async for _ in aio.imap(target, frames(), concurrency=4):
            seen += 1
            if seen == 3:  # every frame is in: cancel while the consumer waits on the source
                scope.deadline = anyio.current_time() + 0.05
    assert scope.cancelled_caught and seen == 3
    await _settles(target)


async def test_aclose_and_async_with_abort_in_flight_jobs(slow, target_kind):
    target = _make_target(target_kind, slow, jobs=4)
    batch = np.ones((32, 512), np.float32)
    stream = aio.imap(target, [batch] * 100, concurrency=4)
    await stream.__anext__()
    await stream.aclose()
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()
    await _settles(target)
    async with aio.imap(target, [batch] * 100, concurrency=4) as stream:
        async for _ in stream:
            break
    await _settles(target)


async def test_repeated_early_exits_leak_nothing(tiny, target_kind):
    target = _make_target(target_kind, tiny)
    for n in range(60):
        async for _ in aio.imap(target, (_pair(i) for i in range(100)), concurrency=1 + n % 5, ordered=bool(n % 2)):
            if n % 3 == 0:
                break
            if n % 3 == 1:
                await anyio.sleep(0)
                break
    await _settles(target)


async def test_bad_arguments_are_named(tiny):
    compiled = aio.CompiledModel(tiny)
    with pytest.raises(ov.InputError, match="concurrency"):
        aio.imap(compiled, [], concurrency=0)
    with pytest.raises(ov.InputError, match="iterable"):
        aio.imap(compiled, 3)
    with pytest.raises(ov.InputError, match="CompiledModel"):
        aio.imap(object(), [])
    assert [r async for r in aio.imap(compiled, [])] == []
