"""A streaming pipeline with `aio.imap`: frames arrive from an async source, at most 8 are in
flight, and the results come out in frame order (the source is read only as fast as the model
keeps up: backpressure). Leaving the loop early cancels the jobs still running.

The same pipeline on trio: examples/imap_pipeline_trio.py."""

import asyncio

import numpy as np

import aiov as ov
import aiov.opset13 as ops
from aiov import aio

N_FRAMES = 300
rng = np.random.default_rng(2)
W = rng.standard_normal((3 * 32 * 32, 10)).astype(np.float32) * 0.02


# The frames and their reference labels, made before the loop runs (numpy work of the example
# itself, which would otherwise hold the loop).
FRAMES = [rng.standard_normal((1, 3, 32, 32)).astype(np.float32) for _ in range(N_FRAMES)]
EXPECTED = [int((f.reshape(1, -1) @ W).argmax()) for f in FRAMES]


def build_model():
    frame = ops.parameter([1, 3, 32, 32], np.float32, name="frame")
    scores = ops.matmul(ops.reshape(frame, [1, 3 * 32 * 32]), ops.constant(W))
    return ov.Model(ops.softmax(scores, axis=1), [frame], "classifier")


async def camera(frames):
    """An async source: a frame whenever the consumer asks for one (a real camera would await I/O)."""
    for frame in frames:
        await asyncio.sleep(0)
        yield frame


async def main(frames, expected):
    compiled = await aio.compile_model(build_model(), "CPU")

    # In order: the i-th result is the i-th frame's.
    labels = []
    async for results in aio.imap(compiled, camera(frames), concurrency=8):
        labels.append(int(results[0].argmax()))
    assert labels == expected
    print(f"imap pipeline: {len(labels)} frames classified in order, e.g. {labels[:8]}")

    # As they finish: a counter of labels, order does not matter.
    counts = np.zeros(10, int)
    async for results in aio.imap(compiled, frames, concurrency=8, ordered=False):
        counts[int(results[0].argmax())] += 1
    assert counts.sum() == N_FRAMES
    print("labels seen (unordered pass):", counts.tolist())

    # Stop early: leaving the `async with` cancels the jobs still in flight at once.
    seen = 0
    async with aio.imap(compiled, camera(frames), concurrency=8) as stream:
        async for _ in stream:
            seen += 1
            if seen == 10:
                break
    print(f"stopped after {seen} frames; the rest were never read")
    await compiled.aclose()


if __name__ == "__main__":
    asyncio.run(main(FRAMES, EXPECTED))
