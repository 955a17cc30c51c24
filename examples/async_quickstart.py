"""Async quickstart: compile off the loop, await inferences from many tasks, use a request,
and feed an AsyncInferQueue whose callback runs on the event loop (uvloop if installed)."""

import asyncio

import numpy as np

import aiov as ov
import aiov.opset13 as ops
from aiov import aio

rng = np.random.default_rng(0)
w1 = rng.standard_normal((784, 256)).astype(np.float32) * 0.05
w2 = rng.standard_normal((256, 10)).astype(np.float32) * 0.05

image = ops.parameter([-1, 784], np.float32, name="image")
probs = ops.softmax(ops.matmul(ops.relu(ops.matmul(image, ops.constant(w1))), ops.constant(w2)), axis=1)
model = ov.Model(probs, [image], "mlp")
model.outputs[0].tensor.set_names({"probs"})


def reference(x):
    logits = np.maximum(x @ w1, 0) @ w2
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


async def main():
    compiled = await aio.compile_model(model, "CPU")  # compiles in a worker thread

    # 1. Any number of concurrent awaits: each takes an idle request from a pool.
    batches = [rng.standard_normal((2, 784)).astype(np.float32) for _ in range(64)]
    results = await asyncio.gather(*(compiled(b) for b in batches))
    assert all(np.allclose(r["probs"], reference(b), atol=1e-5) for r, b in zip(results, batches))
    print("64 concurrent awaits ok; first prediction:", results[0]["probs"].argmax(1))

    # 2. A request: start a job, do other things, then await it.
    request = compiled.create_infer_request()
    job = request.start_async({"image": batches[0]})
    await asyncio.sleep(0)
    print("request job:", (await job)["probs"].argmax(1), f"latency {request.latency:.3f} ms")

    # 3. A queue with 4 jobs; start_async suspends while all are busy.
    queue = aio.AsyncInferQueue(compiled, jobs=4)
    predictions = {}

    def on_done(request, index):  # runs on the event loop thread
        predictions[index] = request.get_output_tensor().data.argmax(1)

    queue.set_callback(on_done)
    for i, batch in enumerate(batches):
        await queue.start_async(batch, userdata=i)
    await queue.wait_all()
    print("queue finished", len(predictions), "jobs")

    # 4. Timeouts cancel the job if it has not finished (asyncio.timeout on Python 3.11+).
    try:
        await asyncio.wait_for(compiled(batches[1]), 0.5)
        print("finished within the timeout")
    except asyncio.TimeoutError:
        print("timed out (job aborted)")


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
