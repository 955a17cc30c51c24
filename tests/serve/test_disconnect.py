"""The server's disconnect watch, on asyncio, uvloop and trio: a disconnect cancels the
inference and returns its request to the pool, an inference that ends first is returned, and
a cancellation from elsewhere is never mistaken for a disconnect. Run many times."""

import anyio
import numpy as np
import pytest

from aiov import aio
from aiov.serve._app import until_disconnect

from model_builders import heavy_model, heavy_reference


@pytest.fixture(scope="module")
def slow():
    import aiov as ov

    model, weights = heavy_model(layers=8, size=512)
    return ov.compile_model(model, "CPU"), weights


def _receive(disconnect: anyio.Event):
    async def receive():
        await disconnect.wait()
        return {"type": "http.disconnect"}

    return receive


@pytest.mark.anyio
async def test_disconnect_cancels_and_completion_wins_otherwise(anyio_backend, slow):
    compiled = aio.CompiledModel(slow[0])
    x = np.ones((256, 512), np.float32)
    cancelled = 0
    for _ in range(20):
        gone = anyio.Event()
        gone.set()  # the client is already gone: the watcher sees it at once
        finished, results = await until_disconnect(compiled, x, _receive(gone))
        if finished:  # the inference ended before the watcher ran (seen on trio): returned whole
            assert results[0].shape == (256, 512)
        else:
            assert results is None
            cancelled += 1
    assert cancelled >= 10
    small = np.random.default_rng(0).standard_normal((2, 512)).astype(np.float32)
    for _ in range(20):
        finished, results = await until_disconnect(compiled, small, _receive(anyio.Event()))
        assert finished
        np.testing.assert_allclose(results[0], heavy_reference(small, slow[1]), rtol=1e-4, atol=1e-4)
    # Every request came back to the pool: twice its size in flight at once all finish.
    outs = [None] * (2 * compiled.max_requests)

    async def one(i):
        outs[i] = (await compiled(small))[0]

    async with anyio.create_task_group() as tg:
        for i in range(len(outs)):
            tg.start_soon(one, i)
    assert all(o is not None for o in outs)


@pytest.mark.anyio
async def test_a_cancellation_from_elsewhere_propagates(anyio_backend, slow):
    compiled = aio.CompiledModel(slow[0])
    x = np.ones((256, 512), np.float32)
    propagated = 0
    for _ in range(20):
        returned = []
        with anyio.CancelScope() as scope:
            # Cancels as soon as the inference is waited on.
            async def cancel_soon():
                scope.cancel()

            async with anyio.create_task_group() as tg:
                tg.start_soon(cancel_soon)
                returned.append(await until_disconnect(compiled, x, _receive(anyio.Event())))
        assert scope.cancelled_caught
        # Never taken for a disconnect: the cancellation came out of the call, or (on a loop that
        # delivered the finished inference first) the call returned that inference's result.
        if returned:
            finished, results = returned[0]
            assert finished and results[0].shape == (256, 512)
        else:
            propagated += 1
    assert propagated > 0
    assert (await compiled(np.ones((1, 512), np.float32)))[0].shape == (1, 512)


@pytest.mark.anyio
async def test_a_failing_receive_leaves_the_inference_to_finish(anyio_backend, slow):
    async def receive():
        raise RuntimeError("the server's receive broke")

    compiled = aio.CompiledModel(slow[0])
    small = np.ones((2, 512), np.float32)
    for _ in range(10):
        finished, results = await until_disconnect(compiled, small, receive)
        assert finished and results[0].shape == (2, 512)
