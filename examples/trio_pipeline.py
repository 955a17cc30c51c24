"""A streaming pipeline on trio through anyio: a producer feeds an aio.AsyncInferQueue,
the consumer reads finished jobs with `as_completed`, and a memory stream carries
the predictions to a sink. The same code runs on asyncio: change `backend=`."""

import anyio
import numpy as np

try:
    import trio  # noqa: F401 - anyio's trio backend
except ImportError as e:
    raise SystemExit(f"this example runs on trio, which is not installed ({e}): pip install 'aiov[trio]'") from None

import aiov as ov
import aiov.opset13 as ops
from aiov import aio

N_ITEMS = 200
rng = np.random.default_rng(1)
w = rng.standard_normal((64, 8)).astype(np.float32)
x = ops.parameter([-1, 64], np.float32, name="features")
model = ov.Model(ops.softmax(ops.matmul(x, ops.constant(w)), axis=1), [x], "classifier")


async def main():
    compiled = await aio.compile_model(model, "CPU")
    queue = aio.AsyncInferQueue(compiled, jobs=4)
    items = [rng.standard_normal((1, 64)).astype(np.float32) for _ in range(N_ITEMS)]
    send, receive = anyio.create_memory_object_stream(16)

    async def produce():
        for i, item in enumerate(items):
            await queue.start_async(item, userdata=i)  # suspends while the queue is full

    async def consume():
        async with send:
            async for request, i in queue.as_completed(count=N_ITEMS):
                label = int(request.get_output_tensor().data.argmax())
                await send.send((i, label))

    async def sink(results):
        async with receive:
            async for i, label in receive:
                results[i] = label

    results = {}
    async with anyio.create_task_group() as tg:
        tg.start_soon(produce)
        tg.start_soon(consume)
        tg.start_soon(sink, results)
    await queue.wait_all()
    expected = [int((item @ w).argmax()) for item in items]
    assert [results[i] for i in range(N_ITEMS)] == expected
    print(f"trio pipeline: {len(results)} items classified, e.g. {[results[i] for i in range(8)]}")

    # A deadline: jobs still running when it expires are aborted.
    with anyio.move_on_after(0.5) as scope:
        await compiled(items[0])
    print("within deadline" if not scope.cancelled_caught else "deadline hit")


if __name__ == "__main__":
    anyio.run(main, backend="trio")
